//! The fleet of agent instances: what each runs, what it should run, and
//! whether it is up.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::ApiResult;
use crate::policy::{instances, services};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use shared::api::InstanceView;
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/{name}/{env}/instances", get(service_instances))
        .route("/fleet/instances", get(fleet_instances))
}

/// The service's instances: what each runs, what it should run, and whether
/// it lags.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/instances", tag = "fleet",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Vec<InstanceView>)))]
pub async fn service_instances(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<InstanceView>>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(instances::of_service(&state, &service).await?))
}

/// Every instance of every service heard from in the last day: what each
/// runs, what it should run, and whether it lags. Lagging instances come
/// first, then by service, environment and instance id.
#[utoipa::path(get, path = "/api/v1/fleet/instances", tag = "fleet",
    responses((status = 200, body = Vec<InstanceView>)))]
pub async fn fleet_instances(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<InstanceView>>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(instances::fleet(&state).await?))
}
