//! The classic distributed-systems controls: timeout budget, retries and
//! their budget, circuit breakers, bulkheads, rate limits and admission.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The timeout budget. The agent turns `total_ms` into a deadline and
/// propagates what is left (header `ballast-deadline`), so a late stage
/// cannot spend time the request no longer has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// The whole request's budget.
    pub total_ms: u64,
    /// The pipeline's stages in order. Their budgets must add up to no more
    /// than `total_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// A timeout per dependency, for calls that need a tighter bound than
    /// their stage's budget (or that belong to no stage).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub dependencies: BTreeMap<String, u64>,
}

/// One stage of the request pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage's name, such as `retrieval`. Unique within the budget.
    pub name: String,
    /// How long the stage may take.
    pub budget_ms: u64,
    /// The dependencies called in this stage. A dependency listed here is
    /// bounded by the stage's budget even without its own timeout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

/// How calls to one dependency are retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 means no retry.
    pub max_attempts: u32,
    /// The first backoff; each later one doubles, up to `max_delay_ms`.
    pub base_delay_ms: u64,
    /// The backoff cap.
    pub max_delay_ms: u64,
    /// How backoffs are randomised so that clients do not retry in step.
    pub jitter: Jitter,
    /// The error classes that are retried; every other class fails at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<ErrorClass>,
    /// The operations this policy covers, with their side effects. An
    /// operation that changes something is only retried with an idempotency
    /// key (see the `idempotency` section).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub operations: BTreeMap<String, Effect>,
}

crate::wire_enum! {
    /// Backoff randomisation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Jitter {
        /// A uniform delay between zero and the exponential backoff.
        Full => ("full", "Full"),
        /// Each delay drawn between the base and three times the previous delay.
        Decorrelated => ("decorrelated", "Decorrelated"),
        /// No randomisation: clients that failed together retry together.
        None => ("none", "None"),
    }
}

crate::wire_enum! {
    /// The classes of error a caller sees. The last six are never worth a retry:
    /// the same request will fail the same way.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorClass {
        /// The call did not answer in time.
        Timeout => ("timeout", "Timeout"),
        /// The connection failed or was reset.
        Connection => ("connection", "Connection"),
        /// The dependency asked us to slow down (HTTP 429 and the like).
        RateLimited => ("rate_limited", "Rate limited"),
        /// The dependency is down or answered with a transient server error.
        Unavailable => ("unavailable", "Unavailable"),
        /// The dependency shed our call because it is overloaded.
        Overloaded => ("overloaded", "Overloaded"),
        /// Authentication or authorisation was denied.
        AuthDenied => ("auth_denied", "Auth denied"),
        /// The request itself is invalid.
        Validation => ("validation", "Validation"),
        /// Retrieval found too little evidence to answer.
        InsufficientEvidence => ("insufficient_evidence", "Insufficient evidence"),
        /// A policy (safety, data, business) forbids the call.
        PolicyViolation => ("policy_violation", "Policy violation"),
        /// A cost or token budget is spent.
        BudgetExceeded => ("budget_exceeded", "Budget exceeded"),
        /// Any other error that will not go away by itself.
        Permanent => ("permanent", "Permanent"),
    }
}

impl ErrorClass {
    /// Whether a retry can ever help. Retrying the others only multiplies
    /// load (and, for auth and policy failures, probes a boundary).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection
                | Self::RateLimited
                | Self::Unavailable
                | Self::Overloaded
        )
    }
}

crate::wire_enum! {
    /// What an operation changes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Effect {
        /// Nothing: safe to repeat.
        Read => ("read", "Read"),
        /// Creates or changes something: a repeat may duplicate it.
        Write => ("write", "Write"),
        /// Deletes, closes, sends or pays: a repeat cannot be undone.
        Destructive => ("destructive", "Destructive"),
    }
}

impl Effect {
    /// Whether repeating the operation can repeat a side effect.
    pub fn has_side_effects(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// Caps retries across the service, so that a failing dependency does not
/// receive more traffic while it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of first attempts: 10 means retries
    /// may add at most 10 % to the load. Integer so it compares exactly.
    pub ratio_percent: u32,
    /// Retries per second always allowed, so that a quiet service can still
    /// retry at all.
    pub min_per_second: u32,
}

/// A circuit breaker around one dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerPolicy {
    /// When the breaker opens.
    pub mode: BreakerMode,
    /// Calls slower than this count as failures: a dependency that answers
    /// too late is as bad as one that does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_call: Option<SlowCall>,
    /// How long the breaker stays open before it lets probes through.
    pub cooldown_ms: u64,
    /// How many probe calls a half-open breaker lets through; all must
    /// succeed for it to close.
    pub half_open_probes: u32,
    /// A manual override for the whole fleet.
    #[serde(default)]
    pub forced: ForcedState,
    /// When the override in `forced` ends, in Unix milliseconds. Agents
    /// lift it at that time on their own clock, even when the control
    /// plane cannot be reached; without it, the override holds until a
    /// later version removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_until_ms: Option<i64>,
    /// Why the override was set: the incident, and who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_reason: Option<String>,
    /// The alert rule that fires when the breaker opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The runbook for an open breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// When a breaker opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BreakerMode {
    /// After this many failures in a row.
    Consecutive {
        /// Failures in a row that open the breaker.
        failures: u32,
    },
    /// When the share of failed calls in a sliding window crosses a threshold.
    FailureRate {
        /// Failed calls, in percent of all calls in the window.
        threshold_percent: u32,
        /// The sliding window's length.
        window_ms: u64,
        /// Below this many calls in the window the breaker never opens, so
        /// that two failures out of three calls do not trip it.
        minimum_calls: u32,
    },
}

