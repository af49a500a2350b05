//! People's steps on a dead letter: an engineer requests an action, an
//! approver approves or rejects it, the requester or approver withdraws it.
//! Each step is checked against the entry and the policy as they are now,
//! stored in one transaction with its history event and audit entry, and
//! wakes the dispatcher when an action becomes ready to run.

use super::{Rules, action_view, end_and_reopen, target};
use crate::app::App;
use crate::approvals::{four_eyes, reason, stale};
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{ActionRow, AuditRecord, NewEvent, StoreError, Transition};
use axum::http::StatusCode;
use serde_json::json;
use shared::api::{
    ActionRequest, ActionStatus, ActionView, BulkActionRequest, BulkDecision, BulkItemResult,
    DeadLetterStatus,
};
use shared::protocol::DlqActionKind;
use shared::role::Permission;

/// The most items one bulk call handles.
pub const MAX_BULK: usize = 500;

fn optional_text(field: &str, value: Option<&str>, required: bool) -> ApiResult<Option<String>> {
    match value {
        Some(v) => reason(field, v).map(Some),
        None if required => Err(ApiError::invalid(field, format!("{field} is required"))),
        None => Ok(None),
    }
}

/// Files `req` on entry `entry_id` for `user`. Needs no approver when the
/// policy says so, and is then ready for dispatch at once.
pub async fn request(
    app: &App,
    user: &UserPrincipal,
    entry_id: &str,
    req: &ActionRequest,
) -> ApiResult<ActionView> {
    user.require(Permission::RequestDlqAction)?;
    let why = reason("reason", &req.reason)?;
    let note = optional_text(
        "resolution_note",
        req.resolution_note.as_deref(),
        req.kind == DlqActionKind::ManualComplete,
    )?;
    let escalate_to = optional_text(
        "escalate_to",
        req.escalate_to.as_deref(),
        req.kind == DlqActionKind::Escalate,
    )?;
    let entry = app
        .store
        .dead_letter(entry_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    if let Some(seen) = req.revision
        && i64::from(seen) != entry.revision
    {
        return Err(stale(format!(
            "the dead letter changed since you looked (revision {seen}, now {}); review it again",
            entry.revision
        ))
        .with_field("revision"));
    }
    let rules = Rules::of(app, entry.service_id).await?;
    let reasons = rules.approval_reasons(req.kind, &entry.task_type);
    let now = app.clock.now_ms();
    let expiry_ms = i64::try_from(rules.dead_letters.approval_expires_after_s)
        .unwrap_or(i64::MAX / 2000)
        .saturating_mul(1000);
    let status = if reasons.is_empty() {
        ActionStatus::Approved
    } else {
        ActionStatus::Requested
    };
    let actor = user.actor();
    let row = ActionRow {
        id: format!("act-{}", crate::auth::random_hex(12)),
        dead_letter_id: entry.id.clone(),
        service_id: entry.service_id,
        service: entry.service.clone(),
        environment: entry.environment.clone(),
        run_id: entry.run_id.clone(),
        task_type: entry.task_type.clone(),
        kind: req.kind.as_str().to_owned(),
        reason: why.clone(),
        resolution_note: note,
        escalate_to,
        requested_by: actor.clone(),
        requested_at: now,
        approval_reasons: serde_json::to_string(&reasons).map_err(|e| ApiError::internal(&e))?,
        expires_at: now.saturating_add(expiry_ms),
        policy_version: rules.version.map(|v| v as i64),
        entry_revision: entry.revision,
        status: status.as_str().to_owned(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        dispatched_to: None,
        dispatched_at: None,
        ack_deadline: None,
        finished_at: None,
        detail: None,
    };
    let needs = if reasons.is_empty() {
        "needs no approval".to_owned()
    } else {
        format!("needs approval: {}", reasons.join("; "))
    };
    let event = NewEvent {
        actor: &actor,
        event: "action.requested",
        detail: format!("{} requested ({needs}): {why}", req.kind.as_str()),
    };
    let audit = AuditRecord::new(
        actor.clone(),
        "dlq.action_requested",
        target(&entry.id),
        json!({ "action": row.id, "kind": req.kind.as_str(), "reason": why,
                "needs_approval": !reasons.is_empty(), "revision": entry.revision,
                "policy_version": rules.version }),
    );
    app.store
        .create_dlq_action(&row, &event, &audit)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(c) if c == "dead_letters.revision" => {
                stale("the dead letter changed while you asked; review it again")
                    .with_field("revision")
            }
            StoreError::Conflict(c) if c == "dlq_actions.live" || c.contains("dlq_actions") => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "action_pending",
                    "another action on this dead letter is already waiting or running",
                )
            }
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "not_open",
                format!(
                    "the dead letter is {}; only open ones take actions",
                    entry.status
                ),
            ),
            other => other.into(),
        })?;
    if status == ActionStatus::Approved {
        app.dlq.wake(app, entry.service_id).await;
    }
    action_view(row)
}

