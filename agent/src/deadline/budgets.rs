//! A call's deadline and budgets in ticks (nanoseconds from the state's
//! epoch), as [`crate::Guard::call`] keeps them: one clock reading per
//! attempt, and single-instruction sums and comparisons, where instants
//! need normalising.

use std::time::Duration;

/// The earlier of two optional deadlines, or the smaller of two optional
/// budgets, in ticks.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Nanoseconds, saturated (a budget of 584 years is no budget to speak of).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The bounds of a call, in the limiters' ticks (nanoseconds from the
/// guard's epoch: the clock is read in them, and sums and comparisons of
/// them are single instructions, where instants need normalising): the
/// deadline it was given, and the tightest of the budgets that started
/// with it. Kept apart rather than added up at once: the first attempt's
/// deadline needs one addition for the call's and its own budget
/// together, and the call's own deadline is only needed again by a retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budgets {
    /// When the call started.
    pub(crate) start: u64,
    /// The deadline the call was given.
    pub(crate) given: Option<u64>,
    /// The tightest budget that started with the call.
    pub(crate) budget: Option<u64>,
}

impl Budgets {
    /// The call's deadline, retries included.
    pub(crate) fn deadline(&self) -> Option<u64> {
        earliest(
            self.given,
            self.budget.map(|b| self.start.saturating_add(b)),
        )
    }

    /// Whether the call's deadline has passed at its start (a budget of
    /// zero has).
    #[inline]
    pub(crate) fn expired(&self) -> bool {
        self.given.is_some_and(|d| d <= self.start) || self.budget == Some(0)
    }

    /// The deadline of an attempt starting at `start` with its own
    /// `per_attempt` budget: the earlier of the call's and its own.
    #[inline]
    pub(crate) fn for_attempt(&self, start: u64, per_attempt: Option<u64>) -> Option<u64> {
        let after = |b: u64| start.saturating_add(b);
        if start == self.start {
            // Both budgets run from the same reading: add the smaller.
            earliest(self.given, earliest(self.budget, per_attempt).map(after))
        } else {
            earliest(self.deadline(), per_attempt.map(after))
        }
    }
}
