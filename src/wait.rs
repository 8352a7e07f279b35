//! Events, and waits on several objects at once: a worker that sleeps until there is work or it
//! is asked to stop, and `DriverUnload` waiting for all its workers in one wait.

use core::ffi::c_void;
use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;

use crate::irql::IrqlError;
use crate::kernel::event::RawEvent;
use crate::kernel::irql::{AtMostApc, AtMostDispatch};
use crate::kernel::pool;
use crate::kernel::wait::{self, MultiWaitError, Timeout, WaitError as KernelWaitError, WaitIrql};
use crate::status::NtStatus;

/// Why a wait, or the creation of an [`Event`], did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout passed before the wait was satisfied.
    TimedOut,
    /// Called above the highest IRQL the operation accepts.
    Irql(IrqlError),
    /// The kernel returned an unexpected status.
    Failed(NtStatus),
    /// No objects, or more than one wait takes (64, `MAXIMUM_WAIT_OBJECTS`).
    TooManyObjects,
    /// Non-paged pool is exhausted (an event, or the wait blocks of more than 3 objects).
    OutOfMemory,
}

impl WaitError {
    /// The NTSTATUS that best describes the error.
    #[must_use]
    pub const fn status(&self) -> NtStatus {
        match *self {
            Self::TimedOut => NtStatus::TIMEOUT,
            Self::Irql(_) => NtStatus(0xC000_0184_u32.cast_signed()), // INVALID_DEVICE_STATE
            Self::Failed(status) => status,
            Self::TooManyObjects => NtStatus::INVALID_PARAMETER,
            Self::OutOfMemory => NtStatus::INSUFFICIENT_RESOURCES,
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("system-thread: wait failed: ")?;
        match self {
            Self::TimedOut => f.write_str("timed out"),
            Self::Irql(e) => write!(f, "{e}"),
            Self::Failed(s) => write!(f, "the kernel returned {s}"),
            Self::TooManyObjects => f.write_str("no objects, or more than 64"),
            Self::OutOfMemory => f.write_str("out of non-paged pool"),
        }
    }
}

impl core::error::Error for WaitError {}

impl From<KernelWaitError> for WaitError {
    fn from(e: KernelWaitError) -> Self {
        match e {
            KernelWaitError::TimedOut => Self::TimedOut,
            KernelWaitError::Failed(status) => Self::Failed(status),
        }
    }
}

impl From<MultiWaitError> for WaitError {
    fn from(e: MultiWaitError) -> Self {
        match e {
            MultiWaitError::Wait(e) => e.into(),
            MultiWaitError::TooMany => Self::TooManyObjects,
            MultiWaitError::OutOfMemory => Self::OutOfMemory,
        }
    }
}

/// What an event does when a wait is satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Stays set until [`reset`](Event::reset): wakes every waiter (`NotificationEvent`).
    Notification,
    /// Wakes one waiter and resets itself (`SynchronizationEvent`): the "work is pending"
    /// event of a worker.
    Synchronization,
}

/// A kernel event (`KEVENT`) in non-paged pool, so it never moves and may be set from a DPC.
///
/// ```
/// use system_thread::{Event, EventKind, SystemThread};
///
/// let work = Event::new(EventKind::Synchronization)?;
/// let done = Event::new(EventKind::Notification)?;
/// system_thread::scope(|s| {
///     s.spawn(|| {
///         work.wait().unwrap(); // sleeps until there is work
///         done.set().unwrap();
///     })
///     .unwrap();
///     work.set().unwrap(); // from a DPC, this is the whole of its part
/// });
/// assert!(done.wait_timeout(core::time::Duration::ZERO).is_ok());
/// # Ok::<(), system_thread::WaitError>(())
/// ```
///
/// # Invariants
/// `raw` is a pool block of this value's own holding a `RawEvent` initialized in place.
pub struct Event {
    raw: NonNull<RawEvent>,
}

// SAFETY: the event is only touched through kernel routines, which synchronize internally; the
// pool block belongs to this value.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

