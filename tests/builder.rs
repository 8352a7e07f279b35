//! Builder settings reach the kernel before the closure runs; invalid or unsupported settings
//! are refused before anything is created.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, mpsc};

use common::{in_kernel, wait_until};
use system_thread::host::Call;
use system_thread::{Builder, GroupAffinity, IoObject, NtStatus, SpawnError, current_id};

fn fake_io_object() -> IoObject<'static> {
    static DEVICE: u8 = 0;
    let object = NonNull::from(&DEVICE).cast::<c_void>();
    // SAFETY: the host model only counts references on the pointer; it never reads it.
    unsafe { IoObject::from_raw(object) }
}

#[test]
fn name_and_priority_are_applied_before_the_closure_runs() {
    in_kernel(|kernel| {
        let probe = kernel.clone();
        let handle = Builder::new()
            .name("worker-λ")
            .priority(12)
            .spawn(move || {
                let me = current_id();
                probe.threads().into_iter().find(|t| t.id == me.0).unwrap()
            })
            .unwrap();
        let record = handle.join().unwrap();
        assert_eq!(record.name.as_deref(), Some("worker-λ"));
        assert_eq!(record.priority, Some(12));
        assert_eq!(record.attributes, 0x200, "OBJ_KERNEL_HANDLE");
        assert!(!record.process_handle_given);
    });
}

#[test]
fn affinity_holds_while_the_closure_runs_and_is_reverted() {
    in_kernel(|kernel| {
        let affinity = GroupAffinity { group: 0, mask: 0b10 };
        Builder::new().affinity(affinity).spawn(|| ()).unwrap().join().unwrap();
        assert_eq!(kernel.threads()[0].affinity, Some((0, 0b10)));
        assert_eq!(kernel.calls(Call::KeSetSystemGroupAffinityThread), 1);
        assert_eq!(kernel.calls(Call::KeRevertToUserGroupAffinityThread), 1);
    });
}

#[test]
fn io_object_threads_pin_the_object_and_may_detach() {
    in_kernel(|kernel| {
        let (release, gate) = mpsc::channel::<()>();
        let handle =
            Builder::new().io_object(fake_io_object()).spawn(move || gate.recv().unwrap()).unwrap();
        assert_eq!(kernel.calls(Call::IoCreateSystemThread), 1);
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
        assert_eq!(kernel.outstanding().io_object_references, 1);
        handle.detach().unwrap();
        assert_eq!(kernel.outstanding().references, 0, "detach dropped the object reference");
        release.send(()).unwrap();
        wait_until("the detached thread has finished", || {
            kernel.outstanding().running_threads == 0
        });
        // The detached thread freed its own context when it finished.
        assert_eq!(kernel.quiesce().allocations, 0);
        assert_eq!(kernel.outstanding().io_object_references, 0);
    });
}

#[test]
fn threads_without_an_io_object_cannot_detach() {
    in_kernel(|_| {
        let handle = Builder::new().spawn(|| 9).unwrap();
        let handle = handle.detach().unwrap_err();
        assert_eq!(handle.join().unwrap(), 9);
    });
}

#[test]
fn missing_optional_routines_are_not_supported_errors() {
    in_kernel(|kernel| {
        kernel.hide_routine(Call::IoCreateSystemThread);
        kernel.hide_routine(Call::KeSetSystemGroupAffinityThread);
        let err = Builder::new().io_object(fake_io_object()).spawn(|| ()).unwrap_err();
        assert_eq!(err, SpawnError::NotSupported("IoCreateSystemThread"));
        assert_eq!(err.status(), NtStatus::NOT_SUPPORTED);
        let err =
            Builder::new().affinity(GroupAffinity { group: 0, mask: 1 }).spawn(|| ()).unwrap_err();
        assert_eq!(err, SpawnError::NotSupported("KeSetSystemGroupAffinityThread"));
        assert!(err.to_string().contains("not exported by this kernel"), "{err}");
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), 0);
    });
}

#[test]
fn out_of_range_settings_are_refused_before_anything_is_created() {
    in_kernel(|kernel| {
        for priority in [0, 32, -1] {
            let err = Builder::new().priority(priority).spawn(|| ()).unwrap_err();
            assert!(matches!(err, SpawnError::InvalidArgument(_)), "{priority}: {err:?}");
        }
        let long = "x".repeat(system_thread::MAX_NAME_LEN + 1);
        let err = Builder::new().name(&long).spawn(|| ()).unwrap_err();
        assert!(matches!(err, SpawnError::InvalidArgument(_)));
        let err =
            Builder::new().affinity(GroupAffinity { group: 0, mask: 0 }).spawn(|| ()).unwrap_err();
        assert!(matches!(err, SpawnError::InvalidArgument(_)));
        assert_eq!(kernel.calls(Call::MmGetSystemRoutineAddress), 0);
        assert_eq!(kernel.calls(Call::ExAllocatePoolWithTag), 0);
        // The longest accepted name fits.
        let exact = "y".repeat(system_thread::MAX_NAME_LEN);
        Builder::new().name(&exact).spawn(|| ()).unwrap().join().unwrap();
        assert_eq!(kernel.threads()[0].name.as_deref(), Some(exact.as_str()));
    });
}

