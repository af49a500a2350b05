//! The agent protocol's wire types: what an enforcement agent and the control
//! plane say to each other under `/api/v1/agent`. The protocol is stable and
//! documented in the OpenAPI document, because agents in other languages
//! implement it too. Every call carries a service token, which names the
//! service and environment, so no path or body repeats them.
//!
//! | call | body | answer |
//! |---|---|---|
//! | `GET /agent/policy?instance_id=I` | – | [`PolicyEnvelope`] with an `ETag`; `If-None-Match` gets 304 |
//! | `GET /agent/stream?instance_id=I` | – | SSE: `policy` ([`PolicyEnvelope`]), `chaos`, `action` ([`DlqAction`]), keep-alives |
//! | `POST /agent/heartbeat` | [`Heartbeat`] | [`HeartbeatAck`] |
//! | `POST /agent/telemetry` | [`TelemetryBatch`] | [`TelemetryAck`] |
//! | `POST /agent/dead-letters` | [`DeadLetterReport`] | [`DeadLetterAck`] |
//! | `POST /agent/actions/{id}/ack` | [`ActionAck`] | 204 |

use crate::policy::{DegradedStatus, ErrorClass, Policy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The header that carries a request's remaining deadline, in milliseconds,
/// from one service to the next.
pub const DEADLINE_HEADER: &str = "ballast-deadline";

/// SSE event names on `/agent/stream`.
pub mod events {
    /// A policy version to apply: sent on connect, then on every change.
    pub const POLICY: &str = "policy";
    /// Fault-injection rules for chaos experiments.
    pub const CHAOS: &str = "chaos";
    /// An approved dead-letter action to execute.
    pub const ACTION: &str = "action";
}

/// A policy version as the control plane hands it to one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyEnvelope {
    /// The service the policy governs.
    pub service: String,
    /// The environment the policy governs.
    pub environment: String,
    /// The version number, increasing from 1 per service and environment.
    pub version: u64,
    /// A content hash, also the HTTP `ETag` (quoted there).
    pub etag: String,
    /// When the version was published, Unix milliseconds.
    pub published_at_ms: i64,
    /// The policy itself.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub policy: Policy,
}

/// `POST /agent/heartbeat`: an instance says it is alive and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Stable for the life of the process; chosen by the agent.
    pub instance_id: String,
    /// The agent library's version.
    pub agent_version: String,
    /// The policy version the instance enforces now, if any.
    pub policy_version: Option<u64>,
    /// Where that policy came from.
    pub policy_source: PolicySource,
    /// When the instance started, Unix milliseconds.
    pub started_at_ms: i64,
    /// The newest policy this instance received and refused because it
    /// failed validation, while it keeps enforcing `policy_version`.
    /// Absent when nothing was refused, and from older agents; the fleet
    /// view shows it, so a bad publish that no agent applies is visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_policy: Option<RefusedPolicy>,
}

/// A policy version an agent refused to enforce, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefusedPolicy {
    /// The version refused.
    pub version: u64,
    /// Where it came from: the control plane, or the copy on disk.
    pub source: PolicySource,
    /// The validation errors, as `path: code`, the first few only: enough
    /// to find the fault, bounded so a heartbeat stays small. The control
    /// plane takes at most 16, each 1 to 1024 bytes without control
    /// characters, and answers anything else with a 422.
    pub errors: Vec<String>,
    /// When it was refused, Unix milliseconds.
    pub refused_at_ms: i64,
}

crate::wire_enum! {
    /// Where an agent's policy in force came from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum PolicySource {
        /// Received from the control plane in this process's life.
        Server => ("server", "Control plane"),
        /// The last-known-good copy on disk (the control plane was unreachable).
        Disk => ("disk", "Last-known-good on disk"),
        /// The built-in conservative default (neither was available).
        Default => ("default", "Built-in default"),
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAck {
    /// The version this instance should run (it may be in a canary).
    pub desired_version: Option<u64>,
}

/// Latency histogram bucket upper bounds in milliseconds. Fixed, so that
/// batches from every instance and every language add up bucket by bucket.
pub const LATENCY_BUCKETS_MS: [u64; 16] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    60_000,
    u64::MAX,
];

crate::wire_enum! {
    /// A circuit breaker's state as reported.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum BreakerState {
        /// Calls flow.
        Closed => ("closed", "Closed"),
        /// A few probe calls test whether the dependency recovered.
        HalfOpen => ("half_open", "Half-open"),
        /// No calls reach the dependency until the cooldown ends.
        Open => ("open", "Open"),
        /// Held open by the policy.
        ForcedOpen => ("forced_open", "Forced open"),
        /// Held closed by the policy.
        ForcedClosed => ("forced_closed", "Forced closed"),
    }
}

/// A breaker changing state, with when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakerTransition {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
}

