//! The policy the server validates is the policy the agent enforces: one
//! test per section of issue 18, each on a paused clock (or, where a real
//! socket must refuse a connection, on no clock at all), each failing when
//! its enforcement is taken out.
//!
//! Most policies here are compiled directly, without validation, on
//! purpose: the agent must refuse what validation forbids even when a
//! policy reaches it some other way (built in code, from an older server).

use agent::client::{AgentConfig, LiveAgent, save_last_known_good};
use agent::fallback::{resolve, resolve_for};
use agent::idempotency::{Fingerprint, KeyBuilder, MemoryDedupStore, Once, OnceError};
use agent::nodes::{Hold, NodeContext, NodeOutcome};
use agent::repair::Repaired;
use agent::retrieval::{Evidence, source_failed};
use agent::routing::{ModelRefusal, ModelRequest, admit, fallback_model};
use agent::steps::StepBudget;
use agent::{Call, CompiledPolicy, DependencyError, Guard, GuardError, SplitMix64, policy_channel};
use shared::policy::{
    DegradedStatus, ErrorClass, FailureType, FallbackAction, Policy, RiskTier, SourceFailure,
};
use shared::protocol::{DependencyTelemetry, PolicyEnvelope, PolicySource};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

fn compiled(yaml: &str) -> CompiledPolicy {
    let policy = Policy::from_yaml(yaml).expect("the test policy parses");
    CompiledPolicy::compile(policy, Some(1), PolicySource::Server)
}

fn guard(yaml: &str) -> Guard {
    let (tx, rx) = policy_channel(compiled(yaml));
    // Kept open for the test's life; these tests never publish.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(18)))
        .build()
}

fn err(class: ErrorClass) -> DependencyError {
    DependencyError::new(class, "injected")
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

// ------------------------------------------------------- policy on receipt

const VALID: &str = r#"
service:
  name: svc
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: lexical_search }
timeouts: { total_ms: 2000, dependencies: { search: 500 } }
fallbacks:
  - { component: search, failure: any, fallback: { kind: explain_unavailable },
      degraded_status: refused, user_message: Search is down., allowed: true }
"#;

fn envelope(version: u64, yaml: &str) -> PolicyEnvelope {
    PolicyEnvelope {
        service: "svc".into(),
        environment: "test".into(),
        version,
        etag: format!("e{version}"),
        published_at_ms: 0,
        policy: Policy::from_yaml(yaml).unwrap(),
    }
}

/// The same policy with its one row answering from the model's memory.
fn invalid() -> String {
    VALID.replace("kind: explain_unavailable", "kind: model_memory")
}

/// An agent whose control plane refuses connections at once.
async fn offline_agent(dir: &std::path::Path, lkg: Option<PolicyEnvelope>) -> LiveAgent {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = AgentConfig::new(base, "tok", "i-1", "svc", "test", dir.join("lkg.json"));
    if let Some(e) = lkg {
        save_last_known_good(&config.last_known_good, &e).unwrap();
    }
    LiveAgent::start(config).await
}

// On the real clock: the start-up pull must see its connection refused,
// and a paused clock, seeing the runtime idle, would jump to the start-up
// wait first. Nothing here waits on time.
#[tokio::test]
async fn a_pushed_policy_that_fails_validation_is_refused_reported_and_the_last_good_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let live = offline_agent(dir.path(), None).await;
    assert_eq!(
        agent::client::check_policy(&envelope(1, VALID), None),
        Ok(())
    );
    assert!(live.apply(envelope(1, VALID)));
    assert!(!live.apply(envelope(2, &invalid())), "refused");
    assert_eq!(
        live.policy().borrow().version(),
        Some(1),
        "v1 stays in force"
    );
    let beat = live.heartbeat();
    assert_eq!(beat.policy_version, Some(1));
    let refused = beat.refused_policy.expect("the refusal is reported");
    assert_eq!((refused.version, refused.source), (2, PolicySource::Server));
    assert_eq!(
        refused.errors,
        vec!["fallbacks.0.fallback: fallback_loses_grounding".to_owned()]
    );
    let disk = agent::client::load_last_known_good(&dir.path().join("lkg.json")).unwrap();
    assert_eq!(disk.version, 1, "a refused policy never reaches the disk");
    // A newer good version runs, and the refusal is history.
    assert!(live.apply(envelope(3, VALID)));
    assert_eq!(live.heartbeat().refused_policy, None);
}

