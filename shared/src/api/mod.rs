//! Wire types of the REST API under `/api/v1`, shared by the server, the
//! dashboard and the agent so that a field renamed on one side fails to
//! compile on the other.

use crate::role::Role;
use serde::{Deserialize, Serialize};

/// The body of every 4xx and 5xx response under `/api`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The detail of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `validation` or `forbidden`.
    pub code: String,
    /// A sentence for a human.
    pub message: String,
    /// The path of the offending field, such as `retry.model.max_attempts`,
    /// when the problem is with one field of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Structured detail where one sentence is not enough, such as every
    /// validation finding of a rejected policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
}

/// `POST /api/v1/auth/login` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's name.
    pub username: String,
    /// The account's password; never logged, and hidden from `Debug`.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/auth/login` response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// A short-lived bearer token (a JWT). Browsers also get it as an
    /// HttpOnly cookie and need not keep this copy.
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Who logged in.
    pub user: Me,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// `GET /api/v1/me`: the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The user's id.
    pub id: i64,
    /// The user's name.
    pub username: String,
    /// The user's role, which decides what they may do.
    pub role: Role,
}

/// A user as the admin API lists it. Password hashes never leave the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// The user's id.
    pub id: i64,
    /// The user's name, unique.
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// A disabled user cannot log in, and their sessions stop working at once.
    pub disabled: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// `POST /api/v1/users` request (admin).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `-` and `@`.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    /// The new user's role.
    pub role: Role,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// `PATCH /api/v1/users/{id}` request (admin): only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Disable or re-enable the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A service token as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceTokenView {
    /// The token's public id, which is also the first part of the token.
    pub id: String,
    /// The service the token speaks for.
    pub service: String,
    /// The environment the token speaks for.
    pub environment: String,
    /// Who created it.
    pub created_by: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// `POST /api/v1/tokens` request (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// The service the token speaks for.
    pub service: String,
    /// The environment the token speaks for, such as `prod`.
    pub environment: String,
}

/// `POST /api/v1/tokens` response: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The full bearer token. Store it now: the server keeps only its hash.
    pub token: String,
    /// The token's listing.
    pub info: ServiceTokenView,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryView {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: `user:NAME`, `token:ID` or `cli`.
    pub actor: String,
    /// What, such as `auth.login` or `user.create`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Details, as JSON.
    pub detail: serde_json::Value,
    /// The hash of this entry, which the next entry commits to.
    pub hash: String,
}

/// `POST /api/v1/services` request: register a service in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    /// The service's name: lowercase letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// The environment, same alphabet.
    pub environment: String,
    /// The answerable team or person.
    pub owner: String,
}

/// What a service's instances should run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutView {
    /// The version everyone outside the canary runs.
    pub active_version: Option<u64>,
    /// The version on trial.
    pub canary_version: Option<u64>,
    /// The canary's share of instances, 1 to 99.
    pub canary_percent: Option<u8>,
}

/// A service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceView {
    /// Name.
    pub name: String,
    /// Environment.
    pub environment: String,
    /// Owner.
    pub owner: String,
    /// Registration time, Unix milliseconds.
    pub created_at_ms: i64,
    /// What its instances should run.
    pub rollout: RolloutView,
}

/// A policy document with what validation says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DraftView {
    /// The draft.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub policy: crate::policy::Policy,
    /// Who saved it last.
    pub updated_by: String,
    /// When, Unix milliseconds.
    pub updated_at_ms: i64,
    /// Errors (which block a publish) and warnings.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: crate::policy::ValidationReport,
}

/// `POST …/validate` response: validation and the diff against the active version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationView {
    /// Errors and warnings.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: crate::policy::ValidationReport,
    /// The active version compared with, if any.
    pub against_version: Option<u64>,
    /// What would change.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub changes: Vec<crate::policy::Change>,
    /// Why publishing this would need an approver, if it would.
    pub approval_reasons: Vec<String>,
}

