//! Compile-time proof, on a Windows host with wdk-sys, that the `ntoskrnl` provider's own
//! declarations have exactly the wdk-sys signatures: the one routine list is instantiated once
//! with wdk-sys's type names against `wdk_sys::ntddk`, once with the crate's own type names
//! against `ntoskrnl`, and every own type is checked to be the wdk-sys type (scalars and
//! pointers to scalars) or to have its layout, field by field (structures).
#![allow(non_snake_case, clippy::upper_case_acronyms)]

use core::mem::{align_of, offset_of, size_of};

use super::{ntoskrnl as own, types};
use crate::status::NtStatus;

/// `kernel_routines!` callback: every signature of the list, against wdk-sys and against the
/// crate's own declarations.
macro_rules! assert_signatures {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $(fn $own:ident($($own_arg:ident: $own_ty:ty),* $(,)?) $(-> $own_ret:ty)?;)* }
        optional { $(fn $opt:ident($($opt_arg:ident: $opt_ty:ty),* $(,)?) $(-> $opt_ret:ty)?;)* }
    ) => {
        mod against_wdk_sys {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use wdk_sys::*;
            $(const _: unsafe extern "C" fn($($ty),*) $(-> $ret)? = wdk_sys::ntddk::$name;)*
            $(const _: unsafe extern "C" fn($($opt_ty),*) $(-> $opt_ret)? = wdk_sys::ntddk::$opt;)*
            // The optional routines' pointer types are exactly the bound functions' types.
            $(const _: super::super::optional::$opt = wdk_sys::ntddk::$opt;)*
        }
        mod against_own {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use super::own::*;
            $(const _: unsafe extern "C" fn($($ty),*) $(-> $ret)? = super::own::$name;)*
            $(const _: unsafe extern "C" fn($($own_ty),*) $(-> $own_ret)? = super::own::$own;)*
        }
    };
}
kernel_routines!(assert_signatures);

/// The same scalar (or pointer-to-scalar) type on both sides.
macro_rules! same_type {
    ($($t:ident),* $(,)?) => {
        $(const _: fn(types::$t) -> wdk_sys::$t = |x| x;)*
    };
}
same_type!(
    NTSTATUS,
    PVOID,
    HANDLE,
    PHANDLE,
    ULONG,
    USHORT,
    LONG,
    LONG_PTR,
    SIZE_T,
    BOOLEAN,
    KIRQL,
    KPRIORITY,
    ACCESS_MASK,
    KAFFINITY,
    KPROCESSOR_MODE,
    KWAIT_REASON,
    EVENT_TYPE,
    THREADINFOCLASS,
    WAIT_TYPE,
    PWCH,
    PKSTART_ROUTINE,
);

/// Pointers to opaque kernel objects: same size (what the ABI passes).
macro_rules! same_size {
    ($($t:ident),* $(,)?) => {
        $(const _: () = assert!(size_of::<types::$t>() == size_of::<wdk_sys::$t>());)*
    };
}
same_size!(PKTHREAD, POBJECT_TYPE, POBJECT_HANDLE_INFORMATION, PKWAIT_BLOCK);

/// Structures: same size, alignment and field offsets.
macro_rules! same_layout {
    ($own:ty, $theirs:ty, [$($field:ident),*]) => {
        const _: () = assert!(size_of::<$own>() == size_of::<$theirs>());
        const _: () = assert!(align_of::<$own>() == align_of::<$theirs>());
        $(const _: () = assert!(offset_of!($own, $field) == offset_of!($theirs, $field));)*
    };
}
same_layout!(types::UNICODE_STRING, wdk_sys::UNICODE_STRING, [Length, MaximumLength, Buffer]);
same_layout!(
    types::OBJECT_ATTRIBUTES,
    wdk_sys::OBJECT_ATTRIBUTES,
    [Length, RootDirectory, ObjectName, Attributes, SecurityDescriptor, SecurityQualityOfService]
);
same_layout!(types::CLIENT_ID, wdk_sys::CLIENT_ID, [UniqueProcess, UniqueThread]);
same_layout!(types::GROUP_AFFINITY, wdk_sys::GROUP_AFFINITY, [Mask, Group, Reserved]);
same_layout!(types::LARGE_INTEGER, wdk_sys::LARGE_INTEGER, [QuadPart]);
same_layout!(own::KEVENT, wdk_sys::KEVENT, []);
same_layout!(types::KWAIT_BLOCK, wdk_sys::KWAIT_BLOCK, []);

