//! Gate: whether a call may go out on the breaker's state, and the
//! [`Ticket`] that admits it (a half-open probe's holds its probe slot).

use super::state::{Breaker, Phase, Transition};
use shared::policy::{BreakerPolicy, ForcedState};
use std::sync::Arc;
use tokio::time::Instant;

/// The breaker refused a call: it is open (or forced open), or its
/// half-open probes are all taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Permission to make one call. A half-open probe that is dropped without
/// an outcome (its call was cancelled) gives its probe slot back.
#[derive(Debug)]
pub struct Ticket {
    pub(super) probe: Option<Arc<Breaker>>,
}

impl Ticket {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for Ticket {
    // Inline: nearly every ticket is no probe, and its drop is one test.
    #[inline]
    fn drop(&mut self) {
        if let Some(b) = self.probe.take() {
            Ticket::release_probe(b);
        }
    }
}

impl Ticket {
    /// A probe that ended without its outcome recorded frees its place.
    #[inline(never)]
    fn release_probe(b: Arc<Breaker>) {
        let mut inner = b.lock();
        if let Phase::HalfOpen { admitted, .. } = &mut inner.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }
}

impl Breaker {
    /// Whether a call may go out now. On `Err` the call must not be made.
    pub fn acquire(
        self: &Arc<Self>,
        policy: &BreakerPolicy,
        transitions: &mut Vec<Transition>,
    ) -> Result<Ticket, Refused> {
        self.acquire_at(self.ticks(Instant::now()), policy, transitions)
    }

    /// [`Breaker::acquire`] with the time already read, as
    /// [`Breaker::ticks`] gives it (a closed breaker never looks at it).
    #[inline]
    pub(crate) fn acquire_at(
        self: &Arc<Self>,
        ticks: u64,
        policy: &BreakerPolicy,
        transitions: &mut Vec<Transition>,
    ) -> Result<Ticket, Refused> {
        if self.passes(policy) {
            return Ok(Ticket { probe: None });
        }
        self.acquire_locked(self.instant_at(ticks), policy, transitions)
    }

    /// [`Breaker::acquire_at`] past a closed breaker: under the lock, and
    /// out of line so that a call through a closed one stays short.
    #[inline(never)]
    fn acquire_locked(
        self: &Arc<Self>,
        now: Instant,
        policy: &BreakerPolicy,
        transitions: &mut Vec<Transition>,
    ) -> Result<Ticket, Refused> {
        let mut inner = self.lock();
        let before = Breaker::reported(&inner);
        if inner.forced != policy.forced {
            // Leaving a forced state starts afresh: counts gathered before
            // the override say nothing about the dependency now.
            if policy.forced == ForcedState::None {
                inner.phase = Phase::Closed;
                self.reset_window(&mut inner, now, policy);
            }
            inner.forced = policy.forced;
        }
        let result = match inner.forced {
            ForcedState::Open => Err(Refused),
            ForcedState::Closed => Ok(Ticket { probe: None }),
            ForcedState::None => match inner.phase {
                Phase::Closed => Ok(Ticket { probe: None }),
                Phase::Open { until } if now < until => Err(Refused),
                Phase::Open { .. } => {
                    inner.phase = Phase::HalfOpen {
                        admitted: 1,
                        succeeded: 0,
                    };
                    Ok(Ticket {
                        probe: Some(self.clone()),
                    })
                }
                Phase::HalfOpen {
                    ref mut admitted,
                    succeeded,
                } => {
                    if *admitted + succeeded < policy.half_open_probes.max(1) {
                        *admitted += 1;
                        Ok(Ticket {
                            probe: Some(self.clone()),
                        })
                    } else {
                        Err(Refused)
                    }
                }
            },
        };
        self.publish(&inner);
        let after = Breaker::reported(&inner);
        if before != after {
            transitions.push((now, before, after));
        }
        result
    }
}
