//! The AI-specific policies: structured-output repair, retrieval source
//! requirements, agent node failures, caching and idempotency.

use super::resilience::{Effect, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What to do when a model's structured output does not validate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRepair {
    /// Repair attempts after the first invalid output. Bounded: an unbounded
    /// repair loop burns tokens and time on a model that will not comply.
    pub max_attempts: u32,
    /// What to do when the repairs are used up.
    pub on_failure: RepairFailure,
    /// The model to fall back to when `on_failure` is `fallback`; it must be
    /// named in the `models` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<String>,
}

crate::wire_enum! {
    /// The end of a failed repair loop.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum RepairFailure {
        /// Return a safe failure; never pass invalid output on.
        FailSafe => ("fail_safe", "Fail safe"),
        /// Ask `fallback_model` once.
        Fallback => ("fallback", "Fallback"),
    }
}

/// Which retrieval sources an answer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    /// Sources by name, such as `policy` or `case_facts`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub sources: BTreeMap<String, SourceRequirement>,
}

/// One retrieval source and what its failure means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRequirement {
    /// The dependency that serves the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// Whether an answer may be given without it.
    pub required: bool,
    /// What happens when it fails.
    pub on_failure: SourceFailure,
    /// What the caller is told when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
    /// How much the answer's confidence drops without it, in percentage
    /// points (0–100).
    #[serde(default)]
    pub confidence_penalty_percent: u32,
}

crate::wire_enum! {
    /// What a retrieval source's failure does to the answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SourceFailure {
        /// No answer.
        Fail => ("fail", "Fail"),
        /// Answer, labelled degraded and with lower confidence.
        Degrade => ("degrade", "Degrade"),
        /// Answer as if the source had returned nothing. Silent, so only for
        /// optional sources.
        Omit => ("omit", "Omit"),
        /// Hand the question to a person.
        AskHuman => ("ask_human", "Ask a human"),
    }
}

/// How one agent workflow node behaves when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentNodePolicy {
    /// What the node changes in the world.
    #[serde(default = "read_effect")]
    pub effect: Effect,
    /// Whether the node's action needs a valid human approval first.
    #[serde(default)]
    pub requires_approval: bool,
    /// The dependencies the node calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// How the node itself is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The node to run instead when this one fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_node: Option<String>,
    /// Whether the workflow can complete without this node.
    pub required_for_completion: bool,
    /// Whether a failure hands the run to a person.
    #[serde(default)]
    pub human_handoff_on_failure: bool,
    /// Whether the node runs while the service is degraded.
    #[serde(default)]
    pub in_degraded_mode: DegradedModeAction,
    /// The runbook for the node's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

fn read_effect() -> Effect {
    Effect::Read
}

crate::wire_enum! {
    /// Whether a node runs while the service is degraded.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum DegradedModeAction {
        /// It runs as usual.
        #[default]
        Run => ("run", "Run"),
        /// It waits until the service is healthy again.
        Hold => ("hold", "Hold"),
    }
}

/// The cache policy of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// What a cache key is made of. Tenant, security context and the index,
    /// prompt, model and normalisation versions are mandatory: without them
    /// one tenant can be served another's answer, or a stale one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<CacheKeyPart>,
    /// How long an entry lives, by the sensitivity of its data.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub ttl_ms_by_sensitivity: BTreeMap<Sensitivity, u64>,
    /// Whether an expired entry may be served when its source is down.
    #[serde(default)]
    pub allow_stale: bool,
    /// The caveat shown with a stale answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_caveat: Option<String>,
    /// Whether stale entries may feed high-risk decisions. Must be false.
    #[serde(default)]
    pub stale_for_high_risk: bool,
    /// Whether an update of a source drops the entries built from it.
    #[serde(default = "super::service::default_true")]
    pub invalidate_on_source_update: bool,
}

crate::wire_enum! {
    /// A part of a cache key.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum CacheKeyPart {
        /// The tenant.
        Tenant => ("tenant", "Tenant"),
        /// A hash of the caller's security context (roles, groups, clearances).
        SecurityContext => ("security_context", "Security context"),
        /// The version of the index searched.
        IndexVersion => ("index_version", "Index version"),
        /// The version of the prompt.
        PromptVersion => ("prompt_version", "Prompt version"),
        /// The version of the model.
        ModelVersion => ("model_version", "Model version"),
        /// The version of the query normalisation.
        NormalizationVersion => ("normalization_version", "Normalization version"),
        /// The normalised query itself.
        Query => ("query", "Query"),
        /// The user, for per-user answers.
        User => ("user", "User"),
    }
}

impl CacheKeyPart {
    /// The parts every cache key must contain.
    pub const MANDATORY: [CacheKeyPart; 6] = [
        Self::Tenant,
        Self::SecurityContext,
        Self::IndexVersion,
        Self::PromptVersion,
        Self::ModelVersion,
        Self::NormalizationVersion,
    ];
}

crate::wire_enum! {
    /// How sensitive cached data is, least first.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Sensitivity {
        /// Public or static data.
        Public => ("public", "Public"),
        /// Internal data.
        Internal => ("internal", "Internal"),
        /// Customer or case data.
        Confidential => ("confidential", "Confidential"),
        /// Data under legal or regulatory restriction.
        Restricted => ("restricted", "Restricted"),
    }
}

/// Which operations need idempotency keys, and what a reused key does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyPolicy {
    /// Operations by name: the names used in `retry.*.operations` and in
    /// `agent_nodes`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub operations: BTreeMap<String, IdempotentOperation>,
}

/// One operation that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotentOperation {
    /// The dependency the operation calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// What the key is made of.
    pub key: Vec<IdempotencyKeyPart>,
    /// What a key that comes back with a different payload does.
    pub on_payload_mismatch: KeyReuse,
    /// How long a key is remembered. It must outlive every retry and
    /// redelivery of the operation.
    pub retention_ms: u64,
}

crate::wire_enum! {
    /// A part of an idempotency key.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum IdempotencyKeyPart {
        /// The caller's request id.
        RequestId => ("request_id", "Request id"),
        /// The workflow run.
        WorkflowRunId => ("workflow_run_id", "Workflow run id"),
        /// The workflow node.
        Node => ("node", "Node"),
        /// The operation's name.
        Operation => ("operation", "Operation"),
        /// The tenant.
        Tenant => ("tenant", "Tenant"),
        /// An approved action's id (the DLQ action lifecycle uses it).
        ActionId => ("action_id", "Action id"),
    }
}

crate::wire_enum! {
    /// What a reused key with a different payload does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyReuse {
        /// Refuse the call with a conflict.
        Reject => ("reject", "Reject"),
        /// Refuse it and send it to a person (dead-letter queue).
        Escalate => ("escalate", "Escalate"),
        /// Return the first call's result. Hides that the caller meant something
        /// else, hence a warning.
        ReplayOriginal => ("replay_original", "Replay the original"),
    }
}
