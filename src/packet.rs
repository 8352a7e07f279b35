//! The one unsafe core: the thread context ("packet"), the start routine ("trampoline") and the
//! raw operations on a spawned thread. `SystemThread::spawn`, `Builder`, `scope` and the
//! stoppable threads are safe wrappers around [`spawn_unchecked`] and [`RawThread`].
//!
//! # Invariants
//! - One pool allocation per thread holds a [`Packet`]: a [`Header`], the in-place state `E`
//!   (stop flag, start gate) and a slot that first holds the closure `F`, then its value `T`.
//! - `Header::refs` counts the two owners of the packet: the thread (until its trampoline gives
//!   up its share as its very last access) and the spawner's side (join handle or scope). The
//!   owner that drops the count to zero drops what the slot holds and frees the packet.
//! - The spawner's side holds one reference on the thread object and waits on it before it
//!   reads the slot: the object is signalled only after the thread has left driver code.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::{ManuallyDrop, offset_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use crate::error::{JoinErrorKind, NtStatus, SpawnError};
use crate::irql::{self, Irql};
use crate::sys;
use crate::thread::ThreadId;
use crate::{pool, routine};

/// Largest closure (and closure value) a thread accepts, in bytes.
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

/// The packet has not been started by its thread yet.
const NEW: u8 = 0;
/// The closure is running (the only state in which a join may be a self-join).
const RUNNING: u8 = 1;
/// The slot holds the closure's value.
const DONE: u8 = 2;
/// The thread dropped the closure without running it.
const CANCELLED: u8 = 3;
/// The value was moved out of the slot.
const TAKEN: u8 = 4;

/// In-place per-thread state that lives in the packet, never moves, and is shared by the
/// spawner's side and the thread.
pub(crate) trait Extra: Sync + Sized {
    /// Initializes `this` in place for a spawn with `options`.
    ///
    /// # Safety
    /// `this` is valid for writes and stays at this address until the packet is freed.
    unsafe fn init(this: *mut Self, options: &Options<'_>);

    /// Called on the new thread before the closure; `false` drops the closure unrun.
    fn admit(&self) -> bool {
        true
    }

    /// Spawning succeeded: let the thread proceed.
    fn start(&self) {}

    /// Spawning failed after the thread was created: make it finish as soon as possible.
    fn abandon(&self) {}
}

impl Extra for () {
    unsafe fn init(_: *mut Self, _: &Options<'_>) {}
}

/// Bookkeeping shared by every packet, whatever its closure type.
pub(crate) struct Header {
    state: AtomicU8,
    refs: AtomicU8,
    /// The referenced thread object (set by spawn before the handle exists).
    thread: *mut c_void,
    id: ThreadId,
    /// Link of the owning scope's list of threads (see `scope`).
    pub(crate) next: *mut Header,
    /// Drops what the slot and `E` hold and frees the packet (monomorphized per packet type).
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

/// Field pointers of a packet, computed without dereferencing it.
struct Fields<E, F, T> {
    state: *mut AtomicU8,
    refs: *mut AtomicU8,
    thread: *mut *mut c_void,
    id: *mut ThreadId,
    extra: *mut E,
    closure: *mut F,
    value: *mut T,
}

impl<E, F, T> Packet<E, F, T> {
    fn fields(p: *mut Self) -> Fields<E, F, T> {
        let header = offset_of!(Self, header);
        let slot = p.wrapping_byte_add(offset_of!(Self, slot));
        Fields {
            state: p.wrapping_byte_add(header + offset_of!(Header, state)).cast(),
            refs: p.wrapping_byte_add(header + offset_of!(Header, refs)).cast(),
            thread: p.wrapping_byte_add(header + offset_of!(Header, thread)).cast(),
            id: p.wrapping_byte_add(header + offset_of!(Header, id)).cast(),
            extra: p.wrapping_byte_add(offset_of!(Self, extra)).cast(),
            // The slot is an `UnsafeCell` (transparent) around a union whose fields are at 0.
            closure: slot.cast(),
            value: slot.cast(),
        }
    }
}

/// What spawning needs besides the closure.
#[derive(Default)]
pub(crate) struct Options<'a> {
    /// Create with `IoCreateSystemThread` on this driver or device object.
    pub io_object: Option<NonNull<c_void>>,
    pub priority: Option<i32>,
    /// The thread's name, UTF-16.
    pub name: Option<&'a [u16]>,
}

/// A spawned thread as the spawner's side sees it.
pub(crate) struct Spawned<E, T> {
    pub raw: RawThread,
    pub value: NonNull<T>,
    pub extra: NonNull<E>,
}

/// Creates a system thread that runs `f(&extra)`.
///
/// # Safety
/// `F` and `T` may borrow data that is not `'static`: the caller must ensure the thread is
/// joined (its object signalled) before anything they borrow goes away.
pub(crate) unsafe fn spawn_unchecked<E, F, T>(
    options: &Options<'_>,
    f: F,
) -> Result<Spawned<E, T>, SpawnError>
where
    E: Extra,
    F: FnOnce(&E) -> T + Send,
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
    irql::require(Irql::PASSIVE).map_err(SpawnError::Irql)?;
    let io_create = match options.io_object {
        Some(io) => Some((routine::io_create_system_thread()?, io)),
        None => None,
    };
    let packet = pool::allocate(size_of::<Packet<E, F, T>>())
        .ok_or(SpawnError::OutOfMemory)?
        .cast::<Packet<E, F, T>>();
    let fields = Packet::fields(packet.as_ptr());
    let header = Header {
        state: AtomicU8::new(NEW),
        refs: AtomicU8::new(2),
        thread: ptr::null_mut(),
        id: ThreadId(0),
        next: ptr::null_mut(),
        release: release::<E, F, T>,
    };
    // SAFETY: a fresh allocation of the packet's size and alignment (const-checked).
    unsafe { packet.cast::<Header>().write(header) };
    // SAFETY: the field is valid for writes and stays in place until `release` frees it.
    unsafe { E::init(fields.extra, options) };
    // SAFETY: the slot is valid for writes; the trampoline or `release` takes the closure back.
    unsafe { fields.closure.write(f) };
    // SAFETY: `extra` was initialized above and lives as long as the packet, which outlives
    // this function's use of it (the thread only gives up its share after exiting or detaching).
    let extra = unsafe { &*fields.extra };

