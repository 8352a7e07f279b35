#![cfg_attr(any(bench_cycles, scenarios_ab), allow(dead_code))] // these run only a and b

//! The scenarios, written against `system-thread` exactly as a driver author would.
//! Each returns whether its own result checked out (`ok=1`); the harness checks more.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::time::Duration;

use core::sync::atomic::{AtomicU32, Ordering};

use system_thread::{
    Builder, Event, EventKind, IoObject, JoinError, JoinHandle, SpawnError, StoppableJoinHandle,
    SystemThread, Wake, available_parallelism, current_id, current_irql, on_each_processor, scope,
    sleep,
};

use crate::slot::{Shared, Slot};
use crate::work;

/// `ok=` value of a line.
fn flag(ok: bool) -> u8 {
    u8::from(ok)
}

/// The name of a `SpawnError` variant, for the `kind=` field.
fn kind(e: &SpawnError) -> &'static str {
    match e {
        SpawnError::Irql(_) => "Irql",
        SpawnError::OutOfMemory => "OutOfMemory",
        SpawnError::Create(_) => "Create",
        SpawnError::Reference(_) => "Reference",
        SpawnError::Name(_) => "Name",
        SpawnError::NotSupported(_) => "NotSupported",
        SpawnError::InvalidArgument(_) => "InvalidArgument",
        _ => "other",
    }
}

fn status_of(e: &SpawnError) -> u32 {
    e.status().code()
}

/// The `text=` of an error line in scenarios a and b: the error's `Display` text, except in
/// the builds whose code size is compared with the raw baseline (`bench_cycles`,
/// `scenarios_ab`): there, like the baseline's, the line carries only the status (`text=-`),
/// so that the comparison does not count the demo's use of the error texts.
struct Text<'a, E>(&'a E);

impl<E: core::fmt::Display> core::fmt::Display for Text<'_, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if cfg!(any(bench_cycles, scenarios_ab)) { f.write_str("-") } else { self.0.fmt(f) }
    }
}

/// Reports a join of a thread that returns a checksum: `<scenario> joined value= expected=
/// ok=`, or `<scenario> join-error status= ok=0 text=`. Returns whether the value is right.
fn report_join<H>(scenario: &str, joined: Result<u64, JoinError<H>>, expected: u64) -> bool {
    match joined {
        Ok(value) => {
            let ok = value == expected;
            log!(
                "system-thread-demo: {scenario} joined value={value:#x} expected={expected:#x} ok={}",
                flag(ok)
            );
            ok
        }
        Err(e) => {
            log!(
                "system-thread-demo: {scenario} join-error status={:#x} ok=0 text={e}",
                e.status().code()
            );
            false
        }
    }
}

/// a. spawn + join returning a computed value; thread ids from both sides.
pub fn spawn_join() -> bool {
    report!("spawn", "begin", "entry_id={}", current_id());
    let handle = match SystemThread::spawn(|| {
        let me = current_id();
        let value = work::checksum(me.0 as u64, 0..10_000);
        report!("spawn", "value-written", "id={} value={:#x}", me, value);
        value
    }) {
        Ok(handle) => handle,
        Err(e) => {
            report!(
                "spawn",
                "spawn-error",
                "kind={} status={:#x} ok=0 text={}",
                kind(&e),
                status_of(&e),
                Text(&e)
            );
            return false;
        }
    };
    let id = handle.thread_id();
    match handle.join() {
        Ok(value) => {
            let expected = work::checksum(id.0 as u64, 0..10_000);
            let ok = value == expected;
            report!(
                "spawn",
                "joined",
                "handle_id={} entry_id={} value={:#x} expected={:#x} ok={}",
                id,
                current_id(),
                value,
                expected,
                flag(ok)
            );
            ok
        }
        Err(e) => {
            report!(
                "spawn",
                "join-error",
                "status={:#x} ok=0 text={}",
                e.status().code(),
                Text(&e)
            );
            false
        }
    }
}

const PARTS: u32 = 4;
const SQUARES_END: u32 = 40_000;

