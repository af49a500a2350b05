//! A service's working draft, and dry runs of a document. Both take the
//! policy as JSON or YAML, by content type.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult, body_rejection};
use crate::policy::{drafts, services};
use crate::store::ServiceRow;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use shared::api::{DraftView, ValidationView};
use shared::policy::{Format, ParseError, Policy};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/services/{name}/{env}/draft",
            get(get_draft).put(put_draft),
        )
        .route("/services/{name}/{env}/validate", post(validate_document))
}

fn parse_error(err: ParseError, prefix: &str) -> ApiError {
    match err {
        ParseError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            err.to_string(),
        ),
        other => {
            let field = other
                .path()
                .map(|p| format!("{prefix}{p}"))
                .unwrap_or_else(|| prefix.trim_end_matches('.').to_owned());
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                other.to_string(),
            )
            .with_field(field)
        }
    }
}

/// Reads a policy document from a request body: JSON, or YAML when the
/// content type says so.
fn policy_from_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Policy> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match content_type.as_str() {
        "application/json" => Format::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => Format::Yaml,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the policy as application/json or application/yaml",
            ));
        }
    };
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "the policy is not UTF-8 text",
        )
    })?;
    Policy::parse(text, format).map_err(|e| parse_error(e, ""))
}

/// The service named by the path and the policy document in the body. The
/// service is looked up before the body is parsed, so an unknown service is
/// a 404 whatever the body holds.
async fn service_and_document(
    state: &AppState,
    name: &str,
    env: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(ServiceRow, Policy)> {
    let body = body.map_err(|r| body_rejection(r.status()))?;
    let service = services::find(state, name, env).await?;
    let policy = policy_from_body(headers, &body)?;
    Ok((service, policy))
}

/// The working draft and what validation says about it.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/draft", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = DraftView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_draft(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<DraftView>> {
    user.require(Permission::Read)?;
    let service = services::find(&state, &name, &env).await?;
    Ok(axum::Json(drafts::get(&state, &service).await?))
}

/// Saves the working draft (JSON or YAML). A draft may have validation
/// errors: they block publishing, not saving.
#[utoipa::path(put, path = "/api/v1/services/{name}/{env}/draft", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "A policy document", content_type = "application/json"),
    responses((status = 200, body = DraftView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn put_draft(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<DraftView>> {
    user.require(Permission::Edit)?;
    let (service, policy) = service_and_document(&state, &name, &env, &headers, body).await?;
    Ok(axum::Json(
        drafts::save(&state, &user, &service, policy).await?,
    ))
}

/// Validates a document without saving it, and diffs it against the active
/// version: what `ballast policy apply --dry-run` shows.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/validate", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "A policy document", content_type = "application/json"),
    responses((status = 200, body = ValidationView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn validate_document(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<ValidationView>> {
    user.require(Permission::Read)?;
    let (service, policy) = service_and_document(&state, &name, &env, &headers, body).await?;
    Ok(axum::Json(drafts::dry_run(&state, &service, policy).await?))
}
