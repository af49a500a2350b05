//! Service tokens for enforcement agents (admin only).

use crate::app::AppState;
use crate::auth::{UserPrincipal, new_service_token};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::{AuditRecord, TokenRow};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde_json::json;
use shared::api::{CreateTokenRequest, CreatedToken, ServiceTokenView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}

/// Checks a service or environment name: 1 to 63 of lowercase letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit. These names
/// appear in metric labels and URLs, so they are kept plain.
pub fn validate_name(field: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be 1 to 63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

/// Creates a token and stores only its hash. Shared by the API and the CLI.
pub async fn issue_token(
    state_store: &crate::store::Store,
    now_ms: i64,
    actor: &str,
    service: &str,
    environment: &str,
) -> ApiResult<CreatedToken> {
    validate_name("service", service)?;
    validate_name("environment", environment)?;
    let (id, token, secret_hash) = new_service_token();
    let row = TokenRow {
        id: id.clone(),
        secret_hash,
        service: service.to_owned(),
        environment: environment.to_owned(),
        created_by: actor.to_owned(),
        created_at: now_ms,
        revoked_at: None,
    };
    state_store
        .create_token(
            &row,
            &AuditRecord::new(
                actor,
                "token.create",
                format!("token:{id}"),
                json!({ "service": service, "environment": environment }),
            ),
        )
        .await?;
    Ok(CreatedToken {
        token,
        info: row.view(),
    })
}

/// Every token, without secrets.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ServiceTokenView>), (status = 403, body = shared::api::ErrorBody))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<ServiceTokenView>>> {
    user.require(Permission::ManageTokens)?;
    let tokens = state.store.list_tokens().await?;
    Ok(axum::Json(tokens.iter().map(|t| t.view()).collect()))
}

/// Creates a token for one service and environment. The secret is in this
/// response and nowhere else.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 422, body = shared::api::ErrorBody))
)]
pub async fn create_token(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    user.require(Permission::ManageTokens)?;
    let created = issue_token(
        &state.store,
        state.clock.now_ms(),
        &user.actor(),
        &req.service,
        &req.environment,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revokes a token; agents using it are refused from their next request.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = ServiceTokenView), (status = 404, body = shared::api::ErrorBody))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ServiceTokenView>> {
    user.require(Permission::ManageTokens)?;
    let row = state
        .store
        .revoke_token(
            &id,
            state.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "token.revoke",
                format!("token:{id}"),
                json!({}),
            ),
        )
        .await?;
    state.auth.forget_token(&id);
    Ok(axum::Json(row.view()))
}
