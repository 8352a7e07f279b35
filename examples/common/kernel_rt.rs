//! The runtime every example driver built without the WDK needs, shared by the demo driver
//! and the KMDF twin (each includes this file with `#[path]`):
//! - what the prebuilt `core` of `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc`
//!   expects from the CRT (`_fltused`, `__CxxFrameHandler3`, `__chkstk`) and the memory
//!   routines the compiler may call;
//! - allocation-free logging through `DbgPrint`;
//! - a panic handler that bugchecks.
//!
//! Nothing here is exported from the image: the assembly symbols are not `#[no_mangle]`
//! Rust items, so rustc does not put them in the export list.

use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};

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
    /// `Length` in bytes, without a terminator.
    pub length: u16,
    /// `MaximumLength` in bytes.
    pub maximum_length: u16,
    /// `Buffer`.
    pub buffer: *const u16,
}

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

/// Writes `args` and a line break with `DbgPrint("%s", ...)` (no allocation; text past 510
/// bytes is cut; `%` in the text is harmless).
pub fn log(args: fmt::Arguments<'_>) {
    let mut line = Line { bytes: [0; 512], len: 0 };
    let _ = line.write_fmt(args);
    line.len = line.len.min(line.bytes.len() - 2);
    line.bytes[line.len] = b'\n';
    line.bytes[line.len + 1] = 0;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call, and "%s"
    // consumes exactly one `char*` vararg.
    unsafe { DbgPrint(c"%s".as_ptr(), line.bytes.as_ptr().cast::<c_char>()) };
}

/// Bugcheck code of a panic ('RPNC', as wdk-panic uses).
const BUGCHECK_RUST_PANIC: u32 = 0x5250_4E43;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line, column) =
        info.location().map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    log(format_args!(
        "{}: PANIC at {file}:{line}:{column}: {}",
        env!("CARGO_PKG_NAME"),
        info.message()
    ));
    // SAFETY: KeBugCheckEx takes plain integers and never returns; bugchecking is the
    // documented policy for a panic in kernel mode (panic = "abort", no unwinding).
    unsafe {
        KeBugCheckEx(
            BUGCHECK_RUST_PANIC,
            file.as_ptr().addr(),
            file.len(),
            line as usize,
            column as usize,
        )
    }
}
