//! The sample's worker: one named, stoppable system thread that sleeps until there is work or it
//! must stop; the [`WorkQueue`] through which a DPC (the driver's timer) hands it work; and the
//! slot that keeps the worker between `EvtDriverDeviceAdd` and the device's cleanup callback.
//!
//! Everything in the sample that touches `system-thread` is in this file, and the file uses
//! nothing but `system_thread` and `core`: the root crate's `tests/sample_worker.rs` compiles
//! this very file on the host and runs it against the crate's kernel model. Output goes through
//! a [`Log`] function (`wdk::println!` in the driver, a buffer in the tests).
//!
//! # Who owns the work event, and why a DPC may always notify
//! The worker waits on a synchronization [`Event`] (a `KEVENT` in non-paged pool) and on its
//! stop event, in one `KeWaitForMultipleObjects`: it wakes when work was queued or when it must
//! stop, and for nothing else. The event belongs to the driver's `static` [`WorkQueue`], which
//! outlives everything that could touch it; the event itself lives from [`start`] to the end of
//! [`Worker::stop`] (or of the worker's drop):
//! - `start` creates the event and opens the queue before the thread exists;
//! - every use of the event goes through a *lease* counted in the queue: the thread holds one
//!   for its whole life, [`WorkQueue::notify`] one while it sets the event;
//! - `Worker::stop` joins the thread (a wait on the thread object: the thread has left driver
//!   code), then closes the queue: no new lease is granted, it waits until none is held, and only
//!   then frees the event.
//!
//! So the thread never uses a freed event, and a `notify` that comes at any time, from any
//! thread or DPC, either sets a live event or finds the queue closed and does nothing. The
//! driver still stops its timer (`WdfTimerStop` with wait) before the device goes away: not for
//! soundness, but so that no notification is dropped unseen.

use core::cell::UnsafeCell;
use core::fmt;
use core::hint;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use system_thread::{
    Builder, Event, EventKind, IoObject, NtStatus, SpawnError, StopToken, StoppableJoinHandle,
    ThreadId, WaitError, Wake,
};

/// The worker thread's name, as debuggers and tracing tools show it.
pub const THREAD_NAME: &str = "system-thread-sample";

/// How often the driver's timer queues work, in milliseconds (its `WDF_TIMER_CONFIG.Period`).
pub const PERIOD_MS: u32 = 1000;

/// Where the worker writes its lines (one call per line, without the line break).
pub type Log = fn(fmt::Arguments<'_>);

/// What the worker did: its thread's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Work items taken and done.
    pub items: u32,
    /// Times the worker woke because work was queued (one wait each).
    pub wakes: u32,
}

/// Why [`start`] did not start a worker. Nothing is left running or allocated then.
#[derive(Debug)]
pub enum StartError {
    /// The queue already serves a running worker: one worker per queue.
    Busy,
    /// The work event could not be created (out of non-paged pool, or above
    /// `DISPATCH_LEVEL`).
    Event(WaitError),
    /// The thread could not be created or named.
    Spawn(SpawnError),
}

impl StartError {
    /// The NTSTATUS for the driver to return.
    #[must_use]
    pub fn status(&self) -> NtStatus {
        match self {
            Self::Busy => NtStatus(0x8000_0011_u32.cast_signed()), // STATUS_DEVICE_BUSY
            Self::Event(error) => error.status(),
            Self::Spawn(error) => error.status(),
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => write!(f, "{THREAD_NAME}: the work queue already has a worker"),
            Self::Event(error) => write!(f, "{THREAD_NAME}: no work event: {error}"),
            Self::Spawn(error) => write!(f, "{THREAD_NAME}: {error}"),
        }
    }
}

/// Set in [`WorkQueue::state`] while the queue is open; the other bits count the leases held.
const OPEN: u32 = 1 << 31;

/// Work queued for the worker, and the event that wakes it. A `static` of the driver's, made
/// with `const` construction: it outlives every thread and DPC that can reach it, so
/// [`notify`](Self::notify) may be called at any time (see the [module documentation](self)).
pub struct WorkQueue {
    /// Items queued and not yet taken by the worker.
    pending: AtomicU32,
    /// `OPEN`, and the number of leases held on `event`.
    state: AtomicU32,
    /// Set from `start` to the end of the worker's stop: the queue serves one worker at a time.
    claimed: AtomicBool,
    /// The work event while the queue is open (`Some` whenever `OPEN` is set).
    event: UnsafeCell<Option<Event>>,
}

