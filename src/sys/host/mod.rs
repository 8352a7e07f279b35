//! Provider 3: the host model. Each routine below has exactly the signature of the ntoskrnl
//! import of the same name (asserted at the end of this file) and implements its documented
//! behaviour on top of [`model`].
// The routines keep the WDK's names and contracts (Microsoft's reference documents them).
#![allow(
    non_snake_case,
    clippy::upper_case_acronyms,
    clippy::missing_safety_doc,
    clippy::must_use_candidate,
    missing_docs
)]

extern crate std;

pub mod model;
mod rt;
mod state;

use core::ffi::c_void;
use core::time::Duration;
use std::alloc::Layout;
use std::sync::Arc;
use std::vec::Vec;

pub(crate) use super::types::*;
use model::{Call, ThreadRecord};
use state::{Dispatcher, State, ThreadObject, bugcheck};

/// `KEVENT` of the model: a dispatcher object, initialized by `KeInitializeEvent`.
#[repr(C)]
pub struct KEVENT {
    dispatcher: Dispatcher,
}
pub type PRKEVENT = *mut KEVENT;

const STATUS_SUCCESS: NTSTATUS = 0;
const STATUS_TIMEOUT: NTSTATUS = 0x102;
const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32.cast_signed();
const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32.cast_signed();
const STATUS_INVALID_INFO_CLASS: NTSTATUS = 0xC000_0003_u32.cast_signed();
const NT_CURRENT_THREAD: usize = usize::MAX - 1; // (HANDLE)-2
const POOL_ALIGNMENT: usize = 16;

fn require_irql(max: u32, routine: &str) {
    let irql = state::current_irql();
    if u32::from(irql) > max {
        bugcheck(&std::format!("IRQL_NOT_LESS_OR_EQUAL: {routine} called at IRQL {irql}"));
    }
}

/// The prelude of every fallible routine: checks the IRQL (a bugcheck above `max_irql`),
/// counts the call, and returns the caller's kernel, or the status of an injected failure.
fn begin(call: Call, max_irql: u32) -> Result<Arc<State>, NTSTATUS> {
    require_irql(max_irql, call.name());
    let kernel = State::current();
    match kernel.enter(call) {
        Some(status) => Err(status),
        None => Ok(kernel),
    }
}

/// A relative (negative, 100 ns units) or absent timeout as a `Duration`.
///
/// # Safety
/// `timeout` is NULL or points to a readable `LARGE_INTEGER`.
unsafe fn relative_timeout(timeout: PLARGE_INTEGER, routine: &str) -> Option<Duration> {
    if timeout.is_null() {
        return None;
    }
    // SAFETY: non-NULL and readable by the caller's contract.
    let timeout = unsafe { timeout.read() };
    // SAFETY: QuadPart is the union's only field.
    let value = unsafe { timeout.QuadPart };
    if value > 0 {
        bugcheck(&std::format!("{routine}: the model supports only relative timeouts"));
    }
    Some(Duration::from_nanos(value.unsigned_abs().saturating_mul(100)))
}

/// The timeout of a `Ke` wait, after its IRQL check: a zero timeout (a poll) is allowed up to
/// `DISPATCH_LEVEL`, any other wait up to `APC_LEVEL` (a bugcheck above).
///
/// # Safety
/// As [`relative_timeout`].
unsafe fn wait_timeout(timeout: PLARGE_INTEGER, routine: &str) -> Option<Duration> {
    // SAFETY: forwarded.
    let timeout = unsafe { relative_timeout(timeout, routine) };
    if timeout == Some(Duration::ZERO) {
        require_irql(DISPATCH_LEVEL, routine);
    } else {
        require_irql(APC_LEVEL, &std::format!("{routine} with a non-zero timeout"));
    }
    timeout
}

