//! Publish requests that wait for a second person: listing them, and
//! approving or rejecting someone else's.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult, body_rejection};
use crate::policy::approval;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use shared::api::{DecisionRequest, PublishRequestView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/publish-requests", get(list_publish_requests))
        .route("/publish-requests/{id}/approve", post(approve))
        .route("/publish-requests/{id}/reject", post(reject))
}

/// Filter for publish requests.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RequestQuery {
    /// `pending`, `approved` or `rejected`; all when absent.
    pub status: Option<String>,
}

/// Publish requests, newest first.
#[utoipa::path(get, path = "/api/v1/publish-requests", tag = "policy", params(RequestQuery),
    responses((status = 200, body = Vec<PublishRequestView>)))]
pub async fn list_publish_requests(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<PublishRequestView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        approval::list(&state, q.status.as_deref()).await?,
    ))
}

/// The optional JSON body of a decision.
fn decision_comment(body: Result<Bytes, BytesRejection>) -> ApiResult<Option<String>> {
    let body = body.map_err(|r| body_rejection(r.status()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let req: DecisionRequest = crate::error::parse_json(&body)?;
    Ok(req.comment)
}

/// Approves someone else's request; publishes it.
#[utoipa::path(post, path = "/api/v1/publish-requests/{id}/approve", tag = "policy",
    params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = PublishRequestView), (status = 403, description = "Your own request, or not an approver", body = shared::api::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<PublishRequestView>> {
    let comment = decision_comment(body)?;
    user.require(Permission::Approve)?;
    Ok(axum::Json(
        approval::decide(&state, &user, &id, true, comment).await?,
    ))
}

/// Rejects someone else's request.
#[utoipa::path(post, path = "/api/v1/publish-requests/{id}/reject", tag = "policy",
    params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = PublishRequestView), (status = 403, body = shared::api::ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<PublishRequestView>> {
    let comment = decision_comment(body)?;
    user.require(Permission::Approve)?;
    Ok(axum::Json(
        approval::decide(&state, &user, &id, false, comment).await?,
    ))
}
