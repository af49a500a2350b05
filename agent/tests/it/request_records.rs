//! One record per request under `_requests`: what the control plane
//! measures the policy's objectives on. A finished request counts its
//! latency and final status; a refused one counts as refused, untimed; a
//! safety violation is counted under its own pseudo-dependency.

use agent::{CompiledPolicy, Guard, Request, SplitMix64, policy_channel};
use shared::policy::{DegradedStatus, Policy, REQUESTS_COMPONENT, SafetyViolation};
use shared::protocol::{DependencyTelemetry, LATENCY_BUCKETS_MS, PolicySource};
use std::sync::Arc;
use std::time::Duration;

const POLICY: &str = r#"
service:
  name: svc
  environment: prod
  owner: team
  risk_tier: low
  dependencies: {}
limits:
  requests: { per_second: 1, burst: 2 }
"#;

fn guard() -> Guard {
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let (tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    // Kept open for the test's life; this test never publishes.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(19)))
        .build()
}

fn telemetry(guard: &Guard, component: &str) -> DependencyTelemetry {
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().expect("a batch");
    guard.recorder().acknowledge(batch.sequence);
    batch
        .dependencies
        .get(component)
        .cloned()
        .unwrap_or_default()
}

fn bucket_of(ms: u64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

#[tokio::test(start_paused = true)]
async fn each_request_records_its_status_and_latency_once() {
    let guard = guard();
    let tenant = Request {
        tenant: Some("acme"),
        ..Request::default()
    };
    // Two admitted (the burst), the third refused by the tenant's rate.
    let first = guard.admit(tenant.clone()).await.expect("admitted");
    let second = guard.admit(tenant.clone()).await.expect("admitted");
    assert!(guard.admit(tenant.clone()).await.is_err(), "over the rate");
    tokio::time::advance(Duration::from_millis(300)).await;
    first.finish(DegradedStatus::Normal);
    tokio::time::advance(Duration::from_millis(4_000)).await;
    second.finish(DegradedStatus::Degraded);
    // Dropped without an outcome: in no objective.
    drop(guard.admit(tenant).await);

    let t = telemetry(&guard, REQUESTS_COMPONENT);
    assert_eq!(t.calls, 3, "two finished and one refused: {t:?}");
    assert_eq!(t.successes, 2);
    assert_eq!(t.degraded.get(&DegradedStatus::Degraded), Some(&1));
    assert_eq!(t.degraded.get(&DegradedStatus::Refused), Some(&1));
    assert_eq!(t.degraded.get(&DegradedStatus::Normal), None);
    // The refusal is not timed; the two answers are, end to end.
    assert_eq!(t.latency_buckets.iter().sum::<u64>(), 2);
    assert_eq!(t.latency_buckets[bucket_of(300)], 1);
    assert_eq!(t.latency_buckets[bucket_of(4_300)], 1);
}

#[tokio::test(start_paused = true)]
async fn a_reported_safety_violation_is_counted_under_its_own_name() {
    let guard = guard();
    guard.report_violation(SafetyViolation::DuplicateSideEffect);
    guard.report_violation(SafetyViolation::DuplicateSideEffect);
    let t = telemetry(&guard, "_safety-duplicate_side_effect");
    assert_eq!(t.calls, 2);
}
