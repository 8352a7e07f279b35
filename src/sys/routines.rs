//! The one list of statically imported kernel routines that wdk-sys binds, with their wdk-sys
//! signatures spelled in WDK type names. (`ZwYieldExecution` is in no WDK header and wdk-sys
//! blocklists `ExAllocatePoolWithTag`: `ntoskrnl` declares those two separately.) `ntoskrnl` turns it into raw-dylib imports; `verify` (Windows host with
//! wdk-sys) turns the same list into compile-time assertions against `wdk_sys::ntddk`.

/// Calls `$callback! { fn Name(Param: TYPE, ...) -> RET; ... }` with every routine.
macro_rules! kernel_routines {
    ($callback:ident) => {
        $callback! {
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
            fn MmGetSystemRoutineAddress(SystemRoutineName: PUNICODE_STRING) -> PVOID;
            fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
        }
    };
}
