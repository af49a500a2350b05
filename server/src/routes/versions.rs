//! A service's published versions, one by one and as diffs.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy::{services, versions};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use shared::api::{DiffView, VersionView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/{name}/{env}/versions", get(list_versions))
        .route(
            "/services/{name}/{env}/versions/{version}",
            get(get_version),
        )
        .route("/services/{name}/{env}/diff", get(diff))
}

/// Every version, newest first (without documents).
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/versions", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Vec<VersionView>)))]
pub async fn list_versions(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<VersionView>>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(versions::list(&state, &service).await?))
}

/// One version, with its document.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/versions/{version}", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path), ("version" = u64, Path)),
    responses((status = 200, body = VersionView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env, version)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<VersionView>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(versions::get(&state, &service, &version).await?))
}

/// Sides of a diff.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// A version number, `active` (the default) or `draft`.
    pub from: Option<String>,
    /// A version number, `active` or `draft` (the default).
    pub to: Option<String>,
}

/// The changes between two versions (or the draft), by path.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/diff", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path), DiffQuery),
    responses((status = 200, body = DiffView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn diff(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> ApiResult<axum::Json<DiffView>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(
        versions::diff(&state, &service, q.from, q.to).await?,
    ))
}
