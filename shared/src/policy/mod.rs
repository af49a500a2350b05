//! The policy document: one service's reliability policy in one environment.
//!
//! Engineers write it (in the dashboard, or as YAML in git); the server
//! validates, versions and distributes it; each service's agent enforces it.
//! All three run this same code, so a policy the browser accepts is exactly
//! the policy the server publishes and the agent enforces.
//!
//! * [`Policy`] and the section types model the document. On the wire every
//!   name is snake_case, durations are integer milliseconds (`_ms`), shares
//!   are integer percentages and money is integer micro-dollars, so that
//!   every value compares and round-trips exactly. Unknown fields are errors:
//!   a misspelt `max_atempts` must not silently leave the default in force.
//! * [`Policy::from_json`], [`Policy::from_yaml`] and their inverses read and
//!   write it, naming the offending field's path on error.
//! * [`validate`] finds errors (which block a publish) and warnings (which
//!   don't), each with the path of the field concerned.
//! * [`diff`] and [`invariant_loosenings`] compare two versions.

mod ai;
mod codec;
mod dead_letters;
mod degradation;
mod diff;
mod invariants;
mod objectives;
mod resilience;
mod service;
mod unique;
mod validate;

pub use ai::{
    AgentNodePolicy, CacheKeyPart, CachePolicy, DegradedModeAction, IdempotencyKeyPart,
    IdempotencyPolicy, IdempotentOperation, KeyReuse, OutputRepair, RepairFailure, Retrieval,
    Sensitivity, SourceFailure, SourceRequirement,
};
pub use codec::{EncodeError, Format, MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH, ParseError};
pub use dead_letters::{ApprovalNeed, DeadLetterPolicy, TaskType, bounds as dead_letter_bounds};
pub use degradation::{
    DegradedStatus, FailureType, FallbackAction, FallbackRule, ModelFallback, ModelRoute,
    ModelRouting,
};
pub use diff::{Change, ChangeKind, Loosening, diff, invariant_loosenings};
pub use invariants::{FailClosed, Invariants, MayDegrade, MustNotDo, Prohibition};
pub use objectives::{
    CanaryAnalysis, Indicator, MAX_WINDOW_DAYS, Objective, REQUESTS_COMPONENT, SAFETY_PREFIX,
    SafetyViolation, is_objective_record,
};
pub use resilience::{
    Admission, AdmissionMode, BreakerMode, BreakerPolicy, Bulkhead, BulkheadOverride,
    DependencyLimit, Effect, ErrorClass, ForcedState, Jitter, Limits, PartitionKey, PriorityClass,
    RateLimit, RetryBudget, RetryPolicy, Signal, SlowCall, Stage, Timeouts, Trigger,
};
pub use service::{Dependency, DependencyKind, Goals, RiskTier, Service};
pub use validate::{Code, Finding, Severity, ValidationContext, ValidationReport, validate};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One service's reliability policy in one environment. Only the service
/// header is required; an absent section means "no policy of this kind",
/// and validation says where that is a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Which service, how risky, and what it depends on.
    pub service: Service,
    /// What the service promises; checked against the timeout budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goals: Option<Goals>,
    /// The request's time budget and its split over stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Retry policy per dependency.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub retry: BTreeMap<String, RetryPolicy>,
    /// The service-wide cap on retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
    /// Circuit breaker per dependency.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub breakers: BTreeMap<String, BreakerPolicy>,
    /// The fallback matrix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<FallbackRule>,
    /// Model routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelRouting>,
    /// Bulkheads by name.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub bulkheads: BTreeMap<String, Bulkhead>,
    /// Rate limits and budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Admission control and load shedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Admission>,
    /// Structured-output repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_repair: Option<OutputRepair>,
    /// Retrieval source requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// Failure policy per agent workflow node.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub agent_nodes: BTreeMap<String, AgentNodePolicy>,
    /// Cache policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// Idempotency keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyPolicy>,
    /// What must fail closed, may degrade, and must never happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariants: Option<Invariants>,
    /// Which dead-letter actions need an approver, and their time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<DeadLetterPolicy>,
}

impl Policy {
    /// A policy with only its header: the smallest valid document.
    pub fn new(service: Service) -> Policy {
        Policy {
            service,
            goals: None,
            timeouts: None,
            retry: BTreeMap::new(),
            retry_budget: None,
            breakers: BTreeMap::new(),
            fallbacks: Vec::new(),
            models: None,
            bulkheads: BTreeMap::new(),
            limits: None,
            admission: None,
            output_repair: None,
            retrieval: None,
            agent_nodes: BTreeMap::new(),
            cache: None,
            idempotency: None,
            invariants: None,
            dead_letters: None,
        }
    }

    /// Checks the policy; see [`validate`].
    pub fn validate(&self, context: &ValidationContext) -> ValidationReport {
        validate(self, context)
    }

    /// Whether going from `old` to `new` loosens an invariant, which makes
    /// the publish need an approver; see [`invariant_loosenings`].
    pub fn loosens_invariants(old: &Policy, new: &Policy) -> bool {
        !invariant_loosenings(old, new).is_empty()
    }
}
