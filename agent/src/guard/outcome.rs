//! What a guarded call gives back: each attempt's view ([`Attempt`]), the
//! labelled outcome ([`Guarded`]), and the two out-of-line steps of a
//! failure (the retry decision of [`crate::retry`], the resolution of
//! [`crate::fallback`]), kept cold so that the success path stays short.

use super::handles::Meter;
use super::{Guard, GuardError};
use crate::call::{Call, Classify, Usage};
use crate::compiled::{CompiledPolicy, DependencyRules};
use crate::deadline::Deadline;
use crate::fallback::{
    Degradation, FallbackDecision, Resolution, failure_type_of, resolve_counted,
};
use crate::retry::RetryPlan;
use crate::telemetry::DependencyStats;
use shared::policy::{DegradedStatus, Effect};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// What one attempt of a guarded call knows.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry, …
    pub number: u32,
    /// The attempt's deadline, to send on (see [`Deadline::propagate`]).
    pub deadline: Option<Deadline>,
    /// The call's idempotency key, to send with a side effect.
    pub idempotency_key: Option<Arc<str>>,
    pub(super) usage: Meter,
}

impl Attempt {
    /// Reports what the attempt actually used. Budgets reserved the
    /// estimate before the call; this settles them. Without a report the
    /// estimate stands.
    pub fn record_usage(&self, usage: Usage) {
        // Only a dropped meter has none, and a dropped attempt records
        // nothing.
        let Some(meter) = &self.usage.0 else { return };
        meter.tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        meter
            .cost
            .fetch_add(usage.cost_usd_micros, Ordering::Relaxed);
        meter.recorded.store(true, Ordering::Relaxed);
    }
}

/// The outcome of a guarded call: the result, and how the answer built on
/// it must be labelled.
#[derive(Debug)]
pub struct Guarded<T, E> {
    /// The value, or why there is none.
    pub result: Result<T, GuardError<E>>,
    /// The status the answer carries; `normal` on success.
    pub status: DegradedStatus,
    /// Attempts made (0 when refused before calling).
    pub attempts: u32,
    /// Whether the side effect may have happened although the call failed:
    /// the operation changes something, and an attempt was sent whose reply
    /// was lost (it timed out, or the connection broke after sending). The
    /// guard never retries such a call without an idempotency key; the
    /// caller must reconcile it (look the effect up at the target, or
    /// report it with [`crate::dlq::dead_letter`]) rather than repeat it.
    pub side_effect_uncertain: bool,
    /// What a degraded or failed outcome tells the caller besides its
    /// status; `None` for a normal one. Boxed: a success carries none, and
    /// an outcome half the size is cheaper to hand back on every call.
    pub degradation: Option<Box<Degradation>>,
}

impl<T, E> Guarded<T, E> {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// What the caller is to be told, when not normal.
    pub fn user_message(&self) -> Option<&str> {
        self.degradation.as_ref()?.user_message.as_deref()
    }

    /// The fallback to take instead, if the policy allows one.
    pub fn fallback(&self) -> Option<&FallbackDecision> {
        self.degradation.as_ref()?.fallback.as_ref()
    }

    /// The must-fail-closed invariant that stops the action, if any. When
    /// set, the action must not proceed in any form.
    pub fn fail_closed(&self) -> Option<&str> {
        self.degradation.as_ref()?.fail_closed.as_deref()
    }

    /// The same outcome with its value mapped by `f`; the labels stay.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Guarded<U, E> {
        Guarded {
            result: self.result.map(f),
            status: self.status,
            attempts: self.attempts,
            side_effect_uncertain: self.side_effect_uncertain,
            degradation: self.degradation,
        }
    }
}

/// How a call's run ended: the value and the last attempt's latency, or
/// why it failed.
pub(super) type RunResult<T, E> = Result<(T, Duration), GuardError<E>>;

/// What a call's run reports back besides its result: attempts made,
/// whether a reply was lost, and the last reading of the clock (in the
/// limiters' ticks).
pub(super) struct Progress {
    pub(super) attempts: u32,
    pub(super) lost_reply: bool,
    pub(super) ticks: u64,
}

impl Guard {
    /// Counts a failed attempt and decides whether and after what backoff
    /// it is retried. Out of line: the success path stays short and its
    /// code compact.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_failure<'p, E: Classify>(
        &self,
        error: &GuardError<E>,
        latency: Duration,
        call: &Call<'_>,
        policy: &'p CompiledPolicy,
        rules: Option<&'p DependencyRules>,
        plan: &mut Option<RetryPlan<'p>>,
        progress: &mut Progress,
        deadline: Option<Instant>,
        stats: &DependencyStats,
    ) -> Option<Duration> {
        let class = error.class();
        stats.attempt_ended();
        stats.latency(latency);
        // A timeout or a broken connection says nothing about whether the
        // dependency acted: the request may have arrived.
        progress.lost_reply |= matches!(
            class,
            shared::policy::ErrorClass::Timeout | shared::policy::ErrorClass::Connection
        );
        let plan = plan.get_or_insert_with(|| {
            RetryPlan::for_call(
                policy,
                rules,
                call.operation,
                call.effect,
                call.idempotency_key.is_some(),
            )
        });
        plan.next_delay(
            &self.state,
            class,
            progress.attempts,
            deadline.map(Deadline::at),
            stats,
        )
    }

    /// The outcome of a call that failed for good: counted, and resolved
    /// through the invariants and the fallback matrix. Out of line, like
    /// [`Guard::after_failure`].
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn failed<T, E: Classify>(
        error: GuardError<E>,
        call: &Call<'_>,
        policy: &CompiledPolicy,
        rules: Option<&DependencyRules>,
        stats: &DependencyStats,
        used: Usage,
        attempts: u32,
        lost_reply: bool,
    ) -> Guarded<T, E> {
        stats.usage(used.tokens, used.cost_usd_micros);
        // As the retry plan judged it, so that "not retried because it is
        // a write" and "uncertain" agree.
        let effect = call
            .effect
            .or_else(|| rules.map(|r| r.effect_of(call.operation)))
            .unwrap_or(Effect::Read);
        let class = error.class();
        stats.failure(class);
        let failure_type = match error {
            GuardError::BreakerOpen => Some(shared::policy::FailureType::BreakerOpen),
            GuardError::BudgetExhausted(_) => None,
            _ => failure_type_of(class),
        };
        let Resolution {
            status,
            degradation,
        } = resolve_counted(
            policy,
            call.dependency,
            failure_type,
            &call.model_request(),
            stats,
        );
        Guarded {
            result: Err(error),
            status,
            attempts,
            side_effect_uncertain: effect.has_side_effects() && lost_reply,
            degradation: degradation.boxed(),
        }
    }
}
