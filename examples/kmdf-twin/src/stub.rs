//! What the WDK's `WdfDriverEntry.lib` links into every KMDF driver: the image entry point,
//! which binds the driver to the framework and then calls the driver's `DriverEntry`.
//!
//! `FxDriverEntry` calls `wdfldr.sys!WdfVersionBind` with the driver's `WDF_BIND_INFO`
//! (component `KmdfLibrary`, KMDF 1.33, 458 functions; see [`crate::wdf`] for the sources). The
//! loader stores its function table's address in [`wdf::FUNCTIONS`] and the driver's globals
//! in [`wdf::DRIVER_GLOBALS`]; every WDF call goes through those two. Then `DriverEntry` runs.
//!
//! Not done here, unlike the WDK's stub: `WdfVersionUnbind` when `DriverEntry` fails, and
//! wrapping `DriverUnload` to unbind at unload when the framework's globals ask for it
//! (`DisplaceDriverUnload`). speakeasy's loader implements no `WdfVersionUnbind` (a call would
//! stop the emulation) and its globals are a zeroed block, so neither path could run there.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use crate::rt::UnicodeString;
use crate::wdf::{self, NtStatus, WdfBindInfo, WdfVersion};

#[link(name = "wdfldr.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn WdfVersionBind(
        driver: *mut c_void,
        registry_path: *const UnicodeString,
        bind_info: *mut WdfBindInfo,
        component_globals: *mut *mut c_void,
    ) -> NtStatus;
}

/// `L"KmdfLibrary"`, NUL-terminated.
static COMPONENT: [u16; 12] = {
    let name = *b"KmdfLibrary\0";
    let mut wide = [0u16; 12];
    let mut i = 0;
    while i < name.len() {
        wide[i] = name[i] as u16;
        i += 1;
    }
    wide
};

/// The bind information the framework keeps a pointer to for the driver's lifetime, hence a
/// static the loader may write (`WdfVersionBind` takes it `__inout`).
struct BindInfoCell(UnsafeCell<WdfBindInfo>);

// SAFETY: only `FxDriverEntry` (which the kernel calls once) and the loader during that call
// touch the cell.
unsafe impl Sync for BindInfoCell {}

static BIND_INFO: BindInfoCell = BindInfoCell(UnsafeCell::new(WdfBindInfo {
    #[allow(clippy::cast_possible_truncation)] // 48: checked in `wdf`
    size: size_of::<WdfBindInfo>() as u32,
    component: COMPONENT.as_ptr(),
    version: WdfVersion { major: wdf::KMDF_MAJOR, minor: wdf::KMDF_MINOR, build: 0 },
    func_count: wdf::index::FUNCTION_TABLE_NUM_ENTRIES,
    func_table: wdf::FUNCTIONS.as_ptr(),
    module: ptr::null_mut(),
}));

/// The image entry point (`/ENTRY:FxDriverEntry`): binds to KMDF, then runs `DriverEntry`.
///
/// # Safety
/// Called by the kernel only, once, at `PASSIVE_LEVEL`, with this driver's `DRIVER_OBJECT` and
/// registry path.
// SAFETY: no other item of the image has this name.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FxDriverEntry(
    driver: *mut c_void,
    registry_path: *const UnicodeString,
) -> NtStatus {
    // SAFETY: the kernel's arguments, the bind info static (valid, writable, alive for the
    // image's lifetime), and the globals static, which the loader writes through.
    let status = unsafe {
        WdfVersionBind(driver, registry_path, BIND_INFO.0.get(), wdf::DRIVER_GLOBALS.as_ptr())
    };
    if status < 0 {
        crate::rt::log(format_args!("kmdf-twin: WdfVersionBind returned {status:#010x}"));
        return status;
    }
    crate::rt::log(format_args!(
        "kmdf-twin: bound to KMDF {}.{}: function table {:p}, driver globals {:p}",
        wdf::KMDF_MAJOR,
        wdf::KMDF_MINOR,
        wdf::FUNCTIONS.load(core::sync::atomic::Ordering::Acquire),
        wdf::DRIVER_GLOBALS.load(core::sync::atomic::Ordering::Acquire),
    ));
    // SAFETY: DriverEntry's contract is FxDriverEntry's, and the driver is bound.
    unsafe { crate::driver_entry(driver, registry_path) }
}
