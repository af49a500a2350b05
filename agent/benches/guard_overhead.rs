//! The overhead of one guarded call with every layer on, in nanoseconds.
//!
//! A tiny harness (no criterion: it would double the build on two cores):
//! warm up, then time batches of calls whose dependency answers at once,
//! and report the median batch's cost per call minus the same loop without
//! the guard.
//!
//! `cargo bench -p ballast-agent --bench guard_overhead`

use agent::{Call, CompiledPolicy, DependencyError, Guard, SplitMix64, Usage, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const POLICY: &str = r#"
service:
  name: bench
  environment: bench
  owner: bench
  risk_tier: high
  dependencies:
    model_provider: { kind: model_provider }
timeouts:
  total_ms: 60000
  stages:
    - { name: generation, budget_ms: 50000, dependencies: [model_provider] }
  dependencies: { model_provider: 40000 }
retry:
  model_provider:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 1000
    jitter: decorrelated
    retry_on: [unavailable, connection]
retry_budget: { ratio_percent: 10, min_per_second: 5 }
breakers:
  model_provider:
    mode: { kind: failure_rate, threshold_percent: 50, window_ms: 30000, minimum_calls: 20 }
    slow_call: { threshold_ms: 3000, rate_percent: 50 }
    cooldown_ms: 30000
    half_open_probes: 3
bulkheads:
  generation:
    partition: tenant
    dependency: model_provider
    max_concurrent: 1000
    max_queued: 1000
    queue_timeout_ms: 1000
limits:
  tokens_per_minute: 1000000000000
  cost_per_tenant_per_day_usd_micros: 1000000000000000
  dependencies:
    model_provider:
      requests: { per_second: 1000000000, burst: 1000000000 }
      tokens_per_minute: 1000000000000
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let policy = Policy::from_yaml(POLICY).unwrap();
    let (_tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    let guard = Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(7)))
        .build();
    const BATCH: u32 = 20_000;
    const BATCHES: usize = 15;
    rt.block_on(async {
        let guarded = || async {
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
        };
        let bare = || async {
            let r: Result<u64, DependencyError> = async { Ok(black_box(1u64)) }.await;
            black_box(r.is_ok());
        };
        for _ in 0..BATCH {
            guarded().await;
        }
        let mut with = Vec::new();
        let mut without = Vec::new();
        for _ in 0..BATCHES {
            let t = Instant::now();
            for _ in 0..BATCH {
                guarded().await;
            }
            with.push(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
            let t = Instant::now();
            for _ in 0..BATCH {
                bare().await;
            }
            without.push(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
        let (w, b) = (median(with), median(without));
        println!(
            "guarded call, all layers on (deadline, rate limit, token+cost reservation, \
             retry budget, breaker, bulkhead, telemetry): {:.0} ns/call; bare: {:.0} ns/call; \
             overhead: {:.0} ns/call",
            w,
            b,
            w - b
        );
    });
}
