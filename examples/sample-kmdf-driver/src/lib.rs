//! # system-thread KMDF sample
//!
//! A KMDF driver for one root-enumerated device (`root\SYSTEM_THREAD_SAMPLE`). When the device
//! is added, the driver starts a named, stoppable system thread on the device's WDM device
//! object, and creates a periodic `WDFTIMER` as a child of the device. The worker sleeps until
//! there is work or it must stop: it makes no wakeup, and no kernel call, while nothing is
//! queued. Work comes from the timer: while the device is in D0 (started in `EvtDeviceD0Entry`,
//! stopped with `WdfTimerStop(wait = TRUE)` in `EvtDeviceD0Exit`), its `EvtTimerFunc`, a DPC at
//! `DISPATCH_LEVEL`, queues one work item every second (`WorkQueue::notify`: a count and a
//! `KeSetEvent`), and the worker wakes once for it. When the device is removed, its cleanup
//! callback asks the thread to stop and joins it (a wait on the thread object), then prints
//! what it did: after that, no driver code runs on the thread, so the driver may unload.
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
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use system_thread::IoObject;
use wdk_alloc::WdkAllocator;
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_SYNCHRONIZATION_SCOPE, BOOLEAN, DRIVER_OBJECT, NTSTATUS,
    PCUNICODE_STRING, PDRIVER_OBJECT, STATUS_SUCCESS, ULONG, WDF_DRIVER_CONFIG, WDF_NO_HANDLE,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDF_PNPPOWER_EVENT_CALLBACKS,
    WDF_POWER_DEVICE_STATE, WDF_TIMER_CONFIG, WDFDEVICE, WDFDEVICE_INIT, WDFDRIVER, WDFOBJECT,
    WDFTIMER, call_unsafe_wdf_function_binding,
};

/// Pool allocations of `alloc` users in the driver (`ExAllocatePool2`, non-paged). The worker
/// itself does not allocate through it: `system-thread` makes its one allocation per thread
/// directly from the pool.
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

/// The running worker, keyed by the `WDFDEVICE` it belongs to. Only `PASSIVE_LEVEL` callbacks
/// (device add, cleanup, unload) touch it: its lock is never taken at `DISPATCH_LEVEL`.
static WORKER: worker::WorkerSlot = worker::WorkerSlot::new();

/// The worker's work: the timer's DPC queues items here, the worker takes them. A `static`, so
/// it outlives every DPC and the worker; `notify` is safe at any time (see `worker`).
static WORK: worker::WorkQueue = worker::WorkQueue::new();

