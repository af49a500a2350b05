//! What happens when something fails: the fallback matrix and model routing.

use super::service::RiskTier;
use serde::{Deserialize, Serialize};

/// One row of the fallback matrix: when `component` fails with `failure`,
/// do `fallback`, tell the caller `user_message`, and mark the answer.
///
/// A row with `allowed: false` records a fallback that is forbidden, so
/// that the agent refuses it and a reviewer sees it was considered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackRule {
    /// What failed: a dependency, an agent node, a retrieval source or a
    /// timeout stage, by name.
    pub component: String,
    /// How it failed.
    pub failure: FailureType,
    /// What to do instead.
    pub fallback: FallbackAction,
    /// How the answer is labelled, so degraded mode is always visible.
    pub degraded_status: DegradedStatus,
    /// What the caller is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
    /// Whether the fallback may be taken at all.
    pub allowed: bool,
    /// How much the answer's confidence drops, in percentage points (0–100).
    #[serde(default)]
    pub confidence_penalty_percent: u32,
    /// A sentence for reviewers, such as "use fused retrieval ranking".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The alert rule that fires when the fallback is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The runbook for the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

crate::wire_enum! {
    /// How a component failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FailureType {
        /// It cannot be reached or answers with errors.
        Unavailable => ("unavailable", "Unavailable"),
        /// It did not answer within its budget.
        Timeout => ("timeout", "Timeout"),
        /// It answers, but too slowly to be useful.
        Slow => ("slow", "Slow"),
        /// It refuses calls because of a rate limit or quota.
        RateLimited => ("rate_limited", "Rate limited"),
        /// Its output does not validate (schema, citations, …).
        InvalidOutput => ("invalid_output", "Invalid output"),
        /// Its breaker is open.
        BreakerOpen => ("breaker_open", "Breaker open"),
        /// Any failure.
        Any => ("any", "Any failure"),
    }
}

impl FailureType {
    /// Whether a rule for `self` also covers failures of type `other`.
    pub fn overlaps(self, other: FailureType) -> bool {
        self == other || self == Self::Any || other == Self::Any
    }
}

/// What to do instead. Some actions are listed only so that a matrix can
/// forbid them by name: validation rejects them when `allowed` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FallbackAction {
    /// Call another declared dependency, e.g. lexical search when vector
    /// search is down.
    AlternateDependency {
        /// The dependency to call.
        dependency: String,
    },
    /// Route to another model named in the `models` section.
    AlternateModel {
        /// The model.
        model: String,
    },
    /// Skip an optional step, e.g. keep the fused retrieval order when the
    /// reranker is down.
    SkipStep {},
    /// Serve a cached result no older than a bound.
    Cached {
        /// The oldest result that may be served.
        max_staleness_ms: u64,
    },
    /// Replace a model judge with deterministic checks only.
    DeterministicChecksOnly {},
    /// Accept the work as a background task.
    Queue {},
    /// Resume later from the last checkpoint.
    ResumeFromCheckpoint {},
    /// Stop and wait; take no action until the component is back.
    Pause {},
    /// Hand the work to a person.
    HumanHandoff {},
    /// Say plainly that the capability is unavailable.
    ExplainUnavailable {},
    /// Refuse: fail closed.
    Refuse {},
    /// Answer from the model's own memory, without evidence. Unsafe: it
    /// drops grounding.
    ModelMemory {},
    /// Carry on without checking authorisation. Unsafe.
    SkipAuthorization {},
    /// Perform the side effect without its approval. Unsafe.
    ProceedWithoutApproval {},
}

impl FallbackAction {
    /// The wire name of the action, as in `skip_step`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AlternateDependency { .. } => "alternate_dependency",
            Self::AlternateModel { .. } => "alternate_model",
            Self::SkipStep {} => "skip_step",
            Self::Cached { .. } => "cached",
            Self::DeterministicChecksOnly {} => "deterministic_checks_only",
            Self::Queue {} => "queue",
            Self::ResumeFromCheckpoint {} => "resume_from_checkpoint",
            Self::Pause {} => "pause",
            Self::HumanHandoff {} => "human_handoff",
            Self::ExplainUnavailable {} => "explain_unavailable",
            Self::Refuse {} => "refuse",
            Self::ModelMemory {} => "model_memory",
            Self::SkipAuthorization {} => "skip_authorization",
            Self::ProceedWithoutApproval {} => "proceed_without_approval",
        }
    }

    /// Whether the action fails closed: it neither answers nor acts until
    /// the component is back (or a person decides).
    pub fn fails_closed(&self) -> bool {
        matches!(
            self,
            Self::Queue {}
                | Self::ResumeFromCheckpoint {}
                | Self::Pause {}
                | Self::HumanHandoff {}
                | Self::ExplainUnavailable {}
                | Self::Refuse {}
        )
    }

    /// Whether the answer is still as good as the normal one. Anything else
    /// must be labelled as degraded (a silent fallback hides a quality
    /// change).
    pub fn keeps_quality(&self) -> bool {
        matches!(self, Self::AlternateDependency { .. }) || self.fails_closed()
    }
}

crate::wire_enum! {
    /// The status an answer carries after a fallback.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum DegradedStatus {
        /// Indistinguishable from a normal answer.
        Normal => ("normal", "Normal"),
        /// Answered with reduced quality or confidence.
        Degraded => ("degraded", "Degraded"),
        /// Part of the request was answered, part was not.
        Partial => ("partial", "Partial"),
        /// Accepted for later.
        Queued => ("queued", "Queued"),
        /// Waiting for a dependency or a person.
        Paused => ("paused", "Paused"),
        /// Not answered.
        Refused => ("refused", "Refused"),
    }
}

/// Model routing: the primary model and its fallbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRouting {
    /// The model used when all is well.
    pub primary: ModelRoute,
    /// Fallback models, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<ModelFallback>,
}

/// A model and the dependency that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// The model's name and version, such as `large-2026-01`.
    pub model: String,
    /// The `model_provider` dependency that serves it.
    pub dependency: String,
    /// Whether the model passed this service's evaluation suite.
    #[serde(default)]
    pub validated: bool,
}

/// A fallback model and what it may be used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFallback {
    /// The model's name and version.
    pub model: String,
    /// The `model_provider` dependency that serves it.
    pub dependency: String,
    /// Whether the model passed this service's evaluation suite. High and
    /// regulated services may only fall back to validated models.
    #[serde(default)]
    pub validated: bool,
    /// The features it may serve, such as `structured_output` or
    /// `summary`. Application-defined, hence free-form; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_features: Vec<String>,
    /// Request risk levels it must never serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disallowed_risk_levels: Vec<RiskTier>,
    /// Whether its answers go through extra validation before use.
    #[serde(default)]
    pub requires_additional_validation: bool,
}
