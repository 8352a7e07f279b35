//! Benchmark inputs.
//!
//! * Brackets (every variant): one spawn+join between two marker lines, so that the harness
//!   can count what happens between them: the kernel calls (the speakeasy API trace) and the
//!   instructions executed inside this image (a unicorn code hook, see
//!   tools/emulate/speakeasy_run.py). The markers are printed with `DbgPrint` of a constant
//!   string, without formatting, and every bracket runs the same non-inlined [`bracketed`]
//!   function with opaque arguments, so the instructions between the markers are the
//!   operation plus a fixed overhead. The `empty-calls` bracket measures that overhead (the
//!   marker calls and the call of a function returning `None`), which the harness subtracts.
//! * `--cfg bench_cycles`: 1,000 spawn+join cycles timed with `KeQueryPerformanceCounter`
//!   (hal.dll; Wine implements it there with the host's monotonic clock). The same loop runs
//!   over the library ([`library::spawn_join_once`]) or the raw baseline
//!   (`baseline::spawn_join_once`).

// The builds with fewer scenarios leave some brackets unused.
#![cfg_attr(any(raw_baseline, bench_cycles, scenarios_ab), allow(dead_code))]

use core::ffi::CStr;
use core::hint::black_box;

use crate::work;

/// The argument of every bracketed cycle.
const ARG: u32 = 5;

/// The two marker lines of one bracket: `system-thread-demo: <label> begin` and `... end`.
pub struct Bracket {
    label: &'static str,
    begin: &'static CStr,
    end: &'static CStr,
}

/// A string literal with a NUL appended, as a `CStr` (checked at compile time: only used in
/// constants).
const fn c_str(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("marker text contains a NUL"),
    }
}

macro_rules! bracket {
    ($label:literal) => {
        Bracket {
            label: $label,
            begin: c_str(concat!("system-thread-demo: ", $label, " begin\n\0")),
            end: c_str(concat!("system-thread-demo: ", $label, " end\n\0")),
        }
    };
}

/// `SystemThread::spawn` + `join` (library) or the hand-written equivalent (raw baseline).
pub const CALLS: Bracket = bracket!("calls");
/// Nothing: the overhead every bracket shares.
pub const EMPTY: Bracket = bracket!("empty-calls");
/// `scope` + `Scope::spawn` + `join`.
#[cfg(not(raw_baseline))]
pub const SCOPED: Bracket = bracket!("scoped-calls");
/// `SystemThread::spawn_stoppable` + `join`.
#[cfg(not(raw_baseline))]
pub const STOPPABLE: Bracket = bracket!("stoppable-calls");
/// `Builder::new().name(..).priority(..).spawn` + `join`.
#[cfg(not(raw_baseline))]
pub const BUILDER: Bracket = bracket!("builder-calls");

/// Prints a marker: `DbgPrint("%s", text)`, no formatting in this image.
fn mark(text: &CStr) {
    // SAFETY: both arguments are NUL-terminated strings that live across the call, and "%s"
    // consumes exactly one `char*` vararg.
    unsafe { crate::rt::DbgPrint(c"%s".as_ptr(), text.as_ptr()) };
}

/// The one function between whose markers the harness counts. Not inlined, and its callers
/// pass opaque arguments, so every bracket executes the same code around `once(arg)`.
#[inline(never)]
fn bracketed(begin: &CStr, end: &CStr, once: fn(u32) -> Option<u64>, arg: u32) -> Option<u64> {
    mark(begin);
    let value = once(arg);
    mark(end);
    value
}

/// The `empty-calls` operation.
fn nothing(_: u32) -> Option<u64> {
    None
}

/// Runs `once(5)` inside `bracket` and reports `<label> joined value= expected= ok=`.
pub fn count(bracket: &Bracket, once: fn(u32) -> Option<u64>) -> bool {
    let value = bracketed(
        black_box(bracket.begin),
        black_box(bracket.end),
        black_box(once),
        black_box(ARG),
    );
    let expected = work::mix(ARG);
    let ok = value == Some(expected);
    log!(
        "system-thread-demo: {} joined value={:#x} expected={expected:#x} ok={}",
        bracket.label,
        value.unwrap_or(0),
        u8::from(ok)
    );
    ok
}

/// Runs the `empty-calls` bracket.
pub fn count_empty() -> bool {
    let value =
        bracketed(black_box(EMPTY.begin), black_box(EMPTY.end), black_box(nothing), black_box(ARG));
    value.is_none()
}

/// The bracketed operations through the library: one spawn+join cycle of `work::mix(i)` each.
#[cfg(not(raw_baseline))]
pub mod library {
    use system_thread::{Builder, SystemThread};

    use crate::work;

    /// `SystemThread::spawn` + `join` (also the timed cycle of `bench_cycles`).
    pub fn spawn_join_once(i: u32) -> Option<u64> {
        SystemThread::spawn(move || work::mix(i)).ok()?.join().ok()
    }

    /// A scope with one scoped thread, joined in the scope.
    pub fn scoped_spawn_join_once(i: u32) -> Option<u64> {
        system_thread::scope(|s| s.spawn(move || work::mix(i)).ok()?.join().ok())
    }

    /// A stoppable thread whose closure ignores its token, joined without a stop request.
    pub fn stoppable_spawn_join_once(i: u32) -> Option<u64> {
        SystemThread::spawn_stoppable(move |_stop| work::mix(i)).ok()?.join().ok()
    }

    /// A named thread with a priority.
    pub fn builder_spawn_join_once(i: u32) -> Option<u64> {
        Builder::new().name("icount").priority(10).spawn(move || work::mix(i)).ok()?.join().ok()
    }
}

#[cfg(bench_cycles)]
pub use timed::run;

/// `--cfg bench_cycles`: the timed loop.
#[cfg(bench_cycles)]
mod timed {
    use core::ptr;

    use crate::work;

    #[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64;
    }

    pub const CYCLES: u32 = 1_000;
    const WARM_UP: u32 = 20;

    /// (counter, frequency)
    fn counter() -> (i64, i64) {
        let mut frequency = 0i64;
        // SAFETY: `frequency` is a live local; callable at any IRQL.
        let now = unsafe { KeQueryPerformanceCounter(&mut frequency) };
        (now, frequency)
    }

    pub fn run(variant: &str, once: fn(u32) -> Option<u64>) -> bool {
        for i in 0..WARM_UP {
            let _ = once(i);
        }
        let (start, frequency) = counter();
        let mut acc = 0u64;
        let mut failures = 0u32;
        for i in 0..CYCLES {
            match once(i) {
                Some(v) => acc = acc.wrapping_add(v),
                None => failures += 1,
            }
        }
        // SAFETY: a NULL frequency pointer is allowed.
        let end = unsafe { KeQueryPerformanceCounter(ptr::null_mut()) };
        let expected = (0..CYCLES).map(work::mix).fold(0u64, u64::wrapping_add);
        let ticks = end.saturating_sub(start).max(0).cast_unsigned();
        let freq = frequency.max(1).cast_unsigned();
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(freq);
        let ok = failures == 0 && acc == expected;
        report!(
            "bench",
            "done",
            "variant={} cycles={} failures={} ticks={} freq={} ns={} ns_per_cycle={} value={:#x} expected={:#x} ok={}",
            variant,
            CYCLES,
            failures,
            ticks,
            freq,
            ns,
            ns / u128::from(CYCLES),
            acc,
            expected,
            u8::from(ok)
        );
        ok
    }
}
