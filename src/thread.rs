//! Spawning system threads, and what a thread can ask about itself.

use core::fmt;
use core::time::Duration;

use crate::error::{IrqlError, SpawnError};
use crate::irql::{self, Irql};
use crate::join::JoinHandle;
use crate::packet::{self, Options};
use crate::stop::{StopState, StopToken, StoppableJoinHandle};
use crate::sys;

/// The kernel's id of a thread (`CLIENT_ID::UniqueThread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(pub usize);

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Entry point for system threads: threads of the system process that run driver code.
///
/// Every thread is joined by waiting on its thread object, which the kernel signals only after
/// the thread has left driver code; a [`JoinHandle`] that is dropped joins. No safe API of this
/// crate leaves a thread running in driver code once its handle is gone, so a driver that
/// drops (or joins) its handles in `DriverUnload` cannot be unloaded under a running thread.
#[derive(Debug)]
pub enum SystemThread {}

impl SystemThread {
    /// Runs `f` on a new system thread and returns the handle that joins it.
    ///
    /// The closure and the slot for its value share one non-paged pool allocation, passed as
    /// the start context of `PsCreateSystemThread` (a NULL process handle: the system process;
    /// `OBJ_KERNEL_HANDLE`). The handle is referenced (`ObReferenceObjectByHandle`) and closed
    /// at once.
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`. The closure starts at `PASSIVE_LEVEL` (asserted) and must return there.
    ///
    /// # Errors
    /// [`SpawnError::Irql`] above `PASSIVE_LEVEL`, [`SpawnError::OutOfMemory`] when the pool is
    /// exhausted, [`SpawnError::Create`] with the status of `PsCreateSystemThread`,
    /// [`SpawnError::Reference`] with the status of `ObReferenceObjectByHandle`. In every case
    /// nothing stays allocated or open.
    ///
    /// # Example
    /// ```
    /// use system_thread::SystemThread;
    ///
    /// let handle = SystemThread::spawn(|| 6 * 7)?;
    /// assert_eq!(handle.join().ok(), Some(42));
    /// # Ok::<(), system_thread::SpawnError>(())
    /// ```
    pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are 'static and the handle joins before the packet is freed.
        let spawned =
            unsafe { packet::spawn_unchecked::<(), _, T>(&Options::default(), move |()| f()) }?;
        Ok(JoinHandle::new(spawned.raw, spawned.value, false))
    }

    /// Runs `f` on a new system thread that can be asked to stop: `f` receives a
    /// [`StopToken`], the handle can [`request_stop`](StoppableJoinHandle::request_stop), and
    /// dropping the handle requests stop, then joins. This is the worker loop of a driver:
    ///
    /// ```
    /// use core::time::Duration;
    /// use system_thread::SystemThread;
    ///
    /// let worker = SystemThread::spawn_stoppable(|stop| {
    ///     let mut ticks = 0u32;
    ///     while !stop.wait_timeout(Duration::from_millis(1)) {
    ///         ticks += 1;
    ///     }
    ///     ticks
    /// })?;
    /// worker.request_stop();
    /// let ticks = worker.join().ok();
    /// assert!(ticks.is_some());
    /// # Ok::<(), system_thread::SpawnError>(())
    /// ```
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`SystemThread::spawn`].
    pub fn spawn_stoppable<F, T>(f: F) -> Result<StoppableJoinHandle<T>, SpawnError>
    where
        F: FnOnce(&StopToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are 'static and the handle joins before the packet is freed.
        let spawned = unsafe {
            packet::spawn_unchecked::<StopState, _, T>(&Options::default(), move |s: &StopState| {
                f(s.token())
            })
        }?;
        Ok(StoppableJoinHandle::new(
            JoinHandle::new(spawned.raw, spawned.value, false),
            spawned.extra,
        ))
    }
}

/// The id of the calling thread (`PsGetCurrentThreadId`).
///
/// # IRQL
/// Any.
#[must_use]
pub fn current_id() -> ThreadId {
    // SAFETY: PsGetCurrentThreadId has no preconditions.
    ThreadId(unsafe { sys::PsGetCurrentThreadId() }.addr())
}

/// Puts the calling thread to sleep for at least `duration` (`KeDelayExecutionThread`,
/// kernel mode, not alertable). The kernel's timer granularity (about 1-16 ms) rounds it up.
///
/// # IRQL
/// `APC_LEVEL` or lower.
///
/// # Errors
/// [`IrqlError`] when called above `APC_LEVEL`.
pub fn sleep(duration: Duration) -> Result<(), IrqlError> {
    irql::require(Irql::APC)?;
    let mut interval = sys::LARGE_INTEGER { QuadPart: packet::relative_100ns(duration) };
    // SAFETY: the interval is a live local; non-alertable kernel-mode waits only return
    // STATUS_SUCCESS, so the status carries nothing.
    let _ = unsafe { sys::KeDelayExecutionThread(sys::KERNEL_MODE, 0, &raw mut interval) };
    Ok(())
}

/// Offers the rest of the calling thread's time slice to another ready thread
/// (`ZwYieldExecution`).
///
/// # IRQL
/// `PASSIVE_LEVEL`.
///
/// # Errors
/// [`IrqlError`] when called above `PASSIVE_LEVEL`.
pub fn yield_now() -> Result<(), IrqlError> {
    irql::require(Irql::PASSIVE)?;
    // SAFETY: no preconditions besides the IRQL checked above; STATUS_NO_YIELD_PERFORMED is
    // not an error.
    let _ = unsafe { sys::ZwYieldExecution() };
    Ok(())
}
