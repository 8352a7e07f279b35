//! The thread lifecycle: the packet a thread shares with its owners, the start routine, the
//! start gate, an owner's share ([`JoinInner`]) and a scope's list of threads. With the
//! kernel-object layer, this is the crate's only unsafe core.
//!
//! # Protocol
//! - One pool block per thread holds a [`Packet`]: a [`Header`], the per-thread state `E` (stop
//!   request, start gate) and a slot that first holds the closure `F`, then its value `T`.
//! - The packet has up to three owners: the thread (until the last instruction of its start
//!   routine that touches the packet), the handle ([`JoinInner`]), and the scope's list for
//!   scoped threads. `Header::refs` counts them; the owner that drops it to zero drops what the
//!   slot and `E` hold, dereferences the thread object and frees the block. No owner frees a
//!   packet another owner can still reach.
//! - Nobody reads or drops the value before a wait on the thread object succeeded (the object is
//!   signalled only once the thread has left driver code), or before the thread gave up its
//!   share (the value is complete then).
//! - An owner that may let borrowed data go (a `JoinHandle` dropped, a scope ending) first
//!   waits for the thread object, and cannot return or unwind before it is signalled: where
//!   waiting is impossible it stops the machine ([`fatal`]).

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};
use core::time::Duration;

use crate::error::{JoinErrorKind, SpawnError};
use crate::id::ThreadId;
use crate::irql::Irql;
use crate::kernel::event::RawEvent;
use crate::kernel::irql::{AtMostApc, AtMostDispatch, Passive};
use crate::kernel::routine::{Affinity, AffinityGuard, IoCreateSystemThread};
use crate::kernel::thread::{self, ThreadObject};
use crate::kernel::wait::{Timeout, WaitError, WaitIrql};
use crate::kernel::{live, pool};
use crate::status::NtStatus;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering, fence};

/// Largest closure (and closure value) a thread accepts, in bytes, on every spawn path.
///
/// `FnOnce` closures are called by value, so the start routine moves the closure out of its
/// pool context onto the new thread's 24 KiB kernel stack before calling it; the same holds for
/// the value it returns. Larger captures are refused at compile time: box them
/// (`let big = Box::new(data); SystemThread::spawn(move || use(&big))`).
///
/// The check is made when the spawn is instantiated (a post-monomorphization error, E0080):
///
/// ```compile_fail,E0080
/// let buffer = [0u8; 4096];
/// let _ = system_thread::SystemThread::spawn(move || buffer.len());
/// ```
///
/// Captures up to the limit are accepted, and boxing lifts it:
///
/// ```
/// let buffer = [1u8; system_thread::MAX_CLOSURE_SIZE - 8];
/// let large = Box::new([1u8; 16 * 1024]);
/// let sum = system_thread::SystemThread::spawn(move || buffer.len() + large.len())?.join().ok();
/// assert_eq!(sum, Some(2040 + 16384));
/// # Ok::<(), system_thread::SpawnError>(())
/// ```
pub const MAX_CLOSURE_SIZE: usize = 2048;

/// How far the thread got with its closure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Stage {
    /// The slot holds the closure; the thread has not started it.
    New,
    /// The closure is running (the only stage in which a join may be a self-join).
    Running,
    /// The slot holds the closure's value.
    Done,
    /// The thread dropped the closure without running it (the start gate cancelled it).
    Cancelled,
    /// A join moved the value out of the slot.
    Taken,
}

impl Stage {
    fn load(cell: &AtomicU8, order: Ordering) -> Self {
        match cell.load(order) {
            0 => Self::New,
            1 => Self::Running,
            2 => Self::Done,
            3 => Self::Cancelled,
            _ => Self::Taken,
        }
    }

    fn store(self, cell: &AtomicU8, order: Ordering) {
        cell.store(self as u8, order);
    }
}

/// What spawning needs besides the closure.
#[derive(Default)]
pub(crate) struct Options<'a> {
    /// Create with `IoCreateSystemThread` on this driver or device object.
    pub io: Option<(IoCreateSystemThread, NonNull<c_void>)>,
    /// Set by the spawner before the closure runs.
    pub priority: Option<i32>,
    /// Set by the spawner before the closure runs (UTF-16).
    pub name: Option<&'a [u16]>,
    /// Applied by the thread to itself around the closure.
    pub affinity: Option<Affinity>,
}

