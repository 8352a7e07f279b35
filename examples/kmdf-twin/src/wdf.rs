//! The KMDF 1.33 binary interface the twin uses (x86-64), written from recorded facts, and the
//! three framework calls of the sample made through the bound function table.
//!
//! # Facts and their sources
//!
//! wdk-sys generates these from the WDK headers at build time; the twin cannot (no WDK here),
//! so it spells the few it needs and checks every offset at compile time (`const` assertions
//! below). Sources:
//!
//! - **[MS]** microsoft/Windows-Driver-Frameworks (MIT), commit `b6191d95`: the KMDF 1.33
//!   public headers `src/publicinc/wdf/kmdf/1.33/{wdffuncenum,wdfdriver,wdfobject,wdfdevice}.h`,
//!   the loader interface `src/framework/shared/inc/private/common/fxldr.h`, and the
//!   framework's side of the bind, `src/framework/kmdf/src/librarycommon/fxlibrarycommon.cpp`:
//!   for a client binding more functions than KMDF 1.13 had, "`FuncTable` arrives with a ptr
//!   to `&WdfFunctions`", and the framework stores its table's address there.
//! - **[WDR]** microsoft/windows-drivers-rs (the crates wdk-sys comes from). Its committed
//!   `crates/wdk-sys/generated_bindings/wdf.rs` (commit `d9fcaa21`) holds only `RtlAssert`; the
//!   generated `types.rs` next to it, which would hold the table indices and WDF structures, is
//!   not retrievable here. What the repository does hold: `crates/wdk-macros/tests/
//!   unit-tests-input/generated-types.rs` ("snippet of a bindgen-generated file": the
//!   `_WDFFUNCENUM` entries `WdfDriverCreateTableIndex = 116` and
//!   `WdfFunctionTableNumEntries = 458`, and `PFN_WDFDRIVERCREATE` as an `extern "C"` function
//!   taking `PWDF_DRIVER_GLOBALS` first), and the macro expansion test
//!   `tests/wdk-macros-tests/tests/outputs/stable/macrotest/wdf_device_create.expanded.rs`
//!   (a WDF call reads `WdfFunctions[_WDFFUNCENUM::<Name>TableIndex]` and passes
//!   `WdfDriverGlobals` first); wdk-build 0.6.0 `src/lib.rs` links KMDF drivers with
//!   `/ENTRY:FxDriverEntry`.
//! - **[SE]** speakeasy-emulator 1.5.11, `speakeasy/winenv/defs/wdf.py` (its `WDFFUNCTIONS`,
//!   `WDF_BIND_INFO`, `WDF_DRIVER_CONFIG`) and `speakeasy/winenv/api/kernelmode/wdfldr.py`
//!   (its `WdfVersionBind` writes the function table's address to `*BindInfo.FuncTable` and
//!   the globals' address to `*ComponentGlobals`). `tools/emulate/kmdf_twin.py` compares the
//!   twin's printed layout with these definitions on every run.
//! - **[ROS]** reactos/reactos `sdk/lib/drivers/wdf/wdfdriverentry/wdfdriverentry.c`, a
//!   re-implementation of the WDK's `WdfDriverEntry.lib` (facts only): the stub's bind info
//!   names the component `L"KmdfLibrary"`, points `FuncTable` at the stub's `WdfFunctions`
//!   variable and gets `WdfDriverGlobals` through `ComponentGlobals`.
//!
//! | fact | value | sources |
//! |---|---|---|
//! | `WdfDeviceWdmGetDeviceObjectTableIndex` | 31 | MS; SE (`pfnWdfDeviceWdmGetDeviceObject` at 0xF8) |
//! | `WdfDeviceCreateTableIndex` | 75 | MS; SE (0x258) |
//! | `WdfDriverCreateTableIndex` | 116 | MS; WDR; SE (0x3A0) |
//! | `WdfFunctionTableNumEntries` (KMDF 1.33) | 458 | MS; WDR (SE's table has 377 entries and ignores `FuncCount`) |
//! | `WDF_BIND_INFO`: `Size` u32, `Component` `PWCHAR`, `Version` {u32 Major, Minor, Build}, `FuncCount` u32, `FuncTable` `WDFFUNC*`, `Module` | offsets 0, 8, 16, 28, 32, 40; size 48 | MS (fxldr.h); SE |
//! | `WdfVersionBind(PDRIVER_OBJECT, PUNICODE_STRING, PWDF_BIND_INFO, PWDF_COMPONENT_GLOBALS*) -> NTSTATUS`, exported by `wdfldr.sys` | | MS (fxldr.h); SE |
//! | `WDF_DRIVER_CONFIG`: `Size`, `EvtDriverDeviceAdd`, `EvtDriverUnload`, `DriverInitFlags`, `DriverPoolTag` | offsets 0, 8, 16, 24, 28; size 32 | MS (wdfdriver.h); SE |
//! | `WDF_OBJECT_ATTRIBUTES`: `Size`, `EvtCleanupCallback`, `EvtDestroyCallback`, `ExecutionLevel`, `SynchronizationScope`, `ParentObject`, `ContextSizeOverride`, `ContextTypeInfo` | offsets 0, 8, 16, 24, 28, 32, 40, 48; size 56 | MS (wdfobject.h); SE has no definition (its `WdfDeviceCreate` ignores the attributes) |
//! | `WdfExecutionLevelInheritFromParent`, `WdfSynchronizationScopeInheritFromParent` (what `WDF_OBJECT_ATTRIBUTES_INIT` sets) | 1, 1 | MS (wdfobject.h) |
//! | `WdfDriverCreate(Globals, PDRIVER_OBJECT, PCUNICODE_STRING, PWDF_OBJECT_ATTRIBUTES, PWDF_DRIVER_CONFIG, WDFDRIVER*) -> NTSTATUS` | | MS (wdfdriver.h); WDR |
//! | `WdfDeviceCreate(Globals, PWDFDEVICE_INIT*, PWDF_OBJECT_ATTRIBUTES, WDFDEVICE*) -> NTSTATUS` | | MS (wdfdevice.h); WDR |
//! | `WdfDeviceWdmGetDeviceObject(Globals, WDFDEVICE) -> PDEVICE_OBJECT` | | MS (wdfdevice.h) |
//! | `EvtDriverDeviceAdd(WDFDRIVER, PWDFDEVICE_INIT) -> NTSTATUS`, `EvtDriverUnload(WDFDRIVER)`, `EvtCleanupCallback(WDFOBJECT)` | | MS |
//!
//! The headers declare the functions `NTAPI` and wdk-sys binds them `extern "C"`: on x86-64
//! both are the one Windows x64 calling convention. The twin uses `extern "C"`, as wdk-sys does
//! and as the sample's callbacks are declared.

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::rt::UnicodeString;