    let (handle, id) = match create::<E, F, T>(io_create, packet.as_ptr().cast()) {
        Ok(created) => created,
        Err(status) => {
            // SAFETY: creation failed, so the start routine never runs: the packet, still in
            // state NEW, is ours alone.
            unsafe { release::<E, F, T>(packet.cast()) };
            return Err(SpawnError::Create(status));
        }
    };

    let mut object: sys::PVOID = ptr::null_mut();
    // SAFETY: `handle` is the kernel handle just returned; `object` is a local out-pointer. A
    // NULL object type skips the type check (the handle is known to be a thread).
    let status = NtStatus(unsafe {
        sys::ObReferenceObjectByHandle(
            handle,
            sys::THREAD_ALL_ACCESS,
            ptr::null_mut(),
            sys::KERNEL_MODE,
            &raw mut object,
            ptr::null_mut(),
        )
    });
    if !status.is_success() {
        extra.abandon();
        // The handle is the only way left to learn that the thread has exited.
        // SAFETY: `handle` is open; a NULL timeout waits until the thread object is signalled.
        while unsafe { sys::ZwWaitForSingleObject(handle, 0, ptr::null_mut()) }
            != sys::STATUS_SUCCESS
        {}
        close_handle(handle);
        // SAFETY: the thread has exited (its object is signalled), so its share is given up.
        unsafe { release::<E, F, T>(packet.cast()) };
        return Err(SpawnError::Reference(status));
    }
    // SAFETY: the thread never touches these fields; the spawner's side is not shared yet.
    unsafe { fields.thread.write(object) };
    // SAFETY: as above.
    unsafe { fields.id.write(id) };
    let raw = RawThread { header: packet.cast() };

