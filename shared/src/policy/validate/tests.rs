//! One failing and one passing policy per rule. Each test starts from a
//! base policy with no findings at all and changes one thing.

use super::*;
use crate::policy::codec::parse;
use crate::policy::*;

const BASE: &str = r#"
service:
  name: svc
  environment: prod
  owner: team
  risk_tier: medium
  dependencies:
    model_provider: { kind: model_provider }
    backup_provider: { kind: model_provider, required: false }
    tool: { kind: tool_api }
    identity: { kind: identity }
    approval: { kind: approval_service }
    search: { kind: lexical_search }
timeouts:
  total_ms: 10000
  stages:
    - { name: auth, budget_ms: 200, dependencies: [identity, approval] }
    - { name: retrieval, budget_ms: 800, dependencies: [search] }
    - { name: generation, budget_ms: 5000, dependencies: [model_provider, backup_provider] }
    - { name: tools, budget_ms: 2000, dependencies: [tool] }
retry_budget: { ratio_percent: 10, min_per_second: 1 }
breakers:
  model_provider: &breaker
    mode: { kind: consecutive, failures: 5 }
    cooldown_ms: 10000
    half_open_probes: 1
  backup_provider: *breaker
  tool: *breaker
  search: *breaker
"#;

/// The base policy with extra top-level sections appended.
fn policy(extra: &str) -> Policy {
    let text = format!("{BASE}{extra}");
    parse(&text, Format::Yaml).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn check(p: &Policy) -> ValidationReport {
    validate(p, &ValidationContext::new())
}

/// Asserts a finding with this code, path and severity.
#[track_caller]
fn assert_finding(r: &ValidationReport, severity: Severity, code: Code, path: &str) {
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == code && f.path == path && f.severity == severity),
        "expected {severity:?} {code} at `{path}`, got {:#?}",
        r.findings
    );
}

/// Asserts no finding with this code anywhere.
#[track_caller]
fn assert_no(r: &ValidationReport, code: Code) {
    assert!(
        !r.findings.iter().any(|f| f.code == code),
        "expected no {code}, got {:#?}",
        r.findings
    );
}

fn section<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    parse(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

const RETRY: &str = "max_attempts: 3\nbase_delay_ms: 100\nmax_delay_ms: 1000\njitter: full\nretry_on: [timeout, unavailable]\n";

fn retry(extra: &str) -> RetryPolicy {
    section(&format!("{RETRY}{extra}"))
}

#[test]
fn base_policy_has_no_findings() {
    let r = check(&policy(""));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn header_only_policy_is_valid() {
    let p = Policy::new(Service {
        name: "svc".into(),
        environment: "dev".into(),
        owner: "me".into(),
        risk_tier: RiskTier::Low,
        description: None,
        dependencies: Default::default(),
    });
    assert!(check(&p).findings.is_empty());
}

#[test]
fn code_names_match_the_wire() {
    for code in Code::ALL {
        assert_eq!(wire(code), code.as_str());
    }
}

// --- timeouts -------------------------------------------------------------

#[test]
fn stage_budgets_exceeding_the_total_are_an_error() {
    let mut p = policy("");
    p.timeouts.as_mut().unwrap().total_ms = 7999;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::StageBudgetsExceedTotal,
        "timeouts.stages",
    );
    p.timeouts.as_mut().unwrap().total_ms = 8000;
    assert_no(&check(&p), Code::StageBudgetsExceedTotal);
}

#[test]
fn a_dependency_with_no_timeout_is_an_error() {
    let mut p = policy("");
    p.timeouts.as_mut().unwrap().stages[3].dependencies.clear();
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Error,
        Code::DependencyWithoutTimeout,
        "timeouts.dependencies.tool",
    );
    p.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("tool".into(), 1500);
    assert_no(&check(&p), Code::DependencyWithoutTimeout);

    p.timeouts = None;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::DependencyWithoutTimeout,
        "timeouts.dependencies.search",
    );
}

#[test]
fn a_timeout_longer_than_its_stage_is_a_warning() {
    let mut p = policy("");
    p.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("search".into(), 900);
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::TimeoutExceedsBudget,
        "timeouts.dependencies.search",
    );
    p.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("search".into(), 700);
    assert_no(&check(&p), Code::TimeoutExceedsBudget);
}

#[test]
fn a_total_longer_than_the_goal_timeout_is_an_error() {
    let mut p = policy("goals: { timeout_ms: 9000 }\n");
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::TotalExceedsGoal,
        "timeouts.total_ms",
    );
    p.goals.as_mut().unwrap().timeout_ms = Some(10_000);
    assert_no(&check(&p), Code::TotalExceedsGoal);
}

#[test]
fn duplicate_stage_names_are_an_error() {
    let mut p = policy("");
    p.timeouts.as_mut().unwrap().stages[1].name = "auth".into();
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::DuplicateName,
        "timeouts.stages.1.name",
    );
}

// --- retries --------------------------------------------------------------

