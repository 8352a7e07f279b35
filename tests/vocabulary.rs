//! The vocabulary types: NTSTATUS codes and names, the errors' statuses and messages, and how
//! every public type prints. A driver logs these (`DbgPrint`), so their text is behaviour.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::in_kernel;
use system_thread::host::{Call, Kernel, with_irql};
use system_thread::{
    Event, EventKind, Irql, IrqlError, JoinError, JoinErrorKind, JoinHandle, NtStatus, SpawnError,
    SystemThread, ThreadId, WaitError, scope,
};

const INVALID_DEVICE_STATE: NtStatus = NtStatus(0xC000_0184_u32.cast_signed());
const POSSIBLE_DEADLOCK: NtStatus = NtStatus(0xC000_0194_u32.cast_signed());

#[test]
fn statuses_have_their_codes_and_names() {
    let named = [
        (NtStatus::SUCCESS, 0x0000_0000, "STATUS_SUCCESS"),
        (NtStatus::TIMEOUT, 0x0000_0102, "STATUS_TIMEOUT"),
        (NtStatus::UNSUCCESSFUL, 0xC000_0001, "STATUS_UNSUCCESSFUL"),
        (NtStatus::INSUFFICIENT_RESOURCES, 0xC000_009A, "STATUS_INSUFFICIENT_RESOURCES"),
        (NtStatus::NOT_SUPPORTED, 0xC000_00BB, "STATUS_NOT_SUPPORTED"),
        (NtStatus::INVALID_PARAMETER, 0xC000_000D, "STATUS_INVALID_PARAMETER"),
        (NtStatus::INVALID_HANDLE, 0xC000_0008, "STATUS_INVALID_HANDLE"),
        (NtStatus::ACCESS_DENIED, 0xC000_0022, "STATUS_ACCESS_DENIED"),
        (NtStatus::INVALID_INFO_CLASS, 0xC000_0003, "STATUS_INVALID_INFO_CLASS"),
    ];
    for (status, code, name) in named {
        assert_eq!(status.code(), code, "{name}");
        assert_eq!(status.name(), Some(name));
        let text = format!("{code:#010X} ({name})");
        assert_eq!(status.to_string(), text);
        assert_eq!(format!("{status:?}"), text, "Debug prints like Display");
    }
    let unnamed = NtStatus(0x4000_0000);
    assert_eq!(unnamed.name(), None);
    assert_eq!(unnamed.to_string(), "0x40000000");
    assert_eq!(format!("{unnamed:?}"), "0x40000000");
}

#[test]
fn success_is_the_nt_success_macro() {
    // NT_SUCCESS: severity success (00) and informational (01) succeed; warning and error fail.
    for (code, success) in [
        (0x0000_0000_u32, true),
        (0x0000_0102, true),
        (0x4000_0000, true),
        (0x7FFF_FFFF, true),
        (0x8000_0005, false),
        (0xC000_0001, false),
        (0xFFFF_FFFF, false),
    ] {
        assert_eq!(NtStatus(code.cast_signed()).is_success(), success, "{code:#x}");
    }
}

#[test]
fn irqls_and_thread_ids_print_as_the_wdk_and_debuggers_do() {
    let error = IrqlError { current: Irql::DISPATCH, max: Irql::APC };
    assert_eq!(error.to_string(), "called at DISPATCH_LEVEL, but requires APC_LEVEL or lower");
    assert_eq!(ThreadId(0x1a2c).to_string(), "0x1a2c");
}

#[test]
fn spawn_errors_have_a_status_and_a_message() {
    let irql = IrqlError { current: Irql::APC, max: Irql::PASSIVE };
    let denied = NtStatus::ACCESS_DENIED;
    let cases = [
        (
            SpawnError::Irql(irql),
            INVALID_DEVICE_STATE,
            "called at APC_LEVEL, but requires PASSIVE_LEVEL or lower",
        ),
        (
            SpawnError::OutOfMemory,
            NtStatus::INSUFFICIENT_RESOURCES,
            "out of non-paged pool for the thread context",
        ),
        (
            SpawnError::Create(denied),
            denied,
            "thread creation returned 0xC0000022 (STATUS_ACCESS_DENIED)",
        ),
        (
            SpawnError::Reference(denied),
            denied,
            "ObReferenceObjectByHandle returned 0xC0000022 (STATUS_ACCESS_DENIED)",
        ),
        (
            SpawnError::Name(denied),
            denied,
            "setting the thread name returned 0xC0000022 (STATUS_ACCESS_DENIED)",
        ),
        (
            SpawnError::NotSupported("IoCreateSystemThread"),
            NtStatus::NOT_SUPPORTED,
            "IoCreateSystemThread is not exported by this kernel",
        ),
        (
            SpawnError::InvalidArgument("empty affinity mask"),
            NtStatus::INVALID_PARAMETER,
            "invalid argument: empty affinity mask",
        ),
    ];
    for (error, status, message) in cases {
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(error.to_string(), format!("system-thread: spawn failed: {message}"));
    }
}

#[test]
fn wait_errors_have_a_status_and_a_message() {
    let irql = IrqlError { current: Irql::DISPATCH, max: Irql::APC };
    let cases = [
        (WaitError::TimedOut, NtStatus::TIMEOUT, "timed out"),
        (
            WaitError::Irql(irql),
            INVALID_DEVICE_STATE,
            "called at DISPATCH_LEVEL, but requires APC_LEVEL or lower",
        ),
        (
            WaitError::Failed(NtStatus::UNSUCCESSFUL),
            NtStatus::UNSUCCESSFUL,
            "the kernel returned 0xC0000001 (STATUS_UNSUCCESSFUL)",
        ),
        (WaitError::TooManyObjects, NtStatus::INVALID_PARAMETER, "no objects, or more than 64"),
        (WaitError::OutOfMemory, NtStatus::INSUFFICIENT_RESOURCES, "out of non-paged pool"),
    ];
    for (error, status, message) in cases {
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(error.to_string(), format!("system-thread: wait failed: {message}"));
    }
}