/// Per-thread state that lives in the packet, never moves, and is shared by the thread and
/// its owners.
pub(crate) trait Extra: Sync + Sized {
    /// What the closure is lent (the stop state, or nothing).
    type Lent: Sync;
    /// What the thread holds while its closure runs (an affinity to revert, or nothing).
    type Guard;

    /// Initializes `this` in place for a spawn with `options`.
    ///
    /// # Safety
    /// `this` is valid for writes and stays at this address until the packet is freed.
    unsafe fn init(this: *mut Self, options: &Options<'_>);

    /// What the closure borrows.
    fn lent(&self) -> &Self::Lent;

    /// On the new thread, before the closure: `false` drops the closure unrun.
    fn admit(&self, _: Passive) -> bool {
        true
    }

    /// On the new thread, right before the closure; the guard is dropped right after it.
    fn enter(&self, passive: Passive) -> Self::Guard;

    /// Spawning succeeded: let the thread proceed.
    fn start(&self, _: Passive) {}

    /// Spawning failed after the thread was created: make it finish as soon as possible.
    fn abandon(&self, _: Passive) {}
}

impl Extra for () {
    type Lent = ();
    type Guard = ();

    unsafe fn init(_: *mut Self, _: &Options<'_>) {}

    fn lent(&self) -> &Self::Lent {
        self
    }

    fn enter(&self, _: Passive) {}
}

/// A start gate in front of `E`, for threads that the spawner configures (name, priority)
/// before their closure may run, or that run with an affinity.
///
/// # Invariants
/// When `armed`, `gate` was initialized by [`RawEvent::init`]. The gate is opened exactly once,
/// by `start` or `abandon`; `cancelled` is written before it opens.
pub(crate) struct Gated<E> {
    armed: bool,
    cancelled: AtomicBool,
    gate: RawEvent,
    affinity: Option<Affinity>,
    inner: E,
}

impl<E> Gated<E> {
    fn open(&self, passive: Passive) {
        if self.armed {
            self.gate.set(passive.dispatch());
        }
    }
}

impl<E: Extra> Extra for Gated<E> {
    type Lent = E::Lent;
    type Guard = (Option<AffinityGuard>, E::Guard);

    unsafe fn init(this: *mut Self, options: &Options<'_>) {
        let armed = options.name.is_some() || options.priority.is_some();
        let armed_field: *mut bool = field!(this, Self, armed);
        let cancelled: *mut AtomicBool = field!(this, Self, cancelled);
        let affinity: *mut Option<Affinity> = field!(this, Self, affinity);
        // SAFETY: `this` is valid for writes (caller's contract); the fields are written one by
        // one because `inner` and `gate` are initialized in place.
        unsafe { armed_field.write(armed) };
        // SAFETY: as above.
        unsafe { cancelled.write(AtomicBool::new(false)) };
        // SAFETY: as above.
        unsafe { affinity.write(options.affinity) };
        if armed {
            let gate: *mut RawEvent = field!(this, Self, gate);
            // INVARIANT: an armed gate is initialized, at its final address.
            // SAFETY: the event field is valid for writes and never moves (caller's contract).
            unsafe { RawEvent::init(gate) };
        }
        // SAFETY: forwarded under the caller's contract.
        unsafe { E::init(field!(this, Self, inner), options) };
    }

    fn lent(&self) -> &Self::Lent {
        self.inner.lent()
    }

    fn admit(&self, passive: Passive) -> bool {
        if self.armed {
            // A non-alertable kernel wait without timeout returns once the gate is open;
            // retrying any other status keeps the closure behind the gate regardless.
            while self.gate.wait(passive.apc(), Timeout::Never).is_err() {}
        }
        !self.cancelled.load(Ordering::Acquire) && self.inner.admit(passive)
    }

    fn enter(&self, passive: Passive) -> Self::Guard {
        let affinity = self.affinity.as_ref().map(|a| a.enter(passive.dispatch()));
        (affinity, self.inner.enter(passive))
    }