async fn load(app: &App, id: &str) -> ApiResult<ActionRow> {
    app.store
        .dlq_action(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such dead-letter action"))
}

fn not_in(row: &ActionRow, wanted: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "already_decided",
        format!("this action is {}, not {wanted}", row.status),
    )
}

/// Approves or rejects someone else's request. An approval binds to the
/// entry revision and policy version the request recorded: if either moved
/// on, the answer is 409 and the requester must look again.
pub async fn decide(
    app: &App,
    user: &UserPrincipal,
    id: &str,
    approve: bool,
    why: &str,
) -> ApiResult<ActionView> {
    user.require(Permission::Approve)?;
    let why = reason("reason", why)?;
    let row = load(app, id).await?;
    four_eyes(&row.requested_by, user)?;
    if row.status != ActionStatus::Requested.as_str() {
        return Err(not_in(&row, "awaiting a decision"));
    }
    let now = app.clock.now_ms();
    if now >= row.expires_at {
        expire(app, &row).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "expired",
            "this request expired before it was decided; ask again",
        ));
    }
    let actor = user.actor();
    let rules = Rules::of(app, row.service_id).await?;
    if approve {
        let entry = app
            .store
            .dead_letter(&row.dead_letter_id)
            .await?
            .ok_or_else(|| ApiError::not_found("the dead letter is gone"))?;
        if entry.revision != row.entry_revision {
            return Err(stale(format!(
                "the dead letter changed after the request (revision {} → {}); reject this and request again",
                row.entry_revision, entry.revision
            )));
        }
        if rules.version.map(|v| v as i64) != row.policy_version {
            return Err(stale(format!(
                "the policy changed after the request (version {:?} → {:?}); reject this and request again",
                row.policy_version, rules.version
            )));
        }
    }
    let expiry_ms = i64::try_from(rules.dead_letters.approval_expires_after_s)
        .unwrap_or(i64::MAX / 2000)
        .saturating_mul(1000);
    let (to, verb) = if approve {
        (ActionStatus::Approved, "approved")
    } else {
        (ActionStatus::Rejected, "rejected")
    };
    let audit = AuditRecord::new(
        actor.clone(),
        format!("dlq.action_{verb}"),
        target(&row.dead_letter_id),
        json!({ "action": row.id, "kind": row.kind, "requested_by": row.requested_by, "reason": why }),
    );
    let moved = app
        .store
        .transition_dlq_action(&Transition {
            action_id: &row.id,
            from: &[ActionStatus::Requested.as_str()],
            to: to.as_str(),
            decided: Some((&actor, &why)),
            expires_at: approve.then(|| now.saturating_add(expiry_ms)),
            dispatched: None,
            finished: (!approve).then_some(why.as_str()),
            entry: (!approve).then_some((DeadLetterStatus::Open.as_str(), false)),
            event: NewEvent {
                actor: &actor,
                event: if approve {
                    "action.approved"
                } else {
                    "action.rejected"
                },
                detail: format!("{} {verb}: {why}", row.kind),
            },
            audit: Some(&audit),
            now_ms: now,
        })
        .await?;
    if !moved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_decided",
            "someone decided this action first",
        ));
    }
    if approve {
        app.dlq.wake(app, row.service_id).await;
    }
    action_view(load(app, id).await?)
}

