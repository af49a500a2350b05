//! The telemetry recorder: counters per dependency on the hot path, sealed
//! into sequenced batches about once a second, kept in a bounded ring until
//! the control plane acknowledges them.
//!
//! Recording never blocks a guarded call. The counters a successful call
//! touches are kept per thread: a thread alone on its shard adds with a
//! plain load and store, so two threads calling at once never write the
//! same cache line, and the sealer takes differences of running totals. The ring holds at most `capacity` sealed
//! batches: while the control plane is down the oldest batch is dropped to
//! make room and the drop is counted on the batch that follows it, so
//! memory stays bounded and the gap is visible. Each batch keeps its
//! sequence number when it is resent, which is what makes a resend
//! idempotent on the server.

use crate::clock::WallClock;
use rustc_hash::FxHashMap;
use shared::policy::{DegradedStatus, ErrorClass};
use shared::protocol::{
    BreakerState, BreakerTransition, DependencyTelemetry, LATENCY_BUCKETS_MS, TelemetryBatch,
};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Failure counters are indexed by an error class's position in `ALL`,
/// which is its declaration order, so the discriminant is the slot.
fn class_index(c: ErrorClass) -> usize {
    c as usize
}

/// Degraded counters, indexed like the failure counters.
fn status_index(s: DegradedStatus) -> usize {
    s as usize
}

/// Whole milliseconds of `latency`, in 64-bit arithmetic (`as_millis`
/// works in 128 bits); saturated.
#[inline]
fn millis(latency: Duration) -> u64 {
    latency
        .as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(latency.subsec_millis()))
}

/// The histogram bucket of a latency of `ms` milliseconds.
#[inline]
fn bucket_of(ms: u64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BUCKETS_MS.len() - 1)
}

/// Threads that get a shard of their own in every [`DependencyStats`]
/// (and breaker window and retry budget) at once; any further thread
/// shares one more, with atomic adds.
pub(crate) const OWN_SHARDS: usize = 8;

/// Hands out the own shards' numbers to threads, and takes them back
/// when threads end: pools that come and go (blocking pools, short-lived
/// threads) would otherwise use them up and leave every later thread on
/// the shared shard.
struct ShardNumbers {
    /// Numbers never handed out yet.
    next: AtomicUsize,
    /// Numbers given back. Only a thread's first count and its exit take
    /// the lock.
    free: Mutex<Vec<usize>>,
}

impl ShardNumbers {
    const fn new() -> ShardNumbers {
        ShardNumbers {
            next: AtomicUsize::new(0),
            free: Mutex::new(Vec::new()),
        }
    }

    /// A free number, else a new one, else the shared shard's.
    fn take(&self) -> usize {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = free.pop() {
            return n;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if n < OWN_SHARDS {
            n
        } else {
            // Held at the shared number, so the counter cannot wrap.
            self.next.store(OWN_SHARDS, Ordering::Relaxed);
            OWN_SHARDS
        }
    }

    /// Gives back `n`, taken by a thread that is ending. The lock orders
    /// that thread's last plain stores to the shard before the next
    /// owner's first load.
    fn give_back(&self, n: usize) {
        if n < OWN_SHARDS {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).push(n);
        }
    }
}

static SHARD_NUMBERS: ShardNumbers = ShardNumbers::new();

thread_local! {
    /// This thread's shard number; without a destructor, so that reading
    /// it on every count is a plain load.
    static THREAD: Cell<usize> = const { Cell::new(UNSET) };
    /// Gives the number back when the thread ends; touched once, when the
    /// number is taken.
    static GIVE_BACK: ShardGiver = const { ShardGiver(Cell::new(UNSET)) };
}

/// Not yet numbered.
const UNSET: usize = usize::MAX;

/// Gives a thread's shard number back as the thread ends.
struct ShardGiver(Cell<usize>);

impl Drop for ShardGiver {
    fn drop(&mut self) {
        // Whatever the thread still counts during its teardown goes to the
        // shared shard: the number may be someone else's from now on.
        let _ = THREAD.try_with(|t| t.set(OWN_SHARDS));
        SHARD_NUMBERS.give_back(self.0.get());
    }
}

/// Numbers this thread, counting for the first time.
#[cold]
#[inline(never)]
fn number_thread() -> usize {
    let n = SHARD_NUMBERS.take();
    // Once the giver cannot be registered (the thread is ending), the
    // number could never come back: share instead.
    match GIVE_BACK.try_with(|g| g.0.set(n)) {
        Ok(()) => n,
        Err(_) => {
            SHARD_NUMBERS.give_back(n);
            OWN_SHARDS
        }
    }
}

