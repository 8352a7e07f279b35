//! Cooperative stop: threads that are asked to finish, and see the request.

use core::cell::UnsafeCell;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use crate::error::{IrqlError, JoinError};
use crate::irql::{self, Irql};
use crate::join::JoinHandle;
use crate::packet::{self, Extra};
use crate::sys;
use crate::thread::ThreadId;

/// The stop request of one thread: a flag for cheap checks and a notification event for
/// waits. Lives in the thread's packet; initialized in place.
pub(crate) struct StopState {
    requested: AtomicBool,
    event: UnsafeCell<MaybeUninit<sys::KEVENT>>,
    token: StopToken,
}

// SAFETY: the event is only touched through kernel routines that synchronize internally; the
// flag is atomic.
unsafe impl Sync for StopState {}

impl StopState {
    pub(crate) fn token(&self) -> &StopToken {
        &self.token
    }

    fn event(&self) -> *mut sys::KEVENT {
        self.event.get().cast()
    }

    /// Sets the flag, and the event on the first request.
    pub(crate) fn request(&self) {
        if !self.requested.swap(true, Ordering::AcqRel) {
            // SAFETY: the event was initialized by `init` and lives as long as `self`; setting
            // a notification event is allowed up to DISPATCH_LEVEL.
            let _previous = unsafe { sys::KeSetEvent(self.event(), 0, 0) };
        }
    }
}

impl Extra for StopState {
    unsafe fn init(this: *mut Self, _: &packet::Options<'_>) {
        // SAFETY: `this` is valid for writes (caller's contract).
        unsafe {
            this.write(Self {
                requested: AtomicBool::new(false),
                event: UnsafeCell::new(MaybeUninit::uninit()),
                token: StopToken { state: NonNull::dangling() },
            });
        }
        let event: *mut sys::KEVENT = field_ptr!(this, Self, event);
        // SAFETY: the event is at its final address; a notification event starts non-signalled.
        unsafe { sys::KeInitializeEvent(event.cast(), sys::NOTIFICATION_EVENT, 0) };
        let token: *mut StopToken = field_ptr!(this, Self, token);
        if let Some(state) = NonNull::new(this) {
            // INVARIANT: the token points to the state it is part of, which never moves.
            // SAFETY: `this` is valid for writes (caller's contract).
            unsafe { token.write(StopToken { state }) };
        }
    }

    fn abandon(&self) {
        self.request();
    }
}

/// The stopping thread's view of its stop request, lent to its closure.
///
/// The token cannot outlive the closure call (it is only ever lent), so it never dangles.
pub struct StopToken {
    // INVARIANT: points to the `StopState` this token is a field of.
    state: NonNull<StopState>,
}

// SAFETY: all methods go through `StopState`, which is `Sync`.
unsafe impl Sync for StopToken {}
// SAFETY: as above; a `StopToken` is never handed out by value.
unsafe impl Send for StopToken {}

impl StopToken {
    fn state(&self) -> &StopState {
        // SAFETY: type invariant: the state contains this token, so it is alive while `self` is.
        unsafe { self.state.as_ref() }
    }

    /// Whether stop was requested.
    ///
    /// # IRQL
    /// Any.
    #[must_use]
    pub fn is_stop_requested(&self) -> bool {
        self.state().requested.load(Ordering::Acquire)
    }

