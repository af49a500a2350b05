//! Each layer alone in a `ServiceBuilder`, on nothing but the shared
//! enforcement state (no `Guard` anywhere), on a paused clock: a pattern
//! folder's layer stands on its own, and every duration below is exact.

use agent::breaker::{BreakerLayer, BreakerOpen};
use agent::bulkhead::{BulkheadLayer, BulkheadRejected, BulkheadRejection};
use agent::deadline::{DeadlineLayer, Expired};
use agent::fallback::{Degraded, FallbackLayer};
use agent::rate_limit::{RateLimitLayer, RateLimited};
use agent::retry::RetryLayer;
use agent::state::Enforcement;
use agent::{CallSpec, CompiledPolicy, Deadline, DependencyError, SplitMix64, policy_channel};
use shared::policy::{DegradedStatus, Effect, ErrorClass, Policy};
use shared::protocol::{DEADLINE_HEADER, PolicySource};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};

const POLICY: &str = r#"
service:
  name: alone
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: other }
    model: { kind: model_provider }
    reranker: { kind: reranker, required: false }
timeouts:
  total_ms: 2000
retry:
  search:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 100
    jitter: none
    retry_on: [unavailable]
    operations: { get: read }
retry_budget: { ratio_percent: 10, min_per_second: 100 }
breakers:
  model:
    mode: { kind: consecutive, failures: 2 }
    cooldown_ms: 1000
    half_open_probes: 1
bulkheads:
  generation:
    partition: tenant
    dependency: model
    max_concurrent: 1
    max_queued: 0
    queue_timeout_ms: 500
limits:
  dependencies:
    search:
      requests: { per_second: 1, burst: 1 }
fallbacks:
  - component: reranker
    failure: any
    fallback: { kind: skip_step }
    degraded_status: degraded
    user_message: Results are ranked more coarsely than usual.
    allowed: true
"#;

