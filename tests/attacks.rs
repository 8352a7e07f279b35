//! Attacks on the public API with safe code, as a hostile but realistic driver author would
//! write them (from two adversarial reviews; the defects they found have their regression
//! tests next to the code they concern): handles moved, stored, returned and joined late;
//! mixed and duplicate objects in one wait; IRQL checks; the Builder's limits; odd processor
//! topologies; timeouts and round trips on every handle kind; self-joins; nested scopes.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::{in_kernel, scaled, wait_until};
use system_thread::host::{Call, with_irql};
use system_thread::{
    Builder, Event, EventKind, GroupAffinity, JoinErrorKind, JoinHandle, Processor,
    ScopedJoinHandle, SpawnError, StoppableJoinHandle, SystemThread, WaitError, Waitable,
    live_threads, scope, wait_all, wait_any,
};

#[test]
fn handles_moved_joined_late_returned_and_dropped_in_values() {
    in_kernel(|_| {
        let data = vec![1u32, 2, 3];
        let sum = scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<ScopedJoinHandle<'_, u32>>();
            let joiner = s
                .spawn(move || {
                    let mut total = 0;
                    while let Ok(h) = rx.recv() {
                        total += h.join().unwrap();
                    }
                    total
                })
                .unwrap();
            for i in 0..3 {
                let data = &data;
                tx.send(s.spawn(move || data[i] * 10).unwrap()).unwrap();
            }
            // A handle stored inside another thread's value, never joined.
            let _carrier = s.spawn(|| s.spawn(|| data.len()).unwrap()).unwrap();
            drop(tx);
            joiner.join().unwrap()
        });
        assert_eq!(sum, 60);
    });
}

#[test]
fn a_panicking_scope_closure_still_joins_borrowing_threads() {
    in_kernel(|_| {
        let done = AtomicUsize::new(0);
        let data = Box::new(5usize);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(scaled(20, 1) as u64));
                    done.fetch_add(*data, Ordering::SeqCst);
                })
                .unwrap();
                panic!("scope closure fails");
            })
        }));
        assert!(result.is_err());
        assert_eq!(done.load(Ordering::SeqCst), 5, "the scope unwound before its thread ended");
        drop(data);
    });
}

#[test]
fn self_join_is_reported_not_deadlocked() {
    in_kernel(|_| {
        let slot =
            Arc::new(std::sync::Mutex::new(None::<system_thread::JoinHandle<JoinErrorKind>>));
        let ready = Arc::new(Event::new(EventKind::Notification).unwrap());
        let (thread_slot, thread_ready) = (Arc::clone(&slot), Arc::clone(&ready));
        let handle = SystemThread::spawn(move || {
            thread_ready.wait().unwrap();
            let own = thread_slot.lock().unwrap().take().unwrap();
            let err = own.join().unwrap_err();
            let kind = err.kind();
            // Hand it back so it is joined by the test, not dropped here (which is fatal).
            *thread_slot.lock().unwrap() = Some(err.into_handle());
            kind
        })
        .unwrap();
        *slot.lock().unwrap() = Some(handle);
        ready.set().unwrap();
        wait_until("the thread handed its handle back", || {
            slot.lock().ok().is_some_and(|s| s.as_ref().is_some_and(JoinHandle::is_finished))
        });
        let handle = slot.lock().unwrap().take().unwrap();
        assert_eq!(handle.join().unwrap(), JoinErrorKind::SelfJoin);
    });
}

