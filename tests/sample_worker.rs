//! The KMDF sample's worker (`examples/sample-kmdf-driver/src/worker.rs`), compiled from the
//! sample's own source file and run against the host kernel model: the code the driver ships
//! is the code tested here.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

#[path = "../examples/sample-kmdf-driver/src/worker.rs"]
mod worker;

use std::fmt;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use system_thread::host::{Call, Kernel};
use system_thread::{IoObject, SpawnError};
use worker::{Log, PERIOD, THREAD_NAME, Worker, WorkerSlot};

/// A `Log` function with its own line buffer, distinct for every use of the macro (each test
/// gets its own, so tests running in parallel do not see each other's lines).
macro_rules! log_buffer {
    () => {{
        static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
        fn log(args: fmt::Arguments<'_>) {
            LINES.lock().unwrap().push(args.to_string());
        }
        (log as Log, &LINES)
    }};
}

fn lines(buffer: &Mutex<Vec<String>>) -> Vec<String> {
    buffer.lock().unwrap().clone()
}

/// A stand-in for the WDM `DEVICE_OBJECT`: the model counts a reference on any non-NULL I/O
/// object and never dereferences it.
static DEVICE_OBJECT: u64 = 0;

fn device_object() -> IoObject<'static> {
    // SAFETY: the host model accepts any non-NULL pointer as an I/O object and only uses its
    // address (to count the reference the kernel holds while the thread runs).
    unsafe { IoObject::from_raw(NonNull::from(&DEVICE_OBJECT).cast()) }
}

fn device_address() -> usize {
    (&raw const DEVICE_OBJECT).addr()
}

/// A short period, so tests see several ticks quickly.
const FAST: Duration = Duration::from_millis(5);

/// Waits (up to a generous limit) until `buffer` holds at least `n` tick lines.
fn wait_for_ticks(buffer: &Mutex<Vec<String>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tick_lines(&lines(buffer)) < n {
        assert!(
            Instant::now() < deadline,
            "the worker did not tick {n} times: {:?}",
            lines(buffer)
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn tick_lines(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with(&format!("{THREAD_NAME}: tick "))).count()
}

#[test]
fn the_driver_settings_are_a_named_one_second_worker() {
    assert_eq!(THREAD_NAME, "system-thread-sample");
    assert_eq!(PERIOD, Duration::from_secs(1));
}

#[test]
fn worker_on_a_device_object_ticks_pins_the_object_and_joins_on_stop() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let ticks = kernel.run(|| {
        let worker = worker::start(Some(device_object()), FAST, log).unwrap();
        assert!(worker.pins_driver());
        wait_for_ticks(buffer, 3);

        let running = kernel.outstanding();
        assert_eq!(running.running_threads, 1);
        assert_eq!(
            running.io_object_references, 1,
            "the kernel holds the device while the thread runs"
        );

        let id = worker.thread_id();
        let ticks = worker.stop();
        assert!(ticks >= 3, "stopped after {ticks} ticks");

        let records = kernel.threads();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, id.0);
        assert_eq!(records[0].name.as_deref(), Some(THREAD_NAME));
        assert_eq!(records[0].io_object, Some(device_address()));
        ticks
    });
    // `stop` joined: the thread has exited and given the device object back.
    assert_eq!(kernel.outstanding().running_threads, 0);
    assert_eq!(kernel.outstanding().io_object_references, 0);
    assert_eq!(kernel.calls(Call::IoCreateSystemThread), 1);
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
    kernel.assert_clean();

    let lines = lines(buffer);
    assert!(lines[0].starts_with(&format!("{THREAD_NAME}: running on thread ")), "{lines:?}");
    assert_eq!(tick_lines(&lines), usize::try_from(ticks).unwrap(), "one line per tick: {lines:?}");
    assert_eq!(lines.last().unwrap(), &format!("{THREAD_NAME}: joined after {ticks} ticks"));
    assert!(lines.contains(&format!("{THREAD_NAME}: stop requested")));
}

#[test]
fn without_io_create_system_thread_the_worker_falls_back_and_still_joins() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    kernel.hide_routine(Call::IoCreateSystemThread);
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        let worker = worker::start(Some(device_object()), FAST, log).unwrap();
        assert!(!worker.pins_driver());
        wait_for_ticks(buffer, 2);
        assert_eq!(kernel.outstanding().running_threads, 1);
        assert_eq!(kernel.outstanding().io_object_references, 0, "nothing pins the driver now");
        assert!(worker.stop() >= 2);
    });
    assert_eq!(kernel.calls(Call::IoCreateSystemThread), 0);
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1);
    let records = kernel.threads();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].io_object, None);
    assert_eq!(records[0].name.as_deref(), Some(THREAD_NAME), "the fallback thread is named too");
    kernel.assert_clean();

    let lines = lines(buffer);
    assert_eq!(
        lines[0],
        format!(
            "{THREAD_NAME}: IoCreateSystemThread is not exported here; using PsCreateSystemThread"
        )
    );
}

