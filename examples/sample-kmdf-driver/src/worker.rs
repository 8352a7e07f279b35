//! The sample's worker: one named, stoppable system thread that ticks periodically, and the
//! slot that keeps it between `EvtDriverDeviceAdd` and the device's cleanup callback.
//!
//! Everything in the sample that touches `system-thread` is in this file, and the file uses
//! nothing but `system_thread` and `core`: the root crate's `tests/sample_worker.rs` compiles
//! this very file on the host and runs it against the crate's kernel model. Output goes through
//! a [`Log`] function (`wdk::println!` in the driver, a buffer in the tests).

use core::cell::UnsafeCell;
use core::fmt;
use core::hint;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use system_thread::{Builder, IoObject, SpawnError, StopToken, StoppableJoinHandle, ThreadId};

/// The worker thread's name, as debuggers and tracing tools show it.
pub const THREAD_NAME: &str = "system-thread-sample";

/// How often the driver's worker ticks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Where the worker writes its lines (one call per line, without the line break).
pub type Log = fn(fmt::Arguments<'_>);

/// A running worker thread. Dropping it stops and joins the thread too, but silently:
/// [`stop`](Self::stop) reports the final count.
#[derive(Debug)]
pub struct Worker {
    handle: StoppableJoinHandle<u32>,
    pins_driver: bool,
    log: Log,
}

/// Starts the worker: every `period` it counts a tick and logs it, until it is asked to stop;
/// its value is the number of ticks.
///
/// With `io`, the thread is created on that device or driver object (`IoCreateSystemThread`),
/// so the kernel keeps the driver loaded until the thread has exited. Kernels that do not
/// export `IoCreateSystemThread` (before Windows 8, or emulators) get an ordinary system thread
/// instead: nothing pins the image then, which is sound because the worker is always joined
/// before the driver unloads ([`WorkerSlot`], `Worker::stop`).
///
/// # IRQL
/// `PASSIVE_LEVEL`.
///
/// # Errors
/// The [`SpawnError`] of `system-thread` when the thread cannot be created or named; nothing is
/// left running or allocated then.
pub fn start(io: Option<IoObject<'_>>, period: Duration, log: Log) -> Result<Worker, SpawnError> {
    let builder = Builder::new().name(THREAD_NAME);
    if let Some(io) = io {
        match builder.io_object(io).spawn_stoppable(ticker(period, log)) {
            Ok(handle) => return Ok(Worker { handle, pins_driver: true, log }),
            Err(SpawnError::NotSupported(routine)) => {
                log(format_args!(
                    "{THREAD_NAME}: {routine} is not exported here; using PsCreateSystemThread"
                ));
            }
            Err(error) => return Err(error),
        }
    }
    let handle = builder.spawn_stoppable(ticker(period, log))?;
    Ok(Worker { handle, pins_driver: false, log })
}

/// The worker's loop. `StopToken::wait_timeout` waits on the stop event, so a stop request
/// ends the current period at once instead of after up to `period`.
fn ticker(period: Duration, log: Log) -> impl FnOnce(&StopToken) -> u32 + Send + 'static {
    move |stop| {
        log(format_args!("{THREAD_NAME}: running on thread {}", system_thread::current_id()));
        let mut ticks = 0u32;
        while !stop.wait_timeout(period) {
            ticks = ticks.wrapping_add(1);
            log(format_args!("{THREAD_NAME}: tick {ticks}"));
        }
        log(format_args!("{THREAD_NAME}: stop requested"));
        ticks
    }
}

impl Worker {
    /// Whether the thread was created on an I/O object, so that the kernel keeps the driver
    /// loaded while it runs (false after the `PsCreateSystemThread` fallback).
    #[must_use]
    pub fn pins_driver(&self) -> bool {
        self.pins_driver
    }

    /// The kernel's id of the worker thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.handle.thread_id()
    }

    /// Asks the worker to stop, waits until its thread has exited (a wait on the thread
    /// object: no driver code runs on it afterwards), logs and returns its tick count.
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`, on any thread but the worker's own, as in a cleanup or unload
    /// callback. Elsewhere the join fails; the failure is logged and the handle is dropped,
    /// which joins where that is possible and otherwise panics (a bugcheck in a driver),
    /// rather than leave driver code running after unload.
    pub fn stop(self) -> u32 {
        let log = self.log;
        match self.handle.stop() {
            Ok(ticks) => {
                log(format_args!("{THREAD_NAME}: joined after {ticks} ticks"));
                ticks
            }
            Err(error) => {
                log(format_args!("{THREAD_NAME}: {error}"));
                drop(error.into_handle());
                0
            }
        }
    }
}

/// Holds the worker of one owner (the driver keys it by its `WDFDEVICE`) from the callback
/// that starts it to the callback that stops it. A `static` with `const` construction, so the
/// driver needs no allocation and no WDF context type for it.
///
/// The slot holds one worker: the sample has one root-enumerated device. A second device finds
/// the slot full and gets no worker (`put` hands the worker back to be stopped).
pub struct WorkerSlot {
    /// Set while a caller has `slot`; the owners of the lock only move a few words.
    locked: AtomicBool,
    slot: UnsafeCell<Option<(usize, Worker)>>,
}

// SAFETY: the contents are only reached by the holder of `locked` (see `with`), and `Worker` is
// `Send`, so handing it between threads through the slot is sound.
unsafe impl Sync for WorkerSlot {}

impl WorkerSlot {
    /// An empty slot.
    #[must_use]
    pub const fn new() -> Self {
        Self { locked: AtomicBool::new(false), slot: UnsafeCell::new(None) }
    }

    /// Runs `f` on the contents, with exclusive access. Spins while another caller holds them:
    /// holders never wait or call out, they move an `Option` in or out and release.
    fn with<R>(&self, f: impl FnOnce(&mut Option<(usize, Worker)>) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            hint::spin_loop();
        }
        // SAFETY: `locked` was false and is now ours: no other reference to the contents exists
        // until it is released below.
        let contents = unsafe { &mut *self.slot.get() };
        let value = f(contents);
        self.locked.store(false, Ordering::Release);
        value
    }

    /// Keeps `worker` for `owner`.
    ///
    /// # Errors
    /// Hands `worker` back when the slot already holds one.
    pub fn put(&self, owner: usize, worker: Worker) -> Result<(), Worker> {
        self.with(|slot| {
            if slot.is_some() {
                return Err(worker);
            }
            *slot = Some((owner, worker));
            Ok(())
        })
    }

    /// Takes the worker of `owner` out, if the slot holds it.
    #[must_use]
    pub fn take(&self, owner: usize) -> Option<Worker> {
        self.with(|slot| match slot {
            Some((held, _)) if *held == owner => slot.take().map(|(_, worker)| worker),
            _ => None,
        })
    }

    /// Takes whatever worker the slot holds (the driver's unload path).
    #[must_use]
    pub fn take_any(&self) -> Option<Worker> {
        self.with(Option::take).map(|(_, worker)| worker)
    }
}

impl Default for WorkerSlot {
    fn default() -> Self {
        Self::new()
    }
}