/// `NTSTATUS`.
pub type NtStatus = i32;
/// `WDFDRIVER`, `WDFDEVICE`, `WDFOBJECT`: opaque framework handles.
pub type WdfHandle = *mut c_void;
/// `WDFDEVICE_INIT`: opaque, owned by the framework (callbacks get a `PWDFDEVICE_INIT`).
#[repr(C)]
pub struct WdfDeviceInit {
    _opaque: [u8; 0],
}
/// `WDFFUNC`: an entry of the framework's function table.
pub type WdfFunc = unsafe extern "C" fn();

/// `PFN_WDF_DRIVER_DEVICE_ADD`.
pub type EvtDriverDeviceAdd =
    extern "C" fn(driver: WdfHandle, device_init: *mut WdfDeviceInit) -> NtStatus;
/// `PFN_WDF_DRIVER_UNLOAD`.
pub type EvtDriverUnload = extern "C" fn(driver: WdfHandle);
/// `PFN_WDF_OBJECT_CONTEXT_CLEANUP` (and `_DESTROY`, the same shape).
pub type EvtObjectCallback = extern "C" fn(object: WdfHandle);

/// `WDFFUNCENUM` entries of KMDF 1.33.
pub mod index {
    /// `WdfDeviceWdmGetDeviceObjectTableIndex`.
    pub const DEVICE_WDM_GET_DEVICE_OBJECT: usize = 31;
    /// `WdfDeviceCreateTableIndex`.
    pub const DEVICE_CREATE: usize = 75;
    /// `WdfDriverCreateTableIndex`.
    pub const DRIVER_CREATE: usize = 116;
    /// `WdfFunctionTableNumEntries`: the count a 1.33 client binds with.
    pub const FUNCTION_TABLE_NUM_ENTRIES: u32 = 458;
}

