//! Publishing: a validated document becomes the next immutable version and
//! goes out to the fleet (all of it, or a canary share), or, when the change
//! needs a second person, waits as a publish request for an approver (see
//! [`approval`](super::approval)). A rollback is a publish of an earlier
//! version's content and goes through the same checks.

use super::rollout::{check_canary_percent, commit};
use super::{
    active_policy, approval, check_header, rejected, stored, to_json, validation_context, versions,
};
use crate::app::App;
use crate::auth::{UserPrincipal, random_hex};
use crate::error::{ApiError, ApiResult};
use crate::policy_hub::document_etag;
use crate::store::{AuditRecord, NewVersion, PublishRequestRow, ServiceRow, StoreError};
use axum::http::StatusCode;
use serde_json::json;
use shared::api::PublishOutcome;
use shared::policy::Policy;
use shared::role::Permission;

/// Publishes `document`, or the saved draft when it is `None`.
pub async fn publish(
    app: &App,
    user: &UserPrincipal,
    service: &ServiceRow,
    document: Option<Policy>,
    message: &str,
    canary_percent: Option<u8>,
) -> ApiResult<PublishOutcome> {
    let policy = match document {
        Some(p) => p,
        None => {
            let draft = app.store.draft(service.id).await?.ok_or_else(|| {
                ApiError::invalid(
                    "document",
                    "no draft is saved; send the policy as `document`",
                )
            })?;
            stored(&draft.document)?
        }
    };
    publish_policy(
        app,
        user,
        service,
        policy,
        message,
        canary_percent,
        "publish",
    )
    .await
}

/// Publishes the content of `to_version` again, as a new version.
pub async fn rollback(
    app: &App,
    user: &UserPrincipal,
    service: &ServiceRow,
    to_version: u64,
    message: &str,
) -> ApiResult<PublishOutcome> {
    let (v, policy) = versions::document(app, service, to_version).await?;
    let message = format!("rollback to version {v}: {message}");
    publish_policy(app, user, service, policy, &message, None, "rollback").await
}

/// Publishes `policy` as the next version, or files it for approval.
/// `action` names the audit event: `policy.publish` or `policy.rollback`.
async fn publish_policy(
    app: &App,
    user: &UserPrincipal,
    service: &ServiceRow,
    policy: Policy,
    message: &str,
    canary_percent: Option<u8>,
    action: &str,
) -> ApiResult<PublishOutcome> {
    user.require(Permission::PublishLowRisk)?;
    if message.trim().is_empty() || message.len() > 2000 {
        return Err(ApiError::invalid("message", "say why, in 1 to 2000 bytes"));
    }
    if let Some(p) = canary_percent {
        check_canary_percent("canary_percent", p)?;
    }
    check_header(&policy, service)?;
    let report = policy.validate(&validation_context(app).await?);
    if report.has_errors() {
        return Err(rejected(&report));
    }
    let active = active_policy(app, service.id).await?;
    let reasons = approval::reasons(active.as_ref().map(|(_, p)| p), &policy);
    let document = to_json(&policy)?;
    let now = app.clock.now_ms();
    let target = format!("service:{}/{}", service.name, service.environment);
    if !reasons.is_empty() {
        let id = random_hex(12);
        app.store
            .create_publish_request(
                &PublishRequestRow {
                    id: id.clone(),
                    service_id: service.id,
                    document,
                    message: message.to_owned(),
                    canary_percent: canary_percent.map(i64::from),
                    reasons: serde_json::to_string(&reasons).unwrap_or_default(),
                    author: user.actor(),
                    created_at: now,
                    status: "pending".into(),
                    decided_by: None,
                    decided_at: None,
                    version: None,
                    base_version: active.as_ref().map(|(v, _)| *v as i64),
                },
                &AuditRecord::new(
                    user.actor(),
                    "policy.publish_requested",
                    target,
                    json!({ "request": id, "action": action, "reasons": reasons, "message": message }),
                ),
            )
            .await?;
        return Ok(PublishOutcome::PendingApproval {
            request_id: id,
            reasons,
            report,
        });
    }
    let etag = document_etag(&document);
    let write = async {
        app.store
            .publish(
                &NewVersion {
                    service_id: service.id,
                    document: &document,
                    etag: &etag,
                    risk_tier: policy.service.risk_tier.as_str(),
                    author: &user.actor(),
                    approver: None,
                    message,
                    canary_percent: canary_percent.map(i64::from),
                    now_ms: now,
                },
                &AuditRecord::new(
                    user.actor(),
                    format!("policy.{action}"),
                    target,
                    json!({ "message": message, "canary_percent": canary_percent, "etag": etag }),
                ),
            )
            .await
            .map_err(publish_race)
    };
    let version = commit(app, service.id, write).await?;
    Ok(PublishOutcome::Published {
        version: version as u64,
        canary: canary_percent.is_some(),
        report,
    })
}

fn publish_race(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "another publish of this service happened at the same time; try again",
        ),
        other => other.into(),
    }
}
