//! The count of live threads: spawned, and not yet joined, dropped or detached by their owner.
//! One atomic operation at spawn and one at the owner's final close; no kernel call.

use crate::sys;

/// A thread was spawned.
pub(crate) fn spawned() {
    sys::live_threads(|count| count.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
}

/// The owner of a thread has joined it (or closed it for good).
pub(crate) fn closed() {
    sys::live_threads(|count| count.fetch_sub(1, core::sync::atomic::Ordering::Relaxed));
}

/// How many threads are live now.
pub(crate) fn count() -> usize {
    sys::live_threads(|count| count.load(core::sync::atomic::Ordering::Relaxed))
}
