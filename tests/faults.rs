//! Fault injection: every fallible kernel call, failing at every position of a sequence of
//! spawns and joins, gives the documented error and leaves no allocation, handle, reference or
//! thread behind (each test ends with `Kernel::assert_clean`).
//!
//! `ZwClose`, `ObfDereferenceObject`, `KeSetEvent`, `KeInitializeEvent` and
//! `KeSetPriorityThread` cannot fail on the arguments this crate passes (kernel handles and
//! objects it owns), and their results are ignored by design; they are not injected.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use common::{DropCounter, in_kernel};
use system_thread::host::Call;
use system_thread::{Builder, JoinErrorKind, NtStatus, SpawnError, SystemThread};

const THREADS: usize = 3;
const FAILURE: NtStatus = NtStatus::INSUFFICIENT_RESOURCES;

/// Spawns `THREADS` threads, each returning its index, and joins them; returns what each spawn
/// and join gave, and how many closures ran.
fn spawn_and_join_all() -> (Vec<Result<usize, SpawnError>>, Vec<Option<JoinErrorKind>>, usize) {
    let ran = Arc::new(AtomicUsize::new(0));
    let spawned: Vec<_> = (0..THREADS)
        .map(|i| {
            let ran = Arc::clone(&ran);
            SystemThread::spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let mut spawns = Vec::new();
    let mut joins = Vec::new();
    for (i, result) in spawned.into_iter().enumerate() {
        match result {
            Ok(handle) => match handle.join() {
                Ok(value) => {
                    assert_eq!(value, i);
                    spawns.push(Ok(i));
                    joins.push(None);
                }
                Err(err) => {
                    joins.push(Some(err.kind()));
                    // The handle comes back and still joins.
                    assert_eq!(err.into_handle().join().unwrap(), i);
                    spawns.push(Ok(i));
                }
            },
            Err(err) => {
                spawns.push(Err(err));
                joins.push(None);
            }
        }
    }
    (spawns, joins, ran.load(Ordering::SeqCst))
}

fn expect_only_nth_spawn_fails(
    call: Call,
    expected: impl Fn(NtStatus) -> SpawnError,
    closure_runs: bool,
) {
    for nth in 1..=THREADS {
        in_kernel(|kernel| {
            kernel.fail_nth(call, nth, FAILURE.0);
            let (spawns, joins, ran) = spawn_and_join_all();
            for (i, spawn) in spawns.iter().enumerate() {
                if i + 1 == nth {
                    assert_eq!(spawn, &Err(expected(FAILURE)), "{call:?} #{nth}");
                } else {
                    assert_eq!(spawn, &Ok(i), "{call:?} #{nth}: spawn {i}");
                }
            }
            assert!(joins.iter().all(Option::is_none));
            assert_eq!(ran, if closure_runs { THREADS } else { THREADS - 1 }, "{call:?} #{nth}");
        });
    }
}

#[test]
fn pool_exhaustion_is_out_of_memory_at_every_position() {
    expect_only_nth_spawn_fails(Call::ExAllocatePoolWithTag, |_| SpawnError::OutOfMemory, false);
}

#[test]
fn thread_creation_failure_returns_its_status_at_every_position() {
    expect_only_nth_spawn_fails(Call::PsCreateSystemThread, SpawnError::Create, false);
}

#[test]
fn reference_failure_waits_for_the_started_thread_at_every_position() {
    // The thread had started: spawn waits on its handle, so the closure ran and nothing leaks.
    expect_only_nth_spawn_fails(Call::ObReferenceObjectByHandle, SpawnError::Reference, true);
}

#[test]
fn reference_failure_survives_a_failing_handle_wait() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::ObReferenceObjectByHandle, 1, FAILURE.0);
        kernel.fail_nth(Call::ZwWaitForSingleObject, 1, NtStatus::UNSUCCESSFUL.0);
        assert_eq!(SystemThread::spawn(|| 1).unwrap_err(), SpawnError::Reference(FAILURE));
        assert_eq!(kernel.calls(Call::ZwWaitForSingleObject), 2, "the failed wait was retried");
    });
}

#[test]
fn reference_failure_stops_a_stoppable_thread_instead_of_hanging() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::ObReferenceObjectByHandle, 1, FAILURE.0);
        let err = SystemThread::spawn_stoppable(|stop| stop.wait().unwrap()).unwrap_err();
        assert_eq!(err, SpawnError::Reference(FAILURE));
    });
}

