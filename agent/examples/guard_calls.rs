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
//! Instructions per call are the difference of the two totals divided by
//! 100 000: start-up, the guard and the first calls (which make the
//! handles) cancel out. (`--toggle-collect` on `measured` counts nothing:
//! the calls run in the future's poll, not in the function that makes it.)

#[path = "../benches/guard_support/mod.rs"]
mod guard_support;

use agent::Guard;
use guard_support::{guard, guarded};

/// The calls counted; never inlined, so that callgrind can collect it alone.
#[inline(never)]
async fn measured(guard: &Guard, n: u64) {
    for _ in 0..n {
        guarded(guard).await;
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let guard = guard();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        // Warm-up: the handles, lanes and partitions are made here.
        for _ in 0..100 {
            guarded(&guard).await;
        }
        let t = std::time::Instant::now();
        measured(&guard, n).await;
        let per_call = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
        println!("{n} guarded calls, {per_call:.1} ns per call");
    });
}