#[tokio::test]
async fn an_invalid_or_foreign_last_known_good_copy_is_refused_and_the_default_applies() {
    let dir = tempfile::tempdir().unwrap();
    let live = offline_agent(dir.path(), Some(envelope(4, &invalid()))).await;
    assert_eq!(live.applied(), (None, PolicySource::Default));
    let refused = live.refused().expect("reported");
    assert_eq!((refused.version, refused.source), (4, PolicySource::Disk));

    let dir = tempfile::tempdir().unwrap();
    let mut foreign = envelope(5, VALID);
    foreign.service = "billing".into();
    let live = offline_agent(dir.path(), Some(foreign)).await;
    assert_eq!(live.applied(), (None, PolicySource::Default));
    assert!(live.refused().unwrap().errors[0].contains("billing/test"));
}

// ---------------------------------------------------------------- fallbacks

/// Every row here is allowed, and every unsafe one would be refused by
/// validation; the agent passes over each all the same.
const UNSAFE_ROWS: &str = r#"
service:
  name: unsafe
  environment: test
  owner: reliability
  risk_tier: high
  dependencies:
    search: { kind: lexical_search }
    identity: { kind: identity }
    approvals: { kind: approval_service }
    ticket_tool: { kind: tool_api }
    case_db: { kind: database }
fallbacks:
  - { component: search, failure: any, fallback: { kind: model_memory },
      degraded_status: degraded, user_message: Answered from memory., allowed: true }
  - { component: search, failure: any, fallback: { kind: explain_unavailable },
      degraded_status: refused, user_message: Search is down., allowed: true }
  - { component: identity, failure: any, fallback: { kind: skip_authorization },
      degraded_status: degraded, allowed: true }
  - { component: identity, failure: any, fallback: { kind: cached, max_staleness_ms: 60000 },
      degraded_status: degraded, user_message: Using a saved session., allowed: true }
  - { component: approvals, failure: any, fallback: { kind: skip_step },
      degraded_status: degraded, user_message: Skipped the approval., allowed: true }
  - { component: ticket_tool, failure: any, fallback: { kind: proceed_without_approval },
      degraded_status: degraded, allowed: true }
  - { component: case_db, failure: any, fallback: { kind: cached, max_staleness_ms: 60000 },
      degraded_status: degraded, user_message: Case data from a few minutes ago., allowed: true }
"#;