    fn start(&self, passive: Passive) {
        self.inner.start(passive);
        self.open(passive);
    }

    fn abandon(&self, passive: Passive) {
        self.cancelled.store(true, Ordering::Release);
        self.inner.abandon(passive);
        self.open(passive);
    }
}

/// Bookkeeping shared by every packet, whatever its closure type.
///
/// # Invariants
/// - `refs` counts the owners (thread, handle, scope list) that may still touch the packet.
/// - `thread` and `id` are written by the spawner before any owner other than the thread
///   exists, and never change afterwards; the thread never reads them.
/// - `thread` is `Some` from the moment a handle or scope owns the packet, until a handle
///   detaches (only a `JoinHandle`, whose packet has no other owner but the thread, which never
///   reads the field) and takes it out. While it is `Some`, the thread counts as live.
pub(crate) struct Header {
    refs: AtomicUsize,
    stage: AtomicU8,
    /// A wait on the thread object succeeded: the thread has left driver code for good.
    exited: AtomicBool,
    thread: Option<ThreadObject>,
    id: ThreadId,
    /// The next packet in the owning scope's list.
    next: AtomicPtr<Header>,
    /// Drops what the packet holds and frees it (monomorphized per packet type).
    release: unsafe fn(NonNull<Header>),
}

/// Storage for the closure, then for its value (both at offset 0, which `repr(C)` guarantees).
#[repr(C)]
union Slot<F, T> {
    _closure: ManuallyDrop<F>,
    _value: ManuallyDrop<T>,
}

#[repr(C)]
struct Packet<E, F, T> {
    header: Header,
    extra: E,
    slot: UnsafeCell<Slot<F, T>>,
}

/// Field pointers of a packet, computed without dereferencing it: the thread and the spawner
/// touch disjoint fields while both run, so neither may form a reference to the whole packet.
struct Fields<E, F, T> {
    header: *mut Header,
    stage: *mut AtomicU8,
    extra: *mut E,
    closure: *mut F,
    value: *mut T,
}

impl<E, F, T> Packet<E, F, T> {
    fn fields(p: *mut Self) -> Fields<E, F, T> {
        let header: *mut Header = field!(p, Self, header);
        // The slot is an `UnsafeCell` (transparent) around a union whose fields are at 0.
        let slot: *mut u8 = field!(p, Self, slot);
        Fields {
            header,
            stage: field!(header, Header, stage),
            extra: field!(p, Self, extra),
            closure: slot.cast(),
            value: slot.cast(),
        }
    }
}

/// Stops the machine with `message`: a panic that cannot unwind (`extern "C"`), so no caller
/// frame is left while a thread may still use it. In a driver the panic handler bugchecks;
/// in host tests the process aborts.
#[cold]
#[inline(never)]
#[allow(clippy::panic, improper_ctypes_definitions)]
pub(crate) extern "C" fn fatal(message: fmt::Arguments<'_>) -> ! {
    panic!("{message}")
}

/// Gives up one owner's share; the last owner releases the packet.
///
/// # Safety
/// The caller owns one share of the packet at `header` and does not touch the packet again.
unsafe fn release_share(header: NonNull<Header>) {
    let refs: *mut AtomicUsize = field!(header.as_ptr(), Header, refs);
    // SAFETY: the caller's share keeps the packet alive until this decrement; no reference to
    // the counter outlives the call.
    if unsafe { (*refs).fetch_sub(1, Ordering::Release) } == 1 {
        // Everything the other owners did happens before the release below.
        fence(Ordering::Acquire);
        let field: *mut unsafe fn(NonNull<Header>) = field!(header.as_ptr(), Header, release);
        // SAFETY: the packet is alive (nobody else can free it now); `release` was written at
        // spawn and never changes.
        let release = unsafe { *field };
        // SAFETY: the last share is gone: nobody else can reach the packet.
        unsafe { release(header) };
    }
}

/// Drops what the packet holds and frees it.
///
/// # Safety
/// `header` heads a `Packet<E, F, T>` that no thread and no owner will touch again.
unsafe fn release<E: Extra, F, T>(header: NonNull<Header>) {
    let p = header.cast::<Packet<E, F, T>>().as_ptr();
    let fields = Packet::fields(p);
    // INVARIANT: the packet is ours alone (contract), its extra and header initialized.
    // Dropped after the closure or value below, also when that drop unwinds (host tests).
    let rest = ReleaseRest { header, extra: fields.extra };
    // SAFETY: the packet is ours alone (contract) and its header is initialized.
    let stage = Stage::load(unsafe { &*fields.stage }, Ordering::Relaxed);
    match stage {
        // SAFETY: stage New: the slot holds the closure, dropped once, here.
        Stage::New => unsafe { ptr::drop_in_place(fields.closure) },
        // SAFETY: stage Done: the slot holds the value, dropped once, here.
        Stage::Done => unsafe { ptr::drop_in_place(fields.value) },
        Stage::Running | Stage::Cancelled | Stage::Taken => {}
    }
    drop(rest);
}

/// The end of [`release`]: drops the packet's extra and its thread object, and frees the
/// block. A guard, so that a closure or value whose drop unwinds (possible in host tests; a
/// driver's panics abort) leaves no kernel object or pool block behind.
///
/// # Invariants
/// `header` heads a packet that no thread and no owner will touch again, whose `extra` (at
/// `extra`) and header are initialized and are dropped only here.
struct ReleaseRest<E> {
    header: NonNull<Header>,
    extra: *mut E,
}

impl<E> Drop for ReleaseRest<E> {
    fn drop(&mut self) {
        // SAFETY: `E` was initialized by spawn and is dropped once, here (invariant).
        unsafe { ptr::drop_in_place(self.extra) };
        // SAFETY: the header is initialized and ours alone (invariant); read once, then the
        // block is freed.
        let header_value = unsafe { self.header.read() };
        if let Some(object) = header_value.thread {
            drop(object);
            live::closed();
        }
        // SAFETY: the packet came from `pool::allocate` and is freed once, here.
        unsafe { pool::free(self.header.cast()) };
    }
}

/// Where a start routine found its thread above `PASSIVE_LEVEL`.
#[derive(Clone, Copy)]
enum NotPassive {
    /// On entry, before anything else.
    Entered,
    /// When the closure returned.
    Returned,
}

/// Stops the machine for a start routine that runs above `PASSIVE_LEVEL` ([`fatal`]), naming
/// the IRQL. Not generic and out of line: every start routine shares the messages' formatting.
#[cold]
#[inline(never)]
fn not_passive(at: NotPassive) -> ! {
    let irql = Irql::current();
    match at {
        NotPassive::Entered => fatal(format_args!(
            "system-thread: start routine entered at {irql}; system threads start at PASSIVE_LEVEL"
        )),
        NotPassive::Returned => fatal(format_args!(
            "system-thread: the thread's closure returned at {irql}; it must lower the IRQL to \
             PASSIVE_LEVEL before returning"
        )),
    }
}

/// The start routine handed to the kernel: exactly `PKSTART_ROUTINE`'s function type.
///
/// # Safety
/// `context` is a packet made by [`spawn`] for these type parameters, and this is its thread.
unsafe extern "C" fn start_routine<E, F, T>(context: *mut c_void)
where
    E: Extra,
    F: FnOnce(&E::Lent) -> T,
{
    let Ok(passive) = Passive::check() else { not_passive(NotPassive::Entered) };
    let p = context.cast::<Packet<E, F, T>>();
    let fields = Packet::fields(p);
    {
        // SAFETY: the thread's share keeps the packet alive until `release_share` below; the
        // thread touches only the stage, the counter, `E` and the slot.
        let stage = unsafe { &*fields.stage };
        // SAFETY: as above; `E` was initialized by spawn.
        let extra = unsafe { &*fields.extra };
        // SAFETY: the slot holds the closure (stage New); only this thread takes it, once.
        let f = unsafe { fields.closure.read() };
        if extra.admit(passive) {
            Stage::Running.store(stage, Ordering::Relaxed);
            let value = {
                let _guard = extra.enter(passive);
                f(extra.lent())
            };
            if Passive::check().is_err() {
                not_passive(NotPassive::Returned);
            }
            // SAFETY: the closure was moved out; the slot is free for the value.
            unsafe { fields.value.write(value) };
            Stage::Done.store(stage, Ordering::Release);
        } else {
            drop(f);
            Stage::Cancelled.store(stage, Ordering::Release);
        }
    }
    if let Some(header) = NonNull::new(fields.header) {
        // SAFETY: the thread owns one share and touches the packet no more.
        unsafe { release_share(header) };
    }
}

/// Creates a system thread that runs `f(extra.lent())`, and returns its handle's share and
/// what the closure is lent. With `scope`, the scope's list owns a share too.
///
/// # Safety
/// `F` and `T` may borrow data that is not `'static`: the caller ensures that the thread object
/// is waited for before anything they borrow goes away (a scope's list does this).
pub(crate) unsafe fn spawn<E, F, T>(
    passive: Passive,
    options: &Options<'_>,
    scope: Option<&ScopeList>,
    f: F,
) -> Result<(JoinInner<T>, NonNull<E::Lent>), SpawnError>
where
    E: Extra,
    F: FnOnce(&E::Lent) -> T + Send,
    T: Send,
{
    const {
        assert!(
            size_of::<F>() <= MAX_CLOSURE_SIZE,
            "system-thread: the closure captures more than MAX_CLOSURE_SIZE (2048) bytes, which \
             would be copied onto the 24 KiB kernel stack; box the large captures"
        );
        assert!(
            size_of::<T>() <= MAX_CLOSURE_SIZE,
            "system-thread: the closure returns a value larger than MAX_CLOSURE_SIZE (2048) \
             bytes; return a Box instead"
        );
        assert!(
            align_of::<Packet<E, F, T>>() <= pool::ALIGNMENT,
            "system-thread: closures and values aligned to more than 16 bytes are not supported"
        );
    }
    let block = pool::allocate(passive.dispatch(), size_of::<Packet<E, F, T>>())
        .ok_or(SpawnError::OutOfMemory)?;
    let packet = block.cast::<Packet<E, F, T>>();
    let fields = Packet::fields(packet.as_ptr());
    let header = Header {
        // INVARIANT: the thread and the spawner (later: the handle).
        refs: AtomicUsize::new(2),
        stage: AtomicU8::new(Stage::New as u8),
        exited: AtomicBool::new(false),
        thread: None,
        id: ThreadId(0),
        next: AtomicPtr::new(ptr::null_mut()),
        release: release::<E, F, T>,
    };
    // SAFETY: a fresh allocation of the packet's size and alignment (const-checked).
    unsafe { fields.header.write(header) };
    // SAFETY: the field is valid for writes and stays in place until `release` frees it.
    unsafe { E::init(fields.extra, options) };
    // SAFETY: the slot is valid for writes; the start routine or `release` takes it back.
    unsafe { fields.closure.write(f) };
    // SAFETY: `extra` was initialized above and lives as long as the packet, which the
    // spawner's share keeps alive for this function.
    let extra = unsafe { &*fields.extra };

    // SAFETY: the packet is complete; `start_routine` is its start routine; an I/O object is
    // a driver or device object (`IoObject`'s contract).
    let created = unsafe {
        thread::create(passive, options.io, start_routine::<E, F, T>, packet.as_ptr().cast())
    };
    let (handle, id) = match created {
        Ok(created) => created,
        Err(status) => {
            // SAFETY: creation failed, so the start routine never runs: the packet, still in
            // stage New, is ours alone.
            unsafe { release::<E, F, T>(packet.cast()) };
            return Err(SpawnError::Create(status));
        }
    };
    let object = match handle.reference(passive) {
        Ok(object) => object,
        Err(status) => {
            extra.abandon(passive);
            // The handle is the only way left to learn that the thread has exited.
            handle.wait_exit(passive);
            drop(handle);
            // SAFETY: the thread has exited, so it gave up its share; ours is the last.
            unsafe { release_share(packet.cast()) };
            return Err(SpawnError::Reference(status));
        }
    };
    if let Some(priority) = options.priority {
        object.set_priority(passive.dispatch(), priority);
    }
    let named = match options.name.map(|name| handle.set_name(passive, name)) {
        // Kernels before Windows 10 1607 have no `ThreadNameInformation`: a name is
        // best-effort there, not a reason to fail the spawn.
        None | Some(NtStatus::INVALID_INFO_CLASS) => NtStatus::SUCCESS,
        Some(status) => status,
    };
    drop(handle);
    let thread_field: *mut Option<ThreadObject> = field!(fields.header, Header, thread);
    let id_field: *mut ThreadId = field!(fields.header, Header, id);
    // SAFETY: the thread never touches these fields, and no other owner exists yet.
    unsafe { thread_field.write(Some(object)) };
    // SAFETY: as above.
    unsafe { id_field.write(id) };
    live::spawned();
    // INVARIANT: the header is complete; this share is the spawner's.
    let inner = JoinInner {
        header: packet.cast(),
        // SAFETY: a field of the non-null packet.
        value: unsafe { NonNull::new_unchecked(fields.value) },
        _owns: PhantomData,
    };
    if !named.is_success() {
        extra.abandon(passive);
        inner.wait_or_die();
        return Err(SpawnError::Name(named));
    }
    extra.start(passive);
    if let Some(list) = scope {
        list.push(&inner);
    }
    // SAFETY: a field of the non-null packet; `E::lent` borrows from it.
    let lent = NonNull::from(extra.lent());
    Ok((inner, lent))
}

/// One owner's share of a thread's packet, typed by the closure's value.
///
/// # Invariants
/// `header` heads a live packet whose thread object is referenced (`Header::thread` is `Some`)
/// and whose value slot is at `value`; this value owns one share of it. At most one
/// `JoinInner` exists per packet (the handle's), so only it takes the value.
pub(crate) struct JoinInner<T> {
    header: NonNull<Header>,
    value: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: the share moves a `T` out of the packet on join: sending it requires `T: Send`; the
// header is only mutated through atomics.
unsafe impl<T: Send> Send for JoinInner<T> {}
// SAFETY: `&JoinInner` never touches the value, only atomics and the thread object.
unsafe impl<T> Sync for JoinInner<T> {}

/// Waiting for the thread, for every owner (a handle's share or the scope's list). Not generic:
/// one copy serves every closure and value type.
impl Header {
    /// The referenced thread object.
    fn object(&self) -> &ThreadObject {
        match &self.thread {
            Some(object) => object,
            // Only owners wait, and an owner's header has its object (type invariant): the one
            // owner that takes it out, a detaching handle, is consumed doing so.
            None => fatal(format_args!("system-thread: a thread handle without a thread object")),
        }
    }

