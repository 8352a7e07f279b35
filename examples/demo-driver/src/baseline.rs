//! `--cfg raw_baseline`: scenarios a and b and the spawn+join cycle written directly against
//! the kernel, the way a driver does it without `system-thread`: one pool block per thread
//! for the context, `PsCreateSystemThread` (NULL process, `OBJ_KERNEL_HANDLE`),
//! `ObReferenceObjectByHandle` + `ZwClose` at once, `KeWaitForSingleObject` on the thread
//! object, `ObfDereferenceObject`, free. The benchmark compares the library to this.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use crate::raw;
use crate::work;

/// Pool tag of the baseline's contexts ("DmRw").
const TAG: u32 = u32::from_le_bytes(*b"DmRw");

/// What a raw thread gets: its job and the slot for its result.
#[repr(C)]
struct Context {
    job: Job,
    result: u64,
}

#[derive(Clone, Copy)]
enum Job {
    /// `work::mix(i)`, silently (benchmark and call-count cycles).
    Mix(u32),
    /// Scenario a: a checksum seeded with the thread's own id.
    Checksum,
    /// Scenario b: sum of squares over one slice.
    Squares(u32),
}

unsafe extern "system" fn start(context: *mut c_void) {
    let ctx = context.cast::<Context>();
    // SAFETY: the joiner keeps the context alive until this thread has exited, and reads
    // `result` only after that; `job` is not written while the thread runs.
    let job = unsafe { (*ctx).job };
    let result = match job {
        Job::Mix(i) => work::mix(i),
        Job::Checksum => {
            // SAFETY: no preconditions.
            let id = unsafe { raw::PsGetCurrentThreadId() } as u64;
            let value = work::checksum(id, 0..10_000);
            report!("spawn", "value-written", "id={:#x} value={:#x}", id, value);
            value
        }
        Job::Squares(index) => {
            let value = work::sum_of_squares(work::slice(index, PARTS, SQUARES_END));
            report!("parallel", "part", "index={} sum={}", index, value);
            value
        }
    };
    // SAFETY: as above; the joiner does not read `result` before this thread exits.
    unsafe { (*ctx).result = result };
}

/// A running raw thread: its referenced thread object and its context.
struct Running {
    thread: *mut c_void,
    id: usize,
    ctx: NonNull<Context>,
}

fn spawn(job: Job) -> Option<Running> {
    // SAFETY: plain non-paged allocation at PASSIVE_LEVEL.
    let block =
        unsafe { raw::ExAllocatePoolWithTag(raw::NON_PAGED_POOL_NX, size_of::<Context>(), TAG) };
    let ctx = NonNull::new(block.cast::<Context>())?;
    // SAFETY: a fresh block of the right size (pool blocks are 16-byte aligned).
    unsafe { ctx.as_ptr().write(Context { job, result: 0 }) };
    // SAFETY: `start` only touches the context, which stays allocated until the join below
    // (or forever, if the thread cannot be joined).
    let (status, handle, id) = unsafe { raw::create(start, ctx.as_ptr().cast()) };
    if status < 0 {
        // SAFETY: the thread was not created, so nothing else uses the block.
        unsafe { raw::ExFreePoolWithTag(ctx.as_ptr().cast(), TAG) };
        return None;
    }
    // SAFETY: `handle` was just returned by `create` and is not used again.
    let Ok(thread) = (unsafe { raw::reference_and_close(handle) }) else {
        // Unjoinable: the context is leaked on purpose (the thread may still use it).
        return None;
    };
    Some(Running { thread, id, ctx })
}

fn join(running: Running) -> u64 {
    // SAFETY: a referenced thread object; no timeout.
    unsafe {
        raw::KeWaitForSingleObject(running.thread, raw::EXECUTIVE, raw::KERNEL_MODE, 0, ptr::null())
    };
    // SAFETY: drops the reference taken in `spawn`, once.
    unsafe { raw::ObfDereferenceObject(running.thread) };
    // SAFETY: the thread has exited: nobody else touches the context.
    let result = unsafe { running.ctx.as_ptr().read().result };
    // SAFETY: allocated in `spawn` with this tag, freed once.
    unsafe { raw::ExFreePoolWithTag(running.ctx.as_ptr().cast(), TAG) };
    result
}

/// One spawn+join cycle of `work::mix(i)`.
pub fn spawn_join_once(i: u32) -> Option<u64> {
    spawn(Job::Mix(i)).map(join)
}

/// Scenario a, raw.
pub fn spawn_join() -> bool {
    report!("spawn", "begin", "entry_id={:#x}", entry_id());
    let Some(running) = spawn(Job::Checksum) else {
        report!("spawn", "spawn-error", "ok=0");
        return false;
    };
    let id = running.id;
    let value = join(running);
    let expected = work::checksum(id as u64, 0..10_000);
    let ok = value == expected;
    report!(
        "spawn",
        "joined",
        "handle_id={:#x} entry_id={:#x} value={:#x} expected={:#x} ok={}",
        id,
        entry_id(),
        value,
        expected,
        u8::from(ok)
    );
    ok
}

const PARTS: u32 = 4;
const SQUARES_END: u32 = 40_000;

/// Scenario b, raw.
pub fn parallel() -> bool {
    let mut running: [Option<Running>; PARTS as usize] = [const { None }; PARTS as usize];
    for (index, slot) in (0..PARTS).zip(running.iter_mut()) {
        *slot = spawn(Job::Squares(index));
    }
    let mut total = 0u64;
    let mut joined = 0u32;
    for slot in &mut running {
        if let Some(r) = slot.take() {
            total += join(r);
            joined += 1;
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
        u8::from(ok)
    );
    ok
}

fn entry_id() -> usize {
    // SAFETY: no preconditions.
    unsafe { raw::PsGetCurrentThreadId() as usize }
}
