//! A guarded call reads the clock once at its start and once per attempt's
//! end, and every pattern decides on those readings (the breaker's rate
//! window, the request and token buckets, the spend window, the retry
//! budget), in nanoseconds from one epoch the guard gives them all. These
//! tests check, on a paused clock, that time still moves each of them as
//! it should when it reaches them that way.

use agent::breaker::BreakerLayer;
use agent::{
    Call, CallClock, CallSpec, CompiledPolicy, DependencyError, Guard, GuardError, SplitMix64,
    Usage, policy_channel,
};
use shared::policy::{ErrorClass, Policy};
use shared::protocol::{BreakerState, PolicySource};
use std::sync::Arc;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const POLICY: &str = r#"
service:
  name: clock
  environment: test
  owner: reliability
  risk_tier: high
  dependencies:
    model_provider: { kind: model_provider }
    search: { kind: vector_db }
retry:
  search:
    max_attempts: 2
    base_delay_ms: 10
    max_delay_ms: 10
    jitter: none
    retry_on: [unavailable]
retry_budget: { ratio_percent: 100, min_per_second: 0 }
breakers:
  model_provider:
    mode: { kind: failure_rate, threshold_percent: 50, window_ms: 10000, minimum_calls: 4 }
    cooldown_ms: 1000
    half_open_probes: 1
limits:
  tokens_per_minute: 600
  dependencies:
    model_provider:
      requests: { per_second: 2, burst: 2 }
"#;

fn guard() -> Guard {
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let (tx, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    // The channel stays open for the test's life; nothing is published.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(3)))
        .build()
}

async fn model(guard: &Guard, fail: bool) -> Result<(), GuardError<DependencyError>> {
    guard
        .call(&Call::new("model_provider", "generate"), |_| async move {
            if fail {
                Err(DependencyError::new(ErrorClass::Unavailable, "down"))
            } else {
                Ok(())
            }
        })
        .await
        .result
}

#[tokio::test(start_paused = true)]
async fn the_request_rate_refills_as_the_clock_moves() {
    let guard = guard();
    assert!(model(&guard, false).await.is_ok());
    assert!(model(&guard, false).await.is_ok());
    assert_eq!(
        model(&guard, false).await,
        Err(GuardError::RateLimited),
        "the burst of two is spent"
    );
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_eq!(model(&guard, false).await, Err(GuardError::RateLimited));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(model(&guard, false).await.is_ok(), "half a second at 2/s");
}

#[tokio::test(start_paused = true)]
async fn failures_open_the_breaker_only_within_its_window_and_it_recovers_after_the_cooldown() {
    let guard = guard();
    // Two failures, then the window (10 s) slides past them.
    for _ in 0..2 {
        let _ = model(&guard, true).await;
        tokio::time::advance(Duration::from_millis(500)).await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    // Two successes and a failure now: 3 calls in the window. Had the old
    // two stayed in it, this would be 3 failures of 5 calls, and open.
    let _ = model(&guard, false).await;
    let _ = model(&guard, false).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let _ = model(&guard, true).await;
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Closed),
        "3 calls in the window, below the minimum of 4"
    );
    let _ = model(&guard, true).await;
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Open),
        "2 failures of 4 calls within the window"
    );
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(model(&guard, false).await, Err(GuardError::BreakerOpen));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(model(&guard, false).await.is_ok(), "the probe after 1 s");
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn successes_through_the_guard_and_the_breaker_layer_fall_in_the_same_window() {
    // The layer makes the breaker 20 s after the guard started, longer
    // than the window: a breaker keeps time from the guard's epoch
    // whichever API made it, so both count into the same buckets.
    let guard = guard();
    tokio::time::advance(Duration::from_secs(20)).await;
    let layered = ServiceBuilder::new()
        .layer(BreakerLayer::new(&guard))
        .service(service_fn(|req: http::Request<bool>| async move {
            if *req.body() {
                Err(DependencyError::new(ErrorClass::Unavailable, "down"))
            } else {
                Ok(())
            }
        }));
    let through_layer = |fail: bool| {
        let mut req = http::Request::new(fail);
        req.extensions_mut()
            .insert(CallSpec::new("model_provider", "generate"));
        layered.clone().oneshot(req)
    };
    // Two successes through the layer, two failures through the guard:
    // 2 of 4 opens it, which only holds if the layer's calls are counted
    // in the window the guard reads.
    assert!(through_layer(false).await.is_ok());
    assert!(through_layer(false).await.is_ok());
    tokio::time::advance(Duration::from_secs(1)).await;
    let _ = model(&guard, true).await;
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Closed)
    );
    let _ = model(&guard, true).await;
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Open)
    );
}

