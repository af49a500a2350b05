//! Service tokens for enforcement agents (admin only).

use crate::app::AppState;
use crate::auth::{UserPrincipal, tokens};
use crate::error::{ApiJson, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use shared::api::{CreateTokenRequest, CreatedToken, ServiceTokenView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
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
    let created = tokens::issue(
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
    Ok(axum::Json(
        tokens::revoke(&state, &user.actor(), &id).await?,
    ))
}
