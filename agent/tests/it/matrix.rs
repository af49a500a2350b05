//! The domain reference's reliability test matrix, one test per row, each
//! on a paused clock so that every duration below is exact.

use agent::cache::{CacheEntry, Served};
use agent::dlq::dead_letter;
use agent::idempotency::{
    DedupStore, Fingerprint, IdempotencyKey, KeyBuilder, MemoryDedupStore, Once, OnceError,
    SqliteDedupStore, run_once,
};
use agent::repair::Repaired;
use agent::steps::{StepBudget, StopAction};
use agent::{
    Attempt, Call, CompiledPolicy, DependencyError, Guard, GuardError, Request, SplitMix64, Usage,
    policy_channel,
};
use shared::policy::{
    AdmissionMode, DegradedStatus, Effect, ErrorClass, FallbackAction, Policy, PriorityClass,
    RiskTier, Sensitivity,
};
use shared::protocol::{BreakerState, PolicySource};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const POLICY: &str = r#"
service:
  name: case-review
  environment: test
  owner: reliability
  risk_tier: high
  dependencies:
    model_provider: { kind: model_provider }
    vector_db: { kind: vector_db, required: false }
    lexical_search: { kind: lexical_search }
    reranker: { kind: reranker, required: false }
    ticket_tool: { kind: tool_api }
    approval_service: { kind: approval_service }
    flaky: { kind: other }
    payments_tool: { kind: tool_api }
    case_record: { kind: case_record }
timeouts:
  total_ms: 8600
  stages:
    - { name: retrieval, budget_ms: 700, dependencies: [vector_db, lexical_search] }
    - { name: generation, budget_ms: 5000, dependencies: [model_provider] }
  dependencies:
    model_provider: 4000
    payments_tool: 1000
retry:
  model_provider:
    max_attempts: 2
    base_delay_ms: 200
    max_delay_ms: 1000
    jitter: full
    retry_on: [connection, rate_limited, unavailable]
  vector_db:
    max_attempts: 2
    base_delay_ms: 20
    max_delay_ms: 100
    jitter: decorrelated
    retry_on: [connection, unavailable]
  ticket_tool:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 1000
    jitter: none
    retry_on: [rate_limited, unavailable]
    operations: { create_ticket: write, get_ticket: read }
  flaky:
    max_attempts: 3
    base_delay_ms: 10
    max_delay_ms: 100
    jitter: full
    retry_on: [unavailable]
    operations: { get: read }
  payments_tool:
    max_attempts: 3
    base_delay_ms: 100
    max_delay_ms: 1000
    jitter: none
    retry_on: [timeout, unavailable]
    operations: { charge: write }
retry_budget:
  ratio_percent: 10
  min_per_second: 1
breakers:
  model_provider:
    mode: { kind: consecutive, failures: 3 }
    cooldown_ms: 1000
    half_open_probes: 2
fallbacks:
  - component: model_provider
    failure: timeout
    fallback: { kind: alternate_model, model: small-2026-02 }
    degraded_status: degraded
    user_message: This answer was produced by a faster, smaller model; check its citations.
    allowed: true
    confidence_penalty_percent: 20
  - component: vector_db
    failure: any
    fallback: { kind: alternate_dependency, dependency: lexical_search }
    degraded_status: degraded
    user_message: Search is running in a reduced mode; some relevant passages may be missed.
    allowed: true
    confidence_penalty_percent: 15
  - component: reranker
    failure: any
    fallback: { kind: skip_step }
    degraded_status: degraded
    user_message: Results are ranked more coarsely than usual.
    allowed: true
    confidence_penalty_percent: 10
  - component: lexical_search
    failure: any
    fallback: { kind: model_memory }
    degraded_status: degraded
    user_message: Answered from memory.
    allowed: false
  # Unsafe, and validation would refuse it; the agent must refuse it anyway.
  - component: approval_service
    failure: any
    fallback: { kind: proceed_without_approval }
    degraded_status: degraded
    allowed: true
  - component: approval_service
    failure: any
    fallback: { kind: pause }
    degraded_status: paused
    user_message: Waiting for the approval service; nothing has been done.
    allowed: true
models:
  primary: { model: large-2026-01, dependency: model_provider, validated: true }
  fallbacks:
    - { model: small-2026-02, dependency: model_provider, validated: true }
limits:
  cost_per_tenant_per_day_usd_micros: 1000
  dependencies:
    ticket_tool:
      requests: { per_second: 2, burst: 2 }
