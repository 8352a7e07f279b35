//! A stand-in for wdk-sys 0.5.2: only the items system-thread uses, restated (not copied) with
//! the shapes bindgen generates from the WDK 10.0.22621 headers (ModuleConsts enums,
//! `unsafe extern "C"` functions, `#[must_use]` on functions returning NTSTATUS). It lets
//! `cargo make check-wdk` type-check the wdk provider and its compile-time checks
//! (src/sys/verify.rs) on a host without the WDK; it proves consistency with these shapes, not
//! a build against a real WDK.
//!
//! Where each item comes from (the comment above it):
//! - `G/ntddk.rs:N`, `G/constants.rs:N`: line N of the bindings that windows-drivers-rs
//!   generated against WDK 22621 and committed at d9fcaa21
//!   (`crates/wdk-sys/generated_bindings/`, bindgen 0.69.4, x64). `tools/bindings/
//!   compare_generated.py` compares every function and constant below with those files.
//! - `T@N`: the same generator's `types.rs`, near character offset N. d9fcaa21's own types.rs
//!   (6.8 MB) is in no stored snapshot; these facts were read from the copy regenerated with
//!   the same bindgen and WDK in the fork CotCatalin15/windows-drivers-rs (commit abd9b34e,
//!   which adds fltKernel.h to the inputs). Not compared by a script.
//! - `W/constants.rs:N`: wdk-sys 0.5.2's own `src/constants.rs` (hand-written there: bindgen
//!   cannot evaluate the WDK's `((NTSTATUS)0xC0000001L)` casts or `UI64` suffixes).
//! - `not located`: not found in the stored types.rs; the shape follows bindgen's rules for the
//!   WDK declaration, and its layout is checked against mingw-w64 and Wine by
//!   `cargo make bindings`.
//!
//! The generated file spells C types as `::core::ffi::c_long` etc.; on Windows targets those are
//! the same Rust types as below (`c_long` = i32, `c_ulong` = u32, `c_char` = i8).
//!
//! Like wdk-sys 0.5.2, it binds nothing unless the `driver_model__driver_type` cfg is set (which
//! wdk-build does in a driver build, from `[package.metadata.wdk.driver-model]`): the types and
//! constants exist for WDM, KMDF and UMDF, the `ntddk` functions for WDM and KMDF only.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

#[cfg(any(
    driver_model__driver_type = "WDM",
    driver_model__driver_type = "KMDF",
    driver_model__driver_type = "UMDF"
))]
pub use crate::types::*;

#[cfg(any(
    driver_model__driver_type = "WDM",
    driver_model__driver_type = "KMDF",
    driver_model__driver_type = "UMDF"
))]
mod types {
    use core::ffi::{c_char, c_long, c_longlong, c_uchar, c_ulong, c_ulonglong, c_ushort, c_void};

    // T@14000-16500 (basetsd.h and ntdef.h scalars).
    pub type LONG_PTR = c_longlong;
    pub type ULONG_PTR = c_ulonglong;
    pub type SIZE_T = ULONG_PTR;
    pub type ULONG64 = c_ulonglong;
    pub type KAFFINITY = ULONG_PTR;
    pub type PVOID = *mut c_void;
    pub type LONG = c_long;
    // T@4500.
    pub type wchar_t = c_ushort;
    // T@16500.
    pub type WCHAR = wchar_t;
    pub type PWCH = *mut WCHAR;
    // T@24500.
    pub type UCHAR = c_uchar;
    pub type USHORT = c_ushort;
    pub type ULONG = c_ulong;
    // T@26500.
    pub type HANDLE = *mut c_void;
    pub type PHANDLE = *mut HANDLE;
    pub type CCHAR = c_char;
    pub type NTSTATUS = LONG;
    // T@28000.
    pub type LONGLONG = c_longlong;
    // T@44000 (after _UNICODE_STRING).
    pub type BOOLEAN = UCHAR;
    // T@75000.
    pub type KIRQL = UCHAR;
    // T@101000.
    pub type KPRIORITY = LONG;
    // T@127000.
    pub type ACCESS_MASK = ULONG;
    // T@615000.
    pub type POOL_FLAGS = ULONG64;
    // T@647000.
    pub type KPROCESSOR_MODE = CCHAR;

    // T@77000: incomplete types; PETHREAD is a `_KTHREAD` pointer there too.
    #[repr(C)]
    pub struct _KTHREAD {
        _unused: [u8; 0],
    }
    pub type PETHREAD = *mut _KTHREAD;
    pub type PKTHREAD = *mut _KTHREAD;
    #[repr(C)]
    pub struct _OBJECT_TYPE {
        _unused: [u8; 0],
    }
    pub type POBJECT_TYPE = *mut _OBJECT_TYPE;

