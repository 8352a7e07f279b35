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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Watchdog, wait_until};
use system_thread::host::{Call, Kernel, with_irql};
use system_thread::{IoObject, NtStatus, SpawnError, WaitError};
use worker::{Done, Log, PERIOD_MS, StartError, THREAD_NAME, WorkQueue, Worker, WorkerSlot};

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

/// A work queue of the test's own (`start` needs a `'static` one, as the driver's is).
macro_rules! queue {
    () => {{
        static QUEUE: WorkQueue = WorkQueue::new();
        &QUEUE
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

/// The worker's wake lines: (wake number, items taken).
fn wakes(lines: &[String]) -> Vec<(u32, u32)> {
    let prefix = format!("{THREAD_NAME}: wake ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (n, items) = rest.split_once(": ").unwrap();
            (n.parse().unwrap(), items.strip_suffix(" item(s)").unwrap().parse().unwrap())
        })
        .collect()
}

fn items_done(buffer: &Mutex<Vec<String>>) -> u32 {
    wakes(&lines(buffer)).iter().map(|&(_, items)| items).sum()
}

/// Waits until the worker is in its wait: it has made `n` waits (`KeWaitForMultipleObjects` is
/// counted when called, before it blocks).
fn wait_for_waits(kernel: &Kernel, n: usize) {
    wait_until(&format!("the worker made {n} waits"), || {
        kernel.calls(Call::KeWaitForMultipleObjects) >= n
    });
}

#[test]
fn the_driver_settings_are_a_named_worker_and_a_one_second_timer() {
    assert_eq!(THREAD_NAME, "system-thread-sample");
    assert_eq!(PERIOD_MS, 1000);
}

#[test]
fn an_idle_worker_makes_no_kernel_call_at_all() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    let single_waits = kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        wait_for_waits(&kernel, 1);
        // (The spawn's own waits, behind its start gate, are done by now.)
        let single_waits = kernel.calls(Call::KeWaitForSingleObject);
        // Nothing queued: over 50 ms, the worker makes no call of any kind (no wake, no poll).
        let before = kernel.call_counts();
        thread::sleep(Duration::from_millis(50));
        assert_eq!(kernel.call_counts(), before, "the idle worker called the kernel");
        assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), 1, "one wait, still blocked");
        assert_eq!(worker.stop(), Done { items: 0, wakes: 0 });
        single_waits
    });
    // The stop ended that one wait; the join waited once on the thread object.
    assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), 1);
    assert_eq!(kernel.calls(Call::KeWaitForSingleObject), single_waits + 1);
    assert!(wakes(&lines(buffer)).is_empty(), "{:?}", lines(buffer));
    kernel.assert_clean();
}

#[test]
fn n_notifications_are_n_items_done_in_at_most_n_wakes() {
    const N: u32 = 20;
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    let (done, sets_at_start) = kernel.run(|| {
        let worker = worker::start(queue, None, log).unwrap();
        wait_for_waits(&kernel, 1);
        let sets_at_start = kernel.calls(Call::KeSetEvent);
        for i in 0..N {
            assert!(queue.notify());
            if i % 5 == 0 {
                thread::sleep(Duration::from_millis(1)); // some wakes take one item, some more
            }
        }
        wait_until("every item is done", || items_done(buffer) == N);
        // Idle again: one wait per wake, plus the one it sleeps in; then nothing for 50 ms. (A
        // set that raced the worker's taking of its item leaves the event set: that is one
        // more, empty, wake, which may still be under way; hence the second try.)
        let settled = (0..2).any(|_| {
            wait_for_waits(&kernel, wakes(&lines(buffer)).len() + 1);
            let before = kernel.call_counts();
            thread::sleep(Duration::from_millis(50));
            kernel.call_counts() == before
        });
        assert!(settled, "the worker kept calling the kernel with nothing queued");
        (worker.stop(), sets_at_start)
    });
    let wakes = wakes(&lines(buffer));
    assert_eq!(done.items, N);
    assert_eq!(done.wakes, u32::try_from(wakes.len()).unwrap());
    assert!((1..=N).contains(&done.wakes), "{} wakes for {N} items", done.wakes);
    assert!(wakes.iter().enumerate().all(|(i, &(n, _))| n == u32::try_from(i).unwrap() + 1));
    // One wait per wake and one that the stop ended; one set per notification and the stop's.
    let waits = kernel.calls(Call::KeWaitForMultipleObjects);
    assert_eq!(waits, usize::try_from(done.wakes).unwrap() + 1);
    assert_eq!(kernel.calls(Call::KeSetEvent) - sets_at_start, usize::try_from(N).unwrap() + 1);
    assert_eq!(
        lines(buffer).last().unwrap(),
        &format!("{THREAD_NAME}: joined after {} wakes, {N} items", done.wakes)
    );
    kernel.assert_clean();
}