/// The enforcement state of [`POLICY`], with seeded jitter.
fn state() -> Enforcement {
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let (tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    // The value stays final once the sender is gone.
    drop(tx);
    Enforcement::builder(rx)
        .random(Arc::new(SplitMix64::seeded(11)))
        .build()
}

fn request(spec: CallSpec) -> http::Request<()> {
    let mut req = http::Request::new(());
    req.extensions_mut().insert(spec);
    req
}

#[tokio::test(start_paused = true)]
async fn the_deadline_layer_alone_bounds_the_handler_by_the_header() {
    let state = state();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(state.policy_receiver()))
        .service(service_fn(|req: http::Request<()>| async move {
            let left = req.extensions().get::<Deadline>().map(Deadline::remaining);
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, DependencyError>(left)
        }));
    let with_header = |ms: &str| {
        http::Request::builder()
            .header(DEADLINE_HEADER, ms)
            .body(())
            .unwrap()
    };
    // 900 ms left: the handler sees them and finishes in 500.
    let left = svc.clone().oneshot(with_header("900")).await.unwrap();
    assert_eq!(left, Some(Duration::from_millis(900)));
    // 300 ms left: cut off at exactly 300.
    let began = Instant::now();
    let err = svc.clone().oneshot(with_header("300")).await.unwrap_err();
    assert!(err.downcast_ref::<Expired>().is_some(), "{err}");
    assert_eq!(began.elapsed(), Duration::from_millis(300));
    // No header: the policy's total budget of 2 s applies.
    let left = svc.oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(left, Some(Duration::from_secs(2)));
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_layer_alone_refuses_past_the_burst_until_the_rate_refills() {
    let state = state();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(&state))
        .service(service_fn(move |_req: http::Request<()>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, DependencyError>("hits") }
        }));
    let get = || request(CallSpec::new("search", "get"));
    assert_eq!(svc.clone().oneshot(get()).await.unwrap(), "hits");
    // One a second with a burst of one: the second call at once is refused
    // and never reaches the dependency.
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert!(err.downcast_ref::<RateLimited>().is_some(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(svc.oneshot(get()).await.unwrap(), "hits");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    state.seal_telemetry();
    let batch = state.recorder().next_batch().expect("a sealed batch");
    assert_eq!(batch.dependencies["search"].rate_limited, 1);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_alone_retries_a_read_after_its_backoff() {
    let state = state();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(&state))
        .service(service_fn(move |_req: http::Request<()>| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 | 2 => Err(DependencyError::new(ErrorClass::Unavailable, "503")),
                    _ => Ok("hits"),
                }
            }
        }));
    let began = Instant::now();
    let out = svc
        .clone()
        .oneshot(request(CallSpec::new("search", "get")))
        .await;
    assert_eq!(out.unwrap(), "hits");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Two backoffs of exactly 100 ms (no jitter).
    assert_eq!(began.elapsed(), Duration::from_millis(200));
    // A write without an idempotency key is never retried.
    calls.store(0, Ordering::SeqCst);
    let err = svc
        .oneshot(request(
            CallSpec::new("search", "get").effect(Effect::Write),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_alone_opens_after_two_failures_and_probes_after_the_cooldown() {
    let state = state();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(&state))
        .service(service_fn(move |_req: http::Request<()>| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 | 2 => Err(DependencyError::new(ErrorClass::Unavailable, "503")),
                    _ => Ok("text"),
                }
            }
        }));
    let generate = || request(CallSpec::new("model", "generate"));
    for _ in 0..2 {
        let err = svc.clone().oneshot(generate()).await.unwrap_err();
        assert!(err.downcast_ref::<DependencyError>().is_some(), "{err}");
    }
    // Open: refused without reaching the dependency.
    let err = svc.clone().oneshot(generate()).await.unwrap_err();
    assert!(err.downcast_ref::<BreakerOpen>().is_some(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        state.breaker_state("model"),
        Some(shared::protocol::BreakerState::Open)
    );
    // After the cooldown one probe goes through, succeeds, and closes it.
    tokio::time::advance(Duration::from_millis(1000)).await;
    assert_eq!(svc.oneshot(generate()).await.unwrap(), "text");
    assert_eq!(
        state.breaker_state("model"),
        Some(shared::protocol::BreakerState::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_layer_alone_holds_one_slot_per_tenant_and_rejects_the_next() {
    let state = state();
    // The first call answers only when the test releases it, so it holds
    // its slot for as long as the test says; every other answers at once.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let first = Arc::new(Mutex::new(Some(released)));
    let svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(&state))
        .service(service_fn(move |_req: http::Request<()>| {
            let wait = first.lock().unwrap().take();
            async move {
                if let Some(released) = wait {
                    released.await.expect("released");
                }
                Ok::<_, DependencyError>("text")
            }
        }));
    let generate = |tenant: &str| request(CallSpec::new("model", "generate").tenant(tenant));
    let held = tokio::spawn(svc.clone().oneshot(generate("acme")));
    tokio::task::yield_now().await;
    // One slot, no queue: acme's second call is rejected at once.
    let err = svc.clone().oneshot(generate("acme")).await.unwrap_err();
    let rejected = err.downcast_ref::<BulkheadRejected>().expect("rejected");
    assert_eq!(rejected.rejection(), BulkheadRejection::Full);
    // Another tenant's partition is free.
    assert_eq!(
        svc.clone().oneshot(generate("globex")).await.unwrap(),
        "text"
    );
    // The held call ends and gives its slot back.
    release.send(()).unwrap();
    assert_eq!(held.await.unwrap().unwrap(), "text");
    assert_eq!(svc.oneshot(generate("acme")).await.unwrap(), "text");
}

#[tokio::test(start_paused = true)]
async fn the_fallback_layer_alone_labels_a_failure_by_the_matrix() {
    let state = state();
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(&state))
        .service(service_fn(|req: http::Request<()>| async move {
            match req
                .extensions()
                .get::<CallSpec>()
                .map(|s| s.operation.as_str())
            {
                Some("rerank") => Err::<&str, BoxError>(
                    DependencyError::new(ErrorClass::Unavailable, "503").into(),
                ),
                _ => Ok("ranked"),
            }
        }));
    // A success passes through untouched.
    let ok = svc
        .clone()
        .oneshot(request(CallSpec::new("reranker", "noop")))
        .await;
    assert_eq!(ok.unwrap(), "ranked");
    let err: Degraded = svc
        .oneshot(request(CallSpec::new("reranker", "rerank")))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Unavailable);
    assert_eq!(err.status, DegradedStatus::Degraded);
    assert_eq!(err.fallback.expect("a fallback").action.name(), "skip_step");
    assert_eq!(
        err.user_message.as_deref(),
        Some("Results are ranked more coarsely than usual.")
    );
}

#[tokio::test(start_paused = true)]
async fn admission_alone_sheds_nothing_under_no_trigger_and_holds_the_deadline() {
    // Admission has no layer: a request enters through the state itself.
    let state = state();
    let admitted = state
        .admit(agent::Request::default())
        .await
        .expect("admitted");
    assert_eq!(admitted.mode, shared::policy::AdmissionMode::Normal);
    // The policy's total budget starts at admission.
    assert_eq!(
        admitted.deadline.map(|d| d.remaining()),
        Some(Duration::from_secs(2))
    );
}
