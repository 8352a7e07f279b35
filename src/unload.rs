//! Unload accounting: the threads a driver still owns.

use crate::kernel::live;

/// How many threads of this driver are live: spawned, and not yet joined (by a join, by
/// dropping their handle, or by the end of their scope) or detached.
///
/// Call it at the end of `DriverUnload`, after every handle was joined or dropped. It must be
/// 0 there: a live thread belongs to a handle that was leaked (`mem::forget`, `Box::leak`, a
/// reference cycle such as a thread's value that holds its own handle) or kept somewhere
/// `DriverUnload` did not reach (a static), and that thread may still run driver
/// code after the image is unloaded. Log it loudly; the kernel will crash when the thread next
/// runs. Threads detached after creation on an I/O object are not counted: the kernel keeps
/// the image loaded for them.
///
/// The count errs on the safe side: a thread counts until the last owner of its context is
/// gone, not from the moment it exits. So a scoped thread whose handle was leaked still counts
/// after its scope has waited for it; the leak is real (its context stays allocated), though
/// that thread can no longer run.
///
/// It costs one atomic operation per spawn and one per final join; it makes no kernel call.
///
/// ```
/// # #[cfg(not(windows))] system_thread::host::Kernel::new().run(|| {
/// let worker = system_thread::SystemThread::spawn(|| 7).unwrap();
/// assert_eq!(system_thread::live_threads(), 1);
/// drop(worker); // joins
/// assert_eq!(system_thread::live_threads(), 0);
/// # });
/// ```
///
/// # IRQL
/// Any.
#[must_use]
pub fn live_threads() -> usize {
    live::count()
}
