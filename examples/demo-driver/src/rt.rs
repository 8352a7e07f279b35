//! Minimal runtime for a `no_std` Windows kernel driver built without the WDK.
//!
//! Provides what the prebuilt `core`/`alloc` of `x86_64-pc-windows-msvc` and
//! `aarch64-pc-windows-msvc` expect from the CRT (`_fltused`, `__CxxFrameHandler3`,
//! `__chkstk`), a pool-backed global allocator, a panic handler that bugchecks, and
//! allocation-free debug logging through `DbgPrint`.
//!
//! Nothing here is exported from the image: the assembly symbols are not `#[no_mangle]`
//! Rust items, so rustc does not put them in the cdylib's export list.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

// CRT symbols referenced by the prebuilt msvc `core`/`alloc` objects (x86_64 and aarch64).
//
// * `_fltused`: the MSVC toolchain marks objects that use floating point with a reference
//   to it; its value is irrelevant.
// * `__CxxFrameHandler3`: named by `.xdata` unwind info; with `panic = "abort"` nothing
//   unwinds, so it is never called. If it ever were, `ExceptionContinueSearch` (1) is the
//   least harmful answer.
// * `__chkstk`: called by the prologue of functions whose frame exceeds one page. It
//   touches every page between the caller's stack pointer and the new one, from the top
//   down, so that an overflow hits the guard page instead of skipping over it, and does not
//   move the stack pointer itself (the caller does afterwards). The contract differs per
//   architecture; see each definition below.
core::arch::global_asm!(
    r#"
    .section .rdata,"dr"
    .globl _fltused
    .p2align 2
_fltused:
    .long 1
"#
);

// x86_64: `__chkstk` gets the frame size in bytes in `rax`; the caller then does
// `sub rsp, rax`. It preserves every register, including `rax`; only flags change.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    r#"
    .text
    .globl __CxxFrameHandler3
    .p2align 4
__CxxFrameHandler3:
    mov eax, 1
    ret

    .globl __chkstk
    .p2align 4
__chkstk:
    push rcx
    push rax
    lea rcx, [rsp + 24]
2:
    cmp rax, 0x1000
    jb 3f
    sub rcx, 0x1000
    test byte ptr [rcx], cl
    sub rax, 0x1000
    jmp 2b
3:
    sub rcx, rax
    test byte ptr [rcx], cl
    pop rax
    pop rcx
    ret
"#
);

// aarch64: the caller does `mov x15, #(size / 16)`, `bl __chkstk`, then
// `sub sp, sp, x15, lsl #4`, so `x15` holds the frame size in 16-byte units and must be
// preserved. `__chkstk` may clobber only `x16`, `x17` and the flags (LLVM marks exactly
// these as defined by the call); it does not touch `sp` or store anything.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
    .text
    .globl __CxxFrameHandler3
    .p2align 2
__CxxFrameHandler3:
    mov w0, #1
    ret

    .globl __chkstk
    .p2align 2
__chkstk:
    lsl x16, x15, #4
    mov x17, sp
2:
    cmp x16, #0x1000
    b.lo 3f
    sub x17, x17, #0x1000
    ldr xzr, [x17]
    sub x16, x16, #0x1000
    b 2b
3:
    sub x17, x17, x16
    ldr xzr, [x17]
    ret
"#
);

/// `UNICODE_STRING`.
#[repr(C)]
pub struct UnicodeString {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *const u16,
}

/// `POOL_TYPE::NonPagedPoolNx`.
const NON_PAGED_POOL_NX: c_int = 512;
/// `POOL_FLAG_NON_PAGED` for `ExAllocatePool2`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Pool tag; pool tools show it as "StTh".
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"StTh");
/// Bugcheck code used by the panic handler ('RPNC', as wdk-panic does).
const BUGCHECK_RUST_PANIC: u32 = 0x5250_4E43;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// Variadic, so it must use the C calling convention.
    pub fn DbgPrint(format: *const c_char, ...) -> u32;
}

// The compiler may emit calls to these; ntoskrnl exports them. Declared so that the import
// is resolved in every profile, not only when LTO happens to inline them away.
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
#[allow(dead_code)]
unsafe extern "C" {
    fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memmove(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memset(dest: *mut c_void, c: c_int, n: usize) -> *mut c_void;
    fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
    fn strlen(s: *const c_char) -> usize;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn ExAllocatePoolWithTag(pool_type: c_int, size: usize, tag: u32) -> *mut c_void;
    fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    fn MmGetSystemRoutineAddress(name: *const UnicodeString) -> *mut c_void;
    fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
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

/// Fixed-size, NUL-terminated text buffer that silently truncates.
struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl LineBuf {
    const fn new() -> Self {
        Self { buf: [0; 512], len: 0 }
    }

    /// Keeps the last byte for the terminating NUL.
    fn push_bytes(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - 1 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn as_c_str(&mut self) -> *const c_char {
        self.buf[self.len] = 0;
        self.buf.as_ptr().cast()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}

/// Formats `args` plus a newline into a stack buffer (no allocation; truncated at 511
/// bytes) and hands it to `DbgPrint("%s", ...)`, so `%` in the text is harmless.
pub fn log(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    if line.len == line.buf.len() - 1 {
        // Truncated: make sure the line still ends.
        line.len -= 1;
    }
    line.push_bytes(b"\n");
    let text = line.as_c_str();
    // SAFETY: both arguments are NUL-terminated strings that live across the call, and
    // "%s" consumes exactly one `char*` vararg.
    unsafe { DbgPrint(c"%s".as_ptr(), text) };
}

/// `println!`-like logging through `DbgPrint`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::rt::log(::core::format_args!($($arg)*))
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line, column) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("<unknown>", 0, 0),
    };
    log(format_args!("system-thread-demo: PANIC at {file}:{line}:{column}: {}", info.message()));
    // SAFETY: KeBugCheckEx takes plain integers and never returns; bugchecking is the
    // documented policy for a panic in kernel mode (panic = "abort", no unwinding).
    unsafe {
        KeBugCheckEx(
            BUGCHECK_RUST_PANIC,
            file.as_ptr() as usize,
            file.len(),
            line as usize,
            column as usize,
        )
    }
}