admission:
  default_class: interactive
  triggers:
    - id: queue_saturated
      signal: { kind: queue_depth, above: 100 }
      modes: { safety_critical: rejected, background: queued, batch_eval: rejected, optional_enrichment: rejected }
      user_message: The system is under heavy load.
    - id: cost_near_limit
      signal: { kind: cost_near_limit, percent: 90 }
      modes: { interactive: degraded }
      user_message: Close to today's budget; answers use a smaller model.
output_repair:
  max_attempts: 1
  on_failure: fail_safe
idempotency:
  operations:
    create_ticket:
      dependency: ticket_tool
      key: [workflow_run_id, node, operation]
      on_payload_mismatch: reject
      retention_ms: 86400000
    charge:
      dependency: payments_tool
      key: [workflow_run_id, node, operation]
      on_payload_mismatch: reject
      retention_ms: 86400000
agent_nodes:
  plan_next_step:
    required_for_completion: true
    human_handoff_on_failure: true
    runbook: https://runbooks.example/agent-loops
  enrich_summary:
    required_for_completion: false
cache:
  ttl_ms_by_sensitivity: { public: 60000, confidential: 5000 }
  allow_stale: true
  stale_caveat: Based on case data saved a few minutes ago; the case system is unavailable.
  stale_for_high_risk: false
invariants:
  must_fail_closed:
    - id: approval_service_unavailable
      component: approval_service
      description: Without a valid approval nothing is acted on.
"#;

fn compiled(version: u64) -> CompiledPolicy {
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    CompiledPolicy::compile(policy, Some(version), PolicySource::Server)
}

fn guard() -> Guard {
    let (tx, rx) = policy_channel(compiled(1));
    // The sender is leaked on purpose: the channel must stay open for the
    // test's life, and these tests never publish.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(42)))
        .instance_id("test-1")
        .build()
}

fn err(class: ErrorClass) -> DependencyError {
    DependencyError::new(class, "injected")
}

#[tokio::test(start_paused = true)]
async fn model_timeout_falls_back_to_the_smaller_model_with_a_caveat_after_exactly_the_dependency_timeout()
 {
    let guard = guard();
    let start = Instant::now();
    let out = guard
        .call(&Call::new("model_provider", "generate"), |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, DependencyError>("never")
        })
        .await;
    assert_eq!(out.result, Err(GuardError::Timeout));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(4000),
        "bounded by its own timeout, not retried (timeouts are not retryable here)"
    );
    assert_eq!(out.attempts, 1);
    assert_eq!(out.status, DegradedStatus::Degraded);
    let fallback = out.fallback().expect("a fallback");
    assert_eq!(
        fallback.action,
        FallbackAction::AlternateModel {
            model: "small-2026-02".into()
        }
    );
    assert_eq!(fallback.confidence_penalty_percent, 20);
    assert!(out.user_message().unwrap().contains("smaller model"));
}

#[tokio::test(start_paused = true)]
async fn invalid_structured_output_is_repaired_once_then_fails_safe_and_each_repair_is_counted() {
    let guard = guard();
    let repairs = AtomicU32::new(0);
    let out = guard
        .repair(
            "model_provider",
            String::from("{not json"),
            |s: &String| {
                serde_json::from_str::<serde_json::Value>(s)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
            |bad, _why| {
                repairs.fetch_add(1, Ordering::SeqCst);
                async move { Some(format!("{bad}, still not json")) }
            },
        )
        .await;
    assert!(
        matches!(out, Repaired::FailSafe { repairs: 1, .. }),
        "{out:?}"
    );
    assert_eq!(
        repairs.load(Ordering::SeqCst),
        1,
        "never more than the policy's one repair"
    );
    // A repair that works is taken.
    let fixed = guard
        .repair(
            "model_provider",
            String::from("{not json"),
            |s: &String| {
                serde_json::from_str::<serde_json::Value>(s)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
            |_, _| async { Some(String::from("{}")) },
        )
        .await;
    assert_eq!(
        fixed,
        Repaired::Valid {
            value: String::from("{}"),
            repairs: 1
        }
    );
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    let m = &batch.dependencies["model_provider"];
    assert_eq!(m.repairs, 2);
    assert_eq!(m.degraded[&DegradedStatus::Refused], 1);
}

#[tokio::test(start_paused = true)]
async fn vector_search_down_falls_back_to_lexical_search_labelled_degraded() {
    let guard = guard();
    let calls = AtomicU32::new(0);
    let out = guard
        .call(&Call::new("vector_db", "search"), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<Vec<String>, _>(err(ErrorClass::Unavailable)) }
        })
        .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "retried once, as the policy says"
    );
    assert_eq!(out.status, DegradedStatus::Degraded);
    assert_eq!(
        out.fallback().unwrap().action,
        FallbackAction::AlternateDependency {
            dependency: "lexical_search".into()
        }
    );
    assert!(out.user_message().unwrap().contains("reduced mode"));
}

