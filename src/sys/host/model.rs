//! A std-based model of the kernel routines this crate calls, for tests on any host.
//!
//! The model runs each system thread on a real OS thread, signals a thread object when the
//! start routine has returned, keeps handle tables, object references and pool allocations
//! with counts, gives every thread its own simulated IRQL, and can make the Nth call of any
//! routine fail with a chosen NTSTATUS. Kernel programming errors that a real kernel answers
//! with a bugcheck (waiting at `DISPATCH_LEVEL`, freeing unknown pool, closing an unknown
//! handle) abort the process with a `host model bugcheck:` message.
//!
//! Each [`Kernel`] is an independent instance: tests can run in parallel, each entering its own
//! kernel with [`Kernel::run`]. Threads created inside inherit the kernel of their creator.
//! Code that never entered a kernel uses a process-wide default instance.
//!
//! ```
//! use system_thread::host::{Call, Kernel};
//! use system_thread::{SpawnError, SystemThread};
//!
//! let kernel = Kernel::new();
//! kernel.fail_nth(Call::PsCreateSystemThread, 1, 0xC000_009A_u32.cast_signed());
//! kernel.run(|| {
//!     let err = SystemThread::spawn(|| 1).unwrap_err();
//!     assert!(matches!(err, SpawnError::Create(s) if s.0 == 0xC000_009A_u32.cast_signed()));
//!     assert_eq!(SystemThread::spawn(|| 2).unwrap().join().ok(), Some(2));
//! });
//! kernel.assert_clean();
//! ```

#![cfg_attr(not(feature = "host-model"), allow(dead_code, unreachable_pub))]

extern crate std;

use core::ffi::c_void;
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::string::String;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use super::rt;
use std::vec::Vec;

/// Kernel routines of the model whose calls are counted and can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Call {
    PsCreateSystemThread,
    IoCreateSystemThread,
    ObReferenceObjectByHandle,
    ObfDereferenceObject,
    ZwClose,
    ZwWaitForSingleObject,
    KeWaitForSingleObject,
    KeDelayExecutionThread,
    KeSetPriorityThread,
    ZwSetInformationThread,
    PsGetCurrentThreadId,
    ZwYieldExecution,
    KeInitializeEvent,
    KeSetEvent,
    MmGetSystemRoutineAddress,
    ExAllocatePoolWithTag,
    ExFreePoolWithTag,
    KeSetSystemGroupAffinityThread,
    KeRevertToUserGroupAffinityThread,
    KeGetCurrentIrql,
}

impl Call {
    /// The routine's exported name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::PsCreateSystemThread => "PsCreateSystemThread",
            Self::IoCreateSystemThread => "IoCreateSystemThread",
            Self::ObReferenceObjectByHandle => "ObReferenceObjectByHandle",
            Self::ObfDereferenceObject => "ObfDereferenceObject",
            Self::ZwClose => "ZwClose",
            Self::ZwWaitForSingleObject => "ZwWaitForSingleObject",
            Self::KeWaitForSingleObject => "KeWaitForSingleObject",
            Self::KeDelayExecutionThread => "KeDelayExecutionThread",
            Self::KeSetPriorityThread => "KeSetPriorityThread",
            Self::ZwSetInformationThread => "ZwSetInformationThread",
            Self::PsGetCurrentThreadId => "PsGetCurrentThreadId",
            Self::ZwYieldExecution => "ZwYieldExecution",
            Self::KeInitializeEvent => "KeInitializeEvent",
            Self::KeSetEvent => "KeSetEvent",
            Self::MmGetSystemRoutineAddress => "MmGetSystemRoutineAddress",
            Self::ExAllocatePoolWithTag => "ExAllocatePoolWithTag",
            Self::ExFreePoolWithTag => "ExFreePoolWithTag",
            Self::KeSetSystemGroupAffinityThread => "KeSetSystemGroupAffinityThread",
            Self::KeRevertToUserGroupAffinityThread => "KeRevertToUserGroupAffinityThread",
            Self::KeGetCurrentIrql => "KeGetCurrentIrql",
        }
    }
}

/// Routines the model resolves through `MmGetSystemRoutineAddress` unless hidden.
pub(super) const OPTIONAL_ROUTINES: [Call; 3] = [
    Call::IoCreateSystemThread,
    Call::KeSetSystemGroupAffinityThread,
    Call::KeRevertToUserGroupAffinityThread,
];