    // not located (wdm.h: `typedef struct _OBJECT_HANDLE_INFORMATION {...}
    // OBJECT_HANDLE_INFORMATION, *POBJECT_HANDLE_INFORMATION;`).
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct _OBJECT_HANDLE_INFORMATION {
        pub HandleAttributes: ULONG,
        pub GrantedAccess: ACCESS_MASK,
    }
    pub type OBJECT_HANDLE_INFORMATION = _OBJECT_HANDLE_INFORMATION;
    pub type POBJECT_HANDLE_INFORMATION = *mut _OBJECT_HANDLE_INFORMATION;

    // T@44000: 16 bytes, align 8; Length@0, MaximumLength@2, Buffer@8.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _UNICODE_STRING {
        pub Length: USHORT,
        pub MaximumLength: USHORT,
        pub Buffer: PWCH,
    }
    pub type UNICODE_STRING = _UNICODE_STRING;
    pub type PUNICODE_STRING = *mut UNICODE_STRING;

    // T@69000: 48 bytes, align 8; fields at 0, 8, 16, 24, 32, 40.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _OBJECT_ATTRIBUTES {
        pub Length: ULONG,
        pub RootDirectory: HANDLE,
        pub ObjectName: PUNICODE_STRING,
        pub Attributes: ULONG,
        pub SecurityDescriptor: PVOID,
        pub SecurityQualityOfService: PVOID,
    }
    pub type OBJECT_ATTRIBUTES = _OBJECT_ATTRIBUTES;
    pub type POBJECT_ATTRIBUTES = *mut OBJECT_ATTRIBUTES;

    // not located (wdm.h `_CLIENT_ID`); layout checked against mingw-w64 and Wine.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _CLIENT_ID {
        pub UniqueProcess: HANDLE,
        pub UniqueThread: HANDLE,
    }
    pub type CLIENT_ID = _CLIENT_ID;
    pub type PCLIENT_ID = *mut CLIENT_ID;

    // T@29000-33000: a union of two identical anonymous structs (the second named `u`) and
    // QuadPart; 8 bytes, align 8.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _LARGE_INTEGER__bindgen_ty_1 {
        pub LowPart: ULONG,
        pub HighPart: LONG,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _LARGE_INTEGER__bindgen_ty_2 {
        pub LowPart: ULONG,
        pub HighPart: LONG,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub union _LARGE_INTEGER {
        pub __bindgen_anon_1: _LARGE_INTEGER__bindgen_ty_1,
        pub u: _LARGE_INTEGER__bindgen_ty_2,
        pub QuadPart: LONGLONG,
    }
    pub type LARGE_INTEGER = _LARGE_INTEGER;
    pub type PLARGE_INTEGER = *mut LARGE_INTEGER;

    // T@25000: 16 bytes, align 8; Mask@0, Group@8, Reserved@10.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _GROUP_AFFINITY {
        pub Mask: KAFFINITY,
        pub Group: USHORT,
        pub Reserved: [USHORT; 3],
    }
    pub type GROUP_AFFINITY = _GROUP_AFFINITY;
    pub type PGROUP_AFFINITY = *mut _GROUP_AFFINITY;

    // T@45000.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _LIST_ENTRY {
        pub Flink: *mut _LIST_ENTRY,
        pub Blink: *mut _LIST_ENTRY,
    }
    pub type LIST_ENTRY = _LIST_ENTRY;

    // T@667000: a union of seven anonymous members (4 bytes, align 4), SignalState@4,
    // WaitListHead@8; 24 bytes, align 8 (T@714000). Only the union's first member, `Lock` and
    // `LockNV` (T@668000), is restated.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub union _DISPATCHER_HEADER__bindgen_ty_1__bindgen_ty_1 {
        pub Lock: LONG,
        pub LockNV: LONG,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub union _DISPATCHER_HEADER__bindgen_ty_1 {
        pub __bindgen_anon_1: _DISPATCHER_HEADER__bindgen_ty_1__bindgen_ty_1,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _DISPATCHER_HEADER {
        pub __bindgen_anon_1: _DISPATCHER_HEADER__bindgen_ty_1,
        pub SignalState: LONG,
        pub WaitListHead: LIST_ENTRY,
    }
    pub type DISPATCHER_HEADER = _DISPATCHER_HEADER;

    // T@716000: 24 bytes, align 8.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _KEVENT {
        pub Header: DISPATCHER_HEADER,
    }
    pub type KEVENT = _KEVENT;
    pub type PKEVENT = *mut _KEVENT;
    pub type PRKEVENT = *mut _KEVENT;

    // T@792000.
    pub type KSTART_ROUTINE = Option<unsafe extern "C" fn(StartContext: PVOID)>;
    pub type PKSTART_ROUTINE = KSTART_ROUTINE;

    // T@786000 (42 reasons; Executive is the first).
    pub mod _KWAIT_REASON {
        pub type Type = ::core::ffi::c_int;
        pub const Executive: Type = 0;
    }
    pub use self::_KWAIT_REASON::Type as KWAIT_REASON;
    // T@647000.
    pub mod _MODE {
        pub type Type = ::core::ffi::c_int;
        pub const KernelMode: Type = 0;
        pub const UserMode: Type = 1;
        pub const MaximumMode: Type = 2;
    }
    pub use self::_MODE::Type as MODE;
    // T@40000.
    pub mod _EVENT_TYPE {
        pub type Type = ::core::ffi::c_int;
        pub const NotificationEvent: Type = 0;
        pub const SynchronizationEvent: Type = 1;
    }
    pub use self::_EVENT_TYPE::Type as EVENT_TYPE;
    // not located (the enum's `pub use` is at T@615000); NonPagedPoolNx = 512 is checked
    // against mingw-w64.
    pub mod _POOL_TYPE {
        pub type Type = ::core::ffi::c_int;
        pub const NonPagedPoolNx: Type = 512;
    }
    pub use self::_POOL_TYPE::Type as POOL_TYPE;
    // not located (ntddk.h); the WDK's public enum lacks ThreadNameInformation (38).
    pub mod _THREADINFOCLASS {
        pub type Type = ::core::ffi::c_int;
        pub const ThreadPriority: Type = 2;
    }
    pub use self::_THREADINFOCLASS::Type as THREADINFOCLASS;
    // not located (wdm.h `WAIT_TYPE`); WaitAll/WaitAny are checked against mingw-w64 and Wine.
    pub mod _WAIT_TYPE {
        pub type Type = ::core::ffi::c_int;
        pub const WaitAll: Type = 0;
        pub const WaitAny: Type = 1;
    }
    pub use self::_WAIT_TYPE::Type as WAIT_TYPE;
    // not located (wdm.h `_KWAIT_BLOCK`, 0x30 bytes on x64); its size is checked against
    // mingw-w64 and Wine.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct _KWAIT_BLOCK {
        pub WaitListEntry: [u64; 2],
        pub WaitType: UCHAR,
        pub BlockState: UCHAR,
        pub WaitKey: USHORT,
        pub SpareLong: LONG,
        pub Thread: PVOID,
        pub Object: PVOID,
        pub SparePtr: PVOID,
    }
    pub type KWAIT_BLOCK = _KWAIT_BLOCK;
    pub type PKWAIT_BLOCK = *mut _KWAIT_BLOCK;
    // G/constants.rs:1990, 873, 55.
    pub const THREAD_WAIT_OBJECTS: u32 = 3;
    pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;
    pub const ALL_PROCESSOR_GROUPS: u32 = 65535;
    // W/constants.rs:2730.
    pub const STATUS_WAIT_0: NTSTATUS = 0;

    // G/constants.rs:72, 1399, 914.
    pub const OBJ_KERNEL_HANDLE: u32 = 512;
    pub const THREAD_ALL_ACCESS: u32 = 2097151;
    pub const SYNCHRONIZE: u32 = 1048576;
    // G/constants.rs:47, 46, 45.
    pub const PASSIVE_LEVEL: u32 = 0;
    pub const APC_LEVEL: u32 = 1;
    pub const DISPATCH_LEVEL: u32 = 2;
    // W/constants.rs:56, 51.
    pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x40;
    pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x2;
    // W/constants.rs:2134, 2218, 2495, 1239, 1647, 1312, 1278, 82, 1292.
    pub const STATUS_SUCCESS: NTSTATUS = 0;
    pub const STATUS_TIMEOUT: NTSTATUS = 258;
    pub const STATUS_UNSUCCESSFUL: NTSTATUS = -1_073_741_823;
    pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = -1_073_741_670;
    pub const STATUS_NOT_SUPPORTED: NTSTATUS = -1_073_741_637;
    pub const STATUS_INVALID_PARAMETER: NTSTATUS = -1_073_741_811;
    pub const STATUS_INVALID_HANDLE: NTSTATUS = -1_073_741_816;
    pub const STATUS_ACCESS_DENIED: NTSTATUS = -1_073_741_790;
    pub const STATUS_INVALID_INFO_CLASS: NTSTATUS = -1_073_741_821;

    // G/constants.rs:5989.
    unsafe extern "C" {
        pub static mut PsThreadType: *mut POBJECT_TYPE;
    }
}

