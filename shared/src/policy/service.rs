//! The service header and its goals: who the policy is for, how much is at
//! stake, and what it depends on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The one mandatory section: which service and environment the policy
/// governs, and the dependencies every other section refers to by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name, as its agent's token names it.
    pub name: String,
    /// The environment, such as `prod` or `staging`. Free-form because teams
    /// name their environments differently.
    pub environment: String,
    /// The team or person answerable for the service.
    pub owner: String,
    /// How much harm a wrong or late answer can do. Several rules get
    /// stricter at `high` and `regulated`.
    pub risk_tier: RiskTier,
    /// A sentence for the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The dependencies by name. Retry, breaker, timeout, bulkhead and limit
    /// entries must name one of these.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "super::unique::map"
    )]
    pub dependencies: BTreeMap<String, Dependency>,
}

crate::wire_enum! {
    /// How much is at stake when the service is wrong. Ordered from least to
    /// most, so `tier >= RiskTier::High` reads naturally.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum RiskTier {
        /// Internal or low-impact use.
        Low => ("low", "Low"),
        /// Customer-facing, recoverable mistakes.
        Medium => ("medium", "Medium"),
        /// Mistakes harm customers or the business.
        High => ("high", "High"),
        /// Subject to regulation: decisions must be defensible afterwards.
        Regulated => ("regulated", "Regulated"),
    }
}

/// One thing the service calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// What sort of dependency it is; some rules depend on the kind (an
    /// identity outage can never be papered over, for instance).
    pub kind: DependencyKind,
    /// Whether the service can do its job at all without it. Defaults to
    /// `true`: assuming a dependency is optional is the riskier mistake.
    #[serde(default = "default_true")]
    pub required: bool,
    /// A sentence for the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub(crate) fn default_true() -> bool {
    true
}

crate::wire_enum! {
    /// The kinds of dependency an AI service has.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum DependencyKind {
        /// A hosted or self-run language model.
        ModelProvider => ("model_provider", "Model provider"),
        /// An embedding model.
        Embedding => ("embedding", "Embedding"),
        /// A vector database.
        VectorDb => ("vector_db", "Vector DB"),
        /// A keyword (lexical) search engine.
        LexicalSearch => ("lexical_search", "Lexical search"),
        /// A reranking model.
        Reranker => ("reranker", "Reranker"),
        /// An external tool or API the service calls, possibly with side effects.
        ToolApi => ("tool_api", "Tool API"),
        /// A message or task queue.
        Queue => ("queue", "Queue"),
        /// A database.
        Database => ("database", "Database"),
        /// Blob or object storage.
        ObjectStore => ("object_store", "Object store"),
        /// Authentication and authorisation.
        Identity => ("identity", "Identity"),
        /// The service that grants human approvals.
        ApprovalService => ("approval_service", "Approval service"),
        /// The system of record for cases.
        CaseRecord => ("case_record", "Case record"),
        /// Anything else.
        Other => ("other", "Other"),
    }
}

impl DependencyKind {
    /// Whether calls to this kind commonly change something on the other
    /// side, so that a retry can repeat a side effect.
    pub fn may_have_side_effects(self) -> bool {
        matches!(
            self,
            Self::ToolApi
                | Self::Queue
                | Self::Database
                | Self::ObjectStore
                | Self::ApprovalService
                | Self::CaseRecord
                | Self::Other
        )
    }
}

/// What the service promises. Numbers are checked against the timeout
/// budget; statements are shown on the dashboard and in reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goals {
    /// The 95th percentile latency target for a synchronous answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_ms: Option<u64>,
    /// The longest a caller waits before the request is abandoned. The
    /// timeout budget's total must fit inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The availability target in basis points: 9950 is 99.50 %. Integer so
    /// that it compares and round-trips exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_bp: Option<u32>,
    /// For asynchronous work: how quickly a task must be accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_latency_ms: Option<u64>,
    /// For asynchronous work: by when an accepted task must be complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_sla_ms: Option<u64>,
    /// Goals that are not numbers, such as "resume after a worker crash".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
    /// Service level objectives: what the error budgets, the burn-rate
    /// alerts and the canary analysis measure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<super::Objective>,
    /// How a canary of this policy is judged on the objectives. Without it,
    /// canaries are promoted and aborted by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<super::CanaryAnalysis>,
}
