//! The host model's own contract, which every other test relies on: kernels are independent
//! and `run` gives the caller's kernel back, the accounting shows what a driver holds, and
//! `assert_clean` fails while anything is held.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Watchdog, in_kernel};
use system_thread::host::{Call, Kernel, Outstanding, with_irql};
use system_thread::{Event, EventKind, NtStatus, SystemThread, current_irql, live_threads};

#[test]
fn run_gives_the_callers_kernel_back() {
    let _watchdog = Watchdog::start();
    let (outer, inner) = (Kernel::new(), Kernel::new());
    outer.run(|| {
        inner.run(|| SystemThread::spawn(|| ()).unwrap().join().unwrap());
        // Back in the outer kernel: this spawn is counted there.
        SystemThread::spawn(|| ()).unwrap().join().unwrap();
    });
    assert_eq!(outer.calls(Call::PsCreateSystemThread), 1);
    assert_eq!(inner.calls(Call::PsCreateSystemThread), 1);
    outer.assert_clean();
    inner.assert_clean();
}

#[test]
fn with_irql_restores_the_previous_irql() {
    in_kernel(|_| {
        with_irql(1, || {
            with_irql(2, || assert_eq!(current_irql().0, 2));
            assert_eq!(current_irql().0, 1);
        });
        assert_eq!(current_irql().0, 0);
    });
}

#[test]
fn outstanding_shows_what_the_driver_holds_and_assert_clean_fails_on_it() {
    in_kernel(|kernel| {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let handle = SystemThread::spawn(move || gate.recv().unwrap()).unwrap();
        let event = Event::new(EventKind::Notification).unwrap();
        let held = Outstanding {
            // The thread's context and the event.
            allocations: 2,
            // The handle's reference on the thread object; its kernel handle is closed.
            handles: 0,
            references: 1,
            running_threads: 1,
            io_object_references: 0,
            live_threads: 1,
        };
        assert_eq!(kernel.outstanding(), held);
        assert_eq!(kernel.quiesce(), held);
        assert_eq!(live_threads(), 1);
        let unclean = catch_unwind(AssertUnwindSafe(|| kernel.assert_clean()));
        let message = *unclean.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("left resources behind"), "{message}");
        drop(event);
        release.send(()).unwrap();
        handle.join().unwrap();
        assert_eq!(kernel.quiesce(), Outstanding::default());
    });
}

thread_local! {
    /// Dropped when a model thread's OS thread exits.
    static ON_EXIT: RefCell<Option<SlowExit>> = const { RefCell::new(None) };
}

/// Counts when its OS thread has finished exiting, a while after its system thread returned.
struct SlowExit(Arc<AtomicUsize>);

impl Drop for SlowExit {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(50));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn quiesce_waits_for_the_os_threads_of_finished_system_threads() {
    in_kernel(|kernel| {
        let exited = Arc::new(AtomicUsize::new(0));
        let exits = Arc::clone(&exited);
        let handle = SystemThread::spawn(move || {
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(SlowExit(exits)));
        })
        .unwrap();
        handle.join().unwrap();
        // The system thread has exited; its OS thread is still running the destructor.
        assert_eq!(kernel.quiesce(), Outstanding::default());
        assert_eq!(exited.load(Ordering::SeqCst), 1, "quiesce returned before the OS thread");
    });
}

/// Uses `N` bytes of the calling thread's stack.
fn use_stack<const N: usize>() -> u8 {
    let mut frame = [0u8; N];
    std::hint::black_box(&mut frame);
    frame[N - 1]
}

#[test]
fn model_threads_have_the_documented_stack() {
    in_kernel(|_| {
        // 256 KiB in unoptimized builds, 64 KiB in optimized ones: test code fits well within
        // (and far more than the 16 KiB a thread would get by default from a too small size).
        let handle = SystemThread::spawn(|| {
            if cfg!(debug_assertions) {
                use_stack::<{ 96 * 1024 }>()
            } else {
                use_stack::<{ 24 * 1024 }>()
            }
        });
        assert_eq!(handle.unwrap().join().unwrap(), 0);
    });
}

/// Fault injection injects failures: a success injected into a routine whose success the crate
/// must trust (a wait: the thread has exited; a creation: the thread exists) would make the
/// model lie where no kernel does (a scope returned while its thread ran; a spawn spun on a
/// thread that was never made). It is refused, naming the routine; `STATUS_TIMEOUT` and real
/// failures are injected, and other routines may still be made to lie.
#[test]
fn injecting_success_into_a_wait_or_a_creation_is_refused() {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    for call in [
        Call::KeWaitForSingleObject,
        Call::KeWaitForMultipleObjects,
        Call::ZwWaitForSingleObject,
        Call::PsCreateSystemThread,
        Call::IoCreateSystemThread,
    ] {
        for status in [0, 1, 63, 0x80, 0x103, 0x4000_0000] {
            let refused = catch_unwind(AssertUnwindSafe(|| kernel.fail_nth(call, 1, status)));
            let Err(message) = refused else { panic!("{status:#x} was injected into {call:?}") };
            let text = message.downcast_ref::<String>().map_or("", String::as_str);
            assert!(text.contains(call.name()), "{text}");
        }
        kernel.fail_nth(call, 1, 0x102);
        kernel.fail_nth(call, 2, NtStatus::UNSUCCESSFUL.0);
    }
    kernel.fail_nth(Call::ObReferenceObjectByHandle, 1, 0);
    kernel.fail_nth(Call::ExAllocatePoolWithTag, 1, 0);
}

/// Safe code may keep a driver's objects past the `Kernel` value that made them: every kernel
/// lives until the process ends, so they stay valid memory. (Before: the last `Kernel` value
/// freed the kernel, and setting the event or polling the handle used freed memory, which
/// Miri reported.) Dropping them would free them against the caller's kernel, so they are
/// kept.
#[test]
fn objects_kept_past_their_kernel_value_stay_valid() {
    let _watchdog = Watchdog::start();
    let (event, handle) = Kernel::new()
        .run(|| (Event::new(EventKind::Notification).unwrap(), SystemThread::spawn(|| 7).unwrap()));
    event.set().unwrap();
    common::wait_until("the thread has finished", || handle.is_finished());
    std::mem::forget((event, handle));
}

#[test]
fn fail_nth_counts_from_one() {
    let kernel = Kernel::new();
    let refused = catch_unwind(AssertUnwindSafe(|| kernel.fail_nth(Call::ZwClose, 0, -1)));
    assert!(refused.is_err());
}
