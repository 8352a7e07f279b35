//! A stand-in for wdk-sys 0.5.2 with the shapes its build script generates (bindgen with
//! ModuleConsts enums, derived Default, `unsafe extern "C"` functions, `#[must_use]` on NTSTATUS),
//! written from wdk-build 0.6.0's bindgen settings and the WDK 10.0.22621 declarations. Only the
//! items system-thread uses. It lets `cargo make check-wdk` type-check the wdk provider and its
//! compile-time signature checks (src/sys/verify.rs) on a host without the WDK; it proves
//! consistency with these shapes, not with a real WDK build.
//!
//! Like wdk-sys 0.5.2, it binds nothing unless the `driver_model__driver_type` cfg is set (which
//! wdk-build does in a driver build, from `[package.metadata.wdk.driver-model]`): the types and
//! constants exist for WDM, KMDF and UMDF, the `ntddk` functions for WDM and KMDF only.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

#[cfg(any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF", driver_model__driver_type = "UMDF"))]
pub use crate::types::*;

#[cfg(any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF", driver_model__driver_type = "UMDF"))]
mod types {
use core::ffi::c_void;
pub type NTSTATUS = LONG; pub type LONG = i32; pub type ULONG = u32; pub type USHORT = u16;
pub type UCHAR = u8; pub type BOOLEAN = UCHAR; pub type CCHAR = i8; pub type KPROCESSOR_MODE = CCHAR;
pub type KIRQL = UCHAR; pub type KPRIORITY = LONG; pub type ULONG_PTR = u64; pub type SIZE_T = ULONG_PTR;
pub type KAFFINITY = ULONG_PTR; pub type LONG_PTR = i64; pub type ACCESS_MASK = ULONG; pub type ULONG64 = u64;
pub type POOL_FLAGS = ULONG64; pub type WCHAR = u16; pub type PWCH = *mut WCHAR; pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void; pub type PHANDLE = *mut HANDLE; pub type LONGLONG = i64;
#[repr(C)] pub struct _KTHREAD { _p: [u8; 0] } pub type PKTHREAD = *mut _KTHREAD; pub type PETHREAD = *mut _KTHREAD;
#[repr(C)] pub struct _OBJECT_TYPE { _p: [u8; 0] } pub type POBJECT_TYPE = *mut _OBJECT_TYPE;
#[repr(C)] #[derive(Default, Clone, Copy)] pub struct OBJECT_HANDLE_INFORMATION { pub HandleAttributes: ULONG, pub GrantedAccess: ACCESS_MASK }
pub type POBJECT_HANDLE_INFORMATION = *mut OBJECT_HANDLE_INFORMATION;
#[repr(C)] #[derive(Clone, Copy)] pub struct _UNICODE_STRING { pub Length: USHORT, pub MaximumLength: USHORT, pub Buffer: PWCH }
pub type UNICODE_STRING = _UNICODE_STRING; pub type PUNICODE_STRING = *mut UNICODE_STRING;
#[repr(C)] #[derive(Clone, Copy)] pub struct _OBJECT_ATTRIBUTES { pub Length: ULONG, pub RootDirectory: HANDLE, pub ObjectName: PUNICODE_STRING, pub Attributes: ULONG, pub SecurityDescriptor: PVOID, pub SecurityQualityOfService: PVOID }
pub type OBJECT_ATTRIBUTES = _OBJECT_ATTRIBUTES; pub type POBJECT_ATTRIBUTES = *mut OBJECT_ATTRIBUTES;
#[repr(C)] #[derive(Clone, Copy)] pub struct _CLIENT_ID { pub UniqueProcess: HANDLE, pub UniqueThread: HANDLE }
pub type CLIENT_ID = _CLIENT_ID; pub type PCLIENT_ID = *mut CLIENT_ID;
#[repr(C)] #[derive(Clone, Copy)] pub struct _LARGE_INTEGER__bindgen_ty_1 { pub LowPart: ULONG, pub HighPart: LONG }
#[repr(C)] #[derive(Clone, Copy)] pub union _LARGE_INTEGER { pub __bindgen_anon_1: _LARGE_INTEGER__bindgen_ty_1, pub u: _LARGE_INTEGER__bindgen_ty_1, pub QuadPart: LONGLONG }
pub type LARGE_INTEGER = _LARGE_INTEGER; pub type PLARGE_INTEGER = *mut LARGE_INTEGER;
#[repr(C)] #[derive(Clone, Copy)] pub struct _GROUP_AFFINITY { pub Mask: KAFFINITY, pub Group: USHORT, pub Reserved: [USHORT; 3] }
pub type GROUP_AFFINITY = _GROUP_AFFINITY; pub type PGROUP_AFFINITY = *mut GROUP_AFFINITY;
#[repr(C)] #[derive(Clone, Copy)] pub struct _DISPATCHER_HEADER { pub _opaque: [u64; 3] }
#[repr(C)] #[derive(Clone, Copy)] pub struct _KEVENT { pub Header: _DISPATCHER_HEADER }
pub type KEVENT = _KEVENT; pub type PKEVENT = *mut _KEVENT; pub type PRKEVENT = *mut _KEVENT;
pub type PKSTART_ROUTINE = Option<unsafe extern "C" fn(StartContext: PVOID)>;
pub mod _KWAIT_REASON { pub type Type = ::core::ffi::c_int; pub const Executive: Type = 0; }
pub use self::_KWAIT_REASON::Type as KWAIT_REASON;
pub mod _MODE { pub type Type = ::core::ffi::c_int; pub const KernelMode: Type = 0; }
pub mod _EVENT_TYPE { pub type Type = ::core::ffi::c_int; pub const NotificationEvent: Type = 0; pub const SynchronizationEvent: Type = 1; }
pub use self::_EVENT_TYPE::Type as EVENT_TYPE;
pub mod _POOL_TYPE { pub type Type = ::core::ffi::c_int; pub const NonPagedPoolNx: Type = 512; }
pub use self::_POOL_TYPE::Type as POOL_TYPE;
pub mod _THREADINFOCLASS { pub type Type = ::core::ffi::c_int; pub const ThreadPriority: Type = 2; }
pub use self::_THREADINFOCLASS::Type as THREADINFOCLASS;
pub mod _WAIT_TYPE { pub type Type = ::core::ffi::c_int; pub const WaitAll: Type = 0; pub const WaitAny: Type = 1; }
pub use self::_WAIT_TYPE::Type as WAIT_TYPE;
// wdm.h `_KWAIT_BLOCK` (0x30 bytes on 64-bit Windows).
#[repr(C)] #[derive(Clone, Copy)] pub struct _KWAIT_BLOCK { pub WaitListEntry: [u64; 2], pub WaitType: u8, pub BlockState: u8, pub WaitKey: u16, pub SpareLong: i32, pub Thread: PVOID, pub Object: PVOID, pub SparePtr: PVOID }
pub type KWAIT_BLOCK = _KWAIT_BLOCK; pub type PKWAIT_BLOCK = *mut _KWAIT_BLOCK;
pub const THREAD_WAIT_OBJECTS: u32 = 3; pub const MAXIMUM_WAIT_OBJECTS: u32 = 64; pub const ALL_PROCESSOR_GROUPS: u32 = 65535;
pub const STATUS_WAIT_0: NTSTATUS = 0;
pub const OBJ_KERNEL_HANDLE: u32 = 512; pub const THREAD_ALL_ACCESS: u32 = 0x1F_FFFF; pub const SYNCHRONIZE: u32 = 0x10_0000;
pub const PASSIVE_LEVEL: u32 = 0; pub const APC_LEVEL: u32 = 1; pub const DISPATCH_LEVEL: u32 = 2;
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x40; pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x2;
pub const STATUS_SUCCESS: NTSTATUS = 0;
unsafe extern "C" { pub static mut PsThreadType: *mut POBJECT_TYPE; }
}

