//! A global that holds at most one value, filled and emptied without locks or spinning.
//!
//! The demo keeps its worker's join handle here between DriverEntry (which fills it) and
//! DriverUnload (which empties it). The I/O manager serializes those two routines, but the
//! slot does not rely on it: `put` and `take` claim the slot with a compare-exchange, so
//! concurrent callers cannot both touch the value.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
/// Claimed by one `put` or `take` that is moving the value in or out.
const BUSY: u8 = 1;
const FULL: u8 = 2;

pub struct Slot<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is only accessed by the one caller that won the compare-exchange into
// BUSY, and it moves between threads (put on one, take on another): that needs `T: Send`,
// and nothing more, since no reference to the value is ever shared.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(EMPTY), value: UnsafeCell::new(MaybeUninit::uninit()) }
    }

    /// Stores `value`, or hands it back if the slot is not empty.
    pub fn put(&self, value: T) -> Result<(), T> {
        if self.state.compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return Err(value);
        }
        // SAFETY: state BUSY, claimed by us: nobody else reads or writes the cell.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(FULL, Ordering::Release);
        Ok(())
    }

    /// Moves the value out, if there is one.
    pub fn take(&self) -> Option<T> {
        if self.state.compare_exchange(FULL, BUSY, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return None;
        }
        // SAFETY: state BUSY, claimed by us: nobody else reads or writes the cell.
        let cell = unsafe { &mut *self.value.get() };
        // SAFETY: state was FULL: the value is initialized (published by `put`'s Release
        // store); it is read once, and the state becomes EMPTY.
        let value = unsafe { cell.assume_init_read() };
        self.state.store(EMPTY, Ordering::Release);
        Some(value)
    }
}

/// A value set once and then shared by reference, until the owner takes it back when nobody
/// uses it any more (`DriverUnload`, after joining every thread that used it): what a device
/// extension is to a real driver.
pub struct Shared<T> {
    slot: Slot<T>,
}

impl<T> Shared<T> {
    pub const fn new() -> Self {
        Self { slot: Slot::new() }
    }

    /// Stores `value`, or hands it back if one is stored already.
    pub fn set(&self, value: T) -> Result<(), T> {
        self.slot.put(value)
    }

    /// The stored value, if any.
    pub fn get(&self) -> Option<&T> {
        if self.slot.state.load(Ordering::Acquire) != FULL {
            return None;
        }
        // SAFETY: state FULL: only `take` (unsafe: no reference may be in use) writes the cell
        // from now on, so a shared reference to it is valid.
        let cell = unsafe { &*self.slot.value.get() };
        // SAFETY: state FULL: the value is initialized (published by `put`'s Release store).
        Some(unsafe { cell.assume_init_ref() })
    }

    /// Moves the value out.
    ///
    /// # Safety
    /// No reference returned by [`get`](Self::get) is still in use, and none is taken after.
    pub unsafe fn take(&self) -> Option<T> {
        self.slot.take()
    }
}
