//! Each pattern of the policy as a standalone tower layer, and the whole
//! stack composed, on a paused clock: every duration below is exact.

use agent::breaker::{BreakerLayer, BreakerOpen};
use agent::bulkhead::{BulkheadLayer, BulkheadRejected, BulkheadRejection};
use agent::deadline::DeadlineLayer;
use agent::rate_limit::BudgetRefusal;
use agent::rate_limit::{BudgetExhausted, RateLimitLayer, RateLimited};
use agent::retry::RetryLayer;
use agent::{
    Call, CallRecord, CallSpec, CompiledPolicy, DependencyError, Guard, SplitMix64, Usage,
    policy_channel,
};
use shared::policy::{Effect, ErrorClass, Policy};
use shared::protocol::{BreakerState, DependencyTelemetry, PolicySource};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};

const POLICY: &str = r#"
service:
  name: layered
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: other }
    ticket_tool: { kind: tool_api }
    model: { kind: model_provider }
retry:
  search:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 100
    jitter: none
    retry_on: [unavailable]
    operations: { get: read }
  ticket_tool:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 100
    jitter: none
    retry_on: [unavailable]
    operations: { create: write }
retry_budget: { ratio_percent: 10, min_per_second: 0 }
breakers:
  model:
    mode: { kind: consecutive, failures: 2 }
    cooldown_ms: 1000
    half_open_probes: 2
    forced: none
  search:
    mode: { kind: consecutive, failures: 5 }
    cooldown_ms: 1000
    half_open_probes: 1
bulkheads:
  generation:
    partition: tenant
    dependency: model
    max_concurrent: 1
    max_queued: 1
    queue_timeout_ms: 500
    overrides: { big: { max_concurrent: 2 } }
limits:
  cost_per_tenant_per_day_usd_micros: 1000
  dependencies:
    ticket_tool:
      requests: { per_second: 2, burst: 2 }
"#;

fn compiled(yaml: &str, version: u64) -> CompiledPolicy {
    let policy = Policy::from_yaml(yaml).expect("the test policy parses");
    CompiledPolicy::compile(policy, Some(version), PolicySource::Server)
}

fn guard_with(yaml: &str) -> (watch::Sender<Arc<CompiledPolicy>>, Guard) {
    let (tx, rx) = policy_channel(compiled(yaml, 1));
    let guard = Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(7)))
        .build();
    (tx, guard)
}

/// A policy whose retry budget never runs dry, for tests about which
/// failures are retried rather than how many.
fn generous() -> String {
    POLICY.replace("min_per_second: 0", "min_per_second: 100")
}

fn request(spec: CallSpec) -> http::Request<()> {
    let mut req = http::Request::new(());
    req.extensions_mut().insert(spec);
    req
}

/// A dependency that counts its calls and answers the `n`th (from 1) with
/// `answer(n)`.
fn dependency(
    calls: Arc<AtomicU32>,
    answer: fn(u32) -> Result<&'static str, DependencyError>,
) -> impl Service<
    http::Request<()>,
    Response = &'static str,
    Error = DependencyError,
    Future = impl Future<Output = Result<&'static str, DependencyError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |_req: http::Request<()>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { answer(n) }
    })
}

fn unavailable(_: u32) -> Result<&'static str, DependencyError> {
    Err(DependencyError::new(ErrorClass::Unavailable, "503"))
}

fn ok(_: u32) -> Result<&'static str, DependencyError> {
    Ok("ok")
}

fn telemetry(guard: &Guard, dependency: &str) -> DependencyTelemetry {
    guard.seal_telemetry();
    guard.recorder().next_batch().unwrap().dependencies[dependency].clone()
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_the_retry_budget() {
    let (_tx, guard) = guard_with(POLICY);
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(&guard))
        .service(dependency(calls.clone(), unavailable));
    for _ in 0..20 {
        let out = svc
            .clone()
            .oneshot(request(CallSpec::new("search", "get")))
            .await;
        assert_eq!(out.unwrap_err().class, ErrorClass::Unavailable);
    }
    // 10 % of 20 first attempts, no floor: 2 retries where 40 were wanted.
    assert_eq!(calls.load(Ordering::SeqCst), 22);
    let t = telemetry(&guard, "search");
    assert_eq!(t.calls, 20);
    assert_eq!(t.retries, 2);
    // Every call ends on a refused retry: the two that got one were then
    // refused a second.
    assert_eq!(t.retry_budget_exhausted, 20);
    assert_eq!(t.failures[&ErrorClass::Unavailable], 20);
}