/// b. several threads in parallel, each summing one slice; the total against a closed form.
pub fn parallel() -> bool {
    let mut handles: [Option<JoinHandle<u64>>; PARTS as usize] = [const { None }; PARTS as usize];
    for (index, slot) in (0..PARTS).zip(handles.iter_mut()) {
        match SystemThread::spawn(move || {
            let value = work::sum_of_squares(work::slice(index, PARTS, SQUARES_END));
            report!("parallel", "part", "index={} id={} sum={}", index, current_id(), value);
            value
        }) {
            Ok(handle) => *slot = Some(handle),
            Err(e) => report!(
                "parallel",
                "spawn-error",
                "index={} status={:#x} text={}",
                index,
                status_of(&e),
                Text(&e)
            ),
        }
    }
    let mut total = 0u64;
    let mut joined = 0u32;
    for handle in handles.iter_mut().filter_map(Option::take) {
        match handle.join() {
            Ok(value) => {
                total += value;
                joined += 1;
            }
            Err(e) => {
                report!(
                    "parallel",
                    "join-error",
                    "status={:#x} text={}",
                    e.status().code(),
                    Text(&e)
                )
            }
        }
    }
    let expected = work::sum_of_squares_closed(SQUARES_END);
    let ok = joined == PARTS && total == expected;
    report!(
        "parallel",
        "joined",
        "threads={} value={} expected={} ok={}",
        joined,
        total,
        expected,
        flag(ok)
    );
    ok
}

/// c. `join_timeout` gives up on a sleeping thread; a later `join` gets the value.
pub fn timeout() -> bool {
    let handle = match SystemThread::spawn(|| {
        let slept = sleep(Duration::from_millis(200)).is_ok();
        let value = work::checksum(3, 0..1_000);
        report!("timeout", "value-written", "slept={} value={:#x}", flag(slept), value);
        value
    }) {
        Ok(handle) => handle,
        Err(e) => {
            report!("timeout", "spawn-error", "status={:#x} ok=0 text={}", status_of(&e), e);
            return false;
        }
    };
    let expected = work::checksum(3, 0..1_000);
    let handle = match handle.join_timeout(Duration::from_millis(20)) {
        Ok(value) => {
            // Only where waits do not wait (speakeasy): the harness decides.
            report!("timeout", "first-join", "status=0x0 value={:#x}", value);
            return report_join::<()>("timeout", Ok(value), expected);
        }
        Err(e) => {
            report!(
                "timeout",
                "first-join",
                "status={:#x} timed_out={} text={}",
                e.status().code(),
                flag(e.is_timeout()),
                e
            );
            e.into_handle()
        }
    };
    report_join("timeout", handle.join(), expected)
}

const SCOPE_LEN: usize = 256;

fn left_op(x: u32) -> u32 {
    x.wrapping_mul(3).wrapping_add(1)
}

fn right_op(x: u32) -> u32 {
    x ^ 0xA5A5
}

/// d. scoped threads mutate the two halves of a DriverEntry stack array.
pub fn scoped() -> bool {
    let mut data = [0u32; SCOPE_LEN];
    for (i, x) in (0u32..).zip(data.iter_mut()) {
        *x = i;
    }
    let joined = scope(|s| {
        let (left, right) = data.split_at_mut(SCOPE_LEN / 2);
        let a = s.spawn(move || {
            left.iter_mut().for_each(|x| *x = left_op(*x));
            left.len()
        });
        let b = s.spawn(move || {
            right.iter_mut().for_each(|x| *x = right_op(*x));
            right.len()
        });
        let a = a.ok().and_then(|h| h.join().ok()).unwrap_or(0);
        let b = b.ok().and_then(|h| h.join().ok()).unwrap_or(0);
        a + b
    });
    let mut mismatches = 0u32;
    let mut sum = 0u64;
    let mut expected_sum = 0u64;
    for (i, &x) in (0u32..).zip(data.iter()) {
        let want = if (i as usize) < SCOPE_LEN / 2 { left_op(i) } else { right_op(i) };
        mismatches += u32::from(x != want);
        sum += u64::from(x);
        expected_sum += u64::from(want);
    }
    let ok = joined == SCOPE_LEN && mismatches == 0;
    report!(
        "scope",
        "verified",
        "touched={} mismatches={} value={} expected={} ok={}",
        joined,
        mismatches,
        sum,
        expected_sum,
        flag(ok)
    );
    ok
}

