//! The alert rules generated from each service's objectives: three
//! multi-window burn-rate rules per objective (the SRE workbook's: 2 % of
//! the budget in an hour or 5 % in six hours pages, 10 % in three days is a
//! ticket; each also over a short window, so an alert ends soon after the
//! burn does), one rule per safety goal that fires on the first violation,
//! and one per service whose canary is analysed, which fires when a canary
//! is aborted automatically.
//!
//! They are ordinary rules in the alert engine (history, silences,
//! acknowledgement and webhooks all apply), kept in step with the active
//! policies by [`sync`] before each evaluation, under reserved names.

use super::{Buckets, DEFAULT_RUNBOOK, over, runbook_of};
use crate::alerts::metrics::Sample;
use crate::alerts::rules::GENERATED_PREFIX;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, ServiceRow};
use serde_json::json;
use shared::api::{AlertMetric, AlertRuleWrite, AlertScope, Comparison, Severity};
use shared::policy::{Goals, Indicator, Objective};
use std::collections::BTreeMap;

/// Who the audit log names for a generated rule's change.
const ACTOR: &str = "ballast:objectives";

/// A burn-rate rule's windows and threshold: the share of the budget that
/// may burn in the long window before it alerts.
struct Speed {
    metric: AlertMetric,
    suffix: &'static str,
    long_s: u32,
    short_s: u32,
    budget_share: f64,
    severity: Severity,
}

const SPEEDS: [Speed; 3] = [
    Speed {
        metric: AlertMetric::SloBurnFast,
        suffix: "fast",
        long_s: 3_600,
        short_s: 300,
        budget_share: 0.02,
        severity: Severity::Page,
    },
    Speed {
        metric: AlertMetric::SloBurnMedium,
        suffix: "medium",
        long_s: 21_600,
        short_s: 1_800,
        budget_share: 0.05,
        severity: Severity::Page,
    },
    Speed {
        metric: AlertMetric::SloBurnSlow,
        suffix: "slow",
        long_s: 259_200,
        short_s: 21_600,
        budget_share: 0.10,
        severity: Severity::Ticket,
    },
];

/// How far back a safety rule and the canary rule look, in seconds.
const RECENT_S: u32 = 1_800;

fn speed_of(metric: AlertMetric) -> Option<&'static Speed> {
    SPEEDS.iter().find(|s| s.metric == metric)
}

/// The burn rate at which `share` of a `window_days` budget burns in
/// `long_s`: 2 % of a 30-day budget in an hour is 14.4.
fn threshold(window_days: u32, long_s: u32, share: f64) -> f64 {
    let window_s = f64::from(window_days) * 86_400.0;
    // Two decimals: the figure is shown to people, and a hundredth of a
    // burn rate changes nothing.
    (share * window_s / f64::from(long_s) * 100.0).round() / 100.0
}

/// A generated rule on `service`'s scope; the callers fill in what it
/// watches and when it fires.
fn scoped(
    service: &ServiceRow,
    metric: AlertMetric,
    severity: Severity,
    runbook: String,
) -> AlertRuleWrite {
    AlertRuleWrite {
        description: String::new(),
        metric,
        scope: AlertScope {
            service: Some(service.name.clone()),
            environment: Some(service.environment.clone()),
            dependency: None,
        },
        comparison: Comparison::Above,
        threshold: 0.0,
        window_s: RECENT_S,
        for_s: 0,
        severity,
        runbook,
        min_calls: 0,
        notify: Vec::new(),
        enabled: true,
        objective: None,
    }
}

