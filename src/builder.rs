//! Thread configuration (name, priority, group affinity, creation on an I/O object), and the
//! one spawn path every public spawn goes through.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::error::SpawnError;
use crate::join::JoinHandle;
use crate::kernel::irql::Passive;
use crate::kernel::routine::{Affinity, IoCreateSystemThread, Topology};
use crate::packet::{self, Extra, Gated, JoinInner, Options, ScopeList};
use crate::stop::{StopState, StopToken, StoppableJoinHandle};

/// Longest thread name, in UTF-16 code units.
pub const MAX_NAME_LEN: usize = 64;

/// A driver object or device object of the calling driver, for [`Builder::io_object`],
/// borrowed for `'a`: safe code cannot use it after that object is gone.
///
/// # Invariants
/// `object` points to the `DRIVER_OBJECT` of the calling driver or to one of its
/// `DEVICE_OBJECT`s, alive for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct IoObject<'a> {
    object: NonNull<c_void>,
    _borrow: PhantomData<&'a c_void>,
}

// SAFETY: the crate only hands the pointer to `IoCreateSystemThread`, which any thread may
// call with it: driver and device objects belong to no thread. (So a configured `Builder`
// may be sent and shared like std's.)
unsafe impl Send for IoObject<'_> {}
// SAFETY: as for `Send`; `&IoObject` only copies the pointer.
unsafe impl Sync for IoObject<'_> {}

impl<'a> IoObject<'a> {
    /// Borrows a `DRIVER_OBJECT` or `DEVICE_OBJECT` (of wdk-sys, or any binding of them).
    ///
    /// # Safety
    /// `object` is the `DRIVER_OBJECT` of the calling driver or one of its `DEVICE_OBJECT`s.
    /// Any other object makes `IoCreateSystemThread` bugcheck (0x148).
    #[must_use]
    pub unsafe fn new<O>(object: &'a O) -> Self {
        // INVARIANT: the caller's contract; the borrow keeps it alive for `'a`.
        Self { object: NonNull::from(object).cast(), _borrow: PhantomData }
    }

    /// Wraps a `PDRIVER_OBJECT` or `PDEVICE_OBJECT`.
    ///
    /// # Safety
    /// `object` points to the `DRIVER_OBJECT` of the calling driver or to one of its
    /// `DEVICE_OBJECT`s, and stays alive for `'a` (the kernel then holds its own reference until
    /// each thread created with it exits). Any other object makes `IoCreateSystemThread`
    /// bugcheck (0x148).
    #[must_use]
    pub const unsafe fn from_raw(object: NonNull<c_void>) -> Self {
        // INVARIANT: the caller's contract.
        Self { object, _borrow: PhantomData }
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
    io_object: Option<IoObject<'a>>,
}

/// Who waits for a thread before the data its closure borrows (for `'a`) goes away.
///
/// # Invariants
/// With a scope list, the list is borrowed for `'a` and its owner ([`crate::scope`]) waits for
/// every thread it holds before anything borrowed for `'a` can go away. Without one, `'a` is `'static`: the closure
/// borrows nothing that can go away.
#[derive(Clone, Copy)]
pub(crate) struct Owner<'a>(Option<&'a ScopeList>);

impl Owner<'static> {
    /// The thread's handle owns it; closures borrow nothing shorter than `'static`.
    pub(crate) const HANDLE: Self = Self(None);
}

impl<'a> Owner<'a> {
    /// The scope whose list is `list` owns the thread.
    pub(crate) fn scope(list: &'a ScopeList) -> Self {
        // INVARIANT: only `scope` makes a `ScopeList`, and it joins the list's threads before
        // it returns or unwinds, while everything its threads borrow is still alive.
        Self(Some(list))
    }
}

impl<'a> Builder<'a> {
    /// A builder with the kernel's defaults.
    pub const fn new() -> Self {
        Self { name: None, priority: None, affinity: None, io_object: None }
    }

    /// Names the thread (`ZwSetInformationThread`, `ThreadNameInformation`, Windows 10 1607+),
    /// as debuggers and tracing tools show it. The name is set before the closure starts. On
    /// kernels without `ThreadNameInformation` (`STATUS_INVALID_INFO_CLASS`) the thread runs
    /// unnamed; any other failure cancels it before its closure runs, and spawning returns
    /// [`SpawnError::Name`].
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
    /// with `KeRevertToUserGroupAffinityThread` when the closure returns). Spawning checks it
    /// against the active processors (`KeQueryActiveGroupCount`,
    /// `KeQueryActiveProcessorCountEx`) and refuses a group or processor that is not active
    /// with [`SpawnError::InvalidArgument`]: the kernel would ignore it silently.
    pub const fn affinity(mut self, affinity: GroupAffinity) -> Self {
        self.affinity = Some(affinity);
        self
    }

