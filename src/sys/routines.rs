//! The one list of the kernel routines this crate calls, with their wdk-sys signatures spelled
//! in WDK type names. Everything that names a routine comes from it:
//! - `ntoskrnl` declares the `static` and `own` routines as raw-dylib imports;
//! - `wdk` re-exports the `static` routines from `wdk_sys::ntddk`;
//! - every provider derives the function pointer types of the `optional` routines;
//! - `kernel::routine` derives a cached resolver per `optional` routine;
//! - the host model derives its `Call` enum and names, its table of optional routines, and
//!   checks that its routines have these signatures;
//! - `verify` (Windows host with wdk-sys) checks every signature against `wdk_sys::ntddk`.
//!
//! Adding a routine is one line here, its behaviour in the host model, and the kernel-layer
//! wrapper that calls it. (`KeGetCurrentIrql` is not listed: on x64 the IRQL is a CR8 read, and
//! each provider supplies `current_irql`.)

/// Calls `$callback! { static { fn ...; } own { fn ...; } optional { fn ...; } }`.
macro_rules! kernel_routines {
    ($callback:path) => {
        $callback! {
            // Imported statically; bound by wdk-sys.
            static {
                fn PsCreateSystemThread(
                    ThreadHandle: PHANDLE,
                    DesiredAccess: ULONG,
                    ObjectAttributes: POBJECT_ATTRIBUTES,
                    ProcessHandle: HANDLE,
                    ClientId: PCLIENT_ID,
                    StartRoutine: PKSTART_ROUTINE,
                    StartContext: PVOID,
                ) -> NTSTATUS;
                fn ObReferenceObjectByHandle(
                    Handle: HANDLE,
                    DesiredAccess: ACCESS_MASK,
                    ObjectType: POBJECT_TYPE,
                    AccessMode: KPROCESSOR_MODE,
                    Object: *mut PVOID,
                    HandleInformation: POBJECT_HANDLE_INFORMATION,
                ) -> NTSTATUS;
                fn ObfDereferenceObject(Object: PVOID) -> LONG_PTR;
                fn ZwClose(Handle: HANDLE) -> NTSTATUS;
                fn ZwWaitForSingleObject(
                    Handle: HANDLE,
                    Alertable: BOOLEAN,
                    Timeout: PLARGE_INTEGER,
                ) -> NTSTATUS;
                fn KeWaitForSingleObject(
                    Object: PVOID,
                    WaitReason: KWAIT_REASON,
                    WaitMode: KPROCESSOR_MODE,
                    Alertable: BOOLEAN,
                    Timeout: PLARGE_INTEGER,
                ) -> NTSTATUS;
                fn KeDelayExecutionThread(
                    WaitMode: KPROCESSOR_MODE,
                    Alertable: BOOLEAN,
                    Interval: PLARGE_INTEGER,
                ) -> NTSTATUS;
                fn KeSetPriorityThread(Thread: PKTHREAD, Priority: KPRIORITY) -> KPRIORITY;
                fn ZwSetInformationThread(
                    ThreadHandle: HANDLE,
                    ThreadInformationClass: THREADINFOCLASS,
                    ThreadInformation: PVOID,
                    ThreadInformationLength: ULONG,
                ) -> NTSTATUS;
                fn PsGetCurrentThreadId() -> HANDLE;
                fn KeInitializeEvent(Event: PRKEVENT, Type: EVENT_TYPE, State: BOOLEAN);
                fn KeSetEvent(Event: PRKEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> LONG;
                fn KeClearEvent(Event: PRKEVENT);
                fn KeWaitForMultipleObjects(
                    Count: ULONG,
                    Object: *mut PVOID,
                    WaitType: WAIT_TYPE,
                    WaitReason: KWAIT_REASON,
                    WaitMode: KPROCESSOR_MODE,
                    Alertable: BOOLEAN,
                    Timeout: PLARGE_INTEGER,
                    WaitBlockArray: PKWAIT_BLOCK,
                ) -> NTSTATUS;
                fn MmGetSystemRoutineAddress(SystemRoutineName: PUNICODE_STRING) -> PVOID;
                fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
            }
            // Imported statically, but not bound by wdk-sys: `ZwYieldExecution` is in no WDK
            // header; wdk-sys blocklists `ExAllocatePoolWithTag` (wdk builds use
            // `ExAllocatePool2` instead).
            own {
                fn ZwYieldExecution() -> NTSTATUS;
                fn ExAllocatePoolWithTag(
                    PoolType: POOL_TYPE,
                    NumberOfBytes: SIZE_T,
                    Tag: ULONG,
                ) -> PVOID;
            }
            // Resolved at run time with `MmGetSystemRoutineAddress` (missing from older
            // kernels, or from Wine 8): `IoCreateSystemThread` since Windows 8, the group
            // affinity and processor-count routines since Windows 7.
            optional {
                fn IoCreateSystemThread(
                    IoObject: PVOID,
                    ThreadHandle: PHANDLE,
                    DesiredAccess: ULONG,
                    ObjectAttributes: POBJECT_ATTRIBUTES,
                    ProcessHandle: HANDLE,
                    ClientId: PCLIENT_ID,
                    StartRoutine: PKSTART_ROUTINE,
                    StartContext: PVOID,
                ) -> NTSTATUS;
                fn KeSetSystemGroupAffinityThread(
                    Affinity: PGROUP_AFFINITY,
                    PreviousAffinity: PGROUP_AFFINITY,
                );
                fn KeRevertToUserGroupAffinityThread(PreviousAffinity: PGROUP_AFFINITY);
                fn KeQueryActiveGroupCount() -> USHORT;
                fn KeQueryActiveProcessorCountEx(GroupNumber: USHORT) -> ULONG;
            }
        }
    };
}
pub(crate) use kernel_routines;

/// `kernel_routines!` callback: the function pointer types of the optional routines, named
/// after them, in the types in scope.
macro_rules! optional_fn_types {
    (
        static { $($static:tt)* }
        own { $($own:tt)* }
        optional { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
    ) => {
        $(
            #[doc = concat!("The type of `", stringify!($name), "`, resolved at run time.")]
            pub(crate) type $name = unsafe extern "C" fn($($ty),*) $(-> $ret)?;
        )*
    };
}
pub(crate) use optional_fn_types;