/// The dispatcher header of a thread object or event passed to `call`; stops the model with a
/// message naming the call and the object when it is neither, or a thread object without
/// references.
///
/// # Safety
/// `object` points to readable memory of at least a `Dispatcher` (what a driver passes as a
/// dispatcher object).
unsafe fn dispatcher<'a>(object: PVOID, call: &str) -> &'a Dispatcher {
    if object.is_null() {
        bugcheck(&std::format!("{call}: NULL object"));
    }
    // SAFETY: readable (caller's contract); both object kinds start with their `Dispatcher`,
    // whose first field is its kind (repr(C)).
    let kind = unsafe { object.cast::<usize>().read() };
    match kind {
        // SAFETY: a thread object of the model (its kind says so); they are never freed while
        // their kernel lives.
        state::THREAD_OBJECT => unsafe { &*object.cast::<ThreadObject>() }.check_alive(call),
        state::EVENT_OBJECT => {}
        _ => bugcheck(&std::format!(
            "{call}: {object:p} is not a dispatcher object (an event never initialized, or freed)"
        )),
    }
    // SAFETY: checked above: a live thread object or an initialized event.
    unsafe { &*object.cast::<Dispatcher>() }
}

/// The routine `name`, resolved once per model kernel.
pub(crate) fn cached_routine(
    index: usize,
    name: &'static str,
    resolve: impl FnOnce() -> Option<core::ptr::NonNull<c_void>>,
) -> Option<core::ptr::NonNull<c_void>> {
    // The Windows providers cache by index alone: a wrong index would hand out another
    // routine's address there, so the model checks it.
    if super::OPTIONAL_ROUTINES.get(index) != Some(&name) {
        bugcheck(&std::format!("routine cache: slot {index} is not {name}'s"));
    }
    State::current().cached_routine(name, resolve)
}

/// The calling thread's kernel's count of the driver's live threads.
pub(crate) fn live_threads<R>(f: impl FnOnce(&std::sync::atomic::AtomicUsize) -> R) -> R {
    f(&State::current().live_threads)
}

#[allow(clippy::too_many_arguments)]
unsafe fn create_thread(
    call: Call,
    io_object: Option<usize>,
    ThreadHandle: PHANDLE,
    ObjectAttributes: POBJECT_ATTRIBUTES,
    ProcessHandle: HANDLE,
    ClientId: PCLIENT_ID,
    StartRoutine: PKSTART_ROUTINE,
    StartContext: PVOID,
) -> NTSTATUS {
    let kernel = match begin(call, PASSIVE_LEVEL) {
        Ok(kernel) => kernel,
        Err(status) => return status,
    };
    let Some(start) = StartRoutine else {
        return STATUS_INVALID_PARAMETER;
    };
    let attributes = if ObjectAttributes.is_null() {
        0
    } else {
        // SAFETY: a non-NULL OBJECT_ATTRIBUTES pointer must be readable (routine contract).
        unsafe { (*ObjectAttributes).Attributes }
    };
    let record = ThreadRecord {
        id: 0,
        attributes,
        process_handle_given: !ProcessHandle.is_null(),
        io_object,
        name: None,
        priority: None,
        affinity: None,
        start_irql: 0,
    };
    let (object, id) = match kernel.create_thread(record, start, StartContext) {
        Ok(created) => created,
        Err(status) => return status,
    };
    let handle = kernel.insert_handle(object);
    // SAFETY: ThreadHandle must be writable (routine contract).
    unsafe { ThreadHandle.write(core::ptr::without_provenance_mut(handle)) };
    if !ClientId.is_null() {
        // SAFETY: a non-NULL ClientId must be writable (routine contract).
        unsafe {
            ClientId.write(CLIENT_ID {
                UniqueProcess: core::ptr::without_provenance_mut(4),
                UniqueThread: core::ptr::without_provenance_mut(id),
            });
        }
    }
    STATUS_SUCCESS
}

pub unsafe extern "C" fn PsCreateSystemThread(
    ThreadHandle: PHANDLE,
    _DesiredAccess: ULONG,
    ObjectAttributes: POBJECT_ATTRIBUTES,
    ProcessHandle: HANDLE,
    ClientId: PCLIENT_ID,
    StartRoutine: PKSTART_ROUTINE,
    StartContext: PVOID,
) -> NTSTATUS {
    // SAFETY: forwarded under this routine's own contract.
    unsafe {
        create_thread(
            Call::PsCreateSystemThread,
            None,
            ThreadHandle,
            ObjectAttributes,
            ProcessHandle,
            ClientId,
            StartRoutine,
            StartContext,
        )
    }
}

