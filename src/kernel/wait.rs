//! Waiting: the one `KeWaitForSingleObject` call, delays and yields.

use core::ffi::c_void;
use core::ptr;
use core::time::Duration;

use super::irql::{AtMostApc, AtMostDispatch, Passive};
use crate::status::NtStatus;
use crate::sys;

/// Why a wait returned without its object being signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// The timeout passed.
    TimedOut,
    /// The kernel returned another status.
    Failed(NtStatus),
}

/// Why a wait on several objects returned without being satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MultiWaitError {
    /// The wait itself timed out or failed.
    Wait(WaitError),
    /// More objects than one wait takes (`MAXIMUM_WAIT_OBJECTS`), or none.
    TooMany,
    /// No pool for the wait blocks of more than `THREAD_WAIT_OBJECTS` objects.
    OutOfMemory,
}

/// A relative timeout in the kernel's form: negative, in 100 ns units, rounded up, saturating
/// at `i64::MAX` units (29,000 years).
///
/// Computed as whole seconds × 10⁷ plus the sub-second nanoseconds / 100 rounded up, which is
/// exactly ⌈total nanoseconds / 100⌉ (a whole second is a multiple of 100 ns), in `u64`
/// arithmetic: no `u128` division (`__udivti3`) on the timed wait paths.
pub(crate) fn relative_100ns(duration: Duration) -> i64 {
    let ticks = duration
        .as_secs()
        .saturating_mul(10_000_000)
        .saturating_add(u64::from(duration.subsec_nanos().div_ceil(100)));
    -i64::try_from(ticks).unwrap_or(i64::MAX)
}

/// How long a wait may take.
#[derive(Clone, Copy)]
pub(crate) enum Timeout {
    /// Until the object is signalled.
    Never,
    /// At most this long (zero: a poll).
    After(Duration),
}

impl Timeout {
    /// The timeout in the kernel's form: a pointer to `interval` holding it, or NULL for none.
    fn as_interval(self, interval: &mut sys::LARGE_INTEGER) -> *mut sys::LARGE_INTEGER {
        match self {
            Self::Never => ptr::null_mut(),
            Self::After(duration) => {
                interval.QuadPart = relative_100ns(duration);
                interval
            }
        }
    }
}

/// Waits (kernel mode, not alertable) on a dispatcher object.
///
/// # Safety
/// `object` is a dispatcher object (thread or event) that stays alive during the call.
unsafe fn wait_object(object: *mut c_void, timeout: Timeout) -> Result<(), WaitError> {
    let mut interval = sys::LARGE_INTEGER { QuadPart: 0 };
    let interval_ptr = timeout.as_interval(&mut interval);
    // SAFETY: `object` is a live dispatcher object (caller's contract); the interval is a live
    // local or NULL; the callers hold the IRQL proof for the timeout they pass.
    let status = unsafe {
        sys::KeWaitForSingleObject(object, sys::EXECUTIVE, sys::KERNEL_MODE, 0, interval_ptr)
    };
    match status {
        sys::STATUS_SUCCESS => Ok(()),
        sys::STATUS_TIMEOUT => Err(WaitError::TimedOut),
        other => Err(WaitError::Failed(NtStatus(other))),
    }
}

/// Waits on `object` for at most `timeout` (or forever).
///
/// # Safety
/// As [`wait_object`].
pub(crate) unsafe fn wait(
    _: AtMostApc,
    object: *mut c_void,
    timeout: Timeout,
) -> Result<(), WaitError> {
    // SAFETY: forwarded; waits with a timeout or none are allowed up to APC_LEVEL.
    unsafe { wait_object(object, timeout) }
}

/// Whether `object` is signalled now (a zero-timeout wait).
///
/// # Safety
/// As [`wait_object`].
pub(crate) unsafe fn poll(_: AtMostDispatch, object: *mut c_void) -> Result<(), WaitError> {
    // SAFETY: forwarded; a zero-timeout wait is allowed up to DISPATCH_LEVEL.
    unsafe { wait_object(object, Timeout::After(Duration::ZERO)) }
}

/// Puts the calling thread to sleep (`KeDelayExecutionThread`, kernel mode, not alertable).
pub(crate) fn delay(_: AtMostApc, duration: Duration) {
    let mut interval = sys::LARGE_INTEGER { QuadPart: relative_100ns(duration) };
    // SAFETY: the interval is a live local; the proof shows IRQL <= APC_LEVEL. Non-alertable
    // kernel-mode delays only return STATUS_SUCCESS, so the status carries nothing.
    let _ = unsafe { sys::KeDelayExecutionThread(sys::KERNEL_MODE, 0, &raw mut interval) };
}

/// Offers the rest of the time slice to another ready thread (`ZwYieldExecution`).
pub(crate) fn yield_now(_: Passive) {
    // SAFETY: the proof shows PASSIVE_LEVEL, the only precondition; STATUS_NO_YIELD_PERFORMED
    // is not an error.
    let _ = unsafe { sys::ZwYieldExecution() };
}

