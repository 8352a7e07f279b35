//! Thread configuration: name, priority, group affinity, and creation on an I/O object.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::error::SpawnError;
use crate::join::JoinHandle;
use crate::packet::{self, Extra, Options};
use crate::scope::{Scope, ScopedJoinHandle};
use crate::stop::{StopState, StopToken, StoppableJoinHandle};
use crate::{routine, sys};

/// Longest thread name, in UTF-16 code units.
pub const MAX_NAME_LEN: usize = 64;

/// A driver object or device object of the calling driver, for
/// [`Builder::io_object`].
#[derive(Clone, Copy, Debug)]
pub struct IoObject(NonNull<c_void>);

impl IoObject {
    /// Wraps a `PDRIVER_OBJECT` or `PDEVICE_OBJECT`.
    ///
    /// # Safety
    /// `object` points to the `DRIVER_OBJECT` of the calling driver or to one of its
    /// `DEVICE_OBJECT`s, alive while threads are created with it (the kernel then holds its own
    /// reference until each thread exits). Any other object makes `IoCreateSystemThread`
    /// bugcheck (0x148).
    #[must_use]
    pub const unsafe fn from_raw(object: NonNull<c_void>) -> Self {
        Self(object)
    }
}

/// Processor group affinity for a thread (`GROUP_AFFINITY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupAffinity {
    /// The processor group.
    pub group: u16,
    /// The processors of the group, one bit each; must not be empty.
    pub mask: u64,
}

/// Configures a thread before spawning it, like `std::thread::Builder`.
///
/// ```
/// use system_thread::Builder;
///
/// let handle = Builder::new().name("worker").priority(9).spawn(|| 1 + 1)?;
/// assert_eq!(handle.join().ok(), Some(2));
/// # Ok::<(), system_thread::SpawnError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Builder<'a> {
    name: Option<&'a str>,
    priority: Option<i32>,
    affinity: Option<GroupAffinity>,
    io_object: Option<IoObject>,
}

impl<'a> Builder<'a> {
    /// A builder with the kernel's defaults.
    pub const fn new() -> Self {
        Self { name: None, priority: None, affinity: None, io_object: None }
    }

    /// Names the thread (`ZwSetInformationThread`, `ThreadNameInformation`, Windows 10 1607+),
    /// as debuggers and tracing tools show it. The name is set before the closure starts; if
    /// that fails, the closure never runs and spawning returns [`SpawnError::Name`].
    pub const fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }

    /// Sets the thread's priority (`KeSetPriorityThread`) before the closure starts, 1 to 31;
    /// 16 and above are real-time priorities, which starve normal threads: prefer 1 to 15 (the
    /// default is 8).
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Runs the closure with this group affinity (`KeSetSystemGroupAffinityThread`, reverted
    /// with `KeRevertToUserGroupAffinityThread` when the closure returns).
    pub const fn affinity(mut self, affinity: GroupAffinity) -> Self {
        self.affinity = Some(affinity);
        self
    }

    /// Creates the thread with `IoCreateSystemThread` (Windows 8+) on this driver or device
    /// object: the kernel holds a reference on the object, and so keeps the driver image
    /// loaded, until the thread exits. Such threads may be [detached](JoinHandle::detach).
    pub const fn io_object(mut self, object: IoObject) -> Self {
        self.io_object = Some(object);
        self
    }

    /// Spawns the configured thread; see [`SystemThread::spawn`](crate::SystemThread::spawn).
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As `SystemThread::spawn`, plus [`SpawnError::InvalidArgument`] for an out-of-range
    /// setting, [`SpawnError::NotSupported`] when the kernel lacks `IoCreateSystemThread` or
    /// the group affinity routines, and [`SpawnError::Name`].
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are 'static and the handle joins before the packet is freed.
        let spawned = unsafe { self.spawn_raw::<(), _, T>(move |()| f()) }?;
        Ok(JoinHandle::new(spawned.raw, spawned.value, self.io_object.is_some()))
    }

    /// Spawns the configured thread with a stop token; see
    /// [`SystemThread::spawn_stoppable`](crate::SystemThread::spawn_stoppable).
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    pub fn spawn_stoppable<F, T>(self, f: F) -> Result<StoppableJoinHandle<T>, SpawnError>
    where
        F: FnOnce(&StopToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are 'static and the handle joins before the packet is freed.
        let spawned =
            unsafe { self.spawn_raw::<StopState, _, T>(move |s: &StopState| f(s.token())) }?;
        // SAFETY: the stop state is a field of the gate, inside the live packet.
        let state =
            unsafe { spawned.extra.byte_add(core::mem::offset_of!(Gated<StopState>, inner)) }
                .cast();
        let handle = JoinHandle::new(spawned.raw, spawned.value, self.io_object.is_some());
        Ok(StoppableJoinHandle::new(handle, state))
    }

    /// Spawns the configured thread in `scope`; see [`Scope::spawn`].
    ///
    /// ```
    /// let mut counts = [0u32; 4];
    /// system_thread::scope(|s| {
    ///     let handle = system_thread::Builder::new()
    ///         .name("counter")
    ///         .spawn_scoped(s, || counts.iter_mut().for_each(|c| *c += 1))?;
    ///     handle.join().ok();
    ///     Ok::<(), system_thread::SpawnError>(())
    /// })?;
    /// assert_eq!(counts, [1; 4]);
    /// # Ok::<(), system_thread::SpawnError>(())
    /// ```
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> Result<ScopedJoinHandle<'scope, T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // SAFETY: the scope adopts the thread and joins it before 'scope ends (also when its
        // closure unwinds), so the borrows of `F` and `T` outlive the thread.
        let spawned = unsafe { self.spawn_raw::<(), _, T>(move |()| f()) }?;
        Ok(scope.adopt(spawned.raw, spawned.value))
    }

    /// # Safety
    /// As `packet::spawn_unchecked`.
    unsafe fn spawn_raw<E, F, T>(self, f: F) -> Result<packet::Spawned<Gated<E>, T>, SpawnError>
    where
        E: Extra,
        F: FnOnce(&E) -> T + Send,
        T: Send,
    {
        if let Some(priority) = self.priority
            && !(1..=31).contains(&priority)
        {
            return Err(SpawnError::InvalidArgument("priority must be 1 to 31"));
        }
        let mut name = [0u16; MAX_NAME_LEN];
        let mut name_len = 0;
        if let Some(text) = self.name {
            for unit in text.encode_utf16() {
                *name
                    .get_mut(name_len)
                    .ok_or(SpawnError::InvalidArgument("name longer than 64 UTF-16 units"))? = unit;
                name_len += 1;
            }
        }
        let affinity = match self.affinity {
            None => None,
            Some(GroupAffinity { mask: 0, .. }) => {
                return Err(SpawnError::InvalidArgument("empty affinity mask"));
            }
            Some(a) => Some(AffinityScope {
                set: routine::set_group_affinity()?,
                revert: routine::revert_group_affinity()?,
                affinity: a,
            }),
        };
        let options = Options {
            io_object: self.io_object.map(|o| o.0),
            priority: self.priority,
            name: self.name.map(|_| &name[..name_len]),
        };
        let run = move |gated: &Gated<E>| {
            let _revert = affinity.map(AffinityScope::enter);
            f(&gated.inner)
        };
        // SAFETY: forwarded under the caller's contract.
        unsafe { packet::spawn_unchecked::<Gated<E>, _, T>(&options, run) }
    }
}

