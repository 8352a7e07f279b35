//! Spawning system threads, and what a thread can do about itself.

use core::time::Duration;

use crate::builder::Builder;
use crate::error::SpawnError;
use crate::irql::IrqlError;
use crate::join::JoinHandle;
use crate::kernel::irql::{AtMostApc, Passive};
use crate::kernel::wait;
use crate::stop::{StopToken, StoppableJoinHandle};

pub use crate::kernel::thread::current_id;

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
    #[inline]
    pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Builder::new().spawn(f)
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
    #[inline]
    pub fn spawn_stoppable<F, T>(f: F) -> Result<StoppableJoinHandle<T>, SpawnError>
    where
        F: FnOnce(&StopToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        Builder::new().spawn_stoppable(f)
    }
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
    wait::delay(AtMostApc::check()?, duration);
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
    wait::yield_now(Passive::check()?);
    Ok(())
}