#[test]
fn retrying_a_side_effect_without_an_idempotency_key_is_an_error() {
    let mut p = policy("");
    p.retry.insert(
        "tool".into(),
        retry("operations: { create_ticket: write, lookup: read }\n"),
    );
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Error,
        Code::RetryWithoutIdempotencyKey,
        "retry.tool.operations.create_ticket",
    );
    assert!(!r.contains(
        Code::RetryWithoutIdempotencyKey,
        "retry.tool.operations.lookup"
    ));

    p.idempotency = Some(section(
        "operations:\n  create_ticket: { key: [request_id, operation], on_payload_mismatch: reject, retention_ms: 86400000 }\n",
    ));
    assert_no(&check(&p), Code::RetryWithoutIdempotencyKey);

    // One attempt is no retry, so no key is needed.
    p.idempotency = None;
    p.retry.get_mut("tool").unwrap().max_attempts = 1;
    assert_no(&check(&p), Code::RetryWithoutIdempotencyKey);
}

#[test]
fn retrying_a_side_effecting_node_without_a_key_is_an_error() {
    let mut p = policy(&format!(
        "agent_nodes:\n  send:\n    effect: write\n    required_for_completion: true\n    retry:\n{}",
        RETRY
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::RetryWithoutIdempotencyKey,
        "agent_nodes.send.retry",
    );
    p.idempotency = Some(section(
        "operations:\n  send: { key: [workflow_run_id, node], on_payload_mismatch: escalate, retention_ms: 1000 }\n",
    ));
    assert_no(&check(&p), Code::RetryWithoutIdempotencyKey);
}

#[test]
fn retrying_auth_validation_or_policy_failures_is_an_error() {
    for class in [
        "auth_denied",
        "validation",
        "policy_violation",
        "insufficient_evidence",
        "permanent",
    ] {
        let mut p = policy("");
        p.retry.insert(
            "model_provider".into(),
            section(&format!("max_attempts: 2\nbase_delay_ms: 100\nmax_delay_ms: 200\njitter: full\nretry_on: [timeout, {class}]\n")),
        );
        assert_finding(
            &check(&p),
            Severity::Error,
            Code::NonRetryableErrorClass,
            "retry.model_provider.retry_on.1",
        );
    }
    let mut p = policy("");
    p.retry.insert("model_provider".into(), retry(""));
    assert_no(&check(&p), Code::NonRetryableErrorClass);
}

#[test]
fn a_backoff_cap_below_its_base_is_an_error() {
    let mut p = policy("");
    let mut r = retry("");
    r.max_delay_ms = 50;
    p.retry.insert("model_provider".into(), r);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::BackoffCapBelowBase,
        "retry.model_provider.max_delay_ms",
    );
    p.retry.get_mut("model_provider").unwrap().max_delay_ms = 100;
    assert_no(&check(&p), Code::BackoffCapBelowBase);
}

#[test]
fn attempts_above_the_bound_are_an_error() {
    let mut p = policy("");
    let mut r = retry("");
    r.max_attempts = 6;
    p.retry.insert("model_provider".into(), r);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::MaxAttemptsAboveBound,
        "retry.model_provider.max_attempts",
    );
    let looser = ValidationContext {
        max_retry_attempts: 6,
        ..ValidationContext::new()
    };
    assert_no(&validate(&p, &looser), Code::MaxAttemptsAboveBound);
    p.retry.get_mut("model_provider").unwrap().max_attempts = 0;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "retry.model_provider.max_attempts",
    );
}

#[test]
fn retries_without_jitter_are_a_warning() {
    let mut p = policy("");
    let mut r = retry("");
    r.jitter = Jitter::None;
    p.retry.insert("model_provider".into(), r);
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::RetryWithoutJitter,
        "retry.model_provider.jitter",
    );
    // A single attempt has nothing to spread out.
    p.retry.get_mut("model_provider").unwrap().max_attempts = 1;
    assert_no(&check(&p), Code::RetryWithoutJitter);
}

#[test]
fn retries_to_an_undeclared_dependency_are_an_error() {
    let mut p = policy("");
    p.retry.insert("modle_provider".into(), retry(""));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::UnknownDependency,
        "retry.modle_provider",
    );
    p.retry.clear();
    p.retry.insert("model_provider".into(), retry(""));
    assert_no(&check(&p), Code::UnknownDependency);
}

#[test]
fn retries_without_a_budget_are_a_warning() {
    let mut p = policy("");
    p.retry.insert("model_provider".into(), retry(""));
    p.retry_budget = None;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::MissingRetryBudget,
        "retry_budget",
    );
    p.retry_budget = Some(RetryBudget {
        ratio_percent: 10,
        min_per_second: 1,
    });
    assert_no(&check(&p), Code::MissingRetryBudget);
}

#[test]
fn retries_that_cannot_fit_the_deadline_are_a_warning() {
    let mut p = policy("");
    p.retry.insert("model_provider".into(), retry(""));
    // Three attempts of up to 5000 ms each cannot fit in 10000 ms.
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::RetriesExceedDeadline,
        "retry.model_provider.max_attempts",
    );
    p.retry.get_mut("model_provider").unwrap().max_attempts = 1;
    assert_no(&check(&p), Code::RetriesExceedDeadline);
}

#[test]
fn retries_to_a_side_effecting_kind_without_operations_are_a_warning() {
    let mut p = policy("");
    p.retry.insert("tool".into(), retry(""));
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::SideEffectsUndeclared,
        "retry.tool.operations",
    );
    p.retry
        .insert("tool".into(), retry("operations: { lookup: read }\n"));
    assert_no(&check(&p), Code::SideEffectsUndeclared);
}

