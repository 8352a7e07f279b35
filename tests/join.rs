//! Spawning and joining: values come back, joins wait on the thread object, handles that are
//! dropped join, and no join can hang on its own thread.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{DropCounter, in_kernel, scaled, wait_until};
use system_thread::host::Call;
use system_thread::{JoinErrorKind, JoinHandle, NtStatus, SystemThread, current_id};

#[test]
fn handles_can_be_shared_and_sent_like_std_ones() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<JoinHandle<u32>>();
    send_sync::<system_thread::StoppableJoinHandle<u32>>();
    send_sync::<system_thread::ScopedJoinHandle<'static, u32>>();
    send_sync::<system_thread::Scope<'static, 'static>>();
    send_sync::<system_thread::StopToken>();
    send_sync::<system_thread::SpawnError>();
    // A handle moves to another thread and is joined there, as in a DriverUnload.
    in_kernel(|kernel| {
        let handle = SystemThread::spawn(|| 11).unwrap();
        let joiner = kernel.clone();
        let value = std::thread::spawn(move || joiner.run(|| handle.join().unwrap())).join();
        assert_eq!(value.unwrap(), 11);
    });
}

#[test]
fn join_returns_the_closure_value() {
    in_kernel(|_| {
        let handle = SystemThread::spawn(|| (1..=10u64).product::<u64>()).unwrap();
        assert_eq!(handle.join().unwrap(), 3_628_800);
    });
}

#[test]
fn join_returns_owned_heap_values() {
    in_kernel(|_| {
        let handle = SystemThread::spawn(|| vec![String::from("a"), String::from("b")]).unwrap();
        assert_eq!(handle.join().unwrap(), ["a", "b"]);
    });
}

#[test]
fn threads_run_in_parallel_on_their_own_ids() {
    in_kernel(|kernel| {
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let arrived = Arc::clone(&arrived);
                SystemThread::spawn(move || {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    // Only possible if all four run at the same time.
                    wait_until("all four threads run at once", || {
                        arrived.load(Ordering::SeqCst) == 4
                    });
                    (i, current_id())
                })
                .unwrap()
            })
            .collect();
        let ids: Vec<_> = handles.iter().map(JoinHandle::thread_id).collect();
        for (i, handle) in handles.into_iter().enumerate() {
            let (value, id) = handle.join().unwrap();
            assert_eq!(value, i);
            assert_eq!(id, ids[i], "the thread ran with the id its handle reports");
            assert_ne!(id, current_id());
        }
        assert_eq!(kernel.threads().len(), 4);
    });
}

#[test]
fn join_timeout_times_out_then_join_succeeds() {
    in_kernel(|_| {
        let (release, gate) = mpsc::channel::<()>();
        let handle = SystemThread::spawn(move || {
            gate.recv().unwrap();
            7
        })
        .unwrap();
        let started = Instant::now();
        let err = handle.join_timeout(Duration::from_millis(30)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(err.is_timeout());
        assert_eq!(err.kind(), JoinErrorKind::TimedOut);
        assert_eq!(err.status(), NtStatus::TIMEOUT);
        let handle = err.into_handle();
        assert!(!handle.is_finished());
        let handle = handle.join_timeout(Duration::ZERO).unwrap_err().into_handle();
        release.send(()).unwrap();
        assert_eq!(handle.join_timeout(Duration::from_secs(30)).unwrap(), 7);
    });
}

#[test]
fn is_finished_turns_true_only_after_the_thread_exits() {
    in_kernel(|_| {
        let (release, gate) = mpsc::channel::<()>();
        let handle = SystemThread::spawn(move || gate.recv().unwrap()).unwrap();
        assert!(!handle.is_finished());
        release.send(()).unwrap();
        wait_until("is_finished reports the exit", || handle.is_finished());
        handle.join().unwrap();
    });
}

#[test]
fn dropping_a_handle_joins_the_thread() {
    in_kernel(|kernel| {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let handle = SystemThread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            flag.store(true, Ordering::SeqCst);
        })
        .unwrap();
        drop(handle);
        assert!(done.load(Ordering::SeqCst), "drop returned before the thread finished");
        assert_eq!(kernel.outstanding().running_threads, 0);
    });
}

