//! The KMDF sample (`examples/sample-kmdf-driver`) is a complete, self-consistent driver
//! package: what wdk-build and cargo-make need is present, and the names that must agree do.
//! Nothing of it can be built here (wdk-build needs a Windows host with the WDK), so these
//! checks read the files: the manifests with a small parser for the TOML subset they use.
// Under Miri these checks do not run: Miri's isolation forbids reading files, and they contain
// no unsafe code or threads for Miri to check.
#![cfg(not(miri))]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> PathBuf {
    root().join("examples/sample-kmdf-driver")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A TOML document as `table -> key -> raw value` (the subset the package uses: `[table]` and
/// `[[array]]` headers, `key = value` lines, arrays of strings or one-line inline tables, and
/// `'''` strings).
struct Toml(BTreeMap<String, BTreeMap<String, String>>);

impl Toml {
    fn parse(text: &str) -> Self {
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut table = String::new();
        tables.insert(table.clone(), BTreeMap::new());
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                // An array of tables: its elements are tables `name[0]`, `name[1]`, ...
                let name = header.trim();
                let index = tables.keys().filter(|t| t.starts_with(&format!("{name}["))).count();
                table = format!("{name}[{index}]");
                tables.insert(table.clone(), BTreeMap::new());
                continue;
            }
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                header.trim().clone_into(&mut table);
                assert!(
                    tables.insert(table.clone(), BTreeMap::new()).is_none(),
                    "table [{table}] defined twice"
                );
                continue;
            }
            let (key, value) =
                line.split_once('=').unwrap_or_else(|| panic!("not `key = value`: {line}"));
            let mut value = value.trim().to_owned();
            if value.starts_with("'''") && !(value.len() > 3 && value.ends_with("'''")) {
                // A multi-line literal string: everything up to the closing quotes, verbatim.
                for more in lines.by_ref() {
                    value.push('\n');
                    value.push_str(more);
                    if more.trim_end().ends_with("'''") {
                        break;
                    }
                }
            } else if value.starts_with('[') && !value.ends_with(']') {
                // A multi-line array: its lines joined, without comments.
                for more in lines.by_ref() {
                    let more = strip_comment(more).trim();
                    value.push(' ');
                    value.push_str(more);
                    if more.ends_with(']') {
                        break;
                    }
                }
            }
            let entries = tables.get_mut(&table).unwrap();
            assert!(
                entries.insert(key.trim().to_owned(), value).is_none(),
                "key {key} set twice in [{table}]"
            );
        }
        Self(tables)
    }

    fn has_table(&self, table: &str) -> bool {
        self.0.contains_key(table)
    }

    fn raw(&self, table: &str, key: &str) -> &str {
        self.0
            .get(table)
            .and_then(|t| t.get(key))
            .unwrap_or_else(|| panic!("missing `{key}` in [{table}]"))
    }

    fn string(&self, table: &str, key: &str) -> &str {
        unquote(self.raw(table, key))
    }

    fn array(&self, table: &str, key: &str) -> Vec<String> {
        let raw = self.raw(table, key);
        let inner = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or_else(|| panic!("not an array: {raw}"));
        inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| unquote(s).to_owned())
            .collect()
    }

    /// An inline table `{ a = 1, b = "x" }` (no nesting), or a bare version string as
    /// `{ version = ... }`, as dependency specifications are written.
    fn dependency(&self, table: &str, key: &str) -> BTreeMap<String, String> {
        let raw = self.raw(table, key);
        let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
            return BTreeMap::from([("version".to_owned(), unquote(raw).to_owned())]);
        };
        inner
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let (k, v) =
                    entry.split_once('=').unwrap_or_else(|| panic!("not `key = value`: {entry}"));
                (k.trim().to_owned(), unquote(v.trim()).to_owned())
            })
            .collect()
    }
}

/// The line without a trailing `#` comment (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(value: &str) -> &str {
    value.trim().trim_matches('"')
}

