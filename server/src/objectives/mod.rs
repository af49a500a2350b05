//! Service level objectives: error budgets and burn rates computed from the
//! request records in the shared rollups, so every replica computes the same
//! figures and they survive restarts.
//!
//! Every objective is "good over valid requests, at least the target, over a
//! rolling window". The budget is the bad requests the target allows; the
//! burn rate over a window is the bad share there over the allowed share, so
//! 1.0 spends the budget exactly over the objective's window (the approach
//! of Google's SRE workbook). Safety goals have no budget: one violation
//! spends it all.

pub mod canary;
pub mod rules;

use crate::app::App;
use crate::error::ApiResult;
use crate::store::{ROLLUP_FIRST_BUCKET, ROLLUP_WIDTH, Records, RollupRow, ServiceRow};
use crate::telemetry::col;
use crate::telemetry::metrics::ObjectiveFigures;
use shared::api::{
    BURN_WINDOWS_S, BudgetPoint, BurnRate, FleetObjectives, ObjectiveStatus, ServiceBudget,
    ServiceObjectives,
};
use shared::policy::{
    DegradedStatus, Indicator, Objective, REQUESTS_COMPONENT, SAFETY_PREFIX, SafetyViolation,
};
use shared::protocol::LATENCY_BUCKETS_MS;

/// One hour, the resolution of budgets and burn-down charts.
pub const HOUR_MS: i64 = 3_600_000;
/// One day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The runbook a burn-rate alert leads to when the objective names none.
pub const DEFAULT_RUNBOOK: &str = "error-budget-burn";
/// The runbook a safety alert leads to when the objective names none.
pub const SAFETY_RUNBOOK: &str = "safety-goal-violated";

/// The pseudo-dependency under which the server counts `name` (the request
/// records or a safety count) of instances that ran policy `version`: the
/// agent reports them once, and ingestion adds this second row.
pub fn of_version(name: &str, version: u64) -> String {
    format!("{name}@v{version}")
}

/// The suffix [`of_version`] adds.
pub fn version_suffix(version: u64) -> String {
    format!("@v{version}")
}

/// The runbook an objective's alerts lead to.
pub fn runbook_of(o: &Objective) -> String {
    o.runbook.clone().unwrap_or_else(|| {
        match o.indicator {
            Indicator::Safety { .. } => SAFETY_RUNBOOK,
            _ => DEFAULT_RUNBOOK,
        }
        .to_owned()
    })
}

/// Good and valid requests of one objective over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests the objective is about.
    pub valid: u64,
    /// Those that met it.
    pub good: u64,
    /// Safety violations (safety goals only).
    pub violations: u64,
}

impl Tally {
    /// Adds `other`.
    pub fn add(&mut self, other: Tally) {
        self.valid += other.valid;
        self.good += other.good;
        self.violations += other.violations;
    }

    /// Bad requests.
    pub fn bad(&self) -> u64 {
        self.valid.saturating_sub(self.good)
    }

    /// The burn rate against `target_bp`: the bad share over the share the
    /// target allows. A safety goal's "rate" is its violation count.
    pub fn burn(&self, o: &Objective) -> f64 {
        if matches!(o.indicator, Indicator::Safety { .. }) {
            return self.violations as f64;
        }
        if self.valid == 0 {
            return 0.0;
        }
        let allowed = allowed_share(o.target_bp);
        (self.bad() as f64 / self.valid as f64) / allowed
    }

    /// The budget left, in basis points of the budget (see
    /// [`ObjectiveStatus::budget_remaining_bp`]).
    pub fn remaining_bp(&self, o: &Objective) -> i64 {
        if matches!(o.indicator, Indicator::Safety { .. }) {
            return if self.violations == 0 { 10_000 } else { 0 };
        }
        if self.valid == 0 {
            return 10_000;
        }
        let allowed = allowed_share(o.target_bp) * self.valid as f64;
        let left = 1.0 - self.bad() as f64 / allowed;
        // Far overspent is overspent; the floor keeps the figure printable.
        (left * 10_000.0).round().max(-1_000_000.0) as i64
    }
}

fn allowed_share(target_bp: u32) -> f64 {
    // Validation keeps non-safety targets below 10000; the floor keeps an
    // unvalidated one from dividing by zero.
    (f64::from(10_000u32.saturating_sub(target_bp)) / 10_000.0).max(1e-6)
}

