//! The fallback layer on top of the pattern layers: the caller of a tower
//! stack sees the same status, user message and fallback decision that
//! `Guard::call` gives, on a paused clock.

use agent::breaker::BreakerLayer;
use agent::fallback::{Degraded, FailedResponse, FallbackLayer};
use agent::rate_limit::RateLimitLayer;
use agent::retry::RetryLayer;
use agent::{
    CallSpec, CompiledPolicy, DependencyError, Guard, HttpStatus, SplitMix64, policy_channel,
};
use shared::policy::{DegradedStatus, Effect, ErrorClass, Policy};
use shared::protocol::PolicySource;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const POLICY: &str = r#"
service:
  name: layered
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    reranker: { kind: reranker, required: false }
    model: { kind: model_provider }
    payments: { kind: tool_api }
retry:
  reranker:
    max_attempts: 2
    base_delay_ms: 100
    max_delay_ms: 100
    jitter: none
    retry_on: [unavailable]
    operations: { rerank: read }
retry_budget: { ratio_percent: 10, min_per_second: 100 }
breakers:
  reranker:
    mode: { kind: consecutive, failures: 2 }
    cooldown_ms: 1000
    half_open_probes: 1
fallbacks:
  - component: reranker
    failure: breaker_open
    fallback: { kind: skip_step }
    degraded_status: partial
    user_message: Ranking is off for now.
    allowed: true
  - component: reranker
    failure: any
    fallback: { kind: skip_step }
    degraded_status: degraded
    user_message: Results are ranked more coarsely than usual.
    allowed: true
    confidence_penalty_percent: 10
  - component: model
    failure: any
    fallback: { kind: cached, max_staleness_ms: 60000 }
    degraded_status: degraded
    user_message: A cached answer.
    allowed: false
invariants:
  must_fail_closed:
    - id: no-unapproved-payment
      component: payments
      failure: any
      description: A payment is never made without its approval.
limits:
  cost_per_tenant_per_day_usd_micros: 100
"#;

fn guard() -> (tokio::sync::watch::Sender<Arc<CompiledPolicy>>, Guard) {
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let (tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    let guard = Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(5)))
        .build();
    (tx, guard)
}

fn request(spec: CallSpec) -> http::Request<()> {
    let mut req = http::Request::new(());
    req.extensions_mut().insert(spec);
    req
}

fn failing(
    calls: Arc<AtomicU32>,
) -> impl tower::Service<
    http::Request<()>,
    Response = &'static str,
    Error = DependencyError,
    Future = impl Future<Output = Result<&'static str, DependencyError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |_req: http::Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err(DependencyError::new(ErrorClass::Unavailable, "503")) }
    })
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_retries_is_labelled_by_its_row_then_the_open_breaker_by_its_own() {
    let (_tx, guard) = guard();
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(&guard))
        .layer(BreakerLayer::new(&guard))
        .layer(RetryLayer::new(&guard))
        .service(failing(calls.clone()));
    let spec = CallSpec::new("reranker", "rerank").effect(Effect::Read);

    let err: Degraded = stack
        .clone()
        .oneshot(request(spec.clone()))
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "retried once first");
    assert_eq!(err.status, DegradedStatus::Degraded);
    assert_eq!(
        err.user_message.as_deref(),
        Some("Results are ranked more coarsely than usual.")
    );
    let fallback = err.fallback.expect("an allowed fallback");
    assert_eq!(fallback.action.name(), "skip_step");
    assert_eq!(fallback.confidence_penalty_percent, 10);
    assert_eq!(err.class, ErrorClass::Unavailable);
    assert!(err.error.downcast_ref::<DependencyError>().is_some());

    // A second failed call opens the breaker; the next is refused without
    // a call and labelled by the breaker-open row.
    let _ = stack.clone().oneshot(request(spec.clone())).await;
    let before = calls.load(Ordering::SeqCst);
    let err = stack.clone().oneshot(request(spec)).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), before, "not called");
    assert!(err.error.is::<agent::breaker::BreakerOpen>());
    assert_eq!(err.status, DegradedStatus::Partial);
    assert_eq!(err.user_message.as_deref(), Some("Ranking is off for now."));

    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    let reranker = &batch.dependencies["reranker"];
    assert_eq!(reranker.calls, 3);
    assert_eq!(reranker.fallbacks["reranker/any"], 2);
    assert_eq!(reranker.fallbacks["reranker/breaker_open"], 1);
    assert_eq!(reranker.degraded[&DegradedStatus::Partial], 1);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_the_policy_forbids_is_never_offered_and_an_invariant_stops_the_action() {
    let (_tx, guard) = guard();
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(&guard))
        .service(failing(calls));

    let err = stack
        .clone()
        .oneshot(request(CallSpec::new("model", "generate")))
        .await
        .unwrap_err();
    assert_eq!(err.status, DegradedStatus::Refused);
    assert!(err.fallback.is_none(), "a not-allowed row is never taken");
    assert_eq!(err.user_message.as_deref(), Some("A cached answer."));

    let err = stack
        .oneshot(request(CallSpec::new("payments", "charge")))
        .await
        .unwrap_err();
    assert_eq!(err.fail_closed.as_deref(), Some("no-unapproved-payment"));
    assert!(err.fallback.is_none());
    assert_eq!(err.status, DegradedStatus::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_success_passes_through_and_a_failed_response_or_a_refusal_is_labelled() {
    let (_tx, guard) = guard();
    let ok = ServiceBuilder::new()
        .layer(FallbackLayer::new(&guard))
        .service(service_fn(|_req: http::Request<()>| async {
            Ok::<_, DependencyError>("ranked")
        }));
    assert_eq!(
        ok.oneshot(request(CallSpec::new("reranker", "rerank")))
            .await
            .unwrap(),
        "ranked"
    );

    // With the HTTP classifier, a 503 answer is a failure to label.
    let unavailable = ServiceBuilder::new()
        .layer(FallbackLayer::new(&guard).classifier(HttpStatus))
        .service(service_fn(|_req: http::Request<()>| async {
            Ok::<_, DependencyError>(http::Response::builder().status(503).body(()).unwrap())
        }));
    let err = unavailable
        .oneshot(request(CallSpec::new("reranker", "rerank")))
        .await
        .unwrap_err();
    assert_eq!(
        err.error.downcast_ref::<FailedResponse>(),
        Some(&FailedResponse {
            class: ErrorClass::Unavailable
        })
    );
    assert_eq!(err.status, DegradedStatus::Degraded);

    // A budget refusal from a layer below is labelled, and the call never
    // reached the dependency.
    let calls = Arc::new(AtomicU32::new(0));
    let limited = ServiceBuilder::new()
        .layer(FallbackLayer::new(&guard))
        .layer(RateLimitLayer::new(&guard))
        .service(failing(calls.clone()));
    let spec = CallSpec::new("reranker", "rerank")
        .tenant("acme")
        .estimate(agent::Usage {
            tokens: 0,
            cost_usd_micros: 500,
        });
    let err = limited.oneshot(request(spec)).await.unwrap_err();
    assert!(err.error.is::<agent::rate_limit::BudgetExhausted>());
    assert_eq!(err.class, ErrorClass::BudgetExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Only the `any` row covers a budget refusal.
    assert_eq!(err.status, DegradedStatus::Degraded);
}
