//! The documented assertions (kernel bugchecks through the driver's panic handler) fire with a
//! message naming the crate. Each scenario runs in a child process, because a panic inside a
//! start routine aborts like a bugcheck stops a machine.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};

use system_thread::host::{Kernel, set_irql, with_irql};
use system_thread::{JoinHandle, SystemThread};

const SCENARIO: &str = "SYSTEM_THREAD_ASSERTION_SCENARIO";

/// Runs the ignored test `name` of this binary in a child process; returns its stderr after
/// checking that it failed.
fn run_child(name: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{name} did not fail: {stderr}");
    stderr
}

fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO).as_deref() == Ok(name)
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn a_thread_started_above_passive_level_stops_at_the_trampoline() {
    let stderr = run_child("child_start_irql");
    assert!(stderr.contains("system-thread: start routine entered at DISPATCH_LEVEL"), "{stderr}");
}

#[test]
#[ignore = "child process of a_thread_started_above_passive_level_stops_at_the_trampoline"]
fn child_start_irql() {
    if in_scenario("child_start_irql") {
        let kernel = Kernel::new();
        kernel.set_start_irql(2);
        kernel.run(|| SystemThread::spawn(|| ()).unwrap().join().unwrap());
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn a_closure_returning_above_passive_level_is_caught() {
    let stderr = run_child("child_return_irql");
    assert!(
        stderr.contains("system-thread: the thread's closure returned at DISPATCH_LEVEL"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of a_closure_returning_above_passive_level_is_caught"]
fn child_return_irql() {
    if in_scenario("child_return_irql") {
        Kernel::new().run(|| SystemThread::spawn(|| set_irql(2)).unwrap().join().unwrap());
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn dropping_a_handle_on_its_own_thread_is_caught() {
    let stderr = run_child("child_drop_on_self");
    assert!(
        stderr.contains("system-thread: a thread's join handle was dropped on the thread itself"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of dropping_a_handle_on_its_own_thread_is_caught"]
fn child_drop_on_self() {
    if in_scenario("child_drop_on_self") {
        Kernel::new().run(|| {
            let slot: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
            let inner = Arc::clone(&slot);
            let (go, ready) = mpsc::channel::<()>();
            let handle = SystemThread::spawn(move || {
                ready.recv().unwrap();
                drop(inner.lock().unwrap().take());
            })
            .unwrap();
            *slot.lock().unwrap() = Some(handle);
            go.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(10));
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a child process")]
fn dropping_a_handle_at_dispatch_level_is_caught() {
    let stderr = run_child("child_drop_at_dispatch");
    assert!(
        stderr.contains("system-thread: a thread must be joined at APC_LEVEL or lower"),
        "{stderr}"
    );
}

#[test]
#[ignore = "child process of dropping_a_handle_at_dispatch_level_is_caught"]
fn child_drop_at_dispatch() {
    if in_scenario("child_drop_at_dispatch") {
        Kernel::new().run(|| {
            let handle = SystemThread::spawn(|| ()).unwrap();
            with_irql(2, || drop(handle));
        });
    }
}
