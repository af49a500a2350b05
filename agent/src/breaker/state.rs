//! State: the breaker's state machine, fed the classified outcome of each
//! call (closed, open, half-open, and the policy's forced state), with the
//! lock-free words that let a closed breaker count a success without its
//! lock.

use super::classify::CallOutcome;
use super::gate::Ticket;
use crate::state::Enforcement;
use crate::telemetry::DependencyStats;
use crate::telemetry::{OWN_SHARDS, ShardAt, shard_index};
use shared::policy::{BreakerMode, BreakerPolicy, ForcedState};
use shared::protocol::BreakerState;
use shared::protocol::BreakerTransition;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Buckets per sliding window.
const BUCKETS: u64 = 10;

/// A state change, with when it happened.
pub type Transition = (Instant, BreakerState, BreakerState);

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    id: u64,
    failures: u32,
    slow: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) phase: Phase,
    pub(super) forced: ForcedState,
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

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the state for the lock-free paths; called under the lock
    /// after every change.
    pub(super) fn publish(&self, inner: &Inner) {
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
    pub(super) fn passes(&self, policy: &BreakerPolicy) -> bool {
        matches!(
            (self.mode.load(Ordering::Acquire), policy.forced),
            (CLOSED, ForcedState::None) | (FORCED_CLOSED, ForcedState::Closed)
        )
    }

    /// The instant `ticks` after the breaker's epoch.
    pub(super) fn instant_at(&self, ticks: u64) -> Instant {
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
    pub(super) fn reset_window(&self, inner: &mut Inner, now: Instant, policy: &BreakerPolicy) {
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

    pub(super) fn reported(inner: &Inner) -> BreakerState {
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

impl Enforcement {
    /// Reports a breaker's state changes to the dependency's telemetry.
    #[inline]
    pub(crate) fn record_transitions(
        &self,
        stats: &DependencyStats,
        transitions: &mut Vec<Transition>,
    ) {
        // Nearly every acquire and record changes nothing.
        if !transitions.is_empty() {
            self.report_transitions(stats, transitions);
        }
    }

    #[inline(never)]
    fn report_transitions(&self, stats: &DependencyStats, transitions: &mut Vec<Transition>) {
        let wall = self.inner.recorder.wall();
        for (at, from, to) in transitions.drain(..) {
            stats.transition(BreakerTransition {
                at_ms: wall.unix_ms_at(at),
                from,
                to,
            });
        }
    }
}