#[test]
fn nested_retries_are_a_warning() {
    let node = |retry_attempts: u32| {
        format!(
            "agent_nodes:\n  summarise:\n    dependencies: [model_provider]\n    required_for_completion: true\n    retry: {{ max_attempts: {retry_attempts}, base_delay_ms: 100, max_delay_ms: 100, jitter: full, retry_on: [timeout] }}\n"
        )
    };
    let mut p = policy(&node(2));
    p.retry.insert("model_provider".into(), retry(""));
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::NestedRetries,
        "agent_nodes.summarise.retry",
    );
    let mut p = policy(&node(1));
    p.retry.insert("model_provider".into(), retry(""));
    assert_no(&check(&p), Code::NestedRetries);
}

#[test]
fn a_high_retry_budget_is_a_warning_and_above_100_an_error() {
    let mut p = policy("");
    p.retry_budget.as_mut().unwrap().ratio_percent = 50;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::RetryBudgetHigh,
        "retry_budget.ratio_percent",
    );
    p.retry_budget.as_mut().unwrap().ratio_percent = 150;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "retry_budget.ratio_percent",
    );
    p.retry_budget.as_mut().unwrap().ratio_percent = 10;
    assert!(check(&p).findings.is_empty());
}

// --- breakers -------------------------------------------------------------

#[test]
fn a_breaker_without_probes_is_an_error() {
    let mut p = policy("");
    p.breakers.get_mut("tool").unwrap().half_open_probes = 0;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.half_open_probes",
    );
    p.breakers.get_mut("tool").unwrap().half_open_probes = 1;
    assert_no(&check(&p), Code::OutOfRange);
}

#[test]
fn failure_rate_bounds_are_checked() {
    let mut p = policy("");
    p.breakers.get_mut("tool").unwrap().mode = BreakerMode::FailureRate {
        threshold_percent: 101,
        window_ms: 0,
        minimum_calls: 0,
    };
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.mode.threshold_percent",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.mode.window_ms",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.mode.minimum_calls",
    );
    p.breakers.get_mut("tool").unwrap().mode = BreakerMode::FailureRate {
        threshold_percent: 50,
        window_ms: 30_000,
        minimum_calls: 20,
    };
    assert!(check(&p).findings.is_empty());
}

#[test]
fn a_breaker_on_an_undeclared_dependency_is_an_error() {
    let mut p = policy("");
    let b = p.breakers["tool"].clone();
    p.breakers.insert("ghost".into(), b);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::UnknownDependency,
        "breakers.ghost",
    );
}

#[test]
fn a_model_or_tool_without_a_breaker_is_a_warning() {
    let mut p = policy("");
    p.breakers.remove("tool");
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::MissingBreaker,
        "breakers.tool",
    );
}

#[test]
fn a_forced_breaker_is_a_warning() {
    let mut p = policy("");
    p.breakers.get_mut("tool").unwrap().forced = ForcedState::Open;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::BreakerForced,
        "breakers.tool.forced",
    );
    p.breakers.get_mut("tool").unwrap().forced = ForcedState::None;
    assert_no(&check(&p), Code::BreakerForced);
}

#[test]
fn a_slow_call_threshold_at_the_timeout_is_a_warning() {
    let mut p = policy("");
    p.breakers.get_mut("tool").unwrap().slow_call = Some(SlowCall {
        threshold_ms: 2000,
        rate_percent: 50,
    });
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::SlowCallAboveTimeout,
        "breakers.tool.slow_call.threshold_ms",
    );
    p.breakers.get_mut("tool").unwrap().slow_call = Some(SlowCall {
        threshold_ms: 1500,
        rate_percent: 50,
    });
    assert_no(&check(&p), Code::SlowCallAboveTimeout);
}

// --- fallbacks and models -------------------------------------------------

fn row(component: &str, action: &str, allowed: bool) -> String {
    format!(
        "  - component: {component}\n    failure: any\n    fallback: {action}\n    degraded_status: degraded\n    user_message: Reduced.\n    allowed: {allowed}\n    confidence_penalty_percent: 10\n"
    )
}

#[test]
fn a_fallback_that_loses_grounding_is_an_error() {
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("search", "{ kind: model_memory }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackLosesGrounding,
        "fallbacks.0.fallback",
    );
    // Recorded as forbidden, it is documentation, not a fallback.
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("search", "{ kind: model_memory }", false)
    ));
    assert_no(&check(&p), Code::FallbackLosesGrounding);
}

