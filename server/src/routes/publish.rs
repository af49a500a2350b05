//! Publishing a new version of a service's policy, and rolling back to the
//! content of an earlier one. Either may wait for an approver instead (see
//! `publish_requests`).

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiJson, ApiResult};
use crate::policy::{publish as publishing, services};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use shared::api::{PublishOutcome, PublishRequest, RollbackRequest};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/{name}/{env}/publish", post(publish))
        .route("/services/{name}/{env}/rollback", post(rollback))
}

/// 201 for a new version, 202 for a request that waits for an approver.
fn answer(outcome: PublishOutcome) -> (StatusCode, axum::Json<PublishOutcome>) {
    let status = match outcome {
        PublishOutcome::Published { .. } => StatusCode::CREATED,
        PublishOutcome::PendingApproval { .. } => StatusCode::ACCEPTED,
    };
    (status, axum::Json(outcome))
}

/// Publishes the draft, or the document in the body, as a new immutable
/// version — or files it for approval when the policy needs a second person.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/publish", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "Published", body = PublishOutcome),
        (status = 202, description = "Waiting for an approver", body = PublishOutcome),
        (status = 422, description = "Validation errors; `details` lists every finding", body = shared::api::ErrorBody),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<PublishRequest>,
) -> ApiResult<(StatusCode, axum::Json<PublishOutcome>)> {
    user.require(Permission::PublishLowRisk)?;
    let service = services::find(&state, &name, &env).await?;
    let outcome = publishing::publish(
        &state,
        &user,
        &service,
        req.document,
        &req.message,
        req.canary_percent,
    )
    .await?;
    Ok(answer(outcome))
}

/// Publishes an earlier version's content as a new version. Goes through the
/// same checks, approvals included, as any publish.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/rollback", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = RollbackRequest,
    responses((status = 201, body = PublishOutcome), (status = 202, body = PublishOutcome)))]
pub async fn rollback(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<(StatusCode, axum::Json<PublishOutcome>)> {
    user.require(Permission::PublishLowRisk)?;
    let service = services::find(&state, &name, &env).await?;
    let outcome =
        publishing::rollback(&state, &user, &service, req.to_version, &req.message).await?;
    Ok(answer(outcome))
}