/// e. the worker, owned by the driver between DriverEntry and DriverUnload: it sleeps until
/// there is work or it must stop, and wakes for nothing else.
static WORKER: Slot<StoppableJoinHandle<u32>> = Slot::new();
/// "Work is pending" (a synchronization event: a wake resets it), set by whoever queues work.
static WORK: Shared<Event> = Shared::new();
/// Work items queued and not yet taken by the worker.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Work items DriverEntry queues.
pub const WORK_ITEMS: u32 = 3;

/// Queues one work item (callable up to DISPATCH_LEVEL, as from a DPC).
fn queue_work() -> bool {
    PENDING.fetch_add(1, Ordering::Release);
    WORK.get().is_some_and(|work| work.set().is_ok())
}

pub fn start_worker() -> bool {
    match Event::new(EventKind::Synchronization) {
        Ok(event) => {
            if WORK.set(event).is_err() {
                report!("worker", "event-error", "ok=0 text=already-set");
                return false;
            }
        }
        Err(e) => {
            report!("worker", "event-error", "status={:#x} ok=0 text={}", e.status().code(), e);
            return false;
        }
    }
    let handle = match SystemThread::spawn_stoppable(|stop| {
        let Some(work) = WORK.get() else { return 0 };
        let mut items = 0u32;
        let mut wakes = 0u32;
        loop {
            match stop.wait_for(work, None) {
                Ok(Wake::Work) => {
                    let taken = PENDING.swap(0, Ordering::Acquire);
                    items += taken;
                    wakes += 1;
                    report!("worker", "wake", "n={} items={} total={}", wakes, taken, items);
                }
                Ok(Wake::Stop | Wake::TimedOut) => break,
                Err(e) => {
                    report!(
                        "worker",
                        "wait-error",
                        "status={:#x} ok=0 text={}",
                        e.status().code(),
                        e
                    );
                    break;
                }
            }
        }
        report!("worker", "exiting", "items={} wakes={}", items, wakes);
        items
    }) {
        Ok(handle) => handle,
        Err(e) => {
            report!("worker", "spawn-error", "status={:#x} ok=0 text={}", status_of(&e), e);
            return false;
        }
    };
    report!("worker", "started", "id={}", handle.thread_id());
    let mut queued = 0;
    for _ in 0..WORK_ITEMS {
        queued += u32::from(queue_work());
    }
    report!("worker", "queued", "items={} ok={}", queued, flag(queued == WORK_ITEMS));
    // Only DriverEntry fills the slot, once; if it were full, dropping the handle stops and
    // joins the new worker.
    WORKER.put(handle).is_ok()
}

/// Called from DriverUnload: stop the worker and join it before the image goes away, then
/// free its event.
pub fn stop_worker() {
    let Some(handle) = WORKER.take() else {
        report!("worker", "not-running");
        return;
    };
    handle.request_stop();
    report!("worker", "stop-requested");
    match handle.join() {
        Ok(items) => report!("worker", "worker-joined", "items={} ok=1", items),
        // The error hands the handle back; dropping it joins (stop is already requested).
        Err(e) => {
            report!("worker", "worker-joined", "status={:#x} ok=0 text={}", e.status().code(), e)
        }
    }
    // SAFETY: the worker, the only other user of the event, was joined above (its handle's
    // join or drop waited for the thread object), and DriverEntry queues no more work.
    drop(unsafe { WORK.take() });
}

/// Processors: how many are active, and one pinned thread on each (group-aware). Kernels
/// without the group routines (Wine 8 lacks `KeSetSystemGroupAffinityThread`) get a clean
/// `NotSupported`, which is a pass.
pub fn processors() -> bool {
    let parallelism = match available_parallelism() {
        Ok(n) => {
            report!("processors", "parallelism", "count={} ok=1", n.get());
            Some(n.get())
        }
        Err(SpawnError::NotSupported(routine)) => {
            report!("processors", "parallelism", "not-supported={} ok=1", routine);
            None
        }
        Err(e) => {
            report!("processors", "parallelism", "status={:#x} ok=0 text={}", status_of(&e), e);
            return false;
        }
    };
    let ran = AtomicU32::new(0);
    match on_each_processor(|_processor| {
        ran.fetch_add(1, Ordering::Relaxed);
    }) {
        Ok(()) => {
            let ran = ran.load(Ordering::Relaxed) as usize;
            let ok = Some(ran) == parallelism;
            report!("processors", "on-each", "threads={} ok={}", ran, flag(ok));
            ok
        }
        Err(SpawnError::NotSupported(routine)) => {
            report!("processors", "on-each", "not-supported={} ok=1", routine);
            true
        }
        Err(e) => {
            report!("processors", "on-each", "status={:#x} ok=0 text={}", status_of(&e), e);
            false
        }
    }
}

