//! Model checking of the thread protocols with loom: the packet's ownership and stages, the
//! scope's list, the stop request and the start gate, over the host model whose threads,
//! dispatcher waits and thread-locals come from loom (`RUSTFLAGS="--cfg loom"`).
//!
//! Every test explores the interleavings of its threads up to a preemption bound of
//! [`PREEMPTIONS`] (loom's default exploration is unbounded, far beyond CI's time), prints how
//! many it explored, and asserts in each that the kernel was left clean: no allocation,
//! handle, reference or live thread outstanding.
//!
//! What the model does not cover: timed waits are polls (loom has no time: a timeout always
//! expires before any later signal); model threads are created and reaped without exploring
//! the model kernel's own bookkeeping locks; `UnsafeCell` accesses of the packet's slot are
//! checked by Miri, not by loom.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use system_thread::host::{Call, Kernel, with_irql};
use system_thread::{Builder, JoinErrorKind, NtStatus, SpawnError, SystemThread, scope};

/// The preemption bound of every exploration.
const PREEMPTIONS: usize = 3;

/// Explores `body` in a fresh model kernel per interleaving, asserting the kernel is clean.
fn explore(name: &str, body: impl Fn(&Kernel) + Send + Sync + 'static) {
    let explored = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&explored);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTIONS);
    builder.check(move || {
        count.fetch_add(1, Ordering::Relaxed);
        let kernel = Kernel::new();
        kernel.run(|| body(&kernel));
        let outstanding = kernel.outstanding();
        assert_eq!(outstanding, Default::default(), "{outstanding:?}");
    });
    let n = explored.load(Ordering::Relaxed);
    assert!(n > 1, "{name}: only {n} interleaving explored");
    println!("loom: {name}: {n} interleavings explored (preemption bound {PREEMPTIONS})");
}

#[test]
fn spawn_join() {
    explore("spawn + join", |_| {
        let handle = SystemThread::spawn(|| 7u32).unwrap();
        assert_eq!(handle.join().unwrap(), 7);
    });
}

#[test]
fn drop_joins() {
    explore("drop joins", |_| {
        let done = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&done);
        drop(SystemThread::spawn(move || seen.store(1, Ordering::SeqCst)).unwrap());
        assert_eq!(done.load(Ordering::SeqCst), 1, "drop returned before the thread finished");
    });
}

#[test]
fn poll_races_exit() {
    explore("join_timeout(0) and is_finished racing the exit", |_| {
        let handle = SystemThread::spawn(|| 3u8).unwrap();
        let finished = handle.is_finished();
        match handle.join_timeout(Duration::ZERO) {
            Ok(value) => assert_eq!(value, 3),
            Err(e) => {
                assert!(!finished, "is_finished said true, then a poll timed out");
                assert_eq!(e.kind(), JoinErrorKind::TimedOut);
                assert_eq!(e.into_handle().join().unwrap(), 3);
            }
        }
    });
}

#[test]
fn stop_before_during_after() {
    explore("stop requested racing start and exit", |_| {
        let worker = SystemThread::spawn_stoppable(|stop| {
            let early = stop.is_stop_requested();
            stop.wait().unwrap();
            early
        })
        .unwrap();
        worker.request_stop();
        let _early = worker.join().unwrap();
    });
}

#[test]
fn stop_above_dispatch_then_below() {
    explore("a flag-only stop request (above DISPATCH_LEVEL), then one that may wake", |_| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        with_irql(3, || worker.request_stop());
        worker.request_stop();
        worker.join().unwrap();
    });
}

#[test]
fn dropping_a_stoppable_handle() {
    explore("dropping a stoppable handle", |_| {
        let worker = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        drop(worker); // requests stop, then joins
    });
}

