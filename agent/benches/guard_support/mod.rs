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
