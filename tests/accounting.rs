//! Exact resource accounting: one pool allocation per thread, and no kernel call beyond the
//! minimum a correct hand-written spawn + join makes.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{in_kernel, wait_until};
use system_thread::host::{Call, Kernel};
use system_thread::{SystemThread, scope};

/// Calls made by `body`, by routine, leaving out IRQL reads (a CR8 read on x64, not a call).
fn calls_during(kernel: &Kernel, body: impl FnOnce()) -> Vec<(Call, usize)> {
    let before = kernel.call_counts();
    body();
    let after = kernel.call_counts();
    after
        .into_iter()
        .filter(|(call, _)| *call != Call::KeGetCurrentIrql)
        .filter_map(|(call, n)| {
            let earlier = before.iter().find(|(c, _)| *c == call).map_or(0, |(_, m)| *m);
            (n > earlier).then_some((call, n - earlier))
        })
        .collect()
}

/// Spawns a thread that is provably inside its closure when the join starts, and joins it.
fn spawn_join_while_running<'a>(
    spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> Box<dyn FnOnce() + 'a>,
) {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, gate) = mpsc::channel::<()>();
    let join = spawn(Box::new(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
    }));
    started.recv().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
    });
    join();
    releaser.join().unwrap();
}

/// In the order of `Call` (the routine list).
const SPAWN_JOIN_RUNNING: [(Call, usize); 8] = [
    (Call::PsCreateSystemThread, 1),
    (Call::ObReferenceObjectByHandle, 1),
    (Call::ObfDereferenceObject, 1),
    (Call::ZwClose, 1),
    (Call::KeWaitForSingleObject, 1),
    // Asked only because the thread was inside its closure: the self-join check.
    (Call::PsGetCurrentThreadId, 1),
    (Call::ExFreePoolWithTag, 1),
    (Call::ExAllocatePoolWithTag, 1),
];

#[test]
fn spawn_join_makes_the_minimal_calls_and_one_allocation() {
    in_kernel(|kernel| {
        let calls = calls_during(kernel, || {
            spawn_join_while_running(|f| {
                let handle = SystemThread::spawn(f).unwrap();
                Box::new(move || handle.join().unwrap())
            });
        });
        assert_eq!(calls, SPAWN_JOIN_RUNNING);
    });
}

#[test]
fn scoped_spawn_join_makes_the_same_calls() {
    in_kernel(|kernel| {
        let calls = calls_during(kernel, || {
            scope(|s| {
                spawn_join_while_running(|f| {
                    let handle = s.spawn(f).unwrap();
                    Box::new(move || handle.join().unwrap())
                });
            });
        });
        assert_eq!(calls, SPAWN_JOIN_RUNNING);
    });
}

#[test]
fn joining_a_finished_thread_skips_the_self_join_check() {
    in_kernel(|kernel| {
        let handle = SystemThread::spawn(|| 1).unwrap();
        wait_until("is_finished reports the exit", || handle.is_finished());
        let calls = calls_during(kernel, || assert_eq!(handle.join().unwrap(), 1));
        // `is_finished` saw the thread object signalled, so the join does not wait again.
        assert_eq!(calls, [(Call::ObfDereferenceObject, 1), (Call::ExFreePoolWithTag, 1)]);
    });
}

#[test]
fn the_start_routine_reads_the_irql_twice_and_calls_nothing_else() {
    in_kernel(|kernel| {
        let (report, calls) = mpsc::channel();
        let probe = kernel.clone();
        // The closure records the counts the trampoline left when it entered the closure.
        let handle =
            SystemThread::spawn(move || report.send(probe.call_counts()).unwrap()).unwrap();
        let at_entry = calls.recv().unwrap();
        handle.join().unwrap();
        let irql_reads = |counts: &[(Call, usize)]| {
            counts.iter().find(|(c, _)| *c == Call::KeGetCurrentIrql).map_or(0, |(_, n)| *n)
        };
        // One read by spawn, one by the trampoline at entry so far.
        assert_eq!(irql_reads(&at_entry), 2);
        // Join reads once; the trampoline once more after the closure.
        assert_eq!(irql_reads(&kernel.call_counts()), 4);
    });
}
