//! Dead letters and the actions people take on them, as the dashboard and
//! the REST API see them.

use crate::policy::ErrorClass;
use crate::protocol::DlqActionKind;
use serde::{Deserialize, Serialize};

crate::wire_enum! {
    /// Where a dead letter stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum DeadLetterStatus {
        /// Waiting for someone to act.
        Open => ("open", "Open"),
        /// An action is requested, approved or on its way to an agent.
        Pending => ("pending", "Action pending"),
        /// Redriven, and the redrive succeeded.
        Redriven => ("redriven", "Redriven"),
        /// Given up on for good.
        Cancelled => ("cancelled", "Cancelled"),
        /// Finished by a person outside the system.
        Completed => ("completed", "Completed by hand"),
        /// Handed to a person.
        Escalated => ("escalated", "Escalated"),
    }
}

crate::wire_enum! {
    /// Where an action stands. `requested` → `approved` | `rejected` |
    /// `expired` | `withdrawn` → `dispatched` → `succeeded` | `failed` |
    /// `uncertain`; `refused` when revalidation at dispatch fails.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum ActionStatus {
        /// Waiting for an approver.
        Requested => ("requested", "Awaiting approval"),
        /// Approved (or needing no approval), waiting for an agent.
        Approved => ("approved", "Approved"),
        /// An approver said no.
        Rejected => ("rejected", "Rejected"),
        /// Nobody decided, or no agent took it, in time.
        Expired => ("expired", "Expired"),
        /// Taken back by its requester or approver before dispatch.
        Withdrawn => ("withdrawn", "Withdrawn"),
        /// Checked again before dispatch and found no longer valid.
        Refused => ("refused", "Refused at dispatch"),
        /// Sent to one agent instance; waiting for its acknowledgement.
        Dispatched => ("dispatched", "Dispatched"),
        /// The agent did it.
        Succeeded => ("succeeded", "Succeeded"),
        /// The agent tried and failed, leaving nothing half-done.
        Failed => ("failed", "Failed"),
        /// No acknowledgement in time: it may or may not have happened.
        /// Never sent again on its own; a person finds out.
        Uncertain => ("uncertain", "Uncertain"),
    }
}

impl ActionStatus {
    /// Whether the action still holds its dead letter (one live action at
    /// a time per entry).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ActionStatus::Requested | ActionStatus::Approved | ActionStatus::Dispatched
        )
    }
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterView {
    /// Id.
    pub id: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The run that failed.
    pub run_id: String,
    /// The kind of work.
    pub task_type: String,
    /// The node or stage that failed.
    pub failed_node: String,
    /// The error's class.
    pub error_type: ErrorClass,
    /// The error's message as the agent reported it.
    pub error_message: String,
    /// Attempts made before giving up.
    pub retry_count: u32,
    /// Where a redrive resumes from.
    pub last_checkpoint: Option<String>,
    /// Hex SHA-256 of the payload, which stays in the service.
    pub payload_hash: String,
    /// When the work first failed (agent's clock), Unix milliseconds.
    pub created_at_ms: i64,
    /// When the control plane first heard of it.
    pub received_at_ms: i64,
    /// When its content last changed.
    pub updated_at_ms: i64,
    /// Goes up by one each time the agent reports different content; an
    /// approval binds to the revision the approver saw.
    pub revision: u32,
    /// Where it stands.
    pub status: DeadLetterStatus,
    /// When it left the queue, if it has.
    pub resolved_at_ms: Option<i64>,
}

/// `GET /api/v1/dead-letters`: one page of a search, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterPage {
    /// The entries.
    pub entries: Vec<DeadLetterView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/dead-letters/{id}/actions`: ask for an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// What to do.
    pub kind: DlqActionKind,
    /// Why, for the approver and the audit log. Required.
    pub reason: String,
    /// How the work was finished; required for `manual_complete`.
    #[serde(default)]
    pub resolution_note: Option<String>,
    /// A person or an incident reference; required for `escalate`.
    #[serde(default)]
    pub escalate_to: Option<String>,
    /// The revision the requester looked at; refused with 409 when the
    /// entry has changed since. Optional for scripts.
    #[serde(default)]
    pub revision: Option<u32>,
}

/// `POST /api/v1/dead-letters/bulk-actions`: the same action on every open
/// entry that matches a filter (each entry is handled as if alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkActionRequest {
    /// The entries, by id (1 to 500).
    pub ids: Vec<String>,
    /// The action for each.
    pub action: ActionRequest,
}

/// `POST /api/v1/dlq-actions/{id}/approve|reject|withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionDecision {
    /// Why. Required.
    pub reason: String,
}

