//! The service header, the goals and the timeout budget.

use super::{Checker, Code};
use crate::policy::{DegradedStatus, Indicator, MAX_WINDOW_DAYS};
use crate::protocol::LATENCY_BUCKETS_MS;
use std::collections::BTreeSet;

pub(super) fn check(c: &mut Checker<'_>) {
    service(c);
    goals(c);
    objectives(c);
    timeouts(c);
}

fn service(c: &mut Checker<'_>) {
    let s = &c.policy.service;
    c.name("service.name", "the service name", &s.name);
    c.name("service.environment", "the environment", &s.environment);
    if s.owner.trim().is_empty() {
        c.error(
            "service.owner",
            Code::EmptyField,
            "every policy needs an owner to page when it misbehaves",
        );
    }
    for name in s.dependencies.keys() {
        c.name(
            format!("service.dependencies.{name}"),
            "the dependency name",
            name,
        );
    }
}

fn goals(c: &mut Checker<'_>) {
    let Some(g) = &c.policy.goals else { return };
    if let Some(bp) = g.availability_bp
        && bp > 10_000
    {
        c.error(
            "goals.availability_bp",
            Code::OutOfRange,
            format!("{bp} basis points is more than 100 % (10000)"),
        );
    }
    if let (Some(p95), Some(timeout)) = (g.p95_latency_ms, g.timeout_ms)
        && p95 > timeout
    {
        c.warn(
            "goals.p95_latency_ms",
            Code::GoalInconsistent,
            format!("a p95 of {p95} ms cannot be met with a timeout of {timeout} ms"),
        );
    }
    if let (Some(accept), Some(complete)) = (g.accept_latency_ms, g.completion_sla_ms)
        && accept > complete
    {
        c.warn(
            "goals.accept_latency_ms",
            Code::GoalInconsistent,
            format!(
                "accepting a task ({accept} ms) takes longer than completing it ({complete} ms)"
            ),
        );
    }
    if let (Some(timeout), Some(t)) = (g.timeout_ms, &c.policy.timeouts)
        && t.total_ms > timeout
    {
        c.error(
            "timeouts.total_ms",
            Code::TotalExceedsGoal,
            format!(
                "the budget of {} ms is longer than the {timeout} ms the goals allow a request",
                t.total_ms
            ),
        );
    }
}