fn value(values: &[i64; ROLLUP_WIDTH], column: usize) -> u64 {
    values[column].max(0) as u64
}

/// The tally of `o` in one bucket of `_requests` values. A safety goal's
/// violations are counted apart (see [`Buckets::tally`]): here all its
/// requests are good.
pub fn tally(o: &Objective, requests: &[i64; ROLLUP_WIDTH]) -> Tally {
    let calls = value(requests, col::CALLS);
    let status = |s: DegradedStatus| col::status(s).map_or(0, |c| value(requests, c));
    match &o.indicator {
        Indicator::Latency { threshold_ms } => {
            // Refused requests are not timed (the availability objective's
            // business), so the histogram holds exactly the answered ones.
            let mut t = Tally::default();
            for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
                let n = value(requests, ROLLUP_FIRST_BUCKET + i);
                t.valid += n;
                if bound <= threshold_ms {
                    t.good += n;
                }
            }
            t
        }
        Indicator::Availability { allowed } => {
            let bad: u64 = DegradedStatus::ALL
                .iter()
                .filter(|s| **s != DegradedStatus::Normal && !allowed.contains(s))
                .map(|s| status(*s))
                .sum();
            Tally {
                valid: calls,
                good: calls.saturating_sub(bad),
                violations: 0,
            }
        }
        Indicator::Quality => {
            let bad: u64 = DegradedStatus::ALL.iter().map(|s| status(*s)).sum();
            Tally {
                valid: calls,
                good: calls.saturating_sub(bad),
                violations: 0,
            }
        }
        Indicator::Safety { .. } => Tally {
            valid: calls,
            good: calls,
            violations: 0,
        },
    }
}

/// Request records and safety counts of one service, by time bucket.
#[derive(Debug, Default)]
pub struct Buckets {
    /// (bucket start, `_requests` values), oldest first.
    requests: Vec<(i64, [i64; ROLLUP_WIDTH])>,
    /// (bucket start, violation, count).
    safety: Vec<(i64, SafetyViolation, u64)>,
}

impl Buckets {
    /// Sorts stored rows into requests and violations.
    pub fn new(rows: Vec<RollupRow>) -> Buckets {
        let mut out = Buckets::default();
        for r in rows {
            if r.dependency == REQUESTS_COMPONENT {
                out.requests.push((r.minute_ms, r.values));
            } else if let Some(v) = r
                .dependency
                .strip_prefix(SAFETY_PREFIX)
                .and_then(SafetyViolation::from_name)
            {
                out.safety
                    .push((r.minute_ms, v, value(&r.values, col::CALLS)));
            }
        }
        out.requests.sort_by_key(|(at, _)| *at);
        out
    }

    /// Requests recorded in all the buckets, whatever became of them.
    pub fn requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|(_, values)| value(values, col::CALLS))
            .sum()
    }

    /// The tally of `o` over buckets starting in `[from, to)`.
    pub fn tally(&self, o: &Objective, from: i64, to: i64) -> Tally {
        let mut t = Tally::default();
        let rule = match o.indicator {
            Indicator::Safety { violation } => Some(violation),
            _ => None,
        };
        let violations: u64 = rule.map_or(0, |rule| {
            self.safety
                .iter()
                .filter(|(at, v, _)| *v == rule && (from..to).contains(at))
                .map(|(_, _, n)| n)
                .sum()
        });
        for (at, values) in &self.requests {
            if (from..to).contains(at) {
                t.add(tally(o, values));
            }
        }
        if rule.is_some() {
            t.violations = violations;
            t.good = t.valid.saturating_sub(violations);
        }
        t
    }
}

/// Basis points as a percentage with two decimals: 9950 is `99.50 %`,
/// -16667 is `-166.67 %`.
pub fn bp_percent(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let a = bp.unsigned_abs();
    format!("{sign}{}.{:02} %", a / 100, a % 100)
}

