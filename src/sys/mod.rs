//! The seam between the portable implementation and the kernel.
//!
//! Everything above this module is written once against the names re-exported here: the
//! kernel routines this crate calls (named and typed exactly as in `wdk_sys::ntddk`), the
//! types they take, and a handful of constants. Exactly one provider supplies them:
//!
//! | target            | features      | provider                                             |
//! |-------------------|---------------|------------------------------------------------------|
//! | any               | `host-model`  | [`host`]: a std-based model of the same routines     |
//! | Windows           | `wdk` (default), in a WDM/KMDF driver build | [`wdk`]: wdk-sys bindings |
//! | Windows           | otherwise     | [`ntoskrnl`]: own raw-dylib imports of ntoskrnl.exe  |
//! | anything else     | any           | [`host`]                                             |
//!
//! This is the only module of the crate that contains `cfg` switches.

#[macro_use]
mod routines;
mod types;

// `host-model` wins on every target; on Windows, wdk-sys serves when wdk-build configured a
// WDM or KMDF driver (the cfg gating wdk-sys's `ntddk`), else the raw-dylib imports do.
#[cfg(any(feature = "host-model", not(windows)))]
pub(crate) mod host;
#[cfg(any(feature = "host-model", not(windows)))]
use host as provider;

#[cfg(all(windows, not(feature = "host-model")))]
mod ntoskrnl;
#[cfg(all(
    windows,
    not(feature = "host-model"),
    not(all(
        feature = "wdk",
        any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF")
    ))
))]
use ntoskrnl as provider;

#[cfg(all(
    windows,
    not(feature = "host-model"),
    feature = "wdk",
    any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF")
))]
mod wdk;
#[cfg(all(
    windows,
    not(feature = "host-model"),
    feature = "wdk",
    any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF")
))]
use wdk as provider;

#[cfg(all(
    windows,
    not(feature = "host-model"),
    feature = "wdk",
    any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF")
))]
mod verify;

pub(crate) use provider::{
    CLIENT_ID, EXECUTIVE, ExFreePoolWithTag, GROUP_AFFINITY, HANDLE, KERNEL_MODE, KEVENT,
    KWAIT_BLOCK, KeClearEvent, KeDelayExecutionThread, KeInitializeEvent, KeSetEvent,
    KeSetPriorityThread, KeWaitForMultipleObjects, KeWaitForSingleObject, LARGE_INTEGER,
    MmGetSystemRoutineAddress, NOTIFICATION_EVENT, NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES,
    ObReferenceObjectByHandle, ObfDereferenceObject, PVOID, PsCreateSystemThread,
    PsGetCurrentThreadId, SYNCHRONIZATION_EVENT, THREAD_ALL_ACCESS, THREAD_NAME_INFORMATION,
    UNICODE_STRING, WAIT_ALL, WAIT_ANY, ZwClose, ZwSetInformationThread, ZwWaitForSingleObject,
    ZwYieldExecution, allocate_pool, current_irql, optional,
};
pub(crate) use routines::kernel_routines;
pub(crate) use types::{
    ALL_PROCESSOR_GROUPS, MAXIMUM_WAIT_OBJECTS, STATUS_WAIT_0, THREAD_WAIT_OBJECTS,
};

/// `kernel_routines!` callback: the names of the optional routines.
macro_rules! optional_names {
    (
        static { $($static:tt)* }
        own { $($own:tt)* }
        optional { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
    ) => {
        /// The routines resolved at run time with `MmGetSystemRoutineAddress`.
        pub(crate) const OPTIONAL_ROUTINES: &[&str] = &[$(stringify!($name)),*];
    };
}
kernel_routines!(optional_names);

/// The index of the optional routine `name` in `OPTIONAL_ROUTINES`, for use in constants: the
/// comparison runs at compile time, never in the driver. A name that is not listed does not
/// compile.
#[allow(clippy::panic)] // evaluated only in constants: a compile error, never a run-time panic
pub(crate) const fn optional_index(name: &str) -> usize {
    let mut rest = OPTIONAL_ROUTINES;
    let mut index = 0;
    while let [listed, tail @ ..] = rest {
        if same_bytes(listed.as_bytes(), name.as_bytes()) {
            return index;
        }
        rest = tail;
        index += 1;
    }
    panic!("system-thread: not an optional routine of sys/routines.rs")
}

/// `a == b`, in constants.
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    match (a, b) {
        ([x, a @ ..], [y, b @ ..]) => *x == *y && same_bytes(a, b),
        ([], []) => true,
        _ => false,
    }
}

#[cfg(all(windows, not(feature = "host-model")))]
mod kernel_state {
    use core::ffi::c_void;
    use core::ptr::{self, NonNull};
    use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    use super::OPTIONAL_ROUTINES;

    /// Per optional routine: NULL (not looked up yet), `ABSENT`, or its address.
    static ROUTINES: [AtomicPtr<c_void>; OPTIONAL_ROUTINES.len()] =
        [const { AtomicPtr::new(ptr::null_mut()) }; OPTIONAL_ROUTINES.len()];
    /// Never a routine's address (no code lives at address 1).
    const ABSENT: *mut c_void = ptr::dangling_mut();
    static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

    /// The optional routine `index` (of `OPTIONAL_ROUTINES`), resolved once with `resolve`.
    /// Two threads may both resolve it; both store the same answer.
    pub(crate) fn cached_routine(
        index: usize,
        _name: &'static str,
        resolve: impl FnOnce() -> Option<NonNull<c_void>>,
    ) -> Option<NonNull<c_void>> {
        let slot = ROUTINES.get(index)?;
        let cached = slot.load(Ordering::Acquire);
        if cached == ABSENT {
            return None;
        }
        if let Some(address) = NonNull::new(cached) {
            return Some(address);
        }
        let resolved = resolve();
        slot.store(resolved.map_or(ABSENT, NonNull::as_ptr), Ordering::Release);
        resolved
    }

    /// The driver's count of live threads.
    pub(crate) fn live_threads<R>(f: impl FnOnce(&AtomicUsize) -> R) -> R {
        f(&LIVE_THREADS)
    }
}
#[cfg(any(feature = "host-model", not(windows)))]
pub(crate) use host::{cached_routine, live_threads};
#[cfg(all(windows, not(feature = "host-model")))]
pub(crate) use kernel_state::{cached_routine, live_threads};

/// `STATUS_TIMEOUT`: a wait's timeout expired.
pub(crate) const STATUS_TIMEOUT: NTSTATUS = 0x102;
/// `STATUS_SUCCESS`.
pub(crate) const STATUS_SUCCESS: NTSTATUS = 0;

/// The host model, public when the `host-model` feature is on (on every target).
pub mod public {
    #[cfg(feature = "host-model")]
    pub use super::host::model as host;
}