/// The KMDF version the twin binds to (the sample's `kmdf-version-major` and
/// `target-kmdf-version-minor`). Neither loader here checks the build number.
pub const KMDF_MAJOR: u32 = 1;
/// See [`KMDF_MAJOR`].
pub const KMDF_MINOR: u32 = 33;

/// `WDF_VERSION`.
#[repr(C)]
pub struct WdfVersion {
    /// `Major`.
    pub major: u32,
    /// `Minor`.
    pub minor: u32,
    /// `Build`.
    pub build: u32,
}

/// `WDF_BIND_INFO`.
#[repr(C)]
pub struct WdfBindInfo {
    /// `Size`: `sizeof(WDF_BIND_INFO)`.
    pub size: u32,
    /// `Component`: NUL-terminated UTF-16.
    pub component: *const u16,
    /// `Version`.
    pub version: WdfVersion,
    /// `FuncCount`.
    pub func_count: u32,
    /// `FuncTable`: where the loader stores the address of its function table.
    pub func_table: *mut *mut Option<WdfFunc>,
    /// `Module`: the loader's.
    pub module: *mut c_void,
}

/// `WDF_DRIVER_CONFIG`.
#[repr(C)]
pub struct WdfDriverConfig {
    /// `Size`.
    pub size: u32,
    /// `EvtDriverDeviceAdd`.
    pub evt_driver_device_add: Option<EvtDriverDeviceAdd>,
    /// `EvtDriverUnload`.
    pub evt_driver_unload: Option<EvtDriverUnload>,
    /// `DriverInitFlags`.
    pub driver_init_flags: u32,
    /// `DriverPoolTag`.
    pub driver_pool_tag: u32,
}

/// `WDF_OBJECT_ATTRIBUTES`.
#[repr(C)]
pub struct WdfObjectAttributes {
    /// `Size`.
    pub size: u32,
    /// `EvtCleanupCallback`.
    pub evt_cleanup_callback: Option<EvtObjectCallback>,
    /// `EvtDestroyCallback`.
    pub evt_destroy_callback: Option<EvtObjectCallback>,
    /// `ExecutionLevel` (`WDF_EXECUTION_LEVEL`).
    pub execution_level: i32,
    /// `SynchronizationScope` (`WDF_SYNCHRONIZATION_SCOPE`).
    pub synchronization_scope: i32,
    /// `ParentObject`.
    pub parent_object: WdfHandle,
    /// `ContextSizeOverride`.
    pub context_size_override: usize,
    /// `ContextTypeInfo`.
    pub context_type_info: *const c_void,
}

/// `WdfExecutionLevelInheritFromParent`.
pub const EXECUTION_LEVEL_INHERIT_FROM_PARENT: i32 = 1;
/// `WdfSynchronizationScopeInheritFromParent`.
pub const SYNCHRONIZATION_SCOPE_INHERIT_FROM_PARENT: i32 = 1;

