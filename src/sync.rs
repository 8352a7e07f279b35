//! The atomics of the thread protocols: core's, or loom's under `cfg(loom)`, so that the model
//! checker explores every interleaving of the packet, scope and stop protocols.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering, fence,
};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering, fence,
};
