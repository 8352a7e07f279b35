//! Demo driver for `system-thread`, run under Wine and speakeasy by `tools/emulate`.
//!
//! DriverEntry exercises the public API the way a driver author would and reports every
//! result with `DbgPrint`; `tools/emulate/checks.py` holds the expectations.
//!
//! # Output format
//! Every line is
//!
//! ```text
//! system-thread-demo: <scenario> <event>[ <key>=<value>]*[ text=<free text>]
//! ```
//!
//! `<scenario>` and `<event>` are single words; values contain no spaces (numbers: decimal,
//! or hex with `0x`; thread ids and NTSTATUS values are hex). `text=`, if present, is last
//! and runs to the end of the line (a `Display` text). `ok=1`/`ok=0` is the driver's own
//! verdict, always computed: the joined value against an expected value the joiner computes
//! independently (`expected=`). Lines printed by a spawned thread carry the `id=` it reads
//! with `current_id()`; the emulator's log says which OS thread printed each line.
//!
//! Scenarios: `driver` (begin/end/unload-begin/unload-complete), `spawn` (a), `parallel`
//! (b), `timeout` (c), `scope` (d), `worker` (e), `irql` (f), `builder` (g), `io_object`
//! (h), `display` (i), the brackets `calls`, `empty-calls`, `scoped-calls`,
//! `stoppable-calls`, `builder-calls` (one spawn+join each between a `begin` and an `end`
//! marker, for counting kernel calls and instructions, then `joined`; see `bench.rs`),
//! `bench` (`--cfg bench_cycles`), `leak` (leak variants), `selftest`.
//!
//! # Variants (cfgs set only by the tooling, see tools/emulate/common.py)
//! * none: all scenarios through the library.
//! * `raw_baseline`: scenarios a and b and the spawn+join cycle with direct kernel calls,
//!   from the same sources, for comparison.
//! * `bench_cycles`: only a, b and 1,000 timed spawn+join cycles (with either of the above).
//! * `scenarios_ab`: only a, b and the `calls` brackets, the raw variant's scenarios through
//!   the library (instruction counts of the same program shape).
//! * `leak_thread`: also a thread whose join handle is kept in a static that `DriverUnload`
//!   never takes; `leak_forget`: the same through `mem::forget` of a `JoinHandle`. Both must be
//!   reported by `live_threads` in `DriverUnload` and caught by the leak checks (Wine, speakeasy).
//! * `raw_join_selftest`: also a raw join, to check the emulators' semantics.
//! * `guard`: no scenario, no thread: the innocent driver sharing the Wine host.

#![no_std]

extern crate alloc;

#[macro_use]
pub mod rt;

/// Prints one report line: `system-thread-demo: <scenario> <event> <fields>` (see the crate
/// documentation for the format).
macro_rules! report {
    ($scenario:literal, $event:literal) => {
        log!(concat!("system-thread-demo: ", $scenario, " ", $event))
    };
    ($scenario:literal, $event:literal, $fields:literal $(, $arg:expr)* $(,)?) => {
        log!(concat!("system-thread-demo: ", $scenario, " ", $event, " ", $fields) $(, $arg)*)
    };
}

mod work;

#[cfg(any(raw_join_selftest, raw_baseline))]
mod raw;

#[cfg(raw_baseline)]
mod baseline;
#[cfg(not(raw_baseline))]
mod scenarios;
#[cfg(not(raw_baseline))]
mod slot;

mod bench;

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
    if cfg!(guard) {
        return guard_entry(driver);
    }
    report!("driver", "begin");
    report!(
        "driver",
        "pool",
        "routine={}",
        if rt::has_ex_allocate_pool2() { "ExAllocatePool2" } else { "ExAllocatePoolWithTag" }
    );

    let ok = run_scenarios(driver.cast());

    #[cfg(raw_join_selftest)]
    selftest::run();

    if !driver.is_null() {
        // SAFETY: the I/O manager passes a valid, writable DRIVER_OBJECT (checked for null
        // because emulators may not).
        unsafe { (*driver).driver_unload = Some(driver_unload) };
    }

    #[cfg(leak_thread)]
    leak::start();
    #[cfg(leak_forget)]
    scenarios::leak_forget();

    // Always STATUS_SUCCESS: a failed DriverEntry gets no DriverUnload, and the worker must
    // be stopped by one. The verdict is in `ok=`.
    report!("driver", "end", "status={:#x} ok={}", STATUS_SUCCESS, u8::from(ok));
    STATUS_SUCCESS
}

unsafe extern "system" fn driver_unload(_driver: *mut DriverObject) {
    report!("driver", "unload-begin");
    // Only the full demo starts the worker; the builds compared with the raw baseline
    // (bench_cycles, scenarios_ab) leave its teardown out, as the baseline does.
    #[cfg(not(any(raw_baseline, bench_cycles, scenarios_ab)))]
    scenarios::stop_worker();
    // Every handle is joined by now: a live thread here is a leak that would run in the
    // unloaded image. (Every library build reports it, also the ones compared with the raw
    // baseline, which has no such count.)
    #[cfg(not(raw_baseline))]
    report!("driver", "live-threads", "count={}", system_thread::live_threads());
    report!("driver", "unload-complete");
}

