//! Thread objects: creation, the creator's handle, referenced thread objects.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use super::irql::{AtMostApc, AtMostDispatch, Passive};
use super::routine::IoCreateSystemThread;
use super::wait::{self, Timeout, WaitError};
use crate::id::ThreadId;
use crate::status::NtStatus;
use crate::sys;

/// The start routine's type: exactly wdk-sys's `PKSTART_ROUTINE` without the `Option`.
pub(crate) type StartRoutine = unsafe extern "C" fn(sys::PVOID);

/// The creator's kernel handle to a new thread, closed when dropped.
///
/// # Invariants
/// `0` is an open kernel handle (`OBJ_KERNEL_HANDLE`) to a thread, owned by this value.
pub(crate) struct ThreadHandle(sys::HANDLE);

/// A referenced thread object, dereferenced when dropped.
///
/// # Invariants
/// `0` is a thread object on which this value owns one reference.
pub(crate) struct ThreadObject(NonNull<c_void>);

// SAFETY: a referenced object may be waited on and dereferenced from any thread.
unsafe impl Send for ThreadObject {}
// SAFETY: `&ThreadObject` only waits on the object and sets its priority, both thread-safe.
unsafe impl Sync for ThreadObject {}

/// `size_of::<S>()` as the `ULONG` the kernel's structure lengths use.
pub(crate) const fn u32_size_of<S>() -> u32 {
    const { assert!(size_of::<S>() <= u32::MAX as usize) };
    #[allow(clippy::cast_possible_truncation)] // asserted above
    let size = size_of::<S>() as u32;
    size
}

/// Creates a system thread of the system process running `start(context)`: with
/// `IoCreateSystemThread` on `io` when given, else `PsCreateSystemThread`. Returns the new
/// thread's handle and id.
///
/// # Safety
/// `start(context)` may run on the new thread from the moment of the call: `context` must be
/// valid for it. `io`, when given, is a driver or device object of the calling driver.
pub(crate) unsafe fn create(
    _: Passive,
    io: Option<(IoCreateSystemThread, NonNull<c_void>)>,
    start: StartRoutine,
    context: *mut c_void,
) -> Result<(ThreadHandle, ThreadId), NtStatus> {
    let mut handle: sys::HANDLE = ptr::null_mut();
    let mut client =
        sys::CLIENT_ID { UniqueProcess: ptr::null_mut(), UniqueThread: ptr::null_mut() };
    // `InitializeObjectAttributes` with `OBJ_KERNEL_HANDLE`: the handle stays out of any user
    // process's handle table.
    let mut attributes = sys::OBJECT_ATTRIBUTES {
        Length: u32_size_of::<sys::OBJECT_ATTRIBUTES>(),
        RootDirectory: ptr::null_mut(),
        ObjectName: ptr::null_mut(),
        Attributes: sys::OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    };
    let status = match io {
        // SAFETY: the routine was resolved by name with this signature; `object` is a driver
        // or device object (caller's contract); the out-pointers are locals; `start(context)`
        // is valid to run (caller's contract); the proof shows PASSIVE_LEVEL.
        Some((create, object)) => unsafe {
            create.0(
                object.as_ptr(),
                &raw mut handle,
                sys::THREAD_ALL_ACCESS,
                &raw mut attributes,
                ptr::null_mut(),
                &raw mut client,
                Some(start),
                context,
            )
        },
        // SAFETY: as above; a NULL process handle selects the system process.
        None => unsafe {
            sys::PsCreateSystemThread(
                &raw mut handle,
                sys::THREAD_ALL_ACCESS,
                &raw mut attributes,
                ptr::null_mut(),
                &raw mut client,
                Some(start),
                context,
            )
        },
    };
    let status = NtStatus(status);
    if status.is_success() {
        // INVARIANT: the kernel returned an open kernel handle, now owned here.
        Ok((ThreadHandle(handle), ThreadId(client.UniqueThread.addr())))
    } else {
        Err(status)
    }
}

