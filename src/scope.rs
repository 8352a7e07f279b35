//! Scoped threads: threads that may borrow from the caller's stack, all joined before
//! [`scope`] returns.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use core::time::Duration;

use crate::error::{JoinError, JoinErrorKind, NtStatus, SpawnError};
use crate::packet::{self, Header, Options, RawThread};
use crate::thread::ThreadId;

/// A scope in which threads may borrow anything that outlives it; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    /// Every thread spawned in this scope, newest first (linked through `Header::next`).
    threads: AtomicPtr<Header>,
    /// Invariant in both lifetimes, so neither can be shortened or extended by subtyping.
    _invariance: PhantomData<(&'scope mut &'scope (), &'env mut &'env ())>,
}

/// Runs `f` with a [`Scope`] whose threads may borrow non-`'static` data, and returns `f`'s
/// value after every thread spawned in the scope has exited (its thread object signalled),
/// whether or not its handle was joined.
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
/// Joining the remaining threads panics (a bugcheck in a driver) if `f` returns above
/// `APC_LEVEL`, where waiting is not allowed.
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    /// Joins on every exit path, including unwinding in host tests.
    struct JoinAll<'a, 'scope, 'env>(&'a Scope<'scope, 'env>);
    impl Drop for JoinAll<'_, '_, '_> {
        fn drop(&mut self) {
            self.0.join_all();
        }
    }
    let scope = Scope { threads: AtomicPtr::new(ptr::null_mut()), _invariance: PhantomData };
    let join_all = JoinAll(&scope);
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
        // SAFETY: `scope` joins every thread in this list before 'scope ends, also when its
        // closure unwinds, so the borrows of `F` and `T` outlive the thread.
        let spawned =
            unsafe { packet::spawn_unchecked::<(), _, T>(&Options::default(), move |()| f()) }?;
        Ok(self.adopt(spawned.raw, spawned.value))
    }

    /// Makes the scope the owner of a thread spawned for it (also by `Builder::spawn_scoped`):
    /// the scope joins it before it ends.
    pub(crate) fn adopt<T>(
        &'scope self,
        raw: RawThread,
        value: NonNull<T>,
    ) -> ScopedJoinHandle<'scope, T> {
        let header = raw.into_header();
        self.push(header);
        ScopedJoinHandle { header, value, _scope: PhantomData }
    }

    fn push(&self, header: NonNull<Header>) {
        let mut head = self.threads.load(Ordering::Relaxed);
        loop {
            // SAFETY: the thread only touches the atomics of its header; `next` is ours.
            unsafe { (*header.as_ptr()).next = head };
            match self.threads.compare_exchange_weak(
                head,
                header.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Joins every thread of the scope, including those spawned by its threads meanwhile.
    fn join_all(&self) {
        loop {
            let mut next = self.threads.swap(ptr::null_mut(), Ordering::Acquire);
            if next.is_null() {
                return;
            }
            while let Some(header) = NonNull::new(next) {
                // SAFETY: the header is in the list, so its packet is alive; read before close.
                next = unsafe { (*header.as_ptr()).next };
                // SAFETY: the list owns the spawner's side; it is closed once, here.
                let raw = unsafe { RawThread::from_header(header) };
                // A handle that joined has already waited for the thread object.
                if !raw.is_joined() {
                    raw.wait_forever();
                }
                raw.close();
            }
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// A handle to join a scoped thread. The scope joins threads whose handle was dropped.
pub struct ScopedJoinHandle<'scope, T> {
    header: NonNull<Header>,
    value: NonNull<T>,
    _scope: PhantomData<(&'scope (), T)>,
}

// SAFETY: as `JoinHandle<T>`.
unsafe impl<T: Send> Send for ScopedJoinHandle<'_, T> {}
// SAFETY: as `JoinHandle<T>`.
unsafe impl<T> Sync for ScopedJoinHandle<'_, T> {}

impl<T> ScopedJoinHandle<'_, T> {
    fn raw(&self) -> RawThread {
        // SAFETY: a view: only the scope closes this thread.
        unsafe { RawThread::from_header(self.header) }
    }

    /// The kernel's id of the thread.
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.raw().id()
    }

    /// Whether the thread has exited.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.raw().is_finished()
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
        let raw = self.raw();
        if let Err(kind) = raw.wait(timeout) {
            return Err(JoinError::new(kind, self));
        }
        // SAFETY: the thread has exited; `value` is its value slot. The scope frees the packet.
        match unsafe { raw.take(self.value) } {
            Some(value) => Ok(value),
            None => Err(JoinError::new(JoinErrorKind::Wait(NtStatus::UNSUCCESSFUL), self)),
        }
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("thread_id", &self.thread_id())
            .finish_non_exhaustive()
    }
}