/// One dependency's counters for one flush window. Counters are deltas for
/// the window, not running totals, so a lost batch loses only its window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DependencyTelemetry {
    /// Calls attempted (first attempts only).
    pub calls: u64,
    /// Calls that succeeded, possibly after retries.
    pub successes: u64,
    /// Failures by class.
    pub failures: BTreeMap<ErrorClass, u64>,
    /// Calls that hit their deadline or timeout.
    pub timeouts: u64,
    /// Retries sent (attempts beyond the first).
    pub retries: u64,
    /// Retries refused because the retry budget was spent.
    pub retry_budget_exhausted: u64,
    /// Calls refused by an open breaker.
    pub breaker_rejections: u64,
    /// Calls refused by a full bulkhead or its queue timeout.
    pub bulkhead_rejections: u64,
    /// Calls refused by a rate limit or a token/cost budget.
    pub rate_limited: u64,
    /// Requests shed by admission control.
    pub shed: u64,
    /// Fallbacks taken, by the fallback matrix row's component/failure key.
    pub fallbacks: BTreeMap<String, u64>,
    /// Responses returned with a status other than normal.
    pub degraded: BTreeMap<DegradedStatus, u64>,
    /// Structured-output repair attempts.
    pub repairs: u64,
    /// Idempotency keys that came back with a different payload, whatever
    /// the policy then did (reject, escalate or replay the original).
    pub idempotency_conflicts: u64,
    /// Side effects not run again because their key had already run (its
    /// result was replayed) or was still running.
    pub duplicates_prevented: u64,
    /// Tokens used.
    pub tokens: u64,
    /// Cost in micro-dollars.
    pub cost_usd_micros: u64,
    /// Latency histogram of completed calls: counts per [`LATENCY_BUCKETS_MS`] bucket.
    pub latency_buckets: Vec<u64>,
    /// Sum of latencies in the window, for the mean.
    pub latency_sum_ms: u64,
    /// The breaker's state at the end of the window.
    pub breaker: Option<BreakerState>,
    /// Transitions during the window.
    pub breaker_transitions: Vec<BreakerTransition>,
    /// Calls in flight at the end of the window.
    pub in_flight: u64,
    /// Calls waiting in bulkhead queues at the end of the window.
    pub queued: u64,
}

/// `POST /agent/telemetry`: one flush window from one instance. Idempotent per
/// (instance, sequence): a batch resent after a lost answer is counted once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// The reporting instance.
    pub instance_id: String,
    /// Increases by one per batch from this instance, from 1.
    pub sequence: u64,
    /// Window start, Unix milliseconds.
    pub window_start_ms: i64,
    /// Window end, Unix milliseconds.
    pub window_end_ms: i64,
    /// The policy version enforced during the window.
    pub policy_version: Option<u64>,
    /// Per dependency.
    pub dependencies: BTreeMap<String, DependencyTelemetry>,
    /// Cost in micro-dollars by tenant.
    #[serde(default)]
    pub tenant_cost_usd_micros: BTreeMap<String, u64>,
    /// Batches the agent dropped (oldest first) while the control plane was
    /// unreachable and its buffer was full, since the previous batch.
    #[serde(default)]
    pub dropped_batches: u64,
}

/// The answer to a telemetry batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryAck {
    /// False when the (instance, sequence) pair was already received.
    pub accepted: bool,
}

/// `POST /agent/dead-letters`: a unit of work that failed for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeadLetterReport {
    /// The run (request, workflow execution) that failed.
    pub run_id: String,
    /// What kind of work it was, such as `case_review`.
    pub task_type: String,
    /// The node or stage that failed.
    pub failed_node: String,
    /// The error's class.
    pub error_type: ErrorClass,
    /// The error's message, without secrets or personal data.
    pub error_message: String,
    /// Attempts made before giving up.
    pub retry_count: u32,
    /// Where a redrive can resume from, if anywhere.
    pub last_checkpoint: Option<String>,
    /// When the work first failed, Unix milliseconds.
    pub created_at_ms: i64,
    /// Hex SHA-256 of the payload, which stays in the service.
    pub payload_hash: String,
}

/// The answer to a dead-letter report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterAck {
    /// The entry's id in the control plane. Reporting the same run and node
    /// again returns the same id.
    pub id: String,
}

crate::wire_enum! {
    /// What an approved dead-letter action does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum DlqActionKind {
        /// Run the work again, from its last checkpoint if it has one.
        Redrive => ("redrive", "Redrive"),
        /// Give up on the work for good.
        Cancel => ("cancel", "Cancel"),
        /// Record the work as done by a person outside the system.
        ManualComplete => ("manual_complete", "Manual complete"),
        /// Hand the work to a person.
        Escalate => ("escalate", "Escalate"),
    }
}

/// `action` event: an approved action for the agent to execute exactly once.
/// The id is the idempotency key: a redelivered action must not repeat its
/// side effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DlqAction {
    /// The action's id, and its idempotency key.
    pub id: String,
    /// The dead letter it acts on.
    pub dead_letter_id: String,
    /// The run the dead letter belongs to.
    pub run_id: String,
    /// What to do.
    pub kind: DlqActionKind,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it.
    pub approved_by: String,
    /// Why, in the requester's words.
    pub reason: String,
}

crate::wire_enum! {
    /// The outcome an agent reports for an action.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum ActionOutcome {
        /// Done.
        Succeeded => ("succeeded", "Succeeded"),
        /// Tried and failed; nothing was left half-done.
        Failed => ("failed", "Failed"),
    }
}

/// `POST /agent/actions/{id}/ack`. The control plane sends each action to
/// one instance and sends it again only to that instance (after a
/// reconnect) until it is acknowledged; the same outcome acknowledged twice
/// is accepted, a different one is 409. Without an ack within the policy's
/// `dead_letters.ack_timeout_s` the action is marked uncertain and is not
/// sent again; a late ack still settles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionAck {
    /// What happened.
    pub outcome: ActionOutcome,
    /// Details for the audit log.
    pub detail: String,
}
