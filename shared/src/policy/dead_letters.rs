//! Dead letters: which actions on a failed unit of work need a second
//! person, and how long a decision and its execution may take.
//!
//! Acting on a dead letter is acting on work that may already have touched
//! the outside world (a case half-updated, a notice half-sent), so by default
//! the risk tier decides: in a high or regulated service every action needs
//! an approver; elsewhere only actions on work with side effects do. A task
//! type that the policy does not declare counts as having side effects,
//! because a guess in the other direction is the one that hurts.

use super::RiskTier;
use super::unique;
use crate::protocol::DlqActionKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `dead_letters` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterPolicy {
    /// The kinds of work this service dead-letters, by task type.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub task_types: BTreeMap<String, TaskType>,
    /// Which actions need an approver; an action not named here follows the
    /// risk tier's default (see [`DeadLetterPolicy::approval_for`]).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub approval: BTreeMap<DlqActionKind, ApprovalNeed>,
    /// How long a request may wait for its approval, and an approval for its
    /// dispatch, before it expires.
    #[serde(default = "default_approval_expiry_s")]
    pub approval_expires_after_s: u64,
    /// How long a dispatched action may go without an acknowledgement before
    /// it is marked uncertain (and never sent again on its own).
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
    /// The most redrives dispatched per second, so that a bulk approval does
    /// not stampede a dependency that has only just recovered.
    #[serde(default = "default_redrive_per_s")]
    pub redrive_per_s: u32,
}

/// One kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskType {
    /// Whether running the work changes something outside the service.
    pub side_effects: bool,
}

crate::wire_enum! {
    /// When an action needs an approver.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ApprovalNeed {
        /// Every time.
        Always => ("always", "Always"),
        /// When the task type has side effects (or is not declared).
        SideEffects => ("side_effects", "When the task has side effects"),
        /// Never: the requester's word is enough.
        Never => ("never", "Never"),
    }
}

/// Bounds that validation holds the section to.
pub mod bounds {
    /// Shortest approval expiry: a minute, so a decision is possible at all.
    pub const APPROVAL_EXPIRY_MIN_S: u64 = 60;
    /// Longest approval expiry: 30 days; older approvals describe a world
    /// that has moved on.
    pub const APPROVAL_EXPIRY_MAX_S: u64 = 30 * 86_400;
    /// Longest acknowledgement wait: an hour.
    pub const ACK_TIMEOUT_MAX_S: u64 = 3_600;
    /// The fastest redrive rate; SQS caps its own redrive at 500 messages/s.
    pub const REDRIVE_PER_S_MAX: u32 = 500;
}

fn default_approval_expiry_s() -> u64 {
    86_400
}

fn default_ack_timeout_s() -> u64 {
    60
}

fn default_redrive_per_s() -> u32 {
    50
}

impl Default for DeadLetterPolicy {
    fn default() -> Self {
        DeadLetterPolicy {
            task_types: BTreeMap::new(),
            approval: BTreeMap::new(),
            approval_expires_after_s: default_approval_expiry_s(),
            ack_timeout_s: default_ack_timeout_s(),
            redrive_per_s: default_redrive_per_s(),
        }
    }
}

impl DeadLetterPolicy {
    /// The rule for `kind`: the policy's own, or the tier's default.
    pub fn approval_for(&self, tier: RiskTier, kind: DlqActionKind) -> ApprovalNeed {
        self.approval
            .get(&kind)
            .copied()
            .unwrap_or(if tier >= RiskTier::High {
                ApprovalNeed::Always
            } else {
                ApprovalNeed::SideEffects
            })
    }

    /// Whether work of `task_type` has side effects; undeclared types do.
    pub fn has_side_effects(&self, task_type: &str) -> bool {
        self.task_types
            .get(task_type)
            .is_none_or(|t| t.side_effects)
    }

    /// Why `kind` on work of `task_type` needs an approver, or `None` when
    /// the requester may go ahead alone.
    pub fn approval_reason(
        &self,
        tier: RiskTier,
        kind: DlqActionKind,
        task_type: &str,
    ) -> Option<String> {
        let explicit = self.approval.contains_key(&kind);
        let origin = if explicit {
            "the policy's dead_letters.approval"
        } else {
            "the risk tier's default"
        };
        match self.approval_for(tier, kind) {
            ApprovalNeed::Always => Some(format!(
                "{origin} requires approval for every {}",
                kind.as_str()
            )),
            ApprovalNeed::SideEffects if self.has_side_effects(task_type) => {
                let why = if self.task_types.contains_key(task_type) {
                    "has side effects"
                } else {
                    "is not declared, so it counts as having side effects"
                };
                Some(format!(
                    "{origin} requires approval when the task has side effects, and {task_type} {why}"
                ))
            }
            ApprovalNeed::SideEffects | ApprovalNeed::Never => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tier_decides_unless_the_policy_says_otherwise() {
        let mut p = DeadLetterPolicy::default();
        p.task_types.insert(
            "lookup".into(),
            TaskType {
                side_effects: false,
            },
        );
        let cancel = DlqActionKind::Cancel;
        assert!(p.approval_reason(RiskTier::Low, cancel, "lookup").is_none());
        assert!(p.approval_reason(RiskTier::Low, cancel, "notify").is_some());
        assert!(
            p.approval_reason(RiskTier::High, cancel, "lookup")
                .is_some()
        );
        p.approval.insert(cancel, ApprovalNeed::Never);
        assert!(
            p.approval_reason(RiskTier::High, cancel, "notify")
                .is_none()
        );
        p.approval.insert(cancel, ApprovalNeed::Always);
        let why = p.approval_reason(RiskTier::Low, cancel, "lookup").unwrap();
        assert!(why.contains("dead_letters.approval"), "{why}");
    }
}
