//! Provider 1 (default): kernel calls through wdk-sys, for builds on a Windows host with the
//! WDK. Types, routines and constants are wdk-sys's own; `verify` proves that the `ntoskrnl`
//! declarations match them.
#![allow(non_snake_case)]

/// `kernel_routines!` callback: the `static` routines, as wdk-sys binds them.
macro_rules! reexport_static {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $($own:tt)* }
        optional { $($optional:tt)* }
    ) => {
        pub(crate) use wdk_sys::ntddk::{$($name),*};
    };
}
super::routines::kernel_routines!(reexport_static);

/// The function pointer types of the optional routines, in wdk-sys's types.
pub(crate) mod optional {
    #[allow(clippy::wildcard_imports)]
    use wdk_sys::*;
    super::super::routines::kernel_routines!(super::super::routines::optional_fn_types);
}

pub(crate) use wdk_sys::{
    CLIENT_ID, GROUP_AFFINITY, HANDLE, KEVENT, KWAIT_BLOCK, LARGE_INTEGER, NTSTATUS,
    OBJECT_ATTRIBUTES, PVOID, UNICODE_STRING,
};

// `ZwYieldExecution` is exported by ntoskrnl.exe but declared in no WDK header, so wdk-sys has
// no binding: the crate's own raw-dylib import is the one kernel routine a wdk build imports
// outside wdk-sys.
pub(crate) use super::ntoskrnl::ZwYieldExecution;

// On x64 the IRQL is CR8, as the WDK headers' inline `KeGetCurrentIrql` reads it: no import.
#[cfg(target_arch = "x86_64")]
pub(crate) use super::ntoskrnl::current_irql;

/// The current IRQL, from wdk-sys's `KeGetCurrentIrql` (an import from the WDK's ntoskrnl.lib,
/// not a raw-dylib one).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn current_irql() -> wdk_sys::KIRQL {
    // SAFETY: KeGetCurrentIrql has no preconditions and may be called at any IRQL.
    unsafe { wdk_sys::ntddk::KeGetCurrentIrql() }
}

pub(crate) const OBJ_KERNEL_HANDLE: u32 = wdk_sys::OBJ_KERNEL_HANDLE;
pub(crate) const THREAD_ALL_ACCESS: u32 = wdk_sys::THREAD_ALL_ACCESS;
pub(crate) const EXECUTIVE: wdk_sys::KWAIT_REASON = wdk_sys::_KWAIT_REASON::Executive;
#[allow(clippy::cast_possible_truncation)] // KernelMode is 0
pub(crate) const KERNEL_MODE: wdk_sys::KPROCESSOR_MODE =
    wdk_sys::_MODE::KernelMode as wdk_sys::KPROCESSOR_MODE;
pub(crate) const NOTIFICATION_EVENT: wdk_sys::EVENT_TYPE = wdk_sys::_EVENT_TYPE::NotificationEvent;
pub(crate) const SYNCHRONIZATION_EVENT: wdk_sys::EVENT_TYPE =
    wdk_sys::_EVENT_TYPE::SynchronizationEvent;
pub(crate) const WAIT_ALL: wdk_sys::WAIT_TYPE = wdk_sys::_WAIT_TYPE::WaitAll;
pub(crate) const WAIT_ANY: wdk_sys::WAIT_TYPE = wdk_sys::_WAIT_TYPE::WaitAny;
/// `ThreadNameInformation` is missing from the public `THREADINFOCLASS` enum of the WDK.
pub(crate) const THREAD_NAME_INFORMATION: wdk_sys::THREADINFOCLASS = 38;

/// Allocates non-paged, non-executable, uninitialized pool with `ExAllocatePool2` (wdk-sys
/// blocklists `ExAllocatePoolWithTag`; WDK users target Windows 10 2004 or later).
///
/// # Safety
/// IRQL <= `DISPATCH_LEVEL`.
#[inline]
pub(crate) unsafe fn allocate_pool(size: usize, tag: u32) -> PVOID {
    // SAFETY: forwarded under this function's contract; usize and SIZE_T have the same width.
    unsafe {
        wdk_sys::ntddk::ExAllocatePool2(
            wdk_sys::POOL_FLAG_NON_PAGED | wdk_sys::POOL_FLAG_UNINITIALIZED,
            size as wdk_sys::SIZE_T,
            tag,
        )
    }
}
