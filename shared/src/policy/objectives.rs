//! Reliability goals as numbers the control plane can hold a service to:
//! service level objectives over the agent's request records, and the
//! analysis that promotes or aborts a canary on them.
//!
//! Every objective is "good requests over valid requests, at least the
//! target, over a rolling window", so one error-budget and burn-rate
//! computation serves them all (the approach of Google's SRE workbook).
//! Safety goals are the exception: their target is zero violations, so they
//! have no budget to spend, and a single violation fires at once.

use super::DegradedStatus;
use serde::{Deserialize, Serialize};

/// One service level objective.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// A name, unique within the service, such as `answer-latency`.
    pub id: String,
    /// Which requests count as good.
    pub indicator: Indicator,
    /// The share of good requests to keep, in basis points: 9950 is 99.50 %.
    /// Safety goals take 10000 (no violation at all).
    pub target_bp: u32,
    /// The rolling window the target holds over, in days.
    #[serde(default = "default_window_days")]
    pub window_days: u32,
    /// The runbook the burn-rate alerts lead to; the built-in
    /// `error-budget-burn` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

fn default_window_days() -> u32 {
    28
}

/// The longest window an objective may have: the server keeps request
/// records this long.
pub const MAX_WINDOW_DAYS: u32 = 90;

/// What makes a request good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Indicator {
    /// Answered within `threshold_ms`. The bound must be one of the
    /// telemetry's latency bucket bounds, so that the count is exact rather
    /// than interpolated.
    Latency {
        /// The latency bound, in milliseconds.
        threshold_ms: u64,
    },
    /// Answered normally, or in one of the `allowed` degraded statuses.
    Availability {
        /// Degraded statuses that still count as available, such as
        /// `degraded` for an answer ranked more coarsely than usual.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowed: Vec<DegradedStatus>,
    },
    /// Answered at full quality: any degraded status counts against it.
    Quality,
    /// No request breaks a safety rule; the service (or its agent) reports
    /// each violation.
    Safety {
        /// Which rule.
        violation: SafetyViolation,
    },
}

impl Indicator {
    /// The kind's wire name.
    pub fn kind(&self) -> &'static str {
        match self {
            Indicator::Latency { .. } => "latency",
            Indicator::Availability { .. } => "availability",
            Indicator::Quality => "quality",
            Indicator::Safety { .. } => "safety",
        }
    }
}

crate::wire_enum! {
    /// A rule that must never break, whatever the error budget says.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SafetyViolation {
        /// A document reached a caller who may not see it.
        UnauthorizedRetrieval => ("unauthorized_retrieval", "Unauthorised retrieval"),
        /// A high-risk action ran without its approval.
        UnapprovedHighRiskAction => ("unapproved_high_risk_action", "Unapproved high-risk action"),
        /// A side effect happened twice.
        DuplicateSideEffect => ("duplicate_side_effect", "Duplicate side effect"),
        /// An answer was given without the evidence it needs.
        AnswerWithoutEvidence => ("answer_without_evidence", "Answer without evidence"),
    }
}

impl SafetyViolation {
    /// The pseudo-dependency the agent counts this violation under, as
    /// `_safety-duplicate_side_effect`.
    pub fn component(self) -> String {
        format!("{SAFETY_PREFIX}{}", self.as_str())
    }
}

/// The pseudo-dependency under which the agent records one entry per
/// request that entered the service: its end-to-end latency and final status.
pub const REQUESTS_COMPONENT: &str = "_requests";
/// The prefix of the pseudo-dependencies that count safety violations.
pub const SAFETY_PREFIX: &str = "_safety-";

/// Whether a reported row named `name` is one the objectives are measured
/// on (the request records or a safety count) rather than a component's.
pub fn is_objective_record(name: &str) -> bool {
    name == REQUESTS_COMPONENT || name.starts_with(SAFETY_PREFIX)
}

/// How a canary is judged against the stable version on the objectives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryAnalysis {
    /// Abort when, for any objective, the canary burns its error budget
    /// faster than one (sustainable) and faster than the stable version by
    /// this factor, in percent: 200 is twice as fast.
    #[serde(default = "default_max_burn_ratio_percent")]
    pub max_burn_ratio_percent: u32,
    /// The canary is not judged on fewer requests than this (safety
    /// violations are judged at once).
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// How long the canary must hold before it may be promoted, in minutes.
    #[serde(default = "default_bake_minutes")]
    pub bake_minutes: u32,
    /// Abort a canary that fails the comparison, without waiting for a person.
    #[serde(default = "default_true")]
    pub auto_abort: bool,
    /// Promote a canary that held for its bake time.
    #[serde(default)]
    pub auto_promote: bool,
}

fn default_max_burn_ratio_percent() -> u32 {
    200
}
fn default_min_requests() -> u32 {
    50
}
fn default_bake_minutes() -> u32 {
    30
}
fn default_true() -> bool {
    true
}

impl Default for CanaryAnalysis {
    fn default() -> Self {
        CanaryAnalysis {
            max_burn_ratio_percent: default_max_burn_ratio_percent(),
            min_requests: default_min_requests(),
            bake_minutes: default_bake_minutes(),
            auto_abort: true,
            auto_promote: false,
        }
    }
}
