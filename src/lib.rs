//! Safe, unload-proof system threads for Windows kernel drivers.
//!
//! `system-thread` wraps `PsCreateSystemThread` the way `std::thread` wraps the OS: closures
//! instead of `PVOID` contexts, [`JoinHandle`]s that return the closure's value, timeouts,
//! a [`Builder`], [scoped threads](scope), cooperative stop, and typed errors carrying the
//! NTSTATUS. It is `no_std` and makes one pool allocation per thread. A spawn + join makes the
//! kernel calls a correct driver makes by hand (create, reference, close, wait, dereference),
//! plus one `PsGetCurrentThreadId` when the join starts while the thread is still inside its
//! closure, the only moment a self-join (a deadlock) is possible.
//!
//! ```
//! use core::time::Duration;
//! use system_thread::{scope, SystemThread};
//!
//! // spawn + join: the value comes back through the join.
//! let answer = SystemThread::spawn(|| 6 * 7)?.join().ok();
//! assert_eq!(answer, Some(42));
//!
//! // scoped threads may borrow the caller's stack; all are joined before `scope` returns.
//! let data = [1u32, 2, 3];
//! let sum = scope(|s| s.spawn(|| data.iter().sum::<u32>()).map(|h| h.join().ok()));
//! assert_eq!(sum?, Some(6));
//!
//! // a stoppable worker: dropping its handle requests stop, then joins.
//! let worker = SystemThread::spawn_stoppable(|stop| {
//!     let mut rounds = 0u32;
//!     while !stop.wait_timeout(Duration::from_millis(1)) {
//!         rounds += 1;
//!     }
//!     rounds
//! })?;
//! drop(worker);
//! # Ok::<(), system_thread::SpawnError>(())
//! ```
//!
//! # Unload safety
//! A thread that runs driver code after `DriverUnload` returns crashes the machine. Every
//! thread of this crate is joined by waiting on its thread object, which the kernel signals only
//! once the thread has left driver code; dropping a [`JoinHandle`] joins; [`scope`] joins all
//! its threads. The only way to let a thread run unjoined is [`JoinHandle::detach`], allowed
//! only for threads created with an I/O object ([`Builder::io_object`]), for which the kernel
//! itself keeps the driver loaded. Leaking a handle with `mem::forget` is the one remaining
//! way out, as with any resource.
//!
//! # Panics
//! Kernel drivers build with `panic = "abort"`: a panic ends in the driver's panic handler,
//! which bugchecks (wdk-panic uses code `0x52504E43`, "RPNC"). There is no unwinding, so a
//! join never returns a panic payload. The crate itself panics only in the documented
//! assertions: a thread entering or leaving its closure above `PASSIVE_LEVEL`, and a
//! [`JoinHandle`] dropped where joining is impossible (on its own thread, above `APC_LEVEL`).
//!
//! # Kernel calls
//! All kernel calls go through one seam with three providers: `wdk-sys` (default feature
//! `wdk`), the crate's own raw-dylib imports of `ntoskrnl.exe` (Windows targets without `wdk`),
//! and a std-based model of the kernel on other targets, public as `host` with the
//! `host-model` feature for testing driver code with `cargo test`.
#![no_std]

/// A pointer to field `$field` of the `$ty` at `$ptr`, computed without dereferencing `$ptr`
/// (so without `unsafe`); writing through it still needs a valid `$ptr`.
macro_rules! field_ptr {
    ($ptr:expr, $ty:ty, $field:ident) => {
        $ptr.wrapping_byte_add(::core::mem::offset_of!($ty, $field)).cast()
    };
}

mod builder;
mod error;
mod irql;
mod join;
mod packet;
mod pool;
mod routine;
mod scope;
mod stop;
mod sys;
mod thread;

pub use builder::{Builder, GroupAffinity, IoObject, MAX_NAME_LEN};
pub use error::{IrqlError, JoinError, JoinErrorKind, NtStatus, SpawnError};
pub use irql::{Irql, current_irql};
pub use join::JoinHandle;
pub use packet::MAX_CLOSURE_SIZE;
pub use pool::POOL_TAG;
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use stop::{StopToken, StoppableJoinHandle};
/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[allow(unused_imports)] // empty unless the host model is public
pub use sys::public::*;
pub use thread::{SystemThread, ThreadId, current_id, sleep, yield_now};
