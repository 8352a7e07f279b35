//! The model's runtime: std's threads, locks and thread-locals, or loom's under `cfg(loom)` so
//! that the model checker schedules every model thread and every dispatcher wait.

#[cfg(not(loom))]
mod imp {
    extern crate std;

    use std::boxed::Box;
    use std::time::Duration;

    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

    /// An OS thread of the model, joined when the model reaps it.
    pub(crate) type Thread = std::thread::JoinHandle<()>;

    /// Stack of a model system thread. A real kernel stack is 24 KiB on x64, for optimized
    /// code; the model's own frames (thread start, thread-locals, bookkeeping) come on top, and
    /// unoptimized builds (debug tests) use several times the stack of optimized ones. So:
    /// 64 KiB with optimizations, 256 KiB without: small enough that a driver's thread that
    /// would overflow a kernel stack by far also overflows here, large enough for test code.
    pub(crate) const STACK_SIZE: usize =
        if cfg!(debug_assertions) { 256 * 1024 } else { 64 * 1024 };

    pub(crate) fn spawn(f: Box<dyn FnOnce() + Send>) -> Option<Thread> {
        std::thread::Builder::new().stack_size(STACK_SIZE).spawn(f).ok()
    }

    pub(crate) fn is_finished(thread: &Thread) -> bool {
        thread.is_finished()
    }

    pub(crate) fn join(thread: Thread) {
        // A panic inside a model thread has already aborted the process.
        let _ = thread.join();
    }

    pub(crate) fn sleep(duration: Duration) {
        std::thread::sleep(duration);
    }

    pub(crate) fn yield_now() {
        std::thread::yield_now();
    }

    /// Waits on `cv` until `done` or `timeout` (`None`: forever).
    pub(crate) fn wait_until<'a, T>(
        cv: &Condvar,
        mut guard: MutexGuard<'a, T>,
        timeout: Option<Duration>,
        mut done: impl FnMut(&T) -> bool,
    ) -> MutexGuard<'a, T> {
        match timeout {
            None => {
                while !done(&guard) {
                    guard = cv.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                guard
            }
            Some(timeout) => {
                cv.wait_timeout_while(guard, timeout, |t| !done(t))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
        }
    }

    macro_rules! model_thread_local {
        ($(static $name:ident: $ty:ty = $init:expr;)*) => {
            std::thread_local! { $(static $name: $ty = const { $init };)* }
        };
    }
    pub(crate) use model_thread_local;
}

#[cfg(loom)]
mod with_loom {
    extern crate std;

    use std::boxed::Box;
    use std::time::Duration;

    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

    /// Loom threads are not joined by the model: loom runs each to its end.
    pub(crate) type Thread = ();

    pub(crate) fn spawn(f: Box<dyn FnOnce() + Send>) -> Option<Thread> {
        drop(loom::thread::spawn(f));
        Some(())
    }

    pub(crate) fn is_finished((): &Thread) -> bool {
        true
    }

    pub(crate) fn join((): Thread) {}

    /// Time does not pass in the model checker: a sleep is a yield.
    pub(crate) fn sleep(_: Duration) {
        loom::thread::yield_now();
    }

    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }

    /// Without a timeout, waits until `done`; with one (whatever its length), checks once: the
    /// model checker explores the timeout expiring before any signal (loom has no timed waits).
    pub(crate) fn wait_until<'a, T>(
        cv: &Condvar,
        mut guard: MutexGuard<'a, T>,
        timeout: Option<Duration>,
        mut done: impl FnMut(&T) -> bool,
    ) -> MutexGuard<'a, T> {
        if timeout.is_none() {
            while !done(&guard) {
                guard = cv.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        guard
    }

    macro_rules! model_thread_local {
        ($(static $name:ident: $ty:ty = $init:expr;)*) => {
            loom::thread_local! { $(static $name: $ty = $init;)* }
        };
    }
    pub(crate) use model_thread_local;
}

#[cfg(not(loom))]
pub(crate) use imp::*;
#[cfg(loom)]
pub(crate) use with_loom::*;
