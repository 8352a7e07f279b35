//! Shared test helpers: every test runs in its own model kernel and must leave it clean, and
//! no test can hang: a wait that never ends is a failure with a message (mutation testing,
//! `./x mutants`, must see a broken wait fail, not stall).
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use system_thread::host::Kernel;

/// How long a test waits for a condition that holds within milliseconds when the code is right
/// (longer under Wine, whose thread creation is two orders of magnitude slower, and no real
/// limit under Miri, whose clock ticks with the instructions it interprets).
pub const WAIT_LIMIT: Duration = Duration::from_secs(WAIT_SECS);
const WAIT_SECS: u64 = if cfg!(miri) {
    3600
} else if cfg!(windows) {
    60
} else {
    10
};

/// How long one test may run in all (the slowest takes well under a second here, a few
/// seconds on a loaded machine, longer under Wine): past it, the process stops with a message.
pub const TEST_LIMIT: Duration = Duration::from_secs(if cfg!(windows) { 120 } else { 30 });

/// How long a test that failed (panicked) may take to unwind: unwinding joins the threads the
/// test still holds, and a thread that waits for the test (a channel it never sends on) would
/// hold it forever.
pub const UNWIND_LIMIT: Duration = Duration::from_secs(3);

/// Runs `body` in a fresh model kernel, then asserts that nothing is left allocated, open,
/// referenced or running. A body that hangs stops the test process (see [`Watchdog`]).
pub fn in_kernel<R>(body: impl FnOnce(&Kernel) -> R) -> R {
    let _watchdog = Watchdog::start();
    let kernel = Kernel::new();
    let value = kernel.run(|| body(&kernel));
    kernel.assert_clean();
    value
}

thread_local! {
    /// The watchdog of the test running on this thread, told when the test panics.
    static WATCHDOG: RefCell<Option<mpsc::Sender<String>>> = const { RefCell::new(None) };
}

/// Stops the process (abort, with a message naming the test) unless it is dropped within
/// [`TEST_LIMIT`], or within [`UNWIND_LIMIT`] of a panic of the test's thread. A panic cannot
/// end a hang: a hung test is stuck in a wait that nothing interrupts. Not under Miri, which
/// is far slower, and whose runs follow native ones that catch any hang first.
pub struct Watchdog(Option<mpsc::Sender<String>>);

impl Watchdog {
    pub fn start() -> Self {
        static HOOK: Once = Once::new();
        if cfg!(miri) {
            return Self(None);
        }
        HOOK.call_once(|| {
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                report(info);
                // The failing test now unwinds: its watchdog gives it UNWIND_LIMIT.
                let _ =
                    WATCHDOG.try_with(|w| w.borrow().as_ref().map(|tx| tx.send(info.to_string())));
            }));
        });
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut limit = TEST_LIMIT;
            let mut what = String::from("still running");
            loop {
                match rx.recv_timeout(limit) {
                    // The test panicked: it must finish unwinding soon.
                    Ok(panic) => {
                        limit = UNWIND_LIMIT;
                        what = format!("failed ({panic}) and still unwinding");
                    }
                    // The watchdog was dropped: the test ended.
                    Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => {
                        // Straight to stderr: the test harness's capture dies with the process.
                        let _ = writeln!(
                            std::io::stderr(),
                            "test {test} hung: {what} after {limit:?} (a wait never ended)"
                        );
                        std::process::abort();
                    }
                }
            }
        });
        WATCHDOG.with(|w| *w.borrow_mut() = Some(tx.clone()));
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            let _ = WATCHDOG.try_with(|w| w.borrow_mut().take());
        }
    }
}

/// Polls `condition` until it holds; panics naming `what` when it still does not after
/// [`WAIT_LIMIT`], instead of spinning forever.
#[track_caller]
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up after {WAIT_LIMIT:?} waiting until {what}");
        std::thread::yield_now();
    }
}

/// Loop counts that keep Miri runs short.
pub const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// A value that counts its drops, to see who dropped a thread's value.
pub struct DropCounter(pub Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