// The layouts of the table above, checked where the twin is compiled.
const _: () = {
    assert!(offset_of!(WdfBindInfo, component) == 8);
    assert!(offset_of!(WdfBindInfo, version) == 16);
    assert!(offset_of!(WdfBindInfo, func_count) == 28);
    assert!(offset_of!(WdfBindInfo, func_table) == 32);
    assert!(offset_of!(WdfBindInfo, module) == 40);
    assert!(size_of::<WdfBindInfo>() == 48);
    assert!(offset_of!(WdfDriverConfig, evt_driver_device_add) == 8);
    assert!(offset_of!(WdfDriverConfig, evt_driver_unload) == 16);
    assert!(offset_of!(WdfDriverConfig, driver_init_flags) == 24);
    assert!(offset_of!(WdfDriverConfig, driver_pool_tag) == 28);
    assert!(size_of::<WdfDriverConfig>() == 32);
    assert!(offset_of!(WdfObjectAttributes, evt_cleanup_callback) == 8);
    assert!(offset_of!(WdfObjectAttributes, evt_destroy_callback) == 16);
    assert!(offset_of!(WdfObjectAttributes, execution_level) == 24);
    assert!(offset_of!(WdfObjectAttributes, synchronization_scope) == 28);
    assert!(offset_of!(WdfObjectAttributes, parent_object) == 32);
    assert!(offset_of!(WdfObjectAttributes, context_size_override) == 40);
    assert!(offset_of!(WdfObjectAttributes, context_type_info) == 48);
    assert!(size_of::<WdfObjectAttributes>() == 56);
    assert!(size_of::<Option<WdfFunc>>() == 8);
};

/// `WdfFunctions`: the loader stores its function table's address here during
/// `WdfVersionBind` (through `WDF_BIND_INFO.FuncTable`).
pub static FUNCTIONS: AtomicPtr<Option<WdfFunc>> = AtomicPtr::new(ptr::null_mut());

/// `WdfDriverGlobals`: the loader stores the driver's globals here during `WdfVersionBind`
/// (through its `ComponentGlobals` argument). Every WDF call passes it first.
pub static DRIVER_GLOBALS: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// The table entry `index`, if the bound table has one.
fn function(index: usize) -> Option<WdfFunc> {
    let table = FUNCTIONS.load(Ordering::Acquire);
    if table.is_null() || index >= index::FUNCTION_TABLE_NUM_ENTRIES as usize {
        return None;
    }
    // SAFETY: `WdfVersionBind` succeeded before any WDF call (the stub calls DriverEntry only
    // then), so `table` is the framework's table of `FUNCTION_TABLE_NUM_ENTRIES` entries, and
    // `index` is below that: the entry is inside the table.
    let entry = unsafe { table.add(index) };
    // SAFETY: as above, an initialized, aligned entry of the table, which the framework never
    // changes while the driver is bound.
    unsafe { entry.read() }
}

/// `PFN_WDFDRIVERCREATE`.
type WdfDriverCreateFn = unsafe extern "C" fn(
    globals: *mut c_void,
    driver: *mut c_void,
    registry_path: *const UnicodeString,
    attributes: *mut WdfObjectAttributes,
    config: *mut WdfDriverConfig,
    out: *mut WdfHandle,
) -> NtStatus;
/// `PFN_WDFDEVICECREATE`.
type WdfDeviceCreateFn = unsafe extern "C" fn(
    globals: *mut c_void,
    device_init: *mut *mut WdfDeviceInit,
    attributes: *mut WdfObjectAttributes,
    device: *mut WdfHandle,
) -> NtStatus;
/// `PFN_WDFDEVICEWDMGETDEVICEOBJECT`.
type WdfDeviceWdmGetDeviceObjectFn =
    unsafe extern "C" fn(globals: *mut c_void, device: WdfHandle) -> *mut c_void;

/// What a call returns when the bound table lacks the routine (never with a real loader).
const STATUS_NOT_IMPLEMENTED: NtStatus = 0xC000_0002_u32.cast_signed();

