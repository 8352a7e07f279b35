//! Direct kernel calls, for the variants that must not go through `system-thread`: the
//! deliberate leak (`leak_thread`), the harness self-test (`raw_join_selftest`) and the
//! hand-written baseline the library is benchmarked against (`raw_baseline`).
#![allow(dead_code)] // each variant uses a different subset

use core::ffi::c_void;
use core::ptr;

#[repr(C)]
pub struct ObjectAttributes {
    pub length: u32,
    pub root_directory: *mut c_void,
    pub object_name: *const crate::rt::UnicodeString,
    pub attributes: u32,
    pub security_descriptor: *mut c_void,
    pub security_quality_of_service: *mut c_void,
}

/// `CLIENT_ID`.
#[repr(C)]
pub struct ClientId {
    pub unique_process: *mut c_void,
    pub unique_thread: *mut c_void,
}

pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
pub const SYNCHRONIZE: u32 = 0x0010_0000;
pub const KERNEL_MODE: i8 = 0;
/// `KWAIT_REASON::Executive`.
pub const EXECUTIVE: u32 = 0;
/// `POOL_TYPE::NonPagedPoolNx`.
pub const NON_PAGED_POOL_NX: i32 = 512;

pub type StartRoutine = unsafe extern "system" fn(context: *mut c_void);

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn PsCreateSystemThread(
        handle: *mut *mut c_void,
        access: u32,
        attributes: *mut ObjectAttributes,
        process: *mut c_void,
        client_id: *mut ClientId,
        start: StartRoutine,
        context: *mut c_void,
    ) -> i32;
    pub fn ZwClose(handle: *mut c_void) -> i32;
    pub fn KeDelayExecutionThread(mode: i8, alertable: u8, interval: *const i64) -> i32;
    pub fn ObReferenceObjectByHandle(
        handle: *mut c_void,
        access: u32,
        object_type: *mut c_void,
        mode: i8,
        object: *mut *mut c_void,
        info: *mut c_void,
    ) -> i32;
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        reason: u32,
        mode: i8,
        alertable: u8,
        timeout: *const i64,
    ) -> i32;
    pub fn PsTerminateSystemThread(status: i32) -> i32;
    pub fn PsGetCurrentThreadId() -> *mut c_void;
    pub fn ExAllocatePoolWithTag(pool_type: i32, size: usize, tag: u32) -> *mut c_void;
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
}

/// Creates a system-process thread with a kernel handle; returns (status, handle, thread id).
///
/// # Safety
///
/// `start` must be sound to run concurrently with `context`, for as long as it runs.
pub unsafe fn create(start: StartRoutine, context: *mut c_void) -> (i32, *mut c_void, usize) {
    let mut attributes = ObjectAttributes {
        length: size_of::<ObjectAttributes>() as u32,
        root_directory: ptr::null_mut(),
        object_name: ptr::null(),
        attributes: OBJ_KERNEL_HANDLE,
        security_descriptor: ptr::null_mut(),
        security_quality_of_service: ptr::null_mut(),
    };
    let mut client = ClientId { unique_process: ptr::null_mut(), unique_thread: ptr::null_mut() };
    let mut handle = ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the caller vouches for start/context.
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            &mut attributes,
            ptr::null_mut(),
            &mut client,
            start,
            context,
        )
    };
    (status, handle, client.unique_thread as usize)
}

/// Takes a reference on the thread object behind `handle` and closes the handle: the join
/// side of a hand-written spawn. `Err(status)` when the reference fails (the handle is closed
/// either way).
///
/// # Safety
/// `handle` is an open kernel thread handle that the caller owns and does not use again.
pub unsafe fn reference_and_close(handle: *mut c_void) -> Result<*mut c_void, i32> {
    let mut thread = ptr::null_mut();
    // SAFETY: `handle` is a valid kernel thread handle (contract); `thread` is a local.
    let status = unsafe {
        ObReferenceObjectByHandle(
            handle,
            SYNCHRONIZE,
            ptr::null_mut(),
            KERNEL_MODE,
            &mut thread,
            ptr::null_mut(),
        )
    };
    // SAFETY: the caller's handle, closed once; the referenced object (if any) stays valid.
    unsafe { ZwClose(handle) };
    if status < 0 { Err(status) } else { Ok(thread) }
}