/// The timer of the device that has the worker, keyed by that device: created in its device
/// add, started in its D0 entry, stopped in its D0 exit. Another device's power callbacks find
/// no timer here.
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
    fn set(&self, device: usize, timer: WDFTIMER) {
        self.timer.store(timer.cast(), Ordering::Release);
        self.device.store(device, Ordering::Release);
    }

    /// `device`'s timer, if it has one.
    fn of(&self, device: usize) -> Option<WDFTIMER> {
        if self.device.load(Ordering::Acquire) != device {
            return None;
        }
        let timer = self.timer.load(Ordering::Acquire);
        (!timer.is_null()).then(|| timer.cast())
    }

    /// Forgets `device`'s timer (its cleanup: the framework deletes the timer with it).
    fn clear(&self, device: usize) {
        if self.device.compare_exchange(device, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.timer.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

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

/// `WDF_REL_TIMEOUT_IN_MS(worker::PERIOD_MS)`: one period from now, in the relative
/// (negative) 100 ns units of `WdfTimerStart`.
fn one_period_from_now() -> i64 {
    -i64::from(worker::PERIOD_MS) * 10_000
}

/// Creates the device, with D0 entry/exit callbacks and a cleanup callback, starts its worker
/// and creates the timer that queues its work.
extern "C" fn evt_driver_device_add(
    _driver: WDFDRIVER,
    mut device_init: *mut WDFDEVICE_INIT,
) -> NTSTATUS {
    let mut pnp_power_callbacks = WDF_PNPPOWER_EVENT_CALLBACKS {
        Size: wdf_size::<WDF_PNPPOWER_EVENT_CALLBACKS>(),
        EvtDeviceD0Entry: Some(evt_device_d0_entry),
        EvtDeviceD0Exit: Some(evt_device_d0_exit),
        ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
    };
    // SAFETY: `device_init` is the framework's, passed to this callback and not yet given to
    // WdfDeviceCreate; the callbacks are a live, initialized local that WDF copies.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetPnpPowerEventCallbacks,
            device_init,
            &raw mut pnp_power_callbacks
        );
    }
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
    // What WDF_TIMER_CONFIG_INIT_PERIODIC sets, but without automatic serialization: `notify`
    // takes no lock, so the callback needs none of the framework's.
    let mut timer_config = WDF_TIMER_CONFIG {
        Size: wdf_size::<WDF_TIMER_CONFIG>(),
        EvtTimerFunc: Some(evt_timer_func),
        Period: worker::PERIOD_MS,
        AutomaticSerialization: BOOLEAN::from(false),
        ..WDF_TIMER_CONFIG::default()
    };
    let mut timer_attributes = WDF_OBJECT_ATTRIBUTES {
        Size: wdf_size::<WDF_OBJECT_ATTRIBUTES>(),
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        // A child of the device: the framework stops and deletes it with the device.
        ParentObject: device.cast(),
        ..WDF_OBJECT_ATTRIBUTES::default()
    };
    let mut timer: WDFTIMER = WDF_NO_HANDLE.cast();
    // SAFETY: the configuration, the attributes (whose parent is the live device) and the output
    // handle are live locals.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfTimerCreate,
            &raw mut timer_config,
            &raw mut timer_attributes,
            &raw mut timer
        )
    };
    if !wdk::nt_success(status) {
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

/// The device entered D0 (it started, or came back from a low-power state): its timer starts
/// queuing work, every `PERIOD_MS`, the first time one period from now.
extern "C" fn evt_device_d0_entry(
    device: WDFDEVICE,
    previous_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    if let Some(timer) = TIMER.of(device.addr()) {
        // SAFETY: the device's own timer, alive while the device is (it is the timer's parent),
        // and the device is in its D0 entry.
        let _was_queued = unsafe {
            call_unsafe_wdf_function_binding!(WdfTimerStart, timer, one_period_from_now())
        };
        log(format_args!(
            "system-thread-sample: D0 entry from power state {previous_state}: timer started, \
             every {} ms",
            worker::PERIOD_MS
        ));
    }
    STATUS_SUCCESS
}

/// The device leaves D0 (it is stopped or removed, or goes to sleep): stop its timer and wait
/// for a callback in progress (`Wait` = TRUE, allowed here: D0 exit runs at `PASSIVE_LEVEL`).
/// From its return until the next D0 entry nothing queues work, and the worker, asleep in its
/// wait, makes no wakeup.
extern "C" fn evt_device_d0_exit(
    device: WDFDEVICE,
    target_state: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    if let Some(timer) = TIMER.of(device.addr()) {
        // SAFETY: the device's own timer, alive while the device is; PASSIVE_LEVEL, outside the
        // timer's own callback.
        let _was_queued =
            unsafe { call_unsafe_wdf_function_binding!(WdfTimerStop, timer, BOOLEAN::from(true)) };
        log(format_args!(
            "system-thread-sample: D0 exit to power state {target_state}: timer stopped"
        ));
    }
    STATUS_SUCCESS
}

/// The timer's `EvtTimerFunc`: a DPC, at `DISPATCH_LEVEL`. It queues one work item: an atomic
/// count and a `KeSetEvent`, both allowed here; no lock, no wait, no allocation.
extern "C" fn evt_timer_func(_timer: WDFTIMER) {
    let _signalled = WORK.notify();
}

/// The device is going away (removal, or a failed device add): stop and join its worker.
/// Runs at `PASSIVE_LEVEL` for device objects.
///
/// The timer needs nothing here, and must not be touched: D0 exit stopped it on the way out of
/// D0, and the framework disposes of a child (stopping a timer and waiting for its callback)
/// before it calls its parent's cleanup callback, after which the child's handle is not the
/// driver's to use. Were a timer callback still to come, `notify` would find the queue closed
/// and do nothing.
extern "C" fn evt_device_cleanup(device: WDFOBJECT) {
    TIMER.clear(device.addr());
    if let Some(worker) = WORKER.take(device.addr()) {
        let done = worker.stop();
        log(format_args!(
            "system-thread-sample: device cleanup: worker stopped after {} wakes, {} items",
            done.wakes, done.items
        ));
    }
}

/// Every device is gone by now, and with it every worker; joining whatever is left is a guard,
/// not the normal path.
extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    if let Some(worker) = WORKER.take_any() {
        let done = worker.stop();
        log(format_args!(
            "system-thread-sample: unload joined a leftover worker after {} wakes",
            done.wakes
        ));
    }
    log(format_args!("system-thread-sample: unloaded"));
}
