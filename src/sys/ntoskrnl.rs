//! Provider 2: the crate's own imports of ntoskrnl.exe, for Windows targets built without the
//! WDK (any build host: rustup target + rust-lld, no import library).
#![allow(non_snake_case, clippy::upper_case_acronyms, dead_code)]

pub(crate) use super::types::*;

/// `kernel_routines!` callback: the `static` and `own` routines as raw-dylib imports.
macro_rules! declare_imports {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $(fn $own:ident($($own_arg:ident: $own_ty:ty),* $(,)?) $(-> $own_ret:ty)?;)* }
        optional { $($optional:tt)* }
    ) => {
        #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
        unsafe extern "C" {
            $(pub fn $name($($arg: $ty),*) $(-> $ret)?;)*
            $(pub fn $own($($own_arg: $own_ty),*) $(-> $own_ret)?;)*
        }
    };
}
super::routines::kernel_routines!(declare_imports);

/// The function pointer types of the optional routines.
pub(crate) mod optional {
    #[allow(clippy::wildcard_imports)]
    use super::*;
    super::super::routines::kernel_routines!(super::super::routines::optional_fn_types);
}

/// Allocates non-paged, non-executable pool: `ExAllocatePoolWithTag(NonPagedPoolNx)`, which
/// every Windows version since 8 and Wine export (`ExAllocatePool2` needs Windows 10 2004).
///
/// # Safety
/// IRQL <= `DISPATCH_LEVEL`.
#[inline]
pub unsafe fn allocate_pool(size: usize, tag: u32) -> PVOID {
    // SAFETY: forwarded under this function's contract; usize and SIZE_T have the same width.
    unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size as SIZE_T, tag) }
}

/// The current IRQL. On x86-64 this is CR8, which is what the WDK headers' inline
/// `KeGetCurrentIrql` reads (and what works where the export is missing, as in Wine).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn current_irql() -> KIRQL {
    let cr8: u64;
    // SAFETY: reading CR8 has no side effects; kernel code runs at CPL 0 where it is permitted.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags));
    }
    // CR8 holds the task priority class in bits 0..4; the truncation is exact.
    #[allow(clippy::cast_possible_truncation)]
    let irql = cr8 as KIRQL;
    irql
}

#[cfg(not(target_arch = "x86_64"))]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    fn KeGetCurrentIrql() -> KIRQL;
}

/// The current IRQL, from ntoskrnl's `KeGetCurrentIrql`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn current_irql() -> KIRQL {
    // SAFETY: KeGetCurrentIrql has no preconditions and may be called at any IRQL.
    unsafe { KeGetCurrentIrql() }
}