/// A thread's shard and whether it is the thread's alone, as
/// [`shard_index`] gave it. A call looks it up once and counts in it until
/// it next awaits: it may resume on another thread.
pub(crate) type ShardAt = (usize, bool);

/// This thread's shard (of `OWN_SHARDS + 1`), and whether it is this
/// thread's alone: then the thread may add to it with a plain load and
/// store, since nobody else writes it.
#[inline]
pub(crate) fn shard_index() -> (usize, bool) {
    let n = THREAD.with(|t| {
        let mut n = t.get();
        if n == UNSET {
            n = number_thread();
            t.set(n);
        }
        n
    });
    (n, n < OWN_SHARDS)
}

/// The counters every successful call touches, one set per thread. A
/// thread alone on its shard adds with a plain load and store: no
/// lock-prefixed instruction, and no cache line shared with the other
/// threads. Only the sealer reads them, as running totals it takes
/// differences of, so it never resets what a thread is writing.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    calls: AtomicU64,
    successes: AtomicU64,
    tokens: AtomicU64,
    cost_usd_micros: AtomicU64,
    latency_sum_ms: AtomicU64,
    started: AtomicU64,
    ended: AtomicU64,
    latency: [AtomicU64; 16],
}

/// One counter per shard, each on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

/// A tenant's spend, sharded like [`DependencyStats`]' counters, and what
/// of it was sealed into batches already.
#[derive(Debug, Default)]
pub(crate) struct TenantSpend {
    shards: [Counter; OWN_SHARDS + 1],
    sealed: AtomicU64,
}

impl TenantSpend {
    /// Spend of a call, counted in shard `at`.
    pub(crate) fn add_at(&self, at: ShardAt, cost_usd_micros: u64) {
        bump(&self.shards[at.0].0, cost_usd_micros, at.1);
    }

    /// The spend since the last take; only the sealer takes.
    fn take(&self) -> u64 {
        let total = self
            .shards
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.0.load(Ordering::Relaxed)));
        total.wrapping_sub(self.sealed.swap(total, Ordering::Relaxed))
    }
}

/// Running totals of the shards, as of one reading.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    calls: u64,
    successes: u64,
    tokens: u64,
    cost_usd_micros: u64,
    latency_sum_ms: u64,
    latency: [u64; 16],
}

/// What the sealer remembers between windows.
#[derive(Debug, Default)]
struct Sealed {
    /// The totals when the current window began.
    at_start: Totals,
    /// The previous window's latency histogram, for the p95 signal.
    previous_latency: [u64; 16],
}

/// One dependency's counters for the current window.
#[derive(Debug, Default)]
pub struct DependencyStats {
    shards: [Shard; OWN_SHARDS + 1],
    sealed: Mutex<Sealed>,
    failures: [AtomicU64; ErrorClass::ALL.len()],
    timeouts: AtomicU64,
    retries: AtomicU64,
    retry_budget_exhausted: AtomicU64,
    breaker_rejections: AtomicU64,
    bulkhead_rejections: AtomicU64,
    rate_limited: AtomicU64,
    shed: AtomicU64,
    degraded: [AtomicU64; DegradedStatus::ALL.len()],
    repairs: AtomicU64,
    idempotency_conflicts: AtomicU64,
    duplicates_prevented: AtomicU64,
    /// Calls queued in this dependency's bulkheads now: a gauge.
    pub(crate) queued: AtomicU64,
    fallbacks: Mutex<BTreeMap<String, u64>>,
    transitions: Mutex<Vec<BreakerTransition>>,
}

