//! Reading the audit log.

use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;
use shared::api::AuditEntryView;
use shared::role::Permission;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list_audit))
}

/// Paging for the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many entries (1 to 500, default 100).
    pub limit: Option<i64>,
    /// Only entries older than this seq, for the next page.
    pub before: Option<i64>,
}

/// Audit entries, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntryView>), (status = 403, body = shared::api::ErrorBody))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Vec<AuditEntryView>>> {
    user.require(Permission::ReadAudit)?;
    let Query(query) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let rows = state.store.list_audit(limit, query.before).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| AuditEntryView {
                seq: r.seq,
                at_ms: r.at_ms,
                actor: r.actor,
                action: r.action,
                target: r.target,
                detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
                hash: r.hash,
            })
            .collect(),
    ))
}
