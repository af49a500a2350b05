//! User administration (admin only).

use crate::app::AppState;
use crate::auth::{UserPrincipal, users};
use crate::error::{ApiJson, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use shared::api::{CreateUserRequest, UpdateUserRequest, UserView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
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
    let created = users::create(&state, &user, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
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
    Ok(axum::Json(users::update(&state, &user, id, &req).await?))
}