#[tokio::test(start_paused = true)]
async fn an_allowed_but_unsafe_fallback_row_is_never_handed_back_and_the_next_safe_row_is() {
    let policy = compiled(UNSAFE_ROWS);
    let unavailable = Some(FailureType::Unavailable);
    // Model memory is passed over; the safe row after it is taken, and the
    // passed-over row's message is not shown.
    let r = resolve(&policy, "search", unavailable);
    let taken = r.degradation.fallback.expect("the safe row");
    assert_eq!(taken.action, FallbackAction::ExplainUnavailable {});
    assert_eq!(
        r.degradation.user_message.as_deref(),
        Some("Search is down.")
    );
    // Nothing carries on past identity or approvals, nor acts unapproved.
    for component in ["identity", "approvals", "ticket_tool"] {
        let r = resolve(&policy, component, unavailable);
        assert_eq!(r.degradation.fallback, None, "{component}");
        assert_eq!(r.status, DegradedStatus::Refused, "{component}");
    }
    // A cached answer may be stale: never for a high-risk decision (the
    // service's tier, when the request says nothing), but for a low one.
    assert_eq!(
        resolve(&policy, "case_db", unavailable)
            .degradation
            .fallback,
        None
    );
    let low = ModelRequest::new().risk(RiskTier::Low);
    let r = resolve_for(&policy, "case_db", unavailable, &low);
    assert!(matches!(
        r.degradation.fallback.map(|f| f.action),
        Some(FallbackAction::Cached { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_guarded_call_whose_only_row_is_unsafe_fails_safe_and_counts_no_fallback() {
    let guard = guard(UNSAFE_ROWS);
    let out = guard
        .call(&Call::new("ticket_tool", "create"), |_| async {
            Err::<(), _>(err(ErrorClass::Unavailable))
        })
        .await;
    assert!(out.fallback().is_none());
    assert_eq!(out.status, DegradedStatus::Refused);
    let t = telemetry(&guard, "ticket_tool");
    assert!(t.fallbacks.is_empty(), "{:?}", t.fallbacks);
    assert_eq!(t.degraded[&DegradedStatus::Refused], 1);
}

// ------------------------------------------------------------ model routing

const MODELS: &str = r#"
service:
  name: advice
  environment: test
  owner: reliability
  risk_tier: RISK
  dependencies:
    llm: { kind: model_provider }
models:
  primary: { model: large, dependency: llm, validated: true }
  fallbacks:
    - { model: small, dependency: llm, validated: false, disallowed_risk_levels: [regulated] }
    - { model: mini, dependency: llm, validated: true, allowed_features: [summary],
        requires_additional_validation: true }
fallbacks:
  - { component: llm, failure: timeout, fallback: { kind: alternate_model, model: small },
      degraded_status: degraded, user_message: A smaller model answered., allowed: true,
      confidence_penalty_percent: 20 }
  - { component: llm, failure: rate_limited, fallback: { kind: alternate_model, model: mini },
      degraded_status: degraded, user_message: A smaller model answered., allowed: true,
      confidence_penalty_percent: 20 }
output_repair: { max_attempts: 0, on_failure: fallback, fallback_model: small }
"#;

fn models(risk: &str) -> String {
    MODELS.replace("RISK", risk)
}

#[tokio::test(start_paused = true)]
async fn a_high_tier_request_never_reaches_an_unvalidated_fallback_model_even_when_a_row_names_it()
{
    let timeout = |guard: Guard, risk: Option<RiskTier>| async move {
        let mut call = Call::new("llm", "generate");
        if let Some(r) = risk {
            call = call.risk(r);
        }
        guard
            .call(&call, |_| async { Err::<(), _>(err(ErrorClass::Timeout)) })
            .await
    };
    // A high-tier service: not for any request, whatever it says.
    let out = timeout(guard(&models("high")), Some(RiskTier::Low)).await;
    assert_eq!(
        out.result,
        Err(GuardError::Dependency(err(ErrorClass::Timeout)))
    );
    assert!(out.fallback().is_none());
    assert_eq!(out.status, DegradedStatus::Refused);
    // A medium-tier service: a low-risk request may use it, a high one not.
    let out = timeout(guard(&models("medium")), Some(RiskTier::Low)).await;
    let model = out.fallback().expect("small").model.clone().unwrap();
    assert_eq!(model.model, "small");
    let out = timeout(guard(&models("medium")), Some(RiskTier::High)).await;
    assert!(out.fallback().is_none());
    // And a request that says nothing is as risky as its service.
    let policy = compiled(&models("high"));
    assert_eq!(
        admit(&policy, "small", &ModelRequest::new()),
        Err(ModelRefusal::Unvalidated)
    );
    let regulated = ModelRequest::new().risk(RiskTier::Regulated);
    assert_eq!(
        admit(&compiled(&models("low")), "small", &regulated),
        Err(ModelRefusal::DisallowedRisk(RiskTier::Regulated))
    );
    assert_eq!(
        admit(&policy, "gpt-x", &ModelRequest::new()),
        Err(ModelRefusal::Unlisted)
    );
}

#[tokio::test(start_paused = true)]
async fn a_fallback_model_serves_only_its_features_and_its_answers_pass_the_extra_validation() {
    let guard = guard(&models("high"));
    let rate_limited = |feature: &'static str| {
        let guard = guard.clone();
        async move {
            guard
                .call(&Call::new("llm", "generate").feature(feature), |_| async {
                    Err::<(), _>(err(ErrorClass::RateLimited))
                })
                .await
        }
    };
    assert!(rate_limited("advice").await.fallback().is_none());
    let out = rate_limited("summary").await;
    let grant = out.fallback().unwrap().model.clone().unwrap();
    assert_eq!(grant.model, "mini");
    assert!(grant.requires_additional_validation);
    let checked = |answer: &&str| {
        if answer.contains("[1]") {
            Ok(())
        } else {
            Err("no citation".to_owned())
        }
    };
    assert_eq!(grant.accept("cited [1]", checked), Ok("cited [1]"));
    assert!(grant.accept("uncited", checked).is_err());
    // The preference order, filtered the same way.
    let policy = guard.policy();
    let summary = ModelRequest::new().feature("summary");
    assert_eq!(fallback_model(&policy, &summary).unwrap().model, "mini");
    let advice = ModelRequest::new().feature("advice");
    assert_eq!(fallback_model(&policy, &advice), None);
    // A request that names no feature is not feature-routed.
    assert_eq!(
        fallback_model(&policy, &ModelRequest::new()).unwrap().model,
        "mini"
    );
}

#[tokio::test(start_paused = true)]
async fn a_repair_never_falls_back_to_a_model_the_service_may_not_use() {
    let repair = |guard: Guard| async move {
        guard
            .repair(
                "llm",
                "{bad",
                |s: &&str| Err(format!("{s} is not json")),
                |_, _| async { None },
            )
            .await
    };
    assert!(matches!(
        repair(guard(&models("high"))).await,
        Repaired::FailSafe { .. }
    ));
    assert!(matches!(
        repair(guard(&models("low"))).await,
        Repaired::Fallback { .. }
    ));
}

// ----------------------------------------------------- retrieval and nodes

const WORKFLOW: &str = r#"
service:
  name: case-review
  environment: test
  owner: reliability
  risk_tier: high
  dependencies:
    docs_db: { kind: vector_db }
    facts_db: { kind: database }
    web_search: { kind: lexical_search, required: false }
    glossary_db: { kind: database, required: false }
retrieval:
  sources:
    policy: { dependency: docs_db, required: true, on_failure: fail,
              user_message: Policy documents are unavailable. }
    case_facts: { dependency: facts_db, required: true, on_failure: ask_human,
                  user_message: A person will check the case facts. }
    web: { dependency: web_search, required: false, on_failure: degrade,
           user_message: Public sources were not searched., confidence_penalty_percent: 15 }
    glossary: { dependency: glossary_db, required: false, on_failure: omit }
    # Unsafe: a required source omitted (validation refuses it).
    precedents: { required: true, on_failure: omit }
agent_nodes:
  draft_reply:
    required_for_completion: true
    retry: { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 1000, jitter: none,
             retry_on: [unavailable] }
  classify:
    required_for_completion: true
    fallback_node: classify_rules
  classify_rules:
    required_for_completion: true
  enrich:
    required_for_completion: false
  decide:
    required_for_completion: true
    human_handoff_on_failure: true
    runbook: https://runbooks.example/decide
  summarise:
    required_for_completion: true
  send_letter:
    effect: write
    required_for_completion: true
    in_degraded_mode: hold
    retry: { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 1000, jitter: none,
             retry_on: [unavailable] }
  close_case:
    effect: destructive
    requires_approval: true
    required_for_completion: true
"#;

#[tokio::test(start_paused = true)]
async fn a_failed_source_fails_degrades_omits_or_asks_a_person_as_its_policy_says() {
    let guard = guard(WORKFLOW);
    let down = FailureType::Unavailable;
    let policy = guard.source_failed("policy", down);
    assert_eq!(
        (policy.action, policy.status),
        (SourceFailure::Fail, DegradedStatus::Refused)
    );
    assert!(!policy.proceeds());
    let facts = guard.source_failed("case_facts", down);
    assert_eq!(
        (facts.action, facts.status),
        (SourceFailure::AskHuman, DegradedStatus::Paused)
    );
    let web = guard.source_failed("web", down);
    assert_eq!(
        (web.action, web.status),
        (SourceFailure::Degrade, DegradedStatus::Degraded)
    );
    assert_eq!(web.confidence_penalty_percent, 15);
    assert_eq!(
        web.user_message.as_deref(),
        Some("Public sources were not searched.")
    );
    let glossary = guard.source_failed("glossary", down);
    assert_eq!(
        (glossary.action, glossary.status),
        (SourceFailure::Omit, DegradedStatus::Normal)
    );
    // A required source is never omitted, and an unknown one never assumed
    // optional.
    for source in ["precedents", "unknown"] {
        assert_eq!(
            guard.source_failed(source, down).action,
            SourceFailure::Fail,
            "{source}"
        );
    }

    let mut evidence = Evidence::new();
    evidence.record(web);
    evidence.record(glossary);
    assert!(evidence.may_answer());
    assert_eq!(evidence.status(), DegradedStatus::Degraded);
    assert_eq!(evidence.confidence_penalty_percent(), 15);
    evidence.record(facts);
    assert!(!evidence.may_answer() && evidence.needs_human());
    assert_eq!(evidence.status(), DegradedStatus::Paused);
    assert_eq!(
        telemetry(&guard, "web").degraded[&DegradedStatus::Degraded],
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_is_retried_by_its_own_policy_then_succeeds() {
    let guard = guard(WORKFLOW);
    let mut budget = StepBudget::new(10);
    let start = Instant::now();
    let out = guard
        .run_node(
            &mut budget,
            "draft_reply",
            NodeContext::default(),
            |_, n| async move {
                if n < 3 {
                    Err(err(ErrorClass::Unavailable))
                } else {
                    Ok("draft")
                }
            },
        )
        .await;
    assert_eq!(
        out,
        NodeOutcome::Done {
            node: "draft_reply".into(),
            fell_back: false,
            value: "draft",
            attempts: 3
        }
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "100 ms, then 200 ms"
    );
    assert_eq!(budget.taken(), 3, "each attempt is a step");
    assert_eq!(telemetry(&guard, "draft_reply").retries, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_takes_its_fallback_node_hands_off_is_skipped_or_fails_as_its_policy_says() {
    let guard = guard(WORKFLOW);
    let mut budget = StepBudget::new(20);
    let ran = std::sync::Mutex::new(Vec::new());
    // Every node fails but the rules-based classifier.
    async fn run(
        guard: &Guard,
        budget: &mut StepBudget,
        ran: &std::sync::Mutex<Vec<String>>,
        node: &str,
    ) -> NodeOutcome<usize, DependencyError> {
        guard
            .run_node(budget, node, NodeContext::default(), |n, _| {
                ran.lock().unwrap().push(n.to_owned());
                let result = if n == "classify_rules" {
                    Ok(n.len())
                } else {
                    Err(err(ErrorClass::Permanent))
                };
                async move { result }
            })
            .await
    }
    let out = run(&guard, &mut budget, &ran, "classify").await;
    assert_eq!(
        out,
        NodeOutcome::Done {
            node: "classify_rules".into(),
            fell_back: true,
            value: 14,
            attempts: 2
        }
    );
    assert_eq!(
        out.status(),
        DegradedStatus::Degraded,
        "a stand-in answered"
    );
    assert_eq!(*ran.lock().unwrap(), ["classify", "classify_rules"]);

    let out = run(&guard, &mut budget, &ran, "decide").await;
    assert!(
        matches!(&out, NodeOutcome::HandedOff { runbook: Some(r), .. } if r.contains("decide"))
    );
    assert_eq!(out.status(), DegradedStatus::Paused);

    let out = run(&guard, &mut budget, &ran, "enrich").await;
    assert!(matches!(out, NodeOutcome::Skipped { .. }));
    assert!(out.run_continues());
    assert_eq!(out.status(), DegradedStatus::Partial);

    let out = run(&guard, &mut budget, &ran, "summarise").await;
    assert!(matches!(
        out,
        NodeOutcome::Failed {
            fail_closed: None,
            ..
        }
    ));
    assert!(!out.run_continues());
    assert_eq!(out.status(), DegradedStatus::Refused);
    let classify = telemetry(&guard, "classify");
    assert_eq!(classify.fallbacks["classify/fallback_node"], 1);
    assert_eq!(classify.degraded[&DegradedStatus::Degraded], 1);
}

#[tokio::test(start_paused = true)]
async fn a_held_node_never_runs_and_a_write_is_never_retried_without_a_key() {
    let guard = guard(WORKFLOW);
    let mut budget = StepBudget::new(20);
    let calls = AtomicU32::new(0);
    let op = |_: &str, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(err(ErrorClass::Unavailable)) }
    };
    let degraded = NodeContext {
        degraded: true,
        ..NodeContext::default()
    };
    let out = guard
        .run_node(&mut budget, "send_letter", degraded, op)
        .await;
    assert_eq!(
        out,
        NodeOutcome::Held {
            node: "send_letter".into(),
            hold: Hold::DegradedMode
        }
    );
    let out = guard
        .run_node(&mut budget, "close_case", NodeContext::default(), op)
        .await;
    assert_eq!(
        out,
        NodeOutcome::Held {
            node: "close_case".into(),
            hold: Hold::ApprovalMissing
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "held nodes never ran");
    assert_eq!(budget.taken(), 0, "and took no step");

    let out = guard
        .run_node(&mut budget, "send_letter", NodeContext::default(), op)
        .await;
    assert!(matches!(out, NodeOutcome::Failed { .. }));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a write without a key is not retried"
    );
    let keyed = NodeContext {
        idempotency_key: Some("run-1/send_letter"),
        ..NodeContext::default()
    };
    guard.run_node(&mut budget, "send_letter", keyed, op).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "with a key, its three attempts"
    );
}

// --------------------------------------------------------------- invariants

const INVARIANTS: &str = r#"
service:
  name: case-review
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    reranker: { kind: reranker, required: false }
    vector_db: { kind: vector_db }
    lexical_search: { kind: lexical_search }
    case_db: { kind: database }
    glossary_db: { kind: database, required: false }
fallbacks:
  - { component: reranker, failure: any, fallback: { kind: skip_step },
      degraded_status: normal, allowed: true }
  - { component: vector_db, failure: any,
      fallback: { kind: alternate_dependency, dependency: lexical_search },
      degraded_status: degraded, user_message: Reduced search., allowed: true,
      confidence_penalty_percent: 15 }
  - { component: case_db, failure: any, fallback: { kind: cached, max_staleness_ms: 60000 },
      degraded_status: normal, allowed: true }
retrieval:
  sources:
    glossary: { dependency: glossary_db, required: false, on_failure: omit }
agent_nodes:
  close_case:
    effect: destructive
    required_for_completion: true
cache:
  stale_caveat: Based on case data saved a few minutes ago.
invariants:
  must_not_do:
    - { id: no_hidden_gaps, kind: hide_missing_evidence, description: Say what is missing. }
    - { id: no_silent_stale, kind: unlabeled_stale_data, description: Label stale data. }
    - { id: approve_first, kind: act_without_approval, description: Approve before acting. }
    - { id: no_blind_actions, kind: destructive_action_in_degraded_mode,
        description: No destructive action on partial evidence. }
"#;

/// A row and a source that would pass silently, and the may-degrade
/// invariants that cover them.
const MAY_DEGRADE: &str = r#"
service:
  name: search
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    vector_db: { kind: vector_db }
    lexical_search: { kind: lexical_search }
    glossary_db: { kind: database, required: false }
fallbacks:
  - { component: vector_db, failure: any,
      fallback: { kind: alternate_dependency, dependency: lexical_search },
      degraded_status: normal, allowed: true }
retrieval:
  sources:
    glossary: { dependency: glossary_db, required: false, on_failure: omit }
invariants:
  may_degrade:
    - { id: search_reduced, component: vector_db, description: Search ran in a reduced mode. }
    - { id: glossary_missing, component: glossary, description: Some terms may go unexplained. }
"#;

#[tokio::test(start_paused = true)]
async fn a_failure_a_may_degrade_invariant_covers_is_answered_labelled_never_silently() {
    let policy = compiled(MAY_DEGRADE);
    let row = resolve(&policy, "vector_db", Some(FailureType::Unavailable));
    assert!(row.degradation.fallback.is_some(), "it may degrade");
    assert_eq!(row.status, DegradedStatus::Degraded);
    assert_eq!(
        row.degradation.user_message.as_deref(),
        Some("Search ran in a reduced mode.")
    );
    let source = source_failed(&policy, "glossary", FailureType::Unavailable);
    assert_eq!(
        (source.action, source.status),
        (SourceFailure::Degrade, DegradedStatus::Degraded)
    );
    assert_eq!(
        source.user_message.as_deref(),
        Some("Some terms may go unexplained.")
    );
    // Without the invariants, the same row and source pass silently: the
    // invariants are what label them.
    let silent = compiled(&MAY_DEGRADE[..MAY_DEGRADE.find("invariants:").unwrap()]);
    let row = resolve(&silent, "vector_db", Some(FailureType::Unavailable));
    assert_eq!(
        (row.status, row.degradation.user_message),
        (DegradedStatus::Normal, None)
    );
    let source = source_failed(&silent, "glossary", FailureType::Unavailable);
    assert_eq!(source.action, SourceFailure::Omit);
}

#[tokio::test(start_paused = true)]
async fn must_not_do_labels_what_would_pass_silently_and_holds_unapproved_or_blind_actions() {
    let guard = guard(INVARIANTS);
    let policy = guard.policy();
    let down = Some(FailureType::Unavailable);
    // A skipped step and a cached answer are never labelled normal.
    let skip = resolve(&policy, "reranker", down);
    assert_eq!(skip.status, DegradedStatus::Degraded);
    assert!(skip.degradation.user_message.unwrap().contains("reranker"));
    let cached = resolve(&policy, "case_db", down);
    assert_eq!(cached.status, DegradedStatus::Degraded);
    assert_eq!(
        cached.degradation.user_message.as_deref(),
        Some("Based on case data saved a few minutes ago.")
    );
    // An omitted source is labelled instead of hidden.
    let glossary = source_failed(&policy, "glossary", FailureType::Unavailable);
    assert_eq!(
        (glossary.action, glossary.status),
        (SourceFailure::Degrade, DegradedStatus::Degraded)
    );
    // A destructive node needs an approval, and never runs degraded.
    let mut budget = StepBudget::new(5);
    let calls = AtomicU32::new(0);
    let op = |_: &str, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, DependencyError>(()) }
    };
    let out = guard
        .run_node(&mut budget, "close_case", NodeContext::default(), op)
        .await;
    assert_eq!(
        out,
        NodeOutcome::Held {
            node: "close_case".into(),
            hold: Hold::ApprovalMissing
        }
    );
    let approved_degraded = NodeContext {
        approved: true,
        degraded: true,
        ..NodeContext::default()
    };
    let out = guard
        .run_node(&mut budget, "close_case", approved_degraded, op)
        .await;
    assert_eq!(
        out,
        NodeOutcome::Held {
            node: "close_case".into(),
            hold: Hold::DegradedMode
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let approved = NodeContext {
        approved: true,
        ..NodeContext::default()
    };
    let out = guard
        .run_node(&mut budget, "close_case", approved, op)
        .await;
    assert!(matches!(out, NodeOutcome::Done { .. }));
}

// ------------------------------------------------------------- idempotency

const IDEMPOTENCY: &str = r#"
service:
  name: tickets
  environment: test
  owner: reliability
  risk_tier: low
  dependencies:
    ticket_tool: { kind: tool_api }
idempotency:
  operations:
    create_ticket:
      dependency: ticket_tool
      key: [workflow_run_id, operation]
      on_payload_mismatch: replay_original
      retention_ms: 86400000
    close_ticket:
      dependency: ticket_tool
      key: [workflow_run_id, operation]
      on_payload_mismatch: reject
      retention_ms: 86400000
"#;

#[tokio::test(start_paused = true)]
async fn a_reused_key_replays_the_original_when_the_policy_says_so_and_conflicts_are_counted() {
    let guard = guard(IDEMPOTENCY);
    let store = MemoryDedupStore::new();
    let effects = AtomicU32::new(0);
    let run = |operation: &'static str, payload: &'static str| {
        let guard = guard.clone();
        let store = &store;
        let effects = &effects;
        async move {
            let key = KeyBuilder::new().run("run-1").operation(operation).build();
            guard
                .run_once(
                    operation,
                    store,
                    &key,
                    &Fingerprint::of(payload.as_bytes()),
                    || async {
                        effects.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(format!("{operation}: {payload}"))
                    },
                )
                .await
        }
    };
    let first = run("create_ticket", "refund").await.unwrap();
    assert_eq!(first, Once::Ran("create_ticket: refund".into()));
    let same = run("create_ticket", "refund").await.unwrap();
    assert_eq!(same, Once::Replayed("create_ticket: refund".into()));
    let other = run("create_ticket", "close the case").await.unwrap();
    assert_eq!(
        other,
        Once::Replayed("create_ticket: refund".into()),
        "replay_original: the first result, not a conflict"
    );
    run("close_ticket", "now").await.unwrap();
    let rejected = run("close_ticket", "later").await.unwrap_err();
    assert!(matches!(rejected, OnceError::Conflict { escalate: false }));
    assert_eq!(effects.load(Ordering::SeqCst), 2, "one effect per key");
    let t = telemetry(&guard, "ticket_tool");
    assert_eq!(
        t.idempotency_conflicts, 2,
        "the replayed mismatch and the rejected one"
    );
    assert_eq!(
        t.duplicates_prevented, 2,
        "the duplicate and the replayed mismatch"
    );
}
