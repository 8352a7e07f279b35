//! What driver workers need: events a DPC can set, "work or stop" waits, waits on several
//! objects in one `KeWaitForMultipleObjects`, processors and affinity.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{in_kernel, wait_until};
use system_thread::host::{Call, with_irql};
use system_thread::{
    Event, EventKind, NtStatus, Processor, SpawnError, SystemThread, WaitError, Wake,
    available_parallelism, on_each_processor, scope, wait_all, wait_any,
};

#[test]
fn events_set_reset_and_wait() {
    in_kernel(|kernel| {
        let notification = Event::new(EventKind::Notification).unwrap();
        assert_eq!(notification.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
        notification.set().unwrap();
        notification.wait().unwrap();
        notification.wait().unwrap(); // stays set
        notification.reset().unwrap();
        assert_eq!(notification.wait_timeout(Duration::from_millis(1)), Err(WaitError::TimedOut));

        let synchronization = Event::new(EventKind::Synchronization).unwrap();
        synchronization.set().unwrap();
        synchronization.wait().unwrap();
        // The satisfied wait reset it.
        assert_eq!(synchronization.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
        // `wait` is one kernel wait, whose failure it reports.
        assert_eq!(kernel.calls(Call::KeWaitForSingleObject), 3);
        kernel.fail_nth(Call::KeWaitForSingleObject, 1, NtStatus::UNSUCCESSFUL.0);
        assert_eq!(notification.wait(), Err(WaitError::Failed(NtStatus::UNSUCCESSFUL)));
    });
}

#[test]
fn a_dpc_can_set_an_event_but_not_wait_on_it() {
    in_kernel(|_| {
        let event = Event::new(EventKind::Notification).unwrap();
        with_irql(2, || {
            event.set().unwrap();
            assert!(matches!(event.wait(), Err(WaitError::Irql(_))));
            // A poll is allowed at DISPATCH_LEVEL.
            event.wait_timeout(Duration::ZERO).unwrap();
            assert!(Event::new(EventKind::Notification).is_ok());
        });
        with_irql(3, || {
            assert!(event.set().is_err());
            assert!(matches!(Event::new(EventKind::Notification), Err(WaitError::Irql(_))));
        });
    });
}

#[test]
fn event_creation_fails_cleanly_without_pool() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::ExAllocatePoolWithTag, 1, 0);
        assert_eq!(Event::new(EventKind::Notification).unwrap_err(), WaitError::OutOfMemory);
        assert_eq!(WaitError::OutOfMemory.status(), NtStatus::INSUFFICIENT_RESOURCES);
    });
}

#[test]
fn wait_any_returns_the_lowest_signalled_index_and_resets_only_it() {
    in_kernel(|kernel| {
        let events: Vec<Event> =
            (0..3).map(|_| Event::new(EventKind::Synchronization).unwrap()).collect();
        events[2].set().unwrap();
        events[1].set().unwrap();
        let objects: Vec<&dyn system_thread::Waitable> =
            events.iter().map(|e| e as &dyn system_thread::Waitable).collect();
        assert_eq!(wait_any(&objects, None), Ok(1));
        assert_eq!(wait_any(&objects, Some(Duration::ZERO)), Ok(2));
        assert_eq!(wait_any(&objects, Some(Duration::from_millis(1))), Err(WaitError::TimedOut));
        assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), 3);
        assert_eq!(kernel.calls(Call::KeWaitForSingleObject), 0);
    });
}

