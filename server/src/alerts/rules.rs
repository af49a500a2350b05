//! Alert rules: written whole (`PUT` creates or replaces), checked field by
//! field, audited. The runbook is required and must exist.

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AlertRuleRow, AuditRecord};
use serde_json::json;
use shared::api::{AlertMetric, AlertRuleView, AlertRuleWrite, Comparison};

const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 500;
const MAX_SCOPE: usize = 100;
/// The shortest window: the rollups' resolution.
pub const MIN_WINDOW_S: u32 = 60;
/// The longest window a rule may have.
pub const MAX_WINDOW_S: u32 = 86_400;
/// The longest a condition may have to hold before firing.
pub const MAX_FOR_S: u32 = 86_400;
const MAX_NOTIFY: usize = 20;

/// Checks a rule's name: the same shape as a runbook's slug, since policies
/// name rules in their `alert` fields.
pub fn check_name(name: &str) -> ApiResult<()> {
    crate::fields::slug("name", name, MAX_NAME, "a rule's name")
}

/// The range a threshold of `metric` can meaningfully take.
fn threshold_range(metric: AlertMetric) -> (f64, f64, &'static str) {
    match metric {
        AlertMetric::ErrorRate
        | AlertMetric::TimeoutRate
        | AlertMetric::FallbackRate
        | AlertMetric::DegradedRate
        | AlertMetric::ShedRate
        | AlertMetric::RepairRate => (0.0, 1.0, "a share of calls, from 0 to 1"),
        AlertMetric::RetryAmplification => (1.0, 100.0, "attempts per call, from 1 to 100"),
        AlertMetric::CostBudget => (0.0, 10.0, "a share of the daily budget, from 0 to 10"),
        AlertMetric::BreakerOpen | AlertMetric::DlqDepth | AlertMetric::DlqGrowth => {
            (0.0, 1e12, "a count, 0 or more")
        }
        AlertMetric::DlqOldestAge => (0.0, 1e9, "seconds, 0 or more"),
        AlertMetric::SloBurnFast | AlertMetric::SloBurnMedium | AlertMetric::SloBurnSlow => {
            (0.0, 1e6, "a burn rate, 0 or more")
        }
        AlertMetric::SafetyViolations | AlertMetric::CanaryAborted => {
            (0.0, 1e12, "a count, 0 or more")
        }
    }
}

/// The prefix of the rules Ballast generates from policies' objectives
/// (see `crate::objectives::rules`). People cannot write or delete them:
/// they change with the policy.
pub const GENERATED_PREFIX: &str = "slo-";

fn refuse_generated(name: &str) -> ApiResult<()> {
    if name.starts_with(GENERATED_PREFIX) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "generated_rule",
            format!(
                "rules named `{GENERATED_PREFIX}…` are generated from a policy's objectives; change goals.objectives in the policy instead"
            ),
        ));
    }
    Ok(())
}

/// Checks everything about a rule but whether its runbook and webhooks
/// exist (that needs the store).
pub fn check(rule: &AlertRuleWrite) -> ApiResult<()> {
    if rule.metric.from_objectives() || rule.objective.is_some() {
        return Err(ApiError::invalid(
            "metric",
            "burn-rate and safety rules are generated from a policy's objectives (goals.objectives), not written by hand",
        ));
    }
    crate::fields::text("description", &rule.description, MAX_DESCRIPTION, false)?;
    crate::fields::word("scope.service", rule.scope.service.as_deref(), MAX_SCOPE)?;
    crate::fields::word(
        "scope.environment",
        rule.scope.environment.as_deref(),
        MAX_SCOPE,
    )?;
    crate::fields::word(
        "scope.dependency",
        rule.scope.dependency.as_deref(),
        MAX_SCOPE,
    )?;
    if rule.scope.dependency.is_some() && !rule.metric.per_dependency() {
        return Err(ApiError::invalid(
            "scope.dependency",
            format!(
                "{} is computed per service, not per dependency",
                rule.metric.as_str()
            ),
        ));
    }
    let (lo, hi, unit) = threshold_range(rule.metric);
    if !rule.threshold.is_finite() || rule.threshold < lo || rule.threshold > hi {
        return Err(ApiError::invalid(
            "threshold",
            format!("{} is {unit}", rule.metric.as_str()),
        ));
    }
    if rule.comparison == Comparison::Below && rule.threshold <= lo {
        return Err(ApiError::invalid(
            "threshold",
            "nothing is below this threshold, so the rule could never fire",
        ));
    }
    if !(MIN_WINDOW_S..=MAX_WINDOW_S).contains(&rule.window_s) {
        return Err(ApiError::invalid(
            "window_s",
            format!("must be from {MIN_WINDOW_S} to {MAX_WINDOW_S} seconds"),
        ));
    }
    if rule.for_s > MAX_FOR_S {
        return Err(ApiError::invalid(
            "for_s",
            format!("must be at most {MAX_FOR_S} seconds"),
        ));
    }
    if rule.runbook.trim().is_empty() {
        return Err(ApiError::invalid(
            "runbook",
            "every alert rule needs a runbook: what should the person it wakes do?",
        ));
    }
    if rule.notify.len() > MAX_NOTIFY {
        return Err(ApiError::invalid(
            "notify",
            format!("at most {MAX_NOTIFY} webhooks"),
        ));
    }
    Ok(())
}

