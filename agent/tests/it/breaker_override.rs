//! A fleet-wide breaker override from an incident ends on time on the
//! agent's own clock, with no control plane at all: the version stays,
//! without the ended override.

use agent::clock::WallClock;
use agent::compiled::lift_overrides_on_time;
use agent::{Call, CompiledPolicy, DependencyError, Guard, SplitMix64, policy_channel};
use shared::policy::{ForcedState, Policy};
use shared::protocol::PolicySource;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const POLICY: &str = r#"
service:
  name: rag-answer
  environment: test
  owner: search
  risk_tier: medium
  dependencies:
    reranker: { kind: reranker, required: false }
timeouts:
  total_ms: 2000
  dependencies:
    reranker: 500
breakers:
  reranker:
    mode: { kind: consecutive, failures: 3 }
    cooldown_ms: 10000
    half_open_probes: 1
"#;

const T0: i64 = 1_800_000_000_000;

fn overridden(version: u64, forced: ForcedState, until: i64) -> CompiledPolicy {
    let mut policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let b = policy.breakers.get_mut("reranker").unwrap();
    b.forced = forced;
    b.forced_until_ms = Some(until);
    b.forced_reason = Some("INC-7: reranker returns garbage".into());
    let report = policy.validate(&Default::default());
    assert!(
        !report.has_errors(),
        "{:?}",
        report.errors().collect::<Vec<_>>()
    );
    CompiledPolicy::compile(policy, Some(version), PolicySource::Server)
}

async fn reaches(guard: &Guard, calls: &Arc<AtomicU32>) -> bool {
    let before = calls.load(Ordering::SeqCst);
    let counter = calls.clone();
    let _ = guard
        .call(&Call::new("reranker", "rerank"), move |_| {
            let calls = counter.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, DependencyError>(())
            }
        })
        .await;
    // Let the lifting task run if it is due.
    tokio::task::yield_now().await;
    calls.load(Ordering::SeqCst) > before
}

#[tokio::test(start_paused = true)]
async fn an_override_ends_on_time_with_no_control_plane() {
    let (tx, rx) = policy_channel(overridden(7, ForcedState::Open, T0 + 60_000));
    let tx = Arc::new(tx);
    tokio::spawn(lift_overrides_on_time(
        Arc::downgrade(&tx),
        WallClock::anchored_at(T0),
    ));
    let guard = Guard::builder(rx.clone())
        .random(Arc::new(SplitMix64::seeded(7)))
        .instance_id("pod-1")
        .build();
    let calls = Arc::new(AtomicU32::new(0));

    assert!(
        !reaches(&guard, &calls).await,
        "forced open: no call gets through"
    );
    tokio::time::advance(Duration::from_millis(59_999)).await;
    assert!(
        !reaches(&guard, &calls).await,
        "still forced a millisecond before the end"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(reaches(&guard, &calls).await, "the override ended on time");
    let in_force = rx.borrow().clone();
    assert_eq!(
        in_force.version(),
        Some(7),
        "the same version, without the override"
    );
    let b = &in_force.policy().breakers["reranker"];
    assert_eq!((b.forced, b.forced_until_ms), (ForcedState::None, None));
}

#[tokio::test(start_paused = true)]
async fn a_newer_version_rearms_the_end_and_an_ended_one_is_lifted_at_once() {
    let (tx, rx) = policy_channel(overridden(1, ForcedState::Open, T0 + 60_000));
    let tx = Arc::new(tx);
    tokio::spawn(lift_overrides_on_time(
        Arc::downgrade(&tx),
        WallClock::anchored_at(T0),
    ));
    let guard = Guard::builder(rx.clone())
        .random(Arc::new(SplitMix64::seeded(7)))
        .instance_id("pod-1")
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    assert!(!reaches(&guard, &calls).await);

    // Extended to two minutes by a new version before the first end.
    tokio::time::advance(Duration::from_secs(30)).await;
    tx.send_replace(Arc::new(overridden(2, ForcedState::Open, T0 + 120_000)));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(
        !reaches(&guard, &calls).await,
        "the first end no longer applies"
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::task::yield_now().await;
    assert!(reaches(&guard, &calls).await);
    assert_eq!(rx.borrow().version(), Some(2));

    // A version whose override already ended (an agent back from a long
    // partition, reading it from disk) is lifted straight away.
    tx.send_replace(Arc::new(overridden(3, ForcedState::Open, T0 - 1)));
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(reaches(&guard, &calls).await);
    assert_eq!(rx.borrow().version(), Some(3));
}
