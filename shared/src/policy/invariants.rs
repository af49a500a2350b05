//! The invariants: what must fail closed, what may degrade, and what must
//! never be done. Validation checks the rest of the policy against them, and
//! a publish that loosens them needs an approver.

use super::degradation::FailureType;
use serde::{Deserialize, Serialize};

/// The three lists of invariants. Each entry has an id, unique within its
/// list, so that versions can be compared entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    /// Failures that must stop the work rather than be worked around.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_fail_closed: Vec<FailClosed>,
    /// Failures that may be answered with a labelled, degraded result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub may_degrade: Vec<MayDegrade>,
    /// Things the service must never do, whatever fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not_do: Vec<MustNotDo>,
}

/// A failure that must stop the work. No fallback, retrieval rule or agent
/// node may work around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailClosed {
    /// A stable name, such as `approval_service_unavailable`.
    pub id: String,
    /// The component (dependency, agent node, retrieval source or stage)
    /// whose failure this is. Without one the entry is only documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Which failures of the component; `any` by default.
    #[serde(default = "any_failure")]
    pub failure: FailureType,
    /// The invariant in words.
    pub description: String,
}

/// A failure that may be answered with a degraded result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MayDegrade {
    /// A stable name, such as `reranker_unavailable`.
    pub id: String,
    /// The component whose failure may degrade the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Which failures of the component; `any` by default.
    #[serde(default = "any_failure")]
    pub failure: FailureType,
    /// The invariant in words, with its conditions ("if evidence is still
    /// sufficient").
    pub description: String,
}

fn any_failure() -> FailureType {
    FailureType::Any
}

/// Something the service must never do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MustNotDo {
    /// A stable name, such as `close_case_without_approval`.
    pub id: String,
    /// The kind of prohibition, which tells validation what to check.
    pub kind: Prohibition,
    /// The invariant in words.
    pub description: String,
}

crate::wire_enum! {
    /// The kinds of prohibition validation knows how to check. `other` is
    /// recorded and enforced by the agent's hooks only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Prohibition {
        /// Act (write, close, send) without a valid approval.
        ActWithoutApproval => ("act_without_approval", "Act without approval"),
        /// Take a destructive action (send, close, pay) while the service is
        /// degraded, when the evidence behind it may be incomplete.
        DestructiveActionInDegradedMode => ("destructive_action_in_degraded_mode", "Destructive action in degraded mode"),
        /// Serve stale data without saying so.
        UnlabeledStaleData => ("unlabeled_stale_data", "Unlabeled stale data"),
        /// Retry a side effect without an idempotency key.
        RetryWithoutIdempotency => ("retry_without_idempotency", "Retry without idempotency"),
        /// Answer as if missing evidence were not missing.
        HideMissingEvidence => ("hide_missing_evidence", "Hide missing evidence"),
        /// Answer without authorised evidence.
        UngroundedAnswer => ("ungrounded_answer", "Ungrounded answer"),
        /// Skip an authorisation check.
        BypassAuthorization => ("bypass_authorization", "Bypass authorization"),
        /// Anything else.
        Other => ("other", "Other"),
    }
}