pub unsafe extern "C" fn IoCreateSystemThread(
    IoObject: PVOID,
    ThreadHandle: PHANDLE,
    _DesiredAccess: ULONG,
    ObjectAttributes: POBJECT_ATTRIBUTES,
    ProcessHandle: HANDLE,
    ClientId: PCLIENT_ID,
    StartRoutine: PKSTART_ROUTINE,
    StartContext: PVOID,
) -> NTSTATUS {
    if IoObject.is_null() {
        bugcheck("0x148 (IoCreateSystemThread): the I/O object is not a driver or device object");
    }
    // SAFETY: forwarded under this routine's own contract.
    unsafe {
        create_thread(
            Call::IoCreateSystemThread,
            Some(IoObject.addr()),
            ThreadHandle,
            ObjectAttributes,
            ProcessHandle,
            ClientId,
            StartRoutine,
            StartContext,
        )
    }
}

pub unsafe extern "C" fn ObReferenceObjectByHandle(
    Handle: HANDLE,
    _DesiredAccess: ACCESS_MASK,
    _ObjectType: POBJECT_TYPE,
    _AccessMode: KPROCESSOR_MODE,
    Object: *mut PVOID,
    _HandleInformation: POBJECT_HANDLE_INFORMATION,
) -> NTSTATUS {
    let kernel = match begin(Call::ObReferenceObjectByHandle, PASSIVE_LEVEL) {
        Ok(kernel) => kernel,
        Err(status) => return status,
    };
    let Some(object) = kernel.lookup_handle(Handle.addr()) else {
        return STATUS_INVALID_HANDLE;
    };
    // SAFETY: the handle table holds a reference, so the object is alive.
    unsafe { &*object }.add_ref("ObReferenceObjectByHandle");
    kernel.add_references(1);
    // SAFETY: Object must be writable (routine contract).
    unsafe { Object.write(object.cast_mut().cast()) };
    STATUS_SUCCESS
}

pub unsafe extern "C" fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR {
    require_irql(DISPATCH_LEVEL, "ObfDereferenceObject");
    let object = Object.cast::<ThreadObject>().cast_const();
    // SAFETY: the pointer is a model thread object (routine contract); they stay allocated
    // while their kernel lives.
    let kernel = unsafe { &*object }.kernel();
    let _ = kernel.enter(Call::ObfDereferenceObject);
    kernel.add_references(-1);
    // SAFETY: the caller's reference is given up here (a second release is reported).
    unsafe { ThreadObject::release(object, "ObfDereferenceObject") };
    0
}

pub unsafe extern "C" fn ZwClose(Handle: HANDLE) -> NTSTATUS {
    let kernel = match begin(Call::ZwClose, PASSIVE_LEVEL) {
        Ok(kernel) => kernel,
        Err(status) => return status,
    };
    let Some(object) = kernel.remove_handle(Handle.addr()) else {
        bugcheck(&std::format!(
            "INVALID_KERNEL_HANDLE: ZwClose({:#x}): the handle is not open (closed twice?)",
            Handle.addr()
        ));
    };
    // SAFETY: the handle owned one reference on the object; it is given up here.
    unsafe { ThreadObject::release(object, "ZwClose") };
    STATUS_SUCCESS
}

fn wait_status(signalled: bool) -> NTSTATUS {
    if signalled { STATUS_SUCCESS } else { STATUS_TIMEOUT }
}

pub unsafe extern "C" fn ZwWaitForSingleObject(
    Handle: HANDLE,
    _Alertable: BOOLEAN,
    Timeout: PLARGE_INTEGER,
) -> NTSTATUS {
    let kernel = match begin(Call::ZwWaitForSingleObject, PASSIVE_LEVEL) {
        Ok(kernel) => kernel,
        Err(status) => return status,
    };
    let Some(object) = kernel.lookup_handle(Handle.addr()) else {
        return STATUS_INVALID_HANDLE;
    };
    // SAFETY: Timeout is NULL or readable (routine contract).
    let timeout = unsafe { relative_timeout(Timeout, "ZwWaitForSingleObject") };
    // SAFETY: handles of the model refer to thread objects, kept alive by the open handle.
    wait_status(
        unsafe { dispatcher(object.cast_mut().cast(), "ZwWaitForSingleObject") }.wait(timeout),
    )
}