fn manifest() -> Toml {
    Toml::parse(&read(&sample().join("Cargo.toml")))
}

/// The name of the driver binary: the `[lib]` name, or the package name with `_` for `-`.
fn lib_name(manifest: &Toml) -> String {
    manifest.0.get("lib").and_then(|lib| lib.get("name")).map_or_else(
        || manifest.string("package", "name").replace('-', "_"),
        |name| unquote(name).to_owned(),
    )
}

const HARDWARE_ID: &str = r"root\SYSTEM_THREAD_SAMPLE";

#[test]
fn the_parser_reads_what_the_checks_rely_on() {
    let toml = Toml::parse(
        "a = 1 # one\n[t]\ns = \"x#y\"\narr = [\"p\", \"q\"]\ndep = { path = \"../..\", features = [] }\n\
         v = \"1.0\"\nm = '''\nline\n# kept\n'''\n",
    );
    assert_eq!(toml.raw("", "a"), "1");
    assert_eq!(toml.string("t", "s"), "x#y");
    assert_eq!(toml.array("t", "arr"), ["p", "q"]);
    assert_eq!(toml.dependency("t", "dep")["path"], "../..");
    assert_eq!(toml.dependency("t", "v")["version"], "1.0");
    assert_eq!(toml.raw("t", "m"), "'''\nline\n# kept\n'''");

    let toml = Toml::parse(
        "list = [\n  \"a\", # first\n  \"b\",\n]\n[[t]]\nn = 1\n[[t]]\nn = 2\n[u]\nk = [\"c\"]\n",
    );
    assert_eq!(toml.array("", "list"), ["a", "b"]);
    assert_eq!(toml.raw("t[0]", "n"), "1");
    assert_eq!(toml.raw("t[1]", "n"), "2");
    assert_eq!(toml.array("u", "k"), ["c"]);
}

#[test]
fn the_sample_is_its_own_workspace() {
    // So that building the root crate never builds wdk-build, which needs the WDK.
    assert!(manifest().has_table("workspace"));
    let root = Toml::parse(&read(&root().join("Cargo.toml")));
    assert!(!root.has_table("workspace"), "the root crate must not adopt the sample as a member");
}

#[test]
fn the_manifest_describes_a_kmdf_1_33_driver() {
    let m = manifest();
    let model = "package.metadata.wdk.driver-model";
    assert_eq!(m.string(model, "driver-type"), "KMDF");
    assert_eq!(m.raw(model, "kmdf-version-major"), "1");
    assert_eq!(m.raw(model, "target-kmdf-version-minor"), "33");
    assert_eq!(m.array("lib", "crate-type"), ["cdylib"]);
    assert_eq!(m.string("profile.dev", "panic"), "abort");
    assert_eq!(m.string("profile.release", "panic"), "abort");
    assert_eq!(m.raw("profile.release", "lto"), "true");
    assert_eq!(lib_name(&m), "system_thread_sample");
}

#[test]
fn the_manifest_depends_on_the_wdk_crates_and_on_this_crate_with_wdk_sys() {
    let m = manifest();
    for (name, version) in
        [("wdk", "0.5.0"), ("wdk-sys", "0.5.2"), ("wdk-alloc", "0.4.2"), ("wdk-panic", "0.5.0")]
    {
        assert_eq!(m.dependency("dependencies", name)["version"], version, "{name}");
    }
    assert_eq!(m.dependency("build-dependencies", "wdk-build")["version"], "0.6.0");

    // system-thread from this repository, with its default features: the wdk-sys provider.
    let dep = m.dependency("dependencies", "system-thread");
    assert_eq!(sample().join(&dep["path"]).canonicalize().unwrap(), root().canonicalize().unwrap());
    assert_ne!(dep.get("default-features").map(String::as_str), Some("false"));
    let root = Toml::parse(&read(&root().join("Cargo.toml")));
    assert_eq!(root.string("package", "name"), "system-thread");
    assert!(root.array("features", "default").contains(&"wdk".to_owned()));

    // The sample and the library resolve the same wdk-sys and wdk-build.
    let windows_deps = "target.'cfg(windows)'.dependencies";
    let windows_build_deps = "target.'cfg(windows)'.build-dependencies";
    assert_eq!(
        root.dependency(windows_deps, "wdk-sys")["version"],
        m.dependency("dependencies", "wdk-sys")["version"]
    );
    assert_eq!(
        root.dependency(windows_build_deps, "wdk-build")["version"],
        m.dependency("build-dependencies", "wdk-build")["version"]
    );
}