/// What a join error reports: its kind, status, timeout flag, message and `Debug` text.
fn describe(err: &JoinError<JoinHandle<()>>) -> (JoinErrorKind, NtStatus, bool, String, String) {
    (err.kind(), err.status(), err.is_timeout(), err.to_string(), format!("{err:?}"))
}

/// Every kind of join error, made by a real failed join: its kind, status, message and Debug,
/// and whether it counts as a timeout.
#[test]
fn join_errors_have_a_kind_a_status_and_a_message() {
    in_kernel(|kernel| {
        let (release, gate) = mpsc::channel::<()>();
        let handle = SystemThread::spawn(move || gate.recv().unwrap()).unwrap();
        let mut errors = Vec::new();
        let err = handle.join_timeout(Duration::from_millis(1)).unwrap_err();
        errors.push(describe(&err));
        let err = with_irql(2, || err.into_handle().join().unwrap_err());
        errors.push(describe(&err));
        kernel.fail_nth(Call::KeWaitForSingleObject, 1, NtStatus::ACCESS_DENIED.0);
        let err = err.into_handle().join().unwrap_err();
        errors.push(describe(&err));
        release.send(()).unwrap();
        err.into_handle().join().unwrap();

        // A self-join, reported from the thread itself.
        let (hand, handed) = mpsc::channel();
        let (report, reported) = mpsc::channel();
        let own = SystemThread::spawn(move || {
            let own: system_thread::JoinHandle<()> = handed.recv().unwrap();
            let err = own.join().unwrap_err();
            report.send((describe(&err), err.into_handle())).unwrap();
        })
        .unwrap();
        hand.send(own).unwrap();
        let (seen, own) = reported.recv().unwrap();
        errors.push(seen);
        own.join().unwrap();

        let irql = IrqlError { current: Irql::DISPATCH, max: Irql::APC };
        let expected = [
            (
                JoinErrorKind::TimedOut,
                NtStatus::TIMEOUT,
                true,
                "timed out (the thread is still running)",
            ),
            (
                JoinErrorKind::Irql(irql),
                INVALID_DEVICE_STATE,
                false,
                "called at DISPATCH_LEVEL, but requires APC_LEVEL or lower",
            ),
            (
                JoinErrorKind::Wait(NtStatus::ACCESS_DENIED),
                NtStatus::ACCESS_DENIED,
                false,
                "KeWaitForSingleObject returned 0xC0000022 (STATUS_ACCESS_DENIED)",
            ),
            (JoinErrorKind::SelfJoin, POSSIBLE_DEADLOCK, false, "a thread cannot join itself"),
        ];
        assert_eq!(errors.len(), expected.len());
        for ((kind, status, timeout, text, debug), (e_kind, e_status, e_timeout, e_text)) in
            errors.into_iter().zip(expected)
        {
            assert_eq!(kind, e_kind);
            assert_eq!(status, e_status, "{kind:?}");
            assert_eq!(timeout, e_timeout, "{kind:?}");
            assert_eq!(text, format!("system-thread: join failed: {e_text}"));
            assert_eq!(debug, format!("JoinError {{ kind: {kind:?}, .. }}"));
        }
    });
}

#[test]
fn handles_print_their_thread_ids() {
    in_kernel(|_| {
        let handle = SystemThread::spawn(|| ()).unwrap();
        let id = handle.thread_id();
        assert_eq!(format!("{handle:?}"), format!("JoinHandle {{ thread_id: {id:?}, .. }}"));

        let (report, reported) = mpsc::channel();
        let worker = SystemThread::spawn_stoppable(move |stop| {
            report.send(format!("{stop:?}")).unwrap();
            stop.wait().unwrap();
            format!("{stop:?}")
        })
        .unwrap();
        let id = worker.thread_id();
        assert_ne!(id.0, 0);
        assert_eq!(
            format!("{worker:?}"),
            format!("StoppableJoinHandle {{ thread_id: {id:?}, .. }}")
        );
        assert_eq!(reported.recv().unwrap(), "StopToken { stop_requested: false }");
        assert_eq!(worker.stop().unwrap(), "StopToken { stop_requested: true }");

        scope(|s| {
            assert_eq!(format!("{s:?}"), "Scope { .. }");
            let scoped = s.spawn(system_thread::current_id).unwrap();
            let id = scoped.thread_id();
            assert_eq!(
                format!("{scoped:?}"),
                format!("ScopedJoinHandle {{ thread_id: {id:?}, .. }}")
            );
            assert_eq!(scoped.join().unwrap(), id, "the id is the thread's own");
        });

        assert_eq!(format!("{:?}", Event::new(EventKind::Notification).unwrap()), "Event { .. }");
        handle.join().unwrap();
    });
}

#[test]
fn a_kernel_prints_what_it_has_outstanding() {
    let kernel = Kernel::new();
    let text = format!("{kernel:?}");
    assert_eq!(text, format!("Kernel {{ outstanding: {:?} }}", kernel.outstanding()));
    assert!(text.contains("allocations: 0"), "{text}");
}