/// The objective in a sentence.
pub fn summary(o: &Objective) -> String {
    let target = bp_percent(i64::from(o.target_bp));
    let days = o.window_days;
    match &o.indicator {
        Indicator::Latency { threshold_ms } => {
            format!("{target} of answered requests within {threshold_ms} ms, over {days} days")
        }
        Indicator::Availability { allowed } if allowed.is_empty() => {
            format!("{target} of requests answered normally, over {days} days")
        }
        Indicator::Availability { allowed } => {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            format!(
                "{target} of requests answered normally or {}, over {days} days",
                names.join(" or ")
            )
        }
        Indicator::Quality => {
            format!("{target} of requests answered at full quality, over {days} days")
        }
        Indicator::Safety { violation } => {
            format!("no {} at all", violation.label().to_lowercase())
        }
    }
}

/// Burn windows up to this long are read at minute resolution; longer ones
/// at hourly resolution.
pub const MINUTE_SPAN_MS: i64 = 6 * HOUR_MS;

/// The tally of `o` over the `window_ms` before `now`, from whichever
/// resolution covers it.
pub fn over(o: &Objective, now: i64, window_ms: i64, hours: &Buckets, minutes: &Buckets) -> Tally {
    // Buckets are keyed by their start; the current (partial) one counts.
    let end = now + 1;
    if window_ms <= MINUTE_SPAN_MS {
        minutes.tally(o, now - window_ms, end)
    } else {
        hours.tally(o, now - window_ms, end)
    }
}

/// The standing of `o` at `now` from `hours` (hourly buckets reaching back
/// two windows, for the burn-down) and `minutes` (minute buckets over the
/// last [`MINUTE_SPAN_MS`]).
pub fn status(o: &Objective, now: i64, hours: &Buckets, minutes: &Buckets) -> ObjectiveStatus {
    let window = i64::from(o.window_days) * DAY_MS;
    let whole = hours.tally(o, now - window, now + 1);
    let burn_rates = BURN_WINDOWS_S
        .iter()
        .map(|w| {
            let t = over(o, now, i64::from(*w) * 1000, hours, minutes);
            BurnRate {
                window_s: *w,
                rate: t.burn(o),
                requests: t.valid,
            }
        })
        .collect();
    let today = now - now.rem_euclid(DAY_MS);
    let burn_down = (0..i64::from(o.window_days))
        .rev()
        .map(|k| {
            let at = today - k * DAY_MS;
            BudgetPoint {
                at_ms: at,
                remaining_bp: hours.tally(o, at - window, at).remaining_bp(o),
            }
        })
        .chain(std::iter::once(BudgetPoint {
            at_ms: now,
            remaining_bp: whole.remaining_bp(o),
        }))
        .collect();
    ObjectiveStatus {
        id: o.id.clone(),
        kind: o.indicator.kind().to_owned(),
        summary: summary(o),
        target_bp: o.target_bp,
        window_days: o.window_days,
        valid: whole.valid,
        good: whole.good,
        achieved_bp: (whole.valid > 0)
            .then(|| ((whole.good as f64 / whole.valid as f64) * 10_000.0).floor() as u32),
        budget_remaining_bp: whole.remaining_bp(o),
        violations: whole.violations,
        burn_rates,
        burn_down,
        runbook: runbook_of(o),
    }
}

/// The longest burn window, in milliseconds.
pub fn longest_burn_ms() -> i64 {
    i64::from(BURN_WINDOWS_S[BURN_WINDOWS_S.len() - 1]) * 1000
}

/// Reads a service's buckets at `now`: hourly ones reaching back `hours_ms`,
/// minute ones over the last [`MINUTE_SPAN_MS`].
pub async fn read(
    app: &App,
    service_id: i64,
    hours_ms: i64,
    now: i64,
) -> ApiResult<(Buckets, Buckets)> {
    let hours = app
        .store
        .record_buckets(service_id, now - hours_ms, HOUR_MS, &Records::Objectives)
        .await?;
    let minutes = app
        .store
        .record_buckets(
            service_id,
            now - MINUTE_SPAN_MS,
            60_000,
            &Records::Objectives,
        )
        .await?;
    Ok((Buckets::new(hours), Buckets::new(minutes)))
}

/// The longest window of `objectives`, in milliseconds.
fn longest_window(objectives: &[Objective]) -> i64 {
    objectives
        .iter()
        .map(|o| i64::from(o.window_days) * DAY_MS)
        .max()
        .unwrap_or(0)
}