/// The slow-call rule of a breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowCall {
    /// A call slower than this is slow.
    pub threshold_ms: u64,
    /// The share of slow calls, in percent, that opens the breaker.
    pub rate_percent: u32,
}

crate::wire_enum! {
    /// A fleet-wide manual override of a breaker.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ForcedState {
        /// The breaker works by itself.
        #[default]
        None => ("none", "No override"),
        /// Open everywhere: no call reaches the dependency.
        Open => ("open", "Open"),
        /// Closed everywhere: the breaker never opens.
        Closed => ("closed", "Closed"),
    }
}

/// A bulkhead: a concurrency and queue limit per partition, so that one
/// tenant, tool or batch job cannot starve the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulkhead {
    /// What the work is partitioned by: each value of the key gets its own
    /// limits.
    pub partition: PartitionKey,
    /// The dependency whose calls this bulkhead limits; absent, it limits
    /// the service's own requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// Calls in flight per partition.
    pub max_concurrent: u32,
    /// Calls waiting per partition; beyond it calls are rejected at once.
    pub max_queued: u32,
    /// How long a call may wait for a slot.
    pub queue_timeout_ms: u64,
    /// Different limits for particular partition values, such as a large
    /// tenant or the `batch_eval` priority class.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub overrides: BTreeMap<String, BulkheadOverride>,
}

crate::wire_enum! {
    /// What a bulkhead partitions by.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum PartitionKey {
        /// One partition per tenant.
        Tenant => ("tenant", "Tenant"),
        /// One partition per tool.
        Tool => ("tool", "Tool"),
        /// One partition per model.
        Model => ("model", "Model"),
        /// One partition per queue.
        Queue => ("queue", "Queue"),
        /// One partition per priority class.
        Priority => ("priority", "Priority"),
    }
}

/// Limits for one partition value; an absent field keeps the bulkhead's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadOverride {
    /// Calls in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Calls waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u32>,
    /// How long a call may wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_timeout_ms: Option<u64>,
}

/// Rate limits and budgets. Each is reserved before the call, so a burst
/// cannot overshoot while results are pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The service's own request rate, per tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RateLimit>,
    /// Model tokens per minute, across the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Spend per tenant per day in millionths of a US dollar. Integer
    /// micro-dollars add up exactly, which floating point does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_tenant_per_day_usd_micros: Option<u64>,
    /// Limits on calls to particular dependencies, such as a provider quota.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub dependencies: BTreeMap<String, DependencyLimit>,
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The sustained rate.
    pub per_second: u32,
    /// The bucket's size: how many requests may arrive at once.
    pub burst: u32,
}

/// Limits on calls to one dependency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyLimit {
    /// The call rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RateLimit>,
    /// Tokens per minute, for model providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// Admission control and load shedding: which work is still accepted, and
/// how, when the service is under pressure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// The class assumed for a request that names none.
    #[serde(default = "default_class")]
    pub default_class: PriorityClass,
    /// Conditions and what each selects per class. When several fire, the
    /// strictest mode for a class wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
}

fn default_class() -> PriorityClass {
    PriorityClass::Interactive
}

crate::wire_enum! {
    /// The six priority classes, most important first. Ordering follows
    /// importance, so `a < b` means `a` is shed after `b`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum PriorityClass {
        /// Work whose loss endangers someone: never shed.
        SafetyCritical => ("safety_critical", "Safety-critical"),
        /// Work a contract promises.
        Contractual => ("contractual", "Contractual"),
        /// A person is waiting for it.
        #[default]
        Interactive => ("interactive", "Interactive"),
        /// Background jobs.
        Background => ("background", "Background"),
        /// Batch and evaluation runs.
        BatchEval => ("batch_eval", "Batch and eval"),
        /// Nice-to-have extras.
        OptionalEnrichment => ("optional_enrichment", "Optional enrichment"),
    }
}

/// A load condition and the admission mode it selects for each class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A name for dashboards and telemetry, unique within the section.
    pub id: String,
    /// The condition.
    pub signal: Signal,
    /// The mode per class while the condition holds; a class not listed
    /// stays `normal`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub modes: BTreeMap<PriorityClass, AdmissionMode>,
    /// What a shed or queued caller is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
    /// The alert rule that fires with the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The runbook for the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// A condition that triggers load shedding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Signal {
    /// The work queue is deeper than a bound.
    QueueDepth {
        /// The depth above which the trigger fires.
        above: u64,
        /// The queue dependency measured; absent, the service's own queue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dependency: Option<String>,
    },
    /// A dependency's 95th percentile latency is above a bound.
    DependencyP95 {
        /// The dependency measured.
        dependency: String,
        /// The latency above which the trigger fires.
        above_ms: u64,
    },
    /// A dependency's breaker is open.
    BreakerOpen {
        /// The dependency whose breaker is watched.
        dependency: String,
    },
    /// Spend has reached a share of the cost budget.
    CostNearLimit {
        /// The share, in percent of `limits.cost_per_tenant_per_day_usd_micros`.
        percent: u32,
    },
}

crate::wire_enum! {
    /// What admission does with a request.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum AdmissionMode {
        /// Served as usual.
        #[default]
        Normal => ("normal", "Normal"),
        /// Served with reduced capability (no rerank, smaller model, …).
        Degraded => ("degraded", "Degraded"),
        /// Accepted as a background task instead of answered now.
        Queued => ("queued", "Queued"),
        /// Refused with a clear status.
        Rejected => ("rejected", "Rejected"),
    }
}
