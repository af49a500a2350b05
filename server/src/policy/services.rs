//! Services: what policy is stored under, one per name and environment.

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, RolloutRow, ServiceRow, StoreError};
use serde_json::json;
use shared::api::{CreateServiceRequest, RolloutView, ServiceView};

/// Checks a service or environment name: 1 to 63 of lowercase letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit. These names
/// appear in metric labels and URLs, so they are kept plain.
pub fn validate_name(field: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be 1 to 63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

/// The service `name` in `env`, or 404.
pub async fn find(app: &App, name: &str, env: &str) -> ApiResult<ServiceRow> {
    app.store
        .service(name, env)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no service {name} in {env}")))
}

fn service_view(s: ServiceRow, rollout: RolloutView) -> ServiceView {
    ServiceView {
        name: s.name,
        environment: s.environment,
        owner: s.owner,
        created_at_ms: s.created_at,
        rollout,
    }
}

/// A rollout as the API shows it.
pub(crate) fn rollout_view(r: &RolloutRow) -> RolloutView {
    RolloutView {
        active_version: r.active_version.map(|v| v as u64),
        canary_version: r.canary_version.map(|v| v as u64),
        canary_percent: r.canary_percent.map(|p| p.clamp(0, 100) as u8),
    }
}

/// Every service with its rollout.
pub async fn list(app: &App) -> ApiResult<Vec<ServiceView>> {
    let services = app.store.list_services_with_rollouts().await?;
    Ok(services
        .into_iter()
        .map(|(s, rollout)| service_view(s, rollout_view(&rollout)))
        .collect())
}

/// One service with its rollout.
pub async fn get(app: &App, name: &str, env: &str) -> ApiResult<ServiceView> {
    let s = find(app, name, env).await?;
    let rollout = app.store.rollout(s.id).await?;
    Ok(service_view(s, rollout_view(&rollout)))
}

/// Registers a service in an environment, audited, and adds it to the fleet
/// roster at once so that the overview shows it before the next refresh.
pub async fn register(
    app: &App,
    user: &UserPrincipal,
    req: &CreateServiceRequest,
) -> ApiResult<ServiceView> {
    validate_name("name", &req.name)?;
    validate_name("environment", &req.environment)?;
    if req.owner.trim().is_empty() || req.owner.len() > 200 {
        return Err(ApiError::invalid(
            "owner",
            "name the owning team or person (1 to 200 bytes)",
        ));
    }
    let row = app
        .store
        .create_service(
            &req.name,
            &req.environment,
            req.owner.trim(),
            &user.actor(),
            app.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "service.create",
                format!("service:{}/{}", req.name, req.environment),
                json!({ "owner": req.owner }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "name",
                format!("{} already exists in {}", req.name, req.environment),
            ),
            other => other.into(),
        })?;
    app.telemetry
        .roster
        .service(row.id, &row.name, &row.environment);
    Ok(service_view(row, RolloutView::default()))
}