#[test]
fn a_failed_name_cancels_the_thread_before_its_closure_runs() {
    in_kernel(|kernel| {
        let denied = NtStatus::ACCESS_DENIED;
        kernel.fail_nth(Call::ZwSetInformationThread, 1, denied.0);
        let (ran, observe) = mpsc::channel::<()>();
        let err = Builder::new().name("x").spawn(move || ran.send(()).unwrap()).unwrap_err();
        assert_eq!(err, SpawnError::Name(denied));
        assert!(observe.try_recv().is_err(), "the closure ran although spawning failed");
        assert_eq!(kernel.outstanding().running_threads, 0);
    });
}

#[test]
fn scoped_builder_threads_are_named_and_may_borrow() {
    in_kernel(|kernel| {
        let mut totals = [0u64; 2];
        system_thread::scope(|s| {
            let (a, b) = totals.split_at_mut(1);
            let first = Builder::new().name("scoped-a").spawn_scoped(s, || a[0] = 40).unwrap();
            Builder::new().name("scoped-b").priority(7).spawn_scoped(s, || b[0] = 2).unwrap();
            first.join().unwrap();
            // The second is joined by the scope.
        });
        assert_eq!(totals.iter().sum::<u64>(), 42);
        let mut names: Vec<_> = kernel.threads().into_iter().filter_map(|t| t.name).collect();
        names.sort();
        assert_eq!(names, ["scoped-a", "scoped-b"]);
    });
}

#[test]
fn stoppable_builder_threads_combine_name_and_stop() {
    in_kernel(|kernel| {
        let worker =
            Builder::new().name("stoppable").spawn_stoppable(|stop| stop.wait().unwrap()).unwrap();
        worker.request_stop();
        worker.join().unwrap();
        assert_eq!(kernel.threads()[0].name.as_deref(), Some("stoppable"));
    });
}

#[test]
fn a_kernel_without_thread_names_runs_the_thread_unnamed() {
    in_kernel(|kernel| {
        kernel.fail_nth(Call::ZwSetInformationThread, 1, NtStatus::INVALID_INFO_CLASS.0);
        let handle = Builder::new().name("old-kernel").spawn(|| 5).unwrap();
        assert_eq!(handle.join().unwrap(), 5);
        assert_eq!(kernel.threads()[0].name, None);
        assert_eq!(kernel.calls(Call::ZwSetInformationThread), 1);
    });
}

#[test]
fn affinities_outside_the_active_processors_are_refused() {
    in_kernel(|kernel| {
        kernel.set_topology(&[2, 4]);
        for (group, mask) in [(0, 0b100), (2, 1), (1, 0b1_0000)] {
            let err =
                Builder::new().affinity(GroupAffinity { group, mask }).spawn(|| ()).unwrap_err();
            assert!(matches!(err, SpawnError::InvalidArgument(_)), "{group} {mask:#x}: {err:?}");
        }
        assert_eq!(kernel.calls(Call::PsCreateSystemThread), 0);
        let affinity = GroupAffinity { group: 1, mask: 0b1000 };
        Builder::new().affinity(affinity).spawn(|| ()).unwrap().join().unwrap();
        assert_eq!(kernel.threads()[0].affinity, Some((1, 0b1000)));
    });
}

/// `detach` is checked like a handle's drop (`APC_LEVEL` or lower): above it the handle comes
/// back, before any kernel call. (Before: no check at all, and above `DISPATCH_LEVEL` the
/// object was dereferenced there, a bugcheck.)
#[test]
fn detach_above_apc_level_hands_the_handle_back() {
    in_kernel(|kernel| {
        let (release, gate) = mpsc::channel::<()>();
        let handle =
            Builder::new().io_object(fake_io_object()).spawn(move || gate.recv().unwrap()).unwrap();
        let handle = system_thread::host::with_irql(3, || handle.detach()).unwrap_err();
        let handle = system_thread::host::with_irql(2, || handle.detach()).unwrap_err();
        assert_eq!(kernel.calls(Call::ObfDereferenceObject), 0);
        release.send(()).unwrap();
        handle.detach().unwrap();
        wait_until("the detached thread has finished", || {
            kernel.outstanding().running_threads == 0
        });
    });
}

/// A finished thread's value is dropped by `detach` itself, on the caller (as documented), so
/// `detach` needs the level a value's drop may need.
#[test]
fn detaching_a_finished_thread_drops_its_value_on_the_caller() {
    struct Records(Arc<Mutex<Option<system_thread::ThreadId>>>);
    impl Drop for Records {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(current_id());
        }
    }
    in_kernel(|_| {
        let dropped_on = Arc::new(Mutex::new(None));
        let value = Records(Arc::clone(&dropped_on));
        let handle = Builder::new().io_object(fake_io_object()).spawn(move || value).unwrap();
        wait_until("the thread has finished", || handle.is_finished());
        handle.detach().unwrap();
        assert_eq!(*dropped_on.lock().unwrap(), Some(current_id()));
    });
}

/// Like std's, a configured `Builder` (and its `IoObject`) may be sent and shared.
#[test]
fn builders_and_io_objects_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let builder = Builder::new().name("w").io_object(fake_io_object());
    send_sync(&builder);
    send_sync(&fake_io_object());
}