/// Whether `rule` watches `service`: each part of its scope left out
/// matches every service.
pub fn applies_to(rule: &AlertRuleWrite, service: &crate::store::ServiceRow) -> bool {
    rule.scope
        .service
        .as_ref()
        .is_none_or(|s| *s == service.name)
        && rule
            .scope
            .environment
            .as_ref()
            .is_none_or(|e| *e == service.environment)
}

/// Reads a stored rule's definition.
pub fn definition(row: &AlertRuleRow) -> ApiResult<AlertRuleWrite> {
    serde_json::from_str(&row.definition)
        .map_err(|e| ApiError::internal(&format!("stored alert rule {}: {e}", row.name)))
}

fn view(row: &AlertRuleRow) -> ApiResult<AlertRuleView> {
    Ok(AlertRuleView {
        name: row.name.clone(),
        rule: definition(row)?,
        builtin: row.builtin != 0,
        updated_by: row.updated_by.clone(),
        updated_at_ms: row.updated_at,
    })
}

/// Every rule, by name.
pub async fn list(app: &App) -> ApiResult<Vec<AlertRuleView>> {
    app.store.alert_rules().await?.iter().map(view).collect()
}

/// One rule.
pub async fn get(app: &App, name: &str) -> ApiResult<AlertRuleView> {
    let row = app
        .store
        .alert_rule(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert rule `{name}`")))?;
    view(&row)
}

/// Creates or replaces a rule. Returns whether it was created.
pub async fn put(
    app: &App,
    user: &UserPrincipal,
    name: &str,
    mut rule: AlertRuleWrite,
) -> ApiResult<(bool, AlertRuleView)> {
    check_name(name)?;
    refuse_generated(name)?;
    check(&rule)?;
    rule.runbook = rule.runbook.trim().to_owned();
    let runbooks = app.store.runbook_slugs().await?;
    if !runbooks.contains(&rule.runbook) {
        return Err(ApiError::invalid(
            "runbook",
            format!("there is no runbook `{}`; write it first", rule.runbook),
        ));
    }
    let webhooks = app.store.webhook_ids().await?;
    for (i, id) in rule.notify.iter().enumerate() {
        if !webhooks.contains(id) {
            return Err(ApiError::invalid(
                format!("notify[{i}]"),
                format!("there is no webhook `{id}`"),
            ));
        }
    }
    rule.notify.sort();
    rule.notify.dedup();
    let document = serde_json::to_string(&rule).map_err(|e| ApiError::internal(&e))?;
    let created = app
        .store
        .put_alert_rule(
            name,
            &document,
            &rule.runbook,
            rule.enabled,
            &user.actor(),
            app.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "alert_rule.put",
                format!("alert_rule:{name}"),
                json!({ "rule": rule }),
            ),
        )
        .await?;
    Ok((created, get(app, name).await?))
}

/// Deletes a rule, with its alerts' history.
pub async fn delete(app: &App, user: &UserPrincipal, name: &str) -> ApiResult<()> {
    refuse_generated(name)?;
    let gone = app
        .store
        .delete_alert_rule(
            name,
            app.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "alert_rule.delete",
                format!("alert_rule:{name}"),
                json!({}),
            ),
        )
        .await?;
    if gone {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no alert rule `{name}`")))
    }
}