/// The rules `goals` asks for on `service`, by name.
pub fn generated(service: &ServiceRow, goals: &Goals) -> BTreeMap<String, AlertRuleWrite> {
    let base = format!("{GENERATED_PREFIX}{}-{}", service.name, service.environment);
    let mut out = BTreeMap::new();
    for o in &goals.objectives {
        if let Indicator::Safety { violation } = o.indicator {
            out.insert(
                format!("{base}-{}", o.id),
                AlertRuleWrite {
                    description: format!(
                        "Any {} on {}/{} (safety goal {})",
                        violation.label().to_lowercase(),
                        service.name,
                        service.environment,
                        o.id
                    ),
                    objective: Some(o.id.clone()),
                    ..scoped(
                        service,
                        AlertMetric::SafetyViolations,
                        Severity::Page,
                        runbook_of(o),
                    )
                },
            );
            continue;
        }
        for s in &SPEEDS {
            let limit = threshold(o.window_days, s.long_s, s.budget_share);
            out.insert(
                format!("{base}-{}-{}", o.id, s.suffix),
                AlertRuleWrite {
                    description: format!(
                        "{} of the {} budget of {}/{} burning in {} h (burn rate above {limit:.2} over {} h and {} min)",
                        percent(s.budget_share),
                        o.id,
                        service.name,
                        service.environment,
                        s.long_s / 3600,
                        s.long_s / 3600,
                        s.short_s / 60
                    ),
                    threshold: limit,
                    window_s: s.long_s,
                    objective: Some(o.id.clone()),
                    ..scoped(service, s.metric, s.severity, runbook_of(o))
                },
            );
        }
    }
    if goals.canary.is_some() {
        out.insert(
            format!("{base}-canary"),
            AlertRuleWrite {
                description: format!(
                    "A canary of {}/{} was rolled back by the canary analysis",
                    service.name, service.environment
                ),
                ..scoped(
                    service,
                    AlertMetric::CanaryAborted,
                    Severity::Page,
                    DEFAULT_RUNBOOK.to_owned(),
                )
            },
        );
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// Brings the stored generated rules in line with the active policies:
/// creates and updates what they ask for and deletes the rest, each change
/// audited. Returns the number of rules changed.
pub async fn sync(app: &App, services: &[ServiceRow], now: i64) -> ApiResult<usize> {
    let mut desired: BTreeMap<String, AlertRuleWrite> = BTreeMap::new();
    for service in services {
        if let Some(active) = &app.hub.snapshot(service.id).await?.active {
            desired.extend(generated(service, &active.goals));
        }
    }
    let stored: BTreeMap<String, String> = app
        .store
        .alert_rules()
        .await?
        .into_iter()
        .filter(|r| r.name.starts_with(GENERATED_PREFIX))
        .map(|r| (r.name, r.definition))
        .collect();
    let mut changed = 0;
    for (name, rule) in &desired {
        let document = serde_json::to_string(rule).map_err(|e| ApiError::internal(&e))?;
        if stored.get(name) == Some(&document) {
            continue;
        }
        app.store
            .put_alert_rule(
                name,
                &document,
                &rule.runbook,
                true,
                ACTOR,
                now,
                &AuditRecord::new(
                    ACTOR,
                    "alert_rule.generate",
                    format!("alert_rule:{name}"),
                    json!({ "rule": rule }),
                ),
            )
            .await?;
        changed += 1;
    }
    for name in stored.keys().filter(|n| !desired.contains_key(*n)) {
        app.store
            .delete_alert_rule(
                name,
                now,
                &AuditRecord::new(
                    ACTOR,
                    "alert_rule.retire",
                    format!("alert_rule:{name}"),
                    json!({ "why": "its objective left the active policy" }),
                ),
            )
            .await?;
        changed += 1;
    }
    Ok(changed)
}

/// A service's buckets for the generated rules: hourly over the longest
/// burn window, minutes over the last six hours.
pub struct Inputs {
    /// The active policy's goals.
    pub goals: Goals,
    /// Hourly buckets.
    pub hours: Buckets,
    /// Minute buckets.
    pub minutes: Buckets,
    /// Automatic aborts: (when, why), newest first.
    pub aborts: Vec<(i64, String)>,
}

impl Inputs {
    /// Reads what `service`'s generated rules need at `now`.
    pub async fn read(app: &App, service: &ServiceRow, now: i64) -> ApiResult<Option<Inputs>> {
        let Some(active) = app.hub.snapshot(service.id).await?.active.clone() else {
            return Ok(None);
        };
        if active.goals.objectives.is_empty() && active.goals.canary.is_none() {
            return Ok(None);
        }
        let (hours, minutes) = super::read(app, service.id, super::longest_burn_ms(), now).await?;
        // Only a service whose canaries are analysed has a canary rule.
        let aborts = if active.goals.canary.is_some() {
            app.store
                .canary_verdicts(service.id, 5)
                .await?
                .into_iter()
                .filter(|v| v.decision == "aborted")
                .map(|v| (v.decided_at, v.reason))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(Inputs {
            goals: active.goals.clone(),
            hours,
            minutes,
            aborts,
        }))
    }

    fn objective(&self, id: &str) -> Option<&Objective> {
        self.goals.objectives.iter().find(|o| o.id == id)
    }

    /// The value of a generated rule at `now`.
    pub fn sample(&self, rule: &AlertRuleWrite, service_id: i64, now: i64) -> Option<Sample> {
        let sample = |value: f64, calls: u64, note: Option<String>| Sample {
            service_id,
            dependency: String::new(),
            value,
            calls: i64::try_from(calls).unwrap_or(i64::MAX),
            note,
        };
        if rule.metric == AlertMetric::CanaryAborted {
            let since = now - i64::from(rule.window_s) * 1000;
            let recent: Vec<&(i64, String)> =
                self.aborts.iter().filter(|(at, _)| *at >= since).collect();
            return Some(sample(
                recent.len() as f64,
                0,
                recent.first().map(|(_, why)| why.clone()),
            ));
        }
        let o = self.objective(rule.objective.as_deref()?)?;
        if rule.metric == AlertMetric::SafetyViolations {
            let t = over(
                o,
                now,
                i64::from(rule.window_s) * 1000,
                &self.hours,
                &self.minutes,
            );
            return Some(sample(t.violations as f64, t.valid, None));
        }
        let speed = speed_of(rule.metric)?;
        let long = over(
            o,
            now,
            i64::from(speed.long_s) * 1000,
            &self.hours,
            &self.minutes,
        );
        let short = over(
            o,
            now,
            i64::from(speed.short_s) * 1000,
            &self.hours,
            &self.minutes,
        );
        // Both windows must burn: the lower of the two is what crosses.
        let value = long.burn(o).min(short.burn(o));
        let note = format!(
            "{}: burning the {} budget at {:.1}x over {} h and {:.1}x over {} min (alerts above {:.2}x; {} days' budget)",
            rule.metric.label(),
            o.id,
            long.burn(o),
            speed.long_s / 3600,
            short.burn(o),
            speed.short_s / 60,
            rule.threshold,
            o.window_days
        );
        Some(sample(value, long.valid, Some(note)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_workbooks_for_a_30_day_window() {
        assert_eq!(threshold(30, 3_600, 0.02), 14.4);
        assert_eq!(threshold(30, 21_600, 0.05), 6.0);
        assert_eq!(threshold(30, 259_200, 0.10), 1.0);
        // And scale with the window: 28 days.
        assert_eq!(threshold(28, 3_600, 0.02), 13.44);
        assert_eq!(threshold(28, 259_200, 0.10), 0.93);
    }
}