#[test]
fn skipping_a_required_source_loses_grounding() {
    let sources = "retrieval:\n  sources:\n    policy: { dependency: search, required: true, on_failure: fail }\n";
    let p = policy(&format!(
        "{sources}fallbacks:\n{}",
        row("search", "{ kind: skip_step }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackLosesGrounding,
        "fallbacks.0.fallback",
    );
    let p = policy(&format!(
        "{sources}fallbacks:\n{}",
        row("search", "{ kind: explain_unavailable }", true)
    ));
    assert_no(&check(&p), Code::FallbackLosesGrounding);
}

#[test]
fn a_fallback_that_bypasses_authorization_is_an_error() {
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("search", "{ kind: skip_authorization }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackBypassesAuthorization,
        "fallbacks.0.fallback",
    );
    // Working around an identity outage is a bypass too.
    let p = policy(&format!(
        "fallbacks:\n{}",
        row(
            "identity",
            "{ kind: cached, max_staleness_ms: 60000 }",
            true
        )
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackBypassesAuthorization,
        "fallbacks.0.fallback",
    );
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("identity", "{ kind: refuse }", true)
    ));
    assert_no(&check(&p), Code::FallbackBypassesAuthorization);
}

#[test]
fn a_fallback_that_acts_without_approval_is_an_error() {
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("tool", "{ kind: proceed_without_approval }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackActsWithoutApproval,
        "fallbacks.0.fallback",
    );
    let p = policy(&format!(
        "fallbacks:\n{}",
        row(
            "approval",
            "{ kind: alternate_dependency, dependency: tool }",
            true
        )
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackActsWithoutApproval,
        "fallbacks.0.fallback",
    );
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("approval", "{ kind: pause }", true)
    ));
    assert_no(&check(&p), Code::FallbackActsWithoutApproval);
}

const MODELS: &str = "models:\n  primary: { model: big, dependency: model_provider, validated: true }\n  fallbacks:\n    - { model: other, dependency: backup_provider, validated: false }\n";

#[test]
fn a_high_tier_falling_back_to_an_unvalidated_model_is_an_error() {
    let mut p = policy(&format!(
        "{MODELS}fallbacks:\n{}",
        row(
            "model_provider",
            "{ kind: alternate_model, model: other }",
            true
        )
    ));
    assert_no(&check(&p), Code::UnvalidatedFallbackModel);
    for tier in [RiskTier::High, RiskTier::Regulated] {
        p.service.risk_tier = tier;
        let r = check(&p);
        assert_finding(
            &r,
            Severity::Error,
            Code::UnvalidatedFallbackModel,
            "models.fallbacks.0.validated",
        );
        assert_finding(
            &r,
            Severity::Error,
            Code::UnvalidatedFallbackModel,
            "fallbacks.0.fallback.model",
        );
    }
    p.models.as_mut().unwrap().fallbacks[0].validated = true;
    assert_no(&check(&p), Code::UnvalidatedFallbackModel);
}

#[test]
fn an_unvalidated_model_barred_from_the_tier_is_allowed() {
    let mut p = policy(MODELS);
    p.service.risk_tier = RiskTier::High;
    p.models.as_mut().unwrap().fallbacks[0].disallowed_risk_levels =
        vec![RiskTier::High, RiskTier::Regulated];
    assert_no(&check(&p), Code::UnvalidatedFallbackModel);
}