#[test]
fn without_an_io_object_the_worker_is_an_ordinary_system_thread() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        let worker = worker::start(None, FAST, log).unwrap();
        assert!(!worker.pins_driver());
        wait_for_ticks(buffer, 1);
        assert!(worker.stop() >= 1);
    });
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1);
    assert_eq!(kernel.threads()[0].io_object, None);
    kernel.assert_clean();
}

#[test]
fn stop_wakes_the_worker_at_once_instead_of_after_the_period() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        let worker = worker::start(Some(device_object()), Duration::from_hours(1), log).unwrap();
        // Let the thread reach its wait first.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines(buffer).is_empty() {
            assert!(Instant::now() < deadline, "the worker never logged its start");
            thread::sleep(Duration::from_millis(1));
        }
        let asked = Instant::now();
        assert_eq!(worker.stop(), 0);
        assert!(asked.elapsed() < Duration::from_mins(1), "stop took {:?}", asked.elapsed());
    });
    kernel.assert_clean();
}

#[test]
fn a_failed_spawn_is_reported_and_leaves_nothing_behind() {
    const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32.cast_signed();
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::IoCreateSystemThread, 1, INSUFFICIENT_RESOURCES);
    kernel.fail_nth(Call::PsCreateSystemThread, 1, INSUFFICIENT_RESOURCES);
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        // Only a missing routine falls back; any other failure is the driver's to report.
        let error = worker::start(Some(device_object()), FAST, log).unwrap_err();
        assert!(
            matches!(error, SpawnError::Create(s) if s.0 == INSUFFICIENT_RESOURCES),
            "{error:?}"
        );
        let error = worker::start(None, FAST, log).unwrap_err();
        assert!(
            matches!(error, SpawnError::Create(s) if s.0 == INSUFFICIENT_RESOURCES),
            "{error:?}"
        );
    });
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1, "no fallback after a real failure");
    assert!(lines(buffer).is_empty(), "the closure never ran: {:?}", lines(buffer));
    kernel.assert_clean();
}

#[test]
fn a_failure_to_name_the_thread_is_reported_and_leaves_nothing_behind() {
    const ACCESS_DENIED: i32 = 0xC000_0022_u32.cast_signed();
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::ZwSetInformationThread, 1, ACCESS_DENIED);
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        let error = worker::start(Some(device_object()), FAST, log).unwrap_err();
        assert!(matches!(error, SpawnError::Name(s) if s.0 == ACCESS_DENIED), "{error:?}");
    });
    assert!(lines(buffer).is_empty(), "the closure never ran: {:?}", lines(buffer));
    kernel.assert_clean();
}

/// The driver's path: device add starts a worker and parks it in the slot under the device's
/// key; the cleanup callback of that device takes it out and stops it.
#[test]
fn the_slot_keeps_one_worker_per_owner_until_its_cleanup() {
    const DEVICE: usize = 0x1000;
    const OTHER_DEVICE: usize = 0x2000;
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    kernel.run(|| {
        let slot = WorkerSlot::new();
        assert!(slot.take_any().is_none());

        slot.put(DEVICE, worker::start(Some(device_object()), FAST, log).unwrap()).unwrap();
        // A second device finds the slot full and gets its worker back, to stop it.
        let second = worker::start(None, FAST, log).unwrap();
        let second: Worker = slot.put(OTHER_DEVICE, second).unwrap_err();
        let _ = second.stop();
        // The other device's cleanup must not take this device's worker.
        assert!(slot.take(OTHER_DEVICE).is_none());
        assert_eq!(kernel.outstanding().running_threads, 1);

        wait_for_ticks(buffer, 1);
        let worker = slot.take(DEVICE).unwrap();
        assert!(worker.stop() >= 1);
        assert!(slot.take(DEVICE).is_none());
        assert!(slot.take_any().is_none());
    });
    kernel.assert_clean();
}

#[test]
fn unload_takes_whatever_worker_is_left() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    kernel.run(|| {
        static SLOT: WorkerSlot = WorkerSlot::new();
        SLOT.put(7, worker::start(Some(device_object()), FAST, log).unwrap()).unwrap();
        let worker = SLOT.take_any().unwrap();
        let _ = worker.stop();
        assert!(SLOT.take_any().is_none());
        let _ = WorkerSlot::default().take_any();
    });
    kernel.assert_clean();
}

#[test]
fn the_slot_hands_workers_between_threads() {
    let _watchdog = common::Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    kernel.run(|| {
        static SLOT: WorkerSlot = WorkerSlot::new();
        // Threads race to park their worker; exactly one wins, the others stop theirs.
        let winners: usize = thread::scope(|s| {
            let racers: Vec<_> = (0..4)
                .map(|owner| {
                    let kernel = kernel.clone();
                    s.spawn(move || {
                        kernel.run(|| {
                            let worker = worker::start(None, FAST, log).unwrap();
                            match SLOT.put(owner, worker) {
                                Ok(()) => 1,
                                Err(worker) => {
                                    let _ = worker.stop();
                                    0
                                }
                            }
                        })
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
        let _ = SLOT.take_any().unwrap().stop();
    });
    kernel.assert_clean();
}