    if let Some(priority) = options.priority {
        // SAFETY: `object` is a referenced thread object; the priority was range-checked by
        // the builder.
        let _previous = unsafe { sys::KeSetPriorityThread(object.cast(), priority) };
    }
    if let Some(name) = options.name {
        let status = set_name(handle, name);
        if !status.is_success() {
            extra.abandon();
            close_handle(handle);
            raw.wait_forever();
            raw.close();
            return Err(SpawnError::Name(status));
        }
    }
    close_handle(handle);
    extra.start();
    Ok(Spawned {
        raw,
        // SAFETY: a field of the non-null packet.
        value: unsafe { NonNull::new_unchecked(fields.value) },
        // SAFETY: a field of the non-null packet.
        extra: unsafe { NonNull::new_unchecked(fields.extra) },
    })
}

/// `PsCreateSystemThread` (or `IoCreateSystemThread`) with the packet as start context:
/// returns the new thread's handle and id.
fn create<E: Extra, F: FnOnce(&E) -> T, T>(
    io_create: Option<(sys::IoCreateSystemThreadFn, NonNull<c_void>)>,
    context: sys::PVOID,
) -> Result<(sys::HANDLE, ThreadId), NtStatus> {
    let mut handle: sys::HANDLE = ptr::null_mut();
    let mut client =
        sys::CLIENT_ID { UniqueProcess: ptr::null_mut(), UniqueThread: ptr::null_mut() };
    let mut attributes = sys::OBJECT_ATTRIBUTES {
        Length: u32_size_of::<sys::OBJECT_ATTRIBUTES>(),
        RootDirectory: ptr::null_mut(),
        ObjectName: ptr::null_mut(),
        Attributes: sys::OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    };
    let start: unsafe extern "C" fn(sys::PVOID) = trampoline::<E, F, T>;
    let status = match io_create {
        // SAFETY: the routine was resolved by name with this signature; the I/O object is a
        // driver or device object (`IoObject`'s contract); the out-pointers are locals; the
        // context is the packet the trampoline expects.
        Some((create, io)) => unsafe {
            create(
                io.as_ptr(),
                &raw mut handle,
                sys::THREAD_ALL_ACCESS,
                &raw mut attributes,
                ptr::null_mut(),
                &raw mut client,
                Some(start),
                context,
            )
        },
        // SAFETY: as above; a NULL process handle selects the system process, and
        // OBJ_KERNEL_HANDLE keeps the handle out of any user process's table.
        None => unsafe {
            sys::PsCreateSystemThread(
                &raw mut handle,
                sys::THREAD_ALL_ACCESS,
                &raw mut attributes,
                ptr::null_mut(),
                &raw mut client,
                Some(start),
                context,
            )
        },
    };
    let status = NtStatus(status);
    if status.is_success() {
        Ok((handle, ThreadId(client.UniqueThread.addr())))
    } else {
        Err(status)
    }
}

/// Closes a kernel handle this crate owns. `ZwClose` cannot fail on such a handle, so its
/// status carries no information.
fn close_handle(handle: sys::HANDLE) {
    // SAFETY: callers pass an open kernel handle they own and never use it again.
    let _ = unsafe { sys::ZwClose(handle) };
}

/// `size_of::<S>()` as the `ULONG` the kernel's structure lengths use.
const fn u32_size_of<S>() -> u32 {
    const { assert!(size_of::<S>() <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation)] // asserted above
    let size = size_of::<S>() as u32;
    size
}

/// Sets the thread name through its handle (`ThreadNameInformation`, Windows 10 1607+).
fn set_name(handle: sys::HANDLE, name: &[u16]) -> NtStatus {
    let Ok(bytes) = u16::try_from(name.len() * 2) else {
        return NtStatus::INVALID_PARAMETER;
    };
    let mut string = sys::UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: name.as_ptr().cast_mut(),
    };
    // SAFETY: `handle` is an open thread handle; the string and its buffer outlive the call,
    // which only reads them.
    NtStatus(unsafe {
        sys::ZwSetInformationThread(
            handle,
            sys::THREAD_NAME_INFORMATION,
            (&raw mut string).cast(),
            u32_size_of::<sys::UNICODE_STRING>(),
        )
    })
}