pub unsafe extern "C" fn KeWaitForSingleObject(
    Object: PVOID,
    _WaitReason: KWAIT_REASON,
    _WaitMode: KPROCESSOR_MODE,
    _Alertable: BOOLEAN,
    Timeout: PLARGE_INTEGER,
) -> NTSTATUS {
    // SAFETY: Timeout is NULL or readable (routine contract).
    let timeout = unsafe { wait_timeout(Timeout, "KeWaitForSingleObject") };
    if let Some(status) = State::current().enter(Call::KeWaitForSingleObject) {
        return status;
    }
    // SAFETY: Object is a dispatcher object the caller keeps alive (routine contract).
    wait_status(unsafe { dispatcher(Object, "KeWaitForSingleObject") }.wait(timeout))
}

pub unsafe extern "C" fn KeDelayExecutionThread(
    _WaitMode: KPROCESSOR_MODE,
    _Alertable: BOOLEAN,
    Interval: PLARGE_INTEGER,
) -> NTSTATUS {
    require_irql(APC_LEVEL, "KeDelayExecutionThread");
    if let Some(status) = State::current().enter(Call::KeDelayExecutionThread) {
        return status;
    }
    // SAFETY: Interval is readable (routine contract).
    let interval = unsafe { relative_timeout(Interval, "KeDelayExecutionThread") };
    rt::sleep(interval.unwrap_or(Duration::ZERO));
    STATUS_SUCCESS
}

pub unsafe extern "C" fn KeSetPriorityThread(Thread: PKTHREAD, Priority: KPRIORITY) -> KPRIORITY {
    require_irql(DISPATCH_LEVEL, "KeSetPriorityThread");
    if !(0..32).contains(&Priority) {
        bugcheck("KeSetPriorityThread: priority outside 0..=31");
    }
    // SAFETY: the caller holds a reference on this thread object (routine contract).
    let object = unsafe { &*Thread.cast::<ThreadObject>() };
    object.check_alive("KeSetPriorityThread");
    let kernel = object.kernel();
    let _ = kernel.enter(Call::KeSetPriorityThread);
    let mut previous = state::DEFAULT_PRIORITY;
    kernel.record(object.id, |r| {
        previous = r.priority.unwrap_or(state::DEFAULT_PRIORITY);
        r.priority = Some(Priority);
    });
    previous
}

pub unsafe extern "C" fn ZwSetInformationThread(
    ThreadHandle: HANDLE,
    ThreadInformationClass: THREADINFOCLASS,
    ThreadInformation: PVOID,
    ThreadInformationLength: ULONG,
) -> NTSTATUS {
    let kernel = match begin(Call::ZwSetInformationThread, PASSIVE_LEVEL) {
        Ok(kernel) => kernel,
        Err(status) => return status,
    };
    if ThreadInformationClass != THREAD_NAME_INFORMATION {
        return STATUS_INVALID_INFO_CLASS;
    }
    if ThreadInformationLength as usize != size_of::<UNICODE_STRING>() {
        return STATUS_INVALID_PARAMETER;
    }
    let id = if ThreadHandle.addr() == NT_CURRENT_THREAD {
        state::current_thread_id()
    } else {
        let Some(object) = kernel.lookup_handle(ThreadHandle.addr()) else {
            return STATUS_INVALID_HANDLE;
        };
        // SAFETY: the open handle keeps the thread object alive.
        unsafe { &*object }.id
    };
    // SAFETY: ThreadInformation points to a UNICODE_STRING of the given length (contract).
    let name = unsafe { ThreadInformation.cast::<UNICODE_STRING>().read() };
    if name.Length % 2 != 0 || name.Length > name.MaximumLength || name.Buffer.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Buffer holds Length bytes of UTF-16 (UNICODE_STRING contract).
    let units = unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2) };
    let text = std::string::String::from_utf16_lossy(units);
    kernel.record(id, |r| r.name = Some(text));
    STATUS_SUCCESS
}

pub unsafe extern "C" fn PsGetCurrentThreadId() -> HANDLE {
    let _ = State::current().enter(Call::PsGetCurrentThreadId);
    core::ptr::without_provenance_mut(state::current_thread_id())
}

