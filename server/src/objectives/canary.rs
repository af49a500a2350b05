//! Canary analysis: the canary's instances against the stable ones, on the
//! canary policy's objectives, since the canary started. A canary that burns
//! a budget faster than sustainable and faster than the stable version by
//! the policy's margin (or breaks a safety goal once) is aborted without
//! waiting for a person; one that held for its bake time may be promoted.
//! Each decision is audited and recorded, and raises an alert that says why.

use super::{Buckets, Tally, version_suffix};
use crate::app::App;
use crate::error::ApiResult;
use crate::policy_hub::{Published, Snapshot};
use crate::store::{
    AuditRecord, CanaryChange, CanaryVerdictRow, Records, RollupRow, ServiceRow, StoreError,
};
use serde_json::json;
use shared::api::{CanaryComparison, CanaryObjective, CanaryState, CanaryVerdict};
use shared::policy::{CanaryAnalysis, Indicator};
use std::sync::Arc;

/// Who the audit log names for an automatic decision.
pub const ACTOR: &str = "ballast:canary-analysis";

/// The stored verdict, as the API shows it.
pub fn verdict_view(row: CanaryVerdictRow) -> CanaryVerdict {
    CanaryVerdict {
        canary_version: row.canary_version.max(0) as u64,
        stable_version: row.stable_version.max(0) as u64,
        decision: row.decision,
        reason: row.reason,
        decided_at_ms: row.decided_at,
    }
}

/// Splits rows named `…@v<canary>` and `…@v<stable>` into two sets of
/// buckets under the plain names.
fn split(rows: Vec<RollupRow>, canary: u64, stable: u64) -> (Buckets, Buckets) {
    let (c, s) = (version_suffix(canary), version_suffix(stable));
    let (mut canary_rows, mut stable_rows) = (Vec::new(), Vec::new());
    for mut r in rows {
        if let Some(name) = r.dependency.strip_suffix(&c) {
            r.dependency = name.to_owned();
            canary_rows.push(r);
        } else if let Some(name) = r.dependency.strip_suffix(&s) {
            r.dependency = name.to_owned();
            stable_rows.push(r);
        }
    }
    (Buckets::new(canary_rows), Buckets::new(stable_rows))
}

/// Judges tallies already read: the verdict and its reason.
pub fn judge(
    analysis: &CanaryAnalysis,
    canary: &Published,
    per_objective: &[(Tally, Tally)],
    canary_requests: u64,
    now: i64,
) -> (CanaryState, String) {
    let version = canary.version;
    for (o, (c, _)) in canary.goals.objectives.iter().zip(per_objective) {
        if let Indicator::Safety { violation } = o.indicator
            && c.violations > 0
        {
            return (
                CanaryState::Failing,
                format!(
                    "canary v{version} broke safety goal {}: {} {} since it started",
                    o.id,
                    c.violations,
                    violation.label().to_lowercase()
                ),
            );
        }
    }
    if canary_requests < u64::from(analysis.min_requests) {
        return (
            CanaryState::Gathering,
            format!(
                "canary v{version} served {canary_requests} of the {} requests it is judged on",
                analysis.min_requests
            ),
        );
    }
    let ratio = f64::from(analysis.max_burn_ratio_percent) / 100.0;
    for (o, (c, s)) in canary.goals.objectives.iter().zip(per_objective) {
        if matches!(o.indicator, Indicator::Safety { .. }) {
            continue;
        }
        let (cb, sb) = (c.burn(o), s.burn(o));
        if cb > 1.0 && cb > sb * ratio {
            return (
                CanaryState::Failing,
                format!(
                    "canary v{version} burns the {} budget at {cb:.1}x against the stable version's {sb:.1}x (limit {ratio:.1}x the stable rate), over {} canary requests",
                    o.id, c.valid
                ),
            );
        }
    }
    let baked_at = canary.published_at_ms + i64::from(analysis.bake_minutes) * 60_000;
    if now >= baked_at {
        (
            CanaryState::Baked,
            format!(
                "canary v{version} held every objective for its {} min bake time",
                analysis.bake_minutes
            ),
        )
    } else {
        (
            CanaryState::Holding,
            format!(
                "canary v{version} holds every objective; baked in {} min",
                (baked_at - now + 59_999) / 60_000
            ),
        )
    }
}