/// The group affinity routines and the affinity to apply on the new thread.
#[derive(Clone, Copy)]
struct AffinityScope {
    set: sys::KeSetSystemGroupAffinityThreadFn,
    revert: sys::KeRevertToUserGroupAffinityThreadFn,
    affinity: GroupAffinity,
}

/// Restores the thread's previous affinity when dropped.
struct RevertAffinity {
    revert: sys::KeRevertToUserGroupAffinityThreadFn,
    previous: sys::GROUP_AFFINITY,
}

impl AffinityScope {
    fn enter(self) -> RevertAffinity {
        let mut affinity = sys::GROUP_AFFINITY {
            Mask: self.affinity.mask,
            Group: self.affinity.group,
            Reserved: [0; 3],
        };
        let mut previous = sys::GROUP_AFFINITY { Mask: 0, Group: 0, Reserved: [0; 3] };
        // SAFETY: resolved by name with this signature; both structures are live locals; the
        // mask is non-empty (checked by the builder); the thread runs at PASSIVE_LEVEL.
        unsafe { (self.set)(&raw mut affinity, &raw mut previous) };
        RevertAffinity { revert: self.revert, previous }
    }
}

impl Drop for RevertAffinity {
    fn drop(&mut self) {
        // SAFETY: `previous` is what KeSetSystemGroupAffinityThread returned on this thread.
        unsafe { (self.revert)(&raw mut self.previous) };
    }
}

/// A start gate in front of `E`: when the thread must be named or prioritized before its
/// closure runs, the thread waits on the gate until spawn has done so (or cancelled it).
pub(crate) struct Gated<E> {
    armed: bool,
    cancelled: AtomicBool,
    gate: UnsafeCell<MaybeUninit<sys::KEVENT>>,
    pub(crate) inner: E,
}

// SAFETY: the gate is only used through kernel routines; the rest is atomic or `Sync`.
unsafe impl<E: Sync> Sync for Gated<E> {}

impl<E> Gated<E> {
    fn gate(&self) -> *mut sys::KEVENT {
        self.gate.get().cast()
    }

    fn open(&self) {
        if self.armed {
            // SAFETY: armed gates were initialized by `init`; setting an event is allowed here.
            let _previous = unsafe { sys::KeSetEvent(self.gate(), 0, 0) };
        }
    }
}

impl<E: Extra> Extra for Gated<E> {
    unsafe fn init(this: *mut Self, options: &Options<'_>) {
        let armed = options.name.is_some() || options.priority.is_some();
        let armed_field: *mut bool = field_ptr!(this, Self, armed);
        let cancelled: *mut AtomicBool = field_ptr!(this, Self, cancelled);
        // SAFETY: `this` is valid for writes (caller's contract).
        unsafe { armed_field.write(armed) };
        // SAFETY: as above.
        unsafe { cancelled.write(AtomicBool::new(false)) };
        if armed {
            let gate: *mut sys::KEVENT = field_ptr!(this, Self, gate);
            // SAFETY: the event is at its final address.
            unsafe { sys::KeInitializeEvent(gate.cast(), sys::NOTIFICATION_EVENT, 0) };
        }
        // SAFETY: forwarded under the caller's contract.
        unsafe { E::init(field_ptr!(this, Self, inner), options) };
    }

    fn admit(&self) -> bool {
        if self.armed {
            // A non-alertable kernel wait without timeout only returns once the gate is open;
            // retrying any other status keeps the closure behind the gate regardless.
            // SAFETY: the gate is initialized; a NULL timeout waits until spawn opens it.
            while unsafe {
                sys::KeWaitForSingleObject(
                    self.gate().cast(),
                    sys::EXECUTIVE,
                    sys::KERNEL_MODE,
                    0,
                    core::ptr::null_mut(),
                )
            } != sys::STATUS_SUCCESS
            {}
        }
        !self.cancelled.load(Ordering::Acquire) && self.inner.admit()
    }

    fn start(&self) {
        self.inner.start();
        self.open();
    }

    fn abandon(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.inner.abandon();
        self.open();
    }
}
