//! Incident controls: one request forces a dependency's breaker open or
//! closed across the fleet, for a stated time and reason, or lifts that.
//!
//! There is no side door: each service gets the next version of its own
//! policy through [`publish`], so the change is versioned, audited, shown
//! in the diff, rolled back like any other, and waits for an approver
//! where the service's tier says so. The end time is part of the document
//! and agents end the override on their own clock, so an override outlives
//! neither its stated time nor a control plane that went away.

use super::{active_policy, publish};
use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use shared::api::{
    BreakerOverrideRequest, BreakerOverrideResult, OverrideOutcome, OverrideState, PublishOutcome,
    ServiceRef,
};
use shared::policy::ForcedState;

/// The shortest override: shorter ones end before the fleet has them.
pub const MIN_DURATION_S: u32 = 60;
/// The longest: past a week, change the policy properly.
pub const MAX_DURATION_S: u32 = 7 * 86_400;
const MAX_REASON: usize = 500;
const MAX_SERVICES: usize = 200;

fn check(req: &BreakerOverrideRequest) -> ApiResult<()> {
    let dep = req.dependency.trim();
    if dep.is_empty() || dep.len() > 100 || dep.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(
            "dependency",
            "name the dependency as policies do, such as `reranker`",
        ));
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(
            "reason",
            format!("say why (the incident), in at most {MAX_REASON} characters"),
        ));
    }
    if req.state != OverrideState::Lift
        && !(MIN_DURATION_S..=MAX_DURATION_S).contains(&req.duration_s)
    {
        return Err(ApiError::invalid(
            "duration_s",
            format!("an override lasts from {MIN_DURATION_S} s to {MAX_DURATION_S} s (7 days)"),
        ));
    }
    if req.services.len() > MAX_SERVICES {
        return Err(ApiError::invalid(
            "services",
            format!("at most {MAX_SERVICES} services at once"),
        ));
    }
    Ok(())
}

/// Applies the override to each targeted service; one service's failure
/// does not stop the others.
pub async fn override_breakers(
    app: &App,
    user: &UserPrincipal,
    req: &BreakerOverrideRequest,
) -> ApiResult<Vec<BreakerOverrideResult>> {
    check(req)?;
    let dep = req.dependency.trim();
    let explicit = !req.services.is_empty();
    let targets = if explicit {
        let mut rows = Vec::with_capacity(req.services.len());
        for (i, s) in req.services.iter().enumerate() {
            let row = app
                .store
                .service(&s.name, &s.environment)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!("services[{i}]"),
                        format!("there is no service {}/{}", s.name, s.environment),
                    )
                })?;
            rows.push(row);
        }
        rows
    } else {
        app.store.list_services().await?
    };
    let now = app.clock.now_ms();
    let until = now + i64::from(req.duration_s) * 1000;
    let mut results = Vec::new();
    for service in targets {
        let service_ref = ServiceRef {
            name: service.name.clone(),
            environment: service.environment.clone(),
        };
        let skipped = |reason: String| BreakerOverrideResult {
            service: service_ref.clone(),
            outcome: OverrideOutcome::Skipped { reason },
        };
        let Some((_, mut policy)) = active_policy(app, service.id).await? else {
            if explicit {
                results.push(skipped("no policy is published".into()));
            }
            continue;
        };
        let Some(breaker) = policy.breakers.get_mut(dep) else {
            if explicit {
                results.push(skipped(format!("its policy has no breaker on {dep}")));
            }
            continue;
        };
        let message = match req.state {
            OverrideState::Lift => {
                if breaker.forced == ForcedState::None {
                    results.push(skipped(format!("the breaker on {dep} has no override")));
                    continue;
                }
                breaker.forced = ForcedState::None;
                breaker.forced_until_ms = None;
                breaker.forced_reason = None;
                format!(
                    "incident: lift the override of {dep}'s breaker: {}",
                    req.reason.trim()
                )
            }
            state => {
                breaker.forced = if state == OverrideState::Open {
                    ForcedState::Open
                } else {
                    ForcedState::Closed
                };
                breaker.forced_until_ms = Some(until);
                breaker.forced_reason = Some(format!("{} ({})", req.reason.trim(), user.actor()));
                format!(
                    "incident: force {dep}'s breaker {} for {} min: {}",
                    state.as_str(),
                    req.duration_s.div_ceil(60),
                    req.reason.trim()
                )
            }
        };
        let outcome = match publish::publish(app, user, &service, Some(policy), &message, None)
            .await
        {
            Ok(PublishOutcome::Published { version, .. }) => OverrideOutcome::Published { version },
            Ok(PublishOutcome::PendingApproval { request_id, .. }) => {
                OverrideOutcome::PendingApproval { request_id }
            }
            Err(e) if e.status.is_client_error() => OverrideOutcome::Failed { error: e.message },
            Err(e) => return Err(e),
        };
        results.push(BreakerOverrideResult {
            service: service_ref,
            outcome,
        });
    }
    if results.is_empty() {
        return Err(ApiError::invalid(
            "dependency",
            format!("no service's active policy has a breaker on {dep}"),
        ));
    }
    Ok(results)
}
