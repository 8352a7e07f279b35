//! IRQL rules: spawning needs `PASSIVE_LEVEL`, joining `APC_LEVEL` or lower, and threads start
//! (and must end) at `PASSIVE_LEVEL`. Violations are errors, not hangs or bugchecks.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::time::Duration;

use common::{in_kernel, wait_until};
use system_thread::host::{Call, with_irql};
use system_thread::{
    Irql, IrqlError, JoinErrorKind, SpawnError, SystemThread, current_irql, scope, sleep, yield_now,
};

const DISPATCH: u8 = 2;
const APC: u8 = 1;

#[test]
fn spawning_above_passive_is_rejected_and_creates_nothing() {
    in_kernel(|kernel| {
        for level in [APC, DISPATCH] {
            let err = with_irql(level, || SystemThread::spawn(|| 1).unwrap_err());
            assert_eq!(
                err,
                SpawnError::Irql(IrqlError { current: Irql(level), max: Irql::PASSIVE })
            );
            assert!(err.to_string().contains("requires PASSIVE_LEVEL"), "{err}");
        }
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), 0);
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
    });
}

#[test]
fn stoppable_and_scoped_spawns_check_the_irql_too() {
    in_kernel(|_| {
        let err = with_irql(APC, || SystemThread::spawn_stoppable(|_| ()).unwrap_err());
        assert!(matches!(err, SpawnError::Irql(_)));
        scope(|s| {
            let err = with_irql(APC, || s.spawn(|| ()).unwrap_err());
            assert!(matches!(err, SpawnError::Irql(_)));
        });
    });
}

#[test]
fn threads_start_at_passive_level() {
    in_kernel(|kernel| {
        let seen = SystemThread::spawn(current_irql).unwrap().join().unwrap();
        assert_eq!(seen, Irql::PASSIVE);
        assert_eq!(kernel.threads()[0].start_irql, 0);
    });
}

#[test]
fn joining_at_dispatch_is_rejected_and_hands_the_handle_back() {
    in_kernel(|_| {
        let handle = SystemThread::spawn(|| 3).unwrap();
        let err = with_irql(DISPATCH, || handle.join().unwrap_err());
        assert_eq!(
            err.kind(),
            JoinErrorKind::Irql(IrqlError { current: Irql::DISPATCH, max: Irql::APC })
        );
        let handle = err.into_handle();
        let err =
            with_irql(DISPATCH, || handle.join_timeout(Duration::from_millis(1)).unwrap_err());
        assert!(matches!(err.kind(), JoinErrorKind::Irql(_)));
        let handle = err.into_handle();
        // Polling does not wait, so it is allowed at DISPATCH_LEVEL.
        with_irql(DISPATCH, || {
            wait_until("is_finished at DISPATCH_LEVEL reports the exit", || handle.is_finished());
        });
        // At APC_LEVEL, waiting is allowed.
        assert_eq!(with_irql(APC, || handle.join().unwrap()), 3);
    });
}

#[test]
fn sleep_and_yield_check_the_irql() {
    in_kernel(|kernel| {
        assert_eq!(
            with_irql(DISPATCH, || sleep(Duration::from_millis(1))),
            Err(IrqlError { current: Irql::DISPATCH, max: Irql::APC })
        );
        assert!(with_irql(APC, || sleep(Duration::from_millis(1))).is_ok());
        assert_eq!(
            with_irql(APC, yield_now),
            Err(IrqlError { current: Irql::APC, max: Irql::PASSIVE })
        );
        assert!(yield_now().is_ok());
        assert_eq!(kernel.calls(Call::ZwYieldExecution), 1, "one yield, at PASSIVE_LEVEL");
    });
}

#[test]
fn sleep_waits_at_least_the_duration() {
    in_kernel(|kernel| {
        let start = std::time::Instant::now();
        sleep(Duration::from_millis(15)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(15));
        assert_eq!(kernel.calls(Call::KeDelayExecutionThread), 1);
    });
}

#[test]
fn irql_names_display_like_the_wdk() {
    assert_eq!(Irql::PASSIVE.to_string(), "PASSIVE_LEVEL");
    assert_eq!(Irql::APC.to_string(), "APC_LEVEL");
    assert_eq!(Irql::DISPATCH.to_string(), "DISPATCH_LEVEL");
    assert_eq!(Irql(15).to_string(), "IRQL 15");
}
