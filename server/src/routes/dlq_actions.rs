//! Dead-letter actions for approvers: the inbox, decisions, withdrawals and
//! bulk approval. Only people reach these: a service token is not a user.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::dead_letters::{actions, search};
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use shared::api::{ActionDecision, ActionView, BulkDecision, BulkItemResult, InboxCount};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dlq-actions", get(list_actions))
        .route("/dlq-actions/count", get(count))
        .route("/dlq-actions/bulk-approve", post(bulk_approve))
        .route("/dlq-actions/{id}/approve", post(approve))
        .route("/dlq-actions/{id}/reject", post(reject))
        .route("/dlq-actions/{id}/withdraw", post(withdraw))
}

/// Filters of the action list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// An action status, such as `requested`; all when absent.
    pub status: Option<String>,
    /// Service name (with `environment`).
    pub service: Option<String>,
    /// Environment (with `service`).
    pub environment: Option<String>,
}

/// Dead-letter actions, newest first.
#[utoipa::path(get, path = "/api/v1/dlq-actions", tag = "dead-letters", params(ActionQuery),
    responses((status = 200, body = Vec<ActionView>), (status = 422, body = shared::api::ErrorBody)))]
pub async fn list_actions(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<ActionQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<ActionView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let service = match (q.service.as_deref(), q.environment.as_deref()) {
        (Some(s), Some(e)) => Some((s, e)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "environment",
                "service and environment go together",
            ));
        }
    };
    Ok(axum::Json(
        search::actions(&state, q.status.as_deref(), service).await?,
    ))
}

/// What waits for the signed-in user's decision (zero for those who may
/// not decide).
#[utoipa::path(get, path = "/api/v1/dlq-actions/count", tag = "dead-letters",
    responses((status = 200, body = InboxCount)))]
pub async fn count(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<InboxCount>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(search::inbox_count(&state, &user).await?))
}

/// Approves someone else's request. 409 if the entry or the policy changed
/// since the request.
#[utoipa::path(post, path = "/api/v1/dlq-actions/{id}/approve", tag = "dead-letters",
    params(("id" = String, Path)), request_body = ActionDecision,
    responses((status = 200, body = ActionView),
        (status = 403, description = "Your own request, or not an approver", body = shared::api::ErrorBody),
        (status = 409, description = "Decided already, expired, or stale", body = shared::api::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<ApiJson<ActionDecision>, ApiError>,
) -> ApiResult<axum::Json<ActionView>> {
    decision(&state, &user, &id, body, true).await
}

/// Rejects someone else's request; the entry is open again.
#[utoipa::path(post, path = "/api/v1/dlq-actions/{id}/reject", tag = "dead-letters",
    params(("id" = String, Path)), request_body = ActionDecision,
    responses((status = 200, body = ActionView), (status = 403, body = shared::api::ErrorBody),
        (status = 409, body = shared::api::ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<ApiJson<ActionDecision>, ApiError>,
) -> ApiResult<axum::Json<ActionView>> {
    decision(&state, &user, &id, body, false).await
}

/// An approver's decision on someone else's request.
async fn decision(
    state: &AppState,
    user: &UserPrincipal,
    id: &str,
    body: Result<ApiJson<ActionDecision>, ApiError>,
    approve: bool,
) -> ApiResult<axum::Json<ActionView>> {
    user.require(Permission::Approve)?;
    let ApiJson(d) = body?;
    Ok(axum::Json(
        actions::decide(state, user, id, approve, &d.reason).await?,
    ))
}

/// Takes back a request (the requester) or an approval (the approver)
/// before dispatch.
#[utoipa::path(post, path = "/api/v1/dlq-actions/{id}/withdraw", tag = "dead-letters",
    params(("id" = String, Path)), request_body = ActionDecision,
    responses((status = 200, body = ActionView), (status = 403, body = shared::api::ErrorBody),
        (status = 409, body = shared::api::ErrorBody)))]
pub async fn withdraw(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<ApiJson<ActionDecision>, ApiError>,
) -> ApiResult<axum::Json<ActionView>> {
    let ApiJson(d) = body?;
    Ok(axum::Json(
        actions::withdraw(&state, &user, &id, &d.reason).await?,
    ))
}

/// Approves many actions, each checked as if alone.
#[utoipa::path(post, path = "/api/v1/dlq-actions/bulk-approve", tag = "dead-letters",
    request_body = BulkDecision,
    responses((status = 200, body = Vec<BulkItemResult>), (status = 403, body = shared::api::ErrorBody)))]
pub async fn bulk_approve(
    State(state): State<AppState>,
    user: UserPrincipal,
    body: Result<ApiJson<BulkDecision>, ApiError>,
) -> ApiResult<axum::Json<Vec<BulkItemResult>>> {
    user.require(Permission::Approve)?;
    let ApiJson(d) = body?;
    Ok(axum::Json(actions::bulk_approve(&state, &user, &d).await?))
}