#[cfg(any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF"))]
pub mod ntddk {
    use super::*;
    unsafe extern "C" {
        // G/ntddk.rs:4208
        #[must_use]
        pub fn PsCreateSystemThread(
            ThreadHandle: PHANDLE,
            DesiredAccess: ULONG,
            ObjectAttributes: POBJECT_ATTRIBUTES,
            ProcessHandle: HANDLE,
            ClientId: PCLIENT_ID,
            StartRoutine: PKSTART_ROUTINE,
            StartContext: PVOID,
        ) -> NTSTATUS;
        // G/ntddk.rs:4783
        #[must_use]
        pub fn IoCreateSystemThread(
            IoObject: PVOID,
            ThreadHandle: PHANDLE,
            DesiredAccess: ULONG,
            ObjectAttributes: POBJECT_ATTRIBUTES,
            ProcessHandle: HANDLE,
            ClientId: PCLIENT_ID,
            StartRoutine: PKSTART_ROUTINE,
            StartContext: PVOID,
        ) -> NTSTATUS;
        // G/ntddk.rs:2795
        #[must_use]
        pub fn KeWaitForSingleObject(
            Object: PVOID,
            WaitReason: KWAIT_REASON,
            WaitMode: KPROCESSOR_MODE,
            Alertable: BOOLEAN,
            Timeout: PLARGE_INTEGER,
        ) -> NTSTATUS;
        // G/ntddk.rs:5772
        #[must_use]
        pub fn ObReferenceObjectByHandle(
            Handle: HANDLE,
            DesiredAccess: ACCESS_MASK,
            ObjectType: POBJECT_TYPE,
            AccessMode: KPROCESSOR_MODE,
            Object: *mut PVOID,
            HandleInformation: POBJECT_HANDLE_INFORMATION,
        ) -> NTSTATUS;
        // G/ntddk.rs:5829
        pub fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR;
        // G/ntddk.rs:5952
        #[must_use]
        pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
        // G/ntddk.rs:14073
        #[must_use]
        pub fn ZwWaitForSingleObject(
            Handle: HANDLE,
            Alertable: BOOLEAN,
            Timeout: PLARGE_INTEGER,
        ) -> NTSTATUS;
        // G/ntddk.rs:2684
        #[must_use]
        pub fn KeDelayExecutionThread(
            WaitMode: KPROCESSOR_MODE,
            Alertable: BOOLEAN,
            Interval: PLARGE_INTEGER,
        ) -> NTSTATUS;
        // G/ntddk.rs:2731
        pub fn KeSetPriorityThread(Thread: PKTHREAD, Priority: KPRIORITY) -> KPRIORITY;
        // G/ntddk.rs:8856
        #[must_use]
        pub fn ZwSetInformationThread(
            ThreadHandle: HANDLE,
            ThreadInformationClass: THREADINFOCLASS,
            ThreadInformation: PVOID,
            ThreadInformationLength: ULONG,
        ) -> NTSTATUS;
        // G/ntddk.rs:8083
        pub fn PsGetCurrentThreadId() -> HANDLE;
        // G/ntddk.rs:2645
        pub fn KeInitializeEvent(Event: PRKEVENT, Type: EVENT_TYPE, State: BOOLEAN);
        // G/ntddk.rs:2657
        pub fn KeSetEvent(Event: PRKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG;
        // G/ntddk.rs:1608
        pub fn MmGetSystemRoutineAddress(SystemRoutineName: PUNICODE_STRING) -> PVOID;
        // G/ntddk.rs:3135
        pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
        // G/ntddk.rs:3194
        pub fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
        // G/ntddk.rs:2719
        pub fn KeSetSystemGroupAffinityThread(
            Affinity: PGROUP_AFFINITY,
            PreviousAffinity: PGROUP_AFFINITY,
        );
        // G/ntddk.rs:2725
        pub fn KeRevertToUserGroupAffinityThread(PreviousAffinity: PGROUP_AFFINITY);
        // G/ntddk.rs:2648
        pub fn KeClearEvent(Event: PRKEVENT);
        // G/ntddk.rs:2782
        #[must_use]
        pub fn KeWaitForMultipleObjects(
            Count: ULONG,
            Object: *mut PVOID,
            WaitType: WAIT_TYPE,
            WaitReason: KWAIT_REASON,
            WaitMode: KPROCESSOR_MODE,
            Alertable: BOOLEAN,
            Timeout: PLARGE_INTEGER,
            WaitBlockArray: PKWAIT_BLOCK,
        ) -> NTSTATUS;
        // G/ntddk.rs:2982
        pub fn KeQueryActiveGroupCount() -> USHORT;
        // G/ntddk.rs:2973
        pub fn KeQueryActiveProcessorCountEx(GroupNumber: USHORT) -> ULONG;
        // G/ntddk.rs:2540: a real import in the x64 bindings (the C header inlines it as a CR8
        // read on x64; bindgen declares the function all the same).
        pub fn KeGetCurrentIrql() -> KIRQL;
    }
}
