//! The KMDF 1.33 binary interface the twin uses (x86-64), written from recorded facts, and the
//! framework calls of the sample made through the bound function table.
//!
//! # Facts and their sources
//!
//! wdk-sys generates these from the WDK headers at build time; the twin cannot (no WDK here),
//! so it spells the few it needs and checks every offset at compile time (`const` assertions
//! below). Sources:
//!
//! - **[MS]** microsoft/Windows-Driver-Frameworks (MIT), commit `b6191d95`: the KMDF 1.33
//!   public headers
//!   `src/publicinc/wdf/kmdf/1.33/{wdffuncenum,wdfdriver,wdfobject,wdfdevice,wdftimer}.h`,
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
//!   The framework's timer and object code, `src/framework/shared/core/fxtimer.cpp`
//!   (`FxTimer::Dispose` stops the timer with `Stop(TRUE)`, which flushes the timer's queued
//!   DPCs) and `src/framework/shared/object/fxobjectstatemachine.cpp`
//!   (`DisposeChildrenWorker`: every child is disposed, and its cleanup callback has returned,
//!   before the parent's `EvtCleanupCallback`).
//! - **[SE]** speakeasy-emulator 1.5.11, `speakeasy/winenv/defs/wdf.py` (its `WDFFUNCTIONS`,
//!   `WDF_BIND_INFO`, `WDF_DRIVER_CONFIG`, `WDF_PNPPOWER_EVENT_CALLBACKS`) and `speakeasy/winenv/api/kernelmode/wdfldr.py`
//!   (its `WdfVersionBind` writes the function table's address to `*BindInfo.FuncTable` and
//!   the globals' address to `*ComponentGlobals`). `tools/emulate/kmdf_twin.py` compares the
//!   twin's printed layout with these definitions on every run.
//! - **[DOC]** Microsoft's DDI reference (learn.microsoft.com, `wdfdevice` and `wdfobject`):
//!   `EVT_WDF_DEVICE_D0_ENTRY` (called at `PASSIVE_LEVEL`; its first call for a device passes
//!   `PreviousState` = `WdfPowerDeviceD3Final`), `EVT_WDF_DEVICE_D0_EXIT` (`PASSIVE_LEVEL`;
//!   `TargetState` = `WdfPowerDeviceD3Final` when the device is about to be removed, the system
//!   shuts down or resources are rebalanced; also called after a surprise removal, but not again
//!   for a device already out of D0) and `EVT_WDF_OBJECT_CONTEXT_CLEANUP` (a
//!   child's cleanup callback runs before its parent's; once an object's cleanup callback has
//!   been called, the driver may touch the object only from its destroy callback: so the
//!   sample's device cleanup leaves the timer alone).
//! - **[ROS]** reactos/reactos `sdk/lib/drivers/wdf/wdfdriverentry/wdfdriverentry.c`, a
//!   re-implementation of the WDK's `WdfDriverEntry.lib` (facts only): the stub's bind info
//!   names the component `L"KmdfLibrary"`, points `FuncTable` at the stub's `WdfFunctions`
//!   variable and gets `WdfDriverGlobals` through `ComponentGlobals`.
//!
//! | fact | value | sources |
//! |---|---|---|
//! | `WdfDeviceWdmGetDeviceObjectTableIndex` | 31 | MS; SE (`pfnWdfDeviceWdmGetDeviceObject` at 0xF8) |
//! | `WdfDeviceCreateTableIndex` | 75 | MS; SE (0x258) |
//! | `WdfDeviceInitSetPnpPowerEventCallbacksTableIndex` | 55 | MS; SE (0x1B8) |
//! | `WdfDriverCreateTableIndex` | 116 | MS; WDR; SE (0x3A0) |
//! | `WdfTimerCreateTableIndex`, `WdfTimerStartTableIndex`, `WdfTimerStopTableIndex` | 318, 319, 320 | MS; SE (0x9F0, 0x9F8, 0xA00; speakeasy leaves these entries NULL: the harness fills them) |
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
//! | `WDF_PNPPOWER_EVENT_CALLBACKS`: `Size` u32, then 17 callback pointers, `EvtDeviceD0Entry` first and `EvtDeviceD0Exit` third (`EvtDeviceD0EntryPostInterruptsEnabled` between them) | offsets 0, 8, 24; size 144 | MS (wdfdevice.h); SE |
//! | `WdfDeviceInitSetPnpPowerEventCallbacks(Globals, PWDFDEVICE_INIT, PWDF_PNPPOWER_EVENT_CALLBACKS)` | | MS (wdfdevice.h) |
//! | `EvtDeviceD0Entry(WDFDEVICE, WDF_POWER_DEVICE_STATE PreviousState) -> NTSTATUS`, `EvtDeviceD0Exit(WDFDEVICE, WDF_POWER_DEVICE_STATE TargetState) -> NTSTATUS`, both `_IRQL_requires_max_(PASSIVE_LEVEL)` | | MS (wdfdevice.h) |
//! | `WDF_POWER_DEVICE_STATE`: `WdfPowerDeviceInvalid` 0, `D0` 1, `D1` 2, `D2` 3, `D3` 4, `D3Final` 5 | | MS (wdfdevice.h) |
//! | a device's first D0 entry comes from `WdfPowerDeviceD3Final`, its removal's D0 exit goes to it (what the harness passes) | | DOC |
//! | `WDF_TIMER_CONFIG`: `Size` u32, `EvtTimerFunc`, `Period` u32 (ms), `AutomaticSerialization` `BOOLEAN`, `TolerableDelay` u32, `DECLSPEC_ALIGN(8) BOOLEAN UseHighResolutionTimer` | offsets 0, 8, 16, 20, 24, 32; size 40 | MS (wdftimer.h; SE has no definition) |
//! | `WdfTimerCreate(Globals, PWDF_TIMER_CONFIG, PWDF_OBJECT_ATTRIBUTES, WDFTIMER*) -> NTSTATUS` (the attributes' `ParentObject` must lead to a device) | | MS (wdftimer.h) |
//! | `WdfTimerStart(Globals, WDFTIMER, LONGLONG DueTime) -> BOOLEAN` (negative: relative, 100 ns units), `WdfTimerStop(Globals, WDFTIMER, BOOLEAN Wait) -> BOOLEAN` (`Wait` TRUE only at `PASSIVE_LEVEL`; waits for the callback) | | MS (wdftimer.h, fxtimer.cpp) |
//! | `EvtTimerFunc(WDFTIMER)`, `_IRQL_requires_max_(DISPATCH_LEVEL)` (a DPC unless the timer asks for passive execution) | | MS (wdftimer.h) |
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
/// `WDF_POWER_DEVICE_STATE`.
pub type WdfPowerDeviceState = i32;
/// `PFN_WDF_DEVICE_D0_ENTRY` and `PFN_WDF_DEVICE_D0_EXIT` (the same shape).
pub type EvtDeviceD0 = extern "C" fn(device: WdfHandle, state: WdfPowerDeviceState) -> NtStatus;
/// `PFN_WDF_TIMER`.
pub type EvtTimerFunc = extern "C" fn(timer: WdfHandle);

