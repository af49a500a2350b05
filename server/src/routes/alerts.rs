//! Alert rules, alerts, silences, webhooks and notifications.

use crate::alerts::{self, AlertQuery, notify, rules, silences};
use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use shared::api::{
    AlertRuleView, AlertRuleWrite, AlertView, NotificationView, SilenceView, SilenceWrite,
    WebhookView, WebhookWrite,
};
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alert-rules", get(list_rules))
        .route(
            "/alert-rules/{name}",
            get(get_rule).put(put_rule).delete(delete_rule),
        )
        .route("/alerts", get(list_alerts))
        .route("/alerts/{id}", get(get_alert))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
        .route("/silences", get(list_silences).post(create_silence))
        .route("/silences/{id}/end", post(end_silence))
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route("/webhooks/{id}", delete(delete_webhook))
        .route("/notifications", get(list_notifications))
}

/// Every alert rule, built-in ones included.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts",
    responses((status = 200, body = Vec<AlertRuleView>)))]
pub async fn list_rules(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<AlertRuleView>>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(rules::list(&state).await?))
}

/// One alert rule.
#[utoipa::path(get, path = "/api/v1/alert-rules/{name}", tag = "alerts",
    params(("name" = String, Path)),
    responses((status = 200, body = AlertRuleView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_rule(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<AlertRuleView>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(rules::get(&state, &name).await?))
}

/// Creates or replaces an alert rule. The runbook is required and must exist.
#[utoipa::path(put, path = "/api/v1/alert-rules/{name}", tag = "alerts",
    params(("name" = String, Path)), request_body = AlertRuleWrite,
    responses((status = 200, description = "Replaced", body = AlertRuleView),
        (status = 201, description = "Created", body = AlertRuleView),
        (status = 403, body = shared::api::ErrorBody),
        (status = 422, description = "A field is wrong, such as a missing runbook; `field` names it", body = shared::api::ErrorBody)))]
pub async fn put_rule(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(name): Path<String>,
    body: Result<ApiJson<AlertRuleWrite>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<AlertRuleView>)> {
    user.require(Permission::Edit)?;
    let ApiJson(rule) = body?;
    let (created, view) = rules::put(&state, &user, &name, rule).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)))
}

/// Deletes an alert rule and its alerts' history.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{name}", tag = "alerts",
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = shared::api::ErrorBody),
        (status = 404, body = shared::api::ErrorBody)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Permission::Edit)?;
    rules::delete(&state, &user, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Alerts: firing first, then pending, then resolved, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = Vec<AlertView>), (status = 404, body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<AlertView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(alerts::list(&state, &q).await?))
}

/// One alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = String, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_alert(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AlertView>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(alerts::get(&state, &id).await?))
}

/// Acknowledges a firing alert: someone is on it.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = String, Path)),
    responses((status = 200, body = AlertView), (status = 403, body = shared::api::ErrorBody),
        (status = 404, body = shared::api::ErrorBody),
        (status = 409, description = "Not firing, or already acknowledged", body = shared::api::ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AlertView>> {
    user.require(Permission::Respond)?;
    silences::acknowledge(&state, &user, &id).await?;
    Ok(axum::Json(alerts::get(&state, &id).await?))
}

/// Which silences to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilenceQuery {
    /// Also those that ended in the last week.
    pub all: Option<bool>,
}

/// Silences in force (or of the last week too, with `all=true`).
#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts", params(SilenceQuery),
    responses((status = 200, body = Vec<SilenceView>), (status = 422, body = shared::api::ErrorBody)))]
pub async fn list_silences(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<SilenceQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<SilenceView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        silences::list(&state, q.all.unwrap_or(false)).await?,
    ))
}

/// Silences matching alerts for a while: they still fire and show, but
/// notify nobody.
#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body = SilenceWrite,
    responses((status = 201, body = SilenceView), (status = 403, body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn create_silence(
    State(state): State<AppState>,
    user: UserPrincipal,
    body: Result<ApiJson<SilenceWrite>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<SilenceView>)> {
    user.require(Permission::Respond)?;
    let ApiJson(req) = body?;
    Ok((
        StatusCode::CREATED,
        axum::Json(silences::create(&state, &user, &req).await?),
    ))
}

/// Ends a silence now.
#[utoipa::path(post, path = "/api/v1/silences/{id}/end", tag = "alerts",
    params(("id" = String, Path)),
    responses((status = 204, description = "Ended"), (status = 403, body = shared::api::ErrorBody),
        (status = 404, body = shared::api::ErrorBody),
        (status = 409, description = "Already ended", body = shared::api::ErrorBody)))]
pub async fn end_silence(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Permission::Respond)?;
    silences::end(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Webhooks that receive notifications (admin: they hold signing secrets
/// and make the server call out).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "alerts",
    responses((status = 200, body = Vec<WebhookView>), (status = 403, body = shared::api::ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    user.require(Permission::ManageTokens)?;
    Ok(axum::Json(notify::list(&state).await?))
}

/// Adds a webhook. Its secret signs every request and is never shown again.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "alerts", request_body = WebhookWrite,
    responses((status = 201, body = WebhookView), (status = 403, body = shared::api::ErrorBody),
        (status = 422, body = shared::api::ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    user: UserPrincipal,
    body: Result<ApiJson<WebhookWrite>, ApiError>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    user.require(Permission::ManageTokens)?;
    let ApiJson(req) = body?;
    Ok((
        StatusCode::CREATED,
        axum::Json(notify::create(&state, &user, &req).await?),
    ))
}

/// Stops using a webhook; what it has not received yet fails.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "alerts",
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = shared::api::ErrorBody),
        (status = 404, body = shared::api::ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Permission::ManageTokens)?;
    notify::delete(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which notifications to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only this alert's.
    pub alert: Option<String>,
}

/// Notifications and how their delivery went, newest first (at most 200).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "alerts", params(NotificationQuery),
    responses((status = 200, body = Vec<NotificationView>), (status = 422, body = shared::api::ErrorBody)))]
pub async fn list_notifications(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<NotificationQuery>, QueryRejection>,
) -> ApiResult<axum::Json<Vec<NotificationView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        alerts::notifications(&state, q.alert.as_deref()).await?,
    ))
}
