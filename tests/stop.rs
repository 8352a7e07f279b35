//! Cooperative stop: the worker loop of a driver. A stop request wakes a waiting token at
//! once, and dropping the handle requests stop, then joins.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{in_kernel, wait_until};
use system_thread::host::Call;
use system_thread::host::with_irql;
use system_thread::{JoinErrorKind, SystemThread};

#[test]
fn a_worker_ticks_until_stop_is_requested() {
    in_kernel(|_| {
        let ticks = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&ticks);
        let worker = SystemThread::spawn_stoppable(move |stop| {
            while !stop.wait_timeout(Duration::from_millis(2)) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            assert!(stop.is_stop_requested());
            seen.load(Ordering::SeqCst)
        })
        .unwrap();
        wait_until("the worker ticked 3 times", || ticks.load(Ordering::SeqCst) >= 3);
        assert!(!worker.is_finished());
        worker.request_stop();
        let returned = worker.join().unwrap();
        assert!(returned >= 3);
        assert_eq!(returned, ticks.load(Ordering::SeqCst));
    });
}

#[test]
fn a_stop_request_wakes_a_long_wait_at_once() {
    in_kernel(|_| {
        let worker = SystemThread::spawn_stoppable(|stop| {
            let start = Instant::now();
            let stopped = stop.wait_timeout(Duration::from_mins(1));
            (stopped, start.elapsed())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let (stopped, waited) = worker.stop().unwrap();
        assert!(stopped);
        assert!(waited < Duration::from_secs(30), "the event did not wake the waiter: {waited:?}");
    });
}

#[test]
fn wait_timeout_reports_false_when_the_time_passes() {
    in_kernel(|_| {
        let worker = SystemThread::spawn_stoppable(|stop| {
            let start = Instant::now();
            let stopped = stop.wait_timeout(Duration::from_millis(20));
            (stopped, start.elapsed())
        })
        .unwrap();
        let (stopped, waited) = worker.join().unwrap();
        assert!(!stopped);
        assert!(waited >= Duration::from_millis(20));
    });
}

#[test]
fn dropping_a_stoppable_handle_requests_stop_then_joins() {
    in_kernel(|kernel| {
        let exited = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&exited);
        let worker = SystemThread::spawn_stoppable(move |stop| {
            stop.wait().unwrap();
            flag.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        drop(worker);
        assert_eq!(exited.load(Ordering::SeqCst), 1);
        assert_eq!(kernel.calls(Call::KeSetEvent), 1);
        assert_eq!(kernel.outstanding().running_threads, 0);
    });
}

#[test]
fn repeated_stop_requests_set_the_event_once() {
    in_kernel(|kernel| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        worker.request_stop();
        worker.request_stop();
        worker.join().unwrap();
        assert_eq!(kernel.calls(Call::KeSetEvent), 1);
    });
}

#[test]
fn a_timed_out_stoppable_join_keeps_the_stop_handle() {
    in_kernel(|_| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        let err = worker.join_timeout(Duration::from_millis(5)).unwrap_err();
        assert_eq!(err.kind(), JoinErrorKind::TimedOut);
        let worker = err.into_handle();
        worker.request_stop();
        worker.join().unwrap();
    });
}

#[test]
fn a_stoppable_thread_is_still_one_allocation() {
    in_kernel(|kernel| {
        SystemThread::spawn_stoppable(|_| ()).unwrap().stop().unwrap();
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), 1);
        assert_eq!(kernel.calls(Call::KeInitializeEvent), 1);
    });
}

#[test]
fn a_stoppable_handle_reports_when_its_thread_has_finished() {
    in_kernel(|_| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        assert!(!worker.is_finished(), "the worker waits for its stop request");
        worker.request_stop();
        wait_until("is_finished reports the exit", || worker.is_finished());
        worker.join().unwrap();
    });
}

#[test]
fn a_stop_requested_above_dispatch_level_is_seen_when_the_wait_ends() {
    in_kernel(|kernel| {
        let worker = SystemThread::spawn_stoppable(|stop| {
            let start = Instant::now();
            (stop.wait_timeout(Duration::from_millis(100)), start.elapsed())
        })
        .unwrap();
        wait_until("the worker waits on its stop event", || {
            kernel.calls(Call::KeWaitForSingleObject) == 1
        });
        // Above DISPATCH_LEVEL the request sets only the flag: no event wakes the wait.
        with_irql(3, || worker.request_stop());
        let (stopped, waited) = worker.join().unwrap();
        assert!(stopped, "the wait timed out, then wait_timeout saw the flag");
        assert!(waited >= Duration::from_millis(100), "something woke the wait: {waited:?}");
        assert_eq!(kernel.calls(Call::KeSetEvent), 0);
    });
}

/// A request above `DISPATCH_LEVEL` (an ISR's) can only set the flag; the next request at a
/// level that may set the event must still wake a worker that already waits. (Before the fix
/// the flag alone made every later request skip the event: the worker slept on.)
#[test]
fn a_request_above_dispatch_then_one_below_wakes_a_waiting_worker() {
    in_kernel(|kernel| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().is_ok()).unwrap();
        wait_until("the worker waits on its stop event", || {
            kernel.calls(Call::KeWaitForSingleObject) == 1
        });
        with_irql(3, || worker.request_stop());
        assert_eq!(kernel.calls(Call::KeSetEvent), 0, "above DISPATCH_LEVEL: the flag only");
        worker.request_stop();
        assert_eq!(kernel.calls(Call::KeSetEvent), 1, "the first request that may set it does");
        worker.request_stop();
        assert_eq!(kernel.calls(Call::KeSetEvent), 1, "and only the first");
        assert!(worker.join_timeout(common::WAIT_LIMIT).unwrap());
    });
}

/// The same, when the later request is the one the handle's drop makes.
#[test]
fn a_request_above_dispatch_then_dropping_the_handle_stops_a_waiting_worker() {
    in_kernel(|kernel| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().is_ok()).unwrap();
        wait_until("the worker waits on its stop event", || {
            kernel.calls(Call::KeWaitForSingleObject) == 1
        });
        with_irql(3, || worker.request_stop());
        drop(worker);
        assert_eq!(kernel.calls(Call::KeSetEvent), 1);
    });
}
