//! Processors: how many there are, and one pinned thread per processor.

use core::num::NonZeroUsize;

use crate::builder::{Builder, GroupAffinity};
use crate::error::SpawnError;
use crate::kernel::irql::Passive;
use crate::kernel::routine::Topology;
use crate::scope::scope;

/// A processor: its group and its number within the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Processor {
    /// The processor group.
    pub group: u16,
    /// The processor's number within its group (0 to 63).
    pub number: u8,
}

impl Processor {
    /// The affinity that pins a thread to this processor. A `number` above 63 names no
    /// processor: its mask is empty, which spawning refuses
    /// ([`SpawnError::InvalidArgument`]).
    #[must_use]
    pub const fn affinity(self) -> GroupAffinity {
        let mask = match 1u64.checked_shl(self.number as u32) {
            Some(mask) => mask,
            None => 0,
        };
        GroupAffinity { group: self.group, mask }
    }
}

fn topology() -> Result<Topology, SpawnError> {
    let passive = Passive::check().map_err(SpawnError::Irql)?;
    Topology::query(passive).map_err(SpawnError::NotSupported)
}

/// The number of active processors, in all processor groups (`KeQueryActiveProcessorCountEx`
/// with `ALL_PROCESSOR_GROUPS`): more than 64 on machines with several groups.
///
/// # IRQL
/// `PASSIVE_LEVEL` (the routines are resolved once by name).
///
/// # Errors
/// [`SpawnError::Irql`] above `PASSIVE_LEVEL`, [`SpawnError::NotSupported`] on kernels without
/// the group routines (before Windows 7; Wine 8 has them).
pub fn available_parallelism() -> Result<NonZeroUsize, SpawnError> {
    let total = usize::try_from(topology()?.total()).unwrap_or(usize::MAX);
    NonZeroUsize::new(total).ok_or(SpawnError::NotSupported("KeQueryActiveProcessorCountEx"))
}

/// Runs `f` once on every active processor, each call on its own thread pinned to that
/// processor (in every processor group, so beyond 64 processors too), and returns once all
/// have returned: a scope, so `f` may borrow the caller's data.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let calls = AtomicUsize::new(0);
/// system_thread::on_each_processor(|_processor| {
///     calls.fetch_add(1, Ordering::Relaxed);
/// })?;
/// assert_eq!(calls.into_inner(), system_thread::available_parallelism()?.get());
/// # Ok::<(), system_thread::SpawnError>(())
/// ```
///
/// # IRQL
/// `PASSIVE_LEVEL`.
///
/// # Errors
/// As [`available_parallelism`] and [`Builder::spawn_scoped`]. When a spawn fails, the
/// threads already started still run `f` and are joined before the error is returned.
pub fn on_each_processor<F>(f: F) -> Result<(), SpawnError>
where
    F: Fn(Processor) + Sync,
{
    let topology = topology()?;
    let f = &f;
    scope(|s| {
        for group in 0..topology.groups() {
            let count = topology.processors(group).min(64);
            for number in 0..count {
                let number = u8::try_from(number).unwrap_or(u8::MAX);
                let processor = Processor { group, number };
                Builder::new()
                    .affinity(processor.affinity())
                    .spawn_scoped(s, move || f(processor))?;
            }
        }
        Ok(())
    })
}