// SAFETY: `event` is written only by the claimer while no lease exists (`open`, `close`) and
// read only through leases, which exist only while it is not written (see `lease`); `Event` is
// `Send` and `Sync`. Everything else is atomic.
unsafe impl Sync for WorkQueue {}

impl WorkQueue {
    /// A closed queue with nothing pending.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            pending: AtomicU32::new(0),
            state: AtomicU32::new(0),
            claimed: AtomicBool::new(false),
            event: UnsafeCell::new(None),
        }
    }

    /// Queues one work item and wakes the worker. Returns whether the worker was signalled:
    /// false when no worker runs (the item is not queued) or above `DISPATCH_LEVEL` (the item
    /// stays queued for the worker's next wake).
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower: a DPC, such as a WDF timer's `EvtTimerFunc`, may call it.
    pub fn notify(&self) -> bool {
        let Some(lease) = self.lease() else { return false };
        self.pending.fetch_add(1, Ordering::Release);
        lease.event().is_some_and(|event| event.set().is_ok())
    }

    /// A lease on the event, if the queue is open.
    fn lease(&self) -> Option<Lease<'_>> {
        let state = self.state.fetch_add(1, Ordering::Acquire);
        // From here on the lease is counted: `close` waits for it before freeing the event.
        let lease = Lease { queue: self };
        (state & OPEN != 0).then_some(lease)
    }

    /// Makes the caller the queue's one worker owner, if nobody is.
    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Stores `event` and opens the queue. The caller holds the claim, and the queue is closed.
    fn open(&self, event: Event) {
        // SAFETY: the caller holds the claim and the queue is closed, so no lease reads the cell
        // (a lease reads it only when it saw OPEN) and no other claimer writes it.
        unsafe { *self.event.get() = Some(event) };
        self.pending.store(0, Ordering::Relaxed);
        // Release: a lease that sees OPEN (Acquire) sees the event stored above.
        self.state.fetch_or(OPEN, Ordering::Release);
    }

    /// Closes the queue, waits until no lease is held, frees the event and gives up the claim.
    /// Returns the items that were queued and never taken.
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL` (it may sleep while a notifier holds a lease).
    fn close(&self) -> u32 {
        self.state.fetch_and(!OPEN, Ordering::AcqRel);
        // A lease taken from now on sees the queue closed and never reads the cell; the leases
        // taken before are waited for. They are short (a `KeSetEvent`), except the worker's,
        // which ended when its thread was joined.
        while self.state.load(Ordering::Acquire) != 0 {
            if system_thread::sleep(Duration::from_millis(1)).is_err() {
                hint::spin_loop();
            }
        }
        // SAFETY: closed and no lease held (the Acquire load above saw every lease's release),
        // and the caller holds the claim: nobody else reads or writes the cell.
        let event = unsafe { (*self.event.get()).take() };
        drop(event);
        let dropped = self.pending.swap(0, Ordering::AcqRel);
        self.claimed.store(false, Ordering::Release);
        dropped
    }
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// A counted use of the queue's event; the event is not freed while one exists.
struct Lease<'a> {
    queue: &'a WorkQueue,
}

impl Lease<'_> {
    /// The event (always there: `lease` grants a lease only while the queue is open).
    fn event(&self) -> Option<&Event> {
        // SAFETY: this lease is counted in `state`, so `close` does not write the cell until it
        // is dropped, and `open` wrote it before setting OPEN (Release; seen by `lease`'s
        // Acquire). Shared references only.
        let event = unsafe { &*self.queue.event.get() };
        event.as_ref()
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.queue.state.fetch_sub(1, Ordering::Release);
    }
}

/// A running worker thread. Dropping it stops and joins the thread too, and frees the work
/// event, but silently: [`stop`](Self::stop) reports what the worker did.
pub struct Worker {
    /// `None` once stopped (by `stop` or drop).
    handle: Option<StoppableJoinHandle<Done>>,
    id: ThreadId,
    queue: &'static WorkQueue,
    pins_driver: bool,
    log: Log,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("pins_driver", &self.pins_driver)
            .finish_non_exhaustive()
    }
}

/// Starts the worker on `queue`: it sleeps until [`WorkQueue::notify`] queues work or it is
/// asked to stop; at each wake it takes every item queued and logs the wake. Its value is what
/// it did ([`Done`]).
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
/// [`StartError::Busy`] when `queue` already has a worker; [`StartError::Event`] when the work
/// event cannot be created; [`StartError::Spawn`] when the thread cannot be created or named.
/// Nothing is left running or allocated then, and `queue` is as it was.
pub fn start(
    queue: &'static WorkQueue,
    io: Option<IoObject<'_>>,
    log: Log,
) -> Result<Worker, StartError> {
    if !queue.claim() {
        return Err(StartError::Busy);
    }
    let event = match Event::new(EventKind::Synchronization) {
        Ok(event) => event,
        Err(error) => {
            queue.claimed.store(false, Ordering::Release);
            return Err(StartError::Event(error));
        }
    };
    queue.open(event);
    match spawn(queue, io, log) {
        Ok((handle, pins_driver)) => {
            let id = handle.thread_id();
            Ok(Worker { handle: Some(handle), id, queue, pins_driver, log })
        }
        Err(error) => {
            // No thread holds a lease: this frees the event at once.
            let _dropped = queue.close();
            Err(StartError::Spawn(error))
        }
    }
}

/// Creates the named thread, on `io` where the kernel allows it; returns whether it pins the
/// driver.
fn spawn(
    queue: &'static WorkQueue,
    io: Option<IoObject<'_>>,
    log: Log,
) -> Result<(StoppableJoinHandle<Done>, bool), SpawnError> {
    let builder = Builder::new().name(THREAD_NAME);
    if let Some(io) = io {
        match builder.io_object(io).spawn_stoppable(work_loop(queue, log)) {
            Ok(handle) => return Ok((handle, true)),
            Err(SpawnError::NotSupported(routine)) => {
                log(format_args!(
                    "{THREAD_NAME}: {routine} is not exported here; using PsCreateSystemThread"
                ));
            }
            Err(error) => return Err(error),
        }
    }
    Ok((builder.spawn_stoppable(work_loop(queue, log))?, false))
}

/// The worker's loop: one wait on the stop event and the work event at a time
/// (`StopToken::wait_for`, a `KeWaitForMultipleObjects`), no timeout: an idle worker makes no
/// kernel call at all until work is queued or it is asked to stop.
fn work_loop(
    queue: &'static WorkQueue,
    log: Log,
) -> impl FnOnce(&StopToken) -> Done + Send + 'static {
    move |stop| {
        log(format_args!("{THREAD_NAME}: running on thread {}", system_thread::current_id()));
        let mut done = Done::default();
        // Held until the thread returns: the event outlives every wait below.
        let Some(lease) = queue.lease() else {
            log(format_args!("{THREAD_NAME}: the work queue is closed"));
            return done;
        };
        let Some(work) = lease.event() else { return done };
        loop {
            match stop.wait_for(work, None) {
                Ok(Wake::Work) => {
                    let taken = queue.pending.swap(0, Ordering::Acquire);
                    done.wakes = done.wakes.wrapping_add(1);
                    done.items = done.items.wrapping_add(taken);
                    // The work itself: here, a line per wake.
                    log(format_args!("{THREAD_NAME}: wake {}: {taken} item(s)", done.wakes));
                }
                Ok(Wake::Stop | Wake::TimedOut) => break,
                Err(error) => {
                    log(format_args!("{THREAD_NAME}: {error}"));
                    break;
                }
            }
        }
        log(format_args!("{THREAD_NAME}: stop requested"));
        done
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
        self.id
    }

    /// Asks the worker to stop, waits until its thread has exited (a wait on the thread
    /// object: no driver code runs on it afterwards), frees the work event, logs and returns
    /// what the worker did.
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`, on any thread but the worker's own, as in a cleanup or unload
    /// callback. Elsewhere the join fails; the failure is logged and the handle is dropped,
    /// which joins where that is possible and otherwise panics (a bugcheck in a driver),
    /// rather than leave driver code running after unload.
    pub fn stop(mut self) -> Done {
        self.finish(true)
    }

    /// Stops and joins the thread, then closes the queue (the thread's lease is gone with it).
    fn finish(&mut self, report: bool) -> Done {
        let Some(handle) = self.handle.take() else { return Done::default() };
        let log = self.log;
        let done = match handle.stop() {
            Ok(done) => done,
            Err(error) => {
                log(format_args!("{THREAD_NAME}: {error}"));
                drop(error.into_handle());
                Done::default()
            }
        };
        let dropped = self.queue.close();
        if report {
            log(format_args!(
                "{THREAD_NAME}: joined after {} wakes, {} items",
                done.wakes, done.items
            ));
            if dropped != 0 {
                log(format_args!("{THREAD_NAME}: {dropped} item(s) queued after the last wake"));
            }
        }
        done
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _done = self.finish(false);
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
