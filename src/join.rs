//! Owned handles that join a thread by waiting on its thread object.

use core::fmt;
use core::mem::ManuallyDrop;
use core::time::Duration;

use crate::error::JoinError;
use crate::id::ThreadId;
use crate::kernel::irql::AtMostApc;
use crate::packet::JoinInner;
use crate::wait::{Waitable, sealed};

/// An owned permission to join a system thread and receive its value.
///
/// Joining waits (`KeWaitForSingleObject`) on the referenced thread object, never on an event:
/// the kernel signals it only after the thread has left driver code. Dropping the handle joins
/// too, so a thread never outlives its handle.
///
/// # Panics
/// Dropping a handle that was not joined waits for the thread, then frees what the thread
/// left (its value among it). That is impossible on the thread itself and above `APC_LEVEL`
/// (also when the thread is known to have finished): there, `drop` stops the machine (a panic that cannot unwind: a
/// bugcheck with the driver's panic handler) instead of hanging, waiting at `DISPATCH_LEVEL`
/// or returning while the thread runs. Join explicitly where that can happen:
/// [`join`](Self::join) reports both cases as errors.
///
/// # Invariants
/// `inner` is taken only by `join` and `detach`, which consume the handle without running
/// `Drop`.
pub struct JoinHandle<T> {
    inner: ManuallyDrop<JoinInner<T>>,
    /// Created by `IoCreateSystemThread`: the kernel keeps the driver image loaded until the
    /// thread exits, so detaching is sound.
    pins_image: bool,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(inner: JoinInner<T>, pins_image: bool) -> Self {
        Self { inner: ManuallyDrop::new(inner), pins_image }
    }

    /// The kernel's id of the thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.inner.id()
    }

    /// Whether the thread has exited, so that [`join`](Self::join) returns without waiting.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower (above it: `false` unless a join already saw the exit).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Waits for the thread to exit and returns the value of its closure.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// [`JoinErrorKind::SelfJoin`](crate::JoinErrorKind::SelfJoin) on the thread itself,
    /// [`JoinErrorKind::Irql`](crate::JoinErrorKind::Irql) above `APC_LEVEL`,
    /// [`JoinErrorKind::Wait`](crate::JoinErrorKind::Wait) if the wait fails. The error hands
    /// the handle back.
    pub fn join(self) -> Result<T, JoinError<Self>> {
        self.join_inner(None)
    }

    /// Like [`join`](Self::join), but gives up after `timeout` with
    /// [`JoinErrorKind::TimedOut`](crate::JoinErrorKind::TimedOut) and hands the handle back to
    /// try again. `Duration::ZERO` polls.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower (a poll: `DISPATCH_LEVEL` or lower).
    ///
    /// # Errors
    /// As [`join`](Self::join), plus `TimedOut`.
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinError<Self>> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(self, timeout: Option<Duration>) -> Result<T, JoinError<Self>> {
        let pins_image = self.pins_image;
        self.into_inner()
            .join(timeout)
            .map_err(|(kind, inner)| JoinError::new(kind, Self::new(inner, pins_image)))
    }

    /// Lets the thread run on unjoined, if that is sound: only for threads created with an I/O
    /// object ([`Builder::io_object`](crate::Builder::io_object)), whose driver image the
    /// kernel keeps loaded until they exit. Their value is dropped when they finish; if the
    /// thread has already finished, it is dropped here, by the caller (as when a handle is
    /// dropped).
    ///
    /// # Errors
    /// Hands the handle back for threads created without an I/O object (detaching those could
    /// leave driver code running after the driver is unloaded), and above `APC_LEVEL` (where
    /// the value of a finished thread could not be dropped safely).
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower, as dropping the handle.
    pub fn detach(self) -> Result<(), Self> {
        if !self.pins_image {
            return Err(self);
        }
        let Ok(apc) = AtMostApc::check() else {
            return Err(self);
        };
        self.into_inner().detach(apc);
        Ok(())
    }

    fn into_inner(self) -> JoinInner<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `inner` is taken once and `this` is never dropped (invariant).
        unsafe { ManuallyDrop::take(&mut this.inner) }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.inner.wait_or_die();
        // SAFETY: `inner` is taken once, here in `drop` (invariant). Dropping the share drops
        // the value still in the slot when it is the last.
        drop(unsafe { ManuallyDrop::take(&mut self.inner) });
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("thread_id", &self.thread_id()).finish_non_exhaustive()
    }
}

impl<T> sealed::Sealed for JoinHandle<T> {}
impl<T> Waitable for JoinHandle<T> {
    fn dispatcher_object(&self, _: sealed::Token) -> *mut core::ffi::c_void {
        self.inner.object_ptr()
    }

    fn observed(&self, _: sealed::Token) {
        self.inner.observed_exit();
    }
}