/// The comparison of the running canary with the stable version, if a
/// canary runs and its policy asks for analysis.
pub async fn compare(
    app: &App,
    snapshot: &Snapshot,
    service_id: i64,
    now: i64,
) -> ApiResult<Option<CanaryComparison>> {
    let (Some(stable), Some((canary, _))) = (&snapshot.active, &snapshot.canary) else {
        return Ok(None);
    };
    let Some(analysis) = &canary.goals.canary else {
        return Ok(None);
    };
    Ok(Some(
        comparison(app, service_id, stable, canary, analysis, now).await?,
    ))
}

async fn comparison(
    app: &App,
    service_id: i64,
    stable: &Arc<Published>,
    canary: &Arc<Published>,
    analysis: &CanaryAnalysis,
    now: i64,
) -> ApiResult<CanaryComparison> {
    let started = canary.published_at_ms;
    // One bucket for the whole span since the canary started.
    let rows = app
        .store
        .record_buckets(
            service_id,
            started - started.rem_euclid(60_000),
            i64::MAX / 4,
            &Records::Versions(
                version_suffix(canary.version),
                version_suffix(stable.version),
            ),
        )
        .await?;
    let (c, s) = split(rows, canary.version, stable.version);
    let per_objective: Vec<(Tally, Tally)> = canary
        .goals
        .objectives
        .iter()
        .map(|o| {
            (
                c.tally(o, i64::MIN, i64::MAX),
                s.tally(o, i64::MIN, i64::MAX),
            )
        })
        .collect();
    let canary_requests = c.requests();
    let (verdict, reason) = judge(analysis, canary, &per_objective, canary_requests, now);
    Ok(CanaryComparison {
        canary_version: canary.version,
        stable_version: stable.version,
        started_at_ms: started,
        canary_requests,
        stable_requests: s.requests(),
        objectives: canary
            .goals
            .objectives
            .iter()
            .zip(&per_objective)
            .map(|(o, (c, s))| CanaryObjective {
                id: o.id.clone(),
                canary_burn: c.burn(o),
                stable_burn: s.burn(o),
            })
            .collect(),
        verdict,
        reason,
    })
}

/// What [`act`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acted {
    /// Canaries aborted.
    pub aborted: usize,
    /// Canaries promoted.
    pub promoted: usize,
}