/// Adds `n` to a shard's counter: plainly when the shard is this thread's
/// alone, atomically when it is shared.
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64, own: bool) {
    if own {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    } else {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl DependencyStats {
    #[inline]
    fn shard(&self) -> (&Shard, bool) {
        self.shard_at(shard_index())
    }

    #[inline]
    fn shard_at(&self, at: ShardAt) -> (&Shard, bool) {
        (&self.shards[at.0], at.1)
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for s in &self.shards {
            t.calls = t.calls.wrapping_add(get(&s.calls));
            t.successes = t.successes.wrapping_add(get(&s.successes));
            t.tokens = t.tokens.wrapping_add(get(&s.tokens));
            t.cost_usd_micros = t.cost_usd_micros.wrapping_add(get(&s.cost_usd_micros));
            t.latency_sum_ms = t.latency_sum_ms.wrapping_add(get(&s.latency_sum_ms));
            for (sum, c) in t.latency.iter_mut().zip(&s.latency) {
                *sum = sum.wrapping_add(get(c));
            }
        }
        t
    }

    /// A first attempt.
    #[inline]
    pub fn call(&self) {
        self.call_at(shard_index());
    }
    /// [`DependencyStats::call`] in shard `at`.
    #[inline]
    pub(crate) fn call_at(&self, at: ShardAt) {
        let (s, own) = self.shard_at(at);
        bump(&s.calls, 1, own);
    }
    /// A call that succeeded, possibly after retries.
    pub fn success(&self) {
        let (s, own) = self.shard();
        bump(&s.successes, 1, own);
    }
    /// An attempt sent: the in-flight gauge goes up until
    /// [`DependencyStats::attempt_ended`].
    #[inline]
    pub(crate) fn attempt_started(&self) {
        self.attempt_started_at(shard_index());
    }
    /// [`DependencyStats::attempt_started`] in shard `at`.
    #[inline]
    pub(crate) fn attempt_started_at(&self, at: ShardAt) {
        let (s, own) = self.shard_at(at);
        bump(&s.started, 1, own);
    }

    /// An attempt answered (on whichever thread it ends).
    pub(crate) fn attempt_ended(&self) {
        let (s, own) = self.shard();
        bump(&s.ended, 1, own);
    }
    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> u64 {
        let (mut started, mut ended) = (0u64, 0u64);
        for s in &self.shards {
            started = started.wrapping_add(s.started.load(Ordering::Relaxed));
            ended = ended.wrapping_add(s.ended.load(Ordering::Relaxed));
        }
        started.wrapping_sub(ended)
    }
    /// The counters a successful call with `latency` and `used` touches,
    /// at once, in shard `at`.
    #[inline]
    pub(crate) fn succeeded_at(
        &self,
        at: ShardAt,
        latency: Duration,
        tokens: u64,
        cost_usd_micros: u64,
    ) {
        let (s, own) = self.shard_at(at);
        bump(&s.successes, 1, own);
        bump(&s.ended, 1, own);
        let ms = millis(latency);
        bump(&s.latency[bucket_of(ms)], 1, own);
        bump(&s.latency_sum_ms, ms, own);
        if tokens > 0 {
            bump(&s.tokens, tokens, own);
        }
        if cost_usd_micros > 0 {
            bump(&s.cost_usd_micros, cost_usd_micros, own);
        }
    }
    /// A call that failed for good with `class`.
    pub fn failure(&self, class: ErrorClass) {
        add(&self.failures[class_index(class)], 1);
        if class == ErrorClass::Timeout {
            add(&self.timeouts, 1);
        }
    }
    /// A retry sent.
    pub fn retry(&self) {
        add(&self.retries, 1);
    }
    /// A retry the budget refused.
    pub fn retry_budget_exhausted(&self) {
        add(&self.retry_budget_exhausted, 1);
    }
    /// A call an open breaker refused.
    pub fn breaker_rejection(&self) {
        add(&self.breaker_rejections, 1);
    }
    /// A call a bulkhead refused.
    pub fn bulkhead_rejection(&self) {
        add(&self.bulkhead_rejections, 1);
    }
    /// A call a rate limit or budget refused.
    pub fn rate_limited(&self) {
        add(&self.rate_limited, 1);
    }
    /// A request admission control shed.
    pub fn shed(&self) {
        add(&self.shed, 1);
    }
    /// A response returned with `status`; normal ones are not counted.
    pub fn degraded(&self, status: DegradedStatus) {
        if status != DegradedStatus::Normal {
            add(&self.degraded[status_index(status)], 1);
        }
    }
    /// A fallback matrix row taken.
    pub fn fallback(&self, row: &str) {
        let mut f = self.fallbacks.lock().unwrap_or_else(|e| e.into_inner());
        *f.entry(row.to_owned()).or_default() += 1;
    }
    /// One structured-output repair attempt.
    pub fn repair(&self) {
        add(&self.repairs, 1);
    }
    /// An idempotency key that came back with a different payload.
    pub fn idempotency_conflict(&self) {
        add(&self.idempotency_conflicts, 1);
    }
    /// A side effect not run again because its key had run or was running.
    pub fn duplicate_prevented(&self) {
        add(&self.duplicates_prevented, 1);
    }
    /// Usage of a call.
    pub fn usage(&self, tokens: u64, cost_usd_micros: u64) {
        let (s, own) = self.shard();
        bump(&s.tokens, tokens, own);
        bump(&s.cost_usd_micros, cost_usd_micros, own);
    }
    /// The latency of a completed attempt.
    pub fn latency(&self, latency: Duration) {
        let (s, own) = self.shard();
        let ms = millis(latency);
        bump(&s.latency[bucket_of(ms)], 1, own);
        bump(&s.latency_sum_ms, ms, own);
    }
    /// A breaker state change.
    pub fn transition(&self, t: BreakerTransition) {
        self.transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
    }

    /// The 95th percentile latency over this window and the previous one,
    /// as the upper bound of its histogram bucket; `None` without data.
    pub fn p95_ms(&self) -> Option<u64> {
        let sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.totals().latency;
        let counts: Vec<u64> = (0..16)
            .map(|i| now[i].wrapping_sub(sealed.at_start.latency[i]) + sealed.previous_latency[i])
            .collect();
        drop(sealed);
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 95).div_ceil(100);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_MS[i]);
            }
        }
        None
    }

    fn take(&self) -> DependencyTelemetry {
        let t = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let mut failures = BTreeMap::new();
        for (i, c) in self.failures.iter().enumerate() {
            let n = t(c);
            if n > 0 {
                failures.insert(ErrorClass::ALL[i], n);
            }
        }
        let mut degraded = BTreeMap::new();
        for (i, c) in self.degraded.iter().enumerate() {
            let n = t(c);
            if n > 0 {
                degraded.insert(DegradedStatus::ALL[i], n);
            }
        }
        let mut sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
        let totals = self.totals();
        let start = std::mem::replace(&mut sealed.at_start, totals);
        let latency_buckets: Vec<u64> = totals
            .latency
            .iter()
            .zip(&start.latency)
            .map(|(now, then)| now.wrapping_sub(*then))
            .collect();
        for (p, n) in sealed.previous_latency.iter_mut().zip(&latency_buckets) {
            *p = *n;
        }
        drop(sealed);
        DependencyTelemetry {
            calls: totals.calls.wrapping_sub(start.calls),
            successes: totals.successes.wrapping_sub(start.successes),
            failures,
            timeouts: t(&self.timeouts),
            retries: t(&self.retries),
            retry_budget_exhausted: t(&self.retry_budget_exhausted),
            breaker_rejections: t(&self.breaker_rejections),
            bulkhead_rejections: t(&self.bulkhead_rejections),
            rate_limited: t(&self.rate_limited),
            shed: t(&self.shed),
            fallbacks: std::mem::take(
                &mut *self.fallbacks.lock().unwrap_or_else(|e| e.into_inner()),
            ),
            degraded,
            repairs: t(&self.repairs),
            idempotency_conflicts: t(&self.idempotency_conflicts),
            duplicates_prevented: t(&self.duplicates_prevented),
            tokens: totals.tokens.wrapping_sub(start.tokens),
            cost_usd_micros: totals.cost_usd_micros.wrapping_sub(start.cost_usd_micros),
            latency_buckets,
            latency_sum_ms: totals.latency_sum_ms.wrapping_sub(start.latency_sum_ms),
            breaker: None,
            breaker_transitions: std::mem::take(
                &mut *self.transitions.lock().unwrap_or_else(|e| e.into_inner()),
            ),
            in_flight: self.in_flight(),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Ring {
    batches: VecDeque<TelemetryBatch>,
    next_sequence: u64,
    window_start: Instant,
    dropped_total: u64,
}

/// Records what the guard does and seals it into batches.
#[derive(Debug)]
pub struct Recorder {
    instance_id: String,
    wall: WallClock,
    capacity: usize,
    dependencies: RwLock<FxHashMap<String, Arc<DependencyStats>>>,
    /// Spend per tenant; a call keeps its tenant's counter.
    tenant_cost: RwLock<HashMap<String, Arc<TenantSpend>>>,
    ring: Mutex<Ring>,
}

/// The number of sealed batches kept while the control plane is away: five
/// minutes at one batch a second.
pub const DEFAULT_RING_CAPACITY: usize = 300;

impl Recorder {
    /// A recorder for `instance_id` keeping at most `capacity` batches.
    pub fn new(instance_id: impl Into<String>, wall: WallClock, capacity: usize) -> Recorder {
        Recorder {
            instance_id: instance_id.into(),
            wall,
            capacity: capacity.max(1),
            dependencies: RwLock::default(),
            tenant_cost: RwLock::default(),
            ring: Mutex::new(Ring {
                batches: VecDeque::new(),
                next_sequence: 1,
                window_start: Instant::now(),
                dropped_total: 0,
            }),
        }
    }

    /// The instance this recorder reports for.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The wall clock batches are stamped with.
    pub fn wall(&self) -> &WallClock {
        &self.wall
    }

    /// The counters of `dependency`, made on first use.
    pub fn dependency(&self, dependency: &str) -> Arc<DependencyStats> {
        if let Some(s) = self
            .dependencies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
        {
            return s.clone();
        }
        self.dependencies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(dependency.to_owned())
            .or_default()
            .clone()
    }

    /// The counters of `dependency`, if it has any.
    pub fn existing(&self, dependency: &str) -> Option<Arc<DependencyStats>> {
        self.dependencies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
            .cloned()
    }

    /// The spend counter of `tenant` for the current window, made on
    /// first use.
    pub(crate) fn tenant_spend(&self, tenant: &str) -> Arc<TenantSpend> {
        if let Some(c) = self
            .tenant_cost
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
        {
            return c.clone();
        }
        self.tenant_cost
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }

    /// Spend attributed to a tenant.
    pub fn tenant_cost(&self, tenant: &str, cost_usd_micros: u64) {
        if cost_usd_micros == 0 {
            return;
        }
        self.tenant_spend(tenant)
            .add_at(shard_index(), cost_usd_micros);
    }

    /// Closes the current window into a batch at the back of the ring,
    /// dropping the oldest batch if the ring is full. `breaker` gives each
    /// dependency's breaker state at the end of the window.
    pub fn seal(
        &self,
        policy_version: Option<u64>,
        breaker: &dyn Fn(&str) -> Option<BreakerState>,
    ) -> u64 {
        let now = Instant::now();
        let dependencies: BTreeMap<String, DependencyTelemetry> = self
            .dependencies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, s)| {
                let mut d = s.take();
                d.breaker = breaker(name);
                (name.clone(), d)
            })
            .collect();
        let mut tenant_cost_usd_micros = BTreeMap::new();
        {
            let mut tenants = self.tenant_cost.write().unwrap_or_else(|e| e.into_inner());
            tenants.retain(|tenant, spend| {
                let n = spend.take();
                if n > 0 {
                    tenant_cost_usd_micros.insert(tenant.clone(), n);
                }
                // A tenant nobody holds and nothing spent is forgotten, so
                // the map holds only recent tenants.
                n > 0 || Arc::strong_count(spend) > 1
            });
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let sequence = ring.next_sequence;
        ring.next_sequence += 1;
        let batch = TelemetryBatch {
            instance_id: self.instance_id.clone(),
            sequence,
            window_start_ms: self.wall.unix_ms_at(ring.window_start),
            window_end_ms: self.wall.unix_ms_at(now),
            policy_version,
            dependencies,
            tenant_cost_usd_micros,
            dropped_batches: 0,
        };
        ring.window_start = now;
        ring.batches.push_back(batch);
        while ring.batches.len() > self.capacity {
            if let Some(oldest) = ring.batches.pop_front() {
                ring.dropped_total += 1;
                // The gap is reported by the batch that follows it.
                if let Some(next) = ring.batches.front_mut() {
                    next.dropped_batches += 1 + oldest.dropped_batches;
                }
            }
        }
        sequence
    }

    /// The oldest batch not yet acknowledged, to send (again).
    pub fn next_batch(&self) -> Option<TelemetryBatch> {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batches
            .front()
            .cloned()
    }

    /// Forgets the batch with `sequence` once the control plane has it.
    pub fn acknowledge(&self, sequence: u64) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.batches.front().is_some_and(|b| b.sequence == sequence) {
            ring.batches.pop_front();
        }
    }

    /// Batches waiting to be sent.
    pub fn pending(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batches
            .len()
    }

    /// Batches dropped since start because the ring was full.
    pub fn dropped_total(&self) -> u64 {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_numbers_are_unique_while_held_and_reused_once_given_back() {
        let numbers = ShardNumbers::new();
        let mut own: Vec<usize> = (0..OWN_SHARDS).map(|_| numbers.take()).collect();
        own.sort_unstable();
        assert_eq!(own, (0..OWN_SHARDS).collect::<Vec<_>>());
        // All held: the next threads share, however many come.
        for _ in 0..3 {
            assert_eq!(numbers.take(), OWN_SHARDS);
        }
        // A sharing thread's end gives nothing back; an owner's does.
        numbers.give_back(OWN_SHARDS);
        numbers.give_back(5);
        assert_eq!(numbers.take(), 5);
        assert_eq!(numbers.take(), OWN_SHARDS);
    }

    #[test]
    fn a_thread_that_ends_gives_its_shard_to_the_next() {
        // More threads one after another than there are own shards get
        // one each: without giving back, at most `OWN_SHARDS` ever could.
        // (Other tests' threads may hold a few meanwhile, never all.)
        let own = (0..4 * OWN_SHARDS)
            .filter(|_| std::thread::spawn(|| shard_index().1).join().unwrap())
            .count();
        assert!(own > OWN_SHARDS, "{own} of {} threads", 4 * OWN_SHARDS);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_sequenced_and_carry_window_deltas() {
        let r = Recorder::new("i-1", WallClock::anchored_at(1_000), 10);
        let s = r.dependency("model");
        s.call();
        s.failure(ErrorClass::Timeout);
        s.latency(Duration::from_millis(7));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.seal(Some(3), &|_| Some(BreakerState::Closed)), 1);
        s.call();
        assert_eq!(r.seal(Some(3), &|_| None), 2);
        let b1 = r.next_batch().unwrap();
        assert_eq!(b1.sequence, 1);
        assert_eq!((b1.window_start_ms, b1.window_end_ms), (1_000, 2_000));
        let m = &b1.dependencies["model"];
        assert_eq!(
            (m.calls, m.timeouts, m.failures[&ErrorClass::Timeout]),
            (1, 1, 1)
        );
        assert_eq!(m.latency_buckets[3], 1, "7 ms lands in the ≤10 ms bucket");
        assert_eq!(m.breaker, Some(BreakerState::Closed));
        r.acknowledge(1);
        let b2 = r.next_batch().unwrap();
        assert_eq!((b2.sequence, b2.dependencies["model"].calls), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_ring_drops_the_oldest_and_counts_the_drop() {
        let r = Recorder::new("i-1", WallClock::anchored_at(0), 3);
        for _ in 0..5 {
            r.dependency("x").call();
            r.seal(None, &|_| None);
        }
        assert_eq!(r.pending(), 3);
        assert_eq!(r.dropped_total(), 2);
        let first = r.next_batch().unwrap();
        assert_eq!(first.sequence, 3);
        assert_eq!(first.dropped_batches, 2);
        r.acknowledge(3);
        assert_eq!(r.next_batch().unwrap().dropped_batches, 0);
    }

    #[test]
    fn p95_reads_the_histogram() {
        let s = DependencyStats::default();
        for _ in 0..95 {
            s.latency(Duration::from_millis(3));
        }
        for _ in 0..5 {
            s.latency(Duration::from_millis(3_000));
        }
        assert_eq!(s.p95_ms(), Some(5));
        s.latency(Duration::from_millis(3_000));
        assert_eq!(s.p95_ms(), Some(5_000));
    }

    #[test]
    fn counts_from_many_threads_add_up_in_the_batch() {
        let r = Recorder::new("i-1", WallClock::anchored_at(0), 10);
        let s = r.dependency("model");
        // More threads than shards of their own: some share one.
        std::thread::scope(|scope| {
            for _ in 0..(OWN_SHARDS + 4) {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        s.call();
                        s.attempt_started();
                        s.succeeded_at(shard_index(), Duration::from_millis(3), 2, 1);
                    }
                });
            }
        });
        let threads = (OWN_SHARDS + 4) as u64;
        r.seal(None, &|_| None);
        let m = &r.next_batch().unwrap().dependencies["model"];
        assert_eq!((m.calls, m.successes), (threads * 1_000, threads * 1_000));
        assert_eq!(
            (m.tokens, m.cost_usd_micros),
            (threads * 2_000, threads * 1_000)
        );
        assert_eq!(m.latency_buckets[2], threads * 1_000);
        assert_eq!(m.in_flight, 0);
        r.acknowledge(1);
        s.call();
        r.seal(None, &|_| None);
        assert_eq!(
            r.next_batch().unwrap().dependencies["model"].calls,
            1,
            "a window holds its own calls only"
        );
    }
}