#[test]
fn a_fallback_to_an_unlisted_model_is_an_error() {
    let p = policy(&format!(
        "{MODELS}fallbacks:\n{}",
        row(
            "model_provider",
            "{ kind: alternate_model, model: nope }",
            true
        )
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::UnknownModel,
        "fallbacks.0.fallback.model",
    );
}

#[test]
fn two_allowed_rows_for_the_same_failure_are_an_error() {
    let p = policy(&format!(
        "fallbacks:\n{}{}",
        row("tool", "{ kind: queue }", true),
        row("tool", "{ kind: explain_unavailable }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::DuplicateFallback,
        "fallbacks.1",
    );
    let p = policy(&format!(
        "fallbacks:\n{}{}",
        row("tool", "{ kind: proceed_without_approval }", false),
        row("tool", "{ kind: explain_unavailable }", true)
    ));
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
}

#[test]
fn a_weaker_answer_labelled_normal_is_a_silent_fallback() {
    let mut p = policy(&format!(
        "fallbacks:\n{}",
        row("search", "{ kind: skip_step }", true)
    ));
    assert_no(&check(&p), Code::SilentFallback);
    p.fallbacks[0].degraded_status = DegradedStatus::Normal;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::SilentFallback,
        "fallbacks.0.degraded_status",
    );
}

#[test]
fn a_degraded_answer_without_a_message_is_a_warning() {
    let mut p = policy(&format!(
        "fallbacks:\n{}",
        row("search", "{ kind: skip_step }", true)
    ));
    p.fallbacks[0].user_message = None;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::MissingUserMessage,
        "fallbacks.0.user_message",
    );
}

#[test]
fn a_fallback_to_itself_is_an_error() {
    let p = policy(&format!(
        "fallbacks:\n{}",
        row(
            "search",
            "{ kind: alternate_dependency, dependency: search }",
            true
        )
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::FallbackToItself,
        "fallbacks.0.fallback.dependency",
    );
}

#[test]
fn an_unknown_fallback_component_is_a_warning() {
    let p = policy(&format!(
        "fallbacks:\n{}",
        row("nothing", "{ kind: refuse }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::UnknownComponent,
        "fallbacks.0.component",
    );
}

#[test]
fn a_model_on_a_non_model_dependency_is_a_warning() {
    let p = policy("models:\n  primary: { model: big, dependency: search, validated: true }\n");
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::DependencyKindMismatch,
        "models.primary.dependency",
    );
}

// --- bulkheads, limits, admission -----------------------------------------

#[test]
fn bulkhead_checks() {
    let mut p = policy(
        "bulkheads:\n  by_class:\n    partition: priority\n    max_concurrent: 10\n    max_queued: 10\n    queue_timeout_ms: 1000\n    overrides:\n      batch_eval: { max_concurrent: 2 }\n",
    );
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
    let b = p.bulkheads.get_mut("by_class").unwrap();
    b.overrides
        .insert("vip".into(), BulkheadOverride::default());
    b.max_concurrent = 0;
    b.queue_timeout_ms = 20_000;
    b.dependency = Some("ghost".into());
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Error,
        Code::UnknownPriorityClass,
        "bulkheads.by_class.overrides.vip",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "bulkheads.by_class.max_concurrent",
    );
    assert_finding(
        &r,
        Severity::Warning,
        Code::TimeoutExceedsBudget,
        "bulkheads.by_class.queue_timeout_ms",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::UnknownDependency,
        "bulkheads.by_class.dependency",
    );
}

#[test]
fn limit_checks() {
    let mut p = policy(
        "limits:\n  requests: { per_second: 10, burst: 20 }\n  cost_per_tenant_per_day_usd_micros: 1000000\n",
    );
    assert!(check(&p).findings.is_empty());
    let l = p.limits.as_mut().unwrap();
    l.requests = Some(RateLimit {
        per_second: 10,
        burst: 5,
    });
    l.cost_per_tenant_per_day_usd_micros = Some(0);
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Warning,
        Code::BurstBelowRate,
        "limits.requests.burst",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "limits.cost_per_tenant_per_day_usd_micros",
    );
}

fn trigger(modes: &str) -> String {
    format!(
        "admission:\n  triggers:\n    - id: busy\n      signal: {{ kind: queue_depth, above: 100 }}\n      modes: {modes}\n      user_message: Busy.\n"
    )
}

#[test]
fn shedding_safety_critical_work_is_an_error() {
    let p = policy(&trigger(
        "{ safety_critical: rejected, contractual: rejected, interactive: rejected, background: rejected, batch_eval: rejected, optional_enrichment: rejected }",
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::ShedsSafetyCritical,
        "admission.triggers.0.modes.safety_critical",
    );
    let p = policy(&trigger(
        "{ background: queued, batch_eval: rejected, optional_enrichment: rejected }",
    ));
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
}

#[test]
fn treating_a_more_important_class_worse_is_a_warning() {
    let p = policy(&trigger("{ interactive: rejected, batch_eval: degraded }"));
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::PriorityInversion,
        "admission.triggers.0.modes.interactive",
    );
}

#[test]
fn a_trigger_that_changes_nothing_is_a_warning() {
    let p = policy(&trigger("{}"));
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::TriggerWithoutEffect,
        "admission.triggers.0.modes",
    );
}

#[test]
fn a_cost_trigger_without_a_budget_is_a_warning() {
    let text = "admission:\n  triggers:\n    - id: spend\n      signal: { kind: cost_near_limit, percent: 90 }\n      modes: { batch_eval: degraded }\n";
    let p = policy(text);
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::MissingBudget,
        "admission.triggers.0.signal.percent",
    );
    let p = policy(&format!(
        "{text}limits: {{ cost_per_tenant_per_day_usd_micros: 5000000 }}\n"
    ));
    assert_no(&check(&p), Code::MissingBudget);
}

// --- AI policies ----------------------------------------------------------

#[test]
fn a_repair_loop_above_its_bound_is_an_error() {
    let mut p = policy("output_repair: { max_attempts: 4, on_failure: fail_safe }\n");
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::RepairAboveBound,
        "output_repair.max_attempts",
    );
    p.output_repair.as_mut().unwrap().max_attempts = 1;
    assert!(check(&p).findings.is_empty());
}

#[test]
fn repair_falling_back_needs_a_listed_validated_model() {
    let mut p = policy(&format!(
        "{MODELS}output_repair: {{ max_attempts: 1, on_failure: fallback }}\n"
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::MissingFallbackModel,
        "output_repair.fallback_model",
    );
    p.output_repair.as_mut().unwrap().fallback_model = Some("other".into());
    assert_no(&check(&p), Code::UnvalidatedFallbackModel);
    p.service.risk_tier = RiskTier::Regulated;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::UnvalidatedFallbackModel,
        "output_repair.fallback_model",
    );
}

#[test]
fn a_required_source_that_is_omitted_is_an_error() {
    let mut p = policy(
        "retrieval:\n  sources:\n    policy: { dependency: search, required: true, on_failure: omit }\n",
    );
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::RequiredSourceOmitted,
        "retrieval.sources.policy.on_failure",
    );
    p.retrieval
        .as_mut()
        .unwrap()
        .sources
        .get_mut("policy")
        .unwrap()
        .on_failure = SourceFailure::Fail;
    assert!(check(&p).findings.is_empty());
    // Omitting an optional source is fine.
    let p = policy(
        "retrieval:\n  sources:\n    extra: { dependency: search, required: false, on_failure: omit }\n",
    );
    assert!(check(&p).findings.is_empty());
}

