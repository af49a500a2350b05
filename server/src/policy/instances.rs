//! The fleet: the instances of each service that agents report through
//! their heartbeats, whether each is alive, which version it runs and which
//! it should run.

use crate::app::App;
use crate::auth::ServicePrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy_hub::Snapshot;
use crate::store::{InstanceRow, RefusedColumns, ServiceRow};
use axum::http::StatusCode;
use shared::api::{InstanceStatus, InstanceView};
use shared::protocol::{Heartbeat, HeartbeatAck, PolicySource, RefusedPolicy};
use std::collections::HashMap;
use std::sync::Arc;

/// An instance heard from within this long is up; within [`STALE_MS`], stale.
/// Agents heartbeat every 10 s, so one missed beat does not mark it stale.
pub const UP_MS: i64 = 15_000;
/// Beyond this an instance is down.
pub const STALE_MS: i64 = 60_000;
/// Instances silent for longer than this drop out of the fleet.
pub const FORGET_MS: i64 = 24 * 3600 * 1000;

/// Whether an instance last heard from `age_ms` ago is up, stale or down.
/// The fleet views and the live counts all read liveness from here.
pub fn status(age_ms: i64) -> InstanceStatus {
    if age_ms <= UP_MS {
        InstanceStatus::Up
    } else if age_ms <= STALE_MS {
        InstanceStatus::Stale
    } else {
        InstanceStatus::Down
    }
}

/// Checks an agent's instance id: it decides canary membership and appears
/// in the fleet view, so it is kept short and printable.
pub fn check_instance_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "instance_id",
            "instance_id must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(())
}

/// At most this many validation errors, each at most this many bytes, come
/// with a refused policy: an agent sends its first eight, a few hundred
/// bytes each at most, and the bounds keep a broken one from filling the
/// fleet view.
pub const MAX_REFUSAL_ERRORS: usize = 16;
/// See [`MAX_REFUSAL_ERRORS`].
pub const MAX_REFUSAL_ERROR_BYTES: usize = 1024;

/// Checks the policy a heartbeat says its instance refused.
pub fn check_refusal(refused: &RefusedPolicy) -> ApiResult<()> {
    if refused.version == 0 || refused.version > i64::MAX as u64 {
        return Err(ApiError::invalid(
            "refused_policy.version",
            "the refused version must be between 1 and 2^63-1",
        ));
    }
    if refused.refused_at_ms < 0 {
        return Err(ApiError::invalid(
            "refused_policy.refused_at_ms",
            "refused_at_ms must be a Unix time in milliseconds",
        ));
    }
    if refused.errors.len() > MAX_REFUSAL_ERRORS {
        return Err(ApiError::invalid(
            "refused_policy.errors",
            format!("at most {MAX_REFUSAL_ERRORS} errors"),
        ));
    }
    for (i, e) in refused.errors.iter().enumerate() {
        if e.is_empty() || e.len() > MAX_REFUSAL_ERROR_BYTES || e.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("refused_policy.errors[{i}]"),
                format!(
                    "each error must be 1 to {MAX_REFUSAL_ERROR_BYTES} bytes without control characters"
                ),
            ));
        }
    }
    Ok(())
}

/// 404 for an agent whose service has nothing published (or is not
/// registered: an agent cannot tell the two apart, nor needs to).
pub fn no_policy(agent: &ServicePrincipal) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_policy",
        format!(
            "no policy is published for {} in {}",
            agent.service, agent.environment
        ),
    )
}

/// The id and current rollout of the agent's service.
pub async fn rollout_of(app: &App, agent: &ServicePrincipal) -> ApiResult<(i64, Arc<Snapshot>)> {
    let id = app
        .hub
        .service_id(&agent.service, &agent.environment)
        .await?
        .ok_or_else(|| no_policy(agent))?;
    Ok((id, app.hub.snapshot(id).await?))
}