/// Each objective must be measurable from the agent's request records, and
/// leave a budget to spend (safety goals excepted, whose budget is zero).
fn objectives(c: &mut Checker<'_>) {
    let Some(g) = &c.policy.goals else { return };
    let mut seen = BTreeSet::new();
    for (i, o) in g.objectives.iter().enumerate() {
        let at = |field: &str| format!("goals.objectives.{i}.{field}");
        c.name(at("id"), "the objective id", &o.id);
        if !seen.insert(o.id.as_str()) {
            c.error(
                at("id"),
                Code::DuplicateName,
                format!("two objectives are called `{}`", o.id),
            );
        }
        if o.window_days == 0 || o.window_days > MAX_WINDOW_DAYS {
            c.error(
                at("window_days"),
                Code::OutOfRange,
                format!(
                    "a window is 1 to {MAX_WINDOW_DAYS} days (the request records are kept that long), not {}",
                    o.window_days
                ),
            );
        }
        match &o.indicator {
            Indicator::Safety { .. } => {
                if o.target_bp != 10_000 {
                    c.error(
                        at("target_bp"),
                        Code::OutOfRange,
                        "a safety goal allows no violation: its target is 10000 (100 %)",
                    );
                }
            }
            other => {
                if o.target_bp == 0 || o.target_bp >= 10_000 {
                    c.error(
                        at("target_bp"),
                        Code::OutOfRange,
                        format!(
                            "a target is 1 to 9999 basis points, not {}: 10000 leaves no error budget (use a safety goal for what must never happen)",
                            o.target_bp
                        ),
                    );
                }
                if let Indicator::Latency { threshold_ms } = other
                    && !LATENCY_BUCKETS_MS.contains(threshold_ms)
                {
                    c.error(
                        at("indicator.threshold_ms"),
                        Code::OutOfRange,
                        format!(
                            "{threshold_ms} ms is not a bound of the latency histogram, so it cannot be counted exactly; use one of {LATENCY_BUCKETS_MS:?}"
                        ),
                    );
                }
                if let Indicator::Availability { allowed } = other {
                    for (j, status) in allowed.iter().enumerate() {
                        let path = at(&format!("indicator.allowed.{j}"));
                        match status {
                            DegradedStatus::Refused => c.error(
                                path,
                                Code::GoalInconsistent,
                                "a refused request is the unavailability this objective measures",
                            ),
                            DegradedStatus::Normal => c.warn(
                                path,
                                Code::GoalInconsistent,
                                "normal answers always count as available",
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    if let Some(canary) = &g.canary {
        if g.objectives.is_empty() {
            c.warn(
                "goals.canary",
                Code::GoalInconsistent,
                "with no objectives there is nothing to judge a canary on",
            );
        }
        if canary.max_burn_ratio_percent < 100 || canary.max_burn_ratio_percent > 100_000 {
            c.error(
                "goals.canary.max_burn_ratio_percent",
                Code::OutOfRange,
                "the ratio is 100 (as fast as the stable version) to 100000 percent",
            );
        }
        if canary.min_requests == 0 {
            c.error(
                "goals.canary.min_requests",
                Code::OutOfRange,
                "a canary judged on no requests is judged on noise",
            );
        }
        if canary.bake_minutes == 0 || canary.bake_minutes > 7 * 24 * 60 {
            c.error(
                "goals.canary.bake_minutes",
                Code::OutOfRange,
                "a bake time is 1 minute to 7 days",
            );
        }
    }
}

fn timeouts(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(t) = &policy.timeouts else {
        for name in policy.service.dependencies.keys() {
            c.error(
                format!("timeouts.dependencies.{name}"),
                Code::DependencyWithoutTimeout,
                format!("`{name}` has no timeout: there is no timeouts section, so a hung call waits forever"),
            );
        }
        return;
    };
    if t.total_ms == 0 {
        c.error(
            "timeouts.total_ms",
            Code::OutOfRange,
            "the total budget must be above zero",
        );
    }
    let mut seen = BTreeSet::new();
    let mut sum: u64 = 0;
    for (i, stage) in t.stages.iter().enumerate() {
        let path = format!("timeouts.stages.{i}");
        c.name(format!("{path}.name"), "the stage name", &stage.name);
        if !seen.insert(stage.name.as_str()) {
            c.error(
                format!("{path}.name"),
                Code::DuplicateName,
                format!("stage `{}` is listed twice", stage.name),
            );
        }
        if stage.budget_ms == 0 {
            c.error(
                format!("{path}.budget_ms"),
                Code::OutOfRange,
                "a stage budget must be above zero",
            );
        }
        sum = sum.saturating_add(stage.budget_ms);
        for (j, dep) in stage.dependencies.iter().enumerate() {
            c.dependency(format!("{path}.dependencies.{j}"), dep);
        }
    }
    if sum > t.total_ms {
        c.error(
            "timeouts.stages",
            Code::StageBudgetsExceedTotal,
            format!(
                "the stage budgets add up to {sum} ms, more than the total of {} ms; late stages would be cut off by the deadline",
                t.total_ms
            ),
        );
    }
    for (dep, &ms) in &t.dependencies {
        let path = format!("timeouts.dependencies.{dep}");
        c.dependency(path.clone(), dep);
        if ms == 0 {
            c.error(
                path.clone(),
                Code::OutOfRange,
                "a timeout must be above zero",
            );
        }
        if ms > t.total_ms {
            c.warn(
                path.clone(),
                Code::TimeoutExceedsBudget,
                format!("{ms} ms is longer than the total budget of {} ms; the deadline will cut the call short", t.total_ms),
            );
        }
        for stage in t.stages.iter().filter(|s| s.dependencies.contains(dep)) {
            if ms > stage.budget_ms {
                c.warn(
                    path.clone(),
                    Code::TimeoutExceedsBudget,
                    format!(
                        "{ms} ms is longer than the {} ms budget of stage `{}`, which calls it",
                        stage.budget_ms, stage.name
                    ),
                );
            }
        }
    }
    for name in policy.service.dependencies.keys() {
        if c.effective_timeout(name).is_none() {
            c.error(
                format!("timeouts.dependencies.{name}"),
                Code::DependencyWithoutTimeout,
                format!("`{name}` has no timeout of its own and no stage lists it, so a hung call is bounded by nothing but the whole request"),
            );
        }
    }
}
