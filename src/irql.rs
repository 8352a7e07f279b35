//! Interrupt request levels: the type, and the error of a routine called too high. Reading the
//! current IRQL is a kernel call: it lives in the kernel-object layer (`kernel::irql`).

use core::fmt;

/// An interrupt request level (IRQL) of the current processor.
///
/// Thread routines of this crate document the highest IRQL they accept in an `# IRQL` section
/// and check it at run time, before their first kernel call: a call at a higher IRQL returns an
/// [`IrqlError`] instead of waiting where the kernel would bugcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Irql(pub u8);

impl Irql {
    /// `PASSIVE_LEVEL` (0): threads run here; everything may block.
    pub const PASSIVE: Self = Self(0);
    /// `APC_LEVEL` (1): waits with a timeout are still allowed.
    pub const APC: Self = Self(1);
    /// `DISPATCH_LEVEL` (2): no waiting; only non-blocking calls.
    pub const DISPATCH: Self = Self(2);
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

/// A routine was called at an IRQL above the highest it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqlError {
    /// The IRQL of the caller.
    pub current: Irql,
    /// The highest IRQL the routine accepts.
    pub max: Irql,
}

impl fmt::Display for IrqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "called at {}, but requires {} or lower", self.current, self.max)
    }
}

impl core::error::Error for IrqlError {}