#[test]
fn dropping_a_handle_drops_the_unjoined_value() {
    in_kernel(|_| {
        let drops = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&drops);
        let handle = SystemThread::spawn(move || DropCounter(counter)).unwrap();
        drop(handle);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_thread_joining_itself_gets_an_error_not_a_deadlock() {
    in_kernel(|_| {
        let slot: Arc<Mutex<Option<JoinHandle<&'static str>>>> = Arc::new(Mutex::new(None));
        let inner = Arc::clone(&slot);
        let (handed, ready) = mpsc::channel::<()>();
        let (report, outcome) = mpsc::channel();
        let handle = SystemThread::spawn(move || {
            ready.recv().unwrap();
            let own = inner.lock().unwrap().take().unwrap();
            let err = own.join().unwrap_err();
            report.send((err.kind(), err.to_string())).unwrap();
            // Hand the handle back so the spawner can join.
            *inner.lock().unwrap() = Some(err.into_handle());
            "done"
        })
        .unwrap();
        *slot.lock().unwrap() = Some(handle);
        handed.send(()).unwrap();
        let (kind, text) = outcome.recv().unwrap();
        assert_eq!(kind, JoinErrorKind::SelfJoin);
        assert!(text.contains("cannot join itself"), "{text}");
        let mut handed_back = None;
        wait_until("the thread hands its handle back", || {
            handed_back = slot.lock().unwrap().take();
            handed_back.is_some()
        });
        assert_eq!(handed_back.unwrap().join().unwrap(), "done");
    });
}

#[test]
fn a_join_wait_failure_hands_the_handle_back() {
    in_kernel(|kernel| {
        let handle = SystemThread::spawn(|| 5).unwrap();
        let failure = NtStatus::UNSUCCESSFUL;
        kernel.fail_nth(Call::KeWaitForSingleObject, 1, failure.0);
        let err = handle.join().unwrap_err();
        assert_eq!(err.kind(), JoinErrorKind::Wait(failure));
        assert_eq!(err.status(), failure);
        assert_eq!(err.into_handle().join().unwrap(), 5);
    });
}

#[test]
fn ten_thousand_spawn_join_cycles_leave_nothing_behind() {
    in_kernel(|kernel| {
        let cycles = scaled(10_000, 40);
        let mut sum = 0usize;
        for i in 0..cycles {
            sum += SystemThread::spawn(move || i * 2).unwrap().join().unwrap();
        }
        assert_eq!(sum, cycles * (cycles - 1));
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), cycles);
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), cycles);
        assert_eq!(kernel.calls(Call::ExFreePoolWithTag), cycles);
        assert_eq!(kernel.calls(Call::ZwClose), cycles);
        assert_eq!(kernel.calls(Call::ObfDereferenceObject), cycles);
    });
}

/// A join checks the IRQL it is documented for even when an earlier wait (`is_finished`,
/// `wait_all`) saw the thread exit: giving up the share after a join dereferences the thread
/// object and frees its pool block, which a real kernel allows only up to `DISPATCH_LEVEL`.
/// (Before: the join returned the value above `DISPATCH_LEVEL` and made those calls there.)
#[test]
fn joins_check_the_irql_also_after_the_exit_was_seen() {
    in_kernel(|kernel| {
        let handle = SystemThread::spawn(|| 5u32).unwrap();
        wait_until("the thread has finished", || handle.is_finished());
        let err = system_thread::host::with_irql(3, || handle.join()).unwrap_err();
        assert!(matches!(err.kind(), JoinErrorKind::Irql(_)), "{err:?}");
        let err = system_thread::host::with_irql(2, || err.into_handle().join()).unwrap_err();
        assert!(matches!(err.kind(), JoinErrorKind::Irql(_)), "a blocking join: APC_LEVEL");
        let handle = err.into_handle();
        let err =
            system_thread::host::with_irql(3, || handle.join_timeout(Duration::ZERO)).unwrap_err();
        assert!(matches!(err.kind(), JoinErrorKind::Irql(_)), "a poll: DISPATCH_LEVEL");
        assert_eq!(kernel.calls(Call::ObfDereferenceObject), 0);
        // A poll at DISPATCH_LEVEL may take the value and free the context.
        let value =
            system_thread::host::with_irql(2, || err.into_handle().join_timeout(Duration::ZERO));
        assert_eq!(value.unwrap(), 5);

        let handle = SystemThread::spawn(|| 6u32).unwrap();
        system_thread::wait_all(&[&handle], None).unwrap();
        let err =
            system_thread::host::with_irql(3, || handle.join_timeout(Duration::ZERO)).unwrap_err();
        assert!(matches!(err.kind(), JoinErrorKind::Irql(_)), "{err:?}");
        assert_eq!(err.into_handle().join().unwrap(), 6);
    });
}