#[tokio::test(start_paused = true)]
async fn reranker_down_keeps_the_fused_ranking_and_labels_the_answer_degraded() {
    let guard = guard();
    let out = guard
        .call(&Call::new("reranker", "rerank"), |_| async {
            Err::<Vec<u32>, _>(err(ErrorClass::Connection))
        })
        .await;
    assert_eq!(out.status, DegradedStatus::Degraded);
    let f = out.fallback().unwrap();
    assert_eq!(f.action, FallbackAction::SkipStep {});
    assert_eq!(f.row, "reranker/any");
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    assert_eq!(batch.dependencies["reranker"].fallbacks["reranker/any"], 1);
    assert_eq!(
        batch.dependencies["reranker"].degraded[&DegradedStatus::Degraded],
        1
    );
}

#[tokio::test(start_paused = true)]
async fn tool_rate_limit_is_retried_with_exponential_backoff_then_succeeds() {
    let guard = guard();
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let out = guard
        .call(&Call::new("ticket_tool", "get_ticket"), |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(err(ErrorClass::RateLimited))
                } else {
                    Ok("T-1")
                }
            }
        })
        .await;
    assert_eq!(out.result.unwrap(), "T-1");
    assert_eq!(out.status, DegradedStatus::Normal);
    assert_eq!(out.attempts, 3);
    // No jitter in this policy: 100 ms, then 200 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_call_over_the_local_tool_rate_limit_is_refused_and_never_sent() {
    let guard = guard();
    let sent = AtomicU32::new(0);
    let mut refused = 0;
    for _ in 0..5 {
        let out = guard
            .call(&Call::new("ticket_tool", "get_ticket"), |_| {
                sent.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, DependencyError>(()) }
            })
            .await;
        if out.result == Err(GuardError::RateLimited) {
            refused += 1;
        }
    }
    assert_eq!(sent.load(Ordering::SeqCst), 2, "the burst of two");
    assert_eq!(refused, 3);
    tokio::time::advance(Duration::from_millis(500)).await;
    let out = guard
        .call(&Call::new("ticket_tool", "get_ticket"), |_| async {
            Ok::<_, DependencyError>(())
        })
        .await;
    assert!(out.is_ok(), "half a second refills one request at 2/s");
}

#[tokio::test(start_paused = true)]
async fn duplicate_message_runs_the_side_effect_once_and_a_changed_payload_is_a_conflict() {
    let guard = guard();
    let policy = guard.policy();
    let rule = policy.idempotent_operation("create_ticket");
    let store = MemoryDedupStore::new();
    let key = KeyBuilder::new()
        .run("run-7")
        .node("open_ticket")
        .operation("create_ticket")
        .build_for(rule.unwrap())
        .unwrap();
    let effects = AtomicU32::new(0);
    let payload = Fingerprint::of(br#"{"title":"refund"}"#);
    let create = || async {
        effects.fetch_add(1, Ordering::SeqCst);
        Ok::<_, ()>(String::from("T-100"))
    };
    let first = run_once(&store, &key, &payload, rule, create)
        .await
        .unwrap();
    let again = run_once(&store, &key, &payload, rule, create)
        .await
        .unwrap();
    assert_eq!(first, Once::Ran("T-100".into()));
    assert_eq!(again, Once::Replayed("T-100".into()));
    assert_eq!(
        effects.load(Ordering::SeqCst),
        1,
        "the duplicate did not repeat the effect"
    );
    let other = Fingerprint::of(br#"{"title":"close case"}"#);
    let conflict = run_once(&store, &key, &other, rule, create)
        .await
        .unwrap_err();
    assert!(matches!(conflict, OnceError::Conflict { escalate: false }));
    assert_eq!(
        effects.load(Ordering::SeqCst),
        1,
        "a conflict is never a silent repeat"
    );

    // And the guard never retries a write without a key…
    let tries = AtomicU32::new(0);
    let out = guard
        .call(&Call::new("ticket_tool", "create_ticket"), |_| {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(err(ErrorClass::Unavailable)) }
        })
        .await;
    assert_eq!((out.attempts, tries.load(Ordering::SeqCst)), (1, 1));
    // …but does retry it with one, and hands the key to every attempt.
    tokio::time::advance(Duration::from_secs(1)).await;
    let seen = std::sync::Mutex::new(Vec::new());
    let out = guard
        .call(
            &Call::new("ticket_tool", "create_ticket").idempotency_key(key.as_str()),
            |a| {
                seen.lock().unwrap().push(a.idempotency_key.clone());
                async { Err::<(), _>(err(ErrorClass::Unavailable)) }
            },
        )
        .await;
    assert_eq!(out.attempts, 3);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|k| k.as_deref() == Some(key.as_str()))
    );
}