#[test]
fn a_dpc_at_dispatch_level_queues_work() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        wait_for_waits(&kernel, 1);
        // What the driver's EvtTimerFunc does, at the IRQL a DPC runs at.
        assert!(with_irql(2, || queue.notify()));
        wait_until("the DPC's item is done", || items_done(buffer) == 1);
        // Above DISPATCH_LEVEL the event cannot be set: the item stays queued, unsignalled,
        // and the next wake takes it.
        wait_for_waits(&kernel, 2);
        assert!(!with_irql(3, || queue.notify()));
        thread::sleep(Duration::from_millis(20));
        assert_eq!(items_done(buffer), 1, "an unsignalled item woke the worker");
        assert!(with_irql(2, || queue.notify()));
        wait_until("both queued items are done", || items_done(buffer) == 3);
        assert_eq!(worker.stop(), Done { items: 3, wakes: 2 });
    });
    assert_eq!(wakes(&lines(buffer)), [(1, 1), (2, 2)]);
    kernel.assert_clean();
}

#[test]
fn stop_wakes_an_idle_worker_at_once() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        wait_for_waits(&kernel, 1);
        let asked = Instant::now();
        assert_eq!(worker.stop(), Done::default());
        assert!(asked.elapsed() < Duration::from_secs(10), "stop took {:?}", asked.elapsed());
    });
    let lines = lines(buffer);
    assert!(lines.contains(&format!("{THREAD_NAME}: stop requested")), "{lines:?}");
    assert_eq!(lines.last().unwrap(), &format!("{THREAD_NAME}: joined after 0 wakes, 0 items"));
    kernel.assert_clean();
}

#[test]
fn without_a_worker_notify_queues_nothing_and_the_queue_is_reusable() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        assert!(!queue.notify(), "no worker yet");
        for round in 1..=2 {
            let worker = worker::start(queue, None, log).unwrap();
            assert!(queue.notify());
            wait_until("the item is done", || items_done(buffer) == round);
            assert_eq!(worker.stop().items, 1);
            assert!(!queue.notify(), "the stopped worker's queue is closed");
        }
    });
    kernel.assert_clean();
}

#[test]
fn one_worker_per_queue() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let first = worker::start(queue, None, log).unwrap();
        let error = worker::start(queue, None, log).unwrap_err();
        assert!(matches!(error, StartError::Busy), "{error:?}");
        assert_eq!(error.status(), NtStatus(0x8000_0011_u32.cast_signed()));
        assert_eq!(
            error.to_string(),
            format!("{THREAD_NAME}: the work queue already has a worker")
        );
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1, "the busy start made no thread");
        assert!(queue.notify());
        let _ = first.stop();
        // Free again.
        let _ = worker::start(queue, None, log).unwrap().stop();
    });
    kernel.assert_clean();
}

#[test]
fn dropping_a_worker_stops_it_and_frees_the_event() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        wait_for_waits(&kernel, 1);
        drop(worker);
        assert_eq!(kernel.outstanding().running_threads, 0);
        assert!(!queue.notify());
        let _ = worker::start(queue, None, log).unwrap();
    });
    assert!(
        !lines(buffer).iter().any(|l| l.contains("joined after")),
        "a drop is silent: {:?}",
        lines(buffer)
    );
    kernel.assert_clean();
}

/// DPCs on other processors keep notifying while the worker is stopped: each notification
/// either reached the live event (and is done or reported dropped) or found the queue closed.
/// None may set the event after it is freed: natively that would go unnoticed (the model frees
/// pool to the allocator), but it is a use after free, which Miri reports (`./x test` runs this
/// test under Miri too, with fewer rounds).
#[test]
fn notifications_racing_the_stop_never_touch_a_freed_event() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        for _ in 0..if cfg!(miri) { 3 } else { 20 } {
            buffer.lock().unwrap().clear();
            let worker = worker::start(queue, None, log).unwrap();
            let stopping = AtomicBool::new(false);
            let signalled = AtomicU32::new(0);
            let done = thread::scope(|s| {
                for _ in 0..3 {
                    let (kernel, stopping, signalled) = (kernel.clone(), &stopping, &signalled);
                    s.spawn(move || {
                        kernel.run(|| {
                            let mut stopped_for = 0;
                            // A few more notifications after the stop has begun.
                            while stopped_for < 50 {
                                if with_irql(2, || queue.notify()) {
                                    signalled.fetch_add(1, Ordering::Relaxed);
                                }
                                if stopping.load(Ordering::Relaxed) {
                                    stopped_for += 1;
                                }
                                thread::yield_now();
                            }
                        });
                    });
                }
                thread::sleep(Duration::from_millis(2));
                stopping.store(true, Ordering::Relaxed);
                worker.stop()
            });
            let dropped: u32 = lines(buffer)
                .iter()
                .filter_map(|l| {
                    l.strip_prefix(&format!("{THREAD_NAME}: "))?
                        .strip_suffix(" item(s) queued after the last wake")?
                        .parse::<u32>()
                        .ok()
                })
                .sum();
            assert_eq!(done.items + dropped, signalled.load(Ordering::Relaxed));
            assert!(!queue.notify());
        }
    });
    kernel.assert_clean();
}