/// The start routine handed to the kernel: exactly `PKSTART_ROUTINE`'s function type.
///
/// # Safety
/// `context` is a packet made by `spawn_unchecked::<E, F, T>`, and this is its thread.
unsafe extern "C" fn trampoline<E, F, T>(context: *mut c_void)
where
    E: Extra,
    F: FnOnce(&E) -> T,
{
    let irql = Irql::current();
    assert!(
        irql == Irql::PASSIVE,
        "system-thread: start routine entered at {irql}; system threads start at PASSIVE_LEVEL"
    );
    let p = context.cast::<Packet<E, F, T>>();
    // The thread touches only the atomics of the header (the spawner fills in the rest).
    let fields = Packet::fields(p);
    // SAFETY: the packet stays allocated until this thread gives up its share below.
    let state = unsafe { &*fields.state };
    // SAFETY: as above.
    let refs = unsafe { &*fields.refs };
    // SAFETY: as above; `extra` was initialized by spawn.
    let extra = unsafe { &*fields.extra };
    // SAFETY: the slot holds the closure (state NEW); only this thread takes it, once.
    let f = unsafe { fields.closure.read() };
    if extra.admit() {
        state.store(RUNNING, Ordering::Relaxed);
        let value = f(extra);
        let irql = Irql::current();
        assert!(
            irql == Irql::PASSIVE,
            "system-thread: the thread's closure returned at {irql}; it must lower the IRQL to \
             PASSIVE_LEVEL before returning"
        );
        // SAFETY: the closure was moved out; the slot is free for the value.
        unsafe { fields.value.write(value) };
        state.store(DONE, Ordering::Release);
    } else {
        drop(f);
        state.store(CANCELLED, Ordering::Release);
    }
    // Give up this thread's share: its last access to the packet, unless it is the last owner.
    if refs.fetch_sub(1, Ordering::AcqRel) == 1
        && let Some(packet) = NonNull::new(p)
    {
        // SAFETY: the spawner's side already gave up its share (detached): nobody else can
        // reach the packet.
        unsafe { release::<E, F, T>(packet.cast()) };
    }
}

/// Drops what the packet holds and frees it.
///
/// # Safety
/// `header` heads a `Packet<E, F, T>` that no thread and no handle will touch again.
unsafe fn release<E: Extra, F, T>(header: NonNull<Header>) {
    let fields = Packet::<E, F, T>::fields(header.as_ptr().cast());
    // SAFETY: the packet is ours alone (contract) and initialized.
    let state = unsafe { &*fields.state }.load(Ordering::Acquire);
    match state {
        // SAFETY: state NEW: the slot holds the closure, dropped once, here.
        NEW => unsafe { ptr::drop_in_place(fields.closure) },
        // SAFETY: state DONE: the slot holds the value, dropped once, here.
        DONE => unsafe { ptr::drop_in_place(fields.value) },
        _ => {}
    }
    // SAFETY: `E` was initialized by spawn and is dropped once, here.
    unsafe { ptr::drop_in_place(fields.extra) };
    // SAFETY: the packet came from `pool::allocate` and is freed once, here.
    unsafe { pool::free(header.cast()) };
}

/// The spawner's side of a thread: one reference on the thread object and a share of the
/// packet. Type-erased over the closure; `T` is supplied by the typed handles.
pub(crate) struct RawThread {
    header: NonNull<Header>,
}

// SAFETY: the header is only mutated through atomics after spawn; the thread object reference
// may be used and dropped from any thread.
unsafe impl Send for RawThread {}
// SAFETY: `&RawThread` only reads immutable fields and atomics.
unsafe impl Sync for RawThread {}

impl RawThread {
    fn header(&self) -> &Header {
        // SAFETY: the packet lives as long as this share (type invariant).
        unsafe { self.header.as_ref() }
    }

    pub(crate) fn id(&self) -> ThreadId {
        self.header().id
    }

    /// Rebuilds the spawner's side from a header (as kept in a scope's list).
    ///
    /// # Safety
    /// `header` came from [`RawThread::into_header`], and [`close`](Self::close) is called at
    /// most once for it across all rebuilt copies (copies that are never closed are views).
    pub(crate) unsafe fn from_header(header: NonNull<Header>) -> Self {
        Self { header }
    }

    pub(crate) fn into_header(self) -> NonNull<Header> {
        self.header
    }

