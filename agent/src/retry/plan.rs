//! The retry decision: whether a failure is retried, within the retry
//! budget, after what backoff. One plan serves [`crate::Guard::call`] and
//! [`super::RetryLayer`], so that both retry the same failures and draw on
//! one budget.

use super::backoff::Backoff;
use crate::compiled::{CompiledPolicy, DependencyRules};
use crate::deadline::Deadline;
use crate::state::Enforcement;
use crate::telemetry::DependencyStats;
use shared::policy::{Effect, RetryBudget as RetryBudgetPolicy, RetryPolicy};

/// The retry decisions of one call: which failures are retried, within
/// the retry budget, after what backoff. Shared by [`crate::Guard::call`]
/// and [`super::RetryLayer`].
pub(crate) struct RetryPlan<'p> {
    retry: Option<&'p RetryPolicy>,
    max_attempts: u32,
    may_retry: bool,
    budget: Option<&'p RetryBudgetPolicy>,
    backoff: Option<Backoff>,
}

impl<'p> RetryPlan<'p> {
    /// The plan for a call of `operation` on `dependency` under `policy`;
    /// deposits the call's first attempt into the retry budget.
    pub(crate) fn start(
        state: &Enforcement,
        policy: &'p CompiledPolicy,
        dependency: &str,
        operation: &str,
        effect: Option<Effect>,
        keyed: bool,
    ) -> RetryPlan<'p> {
        if let Some(b) = policy.retry_budget() {
            state.inner.retry_budget.deposit(b);
        }
        RetryPlan::for_call(
            policy,
            policy.dependency(dependency),
            operation,
            effect,
            keyed,
        )
    }

    /// The plan for a call whose first attempt has already been deposited
    /// into the retry budget, with the dependency's rules already found.
    /// [`crate::Guard::call`] makes it only once an attempt has failed: a call
    /// that succeeds at once never needs it.
    pub(crate) fn for_call(
        policy: &'p CompiledPolicy,
        rules: Option<&'p DependencyRules>,
        operation: &str,
        effect: Option<Effect>,
        keyed: bool,
    ) -> RetryPlan<'p> {
        let retry = rules.and_then(|r| r.retry.as_ref());
        let effect = effect
            .or_else(|| rules.map(|r| r.effect_of(operation)))
            .unwrap_or(Effect::Read);
        let budget = policy.retry_budget();
        RetryPlan {
            retry,
            max_attempts: retry.map_or(1, |r| r.max_attempts.max(1)),
            // A side effect is retried only under an idempotency key: the
            // first attempt may have done its work before failing.
            may_retry: !effect.has_side_effects() || keyed,
            budget,
            backoff: retry.map(Backoff::for_policy),
        }
    }

    /// The wait before retrying a failure of `class` after `attempts`
    /// attempts, or `None` when it is not retried. Takes the retry from
    /// the budget and counts a refusal by it.
    pub(crate) fn next_delay(
        &mut self,
        state: &Enforcement,
        class: shared::policy::ErrorClass,
        attempts: u32,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Option<std::time::Duration> {
        let retryable = self.retry.is_some_and(|r| r.retry_on.contains(&class))
            && class.is_retryable()
            && self.may_retry
            && attempts < self.max_attempts;
        if !retryable {
            return None;
        }
        if let Some(b) = self.budget
            && !state.inner.retry_budget.withdraw(b)
        {
            stats.retry_budget_exhausted();
            return None;
        }
        let delay = self
            .backoff
            .as_mut()
            .map(|b| b.delay(attempts, &*state.inner.random))
            .unwrap_or_default();
        // No retry that cannot finish in time: sleeping into the deadline
        // only to fail is load with no chance of an answer.
        if deadline.is_some_and(|d| d.remaining() <= delay) {
            return None;
        }
        Some(delay)
    }
}
