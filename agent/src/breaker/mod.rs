//! The circuit breaker, read in the order a call meets it: a classifier
//! ([`CallOutcome::of`], in `classify.rs`) turns an outcome into "the
//! dependency failed" or not; that feeds the state machine ([`Breaker`], in
//! `state.rs`); and a gate ([`Breaker::acquire`] and its [`Ticket`], in
//! `gate.rs`) admits or refuses the next call on that state.
//!
//! The guard asks [`Breaker::acquire`] before a call and reports the
//! classified outcome with [`Breaker::record`]. The parameters come from the
//! policy version the call started with, so a policy swap changes the
//! thresholds of the next decision without losing the state: a breaker
//! that is open stays open across a publish.
//!
//! * Closed: every call passes. Consecutive mode opens after N failures in
//!   a row; rate mode opens when, over a sliding window with at least the
//!   minimum number of calls, the failure share (or the slow-call share)
//!   reaches its threshold. A slow call is a failure in consecutive mode.
//! * Open: nothing passes until the cooldown has passed.
//! * Half-open: N probes pass; all N must succeed to close, one failure
//!   reopens for another cooldown.
//! * The policy's forced state wins over all of this.
//!
//! [`BreakerLayer`] puts a tower service behind the same breakers: one per
//! dependency in the shared [`crate::state::Enforcement`], used by
//! [`crate::Guard::call`] too, so both APIs see (and trip) the same state.

mod classify;
mod error;
mod future;
mod gate;
mod layer;
mod state;

pub use classify::CallOutcome;
pub use error::BreakerOpen;
pub use future::ResponseFuture;
pub use gate::{Refused, Ticket};
pub use layer::{BreakerLayer, BreakerService};
pub use state::{Breaker, Transition};

#[cfg(test)]
mod tests {
    use super::*;
    use shared::policy::{BreakerMode, BreakerPolicy, ForcedState, SlowCall};
    use shared::protocol::BreakerState;
    use std::sync::Arc;
    use std::time::Duration;

    fn consecutive(n: u32) -> BreakerPolicy {
        BreakerPolicy {
            mode: BreakerMode::Consecutive { failures: n },
            slow_call: None,
            cooldown_ms: 1_000,
            half_open_probes: 2,
            forced: ForcedState::None,
            forced_until_ms: None,
            forced_reason: None,
            alert: None,
            runbook: None,
        }
    }

    /// Opens at 50 % failures over 10 s, once `minimum_calls` were made.
    fn failure_rate(minimum_calls: u32) -> BreakerPolicy {
        BreakerPolicy {
            mode: BreakerMode::FailureRate {
                threshold_percent: 50,
                window_ms: 10_000,
                minimum_calls,
            },
            ..consecutive(0)
        }
    }

    const FAIL: CallOutcome = CallOutcome {
        failed: true,
        latency: Duration::ZERO,
    };
    const OK: CallOutcome = CallOutcome {
        failed: false,
        latency: Duration::ZERO,
    };

    /// Makes one admitted call per outcome, in order.
    fn feed(
        b: &Arc<Breaker>,
        p: &BreakerPolicy,
        t: &mut Vec<Transition>,
        outcomes: impl IntoIterator<Item = CallOutcome>,
    ) {
        for outcome in outcomes {
            let ticket = b.acquire(p, t).unwrap();
            b.record(p, ticket, outcome, t);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_mode_needs_the_minimum_number_of_calls_before_it_opens() {
        let p = failure_rate(4);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [FAIL; 3]);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "3 calls are below the minimum of 4"
        );
        feed(&b, &p, &mut t, [FAIL]);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_slide_out_of_the_rate_window() {
        let p = failure_rate(4);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [FAIL; 3]);
        tokio::time::advance(Duration::from_secs(11)).await;
        feed(&b, &p, &mut t, [FAIL]);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_count_as_failures_in_consecutive_mode() {
        let mut p = consecutive(2);
        p.slow_call = Some(SlowCall {
            threshold_ms: 100,
            rate_percent: 50,
        });
        let b = Breaker::new();
        let mut t = Vec::new();
        let slow_ok = CallOutcome {
            failed: false,
            latency: Duration::from_millis(150),
        };
        feed(&b, &p, &mut t, [slow_ok; 2]);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_forced_state_wins_and_is_reported() {
        let mut p = consecutive(1);
        p.forced = ForcedState::Open;
        let b = Breaker::new();
        let mut t = Vec::new();
        assert!(b.acquire(&p, &mut t).is_err());
        assert_eq!(b.state(), BreakerState::ForcedOpen);
        p.forced = ForcedState::Closed;
        feed(&b, &p, &mut t, [FAIL; 10]);
        assert_eq!(b.state(), BreakerState::ForcedClosed);
        assert_eq!(t.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_gives_its_slot_back() {
        let p = consecutive(1);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [FAIL]);
        tokio::time::advance(Duration::from_secs(1)).await;
        let a = b.acquire(&p, &mut t).unwrap();
        let c = b.acquire(&p, &mut t).unwrap();
        assert!(b.acquire(&p, &mut t).is_err(), "only two probes");
        drop(c);
        assert!(
            b.acquire(&p, &mut t).is_ok(),
            "the dropped probe's slot is free"
        );
        drop(a);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_counted_without_the_lock_still_weigh_in_the_failure_rate() {
        let p = failure_rate(20);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [OK; 10].into_iter().chain([FAIL; 9]));
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "9 of 19, below the minimum"
        );
        feed(&b, &p, &mut t, [FAIL]);
        assert_eq!(b.state(), BreakerState::Open, "10 of 20 is 50 %");
        assert!(b.acquire(&p, &mut t).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_after_failures_resets_the_streak() {
        let p = consecutive(3);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [FAIL, FAIL, OK, FAIL, FAIL]);
        assert_eq!(b.state(), BreakerState::Closed);
        feed(&b, &p, &mut t, [FAIL]);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_after_the_probes_starts_the_rate_window_afresh() {
        let p = failure_rate(4);
        let b = Breaker::new();
        let mut t = Vec::new();
        feed(&b, &p, &mut t, [OK, OK, OK, FAIL, FAIL, FAIL]);
        assert_eq!(b.state(), BreakerState::Open, "3 of 6");
        tokio::time::advance(Duration::from_secs(1)).await;
        feed(&b, &p, &mut t, [OK, OK]);
        assert_eq!(b.state(), BreakerState::Closed, "both probes passed");
        // Only what came after the close counts: 3 failures in 5 calls.
        // The 3 successes before it would have kept it closed (3 of 11).
        feed(&b, &p, &mut t, [FAIL, FAIL, OK, OK, FAIL]);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