/// What a model kernel has outstanding: everything a driver must give back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Pool allocations not freed.
    pub allocations: usize,
    /// Kernel handles not closed.
    pub handles: usize,
    /// Object references taken by `ObReferenceObjectByHandle` and not dropped.
    pub references: usize,
    /// System threads whose start routine has not returned.
    pub running_threads: usize,
    /// References the kernel holds on I/O objects for threads made by `IoCreateSystemThread`.
    pub io_object_references: usize,
    /// Threads the driver spawned and has not joined or detached
    /// (`system_thread::live_threads`).
    pub live_threads: usize,
}

/// What the model recorded about one system thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadRecord {
    /// The thread id (`CLIENT_ID::UniqueThread`).
    pub id: usize,
    /// `OBJECT_ATTRIBUTES::Attributes` passed at creation.
    pub attributes: u32,
    /// Whether a non-NULL process handle was passed (the system process is NULL).
    pub process_handle_given: bool,
    /// The I/O object passed to `IoCreateSystemThread`, if that created it.
    pub io_object: Option<usize>,
    /// The name set with `ThreadNameInformation`, if any.
    pub name: Option<String>,
    /// The priority set with `KeSetPriorityThread`, if any.
    pub priority: Option<i32>,
    /// The group affinity active while the start routine ran, if set.
    pub affinity: Option<(u16, u64)>,
    /// The IRQL the start routine found at entry.
    pub start_irql: u8,
}

pub(super) const DEFAULT_PRIORITY: i32 = 8;

/// Marks a dispatcher header as a thread object's.
pub(super) const THREAD_OBJECT: usize = 0x5448_5244; // "THRD"
/// Marks a dispatcher header as an initialized event's.
pub(super) const EVENT_OBJECT: usize = 0x4556_4e54; // "EVNT"

/// A waitable object: the first field of every thread object and host `KEVENT`.
#[repr(C)]
pub struct Dispatcher {
    /// `THREAD_OBJECT` or `EVENT_OBJECT`: lets a wait tell a live object from anything else.
    pub(super) kind: usize,
    signalled: rt::Mutex<bool>,
    cv: rt::Condvar,
    auto_reset: bool,
}

impl Dispatcher {
    pub(super) fn new(kind: usize, signalled: bool, auto_reset: bool) -> Self {
        Self { kind, signalled: rt::Mutex::new(signalled), cv: rt::Condvar::new(), auto_reset }
    }

    /// Sets the object signalled; returns the previous state.
    pub(super) fn signal(&self) -> bool {
        let mut state = self.signalled.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = *state;
        *state = true;
        self.cv.notify_all();
        previous
    }

    /// Waits until signalled or until `timeout` passes (`None`: forever). True if signalled.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> bool {
        let state = self.signalled.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = rt::wait_until(&self.cv, state, timeout, |s| *s);
        let signalled = *state;
        if signalled && self.auto_reset {
            *state = false;
        }
        signalled
    }
}

/// A model thread object (`ETHREAD`). Reached through raw pointers handed to the driver.
///
/// Like Driver Verifier, the model never reuses a thread object: when its last reference is
/// gone the object stays allocated (until its kernel is dropped), marked dead, so that a later
/// wait, reference or dereference is reported by name instead of touching freed memory.
#[repr(C)]
pub(super) struct ThreadObject {
    pub(super) dispatcher: Dispatcher,
    /// References: handles, driver references, and one held by the running thread.
    refs: AtomicUsize,
    pub(super) id: usize,
    pub(super) kernel: Weak<State>,
}

impl ThreadObject {
    /// Stops the model unless the object still has a reference: the check a use of a thread
    /// object pointer makes first.
    pub(super) fn check_alive(&self, call: &str) {
        if self.refs.load(Ordering::Acquire) == 0 {
            bugcheck(&std::format!(
                "{call}: thread object {:p} (thread {:#x}) has no reference left: used after its \
                 last ObfDereferenceObject",
                core::ptr::from_ref(self),
                self.id
            ));
        }
    }

    pub(super) fn add_ref(&self, call: &str) {
        self.check_alive(call);
        self.refs.fetch_add(1, Ordering::Relaxed);
    }

    /// The object's kernel (alive while any of its objects is used).
    pub(super) fn kernel(&self) -> Arc<State> {
        self.kernel.upgrade().unwrap_or_else(|| bugcheck("a thread object outlived its kernel"))
    }

