//! The choices of the policy's enums, as the editor offers them: wire name
//! and words.

use super::Options;
use shared::policy::{
    AdmissionMode, ApprovalNeed, CacheKeyPart, DegradedModeAction, DegradedStatus, DependencyKind,
    Effect, ErrorClass, FailureType, ForcedState, IdempotencyKeyPart, Jitter, KeyReuse,
    PartitionKey, PriorityClass, Prohibition, Sensitivity,
};

pub const RISK_TIERS: Options = &[
    ("low", "low"),
    ("medium", "medium"),
    ("high", "high — publishes need an approver"),
    ("regulated", "regulated — publishes need an approver"),
];

pub const DEPENDENCY_KINDS: Options = &DependencyKind::OPTIONS;

pub const JITTERS: Options = &Jitter::OPTIONS;

pub const ERROR_CLASSES: Options = &ErrorClass::OPTIONS;

pub const FORCED: Options = &ForcedState::OPTIONS;

pub const BREAKER_MODES: Options = &[
    ("consecutive", "failures in a row"),
    ("failure_rate", "failure rate"),
];

pub const FAILURE_TYPES: Options = &FailureType::OPTIONS;

pub const FALLBACK_ACTIONS: Options = &[
    ("alternate_dependency", "alternate dependency"),
    ("alternate_model", "alternate model"),
    ("skip_step", "skip step"),
    ("cached", "cached result"),
    ("deterministic_checks_only", "deterministic checks only"),
    ("queue", "queue"),
    ("resume_from_checkpoint", "resume from checkpoint"),
    ("pause", "pause"),
    ("human_handoff", "human handoff"),
    ("explain_unavailable", "explain unavailable"),
    ("refuse", "refuse"),
    ("model_memory", "model memory (unsafe)"),
    ("skip_authorization", "skip authorisation (unsafe)"),
    (
        "proceed_without_approval",
        "proceed without approval (unsafe)",
    ),
];

pub const DEGRADED_STATUSES: Options = &DegradedStatus::OPTIONS;

pub const PARTITIONS: Options = &PartitionKey::OPTIONS;

pub const PRIORITY_CLASSES: Options = &PriorityClass::OPTIONS;

pub const ADMISSION_MODES: Options = &AdmissionMode::OPTIONS;

pub const SIGNALS: Options = &[
    ("queue_depth", "queue deeper than"),
    ("dependency_p95", "dependency p95 above"),
    ("breaker_open", "breaker open"),
    ("cost_near_limit", "cost near its limit"),
];

pub const REPAIR_FAILURES: Options = &[
    ("fail_safe", "fail safe"),
    ("fallback", "ask the fallback model"),
];

pub const SOURCE_FAILURES: Options = &[
    ("fail", "fail"),
    ("degrade", "degrade"),
    ("omit", "omit (optional sources only)"),
    ("ask_human", "ask a person"),
];

pub const EFFECTS: Options = &Effect::OPTIONS;

pub const DEGRADED_MODE_ACTIONS: Options = &DegradedModeAction::OPTIONS;

pub const CACHE_KEY_PARTS: Options = &CacheKeyPart::OPTIONS;

pub const SENSITIVITIES: Options = &Sensitivity::OPTIONS;

pub const IDEMPOTENCY_KEY_PARTS: Options = &IdempotencyKeyPart::OPTIONS;

pub const KEY_REUSES: Options = &KeyReuse::OPTIONS;

pub const PROHIBITIONS: Options = &Prohibition::OPTIONS;

/// When a dead-letter action needs an approver, with "the tier decides"
/// (the key left out) first.
pub const APPROVAL_NEEDS: Options = &{
    let mut all = [("", "risk tier's default"); ApprovalNeed::OPTIONS.len() + 1];
    let mut i = 0;
    while i < ApprovalNeed::OPTIONS.len() {
        all[i + 1] = ApprovalNeed::OPTIONS[i];
        i += 1;
    }
    all
};

#[cfg(test)]
mod tests {
    use super::*;
    use shared::policy::{RepairFailure, RiskTier, SourceFailure};

    /// The lists with words of their own still offer exactly the enum's
    /// variants, so a new one cannot be missing from the editor.
    #[test]
    fn described_lists_offer_every_variant() {
        let names = |o: Options| o.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(
            names(RISK_TIERS),
            RiskTier::ALL.map(RiskTier::as_str).to_vec()
        );
        assert_eq!(
            names(REPAIR_FAILURES),
            RepairFailure::ALL.map(RepairFailure::as_str).to_vec()
        );
        assert_eq!(
            names(SOURCE_FAILURES),
            SourceFailure::ALL.map(SourceFailure::as_str).to_vec()
        );
        assert_eq!(
            names(APPROVAL_NEEDS)[1..],
            ApprovalNeed::ALL.map(ApprovalNeed::as_str)
        );
    }
}
