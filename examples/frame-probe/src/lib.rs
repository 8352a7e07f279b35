//! Closures of known capture sizes handed to `SystemThread::spawn`, compiled for
//! `x86_64-pc-windows-msvc` with the raw-dylib provider. Each `probe_*` function instantiates
//! one start routine; `tools/bench/frame_sizes.py` reads their frames from the assembly.
#![no_std]

use core::hint::black_box;

use system_thread::{MAX_CLOSURE_SIZE, SystemThread};

/// Spawns a closure capturing `N` bytes and joins it; returns the sum of the bytes.
#[inline(never)]
fn spawn_with_capture<const N: usize>(byte: u8) -> Option<u64> {
    let data = black_box([byte; N]);
    let handle =
        SystemThread::spawn(move || data.iter().map(|&b| u64::from(b)).sum::<u64>()).ok()?;
    handle.join().ok()
}

/// A closure capturing nothing.
#[inline(never)]
pub fn probe_0() -> Option<u64> {
    SystemThread::spawn(|| black_box(1u64)).ok()?.join().ok()
}

/// A closure capturing 1 KiB.
#[inline(never)]
pub fn probe_1k() -> Option<u64> {
    spawn_with_capture::<1024>(1)
}

/// A closure capturing the largest accepted size (2 KiB).
#[inline(never)]
pub fn probe_max() -> Option<u64> {
    spawn_with_capture::<MAX_CLOSURE_SIZE>(1)
}
