//! Generates Rust bindings with bindgen from two header sets that nobody on this project wrote,
//! for every routine of `src/sys/routines.rs` that they declare:
//!
//! - mingw-w64's DDK headers (Debian package `mingw-w64-common`: `ddk/ntifs.h`, `ddk/ntddk.h`,
//!   `ddk/wdm.h`), and
//! - Wine's DDK headers (Debian package `libwine-dev`: `wine/windows/ddk/ntifs.h`, `ntddk.h`,
//!   `wdm.h`, with Wine's `winternl.h` and `windef.h`),
//!
//! both parsed by libclang as `x86_64-w64-mingw32` C. The routine names come from the crate's one
//! list (the `kernel_routines!` macro, included below). bindgen's C types are mapped to the sizes
//! of 64-bit Windows (`crate::ctypes`, LLP64), so the comparison runs on the build host.
//!
//! For each header set the generated module (`$OUT_DIR/<set>.rs`) holds the bindgen types, one
//! function pointer type per declared routine (`__sig_<Name>`, from the declaration's own ABI,
//! parameter and return types), shape descriptions for every struct, union and enum, and
//! `routines()`, the list of the declared routines. `src/main.rs` compares them.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use quote::{format_ident, quote};

#[macro_use]
#[allow(unused_macros, unused_imports, dead_code)]
#[path = "../../src/sys/routines.rs"]
mod routines;

/// `kernel_routines!` callback: `ROUTINES`, the names of every routine, in list order.
macro_rules! routine_names {
    (
        static { $(fn $s:ident($($sa:ident: $st:ty),* $(,)?) $(-> $sr:ty)?;)* }
        own { $(fn $o:ident($($oa:ident: $ot:ty),* $(,)?) $(-> $or:ty)?;)* }
        optional { $(fn $p:ident($($pa:ident: $pt:ty),* $(,)?) $(-> $pr:ty)?;)* }
    ) => {
        const ROUTINES: &[&str] = &[$(stringify!($s),)* $(stringify!($o),)* $(stringify!($p),)*];
    };
}
kernel_routines!(routine_names);

/// The structures, enums and constants compared besides the routines (C names).
const TYPES: &[&str] = &[
    "_OBJECT_ATTRIBUTES",
    "OBJECT_ATTRIBUTES",
    "_CLIENT_ID",
    "CLIENT_ID",
    "_UNICODE_STRING",
    "UNICODE_STRING",
    "_KEVENT",
    "KEVENT",
    "_DISPATCHER_HEADER",
    "DISPATCHER_HEADER",
    "_GROUP_AFFINITY",
    "GROUP_AFFINITY",
    "_LARGE_INTEGER",
    "LARGE_INTEGER",
    "_POOL_TYPE",
    "_KWAIT_REASON",
    "_MODE",
    "_EVENT_TYPE",
    "_THREADINFOCLASS",
    "_KWAIT_BLOCK",
    "KWAIT_BLOCK",
    "_WAIT_TYPE",
];
const VARS: &[&str] = &[
    "OBJ_KERNEL_HANDLE",
    "THREAD_ALL_ACCESS",
    "SYNCHRONIZE",
    "PASSIVE_LEVEL",
    "APC_LEVEL",
    "DISPATCH_LEVEL",
    "THREAD_WAIT_OBJECTS",
    "MAXIMUM_WAIT_OBJECTS",
    // A `#define` in Wine's wdm.h (an enum, `_MODE`, in the WDK and mingw-w64).
    "KernelMode",
];

struct HeaderSet {
    /// Module name in `src/main.rs`.
    module: &'static str,
    /// Debian package that ships the headers (for the error message).
    package: &'static str,
    wrapper: &'static str,
    include_dirs: &'static [&'static str],
}

const SETS: &[HeaderSet] = &[
    HeaderSet {
        module: "mingw",
        package: "mingw-w64-common",
        wrapper: "#include <ntifs.h>\n#include <ntddk.h>\n",
        include_dirs: &["/usr/share/mingw-w64/include", "/usr/share/mingw-w64/include/ddk"],
    },
    HeaderSet {
        module: "wine",
        package: "libwine-dev",
        wrapper: "#include <windef.h>\n#include <winternl.h>\n#include <ddk/ntifs.h>\n\
                  #include <ddk/ntddk.h>\n",
        include_dirs: &["/usr/include/wine/wine/msvcrt", "/usr/include/wine/wine/windows"],
    },
];

/// clang's own headers (`stddef.h`, `mm_malloc.h`, ...) for the libclang that bindgen loads:
/// `/usr/lib/llvm-<N>/lib/clang/<version>/include`, the newest one (clang-sys loads the newest
/// libclang too). `BINDINGS_CLANG_INCLUDE` overrides it.
fn clang_include() -> PathBuf {
    if let Some(dir) = env::var_os("BINDINGS_CLANG_INCLUDE") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for llvm in fs::read_dir("/usr/lib").into_iter().flatten().flatten() {
        let name = llvm.file_name().to_string_lossy().into_owned();
        let Some(major) = name.strip_prefix("llvm-").and_then(|v| v.parse::<u32>().ok()) else {
            continue;
        };
        for version in fs::read_dir(llvm.path().join("lib/clang")).into_iter().flatten().flatten() {
            let include = version.path().join("include");
            if include.join("stddef.h").is_file() {
                found.push((major, include));
            }
        }
    }
    found.sort();
    match found.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "bindings-check: no clang resource headers under /usr/lib/llvm-*/lib/clang/*/include \
             (apt-get install libclang-dev), or set BINDINGS_CLANG_INCLUDE"
        ),
    }
}