#[tokio::test(start_paused = true)]
async fn the_token_budget_refills_and_the_retry_budget_slides_with_the_clock() {
    let guard = guard();
    // 600 tokens a minute: 600 at once, then 10 a second.
    let guard = &guard;
    let spend = |tokens: u64| async move {
        let call = Call::new("search", "query").estimate(Usage {
            tokens,
            cost_usd_micros: 0,
        });
        guard
            .call(&call, |_| async { Ok::<_, DependencyError>(()) })
            .await
    };
    assert!(spend(600).await.is_ok());
    assert!(matches!(
        spend(10).await.result,
        Err(GuardError::BudgetExhausted(_))
    ));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(spend(10).await.is_ok(), "a second refills 10 tokens");

    // Each first attempt earns a whole retry (ratio 100 %, no floor):
    // the three calls above deposited three, over the 10 s window.
    let failing = || async {
        guard
            .call(&Call::new("search", "query"), |_| async {
                Err::<(), _>(DependencyError::new(ErrorClass::Unavailable, "down"))
            })
            .await
    };
    tokio::time::advance(Duration::from_secs(11)).await;
    // The old deposits have left the window: this call's own deposit pays
    // for its retry, and that is all.
    assert_eq!(failing().await.attempts, 2);
    assert_eq!(failing().await.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_guard_built_on_a_paused_clock_reads_tokios_clock() {
    assert_eq!(guard().call_clock(), Some(CallClock::Runtime));
}

/// On a running clock the guard reads the cycle counter, and the latency
/// it measures from it is the call's: a call that takes 20 ms of tokio's
/// time is counted between 20 ms and the time the whole call took.
#[tokio::test]
async fn a_guard_on_a_running_clock_reads_the_cycle_counter_and_measures_real_latency() {
    let guard = guard();
    assert_eq!(guard.call_clock(), Some(CallClock::CycleCounter));
    let began = tokio::time::Instant::now();
    let out = guard
        .call(&Call::new("search", "query"), |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, DependencyError>(())
        })
        .await;
    let took = began.elapsed();
    assert!(out.is_ok());
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().expect("a batch");
    let latency = batch.dependencies["search"].latency_sum_ms;
    assert!(
        latency >= 20 && u128::from(latency) <= took.as_millis(),
        "latency {latency} ms, the call took {took:?}"
    );
}

/// Each call's usage is its own: an attempt's meter goes back to the
/// thread when the attempt ends, for the next call to reuse, but never
/// while an attempt still holds it, so a late report from an attempt that
/// outlived its call cannot land in a later call's usage.
#[tokio::test(start_paused = true)]
async fn usage_is_counted_per_call_even_when_an_attempt_outlives_its_call() {
    let guard = guard();
    let used = |tokens| Usage {
        tokens,
        cost_usd_micros: 0,
    };
    // The tokens counted since the last look.
    let tokens = |guard: &Guard| {
        guard.seal_telemetry();
        let batch = guard.recorder().next_batch().expect("a batch");
        guard.recorder().acknowledge(batch.sequence);
        batch.dependencies["search"].tokens
    };
    // Reports its usage and lets go of the attempt: the meter comes back.
    let reporting = |n| {
        move |a: agent::Attempt| async move {
            a.record_usage(used(n));
            Ok::<_, DependencyError>(())
        }
    };
    // A call that reports `n` tokens; whether it succeeded.
    let shared = &guard;
    let call_reporting = |n| async move {
        shared
            .call(&Call::new("search", "query"), reporting(n))
            .await
            .is_ok()
    };
    assert!(call_reporting(7).await);
    assert!(call_reporting(11).await);
    assert_eq!(tokens(&guard), 18);

    // This one keeps its attempt past its end and reports late.
    let kept = std::sync::Mutex::new(None);
    let out = guard
        .call(&Call::new("search", "query"), |a| {
            a.record_usage(used(3));
            *kept.lock().unwrap() = Some(a);
            async { Ok::<_, DependencyError>(()) }
        })
        .await;
    assert!(out.is_ok());
    // It reports while the next call runs, on the same thread.
    let out = guard
        .call(&Call::new("search", "query"), |a| {
            let late = kept.lock().unwrap().take().expect("the kept attempt");
            late.record_usage(used(1_000));
            drop(late);
            a.record_usage(used(5));
            async { Ok::<_, DependencyError>(()) }
        })
        .await;
    assert!(out.is_ok());
    assert!(call_reporting(2).await);
    assert_eq!(
        tokens(&guard),
        3 + 5 + 2,
        "the late report lands in no call"
    );
}
