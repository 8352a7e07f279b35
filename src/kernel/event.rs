//! Kernel events (`KEVENT`) embedded in memory that never moves.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use super::irql::{AtMostApc, AtMostDispatch};
use super::wait::{self, Timeout, WaitError};
use crate::sys;

/// A notification event stored in place, in a structure that never moves (a thread's packet).
///
/// # Invariants
/// Once [`init`](Self::init) returned, the `KEVENT` at this address was initialized by
/// `KeInitializeEvent` and stays at this address until the value is dropped.
#[repr(transparent)]
pub(crate) struct RawEvent(UnsafeCell<MaybeUninit<sys::KEVENT>>);

// SAFETY: the event is only touched through kernel routines, which synchronize internally.
unsafe impl Sync for RawEvent {}
// SAFETY: as above; the event is owned data.
unsafe impl Send for RawEvent {}

impl RawEvent {
    /// Initializes a non-signalled notification event at `this`.
    ///
    /// # Safety
    /// `this` is valid for writes and the event stays at this address while it is used.
    pub(crate) unsafe fn init(this: *mut Self) {
        // SAFETY: forwarded.
        unsafe { Self::init_kind(this, false) };
    }

    /// Initializes a non-signalled event at `this`: a notification event (stays set until
    /// reset) or, with `synchronization`, one that a satisfied wait resets.
    ///
    /// # Safety
    /// As [`init`](Self::init).
    pub(crate) unsafe fn init_kind(this: *mut Self, synchronization: bool) {
        let kind =
            if synchronization { sys::SYNCHRONIZATION_EVENT } else { sys::NOTIFICATION_EVENT };
        // INVARIANT: initialized in place; the caller keeps it there.
        // SAFETY: `RawEvent` is a transparent wrapper of the `KEVENT` storage, valid for writes
        // (caller's contract); KeInitializeEvent may be called at any IRQL.
        unsafe { sys::KeInitializeEvent(this.cast(), kind, 0) };
    }

    /// The event as a dispatcher object, for waits on several objects.
    pub(crate) fn object(&self) -> *mut sys::KEVENT {
        self.0.get().cast()
    }

    /// Sets the event non-signalled (`KeClearEvent`).
    pub(crate) fn reset(&self, _: AtMostDispatch) {
        // SAFETY: initialized (type invariant); clearing is allowed up to DISPATCH_LEVEL
        // (proof).
        unsafe { sys::KeClearEvent(self.object()) };
    }

    /// Sets the event (it stays set: a notification event).
    pub(crate) fn set(&self, _: AtMostDispatch) {
        // SAFETY: initialized (type invariant); setting an event is allowed up to
        // DISPATCH_LEVEL (proof); the previous state carries nothing.
        let _previous = unsafe { sys::KeSetEvent(self.object(), 0, 0) };
    }

    /// Waits until the event is set or `timeout` passes.
    pub(crate) fn wait(&self, apc: AtMostApc, timeout: Timeout) -> Result<(), WaitError> {
        // SAFETY: an initialized event (type invariant), alive while `self` is borrowed.
        unsafe { wait::wait(apc, self.object().cast(), timeout) }
    }
}
