//! A std-based model of the kernel routines this crate calls, for tests on any host.
//!
//! The model runs each system thread on a real OS thread, signals a thread object when the
//! start routine has returned, keeps handle tables, object references and pool allocations
//! with counts, gives every thread its own simulated IRQL, and can make the Nth call of any
//! routine fail with a chosen NTSTATUS. Kernel programming errors that a real kernel answers
//! with a bugcheck (waiting at `DISPATCH_LEVEL`, freeing unknown pool, closing an unknown
//! handle) abort the process with a `host model bugcheck:` message.
//!
//! Each [`Kernel`] is an independent instance: tests can run in parallel, each entering its own
//! kernel with [`Kernel::run`]. Threads created inside inherit the kernel of their creator.
//! Code that never entered a kernel uses a process-wide default instance.
//!
//! ```
//! use system_thread::host::{Call, Kernel};
//! use system_thread::{SpawnError, SystemThread};
//!
//! let kernel = Kernel::new();
//! kernel.fail_nth(Call::PsCreateSystemThread, 1, 0xC000_009A_u32.cast_signed());
//! kernel.run(|| {
//!     let err = SystemThread::spawn(|| 1).unwrap_err();
//!     assert!(matches!(err, SpawnError::Create(s) if s.0 == 0xC000_009A_u32.cast_signed()));
//!     assert_eq!(SystemThread::spawn(|| 2).unwrap().join().ok(), Some(2));
//! });
//! kernel.assert_clean();
//! ```

#![cfg_attr(not(feature = "host-model"), allow(dead_code, unreachable_pub))]

extern crate std;

use std::string::String;
use std::sync::Arc;
use std::vec::Vec;

use super::state::{self, State};

pub use super::routines;

/// `kernel_routines!` callback: the model's `Call` enum, with one variant per routine of the
/// list (and `KeGetCurrentIrql`), its names, and the optional routines.
macro_rules! declare_calls {
    (
        static { $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;)* }
        own { $(fn $own:ident($($own_arg:ident: $own_ty:ty),* $(,)?) $(-> $own_ret:ty)?;)* }
        optional { $(fn $opt:ident($($opt_arg:ident: $opt_ty:ty),* $(,)?) $(-> $opt_ret:ty)?;)* }
    ) => {
        /// Kernel routines of the model whose calls are counted and can be made to fail.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum Call {
            $($name,)*
            $($own,)*
            $($opt,)*
            KeGetCurrentIrql,
        }

        impl Call {
            /// The routine's exported name.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)*
                    $(Self::$own => stringify!($own),)*
                    $(Self::$opt => stringify!($opt),)*
                    Self::KeGetCurrentIrql => "KeGetCurrentIrql",
                }
            }
        }

        /// Routines the model resolves through `MmGetSystemRoutineAddress` unless hidden.
        pub(super) const OPTIONAL_ROUTINES: &[Call] = &[$(Call::$opt),*];
    };
}
super::super::routines::kernel_routines!(declare_calls);

/// What a model kernel has outstanding: everything a driver must give back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Pool allocations not freed.
    pub allocations: usize,
    /// Kernel handles not closed.
    pub handles: usize,
    /// Object references taken by `ObReferenceObjectByHandle` and not dropped.
    pub references: usize,
    /// System threads whose start routine has not returned.
    pub running_threads: usize,
    /// References the kernel holds on I/O objects for threads made by `IoCreateSystemThread`.
    pub io_object_references: usize,
    /// Threads the driver spawned and has not joined or detached
    /// (`system_thread::live_threads`).
    pub live_threads: usize,
}

/// What the model recorded about one system thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadRecord {
    /// The thread id (`CLIENT_ID::UniqueThread`).
    pub id: usize,
    /// `OBJECT_ATTRIBUTES::Attributes` passed at creation.
    pub attributes: u32,
    /// Whether a non-NULL process handle was passed (the system process is NULL).
    pub process_handle_given: bool,
    /// The I/O object passed to `IoCreateSystemThread`, if that created it.
    pub io_object: Option<usize>,
    /// The name set with `ThreadNameInformation`, if any.
    pub name: Option<String>,
    /// The priority set with `KeSetPriorityThread`, if any.
    pub priority: Option<i32>,
    /// The group affinity active while the start routine ran, if set.
    pub affinity: Option<(u16, u64)>,
    /// The IRQL the start routine found at entry.
    pub start_irql: u8,
}

/// A model kernel instance. See the [module documentation](self).
#[derive(Clone)]
pub struct Kernel {
    state: Arc<State>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel").field("outstanding", &self.outstanding()).finish()
    }
}

impl Kernel {
    /// A fresh kernel: no calls counted, nothing outstanding, every routine present.
    #[must_use]
    pub fn new() -> Self {
        Self { state: State::new() }
    }