#[test]
fn reference_failure_cancels_a_gated_thread_before_its_closure() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::ObReferenceObjectByHandle, 1, FAILURE.0);
        let (ran, observe) = mpsc::channel::<()>();
        let err = Builder::new().name("gated").spawn(move || ran.send(()).unwrap()).unwrap_err();
        assert_eq!(err, SpawnError::Reference(FAILURE));
        assert!(observe.try_recv().is_err());
    });
}

#[test]
fn a_failing_join_wait_hands_back_a_handle_at_every_position() {
    for nth in 1..=THREADS {
        in_kernel(|kernel| {
            kernel.fail_nth(Call::KeWaitForSingleObject, nth, FAILURE.0);
            let (spawns, joins, ran) = spawn_and_join_all();
            assert!(spawns.iter().all(Result::is_ok));
            for (i, join) in joins.iter().enumerate() {
                let expected = (i + 1 == nth).then_some(JoinErrorKind::Wait(FAILURE));
                assert_eq!(join, &expected, "KeWaitForSingleObject #{nth}, join {i}");
            }
            assert_eq!(ran, THREADS);
        });
    }
}

#[test]
fn a_failing_wait_in_drop_is_retried() {
    in_kernel(|kernel| {
        let handle = SystemThread::spawn(|| 1).unwrap();
        kernel.fail_nth(Call::KeWaitForSingleObject, 1, FAILURE.0);
        drop(handle);
        assert_eq!(kernel.calls(Call::KeWaitForSingleObject), 2);
    });
}

#[test]
fn builder_failures_at_each_step_leave_nothing_behind() {
    static DEVICE: u8 = 0;
    let steps: [(Call, SpawnError); 4] = [
        (Call::MmGetSystemRoutineAddress, SpawnError::NotSupported("IoCreateSystemThread")),
        (Call::ExAllocatePoolWithTag, SpawnError::OutOfMemory),
        (Call::IoCreateSystemThread, SpawnError::Create(FAILURE)),
        (Call::ZwSetInformationThread, SpawnError::Name(FAILURE)),
    ];
    let object = std::ptr::NonNull::from(&DEVICE).cast();
    // SAFETY: the host model only counts references on the pointer.
    let io = unsafe { system_thread::IoObject::from_raw(object) };
    for (call, expected) in steps {
        in_kernel(|kernel| {
            kernel.fail_nth(call, 1, FAILURE.0);
            let (ran, observe) = mpsc::channel::<()>();
            let err = Builder::new()
                .name("step")
                .priority(9)
                .io_object(io)
                .spawn(move || ran.send(()).unwrap())
                .unwrap_err();
            assert_eq!(err, expected, "{call:?}");
            assert!(observe.try_recv().is_err(), "{call:?}: the closure ran");
            if call == Call::MmGetSystemRoutineAddress {
                // A routine the kernel did not export is looked up once, then remembered.
                let again = Builder::new().io_object(io).spawn(|| ()).unwrap_err();
                assert_eq!(again, expected);
                assert_eq!(kernel.calls(Call::MmGetSystemRoutineAddress), 1);
                return;
            }
            // The same builder succeeds once the fault is gone.
            Builder::new()
                .name("step")
                .priority(9)
                .io_object(io)
                .spawn(|| ())
                .unwrap()
                .join()
                .unwrap();
        });
    }
}

#[test]
fn a_failed_spawn_drops_the_closure_it_never_ran() {
    for (call, named) in [
        (Call::PsCreateSystemThread, false),
        (Call::ObReferenceObjectByHandle, true),
        (Call::ZwSetInformationThread, true),
    ] {
        in_kernel(|kernel| {
            kernel.fail_nth(call, 1, FAILURE.0);
            let drops = Arc::new(AtomicUsize::new(0));
            let captured = DropCounter(Arc::clone(&drops));
            let builder = if named { Builder::new().name("never") } else { Builder::new() };
            let err = builder.spawn(move || drop(captured)).unwrap_err();
            assert_eq!(err.status(), FAILURE, "{call:?}");
            assert_eq!(drops.load(Ordering::SeqCst), 1, "{call:?}: the closure was dropped once");
        });
    }
}

#[test]
fn a_reference_that_succeeds_without_an_object_is_a_failure() {
    in_kernel(|kernel| {
        // STATUS_SUCCESS without writing the object: a kernel (or emulator) that lies.
        kernel.fail_nth(Call::ObReferenceObjectByHandle, 1, NtStatus::SUCCESS.0);
        let err = SystemThread::spawn(|| 1).unwrap_err();
        assert_eq!(err, SpawnError::Reference(NtStatus::UNSUCCESSFUL));
    });
}