/// Takes back a request (its requester) or an approval (its approver)
/// before the action reaches an agent.
pub async fn withdraw(
    app: &App,
    user: &UserPrincipal,
    id: &str,
    why: &str,
) -> ApiResult<ActionView> {
    user.require(Permission::Read)?;
    let why = reason("reason", why)?;
    let row = load(app, id).await?;
    let actor = user.actor();
    let mine = row.requested_by == actor || row.decided_by.as_deref() == Some(actor.as_str());
    if !mine {
        return Err(ApiError::forbidden(
            "only the requester or the approver withdraws an action",
        ));
    }
    let from = [
        ActionStatus::Requested.as_str(),
        ActionStatus::Approved.as_str(),
    ];
    if !from.contains(&row.status.as_str()) {
        return Err(not_in(
            &row,
            "waiting (only waiting actions can be withdrawn)",
        ));
    }
    let moved = end_and_reopen(
        app,
        &row,
        &from,
        ActionStatus::Withdrawn,
        &actor,
        &format!("withdrawn by {actor}: {why}"),
        format!("{} withdrawn: {why}", row.kind),
        json!({ "reason": why }),
    )
    .await?;
    if !moved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_dispatched",
            "the action left for an agent before it could be withdrawn",
        ));
    }
    action_view(load(app, id).await?)
}

/// Marks a request or approval past its expiry as expired.
pub(crate) async fn expire(app: &App, row: &ActionRow) -> ApiResult<bool> {
    end_and_reopen(
        app,
        row,
        &[
            ActionStatus::Requested.as_str(),
            ActionStatus::Approved.as_str(),
        ],
        ActionStatus::Expired,
        "ballast",
        "expired before it was decided or dispatched",
        format!("{} expired while {}", row.kind, row.status),
        json!({ "was": row.status }),
    )
    .await
}

fn item(id: &str, result: ApiResult<ActionView>) -> BulkItemResult {
    match result {
        Ok(action) => BulkItemResult {
            id: id.to_owned(),
            action: Some(action),
            error: None,
        },
        Err(e) => BulkItemResult {
            id: id.to_owned(),
            action: None,
            error: Some(e.body().error),
        },
    }
}

fn bulk_size(ids: &[String]) -> ApiResult<()> {
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "ids",
            format!("ids holds 1 to {MAX_BULK} ids"),
        ));
    }
    Ok(())
}

/// The same request on each entry, each handled as if alone.
pub async fn bulk_request(
    app: &App,
    user: &UserPrincipal,
    req: &BulkActionRequest,
) -> ApiResult<Vec<BulkItemResult>> {
    user.require(Permission::RequestDlqAction)?;
    bulk_size(&req.ids)?;
    let mut out = Vec::with_capacity(req.ids.len());
    for id in &req.ids {
        out.push(item(id, request(app, user, id, &req.action).await));
    }
    Ok(out)
}

/// Approves each action, each checked as if alone; the dispatcher paces
/// the redrives that follow.
pub async fn bulk_approve(
    app: &App,
    user: &UserPrincipal,
    req: &BulkDecision,
) -> ApiResult<Vec<BulkItemResult>> {
    user.require(Permission::Approve)?;
    bulk_size(&req.ids)?;
    let mut out = Vec::with_capacity(req.ids.len());
    for id in &req.ids {
        out.push(item(id, decide(app, user, id, true, &req.reason).await));
    }
    Ok(out)
}