    /// Runs `f` on the calling thread with this kernel as its kernel; system threads created
    /// inside belong to it too.
    ///
    /// What `f` makes (events, thread handles, pool) belongs to this kernel: use and drop it
    /// inside runs of this kernel. Outside, the calls count against the caller's kernel (the
    /// process's default kernel outside any `run`): a wait mixing objects of two kernels may
    /// miss a wake-up, and freeing an object there stops the test (`BAD_POOL_CALLER`). Kernels
    /// are never freed while the process runs, so an object kept past its `Kernel` value stays
    /// valid memory.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Arc<State>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                State::leave_thread(previous);
            }
        }
        let previous = self.state.enter_thread();
        let _restore = Restore(previous);
        f()
    }

    /// Makes the `nth` (1-based, counted from now on) call of `call` fail with `status`.
    /// Allocation routines fail by returning NULL; `MmGetSystemRoutineAddress` by returning
    /// NULL (for these `status` is not used). A success status makes the routine report success
    /// without doing its work: a kernel that lies, which the crate survives where it can tell
    /// (an `ObReferenceObjectByHandle` that returns no object is a failed spawn).
    ///
    /// Only routines that can report a failure (an NTSTATUS, or NULL for the allocations and
    /// `MmGetSystemRoutineAddress`) use it; for the others (`KeSetEvent`, `KeClearEvent`,
    /// `KeInitializeEvent`, `ObfDereferenceObject`, `KeGetCurrentIrql`, ...) the injected call
    /// is counted and behaves normally.
    ///
    /// # Panics
    /// When `nth` is 0, or `status` is a success (severity success or informational, but
    /// `STATUS_TIMEOUT`, the answer of a wait that did not happen) for a routine whose success
    /// the crate must trust: a wait (`STATUS_WAIT_n` means the object is signalled, so a
    /// thread has exited) or a thread creation (success means the thread exists and will run
    /// its start routine). No kernel lies there, and no code could tell.
    pub fn fail_nth(&self, call: Call, nth: usize, status: i32) {
        assert!(nth >= 1, "host model: fail_nth counts calls from 1");
        let trusted = matches!(
            call,
            Call::KeWaitForSingleObject
                | Call::KeWaitForMultipleObjects
                | Call::ZwWaitForSingleObject
                | Call::PsCreateSystemThread
                | Call::IoCreateSystemThread
        );
        assert!(
            !trusted || status < 0 || status == super::STATUS_TIMEOUT,
            "host model: {status:#x} is a success of {}, which the crate trusts: inject a failure",
            call.name()
        );
        self.state.fail_nth(call, nth, status);
    }

    /// Makes `MmGetSystemRoutineAddress` report `call` as not exported (as on older Windows or
    /// Wine), so code must take its fallback or `NotSupported` path.
    pub fn hide_routine(&self, call: Call) {
        self.state.hide(call);
    }

    /// Makes the kernel report these processor groups, with this many active processors each
    /// (the default is one group of 4). Group affinities are checked against it: like a real
    /// kernel, `KeSetSystemGroupAffinityThread` ignores an invalid group or mask.
    ///
    /// # Panics
    /// When a group has no processor or more than 64, or there are no groups or more than 64.
    pub fn set_topology(&self, processors_per_group: &[u32]) {
        assert!(
            (1..=64).contains(&processors_per_group.len())
                && processors_per_group.iter().all(|n| (1..=64).contains(n)),
            "host model: 1 to 64 groups of 1 to 64 processors"
        );
        self.state.set_topology(processors_per_group);
    }

    /// New system threads start at this IRQL (a real kernel always uses `PASSIVE_LEVEL` = 0;
    /// anything else lets a test see what the trampoline's assertion does).
    pub fn set_start_irql(&self, irql: u8) {
        self.state.set_start_irql(irql);
    }

    /// How many times `call` was made in this kernel.
    #[must_use]
    pub fn calls(&self, call: Call) -> usize {
        self.state.calls(call)
    }

    /// Every call made so far, by routine.
    #[must_use]
    pub fn call_counts(&self) -> Vec<(Call, usize)> {
        self.state.call_counts()
    }

    /// What the driver has not given back yet.
    #[must_use]
    pub fn outstanding(&self) -> Outstanding {
        self.state.outstanding()
    }

    /// Everything recorded about the system threads created so far, in creation order.
    #[must_use]
    pub fn threads(&self) -> Vec<ThreadRecord> {
        self.state.threads()
    }

    /// Waits for the OS threads behind finished system threads to exit, then returns what is
    /// outstanding.
    #[must_use = "it returns what is still outstanding"]
    pub fn quiesce(&self) -> Outstanding {
        self.state.reap_os_threads();
        self.outstanding()
    }

    /// Asserts that the driver gave everything back: no allocation, handle, reference, running
    /// thread or I/O object reference is outstanding.
    ///
    /// # Panics
    /// When anything is outstanding (this is a test helper).
    pub fn assert_clean(&self) {
        let outstanding = self.quiesce();
        assert!(
            outstanding == Outstanding::default(),
            "host model: the driver left resources behind: {outstanding:?}"
        );
    }
}

/// Runs `f` with the calling thread's simulated IRQL raised to `irql`, then restores it.
pub fn with_irql<R>(irql: u8, f: impl FnOnce() -> R) -> R {
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            state::set_irql(self.0);
        }
    }
    let _restore = Restore(state::set_irql(irql));
    f()
}

/// Sets the calling thread's simulated IRQL (as `KeRaiseIrql`/`KeLowerIrql` would).
pub fn set_irql(irql: u8) {
    let _previous = state::set_irql(irql);
}