/// `POST …/publish` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Why; lands in the version and the audit log.
    pub message: String,
    /// Roll out to this share of instances (1–99) first, instead of to all.
    #[serde(default)]
    pub canary_percent: Option<u8>,
    /// The policy to publish. Absent: publish the saved draft.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub document: Option<crate::policy::Policy>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PublishOutcome {
    /// A new version exists.
    Published {
        /// Its number.
        version: u64,
        /// Whether it went to a canary only.
        canary: bool,
        /// Warnings that did not block it.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        report: crate::policy::ValidationReport,
    },
    /// It needs an approver who is not the author.
    PendingApproval {
        /// The request to approve.
        request_id: String,
        /// Why approval is needed.
        reasons: Vec<String>,
        /// Warnings.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        report: crate::policy::ValidationReport,
    },
}

/// A published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionView {
    /// Number.
    pub version: u64,
    /// Content hash.
    pub etag: String,
    /// Author.
    pub author: String,
    /// Approver, if it needed one.
    pub approver: Option<String>,
    /// Message.
    pub message: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The document, in single-version answers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub policy: Option<crate::policy::Policy>,
}

/// `GET …/diff` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffView {
    /// The older side, as asked (`3`, `active` or `draft`).
    pub from: String,
    /// The newer side.
    pub to: String,
    /// The changes, by path.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub changes: Vec<crate::policy::Change>,
}

/// `POST …/rollback` request: publish an earlier version's content again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version whose content to restore.
    pub to_version: u64,
    /// Why.
    pub message: String,
}

/// `POST …/rollout` request: steer a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RolloutAction {
    /// Make the canary the active version for every instance.
    Promote,
    /// Drop the canary; every instance runs the active version.
    Abort,
    /// Change the canary's share of instances.
    SetPercent {
        /// 1 to 99.
        percent: u8,
    },
}

/// A publish waiting for, or decided by, an approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishRequestView {
    /// Id.
    pub id: String,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The author's message.
    pub message: String,
    /// Canary share, if it publishes to a canary.
    pub canary_percent: Option<u8>,
    /// Why it needs approval.
    pub reasons: Vec<String>,
    /// Who asked.
    pub author: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at_ms: Option<i64>,
    /// The version an approval published.
    pub version: Option<u64>,
}

/// `POST /api/v1/publish-requests/{id}/approve|reject` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Why, for the audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

crate::wire_enum! {
    /// How recently an instance was heard from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum InstanceStatus {
        /// Heard from within 15 s.
        Up => ("up", "Up"),
        /// Within 60 s.
        Stale => ("stale", "Stale"),
        /// Longer ago.
        Down => ("down", "Down"),
    }
}

/// An agent instance in the fleet view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceView {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// The agent's own id.
    pub instance_id: String,
    /// Agent library version.
    pub agent_version: String,
    /// The policy version it enforces.
    pub policy_version: Option<u64>,
    /// Where that came from: `server`, `disk` or `default`.
    pub policy_source: String,
    /// The version it should enforce.
    pub desired_version: Option<u64>,
    /// Whether it enforces something other than what it should.
    pub lagging: bool,
    /// Liveness.
    pub status: InstanceStatus,
    /// Unix milliseconds.
    pub last_seen_at_ms: i64,
    /// Unix milliseconds.
    pub started_at_ms: i64,
    /// The newest version the instance refused to enforce because it failed
    /// validation, and why, as its latest heartbeat said; it keeps enforcing
    /// `policy_version`. None when it refuses nothing.
    #[serde(default)]
    pub refused_policy: Option<crate::protocol::RefusedPolicy>,
}

/// How many of a service's instances are in each state. An instance counts as
/// heard from when it sent a heartbeat or a telemetry batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceCounts {
    /// Heard from within 15 s.
    pub up: u64,
    /// Within 60 s.
    pub stale: u64,
    /// Longer ago (within a day).
    pub down: u64,
    /// Instances that enforce a policy version other than the one they should.
    pub lagging: Vec<String>,
}

/// A breaker transition reported by one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerTransitionView {
    /// The instance whose breaker moved.
    pub instance_id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Before.
    pub from: crate::protocol::BreakerState,
    /// After.
    pub to: crate::protocol::BreakerState,
}