/// Records a heartbeat, then adds it to the fleet roster, and answers with
/// the version the instance should run.
pub async fn heartbeat(
    app: &App,
    agent: &ServicePrincipal,
    beat: Heartbeat,
) -> ApiResult<HeartbeatAck> {
    check_instance_id(&beat.instance_id)?;
    if beat.agent_version.is_empty() || beat.agent_version.len() > 64 {
        return Err(ApiError::invalid(
            "agent_version",
            "agent_version must be 1 to 64 bytes",
        ));
    }
    if let Some(refused) = &beat.refused_policy {
        check_refusal(refused)?;
    }
    let (service_id, snapshot) = rollout_of(app, agent).await?;
    let source = match beat.policy_source {
        PolicySource::Server => "server",
        PolicySource::Disk => "disk",
        PolicySource::Default => "default",
    };
    let row = InstanceRow {
        instance_id: beat.instance_id.clone(),
        agent_version: beat.agent_version,
        policy_version: beat
            .policy_version
            .map(|v| {
                i64::try_from(v).map_err(|_| ApiError::invalid("policy_version", "out of range"))
            })
            .transpose()?,
        policy_source: source.into(),
        started_at: beat.started_at_ms,
        last_seen_at: app.clock.now_ms(),
        // Each beat says what is refused now: none clears an earlier one.
        refused: RefusedColumns::of(beat.refused_policy.as_ref()),
    };
    app.store.upsert_instance(service_id, &row).await?;
    // Stored first: the fleet view never shows a beat the store refused.
    app.telemetry
        .roster
        .heartbeat(service_id, &agent.service, &agent.environment, row);
    Ok(HeartbeatAck {
        desired_version: snapshot.for_instance(&beat.instance_id).map(|p| p.version),
    })
}

fn instance_view(
    now_ms: i64,
    service: &ServiceRow,
    snapshot: &Snapshot,
    row: InstanceRow,
) -> InstanceView {
    let desired = snapshot.for_instance(&row.instance_id).map(|p| p.version);
    let applied = row.policy_version.map(|v| v as u64);
    InstanceView {
        service: service.name.clone(),
        environment: service.environment.clone(),
        lagging: desired.is_some() && applied != desired,
        instance_id: row.instance_id,
        agent_version: row.agent_version,
        policy_version: applied,
        policy_source: row.policy_source,
        desired_version: desired,
        status: status(now_ms - row.last_seen_at),
        last_seen_at_ms: row.last_seen_at,
        started_at_ms: row.started_at,
        refused_policy: row.refused.policy(),
    }
}

/// The service's instances heard from in the last day: what each runs, what
/// it should run, and whether it lags.
pub async fn of_service(app: &App, service: &ServiceRow) -> ApiResult<Vec<InstanceView>> {
    let snapshot = app.hub.snapshot(service.id).await?;
    let now_ms = app.clock.now_ms();
    let rows = app.store.instances(service.id, now_ms - FORGET_MS).await?;
    Ok(rows
        .into_iter()
        .map(|r| instance_view(app.clock.now_ms(), service, &snapshot, r))
        .collect())
}

/// Every instance of every service heard from in the last day. Lagging
/// instances come first, then by service, environment and instance id.
pub async fn fleet(app: &App) -> ApiResult<Vec<InstanceView>> {
    let services: HashMap<i64, ServiceRow> = app
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let rows = app
        .store
        .all_instances(app.clock.now_ms() - FORGET_MS)
        .await?;
    let mut snapshots = HashMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        // An instance of a service removed since is not part of the fleet.
        let Some(service) = services.get(&row.service_id) else {
            continue;
        };
        let snapshot = match snapshots.get(&row.service_id) {
            Some(s) => Arc::clone(s),
            None => {
                let s = app.hub.snapshot(row.service_id).await?;
                snapshots.insert(row.service_id, Arc::clone(&s));
                s
            }
        };
        views.push(instance_view(
            app.clock.now_ms(),
            service,
            &snapshot,
            row.instance,
        ));
    }
    views.sort_by(|a, b| {
        (!a.lagging, &a.service, &a.environment, &a.instance_id).cmp(&(
            !b.lagging,
            &b.service,
            &b.environment,
            &b.instance_id,
        ))
    });
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_steps_down_at_each_bound() {
        assert_eq!(status(0), InstanceStatus::Up);
        assert_eq!(status(UP_MS), InstanceStatus::Up);
        assert_eq!(status(UP_MS + 1), InstanceStatus::Stale);
        assert_eq!(status(STALE_MS), InstanceStatus::Stale);
        assert_eq!(status(STALE_MS + 1), InstanceStatus::Down);
        assert_eq!(status(FORGET_MS), InstanceStatus::Down);
    }
}