#[tokio::test(start_paused = true)]
async fn retry_skips_non_retryable_classes_and_side_effects_without_a_key() {
    let (_tx, guard) = guard_with(&generous());
    let calls = Arc::new(AtomicU32::new(0));
    let retry = RetryLayer::new(&guard);
    let validation = ServiceBuilder::new()
        .layer(retry.clone())
        .service(dependency(calls.clone(), |_| {
            Err(DependencyError::new(ErrorClass::Validation, "400"))
        }));
    validation
        .oneshot(request(CallSpec::new("search", "get")))
        .await
        .unwrap_err();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1, "validation is final");

    let write = ServiceBuilder::new()
        .layer(retry.clone())
        .service(dependency(calls.clone(), unavailable));
    write
        .clone()
        .oneshot(request(CallSpec::new("ticket_tool", "create")))
        .await
        .unwrap_err();
    assert_eq!(
        calls.swap(0, Ordering::SeqCst),
        1,
        "an unkeyed write is sent once"
    );

    let began = Instant::now();
    write
        .oneshot(request(
            CallSpec::new("ticket_tool", "create").idempotency_key("run-1/create"),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        calls.swap(0, Ordering::SeqCst),
        3,
        "a keyed write is retried"
    );
    assert_eq!(
        began.elapsed(),
        Duration::from_millis(200),
        "two 100 ms backoffs"
    );

    // A write declared a read by the caller needs no key either.
    let read = ServiceBuilder::new()
        .layer(retry)
        .service(dependency(calls.clone(), |n| {
            if n < 2 { unavailable(n) } else { ok(n) }
        }));
    let out = read
        .oneshot(request(
            CallSpec::new("ticket_tool", "create").effect(Effect::Read),
        ))
        .await;
    assert_eq!(out.unwrap(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_refuses_without_calling_half_opens_and_closes_after_the_probes() {
    let (_tx, guard) = guard_with(POLICY);
    let calls = Arc::new(AtomicU32::new(0));
    let failing = ServiceBuilder::new()
        .layer(BreakerLayer::new(&guard))
        .service(dependency(calls.clone(), unavailable));
    for _ in 0..2 {
        let err = failing
            .clone()
            .oneshot(request(CallSpec::new("model", "generate")))
            .await
            .unwrap_err();
        assert!(err.downcast_ref::<DependencyError>().is_some());
    }
    assert_eq!(guard.breaker_state("model"), Some(BreakerState::Open));
    let err = failing
        .clone()
        .oneshot(request(CallSpec::new("model", "generate")))
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an open breaker sends nothing"
    );
    // One breaker per dependency, shared with the plain API.
    let refused = guard
        .call(&Call::new("model", "generate"), |_| async {
            Ok::<_, DependencyError>(())
        })
        .await;
    assert_eq!(refused.attempts, 0);

    tokio::time::advance(Duration::from_millis(1000)).await;
    let healthy = ServiceBuilder::new()
        .layer(BreakerLayer::new(&guard))
        .service(dependency(calls.clone(), ok));
    for (probe, after) in [BreakerState::HalfOpen, BreakerState::Closed]
        .into_iter()
        .enumerate()
    {
        let out = healthy
            .clone()
            .oneshot(request(CallSpec::new("model", "generate")))
            .await;
        assert_eq!(out.unwrap(), "ok", "probe {probe}");
        assert_eq!(guard.breaker_state("model"), Some(after));
    }
    let t = telemetry(&guard, "model");
    let path: Vec<_> = t
        .breaker_transitions
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        path,
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    assert_eq!(
        t.breaker_rejections, 2,
        "the layer's refusal and the guard's"
    );
    assert_eq!(t.calls, 6);
    assert_eq!(t.successes, 2);
}

#[tokio::test(start_paused = true)]
async fn a_forced_open_breaker_refuses_everything_even_a_healthy_dependency() {
    let (tx, guard) = guard_with(POLICY);
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(&guard))
        .service(dependency(calls.clone(), ok));
    assert_eq!(
        svc.clone()
            .oneshot(request(CallSpec::new("model", "generate")))
            .await
            .unwrap(),
        "ok"
    );
    tx.send_replace(Arc::new(compiled(
        &POLICY.replace("forced: none", "forced: open"),
        2,
    )));
    for _ in 0..5 {
        let err = svc
            .clone()
            .oneshot(request(CallSpec::new("model", "generate")))
            .await
            .unwrap_err();
        assert!(err.is::<BreakerOpen>());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(guard.breaker_state("model"), Some(BreakerState::ForcedOpen));
    assert_eq!(telemetry(&guard, "model").breaker_rejections, 5);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_admits_max_concurrent_queues_max_queued_refuses_beyond_and_times_out_the_queue() {
    let (_tx, guard) = guard_with(POLICY);
    let started = Arc::new(AtomicU32::new(0));
    let s = started.clone();
    let svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(&guard))
        .service(service_fn(move |_req: http::Request<()>| {
            s.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                Ok::<_, DependencyError>(1u32)
            }
        }));
    let spawn = |tenant: &str| {
        let svc = svc.clone();
        let req = request(CallSpec::new("model", "generate").tenant(tenant));
        tokio::spawn(async move {
            let began = Instant::now();
            (svc.oneshot(req).await, began.elapsed())
        })
    };
    let settle = || async {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    };
    let first = spawn("acme");
    settle().await;
    let queued = spawn("acme");
    settle().await;
    // One in flight, one queued: the third finds no room at all.
    let beyond = svc
        .clone()
        .oneshot(request(CallSpec::new("model", "generate").tenant("acme")))
        .await
        .unwrap_err();
    assert_eq!(
        beyond
            .downcast_ref::<BulkheadRejected>()
            .unwrap()
            .rejection(),
        BulkheadRejection::Full
    );
    // The override gives tenant "big" two slots at once.
    let big = [spawn("big"), spawn("big")];
    settle().await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "acme's first and both of big's"
    );

    let (out, waited) = queued.await.unwrap();
    assert_eq!(
        out.unwrap_err()
            .downcast_ref::<BulkheadRejected>()
            .unwrap()
            .rejection(),
        BulkheadRejection::QueueTimeout
    );
    assert_eq!(waited, Duration::from_millis(500));
    let (out, took) = first.await.unwrap();
    assert_eq!(out.unwrap(), 1);
    assert_eq!(took, Duration::from_millis(1000));
    for b in big {
        assert!(b.await.unwrap().0.is_ok());
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "refused calls are never made"
    );
    let t = telemetry(&guard, "model");
    assert_eq!(t.bulkhead_rejections, 2);
    assert_eq!(t.failures[&ErrorClass::Overloaded], 2);
    assert_eq!(t.queued, 0);
    assert_eq!(t.in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_refuses_beyond_the_burst_and_refills_with_time() {
    let (_tx, guard) = guard_with(POLICY);
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(&guard))
        .service(dependency(calls.clone(), ok));
    let send = |svc: &_| {
        let svc: tower::util::BoxCloneService<_, _, BoxError> = Clone::clone(svc);
        svc.oneshot(request(CallSpec::new("ticket_tool", "get")))
    };
    // Boxed only so that the closure above can name the service's type.
    let svc = tower::util::BoxCloneService::new(svc);
    assert!(send(&svc).await.is_ok());
    assert!(send(&svc).await.is_ok());
    assert!(send(&svc).await.unwrap_err().is::<RateLimited>());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a refused call is never sent"
    );
    // 2 per second: one request's worth every 500 ms.
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(send(&svc).await.is_ok());
    assert!(send(&svc).await.unwrap_err().is::<RateLimited>());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(telemetry(&guard, "ticket_tool").rate_limited, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_cost_cannot_be_reserved_is_refused_without_calling_and_usage_is_settled() {
    let (_tx, guard) = guard_with(POLICY);
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(&guard))
        .service(service_fn(move |req: http::Request<()>| {
            c.fetch_add(1, Ordering::SeqCst);
            // The provider reports what the call really cost.
            req.extensions()
                .get::<CallRecord>()
                .unwrap()
                .record_usage(Usage {
                    tokens: 40,
                    cost_usd_micros: 700,
                });
            async { Ok::<_, DependencyError>("answer") }
        }));
    let call = |estimate: u64| {
        request(
            CallSpec::new("model", "generate")
                .tenant("acme")
                .estimate(Usage {
                    tokens: 50,
                    cost_usd_micros: estimate,
                }),
        )
    };
    assert!(svc.clone().oneshot(call(900)).await.is_ok());
    // 700 spent of 1000: an estimate of 400 cannot be reserved…
    let err = svc.clone().oneshot(call(400)).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<BudgetExhausted>().unwrap().refusal(),
        BudgetRefusal::Cost
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the refused call is never made"
    );
    // …but one of 300 can: the settled actual, not the estimate, counts.
    assert!(svc.oneshot(call(300)).await.is_ok());
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    assert_eq!(batch.tenant_cost_usd_micros["acme"], 1400);
    let t = &batch.dependencies["model"];
    assert_eq!(t.rate_limited, 1);
    assert_eq!(t.tokens, 80);
    assert_eq!(t.failures[&ErrorClass::BudgetExceeded], 1);
}