/// `POST /api/v1/dlq-actions/bulk-approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkDecision {
    /// The actions, by id (1 to 500).
    pub ids: Vec<String>,
    /// Why, for all of them. Required.
    pub reason: String,
}

/// What happened to one item of a bulk call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkItemResult {
    /// The item's id as sent.
    pub id: String,
    /// The action, when this item succeeded.
    pub action: Option<ActionView>,
    /// Why not, when it did not.
    pub error: Option<crate::api::ErrorDetail>,
}

/// An action on a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionView {
    /// Id; also the agent's idempotency key.
    pub id: String,
    /// The dead letter.
    pub dead_letter_id: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The dead letter's run.
    pub run_id: String,
    /// The dead letter's task type.
    pub task_type: String,
    /// What to do.
    pub kind: DlqActionKind,
    /// Why, in the requester's words.
    pub reason: String,
    /// For `manual_complete`.
    pub resolution_note: Option<String>,
    /// For `escalate`.
    pub escalate_to: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// When, Unix milliseconds.
    pub requested_at_ms: i64,
    /// Why a second person must approve; empty when nobody need.
    pub approval_reasons: Vec<String>,
    /// When the request or its approval lapses.
    pub expires_at_ms: i64,
    /// The policy version in force at the request; dispatch is refused if
    /// another is active by then.
    pub policy_version: Option<u64>,
    /// The entry's revision at the request.
    pub entry_revision: u32,
    /// Where it stands.
    pub status: ActionStatus,
    /// Who approved, rejected or withdrew it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at_ms: Option<i64>,
    /// The decider's reason.
    pub decision_reason: Option<String>,
    /// The instance it was sent to.
    pub dispatched_to: Option<String>,
    /// When.
    pub dispatched_at_ms: Option<i64>,
    /// When the outcome arrived or the action otherwise ended.
    pub finished_at_ms: Option<i64>,
    /// The agent's report, or why it was refused, expired or is uncertain.
    pub detail: Option<String>,
}

/// One step in a dead letter's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// A user, `service:NAME/ENV` or `ballast`.
    pub actor: String,
    /// What happened, such as `reported` or `action.approved`.
    pub event: String,
    /// The action concerned, if any.
    pub action_id: Option<String>,
    /// Details in words.
    pub detail: String,
}

/// `GET /api/v1/dead-letters/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterDetail {
    /// The entry.
    pub entry: DeadLetterView,
    /// Its actions, newest first.
    pub actions: Vec<ActionView>,
    /// Its history, oldest first.
    pub events: Vec<DeadLetterEvent>,
    /// For each action kind, whether it needs an approver now, and why.
    pub approval_needed: Vec<ApprovalRequirement>,
}

/// Whether one action kind on an entry needs an approver under the policy
/// in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRequirement {
    /// The action kind.
    pub kind: DlqActionKind,
    /// Why it needs approval; empty when it does not.
    pub reasons: Vec<String>,
}

/// A count by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamedCount {
    /// The name.
    pub name: String,
    /// How many.
    pub count: u64,
}

/// `GET /api/v1/services/{name}/{env}/dead-letters/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterSummary {
    /// When computed, Unix milliseconds.
    pub as_of_ms: i64,
    /// Entries open or with an action pending.
    pub depth: u64,
    /// Age of the oldest of them, in milliseconds.
    pub oldest_age_ms: Option<i64>,
    /// Most common error classes among them.
    pub top_error_types: Vec<NamedCount>,
    /// Most common failed nodes among them.
    pub top_failed_nodes: Vec<NamedCount>,
    /// Depth at the end of each hour of the last 24, oldest first.
    pub depth_by_hour: Vec<u64>,
    /// Actions waiting for an approver.
    pub awaiting_approval: u64,
    /// Actions whose outcome is unknown.
    pub uncertain: u64,
}

/// `GET /api/v1/dlq-actions/count`: what the navigation badge shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxCount {
    /// Dead-letter actions awaiting approval that this user may decide
    /// (someone else's).
    pub actions: u64,
    /// Policy publishes awaiting approval by someone other than this user.
    pub publishes: u64,
}
