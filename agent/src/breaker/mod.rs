//! The circuit breaker: a plain state machine fed by a classifier.
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
//! dependency, shared with [`crate::Guard::call`], so both APIs see (and
//! trip) the same state.

mod error;
mod future;
mod layer;

pub use error::BreakerOpen;
pub use future::ResponseFuture;
pub use layer::{BreakerLayer, BreakerService};

use crate::telemetry::{OWN_SHARDS, ShardAt, shard_index};
use shared::policy::{BreakerMode, BreakerPolicy, ForcedState};
use shared::protocol::BreakerState;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Buckets per sliding window.
const BUCKETS: u64 = 10;

/// The breaker refused a call: it is open (or forced open), or its
/// half-open probes are all taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// A state change, with when it happened.
pub type Transition = (Instant, BreakerState, BreakerState);

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    id: u64,
    failures: u32,
    slow: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    forced: ForcedState,
    consecutive: u32,
    buckets: [Bucket; BUCKETS as usize],
    restart: Option<Restart>,
}

/// What [`Breaker::mode`] says: the breaker passes every call without
/// its lock while the policy's forced state agrees.
const CLOSED: u8 = 0;
const FORCED_CLOSED: u8 = 1;
const LOCKED: u8 = 2;

/// One dependency's breaker.
///
/// The state machine lives under a lock; the success path of a closed
/// breaker does not take it. `mode` mirrors whether the breaker is closed
/// (written under the lock after each change), `streak` mirrors the
/// consecutive failures, and the calls per window bucket are atomic words
/// (the bucket's id and its count), so a closed breaker admits a call with
/// one load and counts a success with one add.
#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    mode: AtomicU8,
    streak: AtomicU32,
    /// The last window bucket found and its width in milliseconds, packed
    /// (id << 32 | width); see [`Breaker::bucket_at`].
    last_bucket: AtomicU64,
    /// One set of bucket words per thread (see [`crate::telemetry`]), so
    /// that successes on different threads never write one cache line.
    calls: [CallWords; OWN_SHARDS + 1],
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct CallWords([AtomicU64; BUCKETS as usize]);

/// Where the window restarted: the bucket, and each shard's count in it
/// then. The words are only ever written by their own threads, so a
/// restart is remembered rather than written into them.
#[derive(Debug, Clone, Copy, Default)]
struct Restart {
    id: u32,
    counts: [u64; OWN_SHARDS + 1],
}