#[test]
fn worker_on_a_device_object_pins_the_object_and_joins_on_stop() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    let done = kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        assert!(worker.pins_driver());
        assert!(queue.notify());
        wait_until("the item is done", || items_done(buffer) == 1);

        let running = kernel.outstanding();
        assert_eq!(running.running_threads, 1);
        assert_eq!(
            running.io_object_references, 1,
            "the kernel holds the device while the thread runs"
        );
        assert_eq!(running.allocations, 2, "the thread's packet and the work event");

        let id = worker.thread_id();
        let done = worker.stop();

        let records = kernel.threads();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, id.0);
        assert_eq!(records[0].name.as_deref(), Some(THREAD_NAME));
        assert_eq!(records[0].io_object, Some(device_address()));
        done
    });
    assert_eq!(done, Done { items: 1, wakes: 1 });
    // `stop` joined: the thread has exited and given the device object back.
    assert_eq!(kernel.outstanding().running_threads, 0);
    assert_eq!(kernel.outstanding().io_object_references, 0);
    assert_eq!(kernel.calls(Call::IoCreateSystemThread), 1);
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
    kernel.assert_clean();

    let lines = lines(buffer);
    assert!(lines[0].starts_with(&format!("{THREAD_NAME}: running on thread ")), "{lines:?}");
    assert_eq!(lines[1], format!("{THREAD_NAME}: wake 1: 1 item(s)"));
    assert_eq!(lines[2], format!("{THREAD_NAME}: stop requested"));
    assert_eq!(lines[3], format!("{THREAD_NAME}: joined after 1 wakes, 1 items"));
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn without_io_create_system_thread_the_worker_falls_back_and_still_joins() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.hide_routine(Call::IoCreateSystemThread);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, Some(device_object()), log).unwrap();
        assert!(!worker.pins_driver());
        assert!(queue.notify());
        wait_until("the item is done", || items_done(buffer) == 1);
        assert_eq!(kernel.outstanding().running_threads, 1);
        assert_eq!(kernel.outstanding().io_object_references, 0, "nothing pins the driver now");
        assert_eq!(worker.stop().items, 1);
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
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, None, log).unwrap();
        assert!(!worker.pins_driver());
        let _ = worker.stop();
    });
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1);
    assert_eq!(kernel.threads()[0].io_object, None);
    kernel.assert_clean();
}

/// The event is the first allocation of `start`, the thread's packet the second.
#[test]
fn no_pool_for_the_work_event_is_a_start_error_and_leaves_nothing_behind() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::ExAllocatePoolWithTag, 1, 0);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let error = worker::start(queue, Some(device_object()), log).unwrap_err();
        assert!(matches!(error, StartError::Event(WaitError::OutOfMemory)), "{error:?}");
        assert_eq!(error.status(), NtStatus::INSUFFICIENT_RESOURCES);
        assert!(error.to_string().starts_with(&format!("{THREAD_NAME}: no work event: ")));
        assert_eq!(kernel.calls(Call::IoCreateSystemThread), 0, "no thread without its event");
        assert!(!queue.notify());
        // The queue is free again: the next start works.
        let _ = worker::start(queue, None, log).unwrap().stop();
    });
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1);
    assert_eq!(lines(buffer).iter().filter(|l| l.contains("running on thread ")).count(), 1);
    kernel.assert_clean();
}

#[test]
fn no_pool_for_the_thread_frees_the_event_and_leaves_nothing_behind() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::ExAllocatePoolWithTag, 2, 0);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let error = worker::start(queue, Some(device_object()), log).unwrap_err();
        assert!(matches!(error, StartError::Spawn(SpawnError::OutOfMemory)), "{error:?}");
        assert_eq!(error.status(), NtStatus::INSUFFICIENT_RESOURCES);
        assert_eq!(kernel.outstanding().allocations, 0, "the event was freed");
        assert!(!queue.notify());
        let _ = worker::start(queue, None, log).unwrap().stop();
    });
    assert_eq!(lines(buffer).iter().filter(|l| l.contains("running on thread ")).count(), 1);
    kernel.assert_clean();
}

