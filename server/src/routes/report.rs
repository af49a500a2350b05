//! The reliability report of a service, as HTML or Markdown.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy::services;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/services/{name}/{env}/report", get(report))
}

/// The report's format.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// A standalone HTML page.
    #[default]
    Html,
    /// Markdown.
    Markdown,
}

/// How to answer.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `html` (the default) or `markdown`.
    pub format: Option<ReportFormat>,
    /// Ask the browser to save it as a file rather than show it.
    pub download: Option<bool>,
}

/// The service's reliability report: the ten sections of the domain
/// reference and the reliability goals, filled from the active policy, the
/// last day's figures, its alerts, dead letters, runbooks, error budgets and
/// canary decisions.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/report", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path), ReportQuery),
    responses((status = 200, description = "The report", content_type = "text/html", body = String),
        (status = 404, body = shared::api::ErrorBody), (status = 422, body = shared::api::ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let service = services::find(&state, &name, &env).await?;
    let report = crate::report::build(&state, &service).await?;
    let format = q.format.unwrap_or_default();
    let (body, content_type, extension) = match format {
        ReportFormat::Html => (report.to_html()?, "text/html; charset=utf-8", "html"),
        ReportFormat::Markdown => (report.to_markdown()?, "text/markdown; charset=utf-8", "md"),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page has no scripts and one inline stylesheet: allow exactly that.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    if q.download.unwrap_or(false) {
        // Service names are checked to be plain words, but the header is
        // built from a filtered copy all the same.
        let safe: String = format!(
            "reliability-{}-{}.{extension}",
            service.name, service.environment
        )
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}