/// Every service whose active policy states objectives, with them.
async fn with_objectives(app: &App) -> ApiResult<Vec<(ServiceRow, Vec<Objective>)>> {
    let mut out = Vec::new();
    for service in app.store.list_services().await? {
        if let Some(active) = app.hub.snapshot(service.id).await?.active.clone()
            && !active.goals.objectives.is_empty()
        {
            out.push((service, active.goals.objectives.clone()));
        }
    }
    Ok(out)
}

/// Every objective of `service`'s active policy at `now`, with the running
/// canary's comparison and the canary history.
pub async fn of_service(app: &App, service: &ServiceRow, now: i64) -> ApiResult<ServiceObjectives> {
    let snapshot = app.hub.snapshot(service.id).await?;
    let objectives = snapshot
        .active
        .as_ref()
        .map(|p| p.goals.objectives.clone())
        .unwrap_or_default();
    // Two of the longest window: the burn-down's first day looks back a
    // whole window itself.
    let span = (2 * longest_window(&objectives)).max(longest_burn_ms());
    let (hours, minutes) = read(app, service.id, span, now).await?;
    let canary = canary::compare(app, &snapshot, service.id, now).await?;
    let history = app
        .store
        .canary_verdicts(service.id, 20)
        .await?
        .into_iter()
        .map(canary::verdict_view)
        .collect();
    Ok(ServiceObjectives {
        service: service.name.clone(),
        environment: service.environment.clone(),
        as_of_ms: now,
        objectives: objectives
            .iter()
            .map(|o| status(o, now, &hours, &minutes))
            .collect(),
        canary,
        canary_history: history,
    })
}

/// Every service whose active policy has objectives: the one with the
/// least budget left, and the latest automatic canary decision of the last
/// day.
pub async fn fleet(app: &App, now: i64) -> ApiResult<FleetObjectives> {
    let mut out = Vec::new();
    for (service, objectives) in with_objectives(app).await? {
        let (hours, _) = read(app, service.id, longest_window(&objectives), now).await?;
        let objectives = &objectives;
        let mut tightest: Option<(String, i64)> = None;
        let mut violations = 0;
        for o in objectives {
            let t = hours.tally(o, now - i64::from(o.window_days) * DAY_MS, now + 1);
            violations += t.violations;
            let left = t.remaining_bp(o);
            if tightest.as_ref().is_none_or(|(_, l)| left < *l) {
                tightest = Some((o.id.clone(), left));
            }
        }
        let Some((tightest, budget_remaining_bp)) = tightest else {
            continue;
        };
        let last_canary_verdict = app
            .store
            .canary_verdicts(service.id, 1)
            .await?
            .into_iter()
            .find(|v| now - v.decided_at <= DAY_MS)
            .map(canary::verdict_view);
        out.push(ServiceBudget {
            service: service.name.clone(),
            environment: service.environment.clone(),
            tightest,
            budget_remaining_bp,
            violations,
            last_canary_verdict,
        });
    }
    Ok(FleetObjectives {
        as_of_ms: now,
        services: out,
    })
}

