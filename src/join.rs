//! Owned handles that join a thread by waiting on its thread object.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::time::Duration;

use crate::error::{JoinError, JoinErrorKind, NtStatus};
use crate::packet::RawThread;
use crate::thread::ThreadId;

/// An owned permission to join a system thread and receive its value.
///
/// Joining waits (`KeWaitForSingleObject`) on the referenced thread object, never on an event:
/// the kernel signals it only after the thread has left driver code. Dropping the handle joins
/// too, so a thread never outlives its handle.
///
/// # Panics
/// Dropping a handle that was not joined waits for the thread. That is impossible on the thread
/// itself and above `APC_LEVEL`: there, `drop` panics (a bugcheck with the driver's panic
/// handler) instead of hanging or waiting at `DISPATCH_LEVEL`. Join explicitly where that can
/// happen: [`join`](Self::join) reports both cases as errors.
pub struct JoinHandle<T> {
    raw: ManuallyDrop<RawThread>,
    value: NonNull<T>,
    /// Created by `IoCreateSystemThread`: the kernel keeps the driver image loaded until the
    /// thread exits, so detaching is sound.
    pins_image: bool,
    _owns: PhantomData<T>,
}

// SAFETY: the handle moves a `T` out of the packet on join: sending it requires `T: Send`.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` never touches the value.
unsafe impl<T> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(raw: RawThread, value: NonNull<T>, pins_image: bool) -> Self {
        Self { raw: ManuallyDrop::new(raw), value, pins_image, _owns: PhantomData }
    }

    /// The kernel's id of the thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.raw.id()
    }

    /// Whether the thread has exited, so that [`join`](Self::join) returns without waiting.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.raw.is_finished()
    }

    /// Waits for the thread to exit and returns the value of its closure.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// [`JoinErrorKind::SelfJoin`] on the thread itself, [`JoinErrorKind::Irql`] above
    /// `APC_LEVEL`, [`JoinErrorKind::Wait`] if the wait fails. The error hands the handle
    /// back.
    pub fn join(self) -> Result<T, JoinError<Self>> {
        self.join_inner(None)
    }

    /// Like [`join`](Self::join), but gives up after `timeout` with
    /// [`JoinErrorKind::TimedOut`] and hands the handle back to try again.
    /// `Duration::ZERO` polls.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// As [`join`](Self::join), plus [`JoinErrorKind::TimedOut`].
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinError<Self>> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(mut self, timeout: Option<Duration>) -> Result<T, JoinError<Self>> {
        if let Err(kind) = self.raw.wait(timeout) {
            return Err(JoinError::new(kind, self));
        }
        // SAFETY: the wait succeeded: the thread has exited; `value` is its value slot.
        let Some(value) = (unsafe { self.raw.take(self.value) }) else {
            // The object was signalled but the thread stored no value: only an emulator that
            // does not run threads can do this. Keep the handle; dropping it detaches safely.
            return Err(JoinError::new(JoinErrorKind::Wait(NtStatus::UNSUCCESSFUL), self));
        };
        // SAFETY: `raw` is taken once; `self` is forgotten below so `Drop` does not see it.
        let raw = unsafe { ManuallyDrop::take(&mut self.raw) };
        core::mem::forget(self);
        raw.close();
        Ok(value)
    }

    /// Lets the thread run on unjoined, if that is sound: only for threads created with an I/O
    /// object ([`Builder::io_object`](crate::Builder::io_object)), whose driver image the
    /// kernel keeps loaded until they exit. Their value is dropped when they finish.
    ///
    /// # Errors
    /// Hands the handle back for threads created without an I/O object: detaching those could
    /// leave driver code running after the driver is unloaded.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    pub fn detach(mut self) -> Result<(), Self> {
        if !self.pins_image {
            return Err(self);
        }
        // SAFETY: `raw` is taken once; `self` is forgotten so `Drop` does not see it.
        let raw = unsafe { ManuallyDrop::take(&mut self.raw) };
        core::mem::forget(self);
        raw.close();
        Ok(())
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.raw.wait_forever();
        // SAFETY: `raw` is taken once, here in `drop`.
        let raw = unsafe { ManuallyDrop::take(&mut self.raw) };
        // `close` drops the value still in the slot.
        raw.close();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("thread_id", &self.thread_id()).finish_non_exhaustive()
    }
}