crate::wire_enum! {
    /// What a row of live figures is about. Agents report retrieval sources
    /// and agent nodes under their names, like dependencies, and their
    /// service-level counts under names starting with `_` (which no policy
    /// name may); the server tells them apart by the policy in force, so
    /// the dashboard can group them.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum ComponentKind {
        /// A dependency the service calls, or a name the policy does not
        /// list (an agent may call what its policy forgot).
        #[default]
        Dependency => ("dependency", "Dependency"),
        /// A retrieval source under `retrieval.sources`.
        RetrievalSource => ("retrieval_source", "Retrieval source"),
        /// An agent workflow node under `agent_nodes`.
        AgentNode => ("agent_node", "Agent node"),
        /// The service as a whole: admission, its request rate and
        /// bulkheads, and calls that named no dependency.
        Service => ("service", "Service level"),
    }
}

/// One dependency of one service over a window: totals, derived rates and
/// percentiles, and its breakers and gauges now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencyLive {
    /// The dependency's name, as the agents report it; `_service` for the
    /// service-level row.
    pub dependency: String,
    /// Whether the row is a dependency, a retrieval source, an agent node
    /// or the service itself, by the policy in force.
    #[serde(default)]
    pub kind: ComponentKind,
    /// First attempts.
    pub calls: u64,
    /// Calls that succeeded, possibly after retries.
    pub successes: u64,
    /// Calls that failed, of any class.
    pub failures: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Retries refused because the retry budget was spent.
    pub retry_budget_exhausted: u64,
    /// Calls refused by an open breaker.
    pub breaker_rejections: u64,
    /// Calls refused by a full bulkhead.
    pub bulkhead_rejections: u64,
    /// Calls refused by a rate limit or budget.
    pub rate_limited: u64,
    /// Requests shed by admission control.
    pub shed: u64,
    /// Fallbacks taken.
    pub fallbacks: u64,
    /// Responses with a status other than normal.
    pub degraded: u64,
    /// Tokens used.
    pub tokens: u64,
    /// Cost in micro-dollars.
    pub cost_usd_micros: u64,
    /// Idempotency keys that came back with a different payload, whatever
    /// the policy then did.
    #[serde(default)]
    pub idempotency_conflicts: u64,
    /// Side effects not run again because their key had already run or was
    /// still running.
    #[serde(default)]
    pub duplicates_prevented: u64,
    /// failures / calls (0 without calls).
    pub error_rate: f64,
    /// timeouts / calls.
    pub timeout_rate: f64,
    /// fallbacks / calls.
    pub fallback_rate: f64,
    /// degraded / calls.
    pub degraded_rate: f64,
    /// (calls + retries) / calls: how much load retries add (1 without calls).
    pub retry_amplification: f64,
    /// Median latency: the upper bound of the histogram bucket that holds it,
    /// in milliseconds (60 000 for the open-ended last bucket). None without
    /// completed calls.
    pub p50_ms: Option<u64>,
    /// 95th percentile latency, read the same way.
    pub p95_ms: Option<u64>,
    /// 99th percentile latency, read the same way.
    pub p99_ms: Option<u64>,
    /// Mean latency of completed calls.
    pub mean_ms: Option<f64>,
    /// The worst breaker state across the instances heard from in the last
    /// 60 s (open is worse than half-open, which is worse than closed).
    pub breaker: Option<crate::protocol::BreakerState>,
    /// Each live instance's breaker state.
    pub breakers: std::collections::BTreeMap<String, crate::protocol::BreakerState>,
    /// The latest transitions, newest first (at most 20, within 15 minutes).
    pub recent_transitions: Vec<BreakerTransitionView>,
    /// Calls in flight now, summed over live instances.
    pub in_flight: u64,
    /// Calls queued in bulkheads now, summed over live instances.
    pub queued: u64,
}

