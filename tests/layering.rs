//! The layout is the architecture: no import cycles between the crate's modules, and only the
//! kernel-object layer (`src/kernel/`) and the seam itself call into `sys`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to, at the granularity the layers are drawn: top-level modules,
/// and the submodules of `kernel`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let stem = |s: &str| s.trim_end_matches(".rs").to_owned();
    match parts.as_slice() {
        [file] => stem(file),
        [dir, file] if dir == "kernel" && file != "mod.rs" => format!("kernel::{}", stem(file)),
        [dir, ..] => dir.clone(),
        [] => unreachable!(),
    }
}

/// The crate modules that `text` names through `crate::...` paths.
fn uses(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let first: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let second: String = rest
            .get(first.len() + 2..)
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let nested = format!("{first}::{second}");
        if known.contains(&nested) {
            found.insert(nested);
        } else if known.contains(&first) {
            found.insert(first);
        }
    }
    found
}

/// Depth-first search for a cycle through `node`.
fn visit(
    node: &str,
    edges: &BTreeMap<String, BTreeSet<String>>,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) {
    if done.contains(node) {
        return;
    }
    if let Some(at) = stack.iter().position(|n| n == node) {
        panic!("import cycle: {} -> {node}", stack[at..].join(" -> "));
    }
    stack.push(node.to_owned());
    for next in edges.get(node).into_iter().flatten() {
        visit(next, edges, stack, done);
    }
    stack.pop();
    done.insert(node.to_owned());
}

#[test]
#[cfg_attr(miri, ignore = "reads the source tree, which Miri's isolation forbids")]
fn modules_form_no_import_cycle_and_only_the_kernel_layer_calls_sys() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut known: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    known.insert("kernel".to_owned());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        // Code only: doc links and comments may name any module.
        let text: String = fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let used = uses(&text, &known);
        if used.contains("sys") {
            assert!(
                module.starts_with("kernel") || module == "sys",
                "{module} ({}) calls sys directly; only the kernel layer may",
                file.display()
            );
        }
        let entry = edges.entry(module.clone()).or_default();
        entry.extend(used.into_iter().filter(|m| *m != module && !module.starts_with(m.as_str())));
    }
    assert!(edges.len() >= 15, "too few modules found: {:?}", edges.keys());
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done);
    }
}
