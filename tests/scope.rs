//! Scoped threads borrow the caller's stack, and every one is joined (its thread object
//! signalled) before `scope` returns, whether or not its handle was joined.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropCounter, in_kernel, wait_until};
use system_thread::host::Call;
use system_thread::{JoinErrorKind, scope};

#[test]
fn scoped_threads_borrow_and_mutate_the_callers_stack() {
    in_kernel(|_| {
        let mut data = [1u64, 2, 3, 4, 5, 6];
        let total: u64 = scope(|s| {
            let (left, right) = data.split_at_mut(3);
            let a = s.spawn(|| {
                for x in left.iter_mut() {
                    *x *= 10;
                }
                left.iter().sum::<u64>()
            });
            let b = s.spawn(|| right.iter().sum::<u64>());
            a.unwrap().join().unwrap() + b.unwrap().join().unwrap()
        });
        assert_eq!(total, 60 + 15);
        assert_eq!(data, [10, 20, 30, 4, 5, 6]);
    });
}

#[test]
fn unjoined_scoped_threads_are_joined_before_scope_returns() {
    in_kernel(|kernel| {
        let finished = AtomicUsize::new(0);
        scope(|s| {
            for _ in 0..3 {
                let handle = s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    finished.fetch_add(1, Ordering::SeqCst);
                });
                drop(handle);
            }
        });
        assert_eq!(finished.load(Ordering::SeqCst), 3);
        assert_eq!(kernel.outstanding().running_threads, 0);
        assert_eq!(kernel.calls(Call::ObfDereferenceObject), 3);
    });
}

#[test]
fn scoped_threads_can_spawn_more_scoped_threads() {
    in_kernel(|_| {
        let count = AtomicUsize::new(0);
        scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(5));
                        count.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
            .unwrap();
        });
        assert_eq!(count.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn unjoined_scoped_values_are_dropped_by_the_scope() {
    in_kernel(|_| {
        let drops = Arc::new(AtomicUsize::new(0));
        scope(|s| {
            let _unjoined = s.spawn(|| DropCounter(Arc::clone(&drops))).unwrap();
            let joined = s.spawn(|| DropCounter(Arc::clone(&drops))).unwrap().join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            drop(joined);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn scoped_join_timeout_times_out_then_succeeds() {
    in_kernel(|_| {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        scope(|s| {
            let handle = s.spawn(move || gate.recv().unwrap()).unwrap();
            let err = handle.join_timeout(Duration::from_millis(10)).unwrap_err();
            assert_eq!(err.kind(), JoinErrorKind::TimedOut);
            release.send(()).unwrap();
            err.into_handle().join().unwrap();
        });
    });
}

#[test]
fn scope_returns_the_closure_value_and_joins_on_unwind() {
    in_kernel(|_| {
        let finished = AtomicUsize::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                panic!("scope body fails");
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 1, "unwinding skipped the join");
        assert_eq!(scope(|_| 41) + 1, 42);
    });
}

#[test]
fn a_scoped_handle_reports_when_its_thread_has_finished() {
    in_kernel(|_| {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        scope(move |s| {
            let handle = s.spawn(move || gate.recv().unwrap()).unwrap();
            assert!(!handle.is_finished(), "the thread waits for the test");
            release.send(()).unwrap();
            wait_until("is_finished reports the exit", || handle.is_finished());
            handle.join().unwrap();
        });
    });
}