/// The counters both APIs must agree on.
fn counters(t: &DependencyTelemetry) -> impl PartialEq + std::fmt::Debug {
    (
        t.calls,
        t.successes,
        t.failures.clone(),
        t.retries,
        t.retry_budget_exhausted,
        t.breaker_rejections,
        t.bulkhead_rejections,
        t.rate_limited,
        t.breaker_transitions.len(),
        t.latency_buckets.iter().sum::<u64>(),
        t.in_flight,
        t.queued,
    )
}

#[tokio::test(start_paused = true)]
async fn the_layered_stack_enforces_the_policy_and_counts_what_the_guard_counts() {
    let policy = generous();
    let (_tx, layered) = guard_with(&policy);
    let calls = Arc::new(AtomicU32::new(0));
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(layered.policy_receiver()))
        .layer(RateLimitLayer::new(&layered))
        .layer(BulkheadLayer::new(&layered))
        .layer(BreakerLayer::new(&layered))
        .layer(RetryLayer::new(&layered))
        .service(dependency(calls.clone(), |n| {
            if n % 2 == 1 { unavailable(n) } else { ok(n) }
        }));
    // Retried once after 100 ms, then answered.
    let began = Instant::now();
    let out = stack
        .clone()
        .oneshot(request(CallSpec::new("search", "get").tenant("acme")))
        .await;
    assert_eq!(out.unwrap(), "ok");
    assert_eq!(began.elapsed(), Duration::from_millis(100));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A non-retryable failure passes through every layer, still classified.
    let failing = ServiceBuilder::new()
        .layer(DeadlineLayer::new(layered.policy_receiver()))
        .layer(RateLimitLayer::new(&layered))
        .layer(BulkheadLayer::new(&layered))
        .layer(BreakerLayer::new(&layered))
        .layer(RetryLayer::new(&layered))
        .service(service_fn(|_req: http::Request<()>| async {
            Err::<&str, _>(DependencyError::new(ErrorClass::Validation, "400"))
        }));
    let err = failing
        .oneshot(request(CallSpec::new("search", "get").tenant("acme")))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<DependencyError>().unwrap().class,
        ErrorClass::Validation
    );

    // The same two calls through the plain API, on a fresh guard.
    let (_tx2, plain) = guard_with(&policy);
    let n = Arc::new(AtomicU32::new(0));
    let out = plain
        .call(&Call::new("search", "get").tenant("acme"), |_| {
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move { if k % 2 == 1 { unavailable(k) } else { ok(k) } }
        })
        .await;
    assert!(out.is_ok());
    let out = plain
        .call(&Call::new("search", "get").tenant("acme"), |_| async {
            Err::<&str, _>(DependencyError::new(ErrorClass::Validation, "400"))
        })
        .await;
    assert!(out.result.is_err());

    let (a, b) = (telemetry(&layered, "search"), telemetry(&plain, "search"));
    assert_eq!(counters(&a), counters(&b));
    assert_eq!((a.calls, a.successes, a.retries), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_call_keeps_the_policy_it_started_with_across_a_swap() {
    let (tx, guard) = guard_with(&generous());
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(&guard))
        .service(dependency(calls.clone(), unavailable));
    let in_flight = tokio::spawn(svc.clone().oneshot(request(CallSpec::new("search", "get"))));
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "first attempt made, backing off"
    );
    tx.send_replace(Arc::new(compiled(
        &generous().replace("max_attempts: 3", "max_attempts: 1"),
        2,
    )));
    in_flight.await.unwrap().unwrap_err();
    assert_eq!(
        calls.swap(0, Ordering::SeqCst),
        3,
        "the old version's 3 attempts"
    );
    svc.oneshot(request(CallSpec::new("search", "get")))
        .await
        .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the next call takes the new version"
    );
}