impl ThreadHandle {
    /// References the thread object (`ObReferenceObjectByHandle`, kernel mode, no type check:
    /// the handle is known to be a thread's). Inlined into spawn: out of line, its result
    /// travels through memory (17 more instructions per spawn, counted by `./x icount`).
    #[inline]
    pub(crate) fn reference(&self, _: Passive) -> Result<ThreadObject, NtStatus> {
        let mut object: sys::PVOID = ptr::null_mut();
        // SAFETY: an open handle (type invariant); `object` is a local out-pointer; the proof
        // shows PASSIVE_LEVEL.
        let status = NtStatus(unsafe {
            sys::ObReferenceObjectByHandle(
                self.0,
                sys::THREAD_ALL_ACCESS,
                ptr::null_mut(),
                sys::KERNEL_MODE,
                &raw mut object,
                ptr::null_mut(),
            )
        });
        match NonNull::new(object) {
            // INVARIANT: the kernel took one reference for us.
            Some(object) if status.is_success() => Ok(ThreadObject(object)),
            _ if status.is_success() => Err(NtStatus::UNSUCCESSFUL),
            _ => Err(status),
        }
    }

    /// Names the thread (`ZwSetInformationThread`, `ThreadNameInformation`, Windows 10 1607+).
    pub(crate) fn set_name(&self, _: Passive, name: &[u16]) -> NtStatus {
        let Ok(bytes) = u16::try_from(name.len() * 2) else {
            return NtStatus::INVALID_PARAMETER;
        };
        let mut string = sys::UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: name.as_ptr().cast_mut(),
        };
        // SAFETY: an open thread handle (type invariant); the string and its buffer outlive
        // the call, which only reads them; the proof shows PASSIVE_LEVEL.
        NtStatus(unsafe {
            sys::ZwSetInformationThread(
                self.0,
                sys::THREAD_NAME_INFORMATION,
                (&raw mut string).cast(),
                u32_size_of::<sys::UNICODE_STRING>(),
            )
        })
    }

    /// Waits through the handle until the thread has exited, retrying failed waits: for the
    /// one path that has no referenced object.
    pub(crate) fn wait_exit(&self, _: Passive) {
        // SAFETY: an open thread handle (type invariant); a NULL timeout waits until the thread
        // object is signalled; the proof shows PASSIVE_LEVEL.
        while unsafe { sys::ZwWaitForSingleObject(self.0, 0, ptr::null_mut()) }
            != sys::STATUS_SUCCESS
        {}
    }
}

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        // SAFETY: an open handle owned by this value (type invariant), closed once, here.
        // Handles only exist inside spawn, at PASSIVE_LEVEL. `ZwClose` cannot fail on it.
        let _ = unsafe { sys::ZwClose(self.0) };
    }
}

impl ThreadObject {
    /// Waits until the thread has exited, or `timeout` passes.
    pub(crate) fn wait(&self, apc: AtMostApc, timeout: Timeout) -> Result<(), WaitError> {
        // SAFETY: a referenced thread object (type invariant) is a live dispatcher object.
        unsafe { wait::wait(apc, self.0.as_ptr(), timeout) }
    }

    /// Whether the thread has exited.
    pub(crate) fn poll(&self, dispatch: AtMostDispatch) -> Result<(), WaitError> {
        // SAFETY: as in `wait`.
        unsafe { wait::poll(dispatch, self.0.as_ptr()) }
    }

    /// The thread object, for waits on several objects.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }

    /// Sets the thread's priority (`KeSetPriorityThread`); `priority` is 1 to 31.
    pub(crate) fn set_priority(&self, _: AtMostDispatch, priority: i32) {
        // SAFETY: a referenced thread object (type invariant); the proof shows IRQL <=
        // DISPATCH_LEVEL; the priority was range-checked by the builder.
        let _previous = unsafe { sys::KeSetPriorityThread(self.0.as_ptr().cast(), priority) };
    }
}

impl Drop for ThreadObject {
    fn drop(&mut self) {
        // SAFETY: this value owns one reference (type invariant), dropped once, here. Packets
        // are released at DISPATCH_LEVEL or lower.
        let _ = unsafe { sys::ObfDereferenceObject(self.0.as_ptr()) };
    }
}

/// The id of the calling thread (`PsGetCurrentThreadId`).
///
/// # IRQL
/// Any.
#[must_use]
pub fn current_id() -> ThreadId {
    // SAFETY: PsGetCurrentThreadId has no preconditions.
    ThreadId(unsafe { sys::PsGetCurrentThreadId() }.addr())
}