#[test]
fn irql_checks_return_errors() {
    in_kernel(|_| {
        with_irql(2, || {
            assert!(matches!(SystemThread::spawn(|| ()), Err(SpawnError::Irql(_))));
            assert!(matches!(SystemThread::spawn_stoppable(|_| ()), Err(SpawnError::Irql(_))));
            assert!(matches!(Builder::new().name("x").spawn(|| ()), Err(SpawnError::Irql(_))));
            assert!(system_thread::sleep(Duration::from_millis(1)).is_err());
            assert!(system_thread::yield_now().is_err());
            assert!(system_thread::available_parallelism().is_err());
            assert!(system_thread::on_each_processor(|_| ()).is_err());
        });
        let ev = Event::new(EventKind::Notification).unwrap();
        with_irql(2, || {
            assert!(matches!(ev.wait(), Err(WaitError::Irql(_))));
            assert_eq!(ev.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
            assert!(matches!(
                wait_any(&[&ev], Some(Duration::from_millis(1))),
                Err(WaitError::Irql(_))
            ));
        });
        with_irql(3, || {
            assert!(ev.set().is_err());
            assert!(ev.reset().is_err());
            assert!(Event::new(EventKind::Notification).is_err());
            assert!(matches!(wait_any(&[&ev], Some(Duration::ZERO)), Err(WaitError::Irql(_))));
        });
        let h = SystemThread::spawn(|| 3).unwrap();
        let h = with_irql(2, || match h.join() {
            Err(e) => {
                assert!(matches!(e.kind(), JoinErrorKind::Irql(_)));
                e.into_handle()
            }
            Ok(_) => panic!("joined at DISPATCH_LEVEL"),
        });
        wait_until("finished", || h.is_finished());
        // A poll join at DISPATCH_LEVEL of a finished thread is allowed and frees at DISPATCH.
        assert_eq!(with_irql(2, || h.join_timeout(Duration::ZERO).ok()), Some(3));
    });
}

#[test]
fn wait_object_counts_and_pool_failure() {
    in_kernel(|kernel| {
        let events: Vec<Event> =
            (0..65).map(|_| Event::new(EventKind::Notification).unwrap()).collect();
        let refs: Vec<&dyn Waitable> = events.iter().map(|e| e as &dyn Waitable).collect();
        assert_eq!(wait_any(&[], None), Err(WaitError::TooManyObjects));
        assert_eq!(wait_any(&refs, Some(Duration::ZERO)), Err(WaitError::TooManyObjects));
        assert_eq!(wait_all(&refs[..64], Some(Duration::ZERO)), Err(WaitError::TimedOut));
        events[63].set().unwrap();
        assert_eq!(wait_any(&refs[..64], Some(Duration::ZERO)), Ok(63));
        for e in &events {
            e.set().unwrap();
        }
        assert_eq!(wait_all(&refs[..64], None), Ok(()));
        kernel.fail_nth(Call::ExAllocatePoolWithTag, 1, 0);
        assert_eq!(wait_all(&refs[..4], None), Err(WaitError::OutOfMemory));
        assert_eq!(wait_all(&refs[..3], None), Ok(()));
    });
}

#[test]
fn builder_limits() {
    in_kernel(|kernel| {
        let name64 = "n".repeat(64);
        assert_eq!(Builder::new().name(&name64).spawn(|| 1).unwrap().join().ok(), Some(1));
        let name65 = format!("{}\u{1F600}", "n".repeat(63)); // 63 + a surrogate pair = 65
        assert!(matches!(
            Builder::new().name(&name65).spawn(|| 1),
            Err(SpawnError::InvalidArgument(_))
        ));
        assert_eq!(Builder::new().name("").spawn(|| 2).unwrap().join().ok(), Some(2));
        for p in [0, 32, -1, i32::MIN, i32::MAX] {
            assert!(matches!(
                Builder::new().priority(p).spawn(|| 1),
                Err(SpawnError::InvalidArgument(_))
            ));
        }
        for (group, mask) in [(0u16, 0u64), (0, 1 << 4), (1, 1), (u16::MAX, 1), (0, u64::MAX)] {
            assert!(matches!(
                Builder::new().affinity(GroupAffinity { group, mask }).spawn(|| 1),
                Err(SpawnError::InvalidArgument(_))
            ));
        }
        kernel.set_topology(&[64]);
        let h = Builder::new().affinity(GroupAffinity { group: 0, mask: u64::MAX }).spawn(|| 1);
        assert_eq!(h.unwrap().join().ok(), Some(1));
        // Name failure: typed error with the status, the closure never runs.
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        kernel.fail_nth(Call::ZwSetInformationThread, 1, 0xC000_0022_u32.cast_signed());
        let err = Builder::new().name("x").spawn(move || r.store(true, Ordering::SeqCst));
        assert!(matches!(err, Err(SpawnError::Name(s)) if s.code() == 0xC000_0022));
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(live_threads(), 0);
    });
}

#[test]
fn hidden_affinity_routine_is_not_supported() {
    in_kernel(|kernel| {
        kernel.hide_routine(Call::KeSetSystemGroupAffinityThread);
        assert!(matches!(
            Builder::new().affinity(GroupAffinity { group: 0, mask: 1 }).spawn(|| 1),
            Err(SpawnError::NotSupported(_))
        ));
        assert!(matches!(
            system_thread::on_each_processor(|_| ()),
            Err(SpawnError::NotSupported(_))
        ));
    });
}

#[test]
fn on_each_processor_joins_started_threads_when_a_spawn_fails() {
    in_kernel(|kernel| {
        let calls = AtomicUsize::new(0);
        kernel.fail_nth(Call::PsCreateSystemThread, 3, 0xC000_009A_u32.cast_signed());
        let result = system_thread::on_each_processor(|_| {
            std::thread::sleep(Duration::from_millis(scaled(10, 1) as u64));
            calls.fetch_add(1, Ordering::SeqCst);
        });
        assert!(matches!(result, Err(SpawnError::Create(s)) if s.code() == 0xC000_009A));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn extreme_timeouts() {
    in_kernel(|_| {
        let h = SystemThread::spawn(|| 9).unwrap();
        assert_eq!(h.join_timeout(Duration::MAX).ok(), Some(9));
        let gate = Arc::new(Event::new(EventKind::Notification).unwrap());
        let thread_gate = Arc::clone(&gate);
        let h = SystemThread::spawn(move || thread_gate.wait().map(|()| 8)).unwrap();
        let h = h.join_timeout(Duration::from_nanos(1)).unwrap_err().into_handle();
        gate.set().unwrap();
        assert_eq!(h.join().ok(), Some(Ok(8)));
        let worker =
            SystemThread::spawn_stoppable(|stop| stop.wait_timeout(Duration::MAX)).unwrap();
        assert_eq!(worker.stop().ok(), Some(true));
        let ev = Event::new(EventKind::Synchronization).unwrap();
        assert_eq!(ev.wait_timeout(Duration::from_nanos(1)), Err(WaitError::TimedOut));
        system_thread::sleep(Duration::ZERO).unwrap();
    });
}

/// Handles of all three kinds, events and a stop token in the same waits, the same handle
/// twice; joins after the waits make no further wait.
#[test]
fn mixed_and_duplicate_objects_in_one_wait() {
    in_kernel(|kernel| {
        let ev = Event::new(EventKind::Synchronization).unwrap();
        let go = Event::new(EventKind::Notification).unwrap();
        scope(|s| {
            let plain = SystemThread::spawn(|| 1u8).unwrap();
            let stoppable = SystemThread::spawn_stoppable(|stop| stop.wait().is_ok()).unwrap();
            let scoped: ScopedJoinHandle<'_, u8> = s
                .spawn(|| {
                    go.wait().unwrap();
                    3
                })
                .unwrap();
            // Nothing but `plain` can be signalled: wait_any sees it (index 2 or 3).
            let i = wait_any(&[&ev, &go, &plain, &plain, &scoped, &stoppable], None).unwrap();
            assert!(i == 2 || i == 3, "{i}");
            assert_eq!(
                wait_all(&[&plain, &scoped], Some(Duration::ZERO)),
                Err(system_thread::WaitError::TimedOut)
            );
            stoppable.request_stop();
            go.set().unwrap();
            ev.set().unwrap();
            wait_all(&[&scoped, &stoppable, &scoped, &plain, &ev, &ev], None).unwrap();
            // The synchronization event was consumed once by the wait-all.
            assert_eq!(ev.wait_timeout(Duration::ZERO), Err(system_thread::WaitError::TimedOut));
            let waits = kernel.calls(Call::KeWaitForSingleObject);
            assert_eq!(plain.join().ok(), Some(1));
            assert_eq!(stoppable.join().ok(), Some(true));
            assert_eq!(scoped.join().ok(), Some(3));
            assert_eq!(kernel.calls(Call::KeWaitForSingleObject), waits, "joins waited again");
        });
    });
}

/// The worker lends its stop token to scoped threads of its own; they wait on it (alone and
/// with an event) from other threads; a request from outside wakes them all, and dropping the
/// handle joins everything.
#[test]
fn a_stop_token_waited_on_from_scoped_threads_of_the_worker() {
    in_kernel(|_| {
        let woke = Arc::new(AtomicUsize::new(0));
        let thread_woke = Arc::clone(&woke);
        let worker = SystemThread::spawn_stoppable(move |stop| {
            let never = Event::new(EventKind::Notification).unwrap();
            scope(|s| {
                for _ in 0..3 {
                    let woke = &thread_woke;
                    let never = &never;
                    s.spawn(move || {
                        assert_eq!(wait_any(&[never, stop], None), Ok(1));
                        assert!(stop.wait_timeout(Duration::from_secs(5)));
                        assert_eq!(stop.wait_for(never, None), Ok(system_thread::Wake::Stop));
                        woke.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            });
            7u8
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(scaled(20, 0) as u64));
        assert_eq!(woke.load(Ordering::SeqCst), 0);
        drop(worker); // requests stop, then joins the worker, whose scope joined the others
        assert_eq!(woke.load(Ordering::SeqCst), 3);
    });
}

/// Odd topologies: groups of 1, 64 and 3 processors. Every processor gets exactly one call, on
/// a thread pinned to it; `available_parallelism` agrees; nested calls work.
#[test]
fn on_each_processor_with_odd_groups() {
    in_kernel(|kernel| {
        kernel.set_topology(&[1, 64, 3]);
        assert_eq!(system_thread::available_parallelism().unwrap().get(), 68);
        let seen = Mutex::new(Vec::new());
        system_thread::on_each_processor(|p| seen.lock().unwrap().push(p)).unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        let expected: Vec<Processor> = [(0u16, 1u8), (1, 64), (2, 3)]
            .iter()
            .flat_map(|&(group, n)| (0..n).map(move |number| Processor { group, number }))
            .collect();
        assert_eq!(seen, expected);
        let mut pinned: Vec<(u16, u64)> =
            kernel.threads().iter().filter_map(|t| t.affinity).collect();
        pinned.sort_unstable();
        let mut wanted: Vec<(u16, u64)> =
            expected.iter().map(|p| (p.group, p.affinity().mask)).collect();
        wanted.sort_unstable();
        assert_eq!(pinned, wanted);
        // Nested: every processor runs every processor (on a small topology).
        kernel.set_topology(&[2, 1]);
        let calls = AtomicUsize::new(0);
        system_thread::on_each_processor(|_| {
            system_thread::on_each_processor(|_| {
                calls.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        })
        .unwrap();
        assert_eq!(calls.into_inner(), 9);
        // A processor outside the topology is refused, not silently ignored.
        assert!(matches!(
            Builder::new().affinity(Processor { group: 1, number: 1 }.affinity()).spawn(|| ()),
            Err(system_thread::SpawnError::InvalidArgument(_))
        ));
    });
}

/// Timeouts and round trips through `JoinError::into_handle` on all three handle kinds, then
/// drop / join / stop of the returned handle.
#[test]
fn timeout_round_trips_on_every_handle_kind() {
    in_kernel(|_| {
        let gate = Arc::new(Event::new(EventKind::Notification).unwrap());
        let g = Arc::clone(&gate);
        let plain = SystemThread::spawn(move || g.wait().is_ok()).unwrap();
        let err = plain.join_timeout(Duration::from_millis(1)).unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(err.status(), system_thread::NtStatus::TIMEOUT);
        let plain: JoinHandle<bool> = err.into_handle();
        let plain = plain.join_timeout(Duration::ZERO).unwrap_err().into_handle();

        let stoppable: StoppableJoinHandle<u32> = SystemThread::spawn_stoppable(|stop| {
            let mut n = 0;
            while !stop.wait_timeout(Duration::from_millis(1)) {
                n += 1;
            }
            n
        })
        .unwrap();
        let stoppable = stoppable.join_timeout(Duration::ZERO).unwrap_err().into_handle();
        let stoppable = stoppable.join_timeout(Duration::from_millis(2)).unwrap_err().into_handle();

        scope(|s| {
            let g = Arc::clone(&gate);
            let scoped = s.spawn(move || g.wait().is_ok()).unwrap();
            let scoped = scoped.join_timeout(Duration::ZERO).unwrap_err().into_handle();
            let scoped = scoped.join_timeout(Duration::from_millis(1)).unwrap_err().into_handle();
            gate.set().unwrap();
            assert_eq!(scoped.join().ok(), Some(true));
        });
        assert!(stoppable.stop().is_ok());
        drop(plain); // joins (the gate is set)
        assert_eq!(live_threads(), 0);
    });
}

/// Self-joins through every handle kind moved into its own thread: reported, and the handle
/// comes back intact (the scoped one may even be dropped there: the scope joins).
#[test]
fn self_joins_through_scoped_and_stoppable_handles() {
    in_kernel(|_| {
        scope(|s| {
            let (tx, rx) = mpsc::channel::<ScopedJoinHandle<'_, JoinErrorKind>>();
            let h = s
                .spawn(move || {
                    let own = rx.recv().unwrap();
                    let err = own.join().unwrap_err();
                    let kind = err.kind();
                    drop(err.into_handle()); // a scoped handle's drop leaves the join to the scope
                    kind
                })
                .unwrap();
            // The scope closure keeps no handle: the thread gets its own.
            tx.send(h).unwrap();
        });

        let slot = Arc::new(Mutex::new(None::<StoppableJoinHandle<JoinErrorKind>>));
        let ready = Arc::new(Event::new(EventKind::Notification).unwrap());
        let (thread_slot, thread_ready) = (Arc::clone(&slot), Arc::clone(&ready));
        let worker = SystemThread::spawn_stoppable(move |_| {
            thread_ready.wait().unwrap();
            let own = thread_slot.lock().unwrap().take().unwrap();
            let err = own.stop().unwrap_err();
            let kind = err.kind();
            *thread_slot.lock().unwrap() = Some(err.into_handle());
            kind
        })
        .unwrap();
        *slot.lock().unwrap() = Some(worker);
        ready.set().unwrap();
        wait_until("the worker handed its handle back", || {
            slot.lock().unwrap().as_ref().is_some_and(StoppableJoinHandle::is_finished)
        });
        let worker = slot.lock().unwrap().take().unwrap();
        assert_eq!(worker.join().ok(), Some(JoinErrorKind::SelfJoin));
    });
}

/// Nested scopes: a thread of the inner scope spawns on the outer scope (borrowing only what
/// outlives the outer scope); the inner scope ends while that thread runs; the outer joins it.
/// Scopes inside spawned threads join before the thread's value is produced.
#[test]
fn nested_scopes_and_scopes_inside_threads() {
    in_kernel(|_| {
        let data = [1u32, 2, 3];
        let release = Event::new(EventKind::Notification).unwrap();
        let done = AtomicBool::new(false);
        scope(|outer| {
            scope(|inner| {
                inner
                    .spawn(|| {
                        outer
                            .spawn(|| {
                                release.wait().unwrap();
                                done.store(true, Ordering::SeqCst);
                                data.iter().sum::<u32>()
                            })
                            .unwrap()
                    })
                    .unwrap();
            });
            assert!(!done.load(Ordering::SeqCst));
            release.set().unwrap();
        });
        assert!(done.load(Ordering::SeqCst));

        let total = SystemThread::spawn(|| {
            let local = [5u64; 8];
            scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|i| s.spawn(move || local[i * 2] + local[i * 2 + 1]).unwrap())
                    .collect();
                hs.into_iter().map(|h| h.join().ok().unwrap()).sum::<u64>()
            })
        })
        .unwrap()
        .join()
        .ok();
        assert_eq!(total, Some(40));
    });
}

/// `Waitable` objects of different lifetimes and kinds as `&dyn Waitable` in one slice, moved
/// across threads (every handle kind is Sync; the slice is borrowed for the wait only).
#[test]
fn waiting_on_handles_from_another_thread() {
    in_kernel(|_| {
        let plain = SystemThread::spawn(|| 1u8).unwrap();
        let stoppable = SystemThread::spawn_stoppable(|stop| stop.wait().is_ok()).unwrap();
        scope(|s| {
            let (plain, stop_h) = (&plain, &stoppable);
            let waiter = s
                .spawn(move || {
                    let objects: [&dyn Waitable; 2] = [plain, stop_h];
                    wait_all(&objects, None)
                })
                .unwrap();
            stoppable.request_stop();
            assert_eq!(waiter.join().ok(), Some(Ok(())));
        });
        assert_eq!(plain.join().ok(), Some(1));
        assert_eq!(stoppable.join().ok(), Some(true));
    });
}