#[test]
fn more_than_three_objects_take_wait_blocks_from_the_pool() {
    in_kernel(|kernel| {
        let events: Vec<Event> =
            (0..64).map(|_| Event::new(EventKind::Notification).unwrap()).collect();
        events[63].set().unwrap();
        let objects: Vec<&dyn system_thread::Waitable> =
            events.iter().map(|e| e as &dyn system_thread::Waitable).collect();
        let before = kernel.calls(Call::ExAllocatePoolWithTag);
        assert_eq!(wait_any(&objects, None), Ok(63));
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), before + 1, "one wait block array");
        assert_eq!(wait_any(&objects[..3], Some(Duration::ZERO)), Err(WaitError::TimedOut));
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), before + 1, "3 need none");
        // Pool exhausted for the wait blocks; a failing wait; too many or no objects.
        kernel.fail_nth(Call::ExAllocatePoolWithTag, 1, 0);
        assert_eq!(wait_any(&objects, None), Err(WaitError::OutOfMemory));
        kernel.fail_nth(Call::KeWaitForMultipleObjects, 1, NtStatus::UNSUCCESSFUL.0);
        assert_eq!(wait_any(&objects, None), Err(WaitError::Failed(NtStatus::UNSUCCESSFUL)));
        let extra = Event::new(EventKind::Notification).unwrap();
        let mut too_many = objects.clone();
        too_many.push(&extra);
        assert_eq!(wait_all(&too_many, None), Err(WaitError::TooManyObjects));
        assert_eq!(wait_any(&[], None), Err(WaitError::TooManyObjects));
    });
}

#[test]
fn driver_unload_waits_once_for_all_its_workers() {
    in_kernel(|kernel| {
        let workers: Vec<_> = (0..5u32)
            .map(|i| {
                SystemThread::spawn_stoppable(move |stop| {
                    stop.wait().unwrap();
                    i
                })
                .unwrap()
            })
            .collect();
        // Every worker in its stop wait first: a worker still on its way to it would wait
        // (and be counted) after the count below is taken.
        wait_until("every worker waits on its stop event", || {
            kernel.calls(Call::KeWaitForSingleObject) >= 5
        });
        let single_before = kernel.calls(Call::KeWaitForSingleObject);
        for worker in &workers {
            worker.request_stop();
        }
        let objects: Vec<&dyn system_thread::Waitable> =
            workers.iter().map(|w| w as &dyn system_thread::Waitable).collect();
        wait_all(&objects, None).unwrap();
        let sum: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(sum, 10);
        assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), 1, "one wait for all");
        assert_eq!(
            kernel.calls(Call::KeWaitForSingleObject),
            single_before,
            "the joins after wait_all did not wait again"
        );
    });
}

#[test]
fn an_idle_worker_makes_no_wakeups() {
    in_kernel(|kernel| {
        let work = Arc::new(Event::new(EventKind::Synchronization).unwrap());
        let done = Arc::new(Event::new(EventKind::Synchronization).unwrap());
        let (pending, finished) = (Arc::clone(&work), Arc::clone(&done));
        let worker = SystemThread::spawn_stoppable(move |stop| {
            let mut items = 0u32;
            loop {
                match stop.wait_for(&pending, None).unwrap() {
                    Wake::Work => {
                        items += 1;
                        finished.set().unwrap();
                    }
                    Wake::Stop => return items,
                    Wake::TimedOut => panic!("no timeout was given"),
                }
            }
        })
        .unwrap();
        for _ in 0..3 {
            work.set().unwrap();
            done.wait().unwrap();
        }
        // Idle now: the worker sleeps in its one wait; nothing wakes it.
        std::thread::sleep(Duration::from_millis(30));
        let waits_while_idle = kernel.calls(Call::KeWaitForMultipleObjects);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), waits_while_idle);
        assert_eq!(worker.stop().unwrap(), 3);
        // One wait per item, one for the stop; no polling.
        assert_eq!(kernel.calls(Call::KeWaitForMultipleObjects), 4);
    });
}

#[test]
fn wait_for_reports_a_timeout_and_prefers_stop_over_work() {
    in_kernel(|_| {
        let reported = Arc::new(Event::new(EventKind::Notification).unwrap());
        let report = Arc::clone(&reported);
        let worker = SystemThread::spawn_stoppable(move |stop| {
            let idle = Event::new(EventKind::Notification).unwrap();
            let first = stop.wait_for(&idle, Some(Duration::from_millis(1)));
            report.set().unwrap();
            stop.wait().unwrap();
            first
        })
        .unwrap();
        reported.wait().unwrap();
        assert_eq!(worker.stop().unwrap(), Ok(Wake::TimedOut));

        let work = Event::new(EventKind::Notification).unwrap();
        work.set().unwrap();
        let stopped = SystemThread::spawn_stoppable(move |stop| {
            wait_until("the worker sees the stop request", || stop.is_stop_requested());
            // Both are set: stop wins.
            stop.wait_for(&work, None).unwrap()
        })
        .unwrap();
        assert_eq!(stopped.stop().unwrap(), Wake::Stop);
    });
}

