//! The little runtime a `no_std` driver built without the WDK needs (x86-64 only): the CRT
//! symbols the prebuilt msvc `core` references, a panic handler that bugchecks, and
//! allocation-free logging through `DbgPrint`.
//!
//! The twin allocates nothing through `alloc` (neither does the sample's worker: the crate
//! makes its one pool allocation per thread itself), so there is no global allocator. No
//! function has a frame over one page, so there is no `__chkstk` either: a frame that needed
//! one would fail the link (an unresolved `__chkstk`), not pass silently.

use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};

// `_fltused`: referenced by objects that use floating point; its value is irrelevant.
// `__CxxFrameHandler3`: named by `.xdata` unwind info; with `panic = "abort"` nothing unwinds,
// so it is never called (`ExceptionContinueSearch`, 1, if it were). Neither is exported: they
// are not Rust items.
core::arch::global_asm!(
    r#"
    .section .rdata,"dr"
    .globl _fltused
    .p2align 2
_fltused:
    .long 1

    .text
    .globl __CxxFrameHandler3
    .p2align 4
__CxxFrameHandler3:
    mov eax, 1
    ret
"#
);

/// `UNICODE_STRING`.
#[repr(C)]
pub struct UnicodeString {
    /// `Length` in bytes, without a terminator.
    pub length: u16,
    /// `MaximumLength` in bytes.
    pub maximum_length: u16,
    /// `Buffer`.
    pub buffer: *const u16,
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// Variadic: the C calling convention.
    fn DbgPrint(format: *const c_char, ...) -> u32;
}

// Calls the compiler may emit (ntoskrnl exports them), declared so that every profile links.
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
#[allow(dead_code)]
unsafe extern "C" {
    fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memmove(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memset(dest: *mut c_void, c: c_int, n: usize) -> *mut c_void;
    fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}

/// A line of at most 511 bytes (longer text is cut), NUL-terminated for `DbgPrint`.
struct Line {
    bytes: [u8; 512],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.bytes.len() - 1 - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes `args` and a line break with `DbgPrint("%s", ...)` (no allocation; `%` in the text
/// is harmless). The driver's [`Log`](crate::worker::Log).
pub fn log(args: fmt::Arguments<'_>) {
    let mut line = Line { bytes: [0; 512], len: 0 };
    let _ = line.write_fmt(args);
    line.len = line.len.min(line.bytes.len() - 2);
    line.bytes[line.len] = b'\n';
    line.bytes[line.len + 1] = 0;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call, and "%s"
    // consumes exactly one `char*` vararg.
    unsafe { DbgPrint(c"%s".as_ptr(), line.bytes.as_ptr()) };
}

/// Bugcheck code of a panic, as wdk-panic uses ('RPNC').
const BUGCHECK_RUST_PANIC: u32 = 0x5250_4E43;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    log(format_args!("kmdf-twin: PANIC at {file}:{line}: {}", info.message()));
    // SAFETY: KeBugCheckEx takes plain integers and does not return; a panic in kernel mode
    // stops the machine (panic = "abort", no unwinding).
    unsafe { KeBugCheckEx(BUGCHECK_RUST_PANIC, file.as_ptr().addr(), file.len(), line as usize, 0) }
}