/// `WDFFUNCENUM` entries of KMDF 1.33.
pub mod index {
    /// `WdfDeviceWdmGetDeviceObjectTableIndex`.
    pub const DEVICE_WDM_GET_DEVICE_OBJECT: usize = 31;
    /// `WdfDeviceInitSetPnpPowerEventCallbacksTableIndex`.
    pub const DEVICE_INIT_SET_PNP_POWER_EVENT_CALLBACKS: usize = 55;
    /// `WdfDeviceCreateTableIndex`.
    pub const DEVICE_CREATE: usize = 75;
    /// `WdfDriverCreateTableIndex`.
    pub const DRIVER_CREATE: usize = 116;
    /// `WdfTimerCreateTableIndex`.
    pub const TIMER_CREATE: usize = 318;
    /// `WdfTimerStartTableIndex`.
    pub const TIMER_START: usize = 319;
    /// `WdfTimerStopTableIndex`.
    pub const TIMER_STOP: usize = 320;
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

/// `WDF_PNPPOWER_EVENT_CALLBACKS`: the two callbacks the sample sets by name, the other 15
/// as the array of NULL pointers they are here (`WDF_PNPPOWER_EVENT_CALLBACKS_INIT` zeroes
/// them).
#[repr(C)]
pub struct WdfPnpPowerEventCallbacks {
    /// `Size`.
    pub size: u32,
    /// `EvtDeviceD0Entry`.
    pub evt_device_d0_entry: Option<EvtDeviceD0>,
    /// `EvtDeviceD0EntryPostInterruptsEnabled`.
    pub evt_device_d0_entry_post_interrupts_enabled: Option<WdfFunc>,
    /// `EvtDeviceD0Exit`.
    pub evt_device_d0_exit: Option<EvtDeviceD0>,
    /// `EvtDeviceD0ExitPreInterruptsDisabled` through `EvtDeviceUsageNotificationEx`, in the
    /// header's order.
    pub others: [Option<WdfFunc>; 14],
}

/// A `BOOLEAN` declared `DECLSPEC_ALIGN(8)`: `WDF_TIMER_CONFIG.UseHighResolutionTimer`.
#[repr(C, align(8))]
pub struct Aligned8Boolean(pub u8);

/// `WDF_TIMER_CONFIG`.
#[repr(C)]
pub struct WdfTimerConfig {
    /// `Size`.
    pub size: u32,
    /// `EvtTimerFunc`.
    pub evt_timer_func: Option<EvtTimerFunc>,
    /// `Period`, in milliseconds (0: a one-shot timer).
    pub period: u32,
    /// `AutomaticSerialization`.
    pub automatic_serialization: u8,
    /// `TolerableDelay`, in milliseconds.
    pub tolerable_delay: u32,
    /// `UseHighResolutionTimer`.
    pub use_high_resolution_timer: Aligned8Boolean,
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
    assert!(offset_of!(WdfPnpPowerEventCallbacks, evt_device_d0_entry) == 8);
    assert!(offset_of!(WdfPnpPowerEventCallbacks, evt_device_d0_exit) == 24);
    assert!(offset_of!(WdfPnpPowerEventCallbacks, others) == 32);
    assert!(size_of::<WdfPnpPowerEventCallbacks>() == 144);
    assert!(offset_of!(WdfTimerConfig, evt_timer_func) == 8);
    assert!(offset_of!(WdfTimerConfig, period) == 16);
    assert!(offset_of!(WdfTimerConfig, automatic_serialization) == 20);
    assert!(offset_of!(WdfTimerConfig, tolerable_delay) == 24);
    assert!(offset_of!(WdfTimerConfig, use_high_resolution_timer) == 32);
    assert!(size_of::<WdfTimerConfig>() == 40);
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

/// `PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS`.
type WdfDeviceInitSetPnpPowerEventCallbacksFn = unsafe extern "C" fn(
    globals: *mut c_void,
    device_init: *mut WdfDeviceInit,
    callbacks: *mut WdfPnpPowerEventCallbacks,
);
/// `PFN_WDFTIMERCREATE`.
type WdfTimerCreateFn = unsafe extern "C" fn(
    globals: *mut c_void,
    config: *mut WdfTimerConfig,
    attributes: *mut WdfObjectAttributes,
    timer: *mut WdfHandle,
) -> NtStatus;
/// `PFN_WDFTIMERSTART`.
type WdfTimerStartFn =
    unsafe extern "C" fn(globals: *mut c_void, timer: WdfHandle, due_time: i64) -> u8;
/// `PFN_WDFTIMERSTOP`.
type WdfTimerStopFn = unsafe extern "C" fn(globals: *mut c_void, timer: WdfHandle, wait: u8) -> u8;

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

/// `WdfDeviceInitSetPnpPowerEventCallbacks` (nothing, if the table lacks the routine).
///
/// # Safety
/// As the WDF routine: `device_init` is the device-init the framework passed to
/// `EvtDriverDeviceAdd`, not yet given to `WdfDeviceCreate`; `callbacks` valid for the call.
pub unsafe fn device_init_set_pnp_power_event_callbacks(
    device_init: *mut WdfDeviceInit,
    callbacks: *mut WdfPnpPowerEventCallbacks,
) {
    let Some(entry) = function(index::DEVICE_INIT_SET_PNP_POWER_EVENT_CALLBACKS) else { return };
    // SAFETY: entry `WdfDeviceInitSetPnpPowerEventCallbacksTableIndex` is
    // `PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS` (facts table).
    let call =
        unsafe { core::mem::transmute::<WdfFunc, WdfDeviceInitSetPnpPowerEventCallbacksFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), device_init, callbacks) }
}

