//! The demo driver's runtime: the shared one of the example drivers
//! (`examples/common/kernel_rt.rs`: CRT symbols, `DbgPrint` logging, the panic handler), plus
//! a pool-backed global allocator and the `log!` macro.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

#[path = "../../common/kernel_rt.rs"]
mod kernel_rt;

pub use kernel_rt::{DbgPrint, UnicodeString, log};

/// `POOL_TYPE::NonPagedPoolNx`.
const NON_PAGED_POOL_NX: c_int = 512;
/// `POOL_FLAG_NON_PAGED` for `ExAllocatePool2`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Pool tag; pool tools show it as "StTh".
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"StTh");

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn ExAllocatePoolWithTag(pool_type: c_int, size: usize, tag: u32) -> *mut c_void;
    fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    fn MmGetSystemRoutineAddress(name: *const UnicodeString) -> *mut c_void;
}

/// `PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)`
/// (Windows 10 2004+; missing in Wine 8, hence resolved at run time).
type ExAllocatePool2Fn =
    unsafe extern "system" fn(flags: u64, size: usize, tag: u32) -> *mut c_void;

/// Turns an ASCII string into a UTF-16 array at compile time.
const fn ascii_to_utf16<const N: usize>(s: &str) -> [u16; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii(), "ASCII only");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// NUL-terminated although UNICODE_STRING does not need it: speakeasy's
/// MmGetSystemRoutineAddress reads up to a NUL and ignores `Length`.
static EX_ALLOCATE_POOL2_NAME: [u16; 16] = ascii_to_utf16("ExAllocatePool2\0");

/// 0: not resolved yet; 1: not available; anything else: address of `ExAllocatePool2`.
static EX_ALLOCATE_POOL2: AtomicUsize = AtomicUsize::new(0);
const UNAVAILABLE: usize = 1;

/// Looks up optional kernel routines. Call once from `DriverEntry` (PASSIVE_LEVEL); the
/// allocator also resolves lazily if this was skipped.
pub fn init() {
    resolve_ex_allocate_pool2();
}

fn resolve_ex_allocate_pool2() -> usize {
    let cached = EX_ALLOCATE_POOL2.load(Ordering::Acquire);
    if cached != 0 {
        return cached;
    }
    let name = UnicodeString {
        length: ((EX_ALLOCATE_POOL2_NAME.len() - 1) * 2) as u16,
        maximum_length: (EX_ALLOCATE_POOL2_NAME.len() * 2) as u16,
        buffer: EX_ALLOCATE_POOL2_NAME.as_ptr(),
    };
    // SAFETY: `name` is a valid UNICODE_STRING whose buffer outlives the call; the routine
    // only reads it.
    let found = unsafe { MmGetSystemRoutineAddress(&name) } as usize;
    let value = if found == 0 { UNAVAILABLE } else { found };
    // Racing resolvers store the same value.
    EX_ALLOCATE_POOL2.store(value, Ordering::Release);
    value
}

/// Whether `ExAllocatePool2` was found (for diagnostics).
pub fn has_ex_allocate_pool2() -> bool {
    resolve_ex_allocate_pool2() != UNAVAILABLE
}

/// Non-paged, non-executable pool allocator.
///
/// Pool blocks are 16-byte aligned on x64; larger alignments are refused (null), which the
/// default alloc error handler turns into a panic, i.e. a bugcheck.
pub struct PoolAllocator;

// SAFETY: blocks come from the pool (valid, exclusively owned, at least `size` bytes, 16-byte
// aligned, never moved); larger alignments get null, which GlobalAlloc allows.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return ptr::null_mut();
        }
        let size = layout.size().max(1);
        let routine = resolve_ex_allocate_pool2();
        if routine == UNAVAILABLE {
            // SAFETY: plain pool allocation; the caller of `alloc` obeys the IRQL rules
            // of a non-paged allocation (<= DISPATCH_LEVEL).
            unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, POOL_TAG) }.cast()
        } else {
            // SAFETY: `routine` is the address MmGetSystemRoutineAddress returned for
            // "ExAllocatePool2", whose documented signature is `ExAllocatePool2Fn`.
            let ex_allocate_pool2 =
                unsafe { core::mem::transmute::<usize, ExAllocatePool2Fn>(routine) };
            // SAFETY: as for ExAllocatePoolWithTag above.
            unsafe { ex_allocate_pool2(POOL_FLAG_NON_PAGED, size, POOL_TAG) }.cast()
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: `p` came from `alloc` above (either routine) with the same tag, and the
        // GlobalAlloc contract says it is freed once.
        unsafe { ExFreePoolWithTag(p.cast(), POOL_TAG) }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

/// `println!`-like logging through `DbgPrint`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::rt::log(::core::format_args!($($arg)*))
    };
}
