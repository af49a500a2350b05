//! Deadlines: one point in time per request, propagated to every call it
//! makes, instead of a timeout per call.
//!
//! A deadline starts from the incoming `ballast-deadline` header (the
//! milliseconds the caller still has), or from the policy's total budget
//! when there is no header; when both exist the earlier wins, since neither
//! the caller nor this service's own budget may be overrun. Each stage gets
//! `min(remaining, stage budget)`. What is left goes out on every outgoing
//! call, and an expired deadline fails fast without calling anyone.
//!
//! [`DeadlineLayer`] does this for incoming HTTP requests (the deadline
//! lands in the request's extensions), [`PropagateDeadlineLayer`] for
//! outgoing ones.

mod budgets;
mod error;
mod future;
mod layer;

pub(crate) use budgets::{Budgets, earliest, nanos};

pub use error::Expired;
pub use future::ResponseFuture;
pub use layer::{DeadlineLayer, DeadlineService, PropagateDeadline, PropagateDeadlineLayer};

use crate::compiled::CompiledPolicy;
use http::{HeaderMap, HeaderValue};
use shared::protocol::DEADLINE_HEADER;
use std::time::Duration;
use tokio::time::Instant;

/// The longest deadline accepted from a header: a day. A larger value is
/// more likely a unit mistake than a real budget.
const MAX_HEADER_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// The instant by which a request must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
        }
    }

    /// A deadline at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline { at }
    }

    /// The deadline a header value (milliseconds left) describes, if it is a
    /// plain non-negative integer.
    pub fn from_header_value(value: &HeaderValue) -> Option<Deadline> {
        let ms: u64 = value.to_str().ok()?.trim().parse().ok()?;
        Some(Deadline::after(
            Duration::from_millis(ms).min(MAX_HEADER_DEADLINE),
        ))
    }

    /// The deadline of an incoming request: its header's, capped by the
    /// policy's total budget; the total budget alone without a header; none
    /// when neither exists.
    pub fn for_incoming(headers: &HeaderMap, policy: &CompiledPolicy) -> Option<Deadline> {
        let from_header = headers
            .get(DEADLINE_HEADER)
            .and_then(Deadline::from_header_value);
        let from_policy = policy.total_budget().map(Deadline::after);
        match (from_header, from_policy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The instant itself.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The time left, zero once expired.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether no time is left.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The deadline of a stage with `budget`: whichever comes first.
    pub fn stage(&self, budget: Duration) -> Deadline {
        Ord::min(*self, Deadline::after(budget))
    }

    /// The deadline of the named stage of `policy`; unchanged when the
    /// policy has no such stage.
    pub fn for_stage(&self, policy: &CompiledPolicy, stage: &str) -> Deadline {
        match policy.stage_budget(stage) {
            Some(budget) => self.stage(budget),
            None => *self,
        }
    }

    /// The header value for an outgoing call: the whole milliseconds left.
    /// Rounded down, so the callee never believes it has more time than the
    /// caller will wait.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from(self.remaining().as_millis() as u64)
    }

    /// Sets the `ballast-deadline` header on outgoing headers.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        headers.insert(DEADLINE_HEADER, self.header_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::CompiledPolicy;

    #[tokio::test(start_paused = true)]
    async fn the_header_wins_when_it_is_earlier_than_the_policy_total() {
        let policy = CompiledPolicy::conservative_default("svc", "test"); // 30 s total
        let mut headers = HeaderMap::new();
        headers.insert(DEADLINE_HEADER, HeaderValue::from_static("1500"));
        let d = Deadline::for_incoming(&headers, &policy).unwrap();
        assert_eq!(d.remaining(), Duration::from_millis(1500));
        headers.insert(DEADLINE_HEADER, HeaderValue::from_static("90000"));
        let d = Deadline::for_incoming(&headers, &policy).unwrap();
        assert_eq!(d.remaining(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_header_falls_back_to_the_policy_total() {
        let policy = CompiledPolicy::conservative_default("svc", "test");
        let mut headers = HeaderMap::new();
        headers.insert(DEADLINE_HEADER, HeaderValue::from_static("-5"));
        let d = Deadline::for_incoming(&headers, &policy).unwrap();
        assert_eq!(d.remaining(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_gets_the_lesser_of_what_is_left_and_its_budget() {
        let d = Deadline::after(Duration::from_millis(800));
        assert_eq!(
            d.stage(Duration::from_millis(500)).remaining(),
            Duration::from_millis(500)
        );
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(
            d.stage(Duration::from_millis(500)).remaining(),
            Duration::from_millis(200)
        );
        let mut headers = HeaderMap::new();
        d.propagate(&mut headers);
        assert_eq!(headers[DEADLINE_HEADER], "200");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(d.is_expired());
        assert_eq!(d.header_value(), "0");
    }
}