    /// Drops one reference; the last one marks the object dead.
    ///
    /// # Safety
    /// `this` came from `create_thread` and its kernel is alive.
    pub(super) unsafe fn release(this: *const Self, call: &str) {
        // SAFETY: thread objects stay allocated while their kernel lives (caller's contract).
        let object = unsafe { &*this };
        object.check_alive(call);
        object.refs.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A raw pointer that the model moves between threads; what it points to is synchronized by
/// the routine contracts (thread objects are reference counted, contexts belong to the thread).
pub(super) struct SendPtr<T>(pub(super) *mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: see the type's documentation: ownership of the pointee is transferred explicitly.
unsafe impl<T> Send for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    pub(super) fn get(self) -> *mut T {
        self.0
    }
}

#[derive(Default)]
struct Inner {
    calls: BTreeMap<Call, usize>,
    faults: Vec<(Call, usize, i32)>,
    hidden: Vec<Call>,
    /// Live pool blocks: layout and tag.
    pool: HashMap<usize, (std::alloc::Layout, u32)>,
    /// Every thread object ever created (freed with the kernel).
    objects: Vec<SendPtr<ThreadObject>>,
    /// `MmGetSystemRoutineAddress` answers cached by the driver, by routine name.
    routine_cache: HashMap<&'static str, Option<SendPtr<c_void>>>,
    handles: HashMap<usize, SendPtr<ThreadObject>>,
    next_handle: usize,
    references: usize,
    running: usize,
    io_refs: HashMap<usize, usize>,
    threads: BTreeMap<usize, ThreadRecord>,
    os_threads: Vec<rt::Thread>,
    start_irql: u8,
}

/// The state of one model kernel.
pub(super) struct State {
    inner: Mutex<Inner>,
    /// The driver's count of live threads (`system_thread::live_threads`).
    pub(super) live_threads: AtomicUsize,
}

impl Drop for State {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        for object in inner.objects.drain(..) {
            // SAFETY: made by `Box::into_raw` in `create_thread`; nothing uses an object of a
            // kernel that is gone (its threads and handles hold the kernel).
            drop(unsafe { Box::from_raw(object.get()) });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the process the way a bugcheck stops a machine.
pub(super) fn bugcheck(what: &str) -> ! {
    std::eprintln!("host model bugcheck: {what}");
    std::process::abort()
}

static NEXT_THREAD_ID: AtomicUsize = AtomicUsize::new(0x1000);

rt::model_thread_local! {
    static CURRENT: RefCell<Option<Arc<State>>> = RefCell::new(None);
    static IRQL: Cell<u8> = Cell::new(0);
    static THREAD_ID: Cell<usize> = Cell::new(0);
    static AFFINITY: Cell<Option<(u16, u64)>> = Cell::new(None);
}

fn default_kernel() -> &'static Arc<State> {
    static DEFAULT: OnceLock<Arc<State>> = OnceLock::new();
    DEFAULT.get_or_init(State::new)
}

impl State {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner { next_handle: 4, ..Inner::default() }),
            live_threads: AtomicUsize::new(0),
        })
    }

    /// The kernel of the calling thread.
    pub(super) fn current() -> Arc<Self> {
        CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| Arc::clone(default_kernel()))
    }

    /// Counts a call to `call`; returns the injected failure status if this call must fail.
    pub(super) fn enter(&self, call: Call) -> Option<i32> {
        let mut inner = lock(&self.inner);
        let count = inner.calls.entry(call).or_insert(0);
        *count += 1;
        let nth = *count;
        let position = inner.faults.iter().position(|&(c, n, _)| c == call && n == nth)?;
        Some(inner.faults.swap_remove(position).2)
    }

    pub(super) fn hidden(&self, call: Call) -> bool {
        lock(&self.inner).hidden.contains(&call)
    }

    pub(super) fn pool_insert(&self, address: usize, layout: std::alloc::Layout, tag: u32) {
        lock(&self.inner).pool.insert(address, (layout, tag));
    }

    pub(super) fn pool_remove(&self, address: usize) -> Option<(std::alloc::Layout, u32)> {
        lock(&self.inner).pool.remove(&address)
    }

    /// The cached answer for routine `name`, or `resolve`'s (made without holding the lock).
    pub(super) fn cached_routine(
        &self,
        name: &'static str,
        resolve: impl FnOnce() -> Option<core::ptr::NonNull<c_void>>,
    ) -> Option<core::ptr::NonNull<c_void>> {
        if let Some(cached) = lock(&self.inner).routine_cache.get(name) {
            return cached.and_then(|p| core::ptr::NonNull::new(p.get()));
        }
        let resolved = resolve();
        lock(&self.inner).routine_cache.insert(name, resolved.map(|p| SendPtr(p.as_ptr())));
        resolved
    }

    pub(super) fn insert_handle(&self, object: *const ThreadObject) -> usize {
        let mut inner = lock(&self.inner);
        let handle = inner.next_handle;
        inner.next_handle += 4;
        inner.handles.insert(handle, SendPtr(object.cast_mut()));
        handle
    }

    pub(super) fn lookup_handle(&self, handle: usize) -> Option<*const ThreadObject> {
        lock(&self.inner).handles.get(&handle).map(|p| p.get().cast_const())
    }

    pub(super) fn remove_handle(&self, handle: usize) -> Option<*const ThreadObject> {
        lock(&self.inner).handles.remove(&handle).map(|p| p.get().cast_const())
    }

    pub(super) fn add_references(&self, delta: isize) {
        let mut inner = lock(&self.inner);
        inner.references = inner.references.saturating_add_signed(delta);
    }

    pub(super) fn record(&self, id: usize, f: impl FnOnce(&mut ThreadRecord)) {
        if let Some(record) = lock(&self.inner).threads.get_mut(&id) {
            f(record);
        }
    }

    /// Joins the OS threads that have exited; all of them once every start routine has
    /// returned (their OS threads are then only exiting).
    fn reap_os_threads(&self) {
        let exited: Vec<rt::Thread> = {
            let mut inner = lock(&self.inner);
            if inner.running == 0 {
                inner.os_threads.drain(..).collect()
            } else {
                let (done, running) = inner.os_threads.drain(..).partition(rt::is_finished);
                inner.os_threads = running;
                done
            }
        };
        for handle in exited {
            rt::join(handle);
        }
    }

    /// Starts `start(context)` on a new OS thread and returns its thread object, holding one
    /// reference for the caller's handle and one for the running thread.
    pub(super) fn create_thread(
        self: &Arc<Self>,
        record: ThreadRecord,
        start: unsafe extern "C" fn(*mut c_void),
        context: *mut c_void,
    ) -> Result<(*const ThreadObject, usize), i32> {
        let id = NEXT_THREAD_ID.fetch_add(4, Ordering::Relaxed);
        let object = Box::into_raw(Box::new(ThreadObject {
            dispatcher: Dispatcher::new(THREAD_OBJECT, false, false),
            refs: AtomicUsize::new(2),
            id,
            kernel: Arc::downgrade(self),
        }));
        let io_object = record.io_object;
        let start_irql = {
            let mut inner = lock(&self.inner);
            inner.running += 1;
            if let Some(io) = io_object {
                *inner.io_refs.entry(io).or_insert(0) += 1;
            }
            inner.threads.insert(id, ThreadRecord { id, ..record });
            inner.start_irql
        };
        let kernel = Arc::clone(self);
        let object_ptr = SendPtr(object);
        let context = SendPtr(context);
        // Unnamed: naming an OS thread costs an allocation and a system call per spawn, which
        // would show in the throughput comparison with `std::thread`.
        let spawned = rt::spawn(Box::new(move || {
            CURRENT.with(|c| *c.borrow_mut() = Some(Arc::clone(&kernel)));
            THREAD_ID.with(|t| t.set(id));
            IRQL.with(|i| i.set(start_irql));
            kernel.record(id, |r| r.start_irql = start_irql);
            // SAFETY: the driver handed this routine and context to PsCreateSystemThread
            // with the contract that the routine runs once, on a new thread, with it.
            unsafe { start(context.get()) };
            if IRQL.with(Cell::get) != 0 {
                bugcheck("system thread exited at an IRQL above PASSIVE_LEVEL");
            }
            {
                let mut inner = lock(&kernel.inner);
                inner.running -= 1;
                if let Some(io) = io_object
                    && let Some(count) = inner.io_refs.get_mut(&io)
                {
                    *count -= 1;
                }
            }
            let object = object_ptr.get().cast_const();
            // SAFETY: the running thread holds one reference until the release below.
            unsafe { &*object }.dispatcher.signal();
            // SAFETY: that reference is the running thread's own, given up here.
            unsafe { ThreadObject::release(object, "thread exit") };
            CURRENT.with(|c| *c.borrow_mut() = None);
        }));
        if let Some(join) = spawned {
            // Reap OS threads that have exited, so that a long run keeps no zombie stacks.
            self.reap_os_threads();
            let mut inner = lock(&self.inner);
            inner.os_threads.push(join);
            inner.objects.push(SendPtr(object));
            return Ok((object.cast_const(), id));
        }
        let mut inner = lock(&self.inner);
        inner.running -= 1;
        inner.threads.remove(&id);
        drop(inner);
        // SAFETY: no thread or handle saw the object; it is freed once, here.
        drop(unsafe { Box::from_raw(object) });
        Err(INSUFFICIENT_RESOURCES)
    }
}

