//! The policy domain: services, drafts, versions, publishing with four-eyes
//! approval, canary rollouts and the fleet of instances that run them.
//!
//! HTTP handlers in `routes` check the caller's role, parse the request, call
//! one function here and turn its answer into a response. The workflows and
//! their side effects live here, so that every caller (a handler today, a
//! background job tomorrow) gets them whole:
//! - every write that changes which version an instance should run
//!   (a publish, an approved request, a canary step) goes through
//!   [`rollout::commit`], which tells the policy hub, and through it every
//!   agent stream on every replica;
//! - every registration and heartbeat reaches the in-memory fleet roster
//!   right after the store accepted it;
//! - every change is audited in the same transaction as the change itself.
//!
//! Errors are [`ApiError`](crate::error::ApiError)s, whose policy is stated in
//! `crate::error`. Nothing here imports `crate::routes`.

pub mod approval;
pub mod drafts;
pub mod incidents;
pub mod instances;
pub mod publish;
pub mod rollout;
pub mod services;
pub mod versions;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::ServiceRow;
use axum::http::StatusCode;
use shared::policy::{Policy, ValidationContext, ValidationReport};

/// The validation every stored document goes through. Runbook references
/// must name a runbook that exists, so a publish cannot point an open
/// breaker at a page nobody wrote.
pub(crate) async fn validation_context(app: &App) -> ApiResult<ValidationContext> {
    Ok(ValidationContext::new().with_runbooks(app.store.runbook_slugs().await?))
}

/// The document must describe the service it is stored under.
pub(crate) fn check_header(policy: &Policy, service: &ServiceRow) -> ApiResult<()> {
    if policy.service.name != service.name {
        return Err(ApiError::invalid(
            "service.name",
            format!(
                "the document is for {:?}, not {:?}",
                policy.service.name, service.name
            ),
        ));
    }
    if policy.service.environment != service.environment {
        return Err(ApiError::invalid(
            "service.environment",
            format!(
                "the document is for environment {:?}, not {:?}",
                policy.service.environment, service.environment
            ),
        ));
    }
    Ok(())
}

/// 422 carrying every finding, pointing at the first error's path.
pub(crate) fn rejected(report: &ValidationReport) -> ApiError {
    let first = report.errors().next();
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "policy_invalid",
        format!(
            "the policy has {} error(s); the first: {}",
            report.errors().count(),
            first.map(|f| f.message.as_str()).unwrap_or("")
        ),
    );
    e.field = first.map(|f| f.path.clone());
    e.details = serde_json::to_value(report).ok();
    e
}

/// A stored document. It was validated on the way in, so one that no longer
/// parses is the server's fault, not the caller's.
pub(crate) fn stored(document: &str) -> ApiResult<Policy> {
    Policy::from_json(document).map_err(|e| ApiError::internal(&e))
}

fn to_json(policy: &Policy) -> ApiResult<String> {
    policy.to_json().map_err(|e| ApiError::internal(&e))
}

/// The active version's document, if one is published.
pub(crate) async fn active_policy(app: &App, service_id: i64) -> ApiResult<Option<(u64, Policy)>> {
    let rollout = app.store.rollout(service_id).await?;
    let Some(v) = rollout.active_version else {
        return Ok(None);
    };
    let row = app
        .store
        .version(service_id, v)
        .await?
        .ok_or_else(|| ApiError::internal(&"active version missing"))?;
    Ok(Some((v as u64, stored(&row.document)?)))
}
