//! Compares system-thread's kernel declarations with two independent header sets, mingw-w64's
//! and Wine's DDK headers, as bindgen translates them (see build.rs):
//!
//! - signatures: for every routine of `src/sys/routines.rs` (the crate's one list, included
//!   here and expanded with the crate's own types from `src/sys/types.rs`), the calling
//!   convention, the number of parameters, each parameter's type (integer width and signedness,
//!   pointer and what it points to, function pointer and its signature) and the return type;
//! - layouts: size, alignment and field offsets of the structures the crate defines;
//! - constants: the access masks, attributes, IRQLs and enum values the crate passes.
//!
//! It prints what it compared and exits with status 1 on any difference, on a routine a header
//! set declares that the lists below say it lacks, or the other way round.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]
#![allow(unused_unsafe)]

use std::mem::{align_of, offset_of, size_of};
use std::process::ExitCode;

mod shape;

use shape::{Pointee, Sig, Verdict};

/// The C types of 64-bit Windows (LLP64), which bindgen's output names: `long` is 32 bits and
/// `char` is signed there, whatever the build host.
mod ctypes {
    pub type c_char = i8;
    pub type c_schar = i8;
    pub type c_uchar = u8;
    pub type c_short = i16;
    pub type c_ushort = u16;
    pub type c_int = i32;
    pub type c_uint = u32;
    pub type c_long = i32;
    pub type c_ulong = u32;
    pub type c_longlong = i64;
    pub type c_ulonglong = u64;
    pub type c_float = f32;
    pub type c_double = f64;
    pub use core::ffi::c_void;
}

#[macro_use]
#[allow(unused_macros, unused_imports)]
#[path = "../../../src/sys/routines.rs"]
mod routines;

#[path = "../../../src/sys/types.rs"]
mod types;

/// The crate's side: the routine list expanded with the crate's own types, as the raw-dylib
/// provider (`src/sys/ntoskrnl.rs`) declares them, `extern "C"`.
mod ours {
    use crate::shape::{FnPtr, Sig};
    #[allow(clippy::wildcard_imports)]
    use crate::types::*;

    macro_rules! our_signatures {
        (
            static { $(fn $s:ident($($sa:ident: $st:ty),* $(,)?) $(-> $sr:ty)?;)* }
            own { $(fn $o:ident($($oa:ident: $ot:ty),* $(,)?) $(-> $or:ty)?;)* }
            optional { $(fn $p:ident($($pa:ident: $pt:ty),* $(,)?) $(-> $pr:ty)?;)* }
        ) => {
            /// Every routine of the list: (name, section, signature).
            pub fn routines() -> Vec<(&'static str, &'static str, Sig)> {
                vec![
                    $((stringify!($s), "static",
                       <unsafe extern "C" fn($($st),*) $(-> $sr)? as FnPtr>::sig()),)*
                    $((stringify!($o), "own",
                       <unsafe extern "C" fn($($ot),*) $(-> $or)? as FnPtr>::sig()),)*
                    $((stringify!($p), "optional",
                       <unsafe extern "C" fn($($pt),*) $(-> $pr)? as FnPtr>::sig()),)*
                ]
            }
        };
    }
    crate::routines::kernel_routines!(our_signatures);
}

macro_rules! records {
    ($($t:ty),*) => {$(
        impl Pointee for $t {
            fn pointee() -> String { shape::record::<Self>() }
        }
    )*};
}
records!(
    types::UNICODE_STRING,
    types::OBJECT_ATTRIBUTES,
    types::CLIENT_ID,
    types::LARGE_INTEGER,
    types::GROUP_AFFINITY,
    types::KEVENT,
    types::KWAIT_BLOCK
);

mod mingw {
    include!(concat!(env!("OUT_DIR"), "/mingw.rs"));
}
mod wine {
    include!(concat!(env!("OUT_DIR"), "/wine.rs"));
}