#[test]
fn a_failed_wait_ends_the_worker_which_still_joins() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::KeWaitForMultipleObjects, 1, NtStatus::UNSUCCESSFUL.0);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let worker = worker::start(queue, None, log).unwrap();
        wait_until("the worker gave up", || {
            lines(buffer).contains(&format!("{THREAD_NAME}: stop requested"))
        });
        assert_eq!(worker.stop(), Done::default());
    });
    let lines = lines(buffer);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{THREAD_NAME}: system-thread: wait failed"))),
        "{lines:?}"
    );
    kernel.assert_clean();
}

#[test]
fn a_failed_spawn_is_reported_and_leaves_nothing_behind() {
    const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32.cast_signed();
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::IoCreateSystemThread, 1, INSUFFICIENT_RESOURCES);
    kernel.fail_nth(Call::PsCreateSystemThread, 1, INSUFFICIENT_RESOURCES);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        // Only a missing routine falls back; any other failure is the driver's to report.
        let error = worker::start(queue, Some(device_object()), log).unwrap_err();
        assert!(
            matches!(error, StartError::Spawn(SpawnError::Create(s)) if s.0 == INSUFFICIENT_RESOURCES),
            "{error:?}"
        );
        let error = worker::start(queue, None, log).unwrap_err();
        assert!(
            matches!(error, StartError::Spawn(SpawnError::Create(s)) if s.0 == INSUFFICIENT_RESOURCES),
            "{error:?}"
        );
        assert_eq!(error.status().0, INSUFFICIENT_RESOURCES);
    });
    assert_eq!(kernel.calls(Call::PsCreateSystemThread), 1, "no fallback after a real failure");
    assert!(lines(buffer).is_empty(), "the closure never ran: {:?}", lines(buffer));
    kernel.assert_clean();
}

#[test]
fn a_failure_to_name_the_thread_is_reported_and_leaves_nothing_behind() {
    const ACCESS_DENIED: i32 = 0xC000_0022_u32.cast_signed();
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    kernel.fail_nth(Call::ZwSetInformationThread, 1, ACCESS_DENIED);
    let (log, buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        let error = worker::start(queue, Some(device_object()), log).unwrap_err();
        assert!(
            matches!(error, StartError::Spawn(SpawnError::Name(s)) if s.0 == ACCESS_DENIED),
            "{error:?}"
        );
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
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, buffer) = log_buffer!();
    let (queue, other_queue) = (queue!(), queue!());
    kernel.run(|| {
        let slot = WorkerSlot::new();
        assert!(slot.take_any().is_none());

        slot.put(DEVICE, worker::start(queue, Some(device_object()), log).unwrap()).unwrap();
        // A second device finds the slot full and gets its worker back, to stop it.
        let second = worker::start(other_queue, None, log).unwrap();
        let second: Worker = slot.put(OTHER_DEVICE, second).unwrap_err();
        let _ = second.stop();
        // The other device's cleanup must not take this device's worker.
        assert!(slot.take(OTHER_DEVICE).is_none());
        assert_eq!(kernel.outstanding().running_threads, 1);

        assert!(queue.notify());
        wait_until("the item is done", || items_done(buffer) == 1);
        let worker = slot.take(DEVICE).unwrap();
        assert_eq!(worker.stop().items, 1);
        assert!(slot.take(DEVICE).is_none());
        assert!(slot.take_any().is_none());
    });
    kernel.assert_clean();
}

#[test]
fn unload_takes_whatever_worker_is_left() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    let queue = queue!();
    kernel.run(|| {
        static SLOT: WorkerSlot = WorkerSlot::new();
        SLOT.put(7, worker::start(queue, Some(device_object()), log).unwrap()).unwrap();
        let worker = SLOT.take_any().unwrap();
        let _ = worker.stop();
        assert!(SLOT.take_any().is_none());
        let _ = WorkerSlot::default().take_any();
        let _ = WorkQueue::default().notify();
    });
    kernel.assert_clean();
}

#[test]
fn the_slot_hands_workers_between_threads() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let (log, _buffer) = log_buffer!();
    kernel.run(|| {
        static SLOT: WorkerSlot = WorkerSlot::new();
        static QUEUES: [WorkQueue; 4] =
            [WorkQueue::new(), WorkQueue::new(), WorkQueue::new(), WorkQueue::new()];
        // Threads race to park their worker; exactly one wins, the others stop theirs.
        let winners: usize = thread::scope(|s| {
            let racers: Vec<_> = QUEUES
                .iter()
                .enumerate()
                .map(|(owner, queue)| {
                    let kernel = kernel.clone();
                    s.spawn(move || {
                        kernel.run(|| {
                            let worker = worker::start(queue, None, log).unwrap();
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