#[test]
fn start_gate_cancel() {
    explore("the start gate's cancel path", |kernel| {
        kernel.fail_nth(Call::ZwSetInformationThread, 1, NtStatus::ACCESS_DENIED.0);
        let ran = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&ran);
        let err = Builder::new()
            .name("gated")
            .spawn(move || seen.store(1, Ordering::SeqCst))
            .unwrap_err();
        assert_eq!(err, SpawnError::Name(NtStatus::ACCESS_DENIED));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the closure ran behind a cancelled gate");
    });
}

#[test]
fn start_gate_open() {
    explore("the start gate opened", |_| {
        let handle = Builder::new().priority(9).spawn(|| 5u8).unwrap();
        assert_eq!(handle.join().unwrap(), 5);
    });
}

#[test]
fn scope_nested_handles() {
    explore("scope: a nested handle kept and joined late", |_| {
        let total = AtomicUsize::new(0);
        scope(|s| {
            let total = &total;
            s.spawn(move || {
                let inner = s.spawn(|| 2usize).unwrap();
                total.fetch_add(inner.join().unwrap(), Ordering::SeqCst);
            })
            .unwrap();
        });
        assert_eq!(total.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn scope_handle_moved_to_a_sibling() {
    explore("scope: a handle moved to an older sibling", |_| {
        let total = AtomicUsize::new(0);
        scope(|s| {
            let total = &total;
            let (send, receive) = loom::sync::mpsc::channel();
            s.spawn(move || {
                let handle: system_thread::ScopedJoinHandle<'_, usize> = receive.recv().unwrap();
                total.fetch_add(handle.join().unwrap(), Ordering::SeqCst);
            })
            .unwrap();
            send.send(s.spawn(|| 4usize).unwrap()).unwrap();
        });
        assert_eq!(total.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn scope_handle_returned_or_dropped() {
    explore("scope: a handle returned as a value, and one dropped", |_| {
        let value = scope(|s| {
            let outer = s.spawn(move || s.spawn(|| 6u8).unwrap()).unwrap();
            drop(s.spawn(|| 1u8).unwrap());
            outer.join().unwrap().join().unwrap()
        });
        assert_eq!(value, 6);
    });
}

#[test]
fn detach() {
    explore("detach of an I/O-object thread", |kernel| {
        static DEVICE: u8 = 0;
        let object = std::ptr::NonNull::from(&DEVICE).cast();
        // SAFETY: the host model only counts references on the pointer.
        let io = unsafe { system_thread::IoObject::from_raw(object) };
        let handle = Builder::new().io_object(io).spawn(|| 1u8).unwrap();
        handle.detach().unwrap();
        assert_eq!(system_thread::live_threads(), 0);
        // Wait for the detached thread to free its packet.
        while kernel.outstanding().allocations != 0 || kernel.outstanding().running_threads != 0 {
            loom::thread::yield_now();
        }
    });
}

#[test]
fn work_or_stop() {
    explore("work or stop: a work item racing the stop request", |_| {
        let work =
            Arc::new(system_thread::Event::new(system_thread::EventKind::Synchronization).unwrap());
        let pending = Arc::clone(&work);
        let worker = SystemThread::spawn_stoppable(move |stop| {
            let mut woken = 0u32;
            while stop.wait_for(&pending, None) == Ok(system_thread::Wake::Work) {
                woken += 1;
            }
            woken
        })
        .unwrap();
        work.set().unwrap();
        let woken = worker.stop().unwrap();
        assert!(woken <= 1, "one work item woke the worker {woken} times");
    });
}

#[test]
fn wait_all_then_join() {
    explore("wait_all over two threads, then joins that do not wait", |kernel| {
        let a = SystemThread::spawn(|| 1u8).unwrap();
        let b = SystemThread::spawn(|| 2u8).unwrap();
        system_thread::wait_all(&[&a, &b], None).unwrap();
        let waits = kernel.calls(Call::KeWaitForSingleObject);
        assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
        assert_eq!(kernel.calls(Call::KeWaitForSingleObject), waits);
    });
}