fn word_id(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Permission to make one call. A half-open probe that is dropped without
/// an outcome (its call was cancelled) gives its probe slot back.
#[derive(Debug)]
pub struct Ticket {
    probe: Option<Arc<Breaker>>,
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

/// The classified outcome of a call.
#[derive(Debug, Clone, Copy)]
pub struct CallOutcome {
    /// Whether the dependency failed (an error that says it is unhealthy).
    pub failed: bool,
    /// How long the call took.
    pub latency: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new() -> Arc<Breaker> {
        Breaker::with_epoch(Instant::now())
    }

    /// A closed breaker whose rate window keeps time from `epoch`: the
    /// guard gives its breakers the epoch of its limiters, so that one
    /// clock reading, turned into nanoseconds once, serves both.
    pub(crate) fn with_epoch(epoch: Instant) -> Arc<Breaker> {
        Arc::new(Breaker {
            epoch,
            mode: AtomicU8::new(CLOSED),
            streak: AtomicU32::new(0),
            last_bucket: AtomicU64::new(0),
            calls: Default::default(),
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                forced: ForcedState::None,
                consecutive: 0,
                buckets: [Bucket::default(); BUCKETS as usize],
                restart: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the state for the lock-free paths; called under the lock
    /// after every change.
    fn publish(&self, inner: &Inner) {
        let mode = match (inner.forced, inner.phase) {
            (ForcedState::Closed, _) => FORCED_CLOSED,
            (ForcedState::None, Phase::Closed) => CLOSED,
            _ => LOCKED,
        };
        self.mode.store(mode, Ordering::Release);
        self.streak.store(inner.consecutive, Ordering::Relaxed);
    }

    /// Whether the breaker passes calls without its lock under `policy`.
    #[inline]
    fn passes(&self, policy: &BreakerPolicy) -> bool {
        matches!(
            (self.mode.load(Ordering::Acquire), policy.forced),
            (CLOSED, ForcedState::None) | (FORCED_CLOSED, ForcedState::Closed)
        )
    }

    /// The instant `ticks` after the breaker's epoch.
    fn instant_at(&self, ticks: u64) -> Instant {
        crate::clock::instant_at(self.epoch, ticks)
    }

    /// Nanoseconds from the breaker's epoch to `now`.
    pub(crate) fn ticks(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn bucket_id(&self, now: Instant, window_ms: u64) -> u64 {
        Breaker::bucket_of_ticks(self.ticks(now), window_ms)
    }

    /// The window bucket of `ticks` (see [`Breaker::ticks`]).
    fn bucket_of_ticks(ticks: u64, window_ms: u64) -> u64 {
        ticks / 1_000_000 / Breaker::bucket_width(window_ms)
    }

    /// How many milliseconds one bucket of a `window_ms` window spans.
    #[inline]
    fn bucket_width(window_ms: u64) -> u64 {
        (window_ms / BUCKETS).max(1)
    }

    /// [`Breaker::bucket_of_ticks`] through a one-word cache of the last
    /// bucket found: the bucket changes every few seconds, and the division
    /// it saves is the slowest instruction of a successful call's path.
    /// Threads share the word, but write it only when the bucket moves on.
    #[inline]
    fn bucket_at(&self, ticks: u64, window_ms: u64) -> u64 {
        let width = Breaker::bucket_width(window_ms);
        let ms = ticks / 1_000_000;
        let cached = self.last_bucket.load(Ordering::Relaxed);
        let (id, cached_width) = (cached >> 32, cached & u64::from(u32::MAX));
        if cached_width == width
            && let Some(into) = ms.checked_sub(id * width)
            && into < width
        {
            return id;
        }
        let id = Breaker::bucket_of_ticks(ticks, window_ms);
        if id <= u64::from(u32::MAX) && width <= u64::from(u32::MAX) {
            self.last_bucket
                .store((id << 32) | width, Ordering::Relaxed);
        }
        id
    }

    /// Counts one call in bucket `id` of the rate window.
    #[inline]
    fn count_call(&self, id: u64, (shard, own): ShardAt) {
        let slot = &self.calls[shard].0[(id % BUCKETS) as usize];
        let id = id as u32;
        let word = slot.load(Ordering::Relaxed);
        if own {
            // Nobody else writes this word: a plain store.
            let next = if word_id(word) == id {
                word + 1
            } else {
                (u64::from(id) << 32) | 1
            };
            slot.store(next, Ordering::Relaxed);
            return;
        }
        if word_id(word) == id {
            slot.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The slot still holds an older bucket: start it afresh (whoever
        // loses the race counts into the winner's bucket).
        let fresh = (u64::from(id) << 32) | 1;
        if slot
            .compare_exchange(word, fresh, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The calls counted in the window that ends with bucket `id`, since
    /// the window last restarted.
    fn window_calls(&self, inner: &Inner, id: u64) -> u64 {
        let id = id as u32;
        let mut calls = 0;
        for (shard, words) in self.calls.iter().enumerate() {
            for word in &words.0 {
                let word = word.load(Ordering::Relaxed);
                let bucket = word_id(word);
                if id.wrapping_sub(bucket) >= BUCKETS as u32 {
                    continue;
                }
                let mut n = word & u64::from(u32::MAX);
                if let Some(r) = &inner.restart {
                    if bucket == r.id {
                        n = n.saturating_sub(r.counts[shard]);
                    } else if r.id.wrapping_sub(bucket) < BUCKETS as u32 {
                        // Counted before the restart.
                        continue;
                    }
                }
                calls += n;
            }
        }
        calls
    }

    /// Starts the counts afresh at `now`.
    fn reset_window(&self, inner: &mut Inner, now: Instant, policy: &BreakerPolicy) {
        inner.consecutive = 0;
        inner.buckets = [Bucket::default(); BUCKETS as usize];
        inner.restart = match policy.mode {
            BreakerMode::FailureRate { window_ms, .. } => {
                let id = self.bucket_id(now, window_ms);
                let mut r = Restart {
                    id: id as u32,
                    ..Restart::default()
                };
                for (count, words) in r.counts.iter_mut().zip(&self.calls) {
                    let word = words.0[(id % BUCKETS) as usize].load(Ordering::Relaxed);
                    if word_id(word) == r.id {
                        *count = word & u64::from(u32::MAX);
                    }
                }
                Some(r)
            }
            // Consecutive mode counts no calls: every word is stale.
            BreakerMode::Consecutive { .. } => {
                for words in &self.calls {
                    for w in &words.0 {
                        w.store(0, Ordering::Relaxed);
                    }
                }
                None
            }
        };
    }

    fn reported(inner: &Inner) -> BreakerState {
        match inner.forced {
            ForcedState::Open => BreakerState::ForcedOpen,
            ForcedState::Closed => BreakerState::ForcedClosed,
            ForcedState::None => match inner.phase {
                Phase::Closed => BreakerState::Closed,
                Phase::Open { .. } => BreakerState::Open,
                Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            },
        }
    }

    /// The state as reported in telemetry.
    pub fn state(&self) -> BreakerState {
        Breaker::reported(&self.lock())
    }

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

    /// Feeds the classified outcome of a call made under `ticket`.
    pub fn record(
        &self,
        policy: &BreakerPolicy,
        ticket: Ticket,
        outcome: CallOutcome,
        transitions: &mut Vec<Transition>,
    ) {
        self.record_at(
            self.ticks(Instant::now()),
            shard_index(),
            policy,
            ticket,
            outcome,
            transitions,
        );
    }

    /// [`Breaker::record`] with the time already read, as
    /// [`Breaker::ticks`] gives it, and the calling thread's shard.
    #[inline]
    pub(crate) fn record_at(
        &self,
        ticks: u64,
        at: ShardAt,
        policy: &BreakerPolicy,
        mut ticket: Ticket,
        outcome: CallOutcome,
        transitions: &mut Vec<Transition>,
    ) {
        let was_probe = ticket.probe.take().is_some();
        let slow = policy
            .slow_call
            .as_ref()
            .is_some_and(|s| outcome.latency >= Duration::from_millis(s.threshold_ms));
        // A success on a closed breaker cannot trip it: it is counted
        // without the lock.
        if !was_probe && !outcome.failed && !slow && self.passes(policy) {
            match &policy.mode {
                _ if policy.forced == ForcedState::Closed => return,
                BreakerMode::Consecutive { .. } if self.streak.load(Ordering::Relaxed) == 0 => {
                    return;
                }
                BreakerMode::FailureRate { window_ms, .. } => {
                    self.count_call(self.bucket_at(ticks, *window_ms), at);
                    return;
                }
                BreakerMode::Consecutive { .. } => {}
            }
        }
        self.record_locked(
            self.instant_at(ticks),
            ticks,
            policy,
            was_probe,
            slow,
            outcome,
            transitions,
        );
    }

    /// [`Breaker::record_at`] for an outcome that can change the state:
    /// under the lock, out of line.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn record_locked(
        &self,
        now: Instant,
        ticks: u64,
        policy: &BreakerPolicy,
        was_probe: bool,
        slow: bool,
        outcome: CallOutcome,
        transitions: &mut Vec<Transition>,
    ) {
        let mut inner = self.lock();
        if inner.forced != ForcedState::None {
            return;
        }
        let before = Breaker::reported(&inner);
        let cooldown = Duration::from_millis(policy.cooldown_ms);
        match inner.phase {
            Phase::HalfOpen {
                admitted,
                succeeded,
            } if was_probe => {
                if outcome.failed || slow {
                    inner.phase = Phase::Open {
                        until: now + cooldown,
                    };
                } else if succeeded + 1 >= policy.half_open_probes.max(1) {
                    inner.phase = Phase::Closed;
                    self.reset_window(&mut inner, now, policy);
                } else {
                    inner.phase = Phase::HalfOpen {
                        admitted: admitted.saturating_sub(1),
                        succeeded: succeeded + 1,
                    };
                }
            }
            Phase::Closed => {
                let trip = match &policy.mode {
                    BreakerMode::Consecutive { failures } => {
                        if outcome.failed || slow {
                            inner.consecutive += 1;
                        } else {
                            inner.consecutive = 0;
                        }
                        inner.consecutive >= (*failures).max(1)
                    }
                    BreakerMode::FailureRate {
                        threshold_percent,
                        window_ms,
                        minimum_calls,
                    } => {
                        let id = self.bucket_at(ticks, *window_ms);
                        self.count_call(id, shard_index());
                        let b = &mut inner.buckets[(id % BUCKETS) as usize];
                        if b.id != id {
                            *b = Bucket {
                                id,
                                ..Bucket::default()
                            };
                        }
                        b.failures += u32::from(outcome.failed);
                        b.slow += u32::from(slow);
                        let calls = self.window_calls(&inner, id);
                        let (mut failures, mut slows) = (0u64, 0u64);
                        for b in inner.buckets.iter().filter(|b| id - b.id < BUCKETS) {
                            failures += u64::from(b.failures);
                            slows += u64::from(b.slow);
                        }
                        calls >= u64::from(*minimum_calls).max(1)
                            && (failures * 100 >= u64::from(*threshold_percent) * calls
                                || policy.slow_call.as_ref().is_some_and(|s| {
                                    slows * 100 >= u64::from(s.rate_percent) * calls
                                }))
                    }
                };
                if trip {
                    inner.phase = Phase::Open {
                        until: now + cooldown,
                    };
                }
            }
            // A call that started before the breaker opened tells nothing
            // about the probes.
            _ => {}
        }
        self.publish(&inner);
        let after = Breaker::reported(&inner);
        if before != after {
            transitions.push((now, before, after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::policy::SlowCall;

    fn consecutive(n: u32) -> BreakerPolicy {
        BreakerPolicy {
            mode: BreakerMode::Consecutive { failures: n },
            slow_call: None,
            cooldown_ms: 1_000,
            half_open_probes: 2,
            forced: ForcedState::None,
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
