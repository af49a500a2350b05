//! User administration (admin only).

use crate::app::AppState;
use crate::auth::{UserPrincipal, password};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::store::AuditRecord;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use serde_json::json;
use shared::api::{CreateUserRequest, UpdateUserRequest, UserView};
use shared::role::{Permission, Role};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
}

/// Checks a username: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> ApiResult<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "username must be 1 to 64 characters: letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

/// Checks a new password's length.
pub fn validate_password(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if chars < password::MIN_PASSWORD_LEN {
        Err(ApiError::invalid(
            "password",
            format!(
                "password must have at least {} characters",
                password::MIN_PASSWORD_LEN
            ),
        ))
    } else if password.len() > 1024 {
        Err(ApiError::invalid(
            "password",
            "password must be at most 1024 bytes",
        ))
    } else {
        Ok(())
    }
}

/// Every user.
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserView>), (status = 403, body = shared::api::ErrorBody))
)]
pub async fn list_users(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<UserView>>> {
    user.require(Permission::ManageUsers)?;
    let users = state.store.list_users().await?;
    Ok(axum::Json(users.iter().map(|u| u.view()).collect()))
}

/// Creates a user.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "The username is taken", body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    user.require(Permission::ManageUsers)?;
    validate_username(&req.username)?;
    validate_password(&req.password)?;
    let hash = password::hash(req.password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let created = state
        .store
        .create_user(
            &req.username,
            &hash,
            req.role,
            state.clock.now_ms(),
            &AuditRecord::new(user.actor(), "user.create", "", json!({ "role": req.role })),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created.view())))
}

/// Changes a user's role or disables them. The last enabled admin cannot be
/// demoted or disabled, so the installation can never lock itself out.
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    request_body = UpdateUserRequest,
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, body = UserView),
        (status = 404, body = shared::api::ErrorBody),
        (status = 409, description = "Would remove the last admin", body = shared::api::ErrorBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<axum::Json<UserView>> {
    user.require(Permission::ManageUsers)?;
    let users = state.store.list_users().await?;
    let target = users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found("no user with that id"))?;
    let loses_admin = target.role == Role::Admin
        && !target.disabled
        && (req.role.is_some_and(|r| r != Role::Admin) || req.disabled == Some(true));
    let active_admins = users
        .iter()
        .filter(|u| u.role == Role::Admin && !u.disabled)
        .count();
    if loses_admin && active_admins <= 1 {
        let field = if req.disabled == Some(true) {
            "disabled"
        } else {
            "role"
        };
        return Err(ApiError::conflict(
            field,
            "this is the last enabled admin; create another admin first",
        ));
    }
    let updated = state
        .store
        .update_user(
            id,
            req.role,
            req.disabled,
            state.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "user.update",
                "",
                json!({ "role": req.role, "disabled": req.disabled }),
            ),
        )
        .await?;
    Ok(axum::Json(updated.view()))
}