fn generate(set: &HeaderSet, clang_include: &Path) -> String {
    for dir in set.include_dirs {
        assert!(
            Path::new(dir).is_dir(),
            "bindings-check: {dir} is missing (apt-get install {})",
            set.package
        );
    }
    let mut builder = bindgen::Builder::default()
        .header_contents("wrapper.h", set.wrapper)
        .clang_arg("--target=x86_64-w64-mingw32")
        .clang_arg("-nostdinc")
        .clang_arg(format!("-isystem{}", clang_include.display()))
        .clang_args(set.include_dirs.iter().map(|dir| format!("-isystem{dir}")))
        .use_core()
        .ctypes_prefix("crate::ctypes")
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .layout_tests(false)
        .derive_debug(false)
        .derive_default(false)
        .generate_comments(false);
    for name in ROUTINES {
        builder = builder.allowlist_function(name);
    }
    for name in TYPES {
        builder = builder.allowlist_type(name);
    }
    for name in VARS {
        builder = builder.allowlist_var(name);
    }
    match builder.generate() {
        Ok(bindings) => bindings.to_string(),
        Err(error) => {
            panic!("bindings-check: bindgen failed on the {} headers: {error}", set.module)
        }
    }
}

/// Keeps bindgen's items except the `extern` blocks, and adds per routine its function pointer
/// type, per struct/union a `Pointee` description, per enum a `CType` description, and the list
/// of declared routines.
fn postprocess(code: &str) -> String {
    let file = syn::parse_file(code).expect("bindgen output parses");
    let mut out = Vec::new();
    let mut declared = Vec::new();
    for item in file.items {
        match item {
            syn::Item::ForeignMod(block) => {
                let abi = block.abi.name.clone().expect("bindgen names the ABI");
                for foreign in block.items {
                    let syn::ForeignItem::Fn(function) = foreign else { continue };
                    let name = function.sig.ident.clone();
                    let alias = format_ident!("__sig_{}", name);
                    let args = function.sig.inputs.iter().map(|arg| match arg {
                        syn::FnArg::Typed(typed) => typed.ty.clone(),
                        syn::FnArg::Receiver(_) => unreachable!("C functions have no receiver"),
                    });
                    assert!(function.sig.variadic.is_none(), "{name} is variadic");
                    let output = function.sig.output.clone();
                    out.push(
                        quote! { pub type #alias = unsafe extern #abi fn(#(#args),*) #output; },
                    );
                    declared.push((name, alias));
                }
            }
            // bindgen's own generic helpers (`__BindgenBitfieldUnit<Storage>`, ...).
            syn::Item::Struct(item) if !item.generics.params.is_empty() => {
                out.push(quote! { #item })
            }
            syn::Item::Struct(item) => {
                let name = item.ident.clone();
                let described = match &item.fields {
                    // NewType enums: `pub struct _MODE(pub crate::ctypes::c_int);`
                    syn::Fields::Unnamed(fields) => {
                        let inner = &fields.unnamed.first().expect("one field").ty;
                        quote! {
                            impl crate::shape::CType for #name {
                                fn shape() -> String {
                                    format!("enum {}", <#inner as crate::shape::CType>::shape())
                                }
                            }
                        }
                    }
                    // Incomplete C types, `{ _unused: [u8; 0] }`, and empty ones, which
                    // bindgen gives one byte: `{ _address: u8 }`.
                    syn::Fields::Named(fields)
                        if fields.named.len() == 1
                            && fields.named[0]
                                .ident
                                .as_ref()
                                .is_some_and(|f| f == "_unused" || f == "_address") =>
                    {
                        quote! { impl crate::shape::Pointee for #name {
                            fn pointee() -> String { "opaque".into() }
                        } }
                    }
                    _ => quote! { impl crate::shape::Pointee for #name {
                        fn pointee() -> String { crate::shape::record::<Self>() }
                    } },
                };
                out.push(quote! { #item });
                out.push(described);
            }
            syn::Item::Union(item) => {
                let name = item.ident.clone();
                out.push(quote! { #item });
                out.push(quote! { impl crate::shape::Pointee for #name {
                    fn pointee() -> String { crate::shape::record::<Self>() }
                } });
            }
            other => out.push(quote! { #other }),
        }
    }
    let names = declared.iter().map(|(name, _)| name.to_string());
    let aliases = declared.iter().map(|(_, alias)| alias);
    out.push(quote! {
        /// The routines of the list that these headers declare, with their signatures.
        pub fn routines() -> Vec<(&'static str, crate::shape::Sig)> {
            vec![#((#names, <#aliases as crate::shape::FnPtr>::sig())),*]
        }
    });
    out.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../../src/sys/routines.rs");
    println!("cargo::rerun-if-env-changed=BINDINGS_CLANG_INCLUDE");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang_include = clang_include();
    for set in SETS {
        for dir in set.include_dirs {
            println!("cargo::rerun-if-changed={dir}");
        }
        let code = postprocess(&generate(set, &clang_include));
        fs::write(out_dir.join(format!("{}.rs", set.module)), code).expect("write bindings");
    }
    fs::write(out_dir.join("clang_include.txt"), clang_include.display().to_string())
        .expect("write clang include dir");
}
