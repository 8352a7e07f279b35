//! # KMDF-model twin of the system-thread sample
//!
//! `examples/sample-kmdf-driver` builds only on Windows with the WDK (wdk-sys). This crate is
//! its twin for Linux: the same driver, cross-built with `rust-lld` and the crate's raw-dylib
//! provider, so that `tools/emulate/kmdf_twin.py` can run it in speakeasy's emulation of the
//! KMDF loader (`wdfldr`).
//!
//! - Everything that touches `system-thread` is the sample's own `src/worker.rs`, compiled
//!   unchanged from the sample's directory (as `tests/sample_worker.rs` compiles it).
//! - This file follows the sample's `src/lib.rs` callback for callback and line for line:
//!   `DriverEntry` creates the WDF driver with `EvtDriverDeviceAdd` and `EvtDriverUnload`;
//!   `EvtDriverDeviceAdd` creates the device with a cleanup callback, gets its WDM
//!   `DEVICE_OBJECT` and starts the worker on it; the cleanup callback stops and joins the
//!   worker; `EvtDriverUnload` joins a leftover worker. What differs: WDF is called through
//!   [`wdf`] (layouts and table indices written from recorded facts) instead of wdk-sys's
//!   generated bindings, logging goes to `DbgPrint` through [`rt`] instead of
//!   `wdk::println!`, and the unload also prints `system_thread::live_threads()`.
//! - [`stub`] is the WDK's `WdfDriverEntry.lib` part: the image entry point `FxDriverEntry`
//!   binds with `WdfVersionBind`, then calls `DriverEntry`.
//!
//! `--cfg twin_leak` (set only by the harness) makes the cleanup callback lose the worker
//! instead of stopping it: the negative control the harness's checks must reject.
#![no_std]

mod rt;
mod stub;
mod wdf;

#[path = "../../sample-kmdf-driver/src/worker.rs"]
mod worker;

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{self, NonNull};

use system_thread::IoObject;

use rt::UnicodeString;
use wdf::{NtStatus, WdfDeviceInit, WdfDriverConfig, WdfHandle, WdfObjectAttributes};

/// The running worker, keyed by the `WDFDEVICE` it belongs to (as in the sample).
static WORKER: worker::WorkerSlot = worker::WorkerSlot::new();

const STATUS_SUCCESS: NtStatus = 0;

/// The worker's output: one `DbgPrint` line each.
fn log(args: core::fmt::Arguments<'_>) {
    rt::log(args);
}

/// `size_of::<T>()` as the `ULONG` that WDF structures carry in their `Size` field.
const fn wdf_size<T>() -> u32 {
    const { assert!(size_of::<T>() <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation)] // checked at compile time just above
    {
        size_of::<T>() as u32
    }
}

/// The driver's `DriverEntry`, called by [`stub::FxDriverEntry`] once bound: registers the
/// driver with KMDF, with a device-add and an unload callback.
///
/// # Safety
/// Called once, at `PASSIVE_LEVEL`, with this driver's `DRIVER_OBJECT` and registry path,
/// after `WdfVersionBind` succeeded.
// SAFETY: no other item of the image has this name (the sample exports it the same way).
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut c_void,
    registry_path: *const UnicodeString,
) -> NtStatus {
    wdf::layout_line(log);
    let mut config = WdfDriverConfig {
        size: wdf_size::<WdfDriverConfig>(),
        evt_driver_device_add: Some(evt_driver_device_add),
        evt_driver_unload: Some(evt_driver_unload),
        driver_init_flags: 0,
        driver_pool_tag: 0,
    };
    // SAFETY: `driver` and `registry_path` are the kernel's arguments to DriverEntry; the
    // configuration is a live, initialized local that WDF reads during the call; no object
    // attributes and no output handle are allowed (NULL).
    let status = unsafe {
        wdf::driver_create(driver, registry_path, ptr::null_mut(), &raw mut config, ptr::null_mut())
    };
    log(format_args!("system-thread-sample: WdfDriverCreate returned {status:#010x}"));
    status
}

/// Creates the device, with a cleanup callback, and starts its worker.
extern "C" fn evt_driver_device_add(
    _driver: WdfHandle,
    mut device_init: *mut WdfDeviceInit,
) -> NtStatus {
    let mut attributes = WdfObjectAttributes {
        size: wdf_size::<WdfObjectAttributes>(),
        evt_cleanup_callback: Some(evt_device_cleanup),
        evt_destroy_callback: None,
        // What WDF_OBJECT_ATTRIBUTES_INIT sets (zero would be an invalid value for both).
        execution_level: wdf::EXECUTION_LEVEL_INHERIT_FROM_PARENT,
        synchronization_scope: wdf::SYNCHRONIZATION_SCOPE_INHERIT_FROM_PARENT,
        parent_object: ptr::null_mut(),
        context_size_override: 0,
        context_type_info: ptr::null(),
    };
    let mut device: WdfHandle = ptr::null_mut();
    // SAFETY: `device_init` is the framework's, passed to this callback and not yet used; the
    // attributes and the output handle are live locals.
    let status =
        unsafe { wdf::device_create(&raw mut device_init, &raw mut attributes, &raw mut device) };
    if status < 0 {
        log(format_args!("system-thread-sample: WdfDeviceCreate returned {status:#010x}"));
        return status;
    }

    // SAFETY: `device` was just created and is alive until its cleanup callback has run.
    let device_object = unsafe { wdf::device_wdm_get_device_object(device) };
    let io = NonNull::new(device_object).map(|object| {
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
extern "C" fn evt_device_cleanup(device: WdfHandle) {
    if let Some(worker) = WORKER.take(device.addr()) {
        #[cfg(twin_leak)]
        {
            log(format_args!("kmdf-twin: twin_leak: the cleanup callback loses the worker"));
            core::mem::forget(worker);
        }
        #[cfg(not(twin_leak))]
        {
            let ticks = worker.stop();
            log(format_args!(
                "system-thread-sample: device cleanup: worker stopped after {ticks} ticks"
            ));
        }
    }
}

/// Every device is gone by now, and with it every worker; joining whatever is left is a guard,
/// not the normal path.
extern "C" fn evt_driver_unload(_driver: WdfHandle) {
    if let Some(worker) = WORKER.take_any() {
        let ticks = worker.stop();
        log(format_args!(
            "system-thread-sample: unload joined a leftover worker after {ticks} ticks"
        ));
    }
    // Every handle is joined by now: a live thread here would run in the unloaded image.
    log(format_args!("kmdf-twin: live threads at unload: {}", system_thread::live_threads()));
    log(format_args!("system-thread-sample: unloaded"));
}
