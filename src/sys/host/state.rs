//! The model's internal state: one `State` per model kernel (handle table, pool, references,
//! call counts, injected faults), its dispatcher objects and thread objects, and the model
//! threads. The public API over it is `model`; the routines are in `mod.rs`.

extern crate std;

use core::ffi::c_void;
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;
use std::vec::Vec;

use super::model::{Call, Outstanding, ThreadRecord};
use super::rt;

pub(super) const DEFAULT_PRIORITY: i32 = 8;

/// Marks a dispatcher header as a thread object's.
pub(super) const THREAD_OBJECT: usize = 0x5448_5244; // "THRD"
/// Marks a dispatcher header as an initialized event's.
pub(super) const EVENT_OBJECT: usize = 0x4556_4e54; // "EVNT"

/// A waitable object: the first field of every thread object and host `KEVENT`.
///
/// All waits and signals of a kernel's objects go through that kernel's dispatcher lock (as
/// the real kernel's dispatcher database), so that a wait on several objects sees them change
/// consistently.
#[repr(C)]
pub struct Dispatcher {
    /// `THREAD_OBJECT` or `EVENT_OBJECT`: lets a wait tell a live object from anything else.
    pub(super) kind: usize,
    /// Only written under the kernel's dispatcher lock.
    signalled: AtomicBool,
    auto_reset: bool,
    /// The kernel the object belongs to: not a counted reference, because a `KEVENT` lives in
    /// driver memory that is freed without being dropped. Objects are only used while their
    /// kernel lives (its threads hold it, tests hold their `Kernel`).
    kernel: *const State,
}

// SAFETY: the kernel pointer is only read (for its internally synchronized state); the flag is
// atomic.
unsafe impl Send for Dispatcher {}
// SAFETY: as above.
unsafe impl Sync for Dispatcher {}

impl Dispatcher {
    pub(super) fn new(kind: usize, signalled: bool, auto_reset: bool, kernel: &Arc<State>) -> Self {
        Self {
            kind,
            signalled: AtomicBool::new(signalled),
            auto_reset,
            kernel: Arc::as_ptr(kernel),
        }
    }

    /// The object's kernel (alive while any of its objects is used).
    pub(super) fn kernel(&self) -> &State {
        // SAFETY: objects are used only while their kernel lives (see the field).
        unsafe { &*self.kernel }
    }

    /// Sets the object signalled; returns the previous state.
    pub(super) fn signal(&self) -> bool {
        let kernel = self.kernel();
        let guard = kernel.dispatch_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.signalled.swap(true, Ordering::Relaxed);
        drop(guard);
        kernel.dispatch_cv.notify_all();
        previous
    }

    /// Sets the object non-signalled; returns the previous state.
    pub(super) fn reset(&self) -> bool {
        let kernel = self.kernel();
        let _guard = kernel.dispatch_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.signalled.swap(false, Ordering::Relaxed)
    }

    /// Waits until signalled or until `timeout` passes (`None`: forever). True if signalled.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> bool {
        wait_multiple(&[self], false, timeout).is_some()
    }
}