    /// Creates the thread with `IoCreateSystemThread` (Windows 8+) on this driver or device
    /// object: the kernel holds a reference on the object, and so keeps the driver image
    /// loaded, until the thread exits. Such threads may be [detached](JoinHandle::detach).
    pub const fn io_object(mut self, object: IoObject<'a>) -> Self {
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
    #[inline]
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.spawn_in::<(), _, T>(Owner::HANDLE, move |()| f())?;
        Ok(JoinHandle::new(inner.0, self.io_object.is_some()))
    }

    /// Spawns the configured thread with a stop token; see
    /// [`SystemThread::spawn_stoppable`](crate::SystemThread::spawn_stoppable).
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[inline]
    pub fn spawn_stoppable<F, T>(self, f: F) -> Result<StoppableJoinHandle<T>, SpawnError>
    where
        F: FnOnce(&StopToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (inner, state) =
            self.spawn_in::<StopState, _, T>(Owner::HANDLE, move |s| f(StopToken::from_state(s)))?;
        Ok(StoppableJoinHandle::new(JoinHandle::new(inner, self.io_object.is_some()), state))
    }

    /// The one spawn path of every public spawn: checks the IRQL before anything else,
    /// validates the settings, resolves the routines they need, and creates the thread, behind
    /// a start gate only when a setting needs one.
    #[inline]
    pub(crate) fn spawn_in<'o, E, F, T>(
        &self,
        owner: Owner<'o>,
        f: F,
    ) -> Result<(JoinInner<T>, NonNull<E::Lent>), SpawnError>
    where
        E: Extra,
        F: FnOnce(&E::Lent) -> T + Send + 'o,
        T: Send + 'o,
    {
        let passive = Passive::check().map_err(SpawnError::Irql)?;
        if self.name.is_none() && self.priority.is_none() && self.affinity.is_none() {
            let io = self.io(passive)?;
            let options = Options { io, ..Options::default() };
            return spawn_with::<E, F, T>(passive, &options, owner, f);
        }
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
            Some(GroupAffinity { group, mask }) => {
                let affinity =
                    Affinity::new(passive, group, mask).map_err(SpawnError::NotSupported)?;
                // `KeSetSystemGroupAffinityThread` ignores an affinity outside the active
                // processors silently: refuse it here instead.
                let topology = Topology::query(passive).map_err(SpawnError::NotSupported)?;
                if mask & !processor_mask(topology.processors(group)) != 0 {
                    return Err(SpawnError::InvalidArgument(
                        "affinity outside the active processors of the group",
                    ));
                }
                affinity
            }
        };
        let options = Options {
            io: self.io(passive)?,
            priority: self.priority,
            name: self.name.map(|_| name.get(..name_len).unwrap_or(&[])),
            affinity,
        };
        spawn_with::<Gated<E>, F, T>(passive, &options, owner, f)
    }

    /// `IoCreateSystemThread` and the object, when an I/O object was set.
    fn io(
        &self,
        passive: Passive,
    ) -> Result<Option<(IoCreateSystemThread, NonNull<c_void>)>, SpawnError> {
        let Some(IoObject { object, .. }) = self.io_object else {
            return Ok(None);
        };
        let create = IoCreateSystemThread::get(passive)
            .ok_or(SpawnError::NotSupported(IoCreateSystemThread::NAME))?;
        Ok(Some((create, object)))
    }
}

/// The mask of the first `count` processors of a group.
pub(crate) fn processor_mask(count: u32) -> u64 {
    if count >= 64 { u64::MAX } else { (1u64 << count) - 1 }
}

/// The one call of `packet::spawn`.
#[inline]
fn spawn_with<'o, P, F, T>(
    passive: Passive,
    options: &Options<'_>,
    owner: Owner<'o>,
    f: F,
) -> Result<(JoinInner<T>, NonNull<P::Lent>), SpawnError>
where
    P: Extra,
    F: FnOnce(&P::Lent) -> T + Send + 'o,
    T: Send + 'o,
{
    // SAFETY: `F` and `T` live for `'o`; by `Owner`'s invariant, either `'o` is `'static` or the
    // scope list waits for the thread before `'o` ends. An I/O object in `options` is a driver
    // or device object (`IoObject`'s invariant).
    unsafe { packet::spawn::<P, F, T>(passive, options, owner.0, f) }
}