    /// Waits until the thread has exited: `Ok` once its object is signalled.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower; a zero timeout (a poll) also at `DISPATCH_LEVEL`.
    fn wait(&self, timeout: Option<Duration>) -> Result<(), JoinErrorKind> {
        self.wait_inlined(timeout)
    }

    /// [`wait`](Self::wait), inlined into [`JoinInner::join`], the path of every join (about 13
    /// instructions less per join, counted by `./x icount`); the other callers share `wait`.
    ///
    /// The IRQL is checked first, also when an earlier wait saw the exit: what follows a join
    /// (giving up the share, which may dereference the thread object, free the pool block and
    /// drop a value) needs the level the join is documented for.
    #[inline]
    fn wait_inlined(&self, timeout: Option<Duration>) -> Result<(), JoinErrorKind> {
        let irql = if timeout == Some(Duration::ZERO) {
            WaitIrql::Poll(AtMostDispatch::check().map_err(JoinErrorKind::Irql)?)
        } else {
            let apc = AtMostApc::check().map_err(JoinErrorKind::Irql)?;
            WaitIrql::Block(apc, timeout.map_or(Timeout::Never, Timeout::After))
        };
        if self.exited.load(Ordering::Acquire) {
            return Ok(());
        }
        let waited = match irql {
            WaitIrql::Poll(dispatch) => self.object().poll(dispatch),
            WaitIrql::Block(apc, timeout) => {
                if Stage::load(&self.stage, Ordering::Acquire) == Stage::Running
                    && thread::current_id() == self.id
                {
                    return Err(JoinErrorKind::SelfJoin);
                }
                self.object().wait(apc, timeout)
            }
        };
        match waited {
            Ok(()) => {
                self.exited.store(true, Ordering::Release);
                Ok(())
            }
            Err(WaitError::TimedOut) => Err(JoinErrorKind::TimedOut),
            Err(WaitError::Failed(status)) => Err(JoinErrorKind::Wait(status)),
        }
    }