/// Aborts every failing canary whose policy allows it, and promotes every
/// baked one whose policy asks for it: audited, announced to the agents,
/// and recorded as a verdict.
pub async fn act(app: &App, services: &[ServiceRow], now: i64) -> ApiResult<Acted> {
    let mut acted = Acted::default();
    for service in services {
        let snapshot = app.hub.snapshot(service.id).await?;
        let (Some(stable), Some((canary, _))) = (&snapshot.active, &snapshot.canary) else {
            continue;
        };
        let Some(analysis) = &canary.goals.canary else {
            continue;
        };
        let c = comparison(app, service.id, stable, canary, analysis, now).await?;
        let (change, decision, verb) = match c.verdict {
            CanaryState::Failing if analysis.auto_abort => {
                (CanaryChange::Abort, "aborted", "rollout.auto_abort")
            }
            CanaryState::Baked if analysis.auto_promote => {
                (CanaryChange::Promote, "promoted", "rollout.auto_promote")
            }
            _ => continue,
        };
        let audit = AuditRecord::new(
            ACTOR,
            verb,
            format!("service:{}/{}", service.name, service.environment),
            json!({
                "canary_version": c.canary_version,
                "stable_version": c.stable_version,
                "reason": c.reason,
                "canary_requests": c.canary_requests,
                "stable_requests": c.stable_requests,
            }),
        );
        match app
            .store
            .change_canary(service.id, change, now, &audit)
            .await
        {
            Ok(_) => {}
            // Someone (or another replica) ended it first.
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
        app.hub.changed(service.id).await?;
        app.store
            .record_canary_verdict(&CanaryVerdictRow {
                service_id: service.id,
                canary_version: c.canary_version as i64,
                stable_version: c.stable_version as i64,
                decision: decision.to_owned(),
                reason: c.reason.clone(),
                decided_at: now,
            })
            .await?;
        tracing::warn!(service = %service.name, environment = %service.environment, decision, reason = %c.reason, "canary decided automatically");
        if decision == "aborted" {
            acted.aborted += 1;
        } else {
            acted.promoted += 1;
        }
    }
    Ok(acted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::of_version;
    use shared::policy::{Goals, Objective, REQUESTS_COMPONENT};

    fn canary(objectives: Vec<Objective>) -> Published {
        Published {
            version: 7,
            etag: "e7".into(),
            json: "{}".into(),
            components: Default::default(),
            cost_budget_usd_micros: None,
            published_at_ms: 0,
            goals: Goals {
                objectives,
                ..Goals::default()
            },
        }
    }

    fn quality() -> Objective {
        Objective {
            id: "full-quality".into(),
            indicator: Indicator::Quality,
            target_bp: 9_000,
            window_days: 7,
            runbook: None,
        }
    }

    fn t(valid: u64, good: u64) -> Tally {
        Tally {
            valid,
            good,
            violations: 0,
        }
    }

    #[test]
    fn a_canary_burning_faster_than_the_margin_fails_and_says_why() {
        let analysis = CanaryAnalysis::default();
        let p = canary(vec![quality()]);
        // 100 % degraded against a 10 % allowance: 10x; stable 5 %: 0.5x.
        let (state, reason) = judge(&analysis, &p, &[(t(60, 0), t(400, 380))], 60, 1);
        assert_eq!(state, CanaryState::Failing);
        assert!(
            reason.contains("full-quality") && reason.contains("10.0x"),
            "{reason}"
        );
        assert!(reason.contains("0.5x"), "{reason}");
    }

    #[test]
    fn a_canary_no_worse_than_stable_holds_then_bakes() {
        let analysis = CanaryAnalysis::default();
        let p = canary(vec![quality()]);
        // Both at 1.5x: an incident for everyone, not the canary's doing.
        let pair = [(t(100, 85), t(400, 340))];
        assert_eq!(
            judge(&analysis, &p, &pair, 100, 60_000).0,
            CanaryState::Holding
        );
        let baked = i64::from(analysis.bake_minutes) * 60_000;
        assert_eq!(
            judge(&analysis, &p, &pair, 100, baked).0,
            CanaryState::Baked
        );
        // Too few requests: gathering, whatever the rates.
        assert_eq!(
            judge(&analysis, &p, &[(t(10, 0), t(400, 400))], 10, baked).0,
            CanaryState::Gathering
        );
    }

    #[test]
    fn one_safety_violation_fails_a_canary_at_once() {
        let analysis = CanaryAnalysis::default();
        let safety = Objective {
            id: "no-leak".into(),
            indicator: Indicator::Safety {
                violation: shared::policy::SafetyViolation::UnauthorizedRetrieval,
            },
            target_bp: 10_000,
            window_days: 28,
            runbook: None,
        };
        let p = canary(vec![safety]);
        let one = Tally {
            valid: 3,
            good: 2,
            violations: 1,
        };
        let (state, reason) = judge(&analysis, &p, &[(one, t(400, 400))], 3, 1);
        assert_eq!(state, CanaryState::Failing);
        assert!(reason.contains("no-leak"), "{reason}");
    }

    #[test]
    fn versioned_rows_are_split_by_their_suffix() {
        let row = |name: &str| RollupRow {
            service_id: 1,
            dependency: name.into(),
            minute_ms: 0,
            values: [0; crate::store::ROLLUP_WIDTH],
        };
        let (c, s) = split(
            vec![
                row(&of_version(REQUESTS_COMPONENT, 7)),
                row(&of_version(REQUESTS_COMPONENT, 6)),
                row(&of_version(REQUESTS_COMPONENT, 17)),
            ],
            7,
            6,
        );
        assert_eq!(c.requests.len(), 1);
        assert_eq!(s.requests.len(), 1);
    }
}
