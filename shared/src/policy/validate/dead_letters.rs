//! The dead-letter section: names, time limits, and the rule that a high
//! or regulated service never lets side-effecting work be redriven or
//! closed by one person alone.

use super::{Checker, Code};
use crate::policy::dead_letter_bounds as b;
use crate::policy::{ApprovalNeed, RiskTier};
use crate::protocol::DlqActionKind;

pub(super) fn check(c: &mut Checker<'_>) {
    let Some(d) = &c.policy.dead_letters else {
        return;
    };
    for name in d.task_types.keys() {
        c.name(
            format!("dead_letters.task_types.{name}"),
            "the task type",
            name,
        );
    }
    if !(b::APPROVAL_EXPIRY_MIN_S..=b::APPROVAL_EXPIRY_MAX_S).contains(&d.approval_expires_after_s)
    {
        c.error(
            "dead_letters.approval_expires_after_s",
            Code::OutOfRange,
            format!(
                "approvals expire after {} to {} seconds (a minute to 30 days)",
                b::APPROVAL_EXPIRY_MIN_S,
                b::APPROVAL_EXPIRY_MAX_S
            ),
        );
    }
    if !(1..=b::ACK_TIMEOUT_MAX_S).contains(&d.ack_timeout_s) {
        c.error(
            "dead_letters.ack_timeout_s",
            Code::OutOfRange,
            format!(
                "an agent gets 1 to {} seconds to acknowledge an action",
                b::ACK_TIMEOUT_MAX_S
            ),
        );
    }
    if !(1..=b::REDRIVE_PER_S_MAX).contains(&d.redrive_per_s) {
        c.error(
            "dead_letters.redrive_per_s",
            Code::OutOfRange,
            format!(
                "redrives are paced at 1 to {} per second",
                b::REDRIVE_PER_S_MAX
            ),
        );
    }
    let tier = c.policy.service.risk_tier;
    if tier < RiskTier::High {
        return;
    }
    // Cancelling or escalating hands the work to people; redriving or
    // closing it acts on the world, which is what four eyes are for.
    for kind in [DlqActionKind::Redrive, DlqActionKind::ManualComplete] {
        if d.approval.get(&kind) == Some(&ApprovalNeed::Never) {
            c.error(
                format!("dead_letters.approval.{}", kind.as_str()),
                Code::DlqActionWithoutApproval,
                format!(
                    "a {} service needs an approver for a {} of work with side effects; use side_effects or always",
                    tier.as_str(),
                    kind.as_str()
                ),
            );
        }
    }
}
