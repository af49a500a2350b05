//! One guarded call, composed: the handles found, the clock read, then
//! each pattern's decision in turn on the shared state (the deadline, the
//! rate limit and usage reservation, the retry budget's deposit, and per
//! attempt the breaker's gate, the bulkhead slots, the attempt bounded by
//! its deadline, the breaker fed its outcome), and on a failure the retry
//! plan and the fallback resolution.
//!
//! Written out as one async fn on purpose: each level of nesting is a
//! future moved whole into its parent's, and the success path is measured
//! by `benches/guard_overhead.rs`.

use super::handles::{Handles, Meter};
use super::outcome::{Progress, RunResult};
use super::{Attempt, Guard, GuardError, Guarded};
use crate::breaker::CallOutcome;
use crate::call::{Call, Classify, Usage};
use crate::clock::instant_at;
use crate::deadline::{Budgets, Deadline, earliest, nanos};
use crate::rate_limit::HeldUsage;
use crate::retry::RetryPlan;
use crate::state::Enforcement;
use crate::telemetry::shard_index;
use shared::policy::DegradedStatus;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

/// Polls `fut` once: its output if it is ready at once. (A call whose
/// dependency answers at once so never touches the timer wheel.)
fn poll_once<F: Future + ?Sized>(
    mut fut: std::pin::Pin<&mut F>,
) -> impl Future<Output = Option<F::Output>> + '_ {
    std::future::poll_fn(move |cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
}

