//! Runs a fixed number of guarded calls with every pattern on, the same
//! call and policy as `benches/guard_overhead.rs`, for instruction counts:
//! wall time on a shared machine is noisy, instructions are not.
//!
//! ```text
//! cargo build --release -p ballast-agent --example guard_calls
//! valgrind --tool=callgrind --toggle-collect='*guard_calls*measured*' \
//!     target/release/examples/guard_calls 100000
//! ```
//!
//! Instructions per call are the collected total divided by the count
//! (the first calls, which make the handles, run before collection).

use agent::{Call, CompiledPolicy, DependencyError, Guard, SplitMix64, Usage, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
use std::hint::black_box;
use std::sync::Arc;

/// The bench's policy.
const POLICY: &str = include_str!("../benches/guard_policy.yaml");

async fn guarded(guard: &Guard) {
    let out = guard
        .call(
            Call::new("model_provider", "generate")
                .tenant("acme")
                .estimate(Usage {
                    tokens: 10,
                    cost_usd_micros: 1,
                }),
            |_| async { Ok::<_, DependencyError>(black_box(1u64)) },
        )
        .await;
    black_box(out.result.is_ok());
}

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
    let policy = Policy::from_yaml(POLICY).expect("the bench policy parses");
    let (_tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    let guard = Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(7)))
        .build();
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