#[tokio::test(start_paused = true)]
async fn approval_service_down_pauses_and_never_acts_even_when_a_fallback_row_would_allow_it() {
    let guard = guard();
    let out = guard
        .call(
            &Call::new("approval_service", "check").effect(Effect::Read),
            |_| async { Err::<bool, _>(err(ErrorClass::Unavailable)) },
        )
        .await;
    assert_eq!(out.fail_closed(), Some("approval_service_unavailable"));
    assert!(
        out.fallback().is_none(),
        "proceed_without_approval is never taken"
    );
    assert_eq!(out.status, DegradedStatus::Paused);
    assert_eq!(
        out.user_message(),
        Some("Waiting for the approval service; nothing has been done.")
    );
}

#[tokio::test(start_paused = true)]
async fn a_forbidden_fallback_is_never_taken_and_the_call_fails_safe() {
    let guard = guard();
    let out = guard
        .call(&Call::new("lexical_search", "search"), |_| async {
            Err::<(), _>(err(ErrorClass::Unavailable))
        })
        .await;
    assert!(out.fallback().is_none());
    assert_eq!(out.status, DegradedStatus::Refused);
}

#[tokio::test(start_paused = true)]
async fn cost_budget_exhausted_stops_before_the_model_is_called_and_near_the_limit_degrades() {
    let guard = guard();
    let first = guard
        .call(
            &Call::new("model_provider", "generate")
                .tenant("acme")
                .estimate(Usage {
                    tokens: 0,
                    cost_usd_micros: 600,
                }),
            |a| async move {
                a.record_usage(Usage {
                    tokens: 1200,
                    cost_usd_micros: 900,
                });
                Ok::<_, DependencyError>("answer")
            },
        )
        .await;
    assert!(first.is_ok());
    // 900 of 1000 spent: admission now degrades interactive work for acme.
    let admitted = guard
        .admit(Request {
            tenant: Some("acme"),
            ..Request::default()
        })
        .await
        .unwrap();
    assert_eq!(admitted.mode, AdmissionMode::Degraded);
    assert_eq!(admitted.trigger.as_deref(), Some("cost_near_limit"));
    let called = AtomicU32::new(0);
    let second = guard
        .call(
            &Call::new("model_provider", "generate")
                .tenant("acme")
                .estimate(Usage {
                    tokens: 0,
                    cost_usd_micros: 200,
                }),
            |_| {
                called.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, DependencyError>("answer") }
            },
        )
        .await;
    assert_eq!(
        called.load(Ordering::SeqCst),
        0,
        "refused calls are never sent"
    );
    assert!(matches!(second.result, Err(GuardError::BudgetExhausted(_))));
    assert_eq!(second.status, DegradedStatus::Refused);
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    assert_eq!(batch.tenant_cost_usd_micros["acme"], 900);
    assert_eq!(batch.dependencies["model_provider"].rate_limited, 1);
    assert_eq!(batch.dependencies["model_provider"].tokens, 1200);
}