/// `WdfTimerCreate`.
///
/// # Safety
/// As the WDF routine: `config` and `attributes` valid for the call (the attributes' parent a
/// live device of this driver); `timer` valid for a write.
pub unsafe fn timer_create(
    config: *mut WdfTimerConfig,
    attributes: *mut WdfObjectAttributes,
    timer: *mut WdfHandle,
) -> NtStatus {
    let Some(entry) = function(index::TIMER_CREATE) else { return STATUS_NOT_IMPLEMENTED };
    // SAFETY: entry `WdfTimerCreateTableIndex` is `PFN_WDFTIMERCREATE` (facts table).
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfTimerCreateFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), config, attributes, timer) }
}

/// `WdfTimerStart`: whether the timer was already queued (FALSE if the table lacks the routine).
///
/// # Safety
/// `timer` is a live `WDFTIMER` of this driver.
pub unsafe fn timer_start(timer: WdfHandle, due_time: i64) -> u8 {
    let Some(entry) = function(index::TIMER_START) else { return 0 };
    // SAFETY: entry `WdfTimerStartTableIndex` is `PFN_WDFTIMERSTART` (facts table).
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfTimerStartFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), timer, due_time) }
}

/// `WdfTimerStop`: whether the timer was queued (FALSE if the table lacks the routine).
///
/// # Safety
/// `timer` is a live `WDFTIMER` of this driver; with `wait` TRUE, at `PASSIVE_LEVEL` and not in
/// the timer's own callback.
pub unsafe fn timer_stop(timer: WdfHandle, wait: u8) -> u8 {
    let Some(entry) = function(index::TIMER_STOP) else { return 0 };
    // SAFETY: entry `WdfTimerStopTableIndex` is `PFN_WDFTIMERSTOP` (facts table).
    let call = unsafe { core::mem::transmute::<WdfFunc, WdfTimerStopFn>(entry) };
    // SAFETY: the caller's contract, and this driver's globals.
    unsafe { call(DRIVER_GLOBALS.load(Ordering::Acquire), timer, wait) }
}

