//! Scoped threads: threads that may borrow from the caller's stack, all joined before
//! [`scope`] returns.

use core::fmt;
use core::marker::PhantomData;
use core::time::Duration;

use crate::builder::{Builder, Owner};
use crate::error::{JoinError, SpawnError};
use crate::id::ThreadId;
use crate::packet::{JoinInner, ScopeList};
use crate::wait::{Waitable, sealed};

/// A scope in which threads may borrow anything that outlives it; see [`scope`].
///
/// # Invariants
/// `list` holds a share of every thread spawned in the scope; [`scope`] joins them all before
/// it returns or unwinds.
pub struct Scope<'scope, 'env: 'scope> {
    list: ScopeList,
    /// Invariant in both lifetimes, so neither can be shortened or extended by subtyping.
    _invariance: PhantomData<(&'scope mut &'scope (), &'env mut &'env ())>,
}

/// Runs `f` with a [`Scope`] whose threads may borrow non-`'static` data, and returns `f`'s
/// value after every thread spawned in the scope has exited (its thread object signalled),
/// whether or not its handle was joined, and also when `f` unwinds (host tests).
///
/// Handles of scoped threads may be moved to other threads of the scope, returned from them or
/// stored in their values, and joined late: every handle owns a share of its thread's context,
/// and the scope frees nothing before every thread has exited and every handle is gone.
///
/// # Example
/// ```
/// let mut numbers = [1, 2, 3, 4];
/// let total = system_thread::scope(|s| {
///     let (left, right) = numbers.split_at_mut(2);
///     let a = s.spawn(|| { left[0] *= 10; left.iter().sum::<i32>() }).unwrap();
///     let b = s.spawn(|| right.iter().sum::<i32>()).unwrap();
///     a.join().ok().unwrap() + b.join().ok().unwrap()
/// });
/// assert_eq!(total, 19);
/// assert_eq!(numbers[0], 10);
/// ```
///
/// # IRQL
/// `PASSIVE_LEVEL` (to spawn), and `f` must return at `APC_LEVEL` or lower.
///
/// # Panics
/// If `f` returns above `APC_LEVEL`, where waiting for the threads is not allowed, `scope` stops
/// the machine (a panic that cannot unwind: a bugcheck in a driver) rather than return or unwind
/// while its threads may still borrow the caller's data.
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    /// Joins the scope's threads when dropped, on every exit path, through a shared borrow:
    /// threads of the scope may still use the scope while it waits for them.
    struct JoinAll<'a>(&'a ScopeList);
    impl Drop for JoinAll<'_> {
        fn drop(&mut self) {
            self.0.join_all();
        }
    }
    let scope = Scope { list: ScopeList::new(), _invariance: PhantomData };
    // INVARIANT: the guard joins every thread of the list before `scope` is dropped.
    let join_all = JoinAll(&scope.list);
    let value = f(&scope);
    drop(join_all);
    value
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a thread in this scope. It may borrow anything that outlives the scope.
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`SystemThread::spawn`](crate::SystemThread::spawn).
    pub fn spawn<F, T>(&'scope self, f: F) -> Result<ScopedJoinHandle<'scope, T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Builder::new().spawn_scoped(self, f)
    }
}

impl Builder<'_> {
    /// Spawns the configured thread in `scope`; see [`Scope::spawn`].
    ///
    /// ```
    /// let mut counts = [0u32; 4];
    /// system_thread::scope(|s| {
    ///     let handle = system_thread::Builder::new()
    ///         .name("counter")
    ///         .spawn_scoped(s, || counts.iter_mut().for_each(|c| *c += 1))?;
    ///     handle.join().ok();
    ///     Ok::<(), system_thread::SpawnError>(())
    /// })?;
    /// assert_eq!(counts, [1; 4]);
    /// # Ok::<(), system_thread::SpawnError>(())
    /// ```
    ///
    /// # IRQL
    /// `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[inline]
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> Result<ScopedJoinHandle<'scope, T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let (inner, _) = self.spawn_in::<(), _, T>(Owner::scope(&scope.list), move |()| f())?;
        Ok(ScopedJoinHandle { inner, _scope: PhantomData })
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// A handle to join a scoped thread. It owns a share of the thread's context, so it stays
/// valid wherever it is moved within the scope; dropping it leaves the join to the scope.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinInner<T>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// The kernel's id of the thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.inner.id()
    }

    /// Whether the thread has exited.
    ///
    /// # IRQL
    /// `DISPATCH_LEVEL` or lower.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Waits for the thread to exit and returns its value.
    ///
    /// # Errors
    /// As [`JoinHandle::join`](crate::JoinHandle::join).
    pub fn join(self) -> Result<T, JoinError<Self>> {
        self.join_inner(None)
    }

    /// Like [`join`](Self::join), with a timeout.
    ///
    /// # Errors
    /// As [`JoinHandle::join_timeout`](crate::JoinHandle::join_timeout).
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinError<Self>> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(self, timeout: Option<Duration>) -> Result<T, JoinError<Self>> {
        self.inner
            .join(timeout)
            .map_err(|(kind, inner)| JoinError::new(kind, Self { inner, _scope: PhantomData }))
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("thread_id", &self.thread_id())
            .finish_non_exhaustive()
    }
}

impl<T> sealed::Sealed for ScopedJoinHandle<'_, T> {}
impl<T> Waitable for ScopedJoinHandle<'_, T> {
    fn dispatcher_object(&self, _: sealed::Token) -> *mut core::ffi::c_void {
        self.inner.object_ptr()
    }

    fn observed(&self, _: sealed::Token) {
        self.inner.observed_exit();
    }
}
