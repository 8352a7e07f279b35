//! Non-paged pool for thread contexts.

use core::ptr::NonNull;

use super::irql::AtMostDispatch;
use crate::sys;

/// Alignment of every pool block on 64-bit Windows (`MEMORY_ALLOCATION_ALIGNMENT`).
pub(crate) const ALIGNMENT: usize = 16;

/// Pool tag of this crate's allocations: `SyTh` in pool dumps (`!poolused`, `PoolMon`).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"SyTh");

/// Allocates `size` bytes of non-executable non-paged pool (uninitialized), or `None` when the
/// pool is exhausted.
pub(crate) fn allocate(_: AtMostDispatch, size: usize) -> Option<NonNull<u8>> {
    // SAFETY: the proof shows IRQL <= DISPATCH_LEVEL, the routine's only precondition; a NULL
    // return is handled.
    let block = unsafe { sys::allocate_pool(size, POOL_TAG) };
    NonNull::new(block.cast())
}

/// Frees a block from [`allocate`].
///
/// # Safety
/// `block` came from `allocate` and is not used again; IRQL <= `DISPATCH_LEVEL`.
pub(crate) unsafe fn free(block: NonNull<u8>) {
    // SAFETY: by the caller's contract, a live block of ours with our tag.
    unsafe { sys::ExFreePoolWithTag(block.as_ptr().cast(), POOL_TAG) };
}