    /// The thread object, for waits on several objects; it stays alive while `self` does.
    pub(crate) fn object_ptr(&self) -> *mut c_void {
        self.object().as_ptr()
    }

    /// A wait on several objects saw the thread object signalled: the thread has exited.
    pub(crate) fn observed_exit(&self) {
        self.exited.store(true, Ordering::Release);
    }

    /// Waits without a timeout, retrying failed waits, for the paths that must not go on before
    /// the thread has exited. Where waiting is impossible (above `APC_LEVEL`, or on the thread
    /// itself) it stops the machine instead of returning or unwinding.
    fn wait_or_die(&self) {
        loop {
            match self.wait(None) {
                Ok(()) => return,
                Err(JoinErrorKind::Irql(e)) => fatal(format_args!(
                    "system-thread: a thread must be joined at APC_LEVEL or lower: {e}"
                )),
                Err(JoinErrorKind::SelfJoin) => fatal(format_args!(
                    "system-thread: a thread's join handle was dropped on the thread itself"
                )),
                // A non-alertable kernel-mode wait without timeout has no other outcome in a
                // real kernel; retrying keeps the protocol if one ever occurs.
                Err(JoinErrorKind::TimedOut | JoinErrorKind::Wait(_)) => {}
            }
        }
    }
}

impl<T> JoinInner<T> {
    /// The thread object, for waits on several objects; it stays alive while `self` does.
    pub(crate) fn object_ptr(&self) -> *mut c_void {
        self.header().object_ptr()
    }