    /// Waits until stop is requested or `timeout` passes; returns whether stop was requested.
    /// The wait is on a kernel event, so a request wakes the thread at once.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower; with `Duration::ZERO`, `DISPATCH_LEVEL` or lower.
    /// Above `APC_LEVEL` it does not wait and returns [`is_stop_requested`](Self::is_stop_requested).
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.is_stop_requested() || irql::require(Irql::APC).is_err() {
            return self.is_stop_requested();
        }
        let mut interval = sys::LARGE_INTEGER { QuadPart: packet::relative_100ns(timeout) };
        // SAFETY: the event is initialized and alive; the interval is a live local.
        let status = unsafe {
            sys::KeWaitForSingleObject(
                self.state().event().cast(),
                sys::EXECUTIVE,
                sys::KERNEL_MODE,
                0,
                &raw mut interval,
            )
        };
        status == sys::STATUS_SUCCESS || self.is_stop_requested()
    }

    /// Waits until stop is requested.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// [`IrqlError`] above `APC_LEVEL`.
    pub fn wait(&self) -> Result<(), IrqlError> {
        irql::require(Irql::APC)?;
        while !self.is_stop_requested() {
            // SAFETY: the event is initialized and alive; a NULL timeout waits until it is set.
            let _ = unsafe {
                sys::KeWaitForSingleObject(
                    self.state().event().cast(),
                    sys::EXECUTIVE,
                    sys::KERNEL_MODE,
                    0,
                    ptr::null_mut(),
                )
            };
        }
        Ok(())
    }
}

impl fmt::Debug for StopToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopToken").field("stop_requested", &self.is_stop_requested()).finish()
    }
}

/// A [`JoinHandle`] for a thread made by [`SystemThread::spawn_stoppable`]: dropping it
/// requests stop, then joins.
///
/// [`SystemThread::spawn_stoppable`]: crate::SystemThread::spawn_stoppable
pub struct StoppableJoinHandle<T> {
    handle: JoinHandle<T>,
    state: NonNull<StopState>,
}

// SAFETY: as `JoinHandle<T>`; `StopState` is `Sync`.
unsafe impl<T: Send> Send for StoppableJoinHandle<T> {}
// SAFETY: as `JoinHandle<T>`; `request_stop` goes through the `Sync` state.
unsafe impl<T> Sync for StoppableJoinHandle<T> {}

impl<T> StoppableJoinHandle<T> {
    pub(crate) fn new(handle: JoinHandle<T>, state: NonNull<StopState>) -> Self {
        Self { handle, state }
    }

    fn state(&self) -> &StopState {
        // SAFETY: the packet holding the state lives while the inner handle does.
        unsafe { self.state.as_ref() }
    }

    /// Asks the thread to stop: its token reports the request and its waits return.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    pub fn request_stop(&self) {
        self.state().request();
    }

    /// The kernel's id of the thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.handle.thread_id()
    }

    /// Whether the thread has exited.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread to exit (without requesting stop) and returns its value.
    ///
    /// # Errors
    /// As [`JoinHandle::join`].
    pub fn join(self) -> Result<T, JoinError<Self>> {
        let state = self.state;
        self.into_inner().join().map_err(|e| rewrap(e, state))
    }

    /// Like [`join`](Self::join), with a timeout.
    ///
    /// # Errors
    /// As [`JoinHandle::join_timeout`].
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinError<Self>> {
        let state = self.state;
        self.into_inner().join_timeout(timeout).map_err(|e| rewrap(e, state))
    }

    /// Requests stop, then joins.
    ///
    /// # Errors
    /// As [`JoinHandle::join`].
    pub fn stop(self) -> Result<T, JoinError<Self>> {
        self.request_stop();
        self.join()
    }

    fn into_inner(self) -> JoinHandle<T> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the handle is moved out once.
        unsafe { ptr::read(&raw const this.handle) }
    }
}

fn rewrap<T>(
    e: JoinError<JoinHandle<T>>,
    state: NonNull<StopState>,
) -> JoinError<StoppableJoinHandle<T>> {
    let kind = e.kind();
    JoinError::new(kind, StoppableJoinHandle::new(e.into_handle(), state))
}

impl<T> Drop for StoppableJoinHandle<T> {
    fn drop(&mut self) {
        self.request_stop();
        // The inner handle's drop joins.
    }
}

impl<T> fmt::Debug for StoppableJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoppableJoinHandle")
            .field("thread_id", &self.thread_id())
            .finish_non_exhaustive()
    }
}