#[test]
fn a_required_source_that_only_degrades_is_a_warning() {
    let p = policy(
        "retrieval:\n  sources:\n    policy: { dependency: search, required: true, on_failure: degrade, user_message: Partial. }\n",
    );
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::RequiredSourceDegrades,
        "retrieval.sources.policy.on_failure",
    );
}

#[test]
fn agent_node_fallback_cycles_are_an_error() {
    let text = "agent_nodes:\n  a: { required_for_completion: true, fallback_node: b }\n  b: { required_for_completion: true, fallback_node: a }\n  c: { required_for_completion: true, fallback_node: a }\n";
    let r = check(&policy(text));
    assert_finding(
        &r,
        Severity::Error,
        Code::FallbackCycle,
        "agent_nodes.a.fallback_node",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::FallbackCycle,
        "agent_nodes.b.fallback_node",
    );
    assert!(!r.contains(Code::FallbackCycle, "agent_nodes.c.fallback_node"));
    let p = policy(
        "agent_nodes:\n  a: { required_for_completion: true, fallback_node: b }\n  b: { required_for_completion: true }\n",
    );
    assert!(check(&p).findings.is_empty());
    let p = policy("agent_nodes:\n  a: { required_for_completion: true, fallback_node: zz }\n");
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::UnknownNode,
        "agent_nodes.a.fallback_node",
    );
}

#[test]
fn a_destructive_node_without_approval_is_an_error_at_high_risk() {
    let mut p = policy(
        "agent_nodes:\n  close_case: { effect: destructive, required_for_completion: true }\n",
    );
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::SideEffectWithoutApproval,
        "agent_nodes.close_case.requires_approval",
    );
    p.service.risk_tier = RiskTier::High;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::SideEffectWithoutApproval,
        "agent_nodes.close_case.requires_approval",
    );
    p.agent_nodes
        .get_mut("close_case")
        .unwrap()
        .requires_approval = true;
    assert!(check(&p).findings.is_empty());
}

#[test]
fn a_high_risk_side_effect_should_hand_off_to_a_person() {
    let mut p = policy(
        "agent_nodes:\n  write: { effect: write, required_for_completion: true, fallback_node: other }\n  other: { required_for_completion: false }\n",
    );
    p.service.risk_tier = RiskTier::High;
    assert_finding(
        &check(&p),
        Severity::Warning,
        Code::PreferHumanHandoff,
        "agent_nodes.write.human_handoff_on_failure",
    );
    p.agent_nodes
        .get_mut("write")
        .unwrap()
        .human_handoff_on_failure = true;
    assert_no(&check(&p), Code::PreferHumanHandoff);
}

const CACHE: &str = "cache:\n  key: [tenant, security_context, index_version, prompt_version, model_version, normalization_version]\n  ttl_ms_by_sensitivity: { public: 3600000, confidential: 60000 }\n";

#[test]
fn a_cache_key_missing_a_mandatory_part_is_an_error() {
    let mut p = policy(CACHE);
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
    p.cache
        .as_mut()
        .unwrap()
        .key
        .retain(|k| *k != CacheKeyPart::SecurityContext);
    let r = check(&p);
    assert_finding(&r, Severity::Error, Code::CacheKeyMissingPart, "cache.key");
    assert!(r.findings[0].message.contains("security_context"));
    assert_eq!(r.findings.len(), 1);
}

#[test]
fn stale_cache_for_high_risk_decisions_is_an_error() {
    let mut p = policy(CACHE);
    p.cache.as_mut().unwrap().stale_for_high_risk = true;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::StaleCacheForHighRisk,
        "cache.stale_for_high_risk",
    );
}

#[test]
fn cache_warnings() {
    let mut p = policy(CACHE);
    let c = p.cache.as_mut().unwrap();
    c.allow_stale = true;
    c.ttl_ms_by_sensitivity
        .insert(Sensitivity::Restricted, 7_200_000);
    c.invalidate_on_source_update = false;
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Warning,
        Code::StaleWithoutCaveat,
        "cache.stale_caveat",
    );
    assert_finding(
        &r,
        Severity::Warning,
        Code::TtlNotDecreasing,
        "cache.ttl_ms_by_sensitivity.restricted",
    );
    assert_finding(
        &r,
        Severity::Warning,
        Code::NoInvalidation,
        "cache.invalidate_on_source_update",
    );
}

#[test]
fn idempotency_checks() {
    let good = "idempotency:\n  operations:\n    send: { dependency: tool, key: [request_id, operation], on_payload_mismatch: reject, retention_ms: 60000 }\n";
    assert!(check(&policy(good)).findings.is_empty());
    let bad = "idempotency:\n  operations:\n    send: { dependency: tool, key: [tenant], on_payload_mismatch: replay_original, retention_ms: 0 }\n    other: { key: [], on_payload_mismatch: reject, retention_ms: 1 }\n";
    let r = check(&policy(bad));
    assert_finding(
        &r,
        Severity::Warning,
        Code::WeakIdempotencyKey,
        "idempotency.operations.send.key",
    );
    assert_finding(
        &r,
        Severity::Warning,
        Code::ReplayOnMismatch,
        "idempotency.operations.send.on_payload_mismatch",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::OutOfRange,
        "idempotency.operations.send.retention_ms",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::IdempotencyKeyEmpty,
        "idempotency.operations.other.key",
    );
}

