//! The working draft of a service's policy, and dry runs of a document
//! against what is active. A draft may have validation errors: they block
//! publishing, not saving.

use super::{active_policy, approval, check_header, stored, to_json, validation_context};
use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy_hub::document_etag;
use crate::store::{AuditRecord, ServiceRow};
use serde_json::json;
use shared::api::{DraftView, ValidationView};
use shared::policy::Policy;

/// The saved draft and what validation says about it.
pub async fn get(app: &App, service: &ServiceRow) -> ApiResult<DraftView> {
    let draft = app
        .store
        .draft(service.id)
        .await?
        .ok_or_else(|| ApiError::not_found("no draft saved for this service"))?;
    let policy = stored(&draft.document)?;
    let report = policy.validate(&validation_context(app).await?);
    Ok(DraftView {
        policy,
        updated_by: draft.updated_by,
        updated_at_ms: draft.updated_at,
        report,
    })
}

/// Saves `policy` as the service's draft, audited.
pub async fn save(
    app: &App,
    user: &UserPrincipal,
    service: &ServiceRow,
    policy: Policy,
) -> ApiResult<DraftView> {
    check_header(&policy, service)?;
    let document = to_json(&policy)?;
    let now = app.clock.now_ms();
    app.store
        .save_draft(
            service.id,
            &document,
            &user.actor(),
            now,
            &AuditRecord::new(
                user.actor(),
                "policy.draft_save",
                format!("service:{}/{}", service.name, service.environment),
                json!({ "etag": document_etag(&document) }),
            ),
        )
        .await?;
    let report = policy.validate(&validation_context(app).await?);
    Ok(DraftView {
        policy,
        updated_by: user.actor(),
        updated_at_ms: now,
        report,
    })
}

/// Validates `policy` without saving it, diffs it against the active version
/// and says whether publishing it would need an approver: what
/// `ballast policy apply --dry-run` shows.
pub async fn dry_run(app: &App, service: &ServiceRow, policy: Policy) -> ApiResult<ValidationView> {
    check_header(&policy, service)?;
    let report = policy.validate(&validation_context(app).await?);
    let active = active_policy(app, service.id).await?;
    let changes = match &active {
        Some((_, old)) => shared::policy::diff(old, &policy),
        None => Vec::new(),
    };
    Ok(ValidationView {
        report,
        against_version: active.as_ref().map(|(v, _)| *v),
        approval_reasons: approval::reasons(active.as_ref().map(|(_, p)| p), &policy),
        changes,
    })
}
