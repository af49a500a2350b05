//! Service level objectives: each service's error budgets, burn rates and
//! canary analysis, and the fleet's tightest budgets for the overview.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::ApiResult;
use crate::policy::services;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use shared::api::{FleetObjectives, ServiceObjectives};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/{name}/{env}/objectives", get(service_objectives))
        .route("/objectives", get(fleet_objectives))
}

/// The service's objectives under its active policy: for each, the budget
/// left over its window, burn rates over five windows and a daily
/// burn-down; and the running canary's comparison with the stable version.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/objectives", tag = "objectives",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = ServiceObjectives),
        (status = 401, body = shared::api::ErrorBody), (status = 404, body = shared::api::ErrorBody)))]
pub async fn service_objectives(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<Json<ServiceObjectives>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    let now = state.clock.now_ms();
    Ok(Json(
        crate::objectives::of_service(&state, &service, now).await?,
    ))
}

/// Every service with objectives: its tightest budget, safety violations
/// and latest automatic canary decision, for the overview's cards.
#[utoipa::path(get, path = "/api/v1/objectives", tag = "objectives",
    responses((status = 200, body = FleetObjectives), (status = 401, body = shared::api::ErrorBody)))]
pub async fn fleet_objectives(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<Json<FleetObjectives>> {
    user.require(Permission::Read)?;
    let now = state.clock.now_ms();
    Ok(Json(crate::objectives::fleet(&state, now).await?))
}
