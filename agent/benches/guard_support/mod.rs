//! The guard and the call that `benches/guard_overhead.rs` times and
//! `examples/guard_calls.rs` counts instructions of: one definition, so the
//! two figures are of the same work.

use agent::{Call, CompiledPolicy, DependencyError, Guard, SplitMix64, Usage, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
use std::hint::black_box;
use std::sync::Arc;

/// The policy of every guarded call here.
const POLICY: &str = include_str!("../guard_policy.yaml");

/// A guard on [`POLICY`], with a seeded random source so runs compare.
pub fn guard() -> Guard {
    let policy = Policy::from_yaml(POLICY).expect("the bench policy parses");
    let (tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    // The channel stays open for the process's life.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(7)))
        .build()
}

/// One guarded call with every pattern on, around an immediate dependency.
pub async fn guarded(guard: &Guard) {
    let out = guard
        .call(
            &Call::new("model_provider", "generate")
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

/// Runs the future `calls` makes on as many OS threads as `runtimes` at
/// once, each thread driving its own current-thread runtime; the wall time
/// from the moment they all start until the last finishes. (Tasks on one
/// multi-thread runtime were sometimes run side by side and sometimes one
/// after the other on the same worker, which moved the figure by a factor
/// of three from run to run.)
pub fn on_threads<F, Fut>(runtimes: &[tokio::runtime::Runtime], calls: F) -> std::time::Duration
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let start = std::sync::Barrier::new(runtimes.len());
    std::thread::scope(|s| {
        let threads: Vec<_> = runtimes
            .iter()
            .map(|rt| {
                let (start, calls) = (&start, &calls);
                s.spawn(move || {
                    // Made inside the runtime: tower's rate limit makes its
                    // timer on creation.
                    let fut = {
                        let _runtime = rt.enter();
                        calls()
                    };
                    start.wait();
                    let t = std::time::Instant::now();
                    rt.block_on(fut);
                    t
                })
            })
            .collect();
        let started: Vec<std::time::Instant> = threads
            .into_iter()
            .map(|t| t.join().expect("a calling thread"))
            .collect();
        started
            .iter()
            .min()
            .map_or_else(std::time::Duration::default, |first| first.elapsed())
    })
}