pub unsafe extern "C" fn ZwYieldExecution() -> NTSTATUS {
    require_irql(PASSIVE_LEVEL, "ZwYieldExecution");
    if let Some(status) = State::current().enter(Call::ZwYieldExecution) {
        return status;
    }
    rt::yield_now();
    STATUS_SUCCESS
}

pub unsafe extern "C" fn KeInitializeEvent(Event: PRKEVENT, Type: EVENT_TYPE, State: BOOLEAN) {
    let _ = self::State::current().enter(Call::KeInitializeEvent);
    let auto_reset = Type != NOTIFICATION_EVENT;
    let kernel = self::State::current();
    let dispatcher = Dispatcher::new(state::EVENT_OBJECT, State != 0, auto_reset, &kernel);
    // SAFETY: Event points to writable storage for a KEVENT (routine contract).
    unsafe { Event.write(KEVENT { dispatcher }) };
}

pub unsafe extern "C" fn KeSetEvent(
    Event: PRKEVENT,
    _Increment: KPRIORITY,
    _Wait: BOOLEAN,
) -> LONG {
    require_irql(DISPATCH_LEVEL, "KeSetEvent");
    let _ = State::current().enter(Call::KeSetEvent);
    // SAFETY: Event is an initialized KEVENT (routine contract).
    LONG::from(unsafe { &*Event }.dispatcher.signal())
}

pub unsafe extern "C" fn KeClearEvent(Event: PRKEVENT) {
    require_irql(DISPATCH_LEVEL, "KeClearEvent");
    let _ = State::current().enter(Call::KeClearEvent);
    // SAFETY: Event is an initialized KEVENT (routine contract); checked by `dispatcher`.
    let _previous = unsafe { dispatcher(Event.cast(), "KeClearEvent") }.reset();
}

#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn KeWaitForMultipleObjects(
    Count: ULONG,
    Object: *mut PVOID,
    WaitType: WAIT_TYPE,
    _WaitReason: KWAIT_REASON,
    _WaitMode: KPROCESSOR_MODE,
    _Alertable: BOOLEAN,
    Timeout: PLARGE_INTEGER,
    WaitBlockArray: PKWAIT_BLOCK,
) -> NTSTATUS {
    // SAFETY: Timeout is NULL or readable (routine contract).
    let timeout = unsafe { wait_timeout(Timeout, "KeWaitForMultipleObjects") };
    if Count == 0 || Count > MAXIMUM_WAIT_OBJECTS {
        bugcheck(&std::format!("MAXIMUM_WAIT_OBJECTS_EXCEEDED: KeWaitForMultipleObjects({Count})"));
    }
    if Count > THREAD_WAIT_OBJECTS && WaitBlockArray.is_null() {
        bugcheck(&std::format!(
            "MAXIMUM_WAIT_OBJECTS_EXCEEDED: KeWaitForMultipleObjects({Count}) without a wait \
             block array"
        ));
    }
    if WaitType != WAIT_ALL && WaitType != WAIT_ANY {
        bugcheck("KeWaitForMultipleObjects: unknown wait type");
    }
    if let Some(status) = State::current().enter(Call::KeWaitForMultipleObjects) {
        return status;
    }
    // SAFETY: Object points to Count object pointers (routine contract).
    let pointers = unsafe { core::slice::from_raw_parts(Object, Count as usize) };
    let objects: Vec<&Dispatcher> = pointers
        .iter()
        // SAFETY: each is a dispatcher object the caller keeps alive (routine contract);
        // checked by `dispatcher`.
        .map(|&object| unsafe { dispatcher(object, "KeWaitForMultipleObjects") })
        .collect();
    match state::wait_multiple(&objects, WaitType == WAIT_ALL, timeout) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // index < 64
        Some(index) => STATUS_WAIT_0 + index as NTSTATUS,
        None => STATUS_TIMEOUT,
    }
}

pub unsafe extern "C" fn KeQueryActiveGroupCount() -> USHORT {
    let kernel = State::current();
    let _ = kernel.enter(Call::KeQueryActiveGroupCount);
    USHORT::try_from(kernel.topology().len()).unwrap_or(USHORT::MAX)
}