impl Event {
    /// A new, non-signalled event of `kind`.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    ///
    /// # Errors
    /// [`WaitError::Irql`] above `DISPATCH_LEVEL`, [`WaitError::OutOfMemory`].
    pub fn new(kind: EventKind) -> Result<Self, WaitError> {
        let dispatch = AtMostDispatch::check().map_err(WaitError::Irql)?;
        let block =
            pool::allocate(dispatch, size_of::<RawEvent>()).ok_or(WaitError::OutOfMemory)?;
        let raw = block.cast::<RawEvent>();
        // INVARIANT: initialized in its own pool block, which never moves.
        // SAFETY: a fresh block of the event's size (pool blocks are 16-aligned).
        unsafe { RawEvent::init_kind(raw.as_ptr(), kind == EventKind::Synchronization) };
        Ok(Self { raw })
    }

    fn raw(&self) -> &RawEvent {
        // SAFETY: the block lives as long as `self` (invariant).
        unsafe { self.raw.as_ref() }
    }

    /// Sets the event: a notification event wakes every waiter and stays set; a
    /// synchronization event wakes one.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower (a DPC may set it).
    ///
    /// # Errors
    /// [`IrqlError`] above `DISPATCH_LEVEL`.
    pub fn set(&self) -> Result<(), IrqlError> {
        self.raw().set(AtMostDispatch::check()?);
        Ok(())
    }

    /// Sets the event non-signalled.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    ///
    /// # Errors
    /// [`IrqlError`] above `DISPATCH_LEVEL`.
    pub fn reset(&self) -> Result<(), IrqlError> {
        self.raw().reset(AtMostDispatch::check()?);
        Ok(())
    }

    /// Waits until the event is set.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower.
    ///
    /// # Errors
    /// [`WaitError::Irql`] above `APC_LEVEL`, [`WaitError::Failed`].
    pub fn wait(&self) -> Result<(), WaitError> {
        let apc = AtMostApc::check().map_err(WaitError::Irql)?;
        Ok(self.raw().wait(apc, Timeout::Never)?)
    }

    /// Waits until the event is set or `timeout` passes; `Duration::ZERO` polls.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower; a poll also at `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// [`WaitError::TimedOut`], and as [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        wait_any(&[self], Some(timeout)).map(|_| ())
    }
}

impl Drop for Event {
    /// Frees the event's pool block. Drop it at `DISPATCH_LEVEL` or lower (not in an ISR).
    fn drop(&mut self) {
        // SAFETY: the block is this value's (invariant); nobody waits on it any more (waits
        // borrow `self`). Freeing pool is allowed up to DISPATCH_LEVEL, where events are
        // dropped (documented above).
        unsafe { pool::free(self.raw.cast()) };
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").finish_non_exhaustive()
    }
}

pub(crate) mod sealed {
    /// Only this crate's types are [`Waitable`](super::Waitable).
    pub trait Sealed {}

    /// The proof that a [`Waitable`](super::Waitable) method is called from inside this
    /// crate: its field is private, so no other crate can make one, and sealing the trait
    /// does not stop other crates from calling its methods.
    ///
    /// # Invariants
    /// Made only by this crate's waits, which call `observed` only after the kernel reported
    /// the object signalled.
    #[derive(Clone, Copy)]
    pub struct Token(());

    impl Token {
        pub(crate) const fn new() -> Self {
            // INVARIANT: only this crate reaches this constructor.
            Self(())
        }
    }
}

/// Something a thread can wait for: an [`Event`], a [`StopToken`](crate::StopToken) (set when
/// stop is requested), or a thread's join handle (signalled when the thread has exited).
///
/// Only [`wait_any`] and [`wait_all`] use it: its methods take a token that only this crate
/// can make, so other crates can neither implement nor call them.
pub trait Waitable: sealed::Sealed {
    /// The kernel dispatcher object; it stays alive while `self` is borrowed.
    #[doc(hidden)]
    fn dispatcher_object(&self, token: sealed::Token) -> *mut c_void;

    /// A wait saw the object signalled. For a join handle this records that its thread has
    /// exited, which lets its join (and its scope) skip the wait: a call that did not follow
    /// such a wait would let a thread outlive its handle.
    #[doc(hidden)]
    fn observed(&self, _: sealed::Token) {}
}

