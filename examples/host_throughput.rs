//! Benchmark (prints figures; not a test): spawn + join throughput of `SystemThread` on the
//! host model versus raw `std::thread::spawn` + `join`, measured in the same process run.
//!
//! `cargo run --release --example host_throughput [cycles]`
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use system_thread::SystemThread;
use system_thread::host::{Call, Kernel};

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

fn main() {
    let cycles: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let kernel = Kernel::new();
    let rounds = 3;
    let (mut ours, mut std_total) = (Duration::ZERO, Duration::ZERO);
    // Interleave the two so that machine noise hits both alike.
    for _ in 0..rounds {
        ours += kernel
            .run(|| time(cycles, |i| SystemThread::spawn(move || i + 1).unwrap().join().unwrap()));
        std_total += time(cycles, |i| std::thread::spawn(move || i + 1).join().unwrap());
    }
    kernel.assert_clean();
    let n = (cycles * rounds) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!("host model, {cycles} spawn+join cycles x {rounds} rounds");
    println!("  SystemThread (host model): {:8.2} us per spawn+join", per(ours));
    println!("  std::thread:               {:8.2} us per spawn+join", per(std_total));
    println!(
        "  throughput ratio SystemThread/std: {:.3} (goal >= 0.95)",
        std_total.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  pool allocations per spawn+join: {} (std::thread makes 4 heap allocations per spawn)",
        kernel.calls(Call::ExAllocatePoolWithTag) as f64 / n
    );
}
