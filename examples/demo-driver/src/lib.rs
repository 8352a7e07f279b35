//! Demo driver for `system-thread`, run under Wine and speakeasy by `tools/emulate`.
//!
//! Every line it prints starts with `system-thread-demo:`; `tools/emulate/checks.py` holds
//! the expectations on them.
//!
//! With `--cfg leak_thread` (set only by the tooling) DriverEntry also starts a raw system
//! thread that never ends and is never joined: the deliberate unload race that the Wine
//! leak check must detect.

#![no_std]

extern crate alloc;

#[macro_use]
pub mod rt;

use core::ffi::c_void;

/// `DRIVER_OBJECT` (wdm.h), x64 layout; only `driver_unload` is used.
#[repr(C)]
pub struct DriverObject {
    pub type_: i16,
    pub size: i16,
    pub device_object: *mut c_void,
    pub flags: u32,
    pub driver_start: *mut c_void,
    pub driver_size: u32,
    pub driver_section: *mut c_void,
    pub driver_extension: *mut c_void,
    pub driver_name: rt::UnicodeString,
    pub hardware_database: *mut rt::UnicodeString,
    pub fast_io_dispatch: *mut c_void,
    pub driver_init: *mut c_void,
    pub driver_start_io: *mut c_void,
    pub driver_unload: Option<unsafe extern "system" fn(driver: *mut DriverObject)>,
    /// `IRP_MJ_MAXIMUM_FUNCTION + 1` dispatch routines.
    pub major_function: [*mut c_void; 28],
}

// Offsets from wdm.h on x64 (DriverUnload at 0x68, MajorFunction at 0x70, size 0x150).
const _: () = assert!(core::mem::offset_of!(DriverObject, driver_name) == 0x38);
const _: () = assert!(core::mem::offset_of!(DriverObject, driver_unload) == 0x68);
const _: () = assert!(core::mem::offset_of!(DriverObject, major_function) == 0x70);
const _: () = assert!(core::mem::size_of::<DriverObject>() == 0x150);

const STATUS_SUCCESS: i32 = 0;

/// # Safety
///
/// Called by the I/O manager once, at PASSIVE_LEVEL, with a valid driver object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DriverObject,
    _registry: *const c_void,
) -> i32 {
    rt::init();
    log!("system-thread-demo: begin");
    log!(
        "system-thread-demo: pool routine={}",
        if rt::has_ex_allocate_pool2() {
            "ExAllocatePool2"
        } else {
            "ExAllocatePoolWithTag"
        }
    );

    let status = run_scenarios();

    #[cfg(raw_join_selftest)]
    selftest::run();

    if !driver.is_null() {
        // SAFETY: the I/O manager passes a valid, writable DRIVER_OBJECT (checked for null
        // because emulators may not).
        unsafe { (*driver).driver_unload = Some(driver_unload) };
    }

    #[cfg(leak_thread)]
    leak::start();

    log!("system-thread-demo: end status={status:x}");
    status
}

unsafe extern "system" fn driver_unload(_driver: *mut DriverObject) {
    log!("system-thread-demo: unload");
}

/// Placeholder until the library lands: checks that the allocator round-trips.
fn run_scenarios() -> i32 {
    let mut v = alloc::vec::Vec::with_capacity(4);
    v.extend_from_slice(&[1u32, 2, 3, 4]);
    let sum: u32 = v.iter().sum();
    log!("system-thread-demo: alloc sum={sum} (100% ok)");
    STATUS_SUCCESS
}

/// Raw thread FFI shared by the tooling-only variants (`leak_thread`, `raw_join_selftest`).
#[cfg(any(leak_thread, raw_join_selftest))]
mod raw {
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

    pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
    pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
    #[cfg(raw_join_selftest)]
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    pub const KERNEL_MODE: i8 = 0;

    pub type StartRoutine = unsafe extern "system" fn(context: *mut c_void);

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        fn PsCreateSystemThread(
            handle: *mut *mut c_void,
            access: u32,
            attributes: *mut ObjectAttributes,
            process: *mut c_void,
            client_id: *mut c_void,
            start: StartRoutine,
            context: *mut c_void,
        ) -> i32;
        pub fn ZwClose(handle: *mut c_void) -> i32;
        pub fn KeDelayExecutionThread(mode: i8, alertable: u8, interval: *const i64) -> i32;
    }

    /// Creates a system-process thread with a kernel handle; returns (status, handle).
    ///
    /// # Safety
    ///
    /// `start` must be sound to run concurrently with `context`, for as long as it runs.
    pub unsafe fn create(start: StartRoutine, context: *mut c_void) -> (i32, *mut c_void) {
        let mut attributes = ObjectAttributes {
            length: size_of::<ObjectAttributes>() as u32,
            root_directory: ptr::null_mut(),
            object_name: ptr::null(),
            attributes: OBJ_KERNEL_HANDLE,
            security_descriptor: ptr::null_mut(),
            security_quality_of_service: ptr::null_mut(),
        };
        let mut handle = ptr::null_mut();
        // SAFETY: all pointers are valid for the call; the caller vouches for start/context.
        let status = unsafe {
            PsCreateSystemThread(
                &mut handle,
                THREAD_ALL_ACCESS,
                &mut attributes,
                ptr::null_mut(),
                ptr::null_mut(),
                start,
                context,
            )
        };
        (status, handle)
    }
}