#[tokio::test(start_paused = true)]
async fn retry_storm_is_bounded_by_the_retry_budget_to_ten_percent_plus_the_floor() {
    let guard = guard();
    let attempts = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let guard = guard.clone();
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            guard
                .call(&Call::new("flaky", "get"), move |_| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    async { Err::<(), _>(err(ErrorClass::Unavailable)) }
                })
                .await
                .attempts
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = attempts.load(Ordering::SeqCst);
    let retries = total - 200;
    // Without a budget this storm would be 200 × 3 = 600 attempts.
    assert!(
        retries <= 20 + 10,
        "{retries} retries: 10 % of 200 plus 1/s over 10 s"
    );
    assert!(retries >= 20, "the budget is used, not just refused");
    guard.seal_telemetry();
    let flaky = guard.recorder().next_batch().unwrap().dependencies["flaky"].clone();
    assert_eq!(flaky.calls, 200);
    assert_eq!(u64::from(retries), flaky.retries);
    assert!(flaky.retry_budget_exhausted > 0);
    let amplification = f64::from(total) / 200.0;
    assert!(amplification <= 1.15, "amplification {amplification}");
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_three_failures_then_recovers_through_two_half_open_probes() {
    let guard = guard();
    let sent = Arc::new(AtomicU32::new(0));
    let fail = |sent: Arc<AtomicU32>| {
        move |_| {
            sent.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(err(ErrorClass::Validation)) }
        }
    };
    // Validation errors come from a healthy dependency: no trip.
    for _ in 0..5 {
        guard
            .call(&Call::new("model_provider", "generate"), fail(sent.clone()))
            .await;
    }
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Closed)
    );
    for _ in 0..3 {
        // Unavailable is retried once (2 attempts), each a failure.
        guard
            .call(&Call::new("model_provider", "generate"), |_| async {
                Err::<(), _>(err(ErrorClass::Connection))
            })
            .await;
        if guard.breaker_state("model_provider") == Some(BreakerState::Open) {
            break;
        }
    }
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Open)
    );
    let before = sent.load(Ordering::SeqCst);
    let refused = guard
        .call(&Call::new("model_provider", "generate"), fail(sent.clone()))
        .await;
    assert_eq!(refused.result.unwrap_err(), GuardError::BreakerOpen);
    assert_eq!(
        sent.load(Ordering::SeqCst),
        before,
        "an open breaker sends nothing"
    );
    tokio::time::advance(Duration::from_millis(1000)).await;
    for probe in 0..2 {
        let ok = guard
            .call(&Call::new("model_provider", "generate"), |_| async {
                Ok::<_, DependencyError>(())
            })
            .await;
        assert!(ok.is_ok(), "probe {probe}");
        let expect = if probe == 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        };
        assert_eq!(guard.breaker_state("model_provider"), Some(expect));
    }
    guard.seal_telemetry();
    let m = guard.recorder().next_batch().unwrap().dependencies["model_provider"].clone();
    let path: Vec<_> = m
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
    assert_eq!(m.breaker, Some(BreakerState::Closed));
    // The retry that followed the tripping failure, and the call above.
    assert_eq!(m.breaker_rejections, 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_deadline_fails_fast_without_calling() {
    let guard = guard();
    let deadline = agent::Deadline::after(Duration::from_millis(10));
    tokio::time::advance(Duration::from_millis(10)).await;
    let called = AtomicU32::new(0);
    let out = guard
        .call(&Call::new("reranker", "rerank").deadline(deadline), |_| {
            called.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, DependencyError>(()) }
        })
        .await;
    assert_eq!(out.result.unwrap_err(), GuardError::DeadlineExpired);
    assert_eq!(called.load(Ordering::SeqCst), 0);
    assert_eq!(out.attempts, 0);
}