pub unsafe extern "C" fn KeQueryActiveProcessorCountEx(GroupNumber: USHORT) -> ULONG {
    let kernel = State::current();
    let _ = kernel.enter(Call::KeQueryActiveProcessorCountEx);
    let topology = kernel.topology();
    if GroupNumber == ALL_PROCESSOR_GROUPS {
        return topology.iter().sum();
    }
    topology.get(usize::from(GroupNumber)).copied().unwrap_or(0)
}

pub unsafe extern "C" fn MmGetSystemRoutineAddress(SystemRoutineName: PUNICODE_STRING) -> PVOID {
    require_irql(PASSIVE_LEVEL, "MmGetSystemRoutineAddress");
    let kernel = State::current();
    if kernel.enter(Call::MmGetSystemRoutineAddress).is_some() {
        return core::ptr::null_mut();
    }
    // SAFETY: SystemRoutineName points to a valid UNICODE_STRING (routine contract).
    let name = unsafe { &*SystemRoutineName };
    // SAFETY: Buffer holds Length bytes of UTF-16 (UNICODE_STRING contract).
    let units = unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length) / 2) };
    let text = std::string::String::from_utf16_lossy(units);
    let Some(&call) = model::OPTIONAL_ROUTINES.iter().find(|c| c.name() == text) else {
        return core::ptr::null_mut();
    };
    if kernel.hidden(call) {
        return core::ptr::null_mut();
    }
    optional_address(call)
}

fn pool_allocate(size: SIZE_T, tag: ULONG) -> PVOID {
    require_irql(DISPATCH_LEVEL, "ExAllocatePoolWithTag");
    let kernel = State::current();
    if kernel.enter(Call::ExAllocatePoolWithTag).is_some() {
        return core::ptr::null_mut();
    }
    let Ok(size) = usize::try_from(size) else {
        return core::ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(size.max(1), POOL_ALIGNMENT) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let block = unsafe { std::alloc::alloc(layout) };
    if !block.is_null() {
        kernel.pool_insert(block, layout, tag);
    }
    block.cast()
}

pub unsafe extern "C" fn ExAllocatePoolWithTag(
    _PoolType: POOL_TYPE,
    NumberOfBytes: SIZE_T,
    Tag: ULONG,
) -> PVOID {
    pool_allocate(NumberOfBytes, Tag)
}

/// Allocates pool as the `ntoskrnl` provider does, with `ExAllocatePoolWithTag`.
///
/// # Safety
/// None beyond the routine's (IRQL <= `DISPATCH_LEVEL`, checked by the model).
pub unsafe fn allocate_pool(size: usize, tag: u32) -> PVOID {
    // SAFETY: forwarded.
    unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size as SIZE_T, tag) }
}

pub unsafe extern "C" fn ExFreePoolWithTag(P: PVOID, Tag: ULONG) {
    require_irql(DISPATCH_LEVEL, "ExFreePoolWithTag");
    let kernel = State::current();
    let _ = kernel.enter(Call::ExFreePoolWithTag);
    let Some((layout, allocated_tag)) = kernel.pool_remove(P.addr()) else {
        bugcheck(&std::format!(
            "BAD_POOL_CALLER: ExFreePoolWithTag({P:p}): not a live allocation of this kernel \
             (freed twice? or made in another model kernel: a driver's objects belong to the \
             kernel in whose `run` they were made, and are used and dropped inside its runs)"
        ));
    };
    if Tag != allocated_tag {
        bugcheck(&std::format!(
            "BAD_POOL_CALLER: ExFreePoolWithTag({P:p}, tag {Tag:#010x}): allocated with tag \
             {allocated_tag:#010x}"
        ));
    }
    // SAFETY: P was allocated by pool_allocate with this layout and is freed once (removed).
    unsafe { std::alloc::dealloc(P.cast(), layout) };
}

