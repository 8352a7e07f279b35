//! Cooperative stop: threads that are asked to finish, and see the request.

use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;

use crate::error::{JoinError, JoinErrorKind};
use crate::id::ThreadId;
use crate::irql::IrqlError;
use crate::join::JoinHandle;
use crate::kernel::event::RawEvent;
use crate::kernel::irql::{AtMostApc, AtMostDispatch, Passive};
use crate::kernel::wait::Timeout;
use crate::packet::{Extra, Options};
use crate::sync::{AtomicBool, Ordering};
use crate::wait::{Event, WaitError, Waitable, sealed, wait_any};

/// The stop request of one thread: a flag for cheap checks and a notification event for
/// waits. Lives in the thread's packet; initialized in place.
///
/// # Invariants
/// `event` was initialized by [`RawEvent::init`] at its final address. It is set at most once,
/// by the request that first set `signalled`, and only after `requested` was set; `signalled`
/// is set only at `DISPATCH_LEVEL` or lower, where setting the event is allowed.
pub(crate) struct StopState {
    requested: AtomicBool,
    signalled: AtomicBool,
    event: RawEvent,
}

impl StopState {
    /// Sets the flag, and the event unless an earlier request did. A request made above
    /// `DISPATCH_LEVEL` (see [`request_flag`](Self::request_flag)) set only the flag: the
    /// first request at a level that may set the event still sets it, so it still wakes a
    /// thread that waits.
    fn request(&self, dispatch: AtMostDispatch) {
        self.request_flag();
        if !self.signalled.swap(true, Ordering::AcqRel) {
            self.event.set(dispatch);
        }
    }

    /// Sets the flag only: for requests above `DISPATCH_LEVEL`, where setting an event is not
    /// allowed. The thread sees it at its next check, not in a wait.
    fn request_flag(&self) {
        self.requested.store(true, Ordering::Release);
    }

    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

impl Extra for StopState {
    type Lent = Self;
    type Guard = ();

    unsafe fn init(this: *mut Self, _: &Options<'_>) {
        let requested: *mut AtomicBool = field!(this, Self, requested);
        let signalled: *mut AtomicBool = field!(this, Self, signalled);
        let event: *mut RawEvent = field!(this, Self, event);
        // SAFETY: `this` is valid for writes (caller's contract).
        unsafe { requested.write(AtomicBool::new(false)) };
        // SAFETY: as above.
        unsafe { signalled.write(AtomicBool::new(false)) };
        // INVARIANT: the event is initialized at its final address.
        // SAFETY: the event field is valid for writes and never moves (caller's contract).
        unsafe { RawEvent::init(event) };
    }

    fn lent(&self) -> &Self {
        self
    }

    fn enter(&self, _: Passive) {}

    fn abandon(&self, passive: Passive) {
        self.request(passive.dispatch());
    }
}

/// The stopping thread's view of its stop request, lent to its closure.
///
/// It is only ever lent (`&StopToken`) for the duration of the closure call, so it never
/// outlives the packet it lives in.
#[repr(transparent)]
pub struct StopToken {
    state: StopState,
}

impl StopToken {
    pub(crate) fn from_state(state: &StopState) -> &Self {
        // SAFETY: `StopToken` is a transparent wrapper of `StopState`.
        unsafe { &*core::ptr::from_ref(state).cast::<Self>() }
    }

    /// Whether stop was requested.
    ///
    /// # IRQL
    /// Any.
    #[must_use]
    pub fn is_stop_requested(&self) -> bool {
        self.state.is_requested()
    }

    /// Waits until stop is requested or `timeout` passes; returns whether stop was requested.
    /// The wait is on a kernel event, so a request wakes the thread at once.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower. Above `APC_LEVEL` it does not wait and returns
    /// [`is_stop_requested`](Self::is_stop_requested).
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.is_stop_requested() {
            return true;
        }
        let Ok(apc) = AtMostApc::check() else {
            return self.is_stop_requested();
        };
        self.state.event.wait(apc, Timeout::After(timeout)).is_ok() || self.is_stop_requested()
    }

    /// Waits until stop is requested.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// [`IrqlError`] above `APC_LEVEL`.
    pub fn wait(&self) -> Result<(), IrqlError> {
        let apc = AtMostApc::check()?;
        while !self.is_stop_requested() {
            // A failed wait is retried; the event stays set once set.
            let _ = self.state.event.wait(apc, Timeout::Never);
        }
        Ok(())
    }
}

/// What ended a [`StopToken::wait_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Stop was requested (also when work is pending at the same time). A request made above
    /// `DISPATCH_LEVEL` sets only the flag, not the event, so a wait can end with `Work` while
    /// the flag is set: check [`StopToken::is_stop_requested`] after a `Work` wake where that
    /// matters.
    Stop,
    /// The work event was set.
    Work,
    /// The timeout passed.
    TimedOut,
}

