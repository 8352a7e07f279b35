//! Benchmark (prints figures; not a test): spawn + join throughput of `SystemThread` on the
//! host model versus raw `std::thread::spawn` + `join`, measured in the same process run.
//!
//! `cargo run --release --example host_throughput [cycles]`
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use system_thread::host::{Call, Kernel};
use system_thread::{SystemThread, scope};

fn time(cycles: usize, mut body: impl FnMut(usize) -> usize) -> Duration {
    let start = Instant::now();
    let mut sum = 0usize;
    for i in 0..cycles {
        sum = sum.wrapping_add(body(i));
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, (0..cycles).map(|i| i + 1).sum::<usize>());
    elapsed
}

/// Kernel calls of one spawn + join (plain or scoped) of a thread that has finished when the
/// join starts, in a fresh model kernel, by name. Left out: IRQL reads (CR8 reads on x64, not
/// calls) and the zero-timeout waits that found the thread still running. The one that found it
/// finished is the `KeWaitForSingleObject` listed: the join makes no wait of its own after it.
fn spawn_join_calls(scoped: bool) -> String {
    let kernel = Kernel::new();
    let polls = std::cell::Cell::new(0);
    let wait_until_finished = |finished: &dyn Fn() -> bool| {
        let before = kernel.calls(Call::KeWaitForSingleObject);
        while !finished() {}
        polls.set(kernel.calls(Call::KeWaitForSingleObject) - before);
    };
    kernel.run(|| {
        if scoped {
            scope(|s| {
                let handle = s.spawn(|| 1).unwrap();
                wait_until_finished(&|| handle.is_finished());
                handle.join().unwrap();
            });
        } else {
            let handle = SystemThread::spawn(|| 1).unwrap();
            wait_until_finished(&|| handle.is_finished());
            handle.join().unwrap();
        }
    });
    kernel.assert_clean();
    let calls: Vec<String> = kernel
        .call_counts()
        .into_iter()
        .filter(|(call, _)| *call != Call::KeGetCurrentIrql)
        .map(|(call, n)| {
            if call == Call::KeWaitForSingleObject {
                (call, n - (polls.get() - 1))
            } else {
                (call, n)
            }
        })
        .map(
            |(call, n)| {
                if n == 1 { call.name().to_owned() } else { format!("{}x{n}", call.name()) }
            },
        )
        .collect();
    format!("{}: {}", calls.len(), calls.join(", "))
}

fn main() {
    let cycles: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let kernel = Kernel::new();
    let rounds = 9;
    let (mut ours, mut std_total, mut ratios) = (Duration::ZERO, Duration::ZERO, Vec::new());
    // Alternate the two in each round so that machine noise hits both alike.
    for _ in 0..rounds {
        let a = kernel
            .run(|| time(cycles, |i| SystemThread::spawn(move || i + 1).unwrap().join().unwrap()));
        let b = time(cycles, |i| std::thread::spawn(move || i + 1).join().unwrap());
        ratios.push(b.as_secs_f64() / a.as_secs_f64());
        ours += a;
        std_total += b;
    }
    kernel.assert_clean();
    ratios.sort_by(f64::total_cmp);
    let n = (cycles * rounds) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!("host model, {cycles} spawn+join cycles x {rounds} rounds (alternating)");
    println!("  SystemThread (host model): {:8.2} us per spawn+join", per(ours));
    println!("  std::thread:               {:8.2} us per spawn+join", per(std_total));
    println!(
        "  throughput ratio SystemThread/std: median {:.3} (rounds {:.3}..{:.3}; goal >= 0.95)",
        ratios[rounds / 2],
        ratios[0],
        ratios[rounds - 1]
    );
    println!("  kernel calls, spawn+join of a finished thread:  {}", spawn_join_calls(false));
    println!("  kernel calls, scoped spawn+join (finished):     {}", spawn_join_calls(true));
    println!(
        "  pool allocations per spawn+join: {} (std::thread makes 4 heap allocations per spawn)",
        kernel.calls(Call::ExAllocatePoolWithTag) as f64 / n
    );
}
