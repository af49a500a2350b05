//! Runbooks and incident checklists.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::runbooks::{self, RunbookFilter, checklists};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;
use shared::api::{
    ChecklistStart, ChecklistView, RunbookSummary, RunbookTemplate, RunbookVersionSummary,
    RunbookView, RunbookWrite, StepTick,
};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runbooks", get(list_runbooks))
        .route("/runbook-template", get(template))
        .route("/runbooks/{slug}", get(get_runbook).put(put_runbook))
        .route("/runbooks/{slug}/versions", get(runbook_history))
        .route("/runbooks/{slug}/versions/{version}", get(runbook_version))
        .route("/runbooks/{slug}/checklists", post(start_checklist))
        .route("/checklists", get(list_checklists))
        .route("/checklists/{id}", get(get_checklist))
        .route("/checklists/{id}/steps/{index}", put(tick_step))
        .route("/checklists/{id}/close", post(close_checklist))
}

/// Runbooks, by slug, narrowed by what they are linked to.
#[utoipa::path(get, path = "/api/v1/runbooks", tag = "runbooks", params(RunbookFilter),
    responses((status = 200, body = Vec<RunbookSummary>),
        (status = 422, description = "A filter is malformed", body = shared::api::ErrorBody)))]
pub async fn list_runbooks(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<RunbookFilter>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<RunbookSummary>>> {
    user.require(Permission::Read)?;
    let Query(filter) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(runbooks::list(&state, &filter).await?))
}

/// The text a new runbook starts from: the incident steps as a checklist.
#[utoipa::path(get, path = "/api/v1/runbook-template", tag = "runbooks",
    responses((status = 200, body = RunbookTemplate)))]
pub async fn template(user: UserPrincipal) -> ApiResult<axum::Json<RunbookTemplate>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(runbooks::template()))
}

/// A runbook's latest version, rendered.
#[utoipa::path(get, path = "/api/v1/runbooks/{slug}", tag = "runbooks",
    params(("slug" = String, Path)),
    responses((status = 200, body = RunbookView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_runbook(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<RunbookView>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(runbooks::get(&state, &slug, None).await?))
}

/// Creates a runbook (no `base_version`) or writes its next version
/// (`base_version` = the version edited).
#[utoipa::path(put, path = "/api/v1/runbooks/{slug}", tag = "runbooks",
    params(("slug" = String, Path)), request_body = RunbookWrite,
    responses((status = 200, description = "A new version", body = RunbookView),
        (status = 201, description = "Created", body = RunbookView),
        (status = 403, description = "Not an engineer", body = shared::api::ErrorBody),
        (status = 404, description = "base_version given, but no such runbook", body = shared::api::ErrorBody),
        (status = 409, description = "The runbook exists, or moved on past base_version", body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn put_runbook(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(slug): Path<String>,
    body: Result<ApiJson<RunbookWrite>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<RunbookView>)> {
    user.require(Permission::Edit)?;
    let ApiJson(write) = body?;
    let (status, view) = runbooks::write(&state, &user, &slug, &write).await?;
    Ok((status, axum::Json(view)))
}

/// A runbook's versions, newest first.
#[utoipa::path(get, path = "/api/v1/runbooks/{slug}/versions", tag = "runbooks",
    params(("slug" = String, Path)),
    responses((status = 200, body = Vec<RunbookVersionSummary>), (status = 404, body = shared::api::ErrorBody)))]
pub async fn runbook_history(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<RunbookVersionSummary>>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(runbooks::history(&state, &slug).await?))
}

/// One version of a runbook, rendered.
#[utoipa::path(get, path = "/api/v1/runbooks/{slug}/versions/{version}", tag = "runbooks",
    params(("slug" = String, Path), ("version" = u64, Path)),
    responses((status = 200, body = RunbookView), (status = 404, body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn runbook_version(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((slug, version)): Path<(String, String)>,
) -> ApiResult<axum::Json<RunbookView>> {
    user.require(Permission::Read)?;
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::invalid("version", "must be a version number"))?;
    Ok(axum::Json(
        runbooks::get(&state, &slug, Some(version)).await?,
    ))
}

/// Starts working through a runbook's steps for an incident.
#[utoipa::path(post, path = "/api/v1/runbooks/{slug}/checklists", tag = "runbooks",
    params(("slug" = String, Path)), request_body = ChecklistStart,
    responses((status = 201, body = ChecklistView),
        (status = 403, body = shared::api::ErrorBody), (status = 404, body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn start_checklist(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(slug): Path<String>,
    body: Result<ApiJson<ChecklistStart>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<ChecklistView>)> {
    user.require(Permission::Respond)?;
    let ApiJson(req) = body?;
    Ok((
        StatusCode::CREATED,
        axum::Json(checklists::start(&state, &user, &slug, &req).await?),
    ))
}

/// Which checklists to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChecklistQuery {
    /// Only checklists of this runbook.
    pub runbook: Option<String>,
}

/// Checklists, open ones first (at most 200).
#[utoipa::path(get, path = "/api/v1/checklists", tag = "runbooks", params(ChecklistQuery),
    responses((status = 200, body = Vec<ChecklistView>), (status = 422, body = shared::api::ErrorBody)))]
pub async fn list_checklists(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<ChecklistQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<ChecklistView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        checklists::list(&state, q.runbook.as_deref()).await?,
    ))
}

/// One checklist: each step's state and who ticked it.
#[utoipa::path(get, path = "/api/v1/checklists/{id}", tag = "runbooks",
    params(("id" = String, Path)),
    responses((status = 200, body = ChecklistView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_checklist(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ChecklistView>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(checklists::get(&state, &id).await?))
}

/// Ticks or unticks a step, recording who and when.
#[utoipa::path(put, path = "/api/v1/checklists/{id}/steps/{index}", tag = "runbooks",
    params(("id" = String, Path), ("index" = u32, Path)), request_body = StepTick,
    responses((status = 200, body = ChecklistView),
        (status = 403, body = shared::api::ErrorBody), (status = 404, body = shared::api::ErrorBody),
        (status = 409, description = "The checklist is closed", body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn tick_step(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((id, index)): Path<(String, String)>,
    body: Result<ApiJson<StepTick>, ApiError>,
) -> ApiResult<axum::Json<ChecklistView>> {
    user.require(Permission::Respond)?;
    let index: u32 = index
        .parse()
        .map_err(|_| ApiError::invalid("index", "must be a step number, from 0"))?;
    let ApiJson(req) = body?;
    Ok(axum::Json(
        checklists::tick(&state, &user, &id, index, &req).await?,
    ))
}

/// Closes a checklist: the incident is over.
#[utoipa::path(post, path = "/api/v1/checklists/{id}/close", tag = "runbooks",
    params(("id" = String, Path)),
    responses((status = 200, body = ChecklistView),
        (status = 403, body = shared::api::ErrorBody), (status = 404, body = shared::api::ErrorBody),
        (status = 409, description = "Already closed", body = shared::api::ErrorBody)))]
pub async fn close_checklist(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ChecklistView>> {
    user.require(Permission::Respond)?;
    Ok(axum::Json(checklists::close(&state, &user, &id).await?))
}