/// `--cfg guard`: the innocent driver the Wine stages load into the same host first. It
/// creates no thread; if the host dies, a thread of the driver under test did it.
fn guard_entry(driver: *mut DriverObject) -> i32 {
    unsafe extern "system" fn guard_unload(_driver: *mut DriverObject) {
        report!("guard", "unload");
    }
    if !driver.is_null() {
        // SAFETY: as in `driver_entry`.
        unsafe { (*driver).driver_unload = Some(guard_unload) };
    }
    report!("guard", "loaded");
    STATUS_SUCCESS
}

#[cfg(not(raw_baseline))]
fn run_scenarios(driver: *mut c_void) -> bool {
    use bench::library as l;
    use scenarios as s;
    let mut ok = s::spawn_join();
    ok &= s::parallel();
    ok &= bench::count(&bench::CALLS, l::spawn_join_once);
    ok &= bench::count_empty();
    // The benchmark and `scenarios_ab` builds stop here: they match the raw variant's
    // scenarios.
    #[cfg(bench_cycles)]
    {
        ok &= bench::run("library", l::spawn_join_once);
    }
    #[cfg(any(bench_cycles, scenarios_ab))]
    let _ = driver;
    #[cfg(not(any(bench_cycles, scenarios_ab)))]
    {
        ok &= bench::count(&bench::SCOPED, l::scoped_spawn_join_once);
        ok &= bench::count(&bench::STOPPABLE, l::stoppable_spawn_join_once);
        ok &= bench::count(&bench::BUILDER, l::builder_spawn_join_once);
        // Started early so that it sleeps, idle, while the other scenarios run.
        ok &= s::start_worker();
        ok &= s::processors();
        ok &= s::timeout();
        ok &= s::scoped();
        ok &= s::irql();
        ok &= s::builder();
        ok &= s::io_object(driver);
        ok &= s::display();
    }
    ok
}

#[cfg(raw_baseline)]
fn run_scenarios(_driver: *mut c_void) -> bool {
    use baseline as b;
    let mut ok = b::spawn_join();
    ok &= b::parallel();
    ok &= bench::count(&bench::CALLS, b::spawn_join_once);
    ok &= bench::count_empty();
    #[cfg(bench_cycles)]
    {
        ok &= bench::run("raw", b::spawn_join_once);
    }
    ok
}

/// The deliberate leak: a thread whose join handle is kept in a static that `DriverUnload`
/// never takes, so the thread keeps executing this image's code after unload.
#[cfg(leak_thread)]
mod leak {
    use core::time::Duration;
    use system_thread::{JoinHandle, SystemThread, sleep};

    use crate::slot::Slot;

    static KEPT: Slot<JoinHandle<()>> = Slot::new();

    pub fn start() {
        match SystemThread::spawn(|| {
            report!("leak", "thread-running", "via=static");
            loop {
                let _ = sleep(Duration::from_millis(10));
            }
        }) {
            Ok(handle) => report!("leak", "kept", "stored={}", u8::from(KEPT.put(handle).is_ok())),
            Err(_) => report!("leak", "spawn-error"),
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

    use raw::{KeWaitForSingleObject, ObfDereferenceObject, PsTerminateSystemThread};

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
        unsafe { context.cast::<u32>().write_volatile(if sum == 12 * 1024 { 42 } else { 1 }) };
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
        let (status, handle, _) = unsafe { raw::create(start, ctx) };
        if status < 0 {
            report!("selftest", "create-failed", "name={} status={:#x}", name, status);
            return;
        }
        // SAFETY: `handle` was just returned by `create` and is not used again.
        let thread = match unsafe { raw::reference_and_close(handle) } {
            Ok(thread) => thread,
            Err(status) => {
                // Cannot join: keep `value` alive forever rather than let the thread scribble.
                report!("selftest", "reference-failed", "name={} status={:#x}", name, status);
                loop {
                    core::hint::spin_loop();
                }
            }
        };
        // SAFETY: `thread` is a referenced thread object; no timeout (null).
        let wait = unsafe { KeWaitForSingleObject(thread, 0, raw::KERNEL_MODE, 0, ptr::null()) };
        // SAFETY: drops the reference taken above, once.
        unsafe { ObfDereferenceObject(thread) };
        // SAFETY: the thread has exited (wait on the thread object), so no one else writes.
        let value = unsafe { (&raw const value).read_volatile() };
        report!("selftest", "joined", "name={} wait={:#x} value={}", name, wait, value);
    }

    pub fn run() {
        spawn_and_join("return", returns);
        spawn_and_join("terminate", terminates);
    }
}