/// f. the IRQL a system thread runs at.
pub fn irql() -> bool {
    let result = SystemThread::spawn(|| {
        let irql = current_irql();
        report!("irql", "thread", "irql={} name={}", irql.0, irql);
        irql.0
    });
    match result.map(JoinHandle::join) {
        Ok(Ok(irql)) => {
            let ok = irql == system_thread::Irql::PASSIVE.0;
            report!(
                "irql",
                "joined",
                "irql={} expected={} ok={}",
                irql,
                system_thread::Irql::PASSIVE.0,
                flag(ok)
            );
            ok
        }
        Ok(Err(e)) => {
            report!("irql", "join-error", "status={:#x} ok=0 text={}", e.status().code(), e);
            false
        }
        Err(e) => {
            report!("irql", "spawn-error", "status={:#x} ok=0 text={}", status_of(&e), e);
            false
        }
    }
}

/// g. a named thread with a priority. Whether naming works is the kernel's business (the
/// harness knows what each emulator supports), so this reports rather than judges it.
pub fn builder() -> bool {
    let spawned = Builder::new().name("demo-worker").priority(10).spawn(|| {
        let value = work::checksum(10, 0..5_000);
        report!("builder", "value-written", "id={} value={:#x}", current_id(), value);
        value
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(e) => {
            report!(
                "builder",
                "spawn-error",
                "kind={} status={:#x} text={}",
                kind(&e),
                status_of(&e),
                e
            );
            return true;
        }
    };
    report_join("builder", handle.join(), work::checksum(10, 0..5_000))
}

/// h. a thread created on the driver object (`IoCreateSystemThread`, looked up at run time).
pub fn io_object(driver: *mut c_void) -> bool {
    let Some(object) = NonNull::new(driver) else {
        report!("io_object", "skipped", "reason=no-driver-object");
        return true;
    };
    // SAFETY: `driver` is this driver's DRIVER_OBJECT, which lives until the driver is
    // unloaded; the thread is joined below, long before that.
    let io = unsafe { IoObject::from_raw(object) };
    match Builder::new().io_object(io).spawn(|| work::checksum(11, 0..100)) {
        Ok(handle) => report_join("io_object", handle.join(), work::checksum(11, 0..100)),
        Err(SpawnError::NotSupported(routine)) => {
            report!("io_object", "not-supported", "routine={}", routine);
            true
        }
        Err(e) => {
            report!(
                "io_object",
                "spawn-error",
                "kind={} status={:#x} ok=0 text={}",
                kind(&e),
                status_of(&e),
                e
            );
            false
        }
    }
}

/// i. an error's Display text (from a request the library must refuse everywhere).
pub fn display() -> bool {
    match Builder::new().priority(99).spawn(|| 0u32) {
        Err(e) => {
            let ok = matches!(e, SpawnError::InvalidArgument(_));
            report!(
                "display",
                "spawn-error",
                "kind={} status={:#x} ok={} text={}",
                kind(&e),
                status_of(&e),
                flag(ok),
                e
            );
            ok
        }
        Ok(handle) => {
            let _ = handle.join();
            report!("display", "unexpected-spawn", "ok=0");
            false
        }
    }
}

/// `--cfg leak_forget`: leaks a looping thread through `mem::forget` of its handle, the
/// escape hatch the library documents. The harness must catch it as an unload race.
#[cfg(leak_forget)]
pub fn leak_forget() {
    match SystemThread::spawn(|| {
        report!("leak", "thread-running", "via=forget id={}", current_id());
        loop {
            let _ = sleep(Duration::from_millis(10));
        }
    }) {
        Ok(handle) => {
            report!("leak", "forgotten", "id={}", handle.thread_id());
            core::mem::forget::<JoinHandle<()>>(handle);
        }
        Err(e) => report!("leak", "spawn-error", "status={:#x} text={}", status_of(&e), e),
    }
}
