//! The values alert rules watch, computed from what every replica shares:
//! the one-minute rollups and the dead-letter table. A value is therefore
//! the same whichever replica evaluates, and survives restarts.

use crate::store::{ROLLUP_COLUMNS, RollupRow};
use shared::api::AlertMetric;
use std::collections::HashMap;

/// The rollups' resolution.
pub const MINUTE_MS: i64 = 60_000;

/// One value of a metric: for a service, or one of its dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The service.
    pub service_id: i64,
    /// The dependency; empty for a service-wide metric.
    pub dependency: String,
    /// The value, in the metric's unit.
    pub value: f64,
    /// Calls behind a rate (for `min_calls`); 0 for counts.
    pub calls: i64,
    /// What the alert's summary says instead of the generic sentence, for
    /// values that need their reason told (a canary's rollback).
    pub note: Option<String>,
}

/// Where a window of `window_s` starts, in whole minutes ending with the
/// current (partial) minute.
pub fn window_start(now_ms: i64, window_s: u32) -> i64 {
    let minutes = i64::from(window_s.div_ceil(60).max(1));
    let this_minute = now_ms - now_ms.rem_euclid(MINUTE_MS);
    this_minute - (minutes - 1) * MINUTE_MS
}

/// Midnight UTC of the day `now_ms` falls in: daily budgets follow the
/// calendar, not the process.
pub fn day_start(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}

fn col(name: &str) -> usize {
    ROLLUP_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| unreachable!("rollup column {name}"))
}

/// The rollup sums of one window, indexed for the metrics below.
#[derive(Debug, Default)]
pub struct Window {
    rows: Vec<RollupRow>,
}

impl Window {
    /// Wraps the sums per (service, dependency) of one window.
    pub fn new(rows: Vec<RollupRow>) -> Window {
        Window { rows }
    }

    /// The values of `metric` (one of the rollup metrics) for `service_id`.
    pub fn samples(&self, metric: AlertMetric, service_id: i64) -> Vec<Sample> {
        let rows = self.rows.iter().filter(|r| r.service_id == service_id);
        if metric == AlertMetric::ShedRate {
            let (mut refused, mut calls) = (0i64, 0i64);
            for r in rows {
                refused += r.values[col("shed")] + r.values[col("bulkhead_rejections")];
                calls += r.values[col("calls")];
            }
            let attempted = calls + refused;
            return vec![Sample {
                service_id,
                dependency: String::new(),
                value: ratio(refused, attempted),
                calls: attempted,
                note: None,
            }];
        }
        // Names that start with `_` are the agent's own pseudo-dependencies
        // (service-level counters), not something a service calls.
        rows.filter(|r| !r.dependency.starts_with('_'))
            .filter_map(|r| {
                let v = |name: &str| r.values[col(name)];
                let calls = v("calls");
                let value = match metric {
                    AlertMetric::BreakerOpen => return Some(count(r, v("breaker_rejections"))),
                    AlertMetric::ErrorRate => ratio(v("failures"), calls),
                    AlertMetric::TimeoutRate => ratio(v("timeouts"), calls),
                    AlertMetric::FallbackRate => ratio(v("fallbacks"), calls),
                    AlertMetric::DegradedRate => ratio(v("degraded"), calls),
                    AlertMetric::RepairRate => ratio(v("repairs"), calls),
                    AlertMetric::RetryAmplification => {
                        if calls == 0 {
                            1.0
                        } else {
                            (calls + v("retries")) as f64 / calls as f64
                        }
                    }
                    _ => return None,
                };
                Some(Sample {
                    service_id,
                    dependency: r.dependency.clone(),
                    value,
                    calls,
                    note: None,
                })
            })
            .collect()
    }

    /// Spend per service over the window, in micro-dollars.
    pub fn spend(&self) -> HashMap<i64, i64> {
        let mut out: HashMap<i64, i64> = HashMap::new();
        for r in &self.rows {
            *out.entry(r.service_id).or_default() += r.values[col("cost_usd_micros")];
        }
        out
    }
}

fn count(r: &RollupRow, n: i64) -> Sample {
    Sample {
        service_id: r.service_id,
        dependency: r.dependency.clone(),
        value: n as f64,
        calls: 0,
        note: None,
    }
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ROLLUP_WIDTH;

    fn row(service_id: i64, dependency: &str, set: &[(&str, i64)]) -> RollupRow {
        let mut values = [0i64; ROLLUP_WIDTH];
        for (name, v) in set {
            values[col(name)] = *v;
        }
        RollupRow {
            service_id,
            dependency: dependency.into(),
            minute_ms: 0,
            values,
        }
    }

    #[test]
    fn windows_are_whole_minutes_ending_now() {
        assert_eq!(window_start(125_000, 60), 120_000);
        assert_eq!(window_start(125_000, 61), 60_000);
        assert_eq!(window_start(125_000, 120), 60_000);
        assert_eq!(day_start(86_400_000 * 3 + 5), 86_400_000 * 3);
    }

    #[test]
    fn rates_are_per_dependency_and_skip_pseudo_dependencies() {
        let w = Window::new(vec![
            row(
                1,
                "reranker",
                &[
                    ("calls", 200),
                    ("timeouts", 50),
                    ("retries", 100),
                    ("fallbacks", 20),
                ],
            ),
            row(1, "_service", &[("shed", 30)]),
            row(1, "model", &[("calls", 100), ("breaker_rejections", 7)]),
            row(2, "reranker", &[("calls", 10), ("timeouts", 10)]),
        ]);
        let t = w.samples(AlertMetric::TimeoutRate, 1);
        assert_eq!(t.len(), 2);
        let reranker = t.iter().find(|s| s.dependency == "reranker").unwrap();
        assert_eq!((reranker.value, reranker.calls), (0.25, 200));
        let amp = w.samples(AlertMetric::RetryAmplification, 1);
        assert_eq!(
            amp.iter()
                .find(|s| s.dependency == "reranker")
                .unwrap()
                .value,
            1.5
        );
        let open = w.samples(AlertMetric::BreakerOpen, 1);
        assert_eq!(
            open.iter().find(|s| s.dependency == "model").unwrap().value,
            7.0
        );
        let shed = w.samples(AlertMetric::ShedRate, 1);
        assert_eq!(shed.len(), 1);
        assert_eq!(shed[0].value, 30.0 / 330.0);
        assert_eq!(w.samples(AlertMetric::FallbackRate, 2)[0].value, 0.0);
    }
}