/// Waits until one (`all == false`) or all of `objects`, which belong to one kernel, are
/// signalled, or `timeout` passes. Returns the index of the object that satisfied a wait-any
/// (0 for a wait-all), after consuming the signal of auto-reset objects.
pub(super) fn wait_multiple(
    objects: &[&Dispatcher],
    all: bool,
    timeout: Option<Duration>,
) -> Option<usize> {
    let first = objects.first()?;
    let kernel = first.kernel();
    let ready = |objects: &[&Dispatcher]| {
        let mut signalled = objects.iter().map(|o| o.signalled.load(Ordering::Relaxed));
        if all { signalled.all(|s| s).then_some(0) } else { signalled.position(|s| s) }
    };
    let guard = kernel.dispatch_lock.lock().unwrap_or_else(PoisonError::into_inner);
    let guard = rt::wait_until(&kernel.dispatch_cv, guard, timeout, |&()| ready(objects).is_some());
    let satisfied = ready(objects)?;
    let consumed: &[&Dispatcher] =
        if all { objects } else { objects.get(satisfied..=satisfied).unwrap_or(&[]) };
    for object in consumed.iter().filter(|o| o.auto_reset) {
        object.signalled.store(false, Ordering::Relaxed);
    }
    drop(guard);
    Some(satisfied)
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
    pub(super) fn kernel(&self) -> &State {
        self.dispatcher.kernel()
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
    /// Live pool blocks: layout and tag, and the block itself (kept as a pointer, not only as
    /// the key's address, so that a block a driver never frees stays reachable from its kernel,
    /// which the process keeps: Miri reports no leak for it).
    pool: HashMap<usize, (std::alloc::Layout, u32, SendPtr<u8>)>,
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
    /// Active processors per processor group; empty: one group of `DEFAULT_PROCESSORS`.
    topology: Vec<u32>,
}

/// Processors of the default topology (one group).
pub(super) const DEFAULT_PROCESSORS: u32 = 4;

/// The state of one model kernel.
pub(super) struct State {
    inner: Mutex<Inner>,
    /// The driver's count of live threads (`system_thread::live_threads`).
    pub(super) live_threads: AtomicUsize,
    /// The dispatcher lock: every wait and signal of this kernel's objects takes it.
    dispatch_lock: rt::Mutex<()>,
    dispatch_cv: rt::Condvar,
}

/// Every kernel made in this process, kept until the process ends. A driver's objects may
/// outlive the `Kernel` value of the test that made them (safe code can keep an `Event` or a
/// join handle past it), and their dispatcher objects point into their kernel: freeing it
/// would let safe code use freed memory. A kernel is a few hundred bytes plus its thread
/// objects. Not under loom, whose objects belong to one execution: there, tests keep their
/// kernel.
#[cfg(not(loom))]
static KERNELS: Mutex<Vec<Arc<State>>> = Mutex::new(Vec::new());

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
    pub(super) fn new() -> Arc<Self> {
        let state = Arc::new(Self {
            inner: Mutex::new(Inner { next_handle: 4, ..Inner::default() }),
            live_threads: AtomicUsize::new(0),
            dispatch_lock: rt::Mutex::new(()),
            dispatch_cv: rt::Condvar::new(),
        });
        #[cfg(not(loom))]
        lock(&KERNELS).push(Arc::clone(&state));
        state
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

    pub(super) fn pool_insert(&self, block: *mut u8, layout: std::alloc::Layout, tag: u32) {
        lock(&self.inner).pool.insert(block.addr(), (layout, tag, SendPtr(block)));
    }

    pub(super) fn pool_remove(&self, address: usize) -> Option<(std::alloc::Layout, u32)> {
        lock(&self.inner).pool.remove(&address).map(|(layout, tag, _)| (layout, tag))
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
    pub(super) fn reap_os_threads(&self) {
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
            dispatcher: Dispatcher::new(THREAD_OBJECT, false, false, self),
            refs: AtomicUsize::new(2),
            id,
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

/// The calling thread's group affinity, if one was set.
pub(super) fn current_affinity() -> Option<(u16, u64)> {
    AFFINITY.with(Cell::get)
}

pub(super) fn set_affinity(affinity: Option<(u16, u64)>) -> Option<(u16, u64)> {
    let id = current_thread_id();
    let previous = AFFINITY.with(|a| a.replace(affinity));
    if let Some(affinity) = affinity {
        State::current().record(id, |r| r.affinity = Some(affinity));
    }
    previous
}

impl State {
    /// Makes this kernel the calling thread's; returns the previous one.
    pub(super) fn enter_thread(self: &Arc<Self>) -> Option<Arc<State>> {
        CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(self)))
    }

    /// Gives the calling thread back the kernel `previous`.
    pub(super) fn leave_thread(previous: Option<Arc<State>>) {
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }

    /// Makes the `nth` call of `call` from now on fail with `status`.
    pub(super) fn fail_nth(&self, call: Call, nth: usize, status: i32) {
        let mut inner = lock(&self.inner);
        let done = inner.calls.get(&call).copied().unwrap_or(0);
        inner.faults.push((call, done + nth, status));
    }

    pub(super) fn hide(&self, call: Call) {
        lock(&self.inner).hidden.push(call);
    }

    /// Active processors per group (`KeQueryActiveGroupCount`, `KeQueryActiveProcessorCountEx`).
    pub(super) fn topology(&self) -> Vec<u32> {
        let topology = lock(&self.inner).topology.clone();
        if topology.is_empty() { std::vec![DEFAULT_PROCESSORS] } else { topology }
    }

    pub(super) fn set_topology(&self, processors_per_group: &[u32]) {
        lock(&self.inner).topology = processors_per_group.to_vec();
    }

    pub(super) fn set_start_irql(&self, irql: u8) {
        lock(&self.inner).start_irql = irql;
    }

    pub(super) fn calls(&self, call: Call) -> usize {
        lock(&self.inner).calls.get(&call).copied().unwrap_or(0)
    }

    pub(super) fn call_counts(&self) -> Vec<(Call, usize)> {
        lock(&self.inner).calls.iter().map(|(&c, &n)| (c, n)).collect()
    }

    pub(super) fn threads(&self) -> Vec<ThreadRecord> {
        lock(&self.inner).threads.values().cloned().collect()
    }

    pub(super) fn outstanding(&self) -> Outstanding {
        let inner = lock(&self.inner);
        Outstanding {
            allocations: inner.pool.len(),
            handles: inner.handles.len(),
            references: inner.references,
            running_threads: inner.running,
            io_object_references: inner.io_refs.values().sum(),
            live_threads: self.live_threads.load(Ordering::Relaxed),
        }
    }
}

/// Sets the calling thread's simulated IRQL; returns the previous one.
pub(super) fn set_irql(irql: u8) -> u8 {
    IRQL.with(|i| i.replace(irql))
}
