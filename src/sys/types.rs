//! The crate's own definitions of the kernel types it uses, named and laid out as in the WDK
//! headers (and as wdk-sys generates them). Used by the `ntoskrnl` and `host` providers; on a
//! Windows host with wdk-sys, `sys::verify` proves the layouts equal.
// The WDK's names, documented by Microsoft's reference; public through `host::routines`.
#![allow(
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::upper_case_acronyms,
    missing_docs
)]

use core::ffi::c_void;

pub type NTSTATUS = i32;
pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void;
pub type PHANDLE = *mut HANDLE;
pub type ULONG = u32;
pub type USHORT = u16;
pub type LONG = i32;
pub type LONG_PTR = i64;
pub type SIZE_T = u64;
pub type ULONG64 = u64;
pub type BOOLEAN = u8;
pub type KIRQL = u8;
pub type KPRIORITY = LONG;
pub type ACCESS_MASK = ULONG;
pub type KAFFINITY = ULONG64;
pub type CCHAR = i8;
pub type KPROCESSOR_MODE = CCHAR;
pub type PWCH = *mut u16;
pub type PKTHREAD = *mut c_void;
pub type POBJECT_TYPE = *mut c_void;
pub type POBJECT_HANDLE_INFORMATION = *mut c_void;
pub type PCLIENT_ID = *mut CLIENT_ID;
pub type POBJECT_ATTRIBUTES = *mut OBJECT_ATTRIBUTES;
pub type PLARGE_INTEGER = *mut LARGE_INTEGER;
pub type PUNICODE_STRING = *mut UNICODE_STRING;
pub type PGROUP_AFFINITY = *mut GROUP_AFFINITY;
pub type PKSTART_ROUTINE = Option<unsafe extern "C" fn(StartContext: PVOID)>;
pub type POOL_TYPE = i32;
pub type KWAIT_REASON = i32;
pub type EVENT_TYPE = i32;
pub type THREADINFOCLASS = i32;
pub type WAIT_TYPE = i32;

/// `UNICODE_STRING`: counted UTF-16, lengths in bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: PWCH,
}

/// `OBJECT_ATTRIBUTES`, filled as `InitializeObjectAttributes` would.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: ULONG,
    pub RootDirectory: HANDLE,
    pub ObjectName: PUNICODE_STRING,
    pub Attributes: ULONG,
    pub SecurityDescriptor: PVOID,
    pub SecurityQualityOfService: PVOID,
}

/// `CLIENT_ID`: process and thread ids of a new thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CLIENT_ID {
    pub UniqueProcess: HANDLE,
    pub UniqueThread: HANDLE,
}

/// `LARGE_INTEGER`: a union in the headers; only `QuadPart` is used here.
#[repr(C)]
#[derive(Clone, Copy)]
pub union LARGE_INTEGER {
    pub QuadPart: i64,
}

/// `KWAIT_BLOCK`: opaque here (0x30 bytes on 64-bit Windows); only the kernel reads it.
#[repr(C, align(8))]
pub struct KWAIT_BLOCK {
    _opaque: [u64; 6],
}
pub type PKWAIT_BLOCK = *mut KWAIT_BLOCK;

/// `GROUP_AFFINITY`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GROUP_AFFINITY {
    pub Mask: KAFFINITY,
    pub Group: USHORT,
    pub Reserved: [USHORT; 3],
}

/// `KEVENT`: opaque to the crate (a `DISPATCHER_HEADER`, 24 bytes on 64-bit Windows); only the kernel
/// reads it, after `KeInitializeEvent`.
#[repr(C, align(8))]
pub struct KEVENT {
    _header: [u64; 3],
}
pub type PRKEVENT = *mut KEVENT;

pub const PASSIVE_LEVEL: u32 = 0;
pub const APC_LEVEL: u32 = 1;
pub const DISPATCH_LEVEL: u32 = 2;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
pub const SYNCHRONIZE: u32 = 0x0010_0000;
pub const NON_PAGED_POOL_NX: POOL_TYPE = 512;
pub const EXECUTIVE: KWAIT_REASON = 0;
pub const KERNEL_MODE: KPROCESSOR_MODE = 0;
pub const NOTIFICATION_EVENT: EVENT_TYPE = 0;
pub const SYNCHRONIZATION_EVENT: EVENT_TYPE = 1;
pub const THREAD_NAME_INFORMATION: THREADINFOCLASS = 38;
pub const WAIT_ALL: WAIT_TYPE = 0;
pub const WAIT_ANY: WAIT_TYPE = 1;
/// Objects a wait can take without a caller-supplied wait block array.
pub const THREAD_WAIT_OBJECTS: u32 = 3;
/// Objects one `KeWaitForMultipleObjects` can take.
pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;
/// `STATUS_WAIT_0`: the first object of a wait-any was signalled (`STATUS_WAIT_0 + i`: the i-th).
pub const STATUS_WAIT_0: NTSTATUS = 0;
/// `ALL_PROCESSOR_GROUPS` for `KeQueryActiveProcessorCountEx`.
pub const ALL_PROCESSOR_GROUPS: USHORT = 0xFFFF;