#[tokio::test(start_paused = true)]
async fn each_stage_gets_the_lesser_of_what_is_left_and_its_budget_and_attempts_see_it() {
    let guard = guard();
    // 500 ms left of the request, retrieval's budget is 700: 500 wins.
    let deadline = agent::Deadline::after(Duration::from_millis(500));
    let out = guard
        .call(
            &Call::new("vector_db", "search").deadline(deadline),
            |a| async move { Ok::<_, DependencyError>(a.deadline.unwrap().remaining()) },
        )
        .await;
    assert_eq!(out.result.unwrap(), Duration::from_millis(500));
    let out = guard
        .call(&Call::new("vector_db", "search"), |a| async move {
            Ok::<_, DependencyError>(a.deadline.unwrap().remaining())
        })
        .await;
    assert_eq!(out.result.unwrap(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn the_lowest_classes_are_shed_first_and_safety_critical_work_never() {
    let guard = guard();
    guard.set_queue_depth(None, 101);
    let admit = |class| {
        let guard = guard.clone();
        async move {
            guard
                .admit(Request {
                    priority: Some(class),
                    ..Request::default()
                })
                .await
        }
    };
    assert!(matches!(
        admit(PriorityClass::BatchEval).await,
        Err(agent::Refusal::Shed { .. })
    ));
    assert!(matches!(
        admit(PriorityClass::OptionalEnrichment).await,
        Err(agent::Refusal::Shed { .. })
    ));
    assert_eq!(
        admit(PriorityClass::Background).await.unwrap().mode,
        AdmissionMode::Queued
    );
    assert_eq!(
        admit(PriorityClass::Interactive).await.unwrap().mode,
        AdmissionMode::Normal
    );
    assert_eq!(
        admit(PriorityClass::SafetyCritical).await.unwrap().mode,
        AdmissionMode::Degraded,
        "a trigger that would reject safety-critical work only degrades it"
    );
    guard.set_queue_depth(None, 5);
    assert_eq!(
        admit(PriorityClass::BatchEval).await.unwrap().mode,
        AdmissionMode::Normal
    );
}

#[tokio::test(start_paused = true)]
async fn a_policy_swap_does_not_disturb_a_call_in_flight() {
    let (tx, rx) = policy_channel(compiled(1));
    let guard = Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(1)))
        .build();
    let g = guard.clone();
    let in_flight = tokio::spawn(async move {
        g.call(&Call::new("model_provider", "generate"), |_| async {
            tokio::time::sleep(Duration::from_millis(3000)).await;
            Ok::<_, DependencyError>("slow but in time")
        })
        .await
    });
    tokio::time::advance(Duration::from_millis(100)).await;
    // Version 2 tightens the model timeout to 1 s.
    let mut v2 = Policy::from_yaml(POLICY).unwrap();
    v2.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("model_provider".into(), 1000);
    tx.send(Arc::new(CompiledPolicy::compile(
        v2,
        Some(2),
        PolicySource::Server,
    )))
    .unwrap();
    let out = in_flight.await.unwrap();
    assert_eq!(
        out.result.unwrap(),
        "slow but in time",
        "it kept version 1's 4 s"
    );
    let next = guard
        .call(&Call::new("model_provider", "generate"), |_| async {
            tokio::time::sleep(Duration::from_millis(3000)).await;
            Ok::<_, DependencyError>("too slow now")
        })
        .await;
    assert_eq!(next.result.unwrap_err(), GuardError::Timeout);
    assert_eq!(guard.policy().version(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_write_whose_reply_is_lost_without_an_idempotency_key_is_not_retried_and_is_dead_lettered_as_uncertain()
 {
    let guard = guard();
    let charges = AtomicU32::new(0);
    let start = Instant::now();
    // The provider charges the card, then its reply never arrives.
    let out = guard
        .call(&Call::new("payments_tool", "charge"), |_| {
            charges.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, DependencyError>("CH-1")
            }
        })
        .await;
    assert_eq!(out.result.as_ref().unwrap_err(), &GuardError::Timeout);
    assert_eq!(
        (out.attempts, charges.load(Ordering::SeqCst)),
        (1, 1),
        "timeouts are retryable for this tool, but not a keyless write"
    );
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
    assert!(out.side_effect_uncertain, "the charge may have happened");
    assert_eq!(out.status, DegradedStatus::Refused);

    // Uncertain work goes to reconciliation, not to a blind repeat.
    let payload = br#"{"amount_cents":1200}"#;
    let report = dead_letter(
        "run-3",
        "case_review",
        "charge_fee",
        out.result.as_ref().unwrap_err().class(),
        "reply lost after sending; the charge may have happened",
        out.attempts - 1,
        Some("open_ticket"),
        0,
        payload,
    );
    assert_eq!(report.error_type, ErrorClass::Timeout);
    assert_eq!(report.retry_count, 0);
    assert_eq!(report.last_checkpoint.as_deref(), Some("open_ticket"));
    assert_eq!(report.payload_hash, Fingerprint::of(payload).as_str());

    // A read whose reply is lost is simply retried, and is never uncertain.
    let reads = AtomicU32::new(0);
    let read = guard
        .call(
            &Call::new("payments_tool", "get_charge").effect(Effect::Read),
            |_| {
                reads.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, DependencyError>("CH-1")
                }
            },
        )
        .await;
    assert_eq!(reads.load(Ordering::SeqCst), 3);
    assert!(!read.side_effect_uncertain);
}

#[tokio::test(start_paused = true)]
async fn a_keyed_write_whose_reply_is_lost_is_retried_and_the_dedup_store_returns_the_first_outcome()
 {
    let guard = guard();
    let policy = guard.policy();
    let rule = policy.idempotent_operation("charge");
    let key = KeyBuilder::new()
        .run("run-4")
        .node("charge_fee")
        .operation("charge")
        .build_for(rule.unwrap())
        .unwrap();
    let payload = Fingerprint::of(br#"{"amount_cents":1200}"#);
    // The provider's side: it deduplicates on the key it is sent.
    let provider_store = MemoryDedupStore::new();
    let charges = AtomicU32::new(0);
    let seen = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    let out = guard
        .call(
            &Call::new("payments_tool", "charge").idempotency_key(key.as_str()),
            |a: Attempt| {
                let (store, charges, seen, payload) = (&provider_store, &charges, &seen, &payload);
                async move {
                    let sent = IdempotencyKey::raw(a.idempotency_key.as_deref().unwrap());
                    let once = run_once(store, &sent, payload, rule, || async {
                        let n = charges.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok::<_, ()>(format!("CH-{n}"))
                    })
                    .await
                    .map_err(|_: OnceError<()>| err(ErrorClass::Permanent))?;
                    seen.lock().unwrap().push(once.clone());
                    if a.number == 1 {
                        // Charged and stored, but the reply is lost.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Ok::<_, DependencyError>(once.into_inner())
                }
            },
        )
        .await;
    assert_eq!(out.result.unwrap(), "CH-1", "the first charge's outcome");
    assert_eq!(out.attempts, 2);
    assert_eq!(charges.load(Ordering::SeqCst), 1, "charged once");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Once::Ran("CH-1".into()), Once::Replayed("CH-1".into())]
    );
    assert!(!out.side_effect_uncertain);
    // The 1 s timeout, then the fixed 100 ms backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(1100));
}

/// One node of the case-review workflow: its side effect runs through the
/// guard, at most once per (run, node, operation), with the durable store
/// as the checkpoint.
async fn run_node<S: DedupStore>(
    guard: &Guard,
    store: &S,
    run: &str,
    (node, operation): (&str, &str),
    effects: &AtomicU32,
) -> Once<String> {
    let key = KeyBuilder::new()
        .run(run)
        .node(node)
        .operation(operation)
        .build();
    let payload = Fingerprint::of(node.as_bytes());
    run_once(store, &key, &payload, None, || async {
        guard
            .call(
                &Call::new("payments_tool", operation).idempotency_key(key.as_str()),
                |_| {
                    effects.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, DependencyError>(format!("{node}: done")) }
                },
            )
            .await
            .result
    })
    .await
    .expect("the node runs or replays")
}

// The one test on the real clock: sqlx's pool waits for SQLite's worker
// thread under a timeout, and a paused clock, seeing the runtime idle,
// would jump straight to that timeout. Nothing here waits on time, so the
// test is as deterministic as the others.
#[tokio::test]
async fn a_crashed_worker_is_resumed_from_its_last_checkpoint_without_repeating_completed_side_effects()
 {
    const NODES: [(&str, &str); 3] = [
        ("open_ticket", "create_ticket"),
        ("charge_fee", "charge"),
        ("notify_customer", "send_email"),
    ];
    let effects = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.db");
    {
        // The first worker completes two nodes, then its process dies: its
        // guard, its store handle and all it held in memory are gone.
        let guard = guard();
        let store = SqliteDedupStore::open(&path).await.unwrap();
        for (i, node) in NODES.iter().take(2).enumerate() {
            let done = run_node(&guard, &store, "run-5", *node, &effects[i]).await;
            assert!(matches!(done, Once::Ran(_)));
        }
    }
    // A fresh worker with a fresh guard reopens the store and runs the
    // workflow from the top.
    let guard = guard();
    let store = SqliteDedupStore::open(&path).await.unwrap();
    let mut outcomes = Vec::new();
    for (i, node) in NODES.iter().enumerate() {
        outcomes.push(run_node(&guard, &store, "run-5", *node, &effects[i]).await);
    }
    assert_eq!(
        outcomes,
        vec![
            Once::Replayed("open_ticket: done".into()),
            Once::Replayed("charge_fee: done".into()),
            Once::Ran("notify_customer: done".into()),
        ],
        "the checkpointed nodes replay their results; only the rest runs"
    );
    let counts: Vec<u32> = effects.iter().map(|e| e.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, vec![1, 1, 1], "no side effect ran twice");
}

#[tokio::test(start_paused = true)]
async fn an_agent_run_over_its_step_budget_stops_before_the_extra_step_and_hands_off_as_its_node_policy_says()
 {
    let guard = guard();
    let mut budget = StepBudget::new(3);
    let model_calls = AtomicU32::new(0);
    // An agent that never converges: every step plans yet another.
    let stop = loop {
        match guard.step(&mut budget, "plan_next_step") {
            Ok(_) => {
                let out = guard
                    .call(&Call::new("model_provider", "generate"), |_| {
                        model_calls.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, DependencyError>("search again") }
                    })
                    .await;
                assert!(out.is_ok());
            }
            Err(stop) => break stop,
        }
    };
    assert_eq!(
        model_calls.load(Ordering::SeqCst),
        3,
        "the fourth step never ran"
    );
    assert_eq!(budget.taken(), 3);
    assert_eq!(stop.action, StopAction::HandOff);
    assert_eq!(stop.status, DegradedStatus::Paused);
    assert_eq!(
        stop.runbook.as_deref(),
        Some("https://runbooks.example/agent-loops")
    );
    // A node whose failures are not handed to a person fails safe, and so
    // does a node the policy does not know.
    for node in ["enrich_summary", "unknown_node"] {
        let stop = guard.step(&mut budget, node).unwrap_err();
        assert_eq!(
            (stop.action, stop.status),
            (StopAction::FailSafe, DegradedStatus::Refused),
            "{node}"
        );
    }
    assert_eq!(budget.taken(), 3, "refused steps are not counted");
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().unwrap();
    let node = &batch.dependencies["plan_next_step"];
    assert_eq!(node.failures[&ErrorClass::BudgetExceeded], 1);
    assert_eq!(node.degraded[&DegradedStatus::Paused], 1);
}

