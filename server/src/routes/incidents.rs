//! Incident controls.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::policy::incidents;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use shared::api::{BreakerOverrideRequest, BreakerOverrideResult};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/incidents/breaker-override", post(breaker_override))
}

/// Forces a dependency's breaker open or closed across the fleet for a
/// while (or lifts that), publishing each service's next version through
/// the normal path: high-risk services wait for an approver.
#[utoipa::path(post, path = "/api/v1/incidents/breaker-override", tag = "policy",
    request_body = BreakerOverrideRequest,
    responses((status = 200, description = "What happened to each service", body = Vec<BreakerOverrideResult>),
        (status = 403, description = "Not allowed to publish", body = shared::api::ErrorBody),
        (status = 422, description = "A field is wrong, or no service has that breaker", body = shared::api::ErrorBody)))]
pub async fn breaker_override(
    State(state): State<AppState>,
    user: UserPrincipal,
    body: Result<ApiJson<BreakerOverrideRequest>, ApiError>,
) -> ApiResult<axum::Json<Vec<BreakerOverrideResult>>> {
    user.require(Permission::PublishLowRisk)?;
    let ApiJson(req) = body?;
    Ok(axum::Json(
        incidents::override_breakers(&state, &user, &req).await?,
    ))
}
