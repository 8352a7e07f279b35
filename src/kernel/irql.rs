//! The current IRQL, and proofs that a caller runs at or below a level.

use core::marker::PhantomData;

use crate::irql::{Irql, IrqlError};
use crate::sys;

impl Irql {
    /// The IRQL of the processor the caller runs on.
    ///
    /// # IRQL
    /// Any.
    #[must_use]
    #[inline]
    pub fn current() -> Self {
        Self(sys::current_irql())
    }
}

/// The IRQL of the processor the caller runs on (same as [`Irql::current`]).
#[must_use]
#[inline]
pub fn current_irql() -> Irql {
    Irql::current()
}

#[inline]
fn require(max: Irql) -> Result<(), IrqlError> {
    let current = Irql::current();
    if current > max { Err(too_high(current, max)) } else { Ok(()) }
}

/// The error of [`require`], out of line: the check stays a compare and a branch, instead of
/// building the error on every call.
#[cold]
#[inline(never)]
fn too_high(current: Irql, max: Irql) -> IrqlError {
    IrqlError { current, max }
}

/// Declares a proof type: one IRQL read made it, and only this thread may use it.
macro_rules! proof {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        ///
        /// # Invariants
        /// The thread that holds it ran at or below the level when it was made; this crate
        /// never raises the IRQL, so that still holds while its code uses the proof. It is not
        /// `Send` (a raw-pointer marker), so it never reaches another thread.
        #[derive(Clone, Copy)]
        pub(crate) struct $name(PhantomData<*const ()>);

        impl $name {
            /// Reads the IRQL once.
            #[inline]
            pub(crate) fn check() -> Result<Self, IrqlError> {
                // INVARIANT: the IRQL was just read at or below the level.
                require($max).map(|()| Self(PhantomData))
            }
        }
    };
}

proof!(
    /// Proof that the caller runs at `PASSIVE_LEVEL`.
    Passive,
    Irql::PASSIVE
);
proof!(
    /// Proof that the caller runs at `APC_LEVEL` or lower.
    AtMostApc,
    Irql::APC
);
proof!(
    /// Proof that the caller runs at `DISPATCH_LEVEL` or lower.
    AtMostDispatch,
    Irql::DISPATCH
);

impl Passive {
    /// `PASSIVE_LEVEL` is below `APC_LEVEL`.
    #[inline]
    #[allow(clippy::unused_self)] // the proof is the argument
    pub(crate) fn apc(self) -> AtMostApc {
        AtMostApc(PhantomData)
    }

    /// `PASSIVE_LEVEL` is below `DISPATCH_LEVEL`.
    #[inline]
    #[allow(clippy::unused_self)] // the proof is the argument
    pub(crate) fn dispatch(self) -> AtMostDispatch {
        AtMostDispatch(PhantomData)
    }
}

impl AtMostApc {
    /// `APC_LEVEL` is below `DISPATCH_LEVEL`.
    #[inline]
    #[allow(clippy::unused_self)] // the proof is the argument
    pub(crate) fn dispatch(self) -> AtMostDispatch {
        AtMostDispatch(PhantomData)
    }
}
