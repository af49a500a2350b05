//! A running canary: promote it, abort it, or change its share.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiJson, ApiResult};
use crate::policy::{rollout as rollouts, services};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use shared::api::{RolloutAction, RolloutView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/services/{name}/{env}/rollout", post(rollout))
}

/// Promotes, aborts or resizes a canary.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/rollout", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = RolloutAction,
    responses((status = 200, body = RolloutView), (status = 409, description = "No canary is running", body = shared::api::ErrorBody)))]
pub async fn rollout(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(action): ApiJson<RolloutAction>,
) -> ApiResult<axum::Json<RolloutView>> {
    user.require(Permission::PublishLowRisk)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(
        rollouts::change(&state, &user, &service, action).await?,
    ))
}