// `KeGetCurrentIrql`, which the wdk provider calls on ARM64 (and the raw-dylib one declares so).
const _: unsafe extern "C" fn() -> types::KIRQL = wdk_sys::ntddk::KeGetCurrentIrql;

// The constants the `ntoskrnl` provider defines itself.
const _: () = assert!(types::OBJ_KERNEL_HANDLE == wdk_sys::OBJ_KERNEL_HANDLE);
const _: () = assert!(types::THREAD_ALL_ACCESS == wdk_sys::THREAD_ALL_ACCESS);
const _: () = assert!(types::PASSIVE_LEVEL == wdk_sys::PASSIVE_LEVEL);
const _: () = assert!(types::APC_LEVEL == wdk_sys::APC_LEVEL);
const _: () = assert!(types::DISPATCH_LEVEL == wdk_sys::DISPATCH_LEVEL);
const _: () = assert!(types::NON_PAGED_POOL_NX == wdk_sys::_POOL_TYPE::NonPagedPoolNx);
const _: () = assert!(types::EXECUTIVE == wdk_sys::_KWAIT_REASON::Executive);
const _: () = assert!(types::KERNEL_MODE as i32 == wdk_sys::_MODE::KernelMode);
const _: () = assert!(types::NOTIFICATION_EVENT == wdk_sys::_EVENT_TYPE::NotificationEvent);
const _: () = assert!(types::SYNCHRONIZATION_EVENT == wdk_sys::_EVENT_TYPE::SynchronizationEvent);
const _: () = assert!(types::WAIT_ALL == wdk_sys::_WAIT_TYPE::WaitAll);
const _: () = assert!(types::WAIT_ANY == wdk_sys::_WAIT_TYPE::WaitAny);
const _: () = assert!(types::THREAD_WAIT_OBJECTS == wdk_sys::THREAD_WAIT_OBJECTS);
const _: () = assert!(types::MAXIMUM_WAIT_OBJECTS == wdk_sys::MAXIMUM_WAIT_OBJECTS);
const _: () = assert!(types::STATUS_WAIT_0 == wdk_sys::STATUS_WAIT_0);
const _: () = assert!(types::ALL_PROCESSOR_GROUPS as u32 == wdk_sys::ALL_PROCESSOR_GROUPS);

// The crate's NTSTATUS values: `NtStatus`'s constants and the provider-level ones of `sys`.
macro_rules! same_status {
    ($($ours:expr => $theirs:ident),* $(,)?) => {
        $(const _: () = assert!($ours == wdk_sys::$theirs);)*
    };
}
same_status!(
    NtStatus::SUCCESS.0 => STATUS_SUCCESS,
    NtStatus::TIMEOUT.0 => STATUS_TIMEOUT,
    NtStatus::UNSUCCESSFUL.0 => STATUS_UNSUCCESSFUL,
    NtStatus::INSUFFICIENT_RESOURCES.0 => STATUS_INSUFFICIENT_RESOURCES,
    NtStatus::NOT_SUPPORTED.0 => STATUS_NOT_SUPPORTED,
    NtStatus::INVALID_PARAMETER.0 => STATUS_INVALID_PARAMETER,
    NtStatus::INVALID_HANDLE.0 => STATUS_INVALID_HANDLE,
    NtStatus::ACCESS_DENIED.0 => STATUS_ACCESS_DENIED,
    NtStatus::INVALID_INFO_CLASS.0 => STATUS_INVALID_INFO_CLASS,
    super::STATUS_SUCCESS => STATUS_SUCCESS,
    super::STATUS_TIMEOUT => STATUS_TIMEOUT,
);