impl StopToken {
    /// Waits until stop is requested or `work` is set, in one wait: the loop of a worker that
    /// sleeps until there is work (an event a DPC or a request sets) or it must stop, and
    /// wakes for nothing else. A synchronization event is reset by the wake it causes.
    ///
    /// ```
    /// use system_thread::{Event, EventKind, SystemThread, Wake};
    ///
    /// let work = std::sync::Arc::new(Event::new(EventKind::Synchronization)?);
    /// let pending = std::sync::Arc::clone(&work);
    /// let worker = SystemThread::spawn_stoppable(move |stop| {
    ///     let mut items = 0u32;
    ///     while stop.wait_for(&pending, None) == Ok(Wake::Work) {
    ///         items += 1; // take the queued work and do it
    ///     }
    ///     items
    /// })
    /// .unwrap();
    /// work.set().unwrap();
    /// // Stop may overtake the work item: the worker then ends before taking it.
    /// let items = worker.stop().ok();
    /// assert!(matches!(items, Some(0 | 1)));
    /// # Ok::<(), system_thread::WaitError>(())
    /// ```
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower (a zero timeout: `DISPATCH_LEVEL` or lower).
    ///
    /// # Errors
    /// As [`wait_any`](crate::wait_any); a timeout is not an error but [`Wake::TimedOut`].
    pub fn wait_for(&self, work: &Event, timeout: Option<Duration>) -> Result<Wake, WaitError> {
        if self.is_stop_requested() {
            return Ok(Wake::Stop);
        }
        match wait_any(&[self, work], timeout) {
            Ok(0) => Ok(Wake::Stop),
            Ok(_) => Ok(Wake::Work),
            Err(WaitError::TimedOut) => Ok(Wake::TimedOut),
            Err(e) => Err(e),
        }
    }
}

impl sealed::Sealed for StopToken {}
impl Waitable for StopToken {
    fn dispatcher_object(&self, _: sealed::Token) -> *mut core::ffi::c_void {
        self.state.event.object().cast()
    }
}

impl<T> sealed::Sealed for StoppableJoinHandle<T> {}
impl<T> Waitable for StoppableJoinHandle<T> {
    fn dispatcher_object(&self, token: sealed::Token) -> *mut core::ffi::c_void {
        self.handle.dispatcher_object(token)
    }

    fn observed(&self, token: sealed::Token) {
        self.handle.observed(token);
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
/// # Panics
/// As [`JoinHandle`]'s: dropping a handle that was not joined, on the thread itself or above
/// `APC_LEVEL`, stops the machine (the stop request is made first).
///
/// # Invariants
/// `state` is the stop state in the packet that `handle` owns a share of.
///
/// [`SystemThread::spawn_stoppable`]: crate::SystemThread::spawn_stoppable
pub struct StoppableJoinHandle<T> {
    handle: JoinHandle<T>,
    state: NonNull<StopState>,
}

// SAFETY: as `JoinHandle<T>`; `StopState` is only used through atomics and kernel events.
unsafe impl<T: Send> Send for StoppableJoinHandle<T> {}
// SAFETY: as `JoinHandle<T>`; `request_stop` goes through the atomic flag and the event.
unsafe impl<T> Sync for StoppableJoinHandle<T> {}

impl<T> StoppableJoinHandle<T> {
    pub(crate) fn new(handle: JoinHandle<T>, state: NonNull<StopState>) -> Self {
        // INVARIANT: the caller passes the stop state of the handle's packet.
        Self { handle, state }
    }

    fn state(&self) -> &StopState {
        // SAFETY: the handle's share keeps the packet, and so the state, alive (invariant).
        unsafe { self.state.as_ref() }
    }

    /// Asks the thread to stop: its token reports the request and its waits return.
    ///
    /// # IRQL
    /// Any. At `DISPATCH_LEVEL` or lower the request also wakes the thread's waits; above it
    /// only the flag is set (the thread sees it at its next check, not in a wait), and the next
    /// request at `DISPATCH_LEVEL` or lower (dropping the handle makes one) wakes the waits.
    pub fn request_stop(&self) {
        match AtMostDispatch::check() {
            Ok(dispatch) => self.state().request(dispatch),
            Err(_) => self.state().request_flag(),
        }
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
        unsafe { core::ptr::read(&raw const this.handle) }
    }
}

fn rewrap<T>(
    e: JoinError<JoinHandle<T>>,
    state: NonNull<StopState>,
) -> JoinError<StoppableJoinHandle<T>> {
    let kind: JoinErrorKind = e.kind();
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
