//! Shared test helpers: every test runs in its own model kernel and must leave it clean.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use system_thread::host::Kernel;

/// Runs `body` in a fresh model kernel, then asserts that nothing is left allocated, open,
/// referenced or running.
pub fn in_kernel<R>(body: impl FnOnce(&Kernel) -> R) -> R {
    let kernel = Kernel::new();
    let value = kernel.run(|| body(&kernel));
    kernel.assert_clean();
    value
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
