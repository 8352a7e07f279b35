//! `--cfg bench_cycles`: times 1,000 spawn+join cycles with `KeQueryPerformanceCounter`
//! (hal.dll; Wine implements it there with the host's monotonic clock). The same loop runs
//! over the library (`scenarios::spawn_join_once`) or the raw baseline
//! (`baseline::spawn_join_once`).

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