/// `WdfDriverCreate`.
///
/// # Safety
/// As the WDF routine: called from `DriverEntry` with its arguments; `config` valid for the
/// call; `attributes` and `out` NULL or valid.
pub unsafe fn driver_create(
    driver: *mut c_void,
    registry_path: *const UnicodeString,
    attributes: *mut WdfObjectAttributes,
    config: *mut WdfDriverConfig,
    out: *mut WdfHandle,
) -> NtStatus {
    let Some(entry) = function(index::DRIVER_CREATE) else { return STATUS_NOT_IMPLEMENTED };
    // SAFETY: entry `WdfDriverCreateTableIndex` of the bound table is `PFN_WDFDRIVERCREATE`
    // (facts table above); both are plain function pointers.
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfDriverCreateFn>(entry) };
    // SAFETY: the caller's contract, and the globals the loader gave this driver.
    unsafe {
        call(DRIVER_GLOBALS.load(Ordering::Acquire), driver, registry_path, attributes, config, out)
    }
}

/// `WdfDeviceCreate`.
///
/// # Safety
/// As the WDF routine: `device_init` points at the device-init pointer the framework passed to
/// `EvtDriverDeviceAdd`; `attributes` NULL or valid; `device` valid for a write.
pub unsafe fn device_create(
    device_init: *mut *mut WdfDeviceInit,
    attributes: *mut WdfObjectAttributes,
    device: *mut WdfHandle,
) -> NtStatus {
    let Some(entry) = function(index::DEVICE_CREATE) else { return STATUS_NOT_IMPLEMENTED };
    // SAFETY: entry `WdfDeviceCreateTableIndex` is `PFN_WDFDEVICECREATE` (facts table).
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfDeviceCreateFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), device_init, attributes, device) }
}

/// `WdfDeviceWdmGetDeviceObject`: the WDM `DEVICE_OBJECT` of `device` (NULL if the table lacks
/// the routine).
///
/// # Safety
/// `device` is a live `WDFDEVICE` of this driver.
pub unsafe fn device_wdm_get_device_object(device: WdfHandle) -> *mut c_void {
    let Some(entry) = function(index::DEVICE_WDM_GET_DEVICE_OBJECT) else {
        return ptr::null_mut();
    };
    // SAFETY: entry `WdfDeviceWdmGetDeviceObjectTableIndex` is
    // `PFN_WDFDEVICEWDMGETDEVICEOBJECT` (facts table).
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfDeviceWdmGetDeviceObjectFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), device) }
}

/// The layout facts above as one line, for the harness to compare with speakeasy's own WDF
/// definitions.
pub fn layout_line(log: crate::worker::Log) {
    log(format_args!(
        "kmdf-twin: layout index.DeviceWdmGetDeviceObject={} index.DeviceCreate={} \
         index.DriverCreate={} FuncCount={} BindInfo.size={} BindInfo.FuncCount.offset={} \
         BindInfo.FuncTable.offset={} DriverConfig.size={} \
         DriverConfig.EvtDriverDeviceAdd.offset={} DriverConfig.EvtDriverUnload.offset={} \
         ObjectAttributes.size={} ObjectAttributes.EvtCleanupCallback.offset={}",
        index::DEVICE_WDM_GET_DEVICE_OBJECT,
        index::DEVICE_CREATE,
        index::DRIVER_CREATE,
        index::FUNCTION_TABLE_NUM_ENTRIES,
        size_of::<WdfBindInfo>(),
        offset_of!(WdfBindInfo, func_count),
        offset_of!(WdfBindInfo, func_table),
        size_of::<WdfDriverConfig>(),
        offset_of!(WdfDriverConfig, evt_driver_device_add),
        offset_of!(WdfDriverConfig, evt_driver_unload),
        size_of::<WdfObjectAttributes>(),
        offset_of!(WdfObjectAttributes, evt_cleanup_callback),
    ));
}
