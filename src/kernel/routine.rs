//! Kernel routines that not every kernel exports, looked up once with
//! `MmGetSystemRoutineAddress` and cached.

use core::ffi::c_void;
use core::ptr::NonNull;

use super::irql::{AtMostDispatch, Passive};
use crate::sys;

/// `name` in UTF-16, for a routine name known at compile time (ASCII).
const fn utf16<const N: usize>(name: &str) -> [u16; N] {
    let bytes = name.as_bytes();
    let mut out = [0u16; N];
    let mut i = 0;
    while i < bytes.len() && i < N {
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// Looks up an exported routine by its UTF-16 name; `None` where this kernel lacks it.
fn lookup(_: Passive, name: &[u16]) -> Option<NonNull<c_void>> {
    let bytes = u16::try_from(name.len() * 2).ok()?;
    let mut string = sys::UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: name.as_ptr().cast_mut(),
    };
    // SAFETY: the string is valid for the call, which only reads it; the proof shows
    // PASSIVE_LEVEL.
    NonNull::new(unsafe { sys::MmGetSystemRoutineAddress(&raw mut string) })
}

/// Resolves the optional routine `name`, number `index` of the list, once per kernel (`sys`
/// caches the answer).
fn resolve(passive: Passive, index: usize, name: &'static str) -> Option<NonNull<c_void>> {
    sys::cached_routine(index, name, || {
        // Names are at most 40 ASCII characters (`sys::OPTIONAL_ROUTINES`).
        let units: [u16; 40] = utf16(name);
        lookup(passive, units.get(..name.len())?)
    })
}

/// `kernel_routines!` callback: per optional routine, a type holding its function pointer and
/// a cached resolver.
macro_rules! optional_routines {
    (
        static { $($static:tt)* }
        own { $($own:tt)* }
        optional { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
    ) => {$(
        #[doc = concat!("`", stringify!($name), "`, resolved once with `MmGetSystemRoutineAddress`.")]
        #[derive(Clone, Copy)]
        pub(crate) struct $name(pub(crate) sys::optional::$name);

        impl $name {
            /// The exported name.
            pub(crate) const NAME: &'static str = stringify!($name);
            /// Its number in the routine list's optional section (computed at compile time).
            const INDEX: usize = sys::optional_index(Self::NAME);

            /// The routine, or `None` where this kernel does not export it.
            pub(crate) fn get(passive: Passive) -> Option<Self> {
                let address = resolve(passive, Self::INDEX, Self::NAME)?;
                // SAFETY: the kernel exports this routine under this name with this signature
                // (the routine list, checked against wdk-sys by `sys::verify`); a code address
                // converts to a function pointer of the same size.
                Some(Self(unsafe {
                    core::mem::transmute::<*mut c_void, sys::optional::$name>(address.as_ptr())
                }))
            }
        }
    )*};
}
sys::kernel_routines!(optional_routines);

/// A group affinity to run a thread with, and the routines that apply and revert it.
///
/// # Invariants
/// `mask` is not empty.
#[derive(Clone, Copy)]
pub(crate) struct Affinity {
    set: KeSetSystemGroupAffinityThread,
    revert: KeRevertToUserGroupAffinityThread,
    group: u16,
    mask: u64,
}

impl Affinity {
    /// Resolves the routines for `group`/`mask`; `Err` names a routine this kernel lacks.
    ///
    /// # Panics
    /// Never; an empty `mask` is refused by the caller (`None` here too).
    pub(crate) fn new(
        passive: Passive,
        group: u16,
        mask: u64,
    ) -> Result<Option<Self>, &'static str> {
        if mask == 0 {
            return Ok(None);
        }
        let set = KeSetSystemGroupAffinityThread::get(passive)
            .ok_or(KeSetSystemGroupAffinityThread::NAME)?;
        let revert = KeRevertToUserGroupAffinityThread::get(passive)
            .ok_or(KeRevertToUserGroupAffinityThread::NAME)?;
        // INVARIANT: the mask was checked above.
        Ok(Some(Self { set, revert, group, mask }))
    }

    /// Applies the affinity to the calling thread until the guard is dropped.
    pub(crate) fn enter(&self, _: AtMostDispatch) -> AffinityGuard {
        let mut affinity =
            sys::GROUP_AFFINITY { Mask: self.mask, Group: self.group, Reserved: [0; 3] };
        let mut previous = sys::GROUP_AFFINITY { Mask: 0, Group: 0, Reserved: [0; 3] };
        // SAFETY: resolved by name with this signature; both structures are live locals; the
        // mask is non-empty (type invariant); the proof shows IRQL <= DISPATCH_LEVEL.
        unsafe { (self.set.0)(&raw mut affinity, &raw mut previous) };
        AffinityGuard { revert: self.revert, previous }
    }
}

/// Restores the calling thread's previous affinity when dropped, on the same thread (it is not
/// `Send`: it holds a raw-pointer marker).
pub(crate) struct AffinityGuard {
    revert: KeRevertToUserGroupAffinityThread,
    previous: sys::GROUP_AFFINITY,
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        // SAFETY: `previous` is what KeSetSystemGroupAffinityThread returned on this thread,
        // which still runs at the IRQL it had then (the thread's closure returned at
        // PASSIVE_LEVEL, asserted by the start routine).
        unsafe { (self.revert.0)(&raw mut self.previous) };
    }
}

/// The active processor groups and the processors in each (`KeQueryActiveGroupCount`,
/// `KeQueryActiveProcessorCountEx`).
#[derive(Clone, Copy)]
pub(crate) struct Topology {
    count: KeQueryActiveProcessorCountEx,
    groups: u16,
}

impl Topology {
    /// Queries the active groups; `Err` names a routine this kernel lacks.
    pub(crate) fn query(passive: Passive) -> Result<Self, &'static str> {
        let groups = KeQueryActiveGroupCount::get(passive).ok_or(KeQueryActiveGroupCount::NAME)?;
        let count = KeQueryActiveProcessorCountEx::get(passive)
            .ok_or(KeQueryActiveProcessorCountEx::NAME)?;
        // SAFETY: resolved by name with this signature; callable at any IRQL, no arguments.
        let groups = unsafe { (groups.0)() };
        Ok(Self { count, groups })
    }

    /// Active processor groups.
    pub(crate) fn groups(&self) -> u16 {
        self.groups
    }

    /// Active processors in `group` (0 for a group that does not exist).
    pub(crate) fn processors(&self, group: u16) -> u32 {
        if group >= self.groups {
            return 0;
        }
        // SAFETY: resolved by name with this signature; callable at any IRQL; any group number
        // is accepted (an inactive one counts 0).
        unsafe { (self.count.0)(group) }
    }

    /// Active processors in all groups.
    pub(crate) fn total(&self) -> u32 {
        // SAFETY: as in `processors`; ALL_PROCESSOR_GROUPS counts every group.
        unsafe { (self.count.0)(sys::ALL_PROCESSOR_GROUPS) }
    }
}