pub(super) const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32.cast_signed();

pub(super) fn current_irql() -> u8 {
    IRQL.with(Cell::get)
}

pub(super) fn current_thread_id() -> usize {
    THREAD_ID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_THREAD_ID.fetch_add(4, Ordering::Relaxed));
        }
        t.get()
    })
}

pub(super) fn set_affinity(affinity: Option<(u16, u64)>) -> Option<(u16, u64)> {
    let id = current_thread_id();
    let previous = AFFINITY.with(|a| a.replace(affinity));
    if let Some(affinity) = affinity {
        State::current().record(id, |r| r.affinity = Some(affinity));
    }
    previous
}

/// A model kernel instance. See the [module documentation](self).
#[derive(Clone)]
pub struct Kernel {
    state: Arc<State>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel").field("outstanding", &self.outstanding()).finish()
    }
}

impl Kernel {
    /// A fresh kernel: no calls counted, nothing outstanding, every routine present.
    #[must_use]
    pub fn new() -> Self {
        Self { state: State::new() }
    }

    /// Runs `f` on the calling thread with this kernel as its kernel; system threads created
    /// inside belong to it too.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Arc<State>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(&self.state)));
        let _restore = Restore(previous);
        f()
    }

    /// Makes the `nth` (1-based, counted from now on) call of `call` fail with `status`.
    /// Allocation routines fail by returning NULL; `MmGetSystemRoutineAddress` by returning
    /// NULL.
    pub fn fail_nth(&self, call: Call, nth: usize, status: i32) {
        let mut inner = lock(&self.state.inner);
        let done = inner.calls.get(&call).copied().unwrap_or(0);
        inner.faults.push((call, done + nth, status));
    }

    /// Makes `MmGetSystemRoutineAddress` report `call` as not exported (as on older Windows or
    /// Wine), so code must take its fallback or `NotSupported` path.
    pub fn hide_routine(&self, call: Call) {
        lock(&self.state.inner).hidden.push(call);
    }

    /// New system threads start at this IRQL (a real kernel always uses `PASSIVE_LEVEL` = 0;
    /// anything else lets a test see what the trampoline's assertion does).
    pub fn set_start_irql(&self, irql: u8) {
        lock(&self.state.inner).start_irql = irql;
    }

    /// How many times `call` was made in this kernel.
    #[must_use]
    pub fn calls(&self, call: Call) -> usize {
        lock(&self.state.inner).calls.get(&call).copied().unwrap_or(0)
    }

    /// Every call made so far, by routine.
    #[must_use]
    pub fn call_counts(&self) -> Vec<(Call, usize)> {
        lock(&self.state.inner).calls.iter().map(|(&c, &n)| (c, n)).collect()
    }

    /// What the driver has not given back yet.
    #[must_use]
    pub fn outstanding(&self) -> Outstanding {
        let inner = lock(&self.state.inner);
        Outstanding {
            allocations: inner.pool.len(),
            handles: inner.handles.len(),
            references: inner.references,
            running_threads: inner.running,
            io_object_references: inner.io_refs.values().sum(),
            live_threads: self.state.live_threads.load(Ordering::Relaxed),
        }
    }

    /// Everything recorded about the system threads created so far, in creation order.
    #[must_use]
    pub fn threads(&self) -> Vec<ThreadRecord> {
        lock(&self.state.inner).threads.values().cloned().collect()
    }

    /// Waits for the OS threads behind finished system threads to exit, then returns what is
    /// outstanding.
    #[must_use = "it returns what is still outstanding"]
    pub fn quiesce(&self) -> Outstanding {
        self.state.reap_os_threads();
        self.outstanding()
    }

    /// Asserts that the driver gave everything back: no allocation, handle, reference, running
    /// thread or I/O object reference is outstanding.
    ///
    /// # Panics
    /// When anything is outstanding (this is a test helper).
    pub fn assert_clean(&self) {
        let outstanding = self.quiesce();
        assert!(
            outstanding == Outstanding::default(),
            "host model: the driver left resources behind: {outstanding:?}"
        );
    }
}

/// Runs `f` with the calling thread's simulated IRQL raised to `irql`, then restores it.
pub fn with_irql<R>(irql: u8, f: impl FnOnce() -> R) -> R {
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            IRQL.with(|i| i.set(self.0));
        }
    }
    let _restore = Restore(IRQL.with(|i| i.replace(irql)));
    f()
}

/// Sets the calling thread's simulated IRQL (as `KeRaiseIrql`/`KeLowerIrql` would).
pub fn set_irql(irql: u8) {
    IRQL.with(|i| i.set(irql));
}
