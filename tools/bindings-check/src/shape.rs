//! Descriptions of C types as an ABI sees them: integer width and signedness, pointers (with
//! what they point to), function pointers (ABI, parameters, return), C enums. Both sides of a
//! comparison are real Rust types, resolved by rustc: the crate's declarations and the bindgen
//! output.
use core::ffi::c_void;
use core::mem::{align_of, size_of};

/// A parameter or return type.
pub trait CType {
    fn shape() -> String;
}

/// What a pointer points to: `opaque` for `void` and incomplete C types, else the type's shape.
pub trait Pointee {
    fn pointee() -> String;
}

/// A structure or union behind a pointer: its size and alignment (field offsets are compared
/// separately, for the structures the crate defines).
pub fn record<T>() -> String {
    format!("record of {} bytes, align {}", size_of::<T>(), align_of::<T>())
}

macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl CType for $t {
            fn shape() -> String { stringify!($t).into() }
        }
        impl Pointee for $t {
            fn pointee() -> String { stringify!($t).into() }
        }
    )*};
}
scalars!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

impl CType for () {
    fn shape() -> String {
        "void".into()
    }
}

impl Pointee for c_void {
    fn pointee() -> String {
        "opaque".into()
    }
}

impl<T: Pointee + ?Sized> CType for *mut T {
    fn shape() -> String {
        format!("*mut {}", T::pointee())
    }
}
impl<T: Pointee + ?Sized> CType for *const T {
    fn shape() -> String {
        format!("*const {}", T::pointee())
    }
}
impl<T: Pointee + ?Sized> Pointee for *mut T {
    fn pointee() -> String {
        format!("*mut {}", T::pointee())
    }
}
impl<T: Pointee + ?Sized> Pointee for *const T {
    fn pointee() -> String {
        format!("*const {}", T::pointee())
    }
}

impl<T: CType, const N: usize> CType for [T; N] {
    fn shape() -> String {
        format!("[{}; {N}]", T::shape())
    }
}

/// A nullable function pointer (`PKSTART_ROUTINE`).
impl<F: FnPtr> CType for Option<F> {
    fn shape() -> String {
        format!("nullable fn {}", F::sig())
    }
}

/// A routine's signature: calling convention, parameter types, return type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Sig {
    pub abi: &'static str,
    pub params: Vec<String>,
    pub ret: String,
}

impl core::fmt::Display for Sig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "extern \"{}\" ({}) -> {}", self.abi, self.params.join(", "), self.ret)
    }
}

/// Function pointer types of the calling conventions a Windows kernel declaration can have.
pub trait FnPtr {
    fn sig() -> Sig;
}

macro_rules! fn_ptrs {
    ($($p:ident),*) => {
        impl<R: CType, $($p: CType),*> FnPtr for unsafe extern "C" fn($($p),*) -> R {
            fn sig() -> Sig {
                Sig { abi: "C", params: vec![$($p::shape()),*], ret: R::shape() }
            }
        }
        impl<R: CType, $($p: CType),*> FnPtr for unsafe extern "system" fn($($p),*) -> R {
            fn sig() -> Sig {
                Sig { abi: "system", params: vec![$($p::shape()),*], ret: R::shape() }
            }
        }
    };
}
fn_ptrs!();
fn_ptrs!(A);
fn_ptrs!(A, B);
fn_ptrs!(A, B, C);
fn_ptrs!(A, B, C, D);
fn_ptrs!(A, B, C, D, E);
fn_ptrs!(A, B, C, D, E, F);
fn_ptrs!(A, B, C, D, E, F, G);
fn_ptrs!(A, B, C, D, E, F, G, H);
fn_ptrs!(A, B, C, D, E, F, G, H, I);
fn_ptrs!(A, B, C, D, E, F, G, H, I, J);

/// How the crate's type compares with a header's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Same,
    /// The crate passes an opaque pointer (`*mut c_void`) where the header points to a known
    /// type: same ABI, the crate never dereferences it.
    OpaqueOnOurSide,
    /// A pointer the crate declares `*mut` where the header points to `const` data (Wine's
    /// `const LARGE_INTEGER *`, `const void *`): same ABI; the WDK's prototypes are not `const`.
    ConstOnTheirSide,
    /// A C enum against a 32-bit integer of the other signedness: mingw-w64 and Wine are parsed
    /// as GNU C, where an enum without negative values is `unsigned int`; MSVC (the WDK) makes
    /// every enum `int`. Same size and register, and the values the crate passes are small.
    EnumSignedness,
    Different,
}

/// Compares one of the crate's types (`ours`) with a header's (`theirs`).
pub fn compare(ours: &str, theirs: &str) -> Verdict {
    if ours == theirs {
        return Verdict::Same;
    }
    if let (Some(ours_pointee), Some(theirs_pointee)) =
        (ours.strip_prefix("*mut "), theirs.strip_prefix("*const "))
    {
        if ours_pointee == theirs_pointee {
            return Verdict::ConstOnTheirSide;
        }
    }
    if let Some(theirs_pointee) = theirs.strip_prefix("*mut ") {
        if ours == "*mut opaque" && theirs_pointee.starts_with("record of ") {
            return Verdict::OpaqueOnOurSide;
        }
    }
    if let Some(inner) = theirs.strip_prefix("enum ") {
        let same_width = matches!((ours, inner), ("i32" | "u32", "i32" | "u32"));
        if same_width {
            return Verdict::EnumSignedness;
        }
    }
    Verdict::Different
}