// --- invariants and references --------------------------------------------

#[test]
fn a_fallback_that_contradicts_a_fail_closed_invariant_is_an_error() {
    let invariant = "invariants:\n  must_fail_closed:\n    - { id: no_tool_no_answer, component: tool, description: The tool's answer is needed. }\n";
    let p = policy(&format!(
        "{invariant}fallbacks:\n{}",
        row("tool", "{ kind: cached, max_staleness_ms: 1000 }", true)
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::InvariantContradicted,
        "fallbacks.0.fallback",
    );
    let p = policy(&format!(
        "{invariant}fallbacks:\n{}",
        row("tool", "{ kind: queue }", true)
    ));
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
}

#[test]
fn a_degrading_source_contradicts_a_fail_closed_invariant() {
    let invariant = "invariants:\n  must_fail_closed:\n    - { id: policy_needed, component: policy, description: Without policy there is no answer. }\n";
    let p = policy(&format!(
        "{invariant}retrieval:\n  sources:\n    policy: {{ dependency: search, required: false, on_failure: degrade, user_message: x }}\n"
    ));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::InvariantContradicted,
        "retrieval.sources.policy.on_failure",
    );
}

#[test]
fn a_component_that_both_fails_closed_and_degrades_is_a_conflict() {
    let p = policy(
        "invariants:\n  must_fail_closed:\n    - { id: a, component: search, description: x }\n  may_degrade:\n    - { id: b, component: search, description: y }\n",
    );
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::InvariantConflict,
        "invariants.may_degrade.0",
    );
    let p = policy(
        "invariants:\n  must_fail_closed:\n    - { id: a, component: search, failure: unavailable, description: x }\n  may_degrade:\n    - { id: b, component: search, failure: slow, description: y }\n",
    );
    assert_no(&check(&p), Code::InvariantConflict);
}

#[test]
fn must_not_do_kinds_are_checked_against_the_policy() {
    let nodes = "agent_nodes:\n  notify: { effect: destructive, requires_approval: true, required_for_completion: true }\n";
    let rules = "invariants:\n  must_not_do:\n    - { id: no_notice_degraded, kind: destructive_action_in_degraded_mode, description: x }\n    - { id: evidence, kind: hide_missing_evidence, description: y }\n    - { id: stale, kind: unlabeled_stale_data, description: z }\n";
    let sources = "retrieval:\n  sources:\n    extra: { dependency: search, required: false, on_failure: omit }\n";
    let cache = format!("{CACHE}  allow_stale: true\n");
    let mut p = policy(&format!("{nodes}{rules}{sources}{cache}"));
    let r = check(&p);
    assert_finding(
        &r,
        Severity::Error,
        Code::InvariantContradicted,
        "agent_nodes.notify.in_degraded_mode",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::InvariantContradicted,
        "retrieval.sources.extra.on_failure",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::InvariantContradicted,
        "cache.stale_caveat",
    );

    p.agent_nodes.get_mut("notify").unwrap().in_degraded_mode = DegradedModeAction::Hold;
    p.retrieval
        .as_mut()
        .unwrap()
        .sources
        .get_mut("extra")
        .unwrap()
        .on_failure = SourceFailure::Degrade;
    p.retrieval
        .as_mut()
        .unwrap()
        .sources
        .get_mut("extra")
        .unwrap()
        .user_message = Some("Partial.".into());
    p.cache.as_mut().unwrap().stale_caveat = Some("May be out of date.".into());
    assert!(check(&p).findings.is_empty(), "{:#?}", check(&p).findings);
}

#[test]
fn duplicate_invariant_ids_are_an_error() {
    let p = policy(
        "invariants:\n  must_not_do:\n    - { id: a, kind: other, description: x }\n    - { id: a, kind: other, description: y }\n",
    );
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::DuplicateName,
        "invariants.must_not_do.1.id",
    );
}

#[test]
fn unknown_alerts_and_runbooks_are_errors_once_they_are_known() {
    let mut p = policy("");
    let b = p.breakers.get_mut("tool").unwrap();
    b.alert = Some("tool-down".into());
    b.runbook = Some("tool-outage".into());
    // Without a list of known ids, nothing is checked.
    assert!(check(&p).findings.is_empty());
    let empty = ValidationContext::new()
        .with_alerts(Vec::<String>::new())
        .with_runbooks(Vec::<String>::new());
    let r = validate(&p, &empty);
    assert_finding(
        &r,
        Severity::Error,
        Code::UnknownAlert,
        "breakers.tool.alert",
    );
    assert_finding(
        &r,
        Severity::Error,
        Code::UnknownRunbook,
        "breakers.tool.runbook",
    );
    let known = ValidationContext::new()
        .with_alerts(["tool-down"])
        .with_runbooks(["tool-outage"]);
    assert!(validate(&p, &known).findings.is_empty());
}

#[test]
fn names_that_would_break_paths_are_an_error() {
    let mut p = policy("");
    let dep = p.service.dependencies["tool"].clone();
    p.service.dependencies.insert("my.tool".into(), dep);
    p.timeouts
        .as_mut()
        .unwrap()
        .dependencies
        .insert("my.tool".into(), 100);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::InvalidName,
        "service.dependencies.my.tool",
    );
    p.service.owner = " ".into();
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::EmptyField,
        "service.owner",
    );
}

