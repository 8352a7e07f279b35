//! Compiles system-thread with its default `wdk` feature for `x86_64-pc-windows-msvc`, against
//! the wdk-sys stand-in: the wdk provider and `sys::verify` must type-check.
#![no_std]

pub use system_thread::SystemThread;
