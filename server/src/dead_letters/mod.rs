//! The dead-letter domain: work that failed for good, and the approver's
//! job on it, from a report to an action executed exactly once.
//!
//! - [`ingest`]: agents report dead letters, idempotently per run and node.
//! - [`actions`]: engineers request redrive, cancel, manual completion or
//!   escalation; approvers decide, through the same four-eyes rules as
//!   policy publishes ([`crate::approvals`]).
//! - [`dispatch`]: an approved action is revalidated, handed to exactly one
//!   connected instance over its stream, and ends when that instance acks;
//!   without an ack in time it becomes `uncertain` and is never re-sent on
//!   its own.
//! - [`search`]: listings, the entry page and the queue's figures.
//!
//! Nothing here imports `crate::routes`.

pub mod actions;
pub mod dispatch;
pub mod ingest;
pub mod search;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::{ActionRow, AuditRecord, DeadLetterRow, NewEvent, Transition};
use shared::api::{ActionStatus, ActionView, DeadLetterStatus, DeadLetterView};
use shared::policy::{DeadLetterPolicy, ErrorClass, RiskTier};
use shared::protocol::DlqActionKind;

/// The dead-letter rules in force for a service: the active version (if
/// any), its risk tier and its `dead_letters` section (defaults if absent).
#[derive(Debug, Clone)]
pub struct Rules {
    /// The active version.
    pub version: Option<u64>,
    /// The service's tier; `high` when nothing is published, so that the
    /// safe default applies.
    pub tier: RiskTier,
    /// The section.
    pub dead_letters: DeadLetterPolicy,
}

impl Rules {
    /// The rules of `service_id`'s active version.
    pub async fn of(app: &App, service_id: i64) -> ApiResult<Rules> {
        Ok(match crate::policy::active_policy(app, service_id).await? {
            Some((version, policy)) => Rules {
                version: Some(version),
                tier: policy.service.risk_tier,
                dead_letters: policy.dead_letters.unwrap_or_default(),
            },
            None => Rules {
                version: None,
                tier: RiskTier::High,
                dead_letters: DeadLetterPolicy::default(),
            },
        })
    }

    /// Why `kind` on work of `task_type` needs an approver; empty if not.
    pub fn approval_reasons(&self, kind: DlqActionKind, task_type: &str) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .dead_letters
            .approval_reason(self.tier, kind, task_type)
            .into_iter()
            .collect();
        if self.version.is_none() {
            reasons.push(
                "no policy is published for the service, so every action needs an approver".into(),
            );
        }
        reasons
    }
}

fn corrupt(what: &str, value: &str) -> ApiError {
    ApiError::internal(&format!("stored {what} {value:?} is not known"))
}

/// The API's view of a stored entry.
pub fn entry_view(row: DeadLetterRow) -> ApiResult<DeadLetterView> {
    Ok(DeadLetterView {
        error_type: ErrorClass::from_name(&row.error_type)
            .ok_or_else(|| corrupt("error class", &row.error_type))?,
        status: DeadLetterStatus::from_name(&row.status)
            .ok_or_else(|| corrupt("entry status", &row.status))?,
        id: row.id,
        service: row.service,
        environment: row.environment,
        run_id: row.run_id,
        task_type: row.task_type,
        failed_node: row.failed_node,
        error_message: row.error_message,
        retry_count: u32::try_from(row.retry_count).unwrap_or(u32::MAX),
        last_checkpoint: row.last_checkpoint,
        payload_hash: row.payload_hash,
        created_at_ms: row.created_at,
        received_at_ms: row.received_at,
        updated_at_ms: row.updated_at,
        revision: u32::try_from(row.revision).unwrap_or(u32::MAX),
        resolved_at_ms: row.resolved_at,
    })
}

/// The API's view of a stored action.
pub fn action_view(row: ActionRow) -> ApiResult<ActionView> {
    Ok(ActionView {
        kind: DlqActionKind::from_name(&row.kind)
            .ok_or_else(|| corrupt("action kind", &row.kind))?,
        status: ActionStatus::from_name(&row.status)
            .ok_or_else(|| corrupt("action status", &row.status))?,
        approval_reasons: serde_json::from_str(&row.approval_reasons)
            .map_err(|e| ApiError::internal(&e))?,
        id: row.id,
        dead_letter_id: row.dead_letter_id,
        service: row.service,
        environment: row.environment,
        run_id: row.run_id,
        task_type: row.task_type,
        reason: row.reason,
        resolution_note: row.resolution_note,
        escalate_to: row.escalate_to,
        requested_by: row.requested_by,
        requested_at_ms: row.requested_at,
        expires_at_ms: row.expires_at,
        policy_version: row.policy_version.map(|v| v as u64),
        entry_revision: u32::try_from(row.entry_revision).unwrap_or(u32::MAX),
        decided_by: row.decided_by,
        decided_at_ms: row.decided_at,
        decision_reason: row.decision_reason,
        dispatched_to: row.dispatched_to,
        dispatched_at_ms: row.dispatched_at,
        finished_at_ms: row.finished_at,
        detail: row.detail,
    })
}

/// Ends an action in `to` (withdrawn, expired, refused, uncertain) and puts
/// its entry back in the queue for a person to act on again. Audited as
/// `dlq.action_{to}` with the action, its kind and `extra`, and recorded in
/// the entry's history with `detail`. False, writing nothing, when the
/// action was not in one of `from`.
// Each argument is one word of the record a person reads later; a struct
// would only rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn end_and_reopen(
    app: &App,
    row: &ActionRow,
    from: &[&str],
    to: ActionStatus,
    actor: &str,
    finished: &str,
    detail: String,
    extra: serde_json::Value,
) -> ApiResult<bool> {
    let mut audit_detail = serde_json::json!({ "action": row.id, "kind": row.kind });
    if let (Some(all), serde_json::Value::Object(more)) = (audit_detail.as_object_mut(), extra) {
        all.extend(more);
    }
    let audit = AuditRecord::new(
        actor,
        format!("dlq.action_{}", to.as_str()),
        target(&row.dead_letter_id),
        audit_detail,
    );
    let event = format!("action.{}", to.as_str());
    Ok(app
        .store
        .transition_dlq_action(&Transition {
            action_id: &row.id,
            from,
            to: to.as_str(),
            decided: None,
            expires_at: None,
            dispatched: None,
            finished: Some(finished),
            entry: Some((DeadLetterStatus::Open.as_str(), false)),
            event: NewEvent {
                actor,
                event: &event,
                detail,
            },
            audit: Some(&audit),
            now_ms: app.clock.now_ms(),
        })
        .await?)
}

/// The audit target of an entry.
pub(crate) fn target(entry_id: &str) -> String {
    format!("dead_letter:{entry_id}")
}