#[test]
fn processors_are_counted_in_every_group() {
    in_kernel(|kernel| {
        kernel.set_topology(&[64, 64, 3]);
        assert_eq!(available_parallelism().unwrap().get(), 131);
        let seen = Mutex::new(BTreeSet::new());
        let calls = AtomicUsize::new(0);
        on_each_processor(|processor| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert!(seen.lock().unwrap().insert(processor), "{processor:?} twice");
        })
        .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 131);
        let seen = seen.into_inner().unwrap();
        assert!(seen.contains(&Processor { group: 1, number: 63 }));
        assert!(seen.contains(&Processor { group: 2, number: 2 }));
        assert!(!seen.contains(&Processor { group: 2, number: 3 }));
        // Every thread ran pinned to its own processor.
        let mut pinned: Vec<_> = kernel.threads().into_iter().filter_map(|t| t.affinity).collect();
        pinned.sort_unstable();
        pinned.dedup();
        assert_eq!(pinned.len(), 131);
        assert!(pinned.contains(&(1, 1 << 63)));
    });
}

#[test]
fn processor_routines_missing_or_called_too_high_are_errors() {
    in_kernel(|kernel| {
        kernel.hide_routine(Call::KeQueryActiveGroupCount);
        assert_eq!(
            available_parallelism().unwrap_err(),
            SpawnError::NotSupported("KeQueryActiveGroupCount")
        );
        assert_eq!(
            on_each_processor(|_| ()).unwrap_err(),
            SpawnError::NotSupported("KeQueryActiveGroupCount")
        );
        with_irql(1, || {
            assert!(matches!(available_parallelism(), Err(SpawnError::Irql(_))));
        });
    });
}

#[test]
fn a_failing_spawn_in_on_each_processor_joins_the_others_first() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::PsCreateSystemThread, 3, NtStatus::INSUFFICIENT_RESOURCES.0);
        let ran = AtomicUsize::new(0);
        let err = on_each_processor(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_err();
        assert_eq!(err, SpawnError::Create(NtStatus::INSUFFICIENT_RESOURCES));
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the two started threads ran and were joined");
    });
}

#[test]
fn scoped_threads_are_waited_for_together_then_joined_without_another_wait() {
    in_kernel(|kernel| {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        scope(move |s| {
            let waiting = s.spawn(move || gate.recv().unwrap()).unwrap();
            let done = s.spawn(|| 2).unwrap();
            let objects: [&dyn system_thread::Waitable; 2] = [&waiting, &done];
            assert_eq!(wait_any(&objects, None), Ok(1), "the thread that waits is not signalled");
            release.send(()).unwrap();
            wait_all(&objects, None).unwrap();
            let waits = kernel.calls(Call::KeWaitForSingleObject);
            waiting.join().unwrap();
            assert_eq!(done.join().unwrap(), 2);
            assert_eq!(kernel.calls(Call::KeWaitForSingleObject), waits, "joined without a wait");
        });
    });
}

/// `Processor`'s fields are public, so its number may name no processor (64 and up): its
/// affinity is then empty, which spawning refuses, instead of a shift that overflows (a panic
/// in debug builds, processor 0 in optimized ones).
#[test]
fn a_processor_number_past_63_has_an_empty_affinity_that_spawning_refuses() {
    for number in [0u8, 1, 63] {
        assert_eq!(Processor { group: 2, number }.affinity().mask, 1u64 << number);
    }
    for number in [64u8, 65, 200, u8::MAX] {
        let affinity = Processor { group: 0, number }.affinity();
        assert_eq!((affinity.group, affinity.mask), (0, 0), "processor {number}");
    }
    in_kernel(|kernel| {
        let affinity = Processor { group: 0, number: 64 }.affinity();
        let err = system_thread::Builder::new().affinity(affinity).spawn(|| ()).unwrap_err();
        assert!(matches!(err, SpawnError::InvalidArgument(_)), "{err:?}");
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
    });
}