/// The layout facts above as lines (two: a `DbgPrint` line of the twin holds 511 bytes), for
/// the harness to compare with speakeasy's own WDF definitions.
pub fn layout_line(log: crate::worker::Log) {
    log(format_args!(
        "kmdf-twin: layout index.DeviceWdmGetDeviceObject={} index.DeviceCreate={} \
         index.DriverCreate={} FuncCount={} BindInfo.size={} BindInfo.FuncCount.offset={} \
         BindInfo.FuncTable.offset={} DriverConfig.size={} \
         DriverConfig.EvtDriverDeviceAdd.offset={} DriverConfig.EvtDriverUnload.offset={} \
         ObjectAttributes.size={} ObjectAttributes.EvtCleanupCallback.offset={} \
         ObjectAttributes.ParentObject.offset={}",
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
        offset_of!(WdfObjectAttributes, parent_object),
    ));
    log(format_args!(
        "kmdf-twin: layout index.DeviceInitSetPnpPowerEventCallbacks={} index.TimerCreate={} \
         index.TimerStart={} index.TimerStop={} PnpPowerEventCallbacks.size={} \
         PnpPowerEventCallbacks.EvtDeviceD0Entry.offset={} \
         PnpPowerEventCallbacks.EvtDeviceD0Exit.offset={} TimerConfig.size={} \
         TimerConfig.EvtTimerFunc.offset={} TimerConfig.Period.offset={} \
         TimerConfig.AutomaticSerialization.offset={} TimerConfig.TolerableDelay.offset={} \
         TimerConfig.UseHighResolutionTimer.offset={}",
        index::DEVICE_INIT_SET_PNP_POWER_EVENT_CALLBACKS,
        index::TIMER_CREATE,
        index::TIMER_START,
        index::TIMER_STOP,
        size_of::<WdfPnpPowerEventCallbacks>(),
        offset_of!(WdfPnpPowerEventCallbacks, evt_device_d0_entry),
        offset_of!(WdfPnpPowerEventCallbacks, evt_device_d0_exit),
        size_of::<WdfTimerConfig>(),
        offset_of!(WdfTimerConfig, evt_timer_func),
        offset_of!(WdfTimerConfig, period),
        offset_of!(WdfTimerConfig, automatic_serialization),
        offset_of!(WdfTimerConfig, tolerable_delay),
        offset_of!(WdfTimerConfig, use_high_resolution_timer),
    ));
}
