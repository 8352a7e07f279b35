//! The documented assertions (kernel bugchecks through the driver's panic handler) fire with a
//! message naming the crate. Each scenario runs in a child process, because a panic inside a
//! start routine aborts like a bugcheck stops a machine.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};

use system_thread::host::{Kernel, set_irql, with_irql};
use system_thread::{JoinHandle, SystemThread};

const SCENARIO: &str = "SYSTEM_THREAD_ASSERTION_SCENARIO";

/// Runs the ignored test `name` of this binary in a child process; returns its stderr after
/// checking that it failed.
fn run_child(name: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{name} did not fail: {stderr}");
    stderr
}

fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO).as_deref() == Ok(name)
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn a_thread_started_above_passive_level_stops_at_the_trampoline() {
    let stderr = run_child("child_start_irql");
    assert!(stderr.contains("system-thread: start routine entered at DISPATCH_LEVEL"), "{stderr}");
}

#[test]
#[ignore = "child process of a_thread_started_above_passive_level_stops_at_the_trampoline"]
fn child_start_irql() {
    if in_scenario("child_start_irql") {
        let kernel = Kernel::new();
        kernel.set_start_irql(2);
        kernel.run(|| SystemThread::spawn(|| ()).unwrap().join().unwrap());
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn a_closure_returning_above_passive_level_is_caught() {
    let stderr = run_child("child_return_irql");
    assert!(
        stderr.contains("system-thread: the thread's closure returned at DISPATCH_LEVEL"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of a_closure_returning_above_passive_level_is_caught"]
fn child_return_irql() {
    if in_scenario("child_return_irql") {
        Kernel::new().run(|| SystemThread::spawn(|| set_irql(2)).unwrap().join().unwrap());
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn dropping_a_handle_on_its_own_thread_is_caught() {
    let stderr = run_child("child_drop_on_self");
    assert!(
        stderr.contains("system-thread: a thread's join handle was dropped on the thread itself"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of dropping_a_handle_on_its_own_thread_is_caught"]
fn child_drop_on_self() {
    if in_scenario("child_drop_on_self") {
        Kernel::new().run(|| {
            let slot: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
            let inner = Arc::clone(&slot);
            let (go, ready) = mpsc::channel::<()>();
            let handle = SystemThread::spawn(move || {
                ready.recv().unwrap();
                drop(inner.lock().unwrap().take());
            })
            .unwrap();
            *slot.lock().unwrap() = Some(handle);
            go.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(10));
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn dropping_a_handle_at_dispatch_level_is_caught() {
    let stderr = run_child("child_drop_at_dispatch");
    assert!(
        stderr.contains("system-thread: a thread must be joined at APC_LEVEL or lower"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of dropping_a_handle_at_dispatch_level_is_caught"]
fn child_drop_at_dispatch() {
    if in_scenario("child_drop_at_dispatch") {
        Kernel::new().run(|| {
            let handle = SystemThread::spawn(|| ()).unwrap();
            with_irql(2, || drop(handle));
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn dropping_a_finished_threads_handle_above_apc_level_is_caught_before_any_kernel_call() {
    let stderr = run_child("child_drop_finished_high");
    assert!(
        stderr.contains("system-thread: a thread must be joined at APC_LEVEL or lower"),
        "{stderr}"
    );
    assert!(!stderr.contains("host model bugcheck"), "a kernel call was made first: {stderr}");
}

#[test]
#[ignore = "child process of dropping_a_finished_threads_handle_above_apc_level_is_caught_..."]
fn child_drop_finished_high() {
    if in_scenario("child_drop_finished_high") {
        Kernel::new().run(|| {
            let handle = SystemThread::spawn(|| ()).unwrap();
            while !handle.is_finished() {
                std::thread::yield_now();
            }
            with_irql(3, || drop(handle));
        });
    }
}

// The host model stops a test, like Driver Verifier stops a machine, on kernel-object misuse,
// naming the call and the object.

/// A start routine that does nothing.
unsafe extern "C" fn nothing(_: *mut std::ffi::c_void) {}

/// Creates a thread through the model's routines and references it: (handle, object).
fn raw_thread() -> (*mut std::ffi::c_void, *mut std::ffi::c_void) {
    use system_thread::host::routines as k;
    let mut handle = std::ptr::null_mut();
    // SAFETY: valid out-pointer; the start routine ignores its context.
    let status = unsafe {
        k::PsCreateSystemThread(
            &raw mut handle,
            0x1F_FFFF,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            Some(nothing),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, 0);
    let mut object = std::ptr::null_mut();
    // SAFETY: an open handle; valid out-pointer.
    let status = unsafe {
        k::ObReferenceObjectByHandle(
            handle,
            0x1F_FFFF,
            std::ptr::null_mut(),
            0,
            &raw mut object,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, 0);
    (handle, object)
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn the_model_reports_a_thread_object_used_after_its_last_reference() {
    let stderr = run_child("child_dereference_twice");
    assert!(stderr.contains("ObfDereferenceObject: thread object 0x"), "{stderr}");
    assert!(stderr.contains("has no reference left"), "{stderr}");
    let stderr = run_child("child_wait_on_dead_object");
    assert!(stderr.contains("KeWaitForSingleObject: thread object 0x"), "{stderr}");
}

/// The model's routines, one call each, for the misuse scenarios below. Each is `unsafe` in
/// the kernel; the model checks every argument and stops with a report instead of misbehaving.
mod raw {
    use std::ffi::c_void;
    use system_thread::host::routines as k;

    pub const TAG: u32 = u32::from_le_bytes(*b"Test");

    pub fn wait(object: *mut c_void) -> i32 {
        // SAFETY: the model validates the object (the point of these scenarios).
        unsafe { k::KeWaitForSingleObject(object, 0, 0, 0, std::ptr::null_mut()) }
    }

    pub fn close(handle: *mut c_void) -> i32 {
        // SAFETY: as above, for the handle.
        unsafe { k::ZwClose(handle) }
    }

    pub fn dereference(object: *mut c_void) {
        // SAFETY: as above, for the object.
        unsafe { k::ObfDereferenceObject(object) };
    }

    pub fn allocate() -> *mut c_void {
        // SAFETY: no precondition beyond the IRQL, which is PASSIVE_LEVEL here.
        unsafe { k::ExAllocatePoolWithTag(512, 64, TAG) }
    }

    pub fn free(block: *mut c_void, tag: u32) {
        // SAFETY: as above, for the block and the tag.
        unsafe { k::ExFreePoolWithTag(block, tag) };
    }
}

#[test]
#[ignore = "child process of the_model_reports_a_thread_object_used_after_its_last_reference"]
fn child_dereference_twice() {
    if in_scenario("child_dereference_twice") {
        let kernel = Kernel::new();
        kernel.run(|| {
            let (handle, object) = raw_thread();
            assert_eq!(raw::wait(object), 0);
            // The exited thread has given up its own reference too.
            let _ = kernel.quiesce();
            assert_eq!(raw::close(handle), 0);
            raw::dereference(object);
            raw::dereference(object);
        });
    }
}

#[test]
#[ignore = "child process of the_model_reports_a_thread_object_used_after_its_last_reference"]
fn child_wait_on_dead_object() {
    if in_scenario("child_wait_on_dead_object") {
        let kernel = Kernel::new();
        kernel.run(|| {
            let (handle, object) = raw_thread();
            assert_eq!(raw::wait(object), 0);
            // The exited thread has given up its own reference too.
            let _ = kernel.quiesce();
            assert_eq!(raw::close(handle), 0);
            raw::dereference(object);
            raw::wait(object);
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn the_model_reports_pool_freed_twice_or_with_another_tag_and_handles_closed_twice() {
    let stderr = run_child("child_free_twice");
    assert!(stderr.contains("BAD_POOL_CALLER: ExFreePoolWithTag(0x"), "{stderr}");
    assert!(stderr.contains("freed twice"), "{stderr}");
    let stderr = run_child("child_free_wrong_tag");
    assert!(stderr.contains("allocated with tag 0x74736554"), "{stderr}");
    let stderr = run_child("child_close_twice");
    assert!(stderr.contains("INVALID_KERNEL_HANDLE: ZwClose(0x"), "{stderr}");
}

#[test]
#[ignore = "child process of the_model_reports_pool_freed_twice_or_with_another_tag_and_handles_closed_twice"]
fn child_free_twice() {
    if in_scenario("child_free_twice") {
        Kernel::new().run(|| {
            let block = raw::allocate();
            raw::free(block, raw::TAG);
            raw::free(block, raw::TAG);
        });
    }
}

#[test]
#[ignore = "child process of the_model_reports_pool_freed_twice_or_with_another_tag_and_handles_closed_twice"]
fn child_free_wrong_tag() {
    if in_scenario("child_free_wrong_tag") {
        Kernel::new().run(|| raw::free(raw::allocate(), u32::from_le_bytes(*b"Oops")));
    }
}

#[test]
#[ignore = "child process of the_model_reports_pool_freed_twice_or_with_another_tag_and_handles_closed_twice"]
fn child_close_twice() {
    if in_scenario("child_close_twice") {
        Kernel::new().run(|| {
            let (handle, object) = raw_thread();
            assert_eq!(raw::close(handle), 0);
            raw::close(handle);
            raw::dereference(object);
        });
    }
}
