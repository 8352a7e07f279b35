//! Error types. Every failure of a kernel routine carries its NTSTATUS.

use core::fmt;

use crate::irql::IrqlError;
use crate::status::NtStatus;

/// Why a thread could not be created. When spawning fails, nothing stays allocated, no handle
/// or reference stays open, and no thread of this crate is left running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// Spawning requires `PASSIVE_LEVEL`.
    Irql(IrqlError),
    /// The pool allocation for the thread's context failed.
    OutOfMemory,
    /// `PsCreateSystemThread` or `IoCreateSystemThread` failed; the closure never ran.
    Create(NtStatus),
    /// `ObReferenceObjectByHandle` failed on the new thread's handle. The thread had started:
    /// it was asked to stop (or cancelled before its closure ran, when that was still
    /// possible), spawn waited on the handle until it exited, and dropped its result.
    Reference(NtStatus),
    /// Naming the thread (`ZwSetInformationThread`, `ThreadNameInformation`) failed; the thread
    /// was cancelled before its closure ran.
    Name(NtStatus),
    /// A routine the request needs is not exported by this kernel (resolved with
    /// `MmGetSystemRoutineAddress`). Nothing was created.
    NotSupported(&'static str),
    /// A [`Builder`](crate::Builder) setting is out of range. Nothing was created.
    InvalidArgument(&'static str),
}

impl SpawnError {
    /// The NTSTATUS that best describes the error, for returning it from a driver routine.
    #[must_use]
    pub const fn status(&self) -> NtStatus {
        match *self {
            Self::Irql(_) => NtStatus(0xC000_0184_u32.cast_signed()), // STATUS_INVALID_DEVICE_STATE
            Self::OutOfMemory => NtStatus::INSUFFICIENT_RESOURCES,
            Self::Create(status) | Self::Reference(status) | Self::Name(status) => status,
            Self::NotSupported(_) => NtStatus::NOT_SUPPORTED,
            Self::InvalidArgument(_) => NtStatus::INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("system-thread: spawn failed: ")?;
        match self {
            Self::Irql(e) => write!(f, "{e}"),
            Self::OutOfMemory => f.write_str("out of non-paged pool for the thread context"),
            Self::Create(s) => write!(f, "thread creation returned {s}"),
            Self::Reference(s) => write!(f, "ObReferenceObjectByHandle returned {s}"),
            Self::Name(s) => write!(f, "setting the thread name returned {s}"),
            Self::NotSupported(routine) => write!(f, "{routine} is not exported by this kernel"),
            Self::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl core::error::Error for SpawnError {}

/// Why a join did not return the thread's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinErrorKind {
    /// The timeout passed before the thread exited.
    TimedOut,
    /// The caller is the thread itself: waiting would never end.
    SelfJoin,
    /// Joining requires `APC_LEVEL` or lower.
    Irql(IrqlError),
    /// `KeWaitForSingleObject` returned an unexpected status.
    Wait(NtStatus),
}

/// A join that did not return the thread's value; it hands the join handle back, so the
/// thread can still be joined (and is joined when the handle is dropped).
pub struct JoinError<H> {
    kind: JoinErrorKind,
    handle: H,
}

impl<H> JoinError<H> {
    pub(crate) const fn new(kind: JoinErrorKind, handle: H) -> Self {
        Self { kind, handle }
    }

    /// What went wrong.
    #[must_use]
    pub const fn kind(&self) -> JoinErrorKind {
        self.kind
    }

    /// The NTSTATUS that describes the error (`STATUS_TIMEOUT` for a timeout).
    #[must_use]
    pub const fn status(&self) -> NtStatus {
        match self.kind {
            JoinErrorKind::TimedOut => NtStatus::TIMEOUT,
            JoinErrorKind::SelfJoin => NtStatus(0xC000_0194_u32.cast_signed()), // POSSIBLE_DEADLOCK
            JoinErrorKind::Irql(_) => NtStatus(0xC000_0184_u32.cast_signed()),
            JoinErrorKind::Wait(status) => status,
        }
    }

    /// Whether the timeout passed.
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(self.kind, JoinErrorKind::TimedOut)
    }

    /// The join handle, to try again.
    #[must_use]
    pub fn into_handle(self) -> H {
        self.handle
    }
}

impl<H> fmt::Debug for JoinError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinError").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl<H> fmt::Display for JoinError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("system-thread: join failed: ")?;
        match self.kind {
            JoinErrorKind::TimedOut => f.write_str("timed out (the thread is still running)"),
            JoinErrorKind::SelfJoin => f.write_str("a thread cannot join itself"),
            JoinErrorKind::Irql(e) => write!(f, "{e}"),
            JoinErrorKind::Wait(s) => write!(f, "KeWaitForSingleObject returned {s}"),
        }
    }
}

impl<H> core::error::Error for JoinError<H> {}