pub unsafe extern "C" fn KeSetSystemGroupAffinityThread(
    Affinity: PGROUP_AFFINITY,
    PreviousAffinity: PGROUP_AFFINITY,
) {
    require_irql(DISPATCH_LEVEL, "KeSetSystemGroupAffinityThread");
    let _ = State::current().enter(Call::KeSetSystemGroupAffinityThread);
    // SAFETY: Affinity points to a readable GROUP_AFFINITY (routine contract).
    let affinity = unsafe { Affinity.read() };
    if affinity.Mask == 0 {
        bugcheck("KeSetSystemGroupAffinityThread: empty affinity mask");
    }
    // Like the real routine, an affinity outside the active processors is ignored silently.
    let topology = State::current().topology();
    let valid = topology.get(usize::from(affinity.Group)).is_some_and(|&count| {
        let all = if count >= 64 { u64::MAX } else { (1u64 << count) - 1 };
        affinity.Mask & !all == 0
    });
    let previous = if valid {
        state::set_affinity(Some((affinity.Group, affinity.Mask)))
    } else {
        state::current_affinity()
    };
    if !PreviousAffinity.is_null() {
        let (group, mask) = previous.unwrap_or((0, 0));
        // SAFETY: a non-NULL PreviousAffinity is writable (routine contract).
        unsafe {
            PreviousAffinity.write(GROUP_AFFINITY { Mask: mask, Group: group, Reserved: [0; 3] });
        };
    }
}

pub unsafe extern "C" fn KeRevertToUserGroupAffinityThread(PreviousAffinity: PGROUP_AFFINITY) {
    require_irql(DISPATCH_LEVEL, "KeRevertToUserGroupAffinityThread");
    let _ = State::current().enter(Call::KeRevertToUserGroupAffinityThread);
    // SAFETY: PreviousAffinity points to what KeSetSystemGroupAffinityThread wrote (contract).
    let previous = unsafe { PreviousAffinity.read() };
    let _ = state::set_affinity((previous.Mask != 0).then_some((previous.Group, previous.Mask)));
}

/// The calling thread's simulated IRQL.
pub fn current_irql() -> KIRQL {
    let _ = State::current().enter(Call::KeGetCurrentIrql);
    state::current_irql()
}

/// `kernel_routines!` callback: every routine of the list has exactly its listed signature
/// here, and `MmGetSystemRoutineAddress` answers with the optional ones.
macro_rules! host_routines {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $(fn $own:ident($($own_arg:ident: $own_ty:ty),* $(,)?) $(-> $own_ret:ty)?;)* }
        optional { $(fn $opt:ident($($opt_arg:ident: $opt_ty:ty),* $(,)?) $(-> $opt_ret:ty)?;)* }
    ) => {
        $(const _: unsafe extern "C" fn($($ty),*) $(-> $ret)? = $name;)*
        $(const _: unsafe extern "C" fn($($own_ty),*) $(-> $own_ret)? = $own;)*
        $(const _: optional::$opt = $opt;)*

        /// The address of the optional routine `call`, if it is one.
        fn optional_address(call: Call) -> PVOID {
            match call {
                $(Call::$opt => $opt as *mut c_void,)*
                _ => core::ptr::null_mut(),
            }
        }
    };
}
super::routines::kernel_routines!(host_routines);

/// The function pointer types of the optional routines.
pub(crate) mod optional {
    #[allow(clippy::wildcard_imports)]
    use super::*;
    super::super::routines::kernel_routines!(super::super::routines::optional_fn_types);
}

/// `kernel_routines!` callback: the public re-export of every routine of the list.
macro_rules! reexport_routines {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $(fn $own:ident($($own_arg:ident: $own_ty:ty),* $(,)?) $(-> $own_ret:ty)?;)* }
        optional { $(fn $opt:ident($($opt_arg:ident: $opt_ty:ty),* $(,)?) $(-> $opt_ret:ty)?;)* }
    ) => {
        pub use super::{$($name,)* $($own,)* $($opt,)*};
    };
}

/// The model's kernel routines themselves, with exactly the signatures of the ntoskrnl imports
/// of the same names, for driver code under test that calls kernel routines directly: in a
/// test build, point such calls here (e.g. a `cfg(test)` `use` of this module in place of
/// `wdk_sys::ntddk`), and the model counts them, injects failures, and stops the test with a
/// message naming the call and the object on a Driver Verifier-style error (a thread object
/// used after its last reference, pool freed twice or with another tag, a handle closed twice).
pub mod routines {
    #[allow(clippy::wildcard_imports)]
    pub use super::super::types::*;
    pub use super::{KEVENT, PRKEVENT};
    super::super::routines::kernel_routines!(reexport_routines);
}
