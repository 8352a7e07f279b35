//! Interrupt request levels.

use core::fmt;

use crate::sys;

/// An interrupt request level (IRQL) of the current processor.
///
/// Thread routines of this crate document the highest IRQL they accept in an `# IRQL` section
/// and check it at run time: a call at a higher IRQL returns an [`IrqlError`](crate::IrqlError)
/// instead of waiting where the kernel would bugcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Irql(pub u8);

impl Irql {
    /// `PASSIVE_LEVEL` (0): threads run here; everything may block.
    pub const PASSIVE: Self = Self(0);
    /// `APC_LEVEL` (1): waits with a timeout are still allowed.
    pub const APC: Self = Self(1);
    /// `DISPATCH_LEVEL` (2): no waiting; only non-blocking calls.
    pub const DISPATCH: Self = Self(2);

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

impl fmt::Display for Irql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("PASSIVE_LEVEL"),
            1 => f.write_str("APC_LEVEL"),
            2 => f.write_str("DISPATCH_LEVEL"),
            n => write!(f, "IRQL {n}"),
        }
    }
}

/// Returns an error unless the current IRQL is at most `max`.
pub(crate) fn require(max: Irql) -> Result<(), crate::IrqlError> {
    let current = Irql::current();
    if current > max { Err(crate::IrqlError { current, max }) } else { Ok(()) }
}