    /// A wait on several objects saw the thread object signalled: the thread has exited.
    pub(crate) fn observed_exit(&self) {
        self.header().observed_exit();
    }

    fn header(&self) -> &Header {
        // SAFETY: the share keeps the packet alive (type invariant); after spawn the header is
        // only mutated through atomics.
        unsafe { self.header.as_ref() }
    }

    /// The kernel's id of the thread.
    pub(crate) fn id(&self) -> ThreadId {
        self.header().id
    }

    /// Whether the thread has exited (a zero-timeout wait on its object). Above
    /// `DISPATCH_LEVEL`, where no wait is possible, whether an earlier wait saw it exit.
    pub(crate) fn is_finished(&self) -> bool {
        let header = self.header();
        header.exited.load(Ordering::Acquire) || header.wait(Some(Duration::ZERO)).is_ok()
    }

    /// Waits without a timeout, retrying failed waits, for the paths that must not go on before
    /// the thread has exited; where waiting is impossible it stops the machine
    /// ([`Header::wait_or_die`]).
    pub(crate) fn wait_or_die(&self) {
        self.header().wait_or_die();
    }

    /// Waits for the thread and moves its value out; on failure the share comes back.
    pub(crate) fn join(self, timeout: Option<Duration>) -> Result<T, (JoinErrorKind, Self)> {
        if let Err(kind) = self.header().wait_inlined(timeout) {
            return Err((kind, self));
        }
        let stage = &self.header().stage;
        if Stage::load(stage, Ordering::Acquire) != Stage::Done {
            // The object was signalled but the thread stored no value: only an emulator that
            // does not run threads can do this. Keep the share; dropping it is safe.
            return Err((JoinErrorKind::Wait(NtStatus::UNSUCCESSFUL), self));
        }
        // SAFETY: stage Done and the thread has exited: the slot holds a `T` that only this
        // share (the one `JoinInner`) takes, once: the stage becomes Taken before the share is
        // released, and the last owner drops only a Done value.
        let value = unsafe { self.value.read() };
        Stage::Taken.store(stage, Ordering::Relaxed);
        Ok(value)
    }

