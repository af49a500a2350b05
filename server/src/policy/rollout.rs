//! Rollouts: which version a service's instances run. The active version
//! serves everyone outside a canary; a canary version serves a stable share
//! of instances until it is promoted or aborted.
//!
//! Agents learn of a change through the policy hub, which holds each
//! service's rollout in memory and wakes its streams. So every write that
//! changes a rollout goes through [`commit`], which announces it once the
//! store has it: no workflow can change what an instance should run and
//! leave the agents on the old version.

use super::services::rollout_view;
use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, CanaryChange, ServiceRow, StoreError};
use axum::http::StatusCode;
use serde_json::json;
use shared::api::{RolloutAction, RolloutView};

/// Runs `write`, which changes the rollout of `service_id`, then tells the
/// hub, here and on every other replica. Announced only after the commit, so
/// a stream never reloads a rollout the store then refused.
pub(super) async fn commit<T>(
    app: &App,
    service_id: i64,
    write: impl Future<Output = ApiResult<T>>,
) -> ApiResult<T> {
    let written = write.await?;
    app.hub.changed(service_id).await?;
    Ok(written)
}

/// Checks a canary's share of instances.
pub(super) fn check_canary_percent(field: &str, percent: u8) -> ApiResult<()> {
    if (1..=99).contains(&percent) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "a canary takes 1 to 99 percent of instances",
        ))
    }
}

/// Promotes, aborts or resizes the running canary, audited, and announces it.
pub async fn change(
    app: &App,
    user: &UserPrincipal,
    service: &ServiceRow,
    action: RolloutAction,
) -> ApiResult<RolloutView> {
    let (change, verb) = match action {
        RolloutAction::Promote => (CanaryChange::Promote, "rollout.promote"),
        RolloutAction::Abort => (CanaryChange::Abort, "rollout.abort"),
        RolloutAction::SetPercent { percent } => {
            check_canary_percent("percent", percent)?;
            (
                CanaryChange::Percent(i64::from(percent)),
                "rollout.set_percent",
            )
        }
    };
    let write = async {
        app.store
            .change_canary(
                service.id,
                change,
                app.clock.now_ms(),
                &AuditRecord::new(
                    user.actor(),
                    verb,
                    format!("service:{}/{}", service.name, service.environment),
                    json!({ "change": format!("{change:?}") }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::new(
                    StatusCode::CONFLICT,
                    "no_canary",
                    "no canary is running for this service",
                ),
                other => other.into(),
            })
    };
    let row = commit(app, service.id, write).await?;
    Ok(rollout_view(&row))
}