/// The routines of the list each header set does not declare (the README's coverage table).
/// A routine missing from a header set and not listed here, or listed here and declared, fails.
const NOT_IN_MINGW: &[&str] = &["IoCreateSystemThread"];
const NOT_IN_WINE: &[&str] = &[
    "ObfDereferenceObject",
    "KeSetSystemGroupAffinityThread",
    "KeRevertToUserGroupAffinityThread",
    "IoCreateSystemThread",
    "KeQueryActiveGroupCount",
];

/// One structure: (size, align, [(field, offset, type)]).
type Layout = (usize, usize, Vec<(&'static str, usize, String)>);

/// The shape of a field's type, from a closure that borrows the field.
fn field_shape<S, F: shape::CType>(_: fn(&S) -> &F) -> String {
    F::shape()
}

macro_rules! layout {
    ($t:ty, [$($field:ident),*]) => {
        (
            size_of::<$t>(),
            align_of::<$t>(),
            vec![$((
                stringify!($field),
                offset_of!($t, $field),
                // SAFETY: only the field's type is used; the closure never runs (and a union
                // field's place is only borrowed).
                field_shape(|s: &$t| unsafe { &s.$field }),
            )),*],
        )
    };
}

/// The crate's structures against a header set's (module `$m`).
macro_rules! layouts {
    ($m:ident) => {
        vec![
            (
                "UNICODE_STRING",
                layout!(types::UNICODE_STRING, [Length, MaximumLength, Buffer]),
                layout!($m::UNICODE_STRING, [Length, MaximumLength, Buffer]),
            ),
            (
                "OBJECT_ATTRIBUTES",
                layout!(
                    types::OBJECT_ATTRIBUTES,
                    [
                        Length,
                        RootDirectory,
                        ObjectName,
                        Attributes,
                        SecurityDescriptor,
                        SecurityQualityOfService
                    ]
                ),
                layout!(
                    $m::OBJECT_ATTRIBUTES,
                    [
                        Length,
                        RootDirectory,
                        ObjectName,
                        Attributes,
                        SecurityDescriptor,
                        SecurityQualityOfService
                    ]
                ),
            ),
            (
                "CLIENT_ID",
                layout!(types::CLIENT_ID, [UniqueProcess, UniqueThread]),
                layout!($m::CLIENT_ID, [UniqueProcess, UniqueThread]),
            ),
            (
                "GROUP_AFFINITY",
                layout!(types::GROUP_AFFINITY, [Mask, Group, Reserved]),
                layout!($m::GROUP_AFFINITY, [Mask, Group, Reserved]),
            ),
            (
                "LARGE_INTEGER",
                layout!(types::LARGE_INTEGER, [QuadPart]),
                layout!($m::LARGE_INTEGER, [QuadPart]),
            ),
            // The crate's KWAIT_BLOCK is opaque: only its size and alignment matter (the
            // wait block array of a wait on more than THREAD_WAIT_OBJECTS objects).
            ("KWAIT_BLOCK", layout!(types::KWAIT_BLOCK, []), layout!($m::KWAIT_BLOCK, [])),
            // The crate's KEVENT is opaque: a DISPATCHER_HEADER's size and alignment.
            ("KEVENT", layout!(types::KEVENT, []), layout!($m::KEVENT, [])),
            (
                "DISPATCHER_HEADER (KEVENT.Header)",
                layout!(types::KEVENT, []),
                layout!($m::DISPATCHER_HEADER, []),
            ),
        ]
    };
}

/// The crate's constants against a header set's (module `$m`): (name, ours, theirs), the ones
/// both header sets define, then `$extra`.
macro_rules! constants {
    ($m:ident $(, $extra:expr)*) => {
        vec![
            ("OBJ_KERNEL_HANDLE", i64::from(types::OBJ_KERNEL_HANDLE),
             i64::from($m::OBJ_KERNEL_HANDLE)),
            ("THREAD_ALL_ACCESS", i64::from(types::THREAD_ALL_ACCESS),
             i64::from($m::THREAD_ALL_ACCESS)),
            ("SYNCHRONIZE", i64::from(types::SYNCHRONIZE), i64::from($m::SYNCHRONIZE)),
            ("Executive (KWAIT_REASON)", i64::from(types::EXECUTIVE),
             i64::from($m::_KWAIT_REASON::Executive.0)),
            ("NotificationEvent (EVENT_TYPE)", i64::from(types::NOTIFICATION_EVENT),
             i64::from($m::_EVENT_TYPE::NotificationEvent.0)),
            ("SynchronizationEvent (EVENT_TYPE)", i64::from(types::SYNCHRONIZATION_EVENT),
             i64::from($m::_EVENT_TYPE::SynchronizationEvent.0)),
            ("WaitAll (WAIT_TYPE)", i64::from(types::WAIT_ALL), i64::from($m::_WAIT_TYPE::WaitAll.0)),
            ("WaitAny (WAIT_TYPE)", i64::from(types::WAIT_ANY), i64::from($m::_WAIT_TYPE::WaitAny.0)),
            $($extra,)*
        ]
    };
}

struct Tally {
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        println!("  MISMATCH {what}");
        self.failures.push(what);
    }
}

fn compare_signatures(
    tally: &mut Tally,
    set: &str,
    theirs: &[(&'static str, Sig)],
    not_declared: &[&str],
) -> usize {
    println!("== signatures: the crate's list against {set}");
    let mut compared = 0;
    for (name, section, ours) in ours::routines() {
        let Some((_, sig)) = theirs.iter().find(|(n, _)| *n == name) else {
            if not_declared.contains(&name) {
                println!("  {name:<34} ({section}) not declared by {set} (expected)");
            } else {
                tally.fail(format!(
                    "{name}: not declared by {set}, and not in its list of undeclared routines"
                ));
            }
            continue;
        };
        if not_declared.contains(&name) {
            tally.fail(format!("{name}: declared by {set} but listed as undeclared"));
        }
        compared += 1;
        let mut notes = Vec::new();
        let mut ok = true;
        if ours.abi != sig.abi {
            ok = false;
            notes.push(format!("calling convention \"{}\" vs \"{}\"", ours.abi, sig.abi));
        }
        if ours.params.len() != sig.params.len() {
            ok = false;
            notes.push(format!("{} parameters vs {}", ours.params.len(), sig.params.len()));
        }
        let positions = ours.params.iter().zip(&sig.params).map(Some);
        for (i, pair) in positions.chain([None]).enumerate() {
            let (what, a, b) = match pair {
                Some((a, b)) => (format!("parameter {}", i + 1), a, b),
                None => ("return".to_string(), &ours.ret, &sig.ret),
            };
            match shape::compare(a, b) {
                Verdict::Same => {}
                Verdict::OpaqueOnOurSide => {
                    notes.push(format!("{what}: opaque pointer here, {b} there"))
                }
                Verdict::EnumSignedness => notes.push(format!("{what}: {a} here, C {b} there")),
                Verdict::ConstOnTheirSide => notes.push(format!("{what}: {a} here, {b} there")),
                Verdict::Different => {
                    ok = false;
                    notes.push(format!("{what}: {a} here, {b} there"));
                }
            }
        }
        let arity = ours.params.len();
        if ok {
            println!("  {name:<34} ok: \"{}\", {arity} params -> {}", ours.abi, ours.ret);
            for note in notes {
                println!("      note: {note}");
            }
        } else {
            tally.fail(format!("{name} against {set}: {}", notes.join("; ")));
            println!("      ours:   {ours}");
            println!("      theirs: {sig}");
        }
    }
    compared
}

fn compare_layouts(tally: &mut Tally, set: &str, layouts: Vec<(&str, Layout, Layout)>) -> usize {
    println!("== layouts against {set}");
    for (name, ours, theirs) in &layouts {
        if ours == theirs {
            let fields: Vec<_> = ours.2.iter().map(|(f, o, t)| format!("{f}@{o}: {t}")).collect();
            println!("  {name:<34} ok: {} bytes, align {}; {}", ours.0, ours.1, fields.join(" "));
        } else {
            tally.fail(format!("{name} against {set}: ours {ours:?}, theirs {theirs:?}"));
        }
    }
    layouts.len()
}

fn compare_constants(tally: &mut Tally, set: &str, constants: Vec<(&str, i64, i64)>) -> usize {
    println!("== constants against {set}");
    for (name, ours, theirs) in &constants {
        if ours == theirs {
            println!("  {name:<34} ok: {ours:#x}");
        } else {
            tally.fail(format!("{name} against {set}: ours {ours:#x}, theirs {theirs:#x}"));
        }
    }
    constants.len()
}

fn main() -> ExitCode {
    let mut tally = Tally { failures: Vec::new() };
    let total = ours::routines().len();
    println!(
        "bindings-check: {total} routines in src/sys/routines.rs; headers parsed by libclang as \
         x86_64-w64-mingw32 (clang headers: {})",
        include_str!(concat!(env!("OUT_DIR"), "/clang_include.txt"))
    );
    let mingw_sigs = compare_signatures(&mut tally, "mingw-w64", &mingw::routines(), NOT_IN_MINGW);
    let wine_sigs = compare_signatures(&mut tally, "Wine", &wine::routines(), NOT_IN_WINE);
    let mingw_layouts = compare_layouts(&mut tally, "mingw-w64", layouts!(mingw));
    let wine_layouts = compare_layouts(&mut tally, "Wine", layouts!(wine));
    let mingw_constants = compare_constants(
        &mut tally,
        "mingw-w64",
        constants!(
            mingw,
            ("PASSIVE_LEVEL", i64::from(types::PASSIVE_LEVEL), i64::from(mingw::PASSIVE_LEVEL)),
            ("APC_LEVEL", i64::from(types::APC_LEVEL), i64::from(mingw::APC_LEVEL)),
            ("DISPATCH_LEVEL", i64::from(types::DISPATCH_LEVEL), i64::from(mingw::DISPATCH_LEVEL)),
            (
                "NonPagedPoolNx (POOL_TYPE)",
                i64::from(types::NON_PAGED_POOL_NX),
                i64::from(mingw::_POOL_TYPE::NonPagedPoolNx.0)
            ),
            (
                "KernelMode (MODE)",
                i64::from(types::KERNEL_MODE),
                i64::from(mingw::_MODE::KernelMode.0)
            )
        ),
    );
    // Wine 8's headers have no IRQL names and no NonPagedPoolNx; KernelMode is a #define.
    let wine_constants = compare_constants(
        &mut tally,
        "Wine",
        constants!(
            wine,
            ("KernelMode (MODE)", i64::from(types::KERNEL_MODE), i64::from(wine::KernelMode)),
            (
                "ThreadNameInformation (THREADINFOCLASS)",
                i64::from(types::THREAD_NAME_INFORMATION),
                i64::from(wine::_THREADINFOCLASS::ThreadNameInformation.0)
            )
        ),
    );
    println!(
        "bindings-check: mingw-w64: {mingw_sigs}/{total} signatures, {mingw_layouts} layouts, \
         {mingw_constants} constants; Wine: {wine_sigs}/{total} signatures, {wine_layouts} \
         layouts, {wine_constants} constants"
    );
    if tally.failures.is_empty() {
        println!("bindings-check: no difference");
        ExitCode::SUCCESS
    } else {
        println!("bindings-check: {} difference(s):", tally.failures.len());
        for failure in &tally.failures {
            println!("  {failure}");
        }
        ExitCode::FAILURE
    }
}