#[test]
fn the_lockfile_pins_the_versions_the_manifest_asks_for() {
    let lock = read(&sample().join("Cargo.lock"));
    for (name, version) in [
        ("wdk", "0.5.0"),
        ("wdk-sys", "0.5.2"),
        ("wdk-alloc", "0.4.2"),
        ("wdk-panic", "0.5.0"),
        ("wdk-build", "0.6.0"),
    ] {
        let entry = format!("name = \"{name}\"\nversion = \"{version}\"\n");
        assert!(lock.contains(&entry), "Cargo.lock does not pin {name} {version}");
    }
    assert!(
        lock.contains("name = \"system-thread\"\nversion = \"0.1.0\"\n"),
        "Cargo.lock lacks system-thread"
    );
}

#[test]
fn the_build_script_configures_a_driver_binary() {
    let build = read(&sample().join("build.rs"));
    assert!(build.contains("wdk_build::configure_wdk_binary_build()"), "{build}");
}

#[test]
fn the_c_runtime_is_linked_statically() {
    let config = Toml::parse(&read(&sample().join(".cargo/config.toml")));
    assert!(config.array("build", "rustflags").iter().any(|f| f == "target-feature=+crt-static"));
}

#[test]
fn the_makefile_extends_wdk_builds_driver_and_sample_makefiles_from_outside_its_repository() {
    let makefile = Toml::parse(&read(&sample().join("Makefile.toml")));
    // As Windows-rust-driver-samples does: the driver flow first, then the sample settings
    // (infverif's flag for sample drivers, skipped on WDK builds whose infverif lacks it).
    let extend = makefile.raw("", "extend");
    let paths: Vec<&str> = extend
        .split("path")
        .skip(1)
        .map(|rest| {
            unquote(rest.trim_start().trim_start_matches('=').split(['}', ',']).next().unwrap())
        })
        .collect();
    assert_eq!(
        paths,
        ["target/rust-driver-makefile.toml", "target/rust-driver-sample-makefile.toml"],
        "{extend}"
    );
    let script = makefile.raw("config", "load_script");
    let body = script.trim_matches('\'').trim_start();
    assert!(body.starts_with("#!@rust"), "{script}");
    assert!(
        script.contains("wdk-build = \"0.6.0\""),
        "the script must use the wdk-build of the build: {script}"
    );
    // The load script places both files under target/ before `extend` reads them.
    let driver = script.find("wdk_build::cargo_make::load_rust_driver_makefile()?;");
    let sample = script.find("wdk_build::cargo_make::load_rust_driver_sample_makefile()?");
    assert!(driver.is_some() && sample.is_some() && driver < sample, "{script}");
}

/// The `.inx` as text, after checking its encoding: UTF-16LE with a byte-order mark.
fn inx_text() -> String {
    let path = sample().join(format!("{}.inx", lib_name(&manifest())));
    let bytes = fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (the .inx must carry the cdylib's name)", path.display())
    });
    assert_eq!(
        bytes.get(..2),
        Some(&[0xFF, 0xFE][..]),
        "the .inx must start with the UTF-16LE BOM"
    );
    assert_eq!(bytes.len() % 2, 0, "odd length: not UTF-16");
    let units: Vec<u16> =
        bytes[2..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).unwrap()
}

