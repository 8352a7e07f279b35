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
//!   `EvtDriverDeviceAdd` registers D0 entry/exit callbacks, creates the device with a cleanup
//!   callback, gets its WDM `DEVICE_OBJECT`, starts the worker on it and creates the periodic
//!   timer (a child of the device) whose `EvtTimerFunc` notifies the worker; D0 entry starts
//!   the timer, D0 exit stops it (waiting for its callback); the cleanup callback stops and
//!   joins the worker; `EvtDriverUnload` joins a leftover worker. What differs: WDF is called
//!   through
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
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use system_thread::IoObject;

use rt::UnicodeString;
use wdf::{
    Aligned8Boolean, NtStatus, WdfDeviceInit, WdfDriverConfig, WdfHandle, WdfObjectAttributes,
    WdfPnpPowerEventCallbacks, WdfPowerDeviceState, WdfTimerConfig,
};

/// The running worker, keyed by the `WDFDEVICE` it belongs to (as in the sample). Only
/// `PASSIVE_LEVEL` callbacks touch it.
static WORKER: worker::WorkerSlot = worker::WorkerSlot::new();

/// The worker's work: the timer's DPC queues items here (as in the sample).
static WORK: worker::WorkQueue = worker::WorkQueue::new();

/// The timer of the device that has the worker, keyed by that device (as in the sample).
static TIMER: DeviceTimer = DeviceTimer::new();

/// A `WDFTIMER` and the `WDFDEVICE` it belongs to.
struct DeviceTimer {
    device: AtomicUsize,
    timer: AtomicPtr<c_void>,
}

