//! Runs a fixed number of guarded calls with every pattern on, the same
//! call and policy as `benches/guard_overhead.rs`, for instruction counts:
//! wall time on a shared machine is noisy, instructions are not.
//!
//! ```text
//! cargo build --release -p ballast-agent --example guard_calls
//! valgrind --tool=callgrind target/release/examples/guard_calls 20000
//! valgrind --tool=callgrind target/release/examples/guard_calls 120000
//! ```
//!
//! A second argument runs the calls on that many threads at once, each
//! with its own current-thread runtime over the one guard (for `perf` on
//! the contended case): `guard_calls 4000000 2`.
//!
//! Instructions per call are the difference of the two totals divided by
//! 100 000: start-up, the guard and the first calls (which make the
//! handles) cancel out. All but the cycle counter's calibration, which
//! runs until its error settles and so varies by about a million
//! instructions from run to run: subtract its inclusive count
//! (`callgrind_annotate --inclusive=yes`, the line of
//! `quanta::Calibration::calibrate`) from each total first.
//! (`--toggle-collect` on `measured` counts nothing: the calls run in the
//! future's poll, not in the function that makes it.)

#[path = "../benches/guard_support/mod.rs"]
mod guard_support;

use agent::Guard;
use guard_support::{guard, guarded, on_threads};

/// The calls counted; never inlined, so that callgrind can collect it alone.
#[inline(never)]
async fn measured(guard: &Guard, n: u64) {
    for _ in 0..n {
        guarded(guard).await;
    }
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (n, threads) = (arg(1, 100_000), arg(2, 1).max(1));
    let guard = guard();
    // Each thread drives its own current-thread runtime over the one
    // guard, as the benchmark's two-thread case does.
    let runtimes: Vec<_> = (0..threads)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime")
        })
        .collect();
    let per_thread = n / threads;
    let elapsed = on_threads(&runtimes, || async {
        // Warm-up: the thread's handles, lanes and partitions are made
        // here (100 calls, next to which the measured ones are many).
        for _ in 0..100 {
            guarded(&guard).await;
        }
        measured(&guard, per_thread).await;
    });
    let per_call = elapsed.as_nanos() as f64 / (per_thread * threads).max(1) as f64;
    println!("{n} guarded calls on {threads} threads, {per_call:.1} ns per call (wall)");
}
