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
//! itself keeps the driver loaded. Leaking a handle (`mem::forget`, `Box::leak`, a handle kept in
//! a static that `DriverUnload` never drops, or a reference cycle such as a thread whose value
//! holds its own handle) is the one remaining way out, as with any resource: [`live_threads`]
//! counts such threads, for `DriverUnload` to check.
//!
//! # Panics
//! Kernel drivers build with `panic = "abort"`: a panic ends in the driver's panic handler,
//! which bugchecks (wdk-panic uses code `0x52504E43`, "RPNC"). There is no unwinding, so a
//! join never returns a panic payload. The crate itself panics only in the documented
//! assertions, and those panics cannot unwind even where panics otherwise do (host tests): a
//! thread entering or leaving its closure above `PASSIVE_LEVEL`, a [`JoinHandle`] dropped where
//! joining is impossible (on its own thread, above `APC_LEVEL`), and a [`scope`] ending above
//! `APC_LEVEL`.
//!
//! # Layers
//! The public modules (`builder`, `join`, `scope`, `stop`, `thread`, `unload`) are written
//! against two unsafe cores: the thread lifecycle (`packet`) and the kernel-object layer
//! (`kernel`), the only code that calls the kernel. All kernel calls go through one seam, `sys`,
//! with three providers: `wdk-sys` (default feature `wdk`), the crate's own raw-dylib imports of
//! `ntoskrnl.exe` (Windows targets outside a WDK driver build), and a std-based model of the
//! kernel (with the `host-model` feature on any target, and on non-Windows targets), public as
//! `host` with `host-model`, for testing driver code with `cargo test`.
#![no_std]

/// A raw pointer to field `$field` of the `$ty` at `$ptr`, computed without dereferencing
/// `$ptr` (so without `unsafe`); writing through it still needs a valid `$ptr`.
macro_rules! field {
    ($ptr:expr, $ty:ty, $field:ident) => {
        $ptr.wrapping_byte_add(::core::mem::offset_of!($ty, $field)).cast()
    };
}

mod builder;
mod error;
mod id;
mod irql;
mod join;
mod kernel;
mod packet;
mod processor;
mod scope;
mod status;
mod stop;
mod sync;
mod sys;
mod thread;
mod unload;
mod wait;

pub use builder::{Builder, GroupAffinity, IoObject, MAX_NAME_LEN};
pub use error::{JoinError, JoinErrorKind, SpawnError};
pub use id::ThreadId;
pub use irql::{Irql, IrqlError};
pub use join::JoinHandle;
pub use kernel::irql::current_irql;
pub use kernel::pool::POOL_TAG;
pub use packet::MAX_CLOSURE_SIZE;
pub use processor::{Processor, available_parallelism, on_each_processor};
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use status::NtStatus;
pub use stop::{StopToken, StoppableJoinHandle, Wake};
#[allow(unused_imports)] // empty unless the host model is public
pub use sys::public::*;
pub use thread::{SystemThread, current_id, sleep, yield_now};
pub use unload::live_threads;
pub use wait::{Event, EventKind, WaitError, Waitable, wait_all, wait_any};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
