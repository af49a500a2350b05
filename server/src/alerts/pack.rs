//! The built-in alert rules: one per reliability metric of the domain
//! reference, each pointing at a runbook of the built-in library.
//! Thresholds are starting points for a service taking real traffic; teams
//! tune them (an edit replaces the rule) or disable them.

use crate::store::{Store, StoreError, StoreResult};
use shared::api::{AlertMetric, AlertRuleWrite, AlertScope, Comparison, Severity};

/// One built-in rule's parts.
struct Builtin {
    name: &'static str,
    description: &'static str,
    metric: AlertMetric,
    threshold: f64,
    window_s: u32,
    for_s: u32,
    severity: Severity,
    runbook: &'static str,
}

const PACK: &[Builtin] = &[
    Builtin {
        name: "breaker-open",
        description: "A circuit breaker is open and refusing calls to a dependency.",
        metric: AlertMetric::BreakerOpen,
        threshold: 0.0,
        window_s: 120,
        for_s: 0,
        severity: Severity::Page,
        runbook: "ai-reliability-incident",
    },
    Builtin {
        name: "timeout-rate-high",
        description: "More than one call in ten to a dependency times out.",
        metric: AlertMetric::TimeoutRate,
        threshold: 0.1,
        window_s: 300,
        for_s: 120,
        severity: Severity::Page,
        runbook: "ai-reliability-incident",
    },
    Builtin {
        name: "fallback-rate-high",
        description: "More than one call in five to a dependency is answered by a fallback.",
        metric: AlertMetric::FallbackRate,
        threshold: 0.2,
        window_s: 300,
        for_s: 120,
        severity: Severity::Ticket,
        runbook: "retrieval-degraded",
    },
    Builtin {
        name: "degraded-rate-high",
        description: "More than one response in ten is degraded.",
        metric: AlertMetric::DegradedRate,
        threshold: 0.1,
        window_s: 300,
        for_s: 120,
        severity: Severity::Page,
        runbook: "retrieval-degraded",
    },
    Builtin {
        name: "retry-amplification",
        description: "Calls take more than 1.5 attempts on average: retries are adding load.",
        metric: AlertMetric::RetryAmplification,
        threshold: 1.5,
        window_s: 300,
        for_s: 120,
        severity: Severity::Ticket,
        runbook: "retry-storm",
    },
    Builtin {
        name: "shed-rate-high",
        description: "More than one call in twenty is shed or refused by a bulkhead.",
        metric: AlertMetric::ShedRate,
        threshold: 0.05,
        window_s: 300,
        for_s: 60,
        severity: Severity::Page,
        runbook: "load-shedding",
    },
    Builtin {
        name: "repair-rate-high",
        description: "More than one model output in ten needs repair to pass validation.",
        metric: AlertMetric::RepairRate,
        threshold: 0.1,
        window_s: 900,
        for_s: 300,
        severity: Severity::Ticket,
        runbook: "structured-output-failures",
    },
    Builtin {
        name: "cost-budget-near-limit",
        description: "Today's spend has passed 80% of the daily cost budget.",
        metric: AlertMetric::CostBudget,
        threshold: 0.8,
        window_s: 60,
        for_s: 0,
        severity: Severity::Ticket,
        runbook: "cost-budget",
    },
    Builtin {
        name: "dlq-growth",
        description: "More than 20 tasks were dead-lettered in 15 minutes.",
        metric: AlertMetric::DlqGrowth,
        threshold: 20.0,
        window_s: 900,
        for_s: 0,
        severity: Severity::Ticket,
        runbook: "dlq-growth",
    },
    Builtin {
        name: "dlq-oldest-age",
        description: "A dead letter has waited for more than an hour.",
        metric: AlertMetric::DlqOldestAge,
        threshold: 3600.0,
        window_s: 60,
        for_s: 0,
        severity: Severity::Ticket,
        runbook: "dlq-growth",
    },
];

/// The pack's rules, by name.
pub fn rules() -> Vec<(&'static str, AlertRuleWrite)> {
    PACK.iter()
        .map(|b| {
            (
                b.name,
                AlertRuleWrite {
                    description: b.description.to_owned(),
                    metric: b.metric,
                    scope: AlertScope::default(),
                    comparison: Comparison::Above,
                    threshold: b.threshold,
                    window_s: b.window_s,
                    for_s: b.for_s,
                    severity: b.severity,
                    runbook: b.runbook.to_owned(),
                    min_calls: 20,
                    notify: Vec::new(),
                    enabled: true,
                    objective: None,
                },
            )
        })
        .collect()
}

/// Stores each rule of the pack that does not exist yet. Runs at every
/// start after the runbook library (the rules point at it); a rule that
/// exists, edited or not, is kept.
pub async fn seed(store: &Store, now_ms: i64) -> StoreResult<()> {
    for (name, rule) in rules() {
        let definition = serde_json::to_string(&rule)
            .map_err(|e| StoreError::Corrupt(format!("built-in alert rule {name}: {e}")))?;
        store
            .seed_alert_rule(name, &definition, &rule.runbook, now_ms)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_rule_is_valid_and_names_a_library_runbook() {
        let library: Vec<&str> = crate::runbooks::library::LIBRARY
            .iter()
            .map(|b| b.slug)
            .collect();
        for (name, rule) in rules() {
            crate::alerts::rules::check_name(name).unwrap();
            crate::alerts::rules::check(&rule).unwrap();
            assert!(library.contains(&rule.runbook.as_str()), "{name}");
        }
    }
}
