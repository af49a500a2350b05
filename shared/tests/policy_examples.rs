//! The example policies shipped under `examples/policies/` parse, validate
//! without findings, and survive a round trip through both formats.

use shared::policy::{Policy, RiskTier, ValidationContext};

const RAG_ANSWER: &str = include_str!("../../examples/policies/rag-answer.yaml");
const CASE_REVIEW: &str = include_str!("../../examples/policies/case-review-agent.yaml");

fn examples() -> [(&'static str, &'static str); 2] {
    [
        ("rag-answer", RAG_ANSWER),
        ("case-review-agent", CASE_REVIEW),
    ]
}

/// The alert rules and runbooks the examples reference, as the server would
/// know them once they exist.
fn context() -> ValidationContext {
    ValidationContext::new()
        .with_alerts([
            "model-provider-breaker-open",
            "policy-index-breaker-open",
            "case-record-breaker-open",
            "approval-service-breaker-open",
        ])
        .with_runbooks([
            "ai-reliability-incident",
            "case-record-outage",
            "approval-service-outage",
            "safety-goal-violated",
        ])
}

#[test]
fn examples_validate_without_findings() {
    for (name, text) in examples() {
        let policy = Policy::from_yaml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(policy.service.name, name);
        let report = policy.validate(&context());
        assert!(
            report.findings.is_empty(),
            "{name} has findings: {:#?}",
            report.findings
        );
    }
}

#[test]
fn examples_round_trip_through_json_and_yaml() {
    for (name, text) in examples() {
        let policy = Policy::from_yaml(text).unwrap();
        let json = policy.to_json().unwrap();
        assert_eq!(Policy::from_json(&json).unwrap(), policy, "{name} via JSON");
        let yaml = policy.to_yaml().unwrap();
        assert_eq!(Policy::from_yaml(&yaml).unwrap(), policy, "{name} via YAML");
    }
}

#[test]
fn rag_answer_carries_the_stage_table_matrix_and_goals() {
    let policy = Policy::from_yaml(RAG_ANSWER).unwrap();
    let timeouts = policy.timeouts.as_ref().unwrap();
    let stages: Vec<(&str, u64)> = timeouts
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.budget_ms))
        .collect();
    assert_eq!(
        stages,
        [
            ("api_auth", 200),
            ("query_planning", 300),
            ("embedding", 500),
            ("retrieval", 700),
            ("reranking", 1000),
            ("generation", 5000),
            ("validation", 800),
            ("response_formatting", 100),
        ]
    );
    assert_eq!(timeouts.total_ms, 8600);
    let goals = policy.goals.as_ref().unwrap();
    assert_eq!(goals.p95_latency_ms, Some(5000));
    assert_eq!(goals.timeout_ms, Some(10_000));
    assert_eq!(goals.availability_bp, Some(9950));
    assert!(policy.fallbacks.len() >= 8);
    assert_eq!(policy.service.risk_tier, RiskTier::High);
}

#[test]
fn case_review_carries_the_three_invariant_lists() {
    let policy = Policy::from_yaml(CASE_REVIEW).unwrap();
    let inv = policy.invariants.as_ref().unwrap();
    assert_eq!(inv.must_fail_closed.len(), 5);
    assert_eq!(inv.may_degrade.len(), 4);
    assert_eq!(inv.must_not_do.len(), 5);
    assert_eq!(policy.service.risk_tier, RiskTier::Regulated);
}