impl DeviceTimer {
    const fn new() -> Self {
        Self { device: AtomicUsize::new(0), timer: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Records `timer` as `device`'s (in its device add, before any power callback).
    fn set(&self, device: usize, timer: WdfHandle) {
        self.timer.store(timer, Ordering::Release);
        self.device.store(device, Ordering::Release);
    }

    /// `device`'s timer, if it has one.
    fn of(&self, device: usize) -> Option<WdfHandle> {
        if self.device.load(Ordering::Acquire) != device {
            return None;
        }
        let timer = self.timer.load(Ordering::Acquire);
        (!timer.is_null()).then_some(timer)
    }

    /// Forgets `device`'s timer (its cleanup: the framework deletes the timer with it).
    fn clear(&self, device: usize) {
        if self.device.compare_exchange(device, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.timer.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

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

/// `WDF_REL_TIMEOUT_IN_MS(worker::PERIOD_MS)`: one period from now, in the relative
/// (negative) 100 ns units of `WdfTimerStart`.
fn one_period_from_now() -> i64 {
    -i64::from(worker::PERIOD_MS) * 10_000
}

/// Creates the device, with D0 entry/exit callbacks and a cleanup callback, starts its worker
/// and creates the timer that queues its work.
extern "C" fn evt_driver_device_add(
    _driver: WdfHandle,
    mut device_init: *mut WdfDeviceInit,
) -> NtStatus {
    let mut pnp_power_callbacks = WdfPnpPowerEventCallbacks {
        size: wdf_size::<WdfPnpPowerEventCallbacks>(),
        evt_device_d0_entry: Some(evt_device_d0_entry),
        evt_device_d0_entry_post_interrupts_enabled: None,
        evt_device_d0_exit: Some(evt_device_d0_exit),
        others: [None; 14],
    };
    // SAFETY: `device_init` is the framework's, passed to this callback and not yet given to
    // WdfDeviceCreate; the callbacks are a live, initialized local that WDF copies.
    unsafe {
        wdf::device_init_set_pnp_power_event_callbacks(device_init, &raw mut pnp_power_callbacks);
    }
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

    let worker = match worker::start(&WORK, io, log) {
        Ok(worker) => worker,
        Err(worker::StartError::Busy) => {
            // Another device has the worker (and the timer): this one runs without.
            log(format_args!("system-thread-sample: this driver runs one worker"));
            return STATUS_SUCCESS;
        }
        Err(error) => {
            log(format_args!("{error}"));
            // WDF deletes the device; its cleanup callback finds no worker.
            return error.status().0;
        }
    };
    log(format_args!(
        "system-thread-sample: worker {} started ({})",
        worker.thread_id(),
        if worker.pins_driver() { "IoCreateSystemThread" } else { "PsCreateSystemThread" }
    ));

    // The source of work: a periodic timer whose callback, a DPC, queues one item per period.
    // What WDF_TIMER_CONFIG_INIT_PERIODIC sets, but without automatic serialization.
    let mut timer_config = WdfTimerConfig {
        size: wdf_size::<WdfTimerConfig>(),
        evt_timer_func: Some(evt_timer_func),
        period: worker::PERIOD_MS,
        automatic_serialization: u8::from(false),
        tolerable_delay: 0,
        use_high_resolution_timer: Aligned8Boolean(0),
    };
    let mut timer_attributes = WdfObjectAttributes {
        size: wdf_size::<WdfObjectAttributes>(),
        evt_cleanup_callback: None,
        evt_destroy_callback: None,
        execution_level: wdf::EXECUTION_LEVEL_INHERIT_FROM_PARENT,
        synchronization_scope: wdf::SYNCHRONIZATION_SCOPE_INHERIT_FROM_PARENT,
        // A child of the device: the framework stops and deletes it with the device.
        parent_object: device,
        context_size_override: 0,
        context_type_info: ptr::null(),
    };
    let mut timer: WdfHandle = ptr::null_mut();
    // SAFETY: the configuration, the attributes (whose parent is the live device) and the output
    // handle are live locals.
    let status = unsafe {
        wdf::timer_create(&raw mut timer_config, &raw mut timer_attributes, &raw mut timer)
    };
    if status < 0 {
        log(format_args!("system-thread-sample: WdfTimerCreate returned {status:#010x}"));
        let _done = worker.stop();
        return status;
    }
    TIMER.set(device.addr(), timer);
    if let Err(extra) = WORKER.put(device.addr(), worker) {
        log(format_args!(
            "system-thread-sample: this driver runs one worker; stopping the new one"
        ));
        let _done = extra.stop();
    }
    STATUS_SUCCESS
}

/// The device entered D0: its timer starts queuing work, every `PERIOD_MS`, the first time one
/// period from now.
extern "C" fn evt_device_d0_entry(
    device: WdfHandle,
    previous_state: WdfPowerDeviceState,
) -> NtStatus {
    if let Some(timer) = TIMER.of(device.addr()) {
        // SAFETY: the device's own timer, alive while the device is (it is the timer's parent),
        // and the device is in its D0 entry.
        let _was_queued = unsafe { wdf::timer_start(timer, one_period_from_now()) };
        log(format_args!(
            "system-thread-sample: D0 entry from power state {previous_state}: timer started, \
             every {} ms",
            worker::PERIOD_MS
        ));
    }
    STATUS_SUCCESS
}

/// The device leaves D0: stop its timer and wait for a callback in progress (`Wait` = TRUE, at
/// `PASSIVE_LEVEL`). Until the next D0 entry nothing queues work, and the worker makes no
/// wakeup.
extern "C" fn evt_device_d0_exit(device: WdfHandle, target_state: WdfPowerDeviceState) -> NtStatus {
    if let Some(timer) = TIMER.of(device.addr()) {
        // SAFETY: the device's own timer, alive while the device is; PASSIVE_LEVEL, outside the
        // timer's own callback.
        let _was_queued = unsafe { wdf::timer_stop(timer, u8::from(true)) };
        log(format_args!(
            "system-thread-sample: D0 exit to power state {target_state}: timer stopped"
        ));
    }
    STATUS_SUCCESS
}

/// The timer's `EvtTimerFunc`: a DPC, at `DISPATCH_LEVEL`. It queues one work item: an atomic
/// count and a `KeSetEvent`; no lock, no wait, no allocation.
extern "C" fn evt_timer_func(_timer: WdfHandle) {
    let _signalled = WORK.notify();
}

/// The device is going away (removal, or a failed device add): stop and join its worker.
/// Runs at `PASSIVE_LEVEL` for device objects. The timer is not touched: D0 exit stopped it,
/// and the framework disposed of it (a child) before this callback (as in the sample).
extern "C" fn evt_device_cleanup(device: WdfHandle) {
    TIMER.clear(device.addr());
    if let Some(worker) = WORKER.take(device.addr()) {
        #[cfg(twin_leak)]
        {
            log(format_args!("kmdf-twin: twin_leak: the cleanup callback loses the worker"));
            core::mem::forget(worker);
        }
        #[cfg(not(twin_leak))]
        {
            let done = worker.stop();
            log(format_args!(
                "system-thread-sample: device cleanup: worker stopped after {} wakes, {} items",
                done.wakes, done.items
            ));
        }
    }
}

/// Every device is gone by now, and with it every worker; joining whatever is left is a guard,
/// not the normal path.
extern "C" fn evt_driver_unload(_driver: WdfHandle) {
    if let Some(worker) = WORKER.take_any() {
        let done = worker.stop();
        log(format_args!(
            "system-thread-sample: unload joined a leftover worker after {} wakes",
            done.wakes
        ));
    }
    // Every handle is joined by now: a live thread here would run in the unloaded image.
    log(format_args!("kmdf-twin: live threads at unload: {}", system_thread::live_threads()));
    log(format_args!("system-thread-sample: unloaded"));
}