/// The `.inx` as `section -> lines` (comments and blank lines dropped, whitespace squeezed).
fn inx_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        // The .inx keeps `;` out of its quoted strings, so the first `;` starts a comment.
        let line = line.split(';').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            name.clone_into(&mut current);
            assert!(
                sections.insert(current.clone(), Vec::new()).is_none(),
                "[{current}] defined twice"
            );
        } else {
            let squeezed = line.split('=').map(str::trim).collect::<Vec<_>>().join(" = ");
            sections.entry(current.clone()).or_default().push(squeezed);
        }
    }
    sections
}

/// The right-hand side of `key = value` in `section`.
fn inx_value<'a>(sections: &'a BTreeMap<String, Vec<String>>, section: &str, key: &str) -> &'a str {
    let lines = sections.get(section).unwrap_or_else(|| panic!("missing [{section}]"));
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix(" = ")))
        .unwrap_or_else(|| panic!("missing {key} in [{section}]"))
}

#[test]
fn the_inx_is_utf16_and_installs_the_driver_for_its_hardware_id() {
    let lib = lib_name(&manifest());
    let sys = format!("{lib}.sys");
    let text = inx_text();
    assert!(text.is_ascii(), "keep the .inx ASCII");
    assert!(!text.replace("\r\n", "").contains('\n'), "the .inx uses CRLF line ends");
    assert!(!text.contains("sample_kmdf_driver"), "no name left over from another sample");
    let inx = inx_sections(&text);

    assert_eq!(inx_value(&inx, "Version", "Signature"), "\"$WINDOWS NT$\"");
    assert_eq!(inx_value(&inx, "Version", "Class"), "Sample");
    assert!(
        inx["SourceDisksFiles"].contains(&format!("{sys} = 1,,")),
        "SourceDisksFiles must list {sys}"
    );

    // [Manufacturer] -> models section -> install section -> services -> service install.
    let manufacturer = &inx["Manufacturer"];
    assert_eq!(manufacturer.len(), 1);
    let (_, models) = manufacturer[0].split_once(" = ").unwrap();
    let (models_name, decoration) = models.split_once(',').unwrap();
    let models_section = format!("{}.{}", models_name.trim(), decoration.trim());
    let device = inx.get(&models_section).unwrap_or_else(|| panic!("missing [{models_section}]"));
    let (_, install) = device[0].split_once(" = ").unwrap();
    let (install, hardware_id) = install.split_once(',').unwrap();
    assert_eq!(hardware_id.trim(), HARDWARE_ID);
    let install = install.trim();

    let copy_files = inx_value(&inx, &format!("{install}.NT$ARCH$"), "CopyFiles");
    assert_eq!(inx[copy_files], std::slice::from_ref(&sys));
    let add_service = inx_value(&inx, &format!("{install}.NT$ARCH$.Services"), "AddService");
    let service_install = add_service.rsplit(',').next().unwrap().trim();
    assert_eq!(inx_value(&inx, service_install, "ServiceType"), "1", "a kernel driver");
    assert_eq!(inx_value(&inx, service_install, "ServiceBinary"), format!("%13%\\{sys}"));
    for referenced in ["Strings", "SourceDisksNames", "DestinationDirs", "ClassInstall32"] {
        assert!(inx.contains_key(referenced), "missing [{referenced}]");
    }
}