#[test]
fn report_helpers() {
    let mut p = policy("");
    p.breakers.get_mut("tool").unwrap().forced = ForcedState::Closed;
    let r = check(&p);
    assert!(!r.has_errors());
    assert_eq!(r.warnings().count(), 1);
    p.breakers.get_mut("tool").unwrap().half_open_probes = 0;
    let r = check(&p);
    assert!(r.has_errors());
    assert_eq!(r.errors().count(), 1);
}

#[test]
fn an_override_end_needs_an_override_and_a_sane_time() {
    let mut p = policy("");
    let b = p.breakers.get_mut("tool").unwrap();
    b.forced_until_ms = Some(1_800_000_000_000);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.forced_until_ms",
    );
    let b = p.breakers.get_mut("tool").unwrap();
    b.forced = crate::policy::ForcedState::Open;
    b.forced_reason = Some("INC-1".into());
    // Only the warning that a required dependency is forced open.
    assert!(!check(&p).has_errors(), "{:?}", check(&p).findings);
    p.breakers.get_mut("tool").unwrap().forced_until_ms = Some(-5);
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.forced_until_ms",
    );
    let b = p.breakers.get_mut("tool").unwrap();
    b.forced_until_ms = None;
    b.forced_reason = Some("x".repeat(501));
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "breakers.tool.forced_reason",
    );
}

const OBJECTIVES: &str = r#"
goals:
  objectives:
    - id: answer-latency
      indicator: { kind: latency, threshold_ms: 5000 }
      target_bp: 9500
    - id: available
      indicator: { kind: availability, allowed: [degraded, partial] }
      target_bp: 9950
      window_days: 28
    - id: full-quality
      indicator: { kind: quality }
      target_bp: 9000
      window_days: 7
    - id: no-leak
      indicator: { kind: safety, violation: unauthorized_retrieval }
      target_bp: 10000
  canary: { max_burn_ratio_percent: 200, min_requests: 50, bake_minutes: 10, auto_promote: true }
"#;

#[test]
fn well_formed_objectives_have_no_findings() {
    let p = policy(OBJECTIVES);
    assert!(check(&p).findings.is_empty(), "{:?}", check(&p).findings);
    let o = &p.goals.as_ref().unwrap().objectives;
    assert_eq!(o[0].window_days, 28, "the default window is 28 days");
    assert_eq!(o[3].indicator.kind(), "safety");
}

#[test]
fn a_latency_bound_between_histogram_buckets_is_an_error() {
    let mut p = policy(OBJECTIVES);
    p.goals.as_mut().unwrap().objectives[0].indicator = Indicator::Latency { threshold_ms: 4000 };
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "goals.objectives.0.indicator.threshold_ms",
    );
}

#[test]
fn a_target_that_leaves_no_budget_is_an_error_and_safety_must_be_absolute() {
    let mut p = policy(OBJECTIVES);
    p.goals.as_mut().unwrap().objectives[1].target_bp = 10_000;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "goals.objectives.1.target_bp",
    );
    let mut p = policy(OBJECTIVES);
    p.goals.as_mut().unwrap().objectives[3].target_bp = 9_999;
    assert_finding(
        &check(&p),
        Severity::Error,
        Code::OutOfRange,
        "goals.objectives.3.target_bp",
    );
}

#[test]
fn refused_never_counts_as_available_and_ids_are_unique() {
    let mut p = policy(OBJECTIVES);
    let goals = p.goals.as_mut().unwrap();
    goals.objectives[1].indicator = Indicator::Availability {
        allowed: vec![DegradedStatus::Refused],
    };
    goals.objectives[2].id = "available".into();
    goals.objectives[2].window_days = 91;
    let report = check(&p);
    assert_finding(
        &report,
        Severity::Error,
        Code::GoalInconsistent,
        "goals.objectives.1.indicator.allowed.0",
    );
    assert_finding(
        &report,
        Severity::Error,
        Code::DuplicateName,
        "goals.objectives.2.id",
    );
    assert_finding(
        &report,
        Severity::Error,
        Code::OutOfRange,
        "goals.objectives.2.window_days",
    );
}

#[test]
fn canary_analysis_bounds_are_checked() {
    let mut p = policy(OBJECTIVES);
    let canary = p.goals.as_mut().unwrap().canary.as_mut().unwrap();
    canary.max_burn_ratio_percent = 50;
    canary.min_requests = 0;
    canary.bake_minutes = 0;
    let report = check(&p);
    for field in ["max_burn_ratio_percent", "min_requests", "bake_minutes"] {
        assert_finding(
            &report,
            Severity::Error,
            Code::OutOfRange,
            &format!("goals.canary.{field}"),
        );
    }
}

#[test]
fn objective_runbooks_are_checked_like_every_other_reference() {
    let mut p = policy(OBJECTIVES);
    p.goals.as_mut().unwrap().objectives[0].runbook = Some("nope".into());
    let report = validate(&p, &ValidationContext::new().with_runbooks(["other"]));
    assert_finding(
        &report,
        Severity::Error,
        Code::UnknownRunbook,
        "goals.objectives.0.runbook",
    );
}