/// The deliberate leak: a raw thread that keeps executing this image's code forever.
#[cfg(leak_thread)]
mod leak {
    use crate::raw;
    use core::ffi::c_void;
    use core::ptr;

    unsafe extern "system" fn forever(_context: *mut c_void) {
        log!("system-thread-demo: leaked thread running");
        let interval: i64 = -100_000; // 10 ms, relative, in 100 ns units
        loop {
            // SAFETY: `interval` is a valid LARGE_INTEGER; system threads run at PASSIVE_LEVEL.
            unsafe { raw::KeDelayExecutionThread(raw::KERNEL_MODE, 0, &interval) };
        }
    }

    pub fn start() {
        // SAFETY: `forever` touches no context. Never joining it is the point of this variant.
        let (status, handle) = unsafe { raw::create(forever, ptr::null_mut()) };
        log!("system-thread-demo: leak thread created status={status:x}");
        if status >= 0 {
            // SAFETY: `handle` is the kernel handle PsCreateSystemThread just returned.
            unsafe { raw::ZwClose(handle) };
        }
    }
}

/// Harness self-test (tooling only): a raw thread joined the correct way, to check that
/// the emulators' thread, wait and reference semantics are what tools/emulate expects.
#[cfg(raw_join_selftest)]
mod selftest {
    use crate::raw;
    use core::ffi::c_void;
    use core::ptr;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        fn ObReferenceObjectByHandle(
            handle: *mut c_void,
            access: u32,
            object_type: *mut c_void,
            mode: i8,
            object: *mut *mut c_void,
            info: *mut c_void,
        ) -> i32;
        fn ObfDereferenceObject(object: *mut c_void) -> isize;
        fn KeWaitForSingleObject(
            object: *mut c_void,
            reason: u32,
            mode: i8,
            alertable: u8,
            timeout: *const i64,
        ) -> i32;
        fn PsTerminateSystemThread(status: i32) -> i32;
    }

    /// A 12 KiB frame: exercises `__chkstk` (rt.rs) on a fresh thread stack.
    #[inline(never)]
    fn big_frame(seed: u8) -> u32 {
        let mut buf = [seed; 12 * 1024];
        core::hint::black_box(&mut buf);
        buf.iter().map(|&b| u32::from(b)).sum()
    }

    unsafe extern "system" fn returns(context: *mut c_void) {
        let interval: i64 = -200_000; // 20 ms: the join must really wait
        // SAFETY: valid LARGE_INTEGER, PASSIVE_LEVEL.
        unsafe { raw::KeDelayExecutionThread(raw::KERNEL_MODE, 0, &interval) };
        let sum = big_frame(1);
        // SAFETY: `context` points at the joiner's u32, which outlives the join.
        unsafe {
            context
                .cast::<u32>()
                .write_volatile(if sum == 12 * 1024 { 42 } else { 1 })
        };
    }

    unsafe extern "system" fn terminates(context: *mut c_void) {
        // SAFETY: as in `returns`.
        unsafe { context.cast::<u32>().write_volatile(7) };
        // SAFETY: ends this system thread; nothing in this frame needs dropping.
        unsafe { PsTerminateSystemThread(0) };
    }

    fn spawn_and_join(name: &str, start: raw::StartRoutine) {
        let mut value: u32 = 0;
        let ctx = (&raw mut value).cast::<c_void>();
        // SAFETY: the thread only writes `value`, and it is joined below before `value` dies.
        let (status, handle) = unsafe { raw::create(start, ctx) };
        if status < 0 {
            log!("system-thread-demo: selftest {name} create failed status={status:x}");
            return;
        }
        let mut thread = ptr::null_mut();
        // SAFETY: `handle` is a valid kernel thread handle; `thread` receives the object.
        let status = unsafe {
            ObReferenceObjectByHandle(
                handle,
                raw::SYNCHRONIZE,
                ptr::null_mut(),
                raw::KERNEL_MODE,
                &mut thread,
                ptr::null_mut(),
            )
        };
        // SAFETY: closing our own handle; the referenced object (if any) stays valid.
        unsafe { raw::ZwClose(handle) };
        if status < 0 {
            // Cannot join: keep `value` alive forever rather than let the thread scribble.
            log!("system-thread-demo: selftest {name} reference failed status={status:x}");
            loop {
                core::hint::spin_loop();
            }
        }
        // SAFETY: `thread` is a referenced thread object; no timeout (null).
        let wait = unsafe { KeWaitForSingleObject(thread, 0, raw::KERNEL_MODE, 0, ptr::null()) };
        // SAFETY: drops the reference taken above, once.
        unsafe { ObfDereferenceObject(thread) };
        // SAFETY: the thread has exited (wait on the thread object), so no one else writes.
        let value = unsafe { (&raw const value).read_volatile() };
        log!("system-thread-demo: selftest {name} joined wait={wait:x} value={value}");
    }

    pub fn run() {
        spawn_and_join("return", returns);
        spawn_and_join("terminate", terminates);
    }
}