#[tokio::test(start_paused = true)]
async fn a_stale_cache_entry_is_never_used_for_a_high_risk_decision_but_may_serve_a_low_risk_one_with_a_caveat()
 {
    let guard = guard();
    let entry = CacheEntry::new(
        String::from("case 17: open, no escalation"),
        Sensitivity::Confidential,
    );
    let sent = &AtomicU32::new(0);
    let (guard, entry) = (&guard, &entry);
    let read = |risk, up: bool| async move {
        guard
            .read_through(
                &Call::new("case_record", "get_case").effect(Effect::Read),
                risk,
                Some(entry),
                move |_| {
                    sent.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if up {
                            Ok(String::from("case 17: escalated"))
                        } else {
                            Err(err(ErrorClass::Unavailable))
                        }
                    }
                },
            )
            .await
    };
    // Fresh (confidential data lives 5 s): served without asking the source.
    let out = read(RiskTier::High, true).await;
    assert_eq!(
        out.result.unwrap(),
        Served::Cached("case 17: open, no escalation".into())
    );
    assert_eq!(sent.load(Ordering::SeqCst), 0);

    tokio::time::advance(Duration::from_secs(5)).await;
    // Stale, source up: the source answers, for any risk.
    let out = read(RiskTier::High, true).await;
    assert_eq!(
        out.result.unwrap(),
        Served::Source("case 17: escalated".into())
    );
    assert_eq!(sent.load(Ordering::SeqCst), 1);

    // Stale, source down, high-risk: the failure stands; the stale value
    // is never returned.
    for risk in [RiskTier::High, RiskTier::Regulated] {
        let out = read(risk, false).await;
        assert!(
            matches!(out.result, Err(GuardError::Dependency(_))),
            "{risk:?}: {:?}",
            out.result
        );
        assert_eq!(out.status, DegradedStatus::Refused);
    }

    // Stale, source down, low-risk: the stale entry, labelled.
    let out = read(RiskTier::Low, false).await;
    assert_eq!(
        out.result,
        Ok(Served::Stale("case 17: open, no escalation".into()))
    );
    assert_eq!(out.status, DegradedStatus::Degraded);
    assert_eq!(
        out.user_message(),
        Some("Based on case data saved a few minutes ago; the case system is unavailable.")
    );
    assert_eq!(
        sent.load(Ordering::SeqCst),
        4,
        "the source was always asked first"
    );
}