impl Guard {
    /// Runs `op` as a guarded call described by `call`.
    ///
    /// `op` is called once per attempt with what the attempt knows (its
    /// deadline to propagate, the idempotency key, a usage meter). The
    /// outcome carries the result and the status the answer must show.
    pub async fn call<T, E, F, Fut>(&self, call: &Call<'_>, mut op: F) -> Guarded<T, E>
    where
        E: Classify,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The policy of the whole call, in the handles the call owns until
        // it ends: a swap mid-call changes nothing here. (One async fn
        // rather than two: each level of nesting copies the whole future.)
        let (mut handles, mut returned_meter) = self.handles(call);
        // The clock is read once here and once per attempt's end, in
        // nanoseconds from the guard's epoch ("ticks"), and every pattern
        // decides on those readings: the deadlines, buckets, windows,
        // breaker and retry budget. An instant is made only for what leaves
        // the guard (the attempt's deadline).
        let epoch = self.state.inner.limiters.epoch();
        let ticks = {
            let h = &mut *handles;
            h.clock.start(&mut h.anchor, epoch)
        };
        let policy = &*handles.policy;
        let rules = handles.rules.as_deref();
        let stats = &*handles.lane.stats;
        // This thread's telemetry shard, looked up once and again after
        // each await that can suspend the call (it may resume on another
        // thread, whose shard it must count in).
        let mut at = shard_index();
        // Counted at once, so that a call cancelled while it waits (for a
        // bulkhead slot, say) is counted too.
        stats.call_at(at);
        // The stage's budget bounds the call as a whole, retries included.
        let stage_budget = call
            .stage
            .and_then(|s| policy.stage_budget(s))
            .or(rules.and_then(|r| r.stage_budget));
        let budgets = Budgets {
            start: ticks,
            given: call
                .deadline
                .map(|d| nanos(d.instant().saturating_duration_since(epoch))),
            // The policy's total budget applies only without a deadline.
            budget: earliest(
                call.deadline
                    .is_none()
                    .then(|| policy.total_budget())
                    .flatten()
                    .map(nanos),
                stage_budget.map(nanos),
            ),
        };
        let mut progress = Progress {
            attempts: 0,
            lost_reply: false,
            ticks,
        };
        // The call's run, in this function's body rather than an async fn
        // of its own: each level of nesting is a future moved whole into
        // its parent's, about half a kilobyte copied per call.
        // What the run reserves, settled after it whatever its end.
        let mut reservation = HeldUsage::default();
        let result: RunResult<T, E> = 'run: {
            let handles: &Handles = &handles;
            let progress = &mut progress;
            let usage = &handles.usage;
            let lane = &*handles.lane;
            let t = progress.ticks;
            if budgets.expired() {
                break 'run Err(GuardError::DeadlineExpired);
            }
            if !handles.budgets.take_request(t) {
                stats.rate_limited();
                break 'run Err(GuardError::RateLimited);
            }
            if let Err(refusal) =
                handles
                    .budgets
                    .reserve_held(policy, stats, call.estimate, t, &mut reservation)
            {
                break 'run Err(GuardError::BudgetExhausted(refusal));
            }
            // The first attempt earns its share of retries now; how to retry is
            // worked out only once an attempt has failed.
            if let Some(b) = policy.retry_budget() {
                self.state.inner.retry_budget.deposit_ticks(t, b, at);
            }
            let mut plan: Option<RetryPlan<'_>> = None;
            let key: Option<Arc<str>> = call.idempotency_key.map(Arc::from);
            let breaker_policy = rules.and_then(|r| r.breaker.as_ref());
            let breaker = breaker_policy.map(|_| self.state.lane_breaker(lane));
            let per_attempt = rules.and_then(|r| r.timeout).map(nanos);
            let mut transitions = Vec::new();
            loop {
                progress.attempts += 1;
                // The first attempt starts at the call's reading; a retry after
                // its sleep reads the clock anew.
                let start = if progress.attempts == 1 {
                    t
                } else {
                    handles.clock.later(&handles.anchor, epoch)
                };
                let ticket = match (breaker, breaker_policy) {
                    (Some(b), Some(p)) => {
                        let t = b.acquire_at(start, p, &mut transitions);
                        self.state.record_transitions(stats, &mut transitions);
                        match t {
                            Ok(t) => Some(t),
                            Err(_refused) => {
                                stats.breaker_rejection();
                                progress.attempts -= 1;
                                break 'run Err(GuardError::BreakerOpen);
                            }
                        }
                    }
                    _ => None,
                };
                let attempt_deadline = budgets
                    .for_attempt(start, per_attempt)
                    .map(|d| Deadline::at(instant_at(epoch, d)));
                // Free slots are taken without a future; only a call that has
                // to queue awaits one (boxed, so that the call's own future
                // stays small).
                let mut slots = Enforcement::take_partitions(&handles.partitions);
                if slots.held < handles.partitions.len() {
                    let waited = Box::pin(self.state.acquire_partitions(
                        &mut slots,
                        attempt_deadline,
                        stats,
                    ))
                    .await;
                    at = shard_index();
                    if let Err(rejection) = waited {
                        stats.bulkhead_rejection();
                        progress.attempts -= 1;
                        break 'run Err(GuardError::Bulkhead(rejection));
                    }
                }
                let attempt = Attempt {
                    number: progress.attempts,
                    deadline: attempt_deadline,
                    idempotency_key: key.clone(),
                    usage: Meter(Some(returned_meter.take().unwrap_or_else(|| usage.clone()))),
                };
                // Waiting for a bulkhead slot is not the dependency's latency.
                let began = if slots.waited {
                    handles.clock.later(&handles.anchor, epoch)
                } else {
                    start
                };
                stats.attempt_started_at(at);
                // The attempt runs until its deadline: polled once before
                // any timer exists, and only one that has to wait gets the
                // timer (boxed: it would otherwise enlarge every call's
                // future). Written out here, not as an async fn, which was
                // one more state machine per call. The attempt's future
                // lives in this block only: one cut off at its deadline is
                // dropped (its request cancelled) before its slot goes back,
                // never kept through a retry's backoff.
                let outcome: Result<T, Option<E>> = {
                    let mut fut = std::pin::pin!(op(attempt));
                    match poll_once(fut.as_mut()).await {
                        Some(r) => r.map_err(Some),
                        None => match attempt_deadline {
                            Some(d) => {
                                let r = Box::pin(tokio::time::timeout_at(d.instant(), fut)).await;
                                at = shard_index();
                                match r {
                                    Ok(r) => r.map_err(Some),
                                    Err(_elapsed) => Err(None),
                                }
                            }
                            None => {
                                let r = fut.await;
                                at = shard_index();
                                r.map_err(Some)
                            }
                        },
                    }
                };
                drop(slots);
                let end_ticks = handles.clock.later(&handles.anchor, epoch);
                progress.ticks = end_ticks;
                let latency = std::time::Duration::from_nanos(end_ticks.saturating_sub(began));
                let outcome = outcome.map_err(|e| match e {
                    Some(e) => GuardError::Dependency(e),
                    None => GuardError::Timeout,
                });
                let failed = outcome.as_ref().err().map(GuardError::class);
                if let (Some(b), Some(p), Some(t)) = (breaker, breaker_policy, ticket) {
                    b.record_at(
                        end_ticks,
                        at,
                        p,
                        t,
                        CallOutcome::of(failed, latency),
                        &mut transitions,
                    );
                    self.state.record_transitions(stats, &mut transitions);
                }
                let error = match outcome {
                    Ok(value) => {
                        // The attempt's end and latency are counted with the
                        // call's success, in one go.
                        break 'run Ok((value, latency));
                    }
                    Err(error) => error,
                };
                let deadline = budgets.deadline().map(|d| instant_at(epoch, d));
                let Some(delay) = self.after_failure(
                    &error, latency, call, policy, rules, &mut plan, progress, deadline, stats,
                ) else {
                    break 'run Err(error);
                };
                // Boxed: a retry's timer is rare next to the calls that need
                // none, and would otherwise make every call's future larger.
                Box::pin(tokio::time::sleep(delay)).await;
                at = shard_index();
                stats.retry();
            }
        };
        let Progress {
            attempts,
            lost_reply,
            ticks: end,
        } = progress;
        let usage = &handles.usage;
        let used = if usage.recorded.load(Ordering::Relaxed) {
            Usage {
                tokens: usage.tokens.load(Ordering::Relaxed),
                cost_usd_micros: usage.cost.load(Ordering::Relaxed),
            }
        } else if attempts > 0 {
            call.estimate
        } else {
            Usage::default()
        };
        if let Some(t) = &handles.budgets.tenant
            && used.cost_usd_micros > 0
        {
            t.spend.add_at(at, used.cost_usd_micros);
        }
        reservation.settle(&handles.budgets, end, used.tokens, used.cost_usd_micros);
        let out = match result {
            Ok((value, latency)) => {
                stats.succeeded_at(at, latency, used.tokens, used.cost_usd_micros);
                Guarded {
                    result: Ok(value),
                    status: DegradedStatus::Normal,
                    attempts,
                    side_effect_uncertain: false,
                    degradation: None,
                }
            }
            Err(error) => Guard::failed(
                error, call, policy, rules, stats, used, attempts, lost_reply,
            ),
        };
        Guard::keep_handles(handles);
        out
    }
}