/// Every objective of every service's active policy, for `/metrics`.
pub async fn figures(app: &App, now: i64) -> ApiResult<Vec<ObjectiveFigures>> {
    let mut out = Vec::new();
    for (service, objectives) in with_objectives(app).await? {
        let span = longest_window(&objectives).max(longest_burn_ms());
        let (hours, minutes) = read(app, service.id, span, now).await?;
        for o in &objectives {
            let window = i64::from(o.window_days) * DAY_MS;
            let whole = hours.tally(o, now - window, now + 1);
            out.push(ObjectiveFigures {
                service: service.name.clone(),
                environment: service.environment.clone(),
                objective: o.id.clone(),
                target: f64::from(o.target_bp) / 10_000.0,
                remaining: whole.remaining_bp(o) as f64 / 10_000.0,
                burn: BURN_WINDOWS_S
                    .iter()
                    .zip(BURN_LABELS)
                    .map(|(w, label)| {
                        (
                            label,
                            over(o, now, i64::from(*w) * 1000, &hours, &minutes).burn(o),
                        )
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Labels of [`BURN_WINDOWS_S`], for `/metrics`.
const BURN_LABELS: [&str; 5] = ["5m", "30m", "1h", "6h", "3d"];

#[cfg(test)]
mod tests {
    use super::*;

    fn objective(indicator: Indicator, target_bp: u32) -> Objective {
        Objective {
            id: "o".into(),
            indicator,
            target_bp,
            window_days: 28,
            runbook: None,
        }
    }

    fn requests(
        calls: i64,
        statuses: &[(DegradedStatus, i64)],
        buckets: &[(u64, i64)],
    ) -> [i64; ROLLUP_WIDTH] {
        let mut v = [0i64; ROLLUP_WIDTH];
        v[col::CALLS] = calls;
        for (s, n) in statuses {
            v[col::status(*s).unwrap()] = *n;
        }
        for (bound, n) in buckets {
            let i = LATENCY_BUCKETS_MS.iter().position(|b| b == bound).unwrap();
            v[ROLLUP_FIRST_BUCKET + i] = *n;
        }
        v
    }

    #[test]
    fn each_indicator_counts_its_own_good_requests() {
        // 1000 requests: 900 normal, 60 degraded, 30 queued, 10 refused; of
        // the 990 answered, 950 within 5 s and 40 within 10 s.
        let v = requests(
            1000,
            &[
                (DegradedStatus::Degraded, 60),
                (DegradedStatus::Queued, 30),
                (DegradedStatus::Refused, 10),
            ],
            &[(2_000, 900), (5_000, 50), (10_000, 40)],
        );
        let latency = objective(
            Indicator::Latency {
                threshold_ms: 5_000,
            },
            9_500,
        );
        assert_eq!(
            tally(&latency, &v),
            Tally {
                valid: 990,
                good: 950,
                violations: 0
            }
        );
        let available = objective(
            Indicator::Availability {
                allowed: vec![DegradedStatus::Degraded],
            },
            9_950,
        );
        assert_eq!(
            tally(&available, &v),
            Tally {
                valid: 1000,
                good: 960,
                violations: 0
            }
        );
        let quality = objective(Indicator::Quality, 9_000);
        assert_eq!(
            tally(&quality, &v),
            Tally {
                valid: 1000,
                good: 900,
                violations: 0
            }
        );
    }

    #[test]
    fn budget_and_burn_match_the_hand_computed_values() {
        // Target 99.5 %: 0.5 % of requests may fail. 10 000 requests, 20
        // bad: 20 of an allowed 50 spent, 60 % left; the bad share 0.2 % is
        // 0.4 of the allowed 0.5 %.
        let o = objective(Indicator::Quality, 9_950);
        let t = Tally {
            valid: 10_000,
            good: 9_980,
            violations: 0,
        };
        assert_eq!(t.remaining_bp(&o), 6_000);
        assert!((t.burn(&o) - 0.4).abs() < 1e-12);
        // 75 bad: 150 % of the budget, -50 % left, burning 1.5x.
        let t = Tally {
            valid: 10_000,
            good: 9_925,
            violations: 0,
        };
        assert_eq!(t.remaining_bp(&o), -5_000);
        assert!((t.burn(&o) - 1.5).abs() < 1e-12);
        // No requests: nothing spent, nothing burning.
        assert_eq!(Tally::default().remaining_bp(&o), 10_000);
        assert_eq!(Tally::default().burn(&o), 0.0);
    }

    #[test]
    fn one_safety_violation_spends_the_whole_budget() {
        let o = objective(
            Indicator::Safety {
                violation: SafetyViolation::DuplicateSideEffect,
            },
            10_000,
        );
        let clean = Tally {
            valid: 500,
            good: 500,
            violations: 0,
        };
        assert_eq!(clean.remaining_bp(&o), 10_000);
        let one = Tally {
            valid: 500,
            good: 499,
            violations: 1,
        };
        assert_eq!(one.remaining_bp(&o), 0);
        assert_eq!(one.burn(&o), 1.0);
    }

    #[test]
    fn summaries_read_as_sentences() {
        let o = objective(
            Indicator::Latency {
                threshold_ms: 5_000,
            },
            9_500,
        );
        assert_eq!(
            summary(&o),
            "95.00 % of answered requests within 5000 ms, over 28 days"
        );
        let o = objective(
            Indicator::Safety {
                violation: SafetyViolation::UnauthorizedRetrieval,
            },
            10_000,
        );
        assert_eq!(summary(&o), "no unauthorised retrieval at all");
    }
}