#[test]
fn the_driver_source_is_a_wdf_driver_whose_thread_code_is_the_host_tested_file() {
    let lib = read(&sample().join("src/lib.rs"));
    for needed in [
        "#![no_std]",
        "extern crate wdk_panic;",
        "#[global_allocator]",
        "#[unsafe(export_name = \"DriverEntry\")]",
        "WdfDriverCreate",
        "WdfDeviceCreate",
        "EvtCleanupCallback: Some(evt_device_cleanup)",
        "WdfDeviceWdmGetDeviceObject",
        "mod worker;",
        // The worker's work: a periodic timer, a child of the device, started in D0 entry,
        // stopped (waiting for its callback) in D0 exit; its DPC notifies the worker.
        "WdfDeviceInitSetPnpPowerEventCallbacks",
        "EvtDeviceD0Entry: Some(evt_device_d0_entry)",
        "EvtDeviceD0Exit: Some(evt_device_d0_exit)",
        "WdfTimerCreate",
        "EvtTimerFunc: Some(evt_timer_func)",
        "Period: worker::PERIOD_MS",
        "ParentObject: device.cast()",
        "WdfTimerStart, timer, one_period_from_now()",
        "WdfTimerStop, timer, BOOLEAN::from(true)",
        "static WORK: worker::WorkQueue = worker::WorkQueue::new();",
        "let _signalled = WORK.notify();",
        "worker::start(&WORK, io, log)",
    ] {
        assert!(lib.contains(needed), "src/lib.rs lacks `{needed}`");
    }
    // Only the WDF glue is untested: lib.rs never names system-thread's spawning or event API
    // itself.
    for kept_out in [".spawn", "Builder", "SystemThread::", "Event::", "wait_for"] {
        assert!(!lib.contains(kept_out), "src/lib.rs uses `{kept_out}`: move it to src/worker.rs");
    }

    // worker.rs uses core and system-thread only, so it compiles unchanged on the host...
    let worker = read(&sample().join("src/worker.rs"));
    let code: Vec<&str> = worker.lines().map(str::trim).filter(|l| !l.starts_with("//")).collect();
    for line in code.iter().filter(|l| l.starts_with("use ")) {
        assert!(
            line.starts_with("use core::") || line.starts_with("use system_thread::"),
            "{line}"
        );
    }
    for line in &code {
        assert!(
            !line.contains("std::") && !line.contains("alloc::") && !line.contains("wdk"),
            "{line}"
        );
    }
    // ...and tests/sample_worker.rs is that very file.
    let test = read(&root().join("tests/sample_worker.rs"));
    assert!(
        test.contains("#[path = \"../examples/sample-kmdf-driver/src/worker.rs\"]\nmod worker;")
    );
}

#[test]
fn the_windows_guide_uses_the_packages_names_and_the_drivers_own_output() {
    let readme = read(&sample().join("README.md"));
    let lib = lib_name(&manifest());
    for needed in [
        format!("pnputil /add-driver {lib}.inf /install"),
        format!("devgen /add /hardwareid \"{HARDWARE_ID}\""),
        format!("target\\debug\\{lib}_package\\"),
        format!("verifier /standard /driver {lib}.sys"),
        "bcdedit /set testsigning on".to_owned(),
        "Kd_DEFAULT_Mask".to_owned(),
        "Debug Print Filter".to_owned(),
        "pnputil /remove-device".to_owned(),
        "Nothing of this sample has been built or run on Windows".to_owned(),
    ] {
        assert!(readme.contains(&needed), "README.md lacks `{needed}`");
    }

    // Every output line the guide shows is one the driver prints: its fixed text up to the
    // first variable part (a number, `N`, `0x...`) occurs in the sources.
    let sources = (read(&sample().join("src/lib.rs")) + &read(&sample().join("src/worker.rs")))
        .replace("{THREAD_NAME}: ", "system-thread-sample: ");
    let shown: Vec<&str> =
        readme.lines().filter(|l| l.starts_with("system-thread-sample: ")).collect();
    assert!(shown.len() >= 8, "{shown:?}");
    for line in shown {
        let end = line
            .char_indices()
            .find(|&(i, c)| {
                c.is_ascii_digit() || line[i..].starts_with("N ") || line[i..].starts_with("...")
            })
            .map_or(line.len(), |(i, _)| i);
        let fixed = &line[..end];
        assert!(
            sources.contains(fixed),
            "README shows `{line}`, but the driver never prints `{fixed}`"
        );
    }
}
