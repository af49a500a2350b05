//! Four-eyes approval of publishes. A publish that raises the stakes (a high
//! or regulated risk tier, a lowered tier, a loosened invariant) is filed as
//! a request; someone other than its author approves it, which publishes
//! exactly the recorded document, or rejects it.

use super::rollout::commit;
use super::{rejected, stored, validation_context};
use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy_hub::document_etag;
use crate::store::{AuditRecord, NewVersion, PublishRequestRow, StoreError};
use axum::http::StatusCode;
use serde_json::json;
use shared::api::PublishRequestView;
use shared::policy::{Policy, RiskTier};

/// Why publishing `new` over `active` needs an approver who is not the author.
pub fn reasons(active: Option<&Policy>, new: &Policy) -> Vec<String> {
    let mut reasons = Vec::new();
    let tier = |p: &Policy| p.service.risk_tier;
    if tier(new) >= RiskTier::High {
        reasons.push(format!("the service's risk tier is {}", tier(new).as_str()));
    } else if let Some(old) = active.filter(|old| tier(old) >= RiskTier::High) {
        reasons.push(format!(
            "it lowers the risk tier from {}",
            tier(old).as_str()
        ));
    }
    if let Some(old) = active {
        for loosening in shared::policy::invariant_loosenings(old, new) {
            reasons.push(format!(
                "it loosens an invariant at {}: {}",
                loosening.path, loosening.message
            ));
        }
    }
    reasons
}

async fn request_view(app: &App, row: PublishRequestRow) -> ApiResult<PublishRequestView> {
    let service = app.store.service_by_id(row.service_id).await?;
    let (name, env) = service.map(|s| (s.name, s.environment)).unwrap_or_default();
    Ok(PublishRequestView {
        id: row.id,
        service: name,
        environment: env,
        message: row.message,
        canary_percent: row.canary_percent.map(|p| p.clamp(0, 100) as u8),
        reasons: serde_json::from_str(&row.reasons).unwrap_or_default(),
        author: row.author,
        created_at_ms: row.created_at,
        status: row.status,
        decided_by: row.decided_by,
        decided_at_ms: row.decided_at,
        version: row.version.map(|v| v as u64),
    })
}

/// Publish requests, newest first; only those in `status` (`pending`,
/// `approved` or `rejected`) when given.
pub async fn list(app: &App, status: Option<&str>) -> ApiResult<Vec<PublishRequestView>> {
    if let Some(s) = status
        && !matches!(s, "pending" | "approved" | "rejected")
    {
        return Err(ApiError::invalid(
            "status",
            "status is pending, approved or rejected",
        ));
    }
    let rows = app.store.publish_requests(status).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(request_view(app, row).await?);
    }
    Ok(out)
}

/// Approves (publishing the request's document and announcing it to the
/// fleet) or rejects someone else's pending request, audited with the
/// approver's optional comment.
pub async fn decide(
    app: &App,
    user: &UserPrincipal,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> ApiResult<PublishRequestView> {
    let row = app
        .store
        .publish_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such publish request"))?;
    crate::approvals::four_eyes(&row.author, user)?;
    if row.status != "pending" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!("this request is already {}", row.status),
        ));
    }
    let service = app
        .store
        .service_by_id(row.service_id)
        .await?
        .ok_or_else(|| ApiError::internal(&"request for a missing service"))?;
    let policy = stored(&row.document)?;
    // The approval binds to what the approver saw: the request's change
    // against the version active when it was filed. If another version was
    // published since, approving would publish over it (and could drop an
    // invariant it added), so the answer is 409 with the change as it
    // stands now, and the author files the request again.
    let active = crate::policy::active_policy(app, row.service_id).await?;
    let active_version = active.as_ref().map(|(v, _)| *v as i64);
    if approve && active_version != row.base_version {
        let mut e = crate::approvals::stale(format!(
            "version {} was published after this request was filed against {}; \
             the request must be filed again against the active version",
            active_version.map_or("none".into(), |v| v.to_string()),
            row.base_version
                .map_or("no version".into(), |v| format!("version {v}")),
        ));
        let changes = active
            .as_ref()
            .map(|(_, p)| shared::policy::diff(p, &policy))
            .unwrap_or_default();
        e.details = Some(json!({ "active_version": active_version,
            "base_version": row.base_version, "changes": changes }));
        return Err(e);
    }
    // The policy may have been published over since the request was filed;
    // the approver approves exactly what is recorded, which still validates.
    let report = policy.validate(&validation_context(app).await?);
    if approve && report.has_errors() {
        return Err(rejected(&report));
    }
    let etag = document_etag(&row.document);
    let approver = user.actor();
    let now = app.clock.now_ms();
    let new = NewVersion {
        service_id: row.service_id,
        document: &row.document,
        etag: &etag,
        risk_tier: policy.service.risk_tier.as_str(),
        author: &row.author,
        approver: Some(&approver),
        message: &row.message,
        canary_percent: row.canary_percent,
        now_ms: now,
    };
    let verb = if approve {
        "policy.publish_approved"
    } else {
        "policy.publish_rejected"
    };
    let write = async {
        app.store
            .decide_publish_request(
                id,
                approve,
                &approver,
                approve.then_some(&new),
                now,
                &AuditRecord::new(
                    approver.clone(),
                    verb,
                    format!("service:{}/{}", service.name, service.environment),
                    json!({ "request": id, "author": row.author, "comment": comment }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "already_decided",
                    "someone decided this request first",
                ),
                other => other.into(),
            })
    };
    // A rejection changes no rollout, so there is nothing to announce.
    if approve {
        commit(app, row.service_id, write).await?;
    } else {
        write.await?;
    }
    let row = app
        .store
        .publish_request(id)
        .await?
        .ok_or_else(|| ApiError::internal(&"request vanished"))?;
    request_view(app, row).await
}
