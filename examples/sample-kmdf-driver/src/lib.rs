//! # system-thread KMDF sample
//!
//! A KMDF driver for one root-enumerated device (`root\SYSTEM_THREAD_SAMPLE`). When the device
//! is added, the driver starts a named, stoppable system thread on the device's WDM device
//! object; the thread prints a tick every second. When the device is removed, its cleanup
//! callback asks the thread to stop and joins it (a wait on the thread object), then prints the
//! final count: after that, no driver code runs on the thread, so the driver may unload.
//!
//! This file is the WDF glue and builds only on a Windows host with the WDK. Everything that
//! touches `system-thread` is in [`worker`], which the root crate also compiles and tests on
//! the host (`tests/sample_worker.rs`).
#![no_std]

// The panic handler: a panic bugchecks with code 0x52504E43 ("RPNC").
extern crate wdk_panic;

mod worker;

use core::ffi::c_void;
use core::fmt;
use core::mem::size_of;
use core::ptr::NonNull;

use system_thread::IoObject;
use wdk_alloc::WdkAllocator;
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_SYNCHRONIZATION_SCOPE, DRIVER_OBJECT, NTSTATUS, PCUNICODE_STRING,
    PDRIVER_OBJECT, STATUS_SUCCESS, ULONG, WDF_DRIVER_CONFIG, WDF_NO_HANDLE,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDFDEVICE, WDFDEVICE_INIT, WDFDRIVER,
    WDFOBJECT, call_unsafe_wdf_function_binding,
};

/// Pool allocations of `alloc` users in the driver (`ExAllocatePool2`, non-paged). The worker
/// itself does not allocate through it: `system-thread` makes its one allocation per thread
/// directly from the pool.
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

/// The running worker, keyed by the `WDFDEVICE` it belongs to.
static WORKER: worker::WorkerSlot = worker::WorkerSlot::new();

/// The worker's output: one `DbgPrint` line each.
fn log(args: fmt::Arguments<'_>) {
    wdk::println!("{args}");
}

/// `size_of::<T>()` as the `ULONG` that WDF structures carry in their `Size` field.
const fn wdf_size<T>() -> ULONG {
    const { assert!(size_of::<T>() <= ULONG::MAX as usize) };
    #[allow(clippy::cast_possible_truncation)] // checked at compile time just above
    {
        size_of::<T>() as ULONG
    }
}

/// The driver's entry point: registers the driver with KMDF, with a device-add and an unload
/// callback.
///
/// # Safety
/// Called by the kernel only, once, at `PASSIVE_LEVEL`, with this driver's `DRIVER_OBJECT`
/// and its registry path.
// SAFETY: `DriverEntry` is the symbol the kernel (through WdfDriverEntry) calls; nothing else in
// the driver exports that name.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    let mut config = WDF_DRIVER_CONFIG {
        Size: wdf_size::<WDF_DRIVER_CONFIG>(),
        EvtDriverDeviceAdd: Some(evt_driver_device_add),
        EvtDriverUnload: Some(evt_driver_unload),
        ..WDF_DRIVER_CONFIG::default()
    };
    let driver: PDRIVER_OBJECT = driver;
    // SAFETY: `driver` and `registry_path` are the kernel's arguments to DriverEntry; the
    // configuration is a live, initialized local that WDF reads during the call; no object
    // attributes and no output handle are allowed (NULL).
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut config,
            WDF_NO_HANDLE.cast::<WDFDRIVER>(),
        )
    };
    log(format_args!("system-thread-sample: WdfDriverCreate returned {status:#010x}"));
    status
}

/// Creates the device, with a cleanup callback, and starts its worker.
extern "C" fn evt_driver_device_add(
    _driver: WDFDRIVER,
    mut device_init: *mut WDFDEVICE_INIT,
) -> NTSTATUS {
    let mut attributes = WDF_OBJECT_ATTRIBUTES {
        Size: wdf_size::<WDF_OBJECT_ATTRIBUTES>(),
        EvtCleanupCallback: Some(evt_device_cleanup),
        // What WDF_OBJECT_ATTRIBUTES_INIT sets (zero would be an invalid value for both).
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ..WDF_OBJECT_ATTRIBUTES::default()
    };
    let mut device: WDFDEVICE = WDF_NO_HANDLE.cast();
    // SAFETY: `device_init` is the framework's, passed to this callback and not yet used; the
    // attributes and the output handle are live locals.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &raw mut device_init,
            &raw mut attributes,
            &raw mut device
        )
    };
    if !wdk::nt_success(status) {
        log(format_args!("system-thread-sample: WdfDeviceCreate returned {status:#010x}"));
        return status;
    }

    // SAFETY: `device` was just created and is alive until its cleanup callback has run.
    let device_object =
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceWdmGetDeviceObject, device) };
    let io = NonNull::new(device_object.cast::<c_void>()).map(|object| {
        // SAFETY: this is the WDM DEVICE_OBJECT of this driver's device, alive while the worker
        // is created (the device is), and the kernel references it for the thread's lifetime.
        unsafe { IoObject::from_raw(object) }
    });

    let worker = match worker::start(io, worker::PERIOD, log) {
        Ok(worker) => worker,
        Err(error) => {
            log(format_args!("system-thread-sample: {error}"));
            // WDF deletes the device; its cleanup callback finds no worker.
            return error.status().0;
        }
    };
    log(format_args!(
        "system-thread-sample: worker {} started ({})",
        worker.thread_id(),
        if worker.pins_driver() { "IoCreateSystemThread" } else { "PsCreateSystemThread" }
    ));
    if let Err(extra) = WORKER.put(device.addr(), worker) {
        log(format_args!(
            "system-thread-sample: this driver runs one worker; stopping the new one"
        ));
        let _ticks = extra.stop();
    }
    STATUS_SUCCESS
}

/// The device is going away (removal, or a failed device add): stop and join its worker.
/// Runs at `PASSIVE_LEVEL` for device objects.
extern "C" fn evt_device_cleanup(device: WDFOBJECT) {
    if let Some(worker) = WORKER.take(device.addr()) {
        let ticks = worker.stop();
        log(format_args!(
            "system-thread-sample: device cleanup: worker stopped after {ticks} ticks"
        ));
    }
}

/// Every device is gone by now, and with it every worker; joining whatever is left is a guard,
/// not the normal path.
extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    if let Some(worker) = WORKER.take_any() {
        let ticks = worker.stop();
        log(format_args!(
            "system-thread-sample: unload joined a leftover worker after {ticks} ticks"
        ));
    }
    log(format_args!("system-thread-sample: unloaded"));
}