#[tokio::test(start_paused = true)]
async fn a_provider_outage_opens_the_breaker_and_later_calls_fail_fast_without_reaching_the_provider()
 {
    let guard = guard();
    let sent = AtomicU32::new(0);
    let outage = || async {
        guard
            .call(&Call::new("model_provider", "generate"), |_| {
                sent.fetch_add(1, Ordering::SeqCst);
                async { Err::<String, _>(err(ErrorClass::Unavailable)) }
            })
            .await
    };
    // Three failures in a row open it: two attempts of the first call, the
    // first attempt of the second (whose retry the open breaker refuses).
    let first = outage().await;
    assert_eq!(first.attempts, 2);
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Closed)
    );
    let second = outage().await;
    assert_eq!(second.attempts, 1);
    assert_eq!(second.result.unwrap_err(), GuardError::BreakerOpen);
    assert_eq!(
        guard.breaker_state("model_provider"),
        Some(BreakerState::Open)
    );
    assert_eq!(sent.load(Ordering::SeqCst), 3);

    let start = Instant::now();
    for _ in 0..10 {
        let out = outage().await;
        assert_eq!(out.result.unwrap_err(), GuardError::BreakerOpen);
        assert_eq!(out.attempts, 0);
        // No allowed row covers an unavailable provider: fail safe.
        assert_eq!(out.status, DegradedStatus::Refused);
    }
    assert_eq!(
        sent.load(Ordering::SeqCst),
        3,
        "nothing reached the provider"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    guard.seal_telemetry();
    let m = guard.recorder().next_batch().unwrap().dependencies["model_provider"].clone();
    assert_eq!(m.breaker, Some(BreakerState::Open));
    assert_eq!(m.breaker_rejections, 11);
}