/// The IRQL proof a wait needs: a poll (zero timeout) is allowed up to `DISPATCH_LEVEL`,
/// a wait that may block up to `APC_LEVEL`.
#[derive(Clone, Copy)]
pub(crate) enum WaitIrql {
    /// A zero-timeout wait.
    Poll(AtMostDispatch),
    /// A wait for at most this long (or forever).
    Block(AtMostApc, Timeout),
}

/// Waits until one (`all == false`: returns its index) or all (returns 0) of `objects` are
/// signalled, or the timeout passes, in one `KeWaitForMultipleObjects`. More than
/// `THREAD_WAIT_OBJECTS` objects need a wait block array, taken from non-paged pool for the
/// wait.
///
/// # Safety
/// Every pointer is a dispatcher object (thread or event) that stays alive during the call.
pub(crate) unsafe fn wait_multiple(
    irql: WaitIrql,
    objects: &[*mut c_void],
    all: bool,
) -> Result<usize, MultiWaitError> {
    let (dispatch, timeout) = match irql {
        WaitIrql::Poll(dispatch) => (dispatch, Timeout::After(Duration::ZERO)),
        WaitIrql::Block(apc, timeout) => (apc.dispatch(), timeout),
    };
    let count = u32::try_from(objects.len()).map_err(|_| MultiWaitError::TooMany)?;
    if count == 0 || count > sys::MAXIMUM_WAIT_OBJECTS {
        return Err(MultiWaitError::TooMany);
    }
    let mut array = [ptr::null_mut::<c_void>(); sys::MAXIMUM_WAIT_OBJECTS as usize];
    for (slot, &object) in array.iter_mut().zip(objects) {
        *slot = object;
    }
    let blocks = if count > sys::THREAD_WAIT_OBJECTS {
        let size = objects.len() * size_of::<sys::KWAIT_BLOCK>();
        Some(super::pool::allocate(dispatch, size).ok_or(MultiWaitError::OutOfMemory)?)
    } else {
        None
    };
    let mut interval = sys::LARGE_INTEGER { QuadPart: 0 };
    let interval_ptr = timeout.as_interval(&mut interval);
    let wait_type = if all { sys::WAIT_ALL } else { sys::WAIT_ANY };
    // SAFETY: `count` live dispatcher objects (caller's contract) in a local array; a wait block
    // array of `count` blocks when more than THREAD_WAIT_OBJECTS; the interval is a live local
    // or NULL; the proofs show the IRQL the timeout needs.
    let status = unsafe {
        sys::KeWaitForMultipleObjects(
            count,
            array.as_mut_ptr(),
            wait_type,
            sys::EXECUTIVE,
            sys::KERNEL_MODE,
            0,
            interval_ptr,
            blocks.map_or(ptr::null_mut(), |b| b.as_ptr().cast()),
        )
    };
    if let Some(block) = blocks {
        // SAFETY: allocated above, not used after the wait returned.
        unsafe { super::pool::free(block) };
    }
    match status {
        sys::STATUS_TIMEOUT => Err(MultiWaitError::Wait(WaitError::TimedOut)),
        s if s >= sys::STATUS_WAIT_0 && s < sys::STATUS_WAIT_0 + count.cast_signed() => {
            Ok(usize::try_from(s - sys::STATUS_WAIT_0).unwrap_or(0))
        }
        other => Err(MultiWaitError::Wait(WaitError::Failed(NtStatus(other)))),
    }
}
#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::relative_100ns;

    /// The definition: ⌈nanoseconds / 100⌉ in `u128`, negated, saturating at `i64::MAX`.
    fn reference(duration: Duration) -> i64 {
        -i64::try_from(duration.as_nanos().div_ceil(100)).unwrap_or(i64::MAX)
    }

    #[test]
    fn matches_the_u128_definition_at_the_edges() {
        // The largest whole-second counts whose ticks fit in i64 and in u64: around them the
        // sum and the product saturate (a wrapping product or sum would come back small).
        let signed = i64::MAX.cast_unsigned() / 10_000_000;
        let unsigned = u64::MAX / 10_000_000;
        let secs = [0, 1, 2, 59, 3_600, 1 << 32, signed, signed + 1, unsigned, unsigned + 1];
        let nanos = [0, 1, 99, 100, 101, 199, 200, 999_999_900, 999_999_901, 999_999_999];
        for s in secs {
            for n in nanos {
                let d = Duration::new(s, n);
                assert_eq!(relative_100ns(d), reference(d), "{d:?}");
            }
        }
        assert_eq!(relative_100ns(Duration::ZERO), 0);
        assert_eq!(relative_100ns(Duration::from_nanos(1)), -1);
        assert_eq!(relative_100ns(Duration::from_millis(30)), -300_000);
        assert_eq!(relative_100ns(Duration::MAX), -i64::MAX);
    }
}
