//! Dead letters for people: search, the entry page, the queue's figures,
//! and requesting actions (one entry or many).

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::dead_letters::{actions, search};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::policy::services;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use shared::api::{
    ActionRequest, ActionView, BulkActionRequest, BulkItemResult, DeadLetterDetail, DeadLetterPage,
    DeadLetterSummary,
};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/bulk-actions", post(bulk_request))
        .route("/dead-letters/{id}", get(get_dead_letter))
        .route("/dead-letters/{id}/actions", post(request_action))
        .route("/services/{name}/{env}/dead-letters/summary", get(summary))
}

/// Dead letters matching the filters, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "dead-letters", params(search::SearchQuery),
    responses((status = 200, body = DeadLetterPage),
        (status = 422, description = "A filter is malformed; `field` names it", body = shared::api::ErrorBody)))]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<search::SearchQuery>, QueryRejection>,
) -> ApiResult<axum::Json<DeadLetterPage>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(search::search(&state, &q).await?))
}

/// One dead letter with its actions, history, and what each action would need.
#[utoipa::path(get, path = "/api/v1/dead-letters/{id}", tag = "dead-letters",
    params(("id" = String, Path)),
    responses((status = 200, body = DeadLetterDetail), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_dead_letter(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeadLetterDetail>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(search::detail(&state, &id).await?))
}

/// Asks for an action on a dead letter. It waits for an approver when the
/// policy says so, and goes to the service's agents at once otherwise.
#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/actions", tag = "dead-letters",
    params(("id" = String, Path)), request_body = ActionRequest,
    responses((status = 201, body = ActionView),
        (status = 403, description = "Not an engineer", body = shared::api::ErrorBody),
        (status = 409, description = "The entry changed, is not open, or already has an action", body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn request_action(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<ApiJson<ActionRequest>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<ActionView>)> {
    user.require(Permission::RequestDlqAction)?;
    let ApiJson(req) = body?;
    Ok((
        StatusCode::CREATED,
        axum::Json(actions::request(&state, &user, &id, &req).await?),
    ))
}

/// The same action on many dead letters, each handled as if alone.
#[utoipa::path(post, path = "/api/v1/dead-letters/bulk-actions", tag = "dead-letters",
    request_body = BulkActionRequest,
    responses((status = 200, body = Vec<BulkItemResult>), (status = 403, body = shared::api::ErrorBody)))]
pub async fn bulk_request(
    State(state): State<AppState>,
    user: UserPrincipal,
    body: Result<ApiJson<BulkActionRequest>, ApiError>,
) -> ApiResult<axum::Json<Vec<BulkItemResult>>> {
    user.require(Permission::RequestDlqAction)?;
    let ApiJson(req) = body?;
    Ok(axum::Json(
        actions::bulk_request(&state, &user, &req).await?,
    ))
}

/// A service's queue in figures: depth, oldest age, top error classes and
/// failed nodes, depth by hour, actions waiting and uncertain.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/dead-letters/summary", tag = "dead-letters",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = DeadLetterSummary), (status = 404, body = shared::api::ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<DeadLetterSummary>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(search::summary(&state, &service).await?))
}