    /// Gives up the share and the thread object reference without waiting for the thread, and
    /// stops counting it as live: only for a `JoinHandle`'s thread whose driver image the
    /// kernel keeps loaded until it exits. The proof: the share's release may drop the value of
    /// a finished thread here, which may wait.
    pub(crate) fn detach(self, _: AtMostApc) {
        let field: *mut Option<ThreadObject> = field!(self.header.as_ptr(), Header, thread);
        // SAFETY: the packet is alive (this share); a `JoinHandle`'s packet has no other owner
        // than its thread, which never touches this field, and no reference to the header is
        // live here.
        let object = unsafe { field.replace(None) };
        if let Some(object) = object {
            drop(object);
            live::closed();
        }
    }
}

impl<T> Drop for JoinInner<T> {
    fn drop(&mut self) {
        // SAFETY: this value owns one share (type invariant) and is gone after this.
        unsafe { release_share(self.header) };
    }
}

/// The threads of a scope, each with a share owned by the list. Its owner calls
/// [`join_all`](Self::join_all) before it drops the list.
///
/// # Invariants
/// Every header reachable from `head` (through `Header::next`) heads a live packet of which the
/// list owns one share.
pub(crate) struct ScopeList {
    head: AtomicPtr<Header>,
}

impl ScopeList {
    pub(crate) fn new() -> Self {
        Self { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Adds a share of `inner`'s packet to the list.
    fn push(&self, inner: &JoinInner<impl Sized>) {
        let header = inner.header();
        // INVARIANT: the new share is counted before the packet becomes reachable.
        header.refs.fetch_add(1, Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            header.next.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                inner.header.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Waits for every thread of the scope, including those spawned meanwhile, then gives up
    /// the list's shares (dropping unjoined values); repeats while dropped values spawned more.
    /// It never returns or unwinds before every thread has exited.
    pub(crate) fn join_all(&self) {
        loop {
            // Phase 1: wait for every thread, collecting the waited ones in `waited`.
            let mut waited: *mut Header = ptr::null_mut();
            loop {
                let chain = self.head.swap(ptr::null_mut(), Ordering::Acquire);
                let Some(first) = NonNull::new(chain) else { break };
                let mut cursor = Some(first);
                let mut last = first;
                while let Some(header) = cursor {
                    // SAFETY: the list owns a share of this packet (type invariant).
                    let header_ref = unsafe { header.as_ref() };
                    header_ref.wait_or_die();
                    last = header;
                    cursor = NonNull::new(header_ref.next.load(Ordering::Relaxed));
                }
                // SAFETY: as above.
                unsafe { last.as_ref() }.next.store(waited, Ordering::Relaxed);
                waited = chain;
            }
            if waited.is_null() {
                return;
            }
            // Phase 2: every thread known to the list has exited; give up the shares.
            let mut releasing = Releasing { list: self, next: NonNull::new(waited) };
            releasing.release_all();
            // Normal end: no share is left, and the loop waits for whatever the dropped values
            // spawned. (Forgetting the guard leaks nothing: it holds a borrow and a pointer.)
            core::mem::forget(releasing);
        }
    }
}

/// Phase 2 of [`ScopeList::join_all`]: the shares still to give up, a chain of waited headers
/// linked by `next`.
///
/// Giving up a share may drop a thread's unjoined value, and that drop may spawn threads in
/// the scope and then unwind (host tests; a driver's panics abort). Dropped during that unwind,
/// the guard gives up the remaining shares and joins every thread the scope still has, so the
/// scope never unwinds while one of its threads runs. (A second unwind from there aborts.)
///
/// # Invariants
/// The list owns one share of every packet in the chain from `next`, and each of those
/// threads has exited.
struct Releasing<'a> {
    list: &'a ScopeList,
    next: Option<NonNull<Header>>,
}

impl Releasing<'_> {
    fn release_all(&mut self) {
        while let Some(header) = self.next {
            // INVARIANT: the rest of the chain, still owned by the list; this header's share
            // is given up next, so it leaves the chain first.
            // SAFETY: the list's share keeps the packet alive until released below.
            self.next = NonNull::new(unsafe { header.as_ref() }.next.load(Ordering::Relaxed));
            // SAFETY: the list owns this share and drops it once, here.
            unsafe { release_share(header) };
        }
    }
}

impl Drop for Releasing<'_> {
    /// Reached only when a value's drop unwound out of `release_all` (the normal path forgets
    /// the guard).
    fn drop(&mut self) {
        self.release_all();
        self.list.join_all();
    }
}