impl sealed::Sealed for Event {}
impl Waitable for Event {
    fn dispatcher_object(&self, _: sealed::Token) -> *mut c_void {
        self.raw().object().cast()
    }
}

fn wait_irql(timeout: Option<Duration>) -> Result<WaitIrql, WaitError> {
    if timeout == Some(Duration::ZERO) {
        return AtMostDispatch::check().map(WaitIrql::Poll).map_err(WaitError::Irql);
    }
    let apc = AtMostApc::check().map_err(WaitError::Irql)?;
    Ok(WaitIrql::Block(apc, timeout.map_or(Timeout::Never, Timeout::After)))
}

fn pointers<'a>(
    objects: &[&dyn Waitable],
    array: &'a mut [*mut c_void; 64],
) -> Result<&'a [*mut c_void], WaitError> {
    if objects.is_empty() || objects.len() > array.len() {
        return Err(WaitError::TooManyObjects);
    }
    for (slot, object) in array.iter_mut().zip(objects) {
        *slot = object.dispatcher_object(sealed::Token::new());
    }
    array.get(..objects.len()).ok_or(WaitError::TooManyObjects)
}

/// Waits until any of `objects` is signalled, or `timeout` passes (`None`: no timeout), in one
/// `KeWaitForMultipleObjects`, and returns the index of the object that satisfied the wait (the
/// lowest, if several are signalled). A satisfied synchronization event is reset.
///
/// ```
/// use core::time::Duration;
/// use system_thread::{Event, EventKind, wait_any};
///
/// let (a, b) = (Event::new(EventKind::Notification)?, Event::new(EventKind::Notification)?);
/// b.set().unwrap();
/// assert_eq!(wait_any(&[&a, &b], Some(Duration::ZERO))?, 1);
/// # Ok::<(), system_thread::WaitError>(())
/// ```
///
/// # IRQL
/// `APC_LEVEL` or lower; with `Some(Duration::ZERO)` (a poll), `DISPATCH_LEVEL` or lower.
///
/// # Errors
/// [`WaitError::TimedOut`], [`WaitError::Irql`], [`WaitError::TooManyObjects`] for none or
/// more than 64 objects, [`WaitError::OutOfMemory`] when more than 3 objects need wait blocks
/// and the pool is exhausted, [`WaitError::Failed`].
pub fn wait_any(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<usize, WaitError> {
    let irql = wait_irql(timeout)?;
    let mut array = [core::ptr::null_mut(); 64];
    let pointers = pointers(objects, &mut array)?;
    // SAFETY: every pointer is the dispatcher object of a borrowed `Waitable`, alive during the
    // call.
    let index = unsafe { wait::wait_multiple(irql, pointers, false) }?;
    if let Some(object) = objects.get(index) {
        // The kernel reported this object signalled (the token's invariant).
        object.observed(sealed::Token::new());
    }
    Ok(index)
}

/// Waits until all of `objects` are signalled, or `timeout` passes, in one
/// `KeWaitForMultipleObjects`. Join handles waited for this way join without another wait:
/// `DriverUnload` waits once for all its workers, then joins each. (Unlike `join`, a wait on
/// several objects does not detect a thread waiting for its own handle: that wait never ends.)
///
/// ```
/// use system_thread::{SystemThread, wait_all};
///
/// let workers = [SystemThread::spawn(|| 1)?, SystemThread::spawn(|| 2)?];
/// wait_all(&[&workers[0], &workers[1]], None).unwrap();
/// let sum: i32 = workers.into_iter().map(|w| w.join().ok().unwrap_or(0)).sum();
/// assert_eq!(sum, 3);
/// # Ok::<(), system_thread::SpawnError>(())
/// ```
///
/// # IRQL
/// As [`wait_any`].
///
/// # Errors
/// As [`wait_any`].
pub fn wait_all(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<(), WaitError> {
    let irql = wait_irql(timeout)?;
    let mut array = [core::ptr::null_mut(); 64];
    let pointers = pointers(objects, &mut array)?;
    // SAFETY: as in `wait_any`.
    unsafe { wait::wait_multiple(irql, pointers, true) }?;
    for object in objects {
        // The kernel reported every object signalled (the token's invariant).
        object.observed(sealed::Token::new());
    }
    Ok(())
}