#[cfg(any(driver_model__driver_type = "WDM", driver_model__driver_type = "KMDF"))]
pub mod ntddk {
    use super::*;
    unsafe extern "C" {
        #[must_use] pub fn PsCreateSystemThread(ThreadHandle: PHANDLE, DesiredAccess: ULONG, ObjectAttributes: POBJECT_ATTRIBUTES, ProcessHandle: HANDLE, ClientId: PCLIENT_ID, StartRoutine: PKSTART_ROUTINE, StartContext: PVOID) -> NTSTATUS;
        #[must_use] pub fn IoCreateSystemThread(IoObject: PVOID, ThreadHandle: PHANDLE, DesiredAccess: ULONG, ObjectAttributes: POBJECT_ATTRIBUTES, ProcessHandle: HANDLE, ClientId: PCLIENT_ID, StartRoutine: PKSTART_ROUTINE, StartContext: PVOID) -> NTSTATUS;
        #[must_use] pub fn KeWaitForSingleObject(Object: PVOID, WaitReason: KWAIT_REASON, WaitMode: KPROCESSOR_MODE, Alertable: BOOLEAN, Timeout: PLARGE_INTEGER) -> NTSTATUS;
        #[must_use] pub fn ObReferenceObjectByHandle(Handle: HANDLE, DesiredAccess: ACCESS_MASK, ObjectType: POBJECT_TYPE, AccessMode: KPROCESSOR_MODE, Object: *mut PVOID, HandleInformation: POBJECT_HANDLE_INFORMATION) -> NTSTATUS;
        pub fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR;
        #[must_use] pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
        #[must_use] pub fn ZwWaitForSingleObject(Handle: HANDLE, Alertable: BOOLEAN, Timeout: PLARGE_INTEGER) -> NTSTATUS;
        #[must_use] pub fn KeDelayExecutionThread(WaitMode: KPROCESSOR_MODE, Alertable: BOOLEAN, Interval: PLARGE_INTEGER) -> NTSTATUS;
        pub fn KeSetPriorityThread(Thread: PKTHREAD, Priority: KPRIORITY) -> KPRIORITY;
        #[must_use] pub fn ZwSetInformationThread(ThreadHandle: HANDLE, ThreadInformationClass: THREADINFOCLASS, ThreadInformation: PVOID, ThreadInformationLength: ULONG) -> NTSTATUS;
        pub fn PsGetCurrentThreadId() -> HANDLE;
        pub fn KeInitializeEvent(Event: PRKEVENT, Type: EVENT_TYPE, State: BOOLEAN);
        pub fn KeSetEvent(Event: PRKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG;
        pub fn MmGetSystemRoutineAddress(SystemRoutineName: PUNICODE_STRING) -> PVOID;
        pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
        pub fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
        pub fn KeSetSystemGroupAffinityThread(Affinity: PGROUP_AFFINITY, PreviousAffinity: PGROUP_AFFINITY);
        pub fn KeRevertToUserGroupAffinityThread(PreviousAffinity: PGROUP_AFFINITY);
        pub fn KeClearEvent(Event: PRKEVENT);
        #[must_use] pub fn KeWaitForMultipleObjects(Count: ULONG, Object: *mut PVOID, WaitType: WAIT_TYPE, WaitReason: KWAIT_REASON, WaitMode: KPROCESSOR_MODE, Alertable: BOOLEAN, Timeout: PLARGE_INTEGER, WaitBlockArray: PKWAIT_BLOCK) -> NTSTATUS;
        pub fn KeQueryActiveGroupCount() -> USHORT;
        pub fn KeQueryActiveProcessorCountEx(GroupNumber: USHORT) -> ULONG;
    }
}