/// One step of a dependency's time series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryPoint {
    /// The step's start, Unix milliseconds.
    pub at_ms: i64,
    /// First attempts.
    pub calls: u64,
    /// Failures.
    pub failures: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Retries.
    pub retries: u64,
    /// Fallbacks.
    pub fallbacks: u64,
    /// Degraded responses.
    pub degraded: u64,
    /// Requests shed.
    pub shed: u64,
    /// Calls refused by breakers, bulkheads and rate limits together.
    pub rejections: u64,
    /// Median latency in the step (bucket upper bound).
    pub p50_ms: Option<u64>,
    /// 95th percentile latency in the step (bucket upper bound).
    pub p95_ms: Option<u64>,
    /// 99th percentile latency in the step (bucket upper bound).
    pub p99_ms: Option<u64>,
    /// Model tokens used.
    pub tokens: u64,
    /// Spend in micro-dollars.
    pub cost_usd_micros: u64,
    /// Calls in flight in the step's busiest second, summed over instances.
    pub in_flight: u64,
    /// Calls queued for a bulkhead slot in the step's busiest second.
    pub queued: u64,
    /// Calls a bulkhead refused.
    pub bulkhead_rejections: u64,
    /// The worst breaker state any instance reported in the step; `None`
    /// when none reported one.
    pub breaker: Option<crate::protocol::BreakerState>,
}

/// A dependency's time series: one point per step, oldest first, with no gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencySeries {
    /// The dependency.
    pub dependency: String,
    /// The points.
    pub points: Vec<TelemetryPoint>,
}

/// `GET /api/v1/services/{name}/{env}/telemetry`: one service, live, over the
/// last `window_secs` seconds (at most 15 minutes are kept in memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceTelemetry {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// When this was computed, Unix milliseconds.
    pub as_of_ms: i64,
    /// The window the figures cover.
    pub window_secs: u64,
    /// The width of one time-series step.
    pub step_secs: u64,
    /// Instances by liveness, and which lag.
    pub instances: InstanceCounts,
    /// Per dependency, retrieval source and agent node, by name; never the
    /// service-level rows.
    pub dependencies: Vec<DependencyLive>,
    /// What the agents counted against the service rather than one
    /// dependency, folded into one row named `_service`; None before any.
    #[serde(default)]
    pub service_level: Option<DependencyLive>,
    /// Per entry of `dependencies`, by name, the time series for charts.
    pub series: Vec<DependencySeries>,
    /// Cost in micro-dollars by tenant over the window.
    pub tenant_cost_usd_micros: std::collections::BTreeMap<String, u64>,
}

/// One service on the fleet overview.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceLiveSummary {
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Instances by liveness, and which lag.
    pub instances: InstanceCounts,
    /// The worst breaker state of any dependency.
    pub worst_breaker: Option<crate::protocol::BreakerState>,
    /// Per dependency, retrieval source and agent node, by name, over the
    /// fleet window; never the service-level rows.
    pub dependencies: Vec<DependencyLive>,
    /// The service-level figures over the fleet window (see
    /// [`ServiceTelemetry::service_level`]).
    #[serde(default)]
    pub service_level: Option<DependencyLive>,
    /// The dead-letter queue's depth and oldest entry.
    #[serde(default)]
    pub dead_letters: DeadLetterFigures,
}

/// A service's dead-letter queue in two figures, for the overview card and
/// `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterFigures {
    /// Entries open or with an action pending.
    pub depth: u64,
    /// When the oldest of them arrived, Unix milliseconds; its age is the
    /// summary's `as_of_ms` minus this.
    pub oldest_received_at_ms: Option<i64>,
}

/// `GET /api/v1/fleet/live`, and each `fleet` event of `GET /api/v1/live`:
/// every service's current summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetLive {
    /// When this was computed, Unix milliseconds.
    pub as_of_ms: i64,
    /// The window the figures cover (60 s).
    pub window_secs: u64,
    /// Every registered service, by name and environment.
    pub services: Vec<ServiceLiveSummary>,
}

mod alerts;
mod dead_letters;
mod objectives;
mod runbooks;
pub use alerts::*;
pub use dead_letters::*;
pub use objectives::*;
pub use runbooks::*;
