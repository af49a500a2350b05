//! Services: registering one in an environment, and reading each with its
//! rollout.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiJson, ApiResult};
use crate::policy::services;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use shared::api::{CreateServiceRequest, ServiceView};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(list_services).post(create_service))
        .route("/services/{name}/{env}", get(get_service))
}

/// Every service with its rollout.
#[utoipa::path(get, path = "/api/v1/services", tag = "policy",
    responses((status = 200, body = Vec<ServiceView>)))]
pub async fn list_services(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<ServiceView>>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(services::list(&state).await?))
}

/// Registers a service in an environment.
#[utoipa::path(post, path = "/api/v1/services", tag = "policy", request_body = CreateServiceRequest,
    responses((status = 201, body = ServiceView), (status = 409, body = shared::api::ErrorBody)))]
pub async fn create_service(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(req): ApiJson<CreateServiceRequest>,
) -> ApiResult<(StatusCode, axum::Json<ServiceView>)> {
    user.require(Permission::Edit)?;
    let created = services::register(&state, &user, &req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// One service with its rollout.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = ServiceView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_service(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<ServiceView>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(services::get(&state, &name, &env).await?))
}