    /// Waits until the thread has exited: `Ok` once its object is signalled.
    ///
    /// # IRQL
    /// `APC_LEVEL` or lower; a zero timeout (a poll) also at `DISPATCH_LEVEL`.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<(), JoinErrorKind> {
        let poll = timeout == Some(Duration::ZERO);
        irql::require(if poll { Irql::DISPATCH } else { Irql::APC })
            .map_err(JoinErrorKind::Irql)?;
        let header = self.header();
        if !poll
            && header.state.load(Ordering::Acquire) == RUNNING
            && crate::thread::current_id() == header.id
        {
            return Err(JoinErrorKind::SelfJoin);
        }
        let mut interval =
            sys::LARGE_INTEGER { QuadPart: relative_100ns(timeout.unwrap_or_default()) };
        let interval_ptr = if timeout.is_some() { &raw mut interval } else { ptr::null_mut() };
        // SAFETY: `thread` is a referenced thread object; the interval is a live local.
        let status = unsafe {
            sys::KeWaitForSingleObject(
                header.thread,
                sys::EXECUTIVE,
                sys::KERNEL_MODE,
                0,
                interval_ptr,
            )
        };
        match status {
            sys::STATUS_SUCCESS => Ok(()),
            sys::STATUS_TIMEOUT => Err(JoinErrorKind::TimedOut),
            other => Err(JoinErrorKind::Wait(NtStatus(other))),
        }
    }

    /// Waits without a timeout, retrying a failed wait, for paths that must not return before
    /// the thread has exited.
    ///
    /// # Panics
    /// At an IRQL above `APC_LEVEL`, or on the thread itself: waiting there would hang or
    /// bugcheck (documented on the public `Drop` implementations).
    pub(crate) fn wait_forever(&self) {
        loop {
            match self.wait(None) {
                Ok(()) => return,
                Err(JoinErrorKind::Irql(e)) => irql_violation(e),
                Err(JoinErrorKind::SelfJoin) => self_join_violation(),
                // A non-alertable kernel-mode wait without timeout has no other outcome in a
                // real kernel; retrying keeps the invariant if one ever occurs.
                Err(JoinErrorKind::TimedOut | JoinErrorKind::Wait(_)) => {}
            }
        }
    }

    /// Moves the value out of a finished thread.
    ///
    /// # Safety
    /// The thread has exited (a wait succeeded) and `value` is this packet's value slot for
    /// the closure's return type `T`.
    pub(crate) unsafe fn take<T>(&self, value: NonNull<T>) -> Option<T> {
        let state = &self.header().state;
        if state.load(Ordering::Acquire) != DONE {
            return None;
        }
        state.store(TAKEN, Ordering::Relaxed);
        // SAFETY: state DONE: the slot holds an initialized `T`, read once (now TAKEN).
        Some(unsafe { value.read() })
    }

    /// Whether a join already waited for the thread and took its value.
    pub(crate) fn is_joined(&self) -> bool {
        self.header().state.load(Ordering::Acquire) == TAKEN
    }

    /// Drops the thread object reference and this side's share of the packet (freeing it when
    /// the thread has given up its own). Used after a join, and by `detach`.
    pub(crate) fn close(self) {
        let header = self.header();
        // SAFETY: this side owns one reference on the thread object, dropped once, here.
        let _ = unsafe { sys::ObfDereferenceObject(header.thread) };
        if header.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the thread gave up its share: the packet is ours alone.
            unsafe { (header.release)(self.header) };
        }
    }

    /// Whether the thread has exited (a zero-timeout wait on its object).
    pub(crate) fn is_finished(&self) -> bool {
        self.wait(Some(Duration::ZERO)).is_ok()
    }
}

/// A relative timeout in the kernel's form: negative, in 100 ns units, rounded up.
pub(crate) fn relative_100ns(duration: Duration) -> i64 {
    let ticks = duration.as_nanos().div_ceil(100);
    -i64::try_from(ticks).unwrap_or(i64::MAX)
}

#[allow(clippy::panic)]
#[cold]
fn irql_violation(e: crate::IrqlError) -> ! {
    panic!("system-thread: a thread must be joined at APC_LEVEL or lower: {e}")
}

#[allow(clippy::panic)]
#[cold]
fn self_join_violation() -> ! {
    panic!("system-thread: a thread's join handle was dropped on the thread itself")
}
