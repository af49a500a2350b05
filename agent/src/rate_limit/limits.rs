//! Rate limits and usage budgets, all reserved before the call.
//!
//! A request rate is a token bucket. Model tokens per minute are a bucket
//! too, but a call reserves its estimate up front and settles with what it
//! actually used afterwards; spend per tenant per day is a counter per
//! 24-hour window with the same reserve-then-settle cycle. Reserving first
//! is what keeps a burst of concurrent calls from overshooting a budget
//! while their results are still pending; a call that cannot reserve is
//! refused and never sent.
//!
//! Every bucket and window is one atomic word changed by one
//! compare-and-swap, so concurrent calls never wait on each other's locks:
//! a bucket is kept as a GCRA (the time at which it would be full again),
//! a spend window as its day and amount packed together.
//!
//! A guarded call does not touch those words on every call, though: each
//! thread takes an advance (a `Lease`) from a large bucket or window and
//! hands it out to its own calls, so that threads do not take turns on one
//! cache line per budget per call. Lending never lets a limit be exceeded
//! (the advance is taken from it first); it shifts when a bucket's tokens
//! are used by at most an advance's life, which allows at most 1/64 of the
//! burst more in a short stretch, and an advance a thread holds unused can
//! make another thread's call be refused up to one advance early. Buckets
//! under 4 096 tokens of burst or about 6 400 tokens a second, and spend
//! windows under 65 536 micro-dollars a day, lend nothing and stay exact.
//!
//! The day is counted in 24-hour windows from the agent's start on tokio's
//! clock, not calendar days, so that it behaves on a paused clock; the
//! control plane's daily reports are the calendar view.

use shared::policy::RateLimit;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest a thread draws on an advance from a bucket (see [`Lease`]).
const LEASE_TIME: Duration = Duration::from_millis(10);
/// The smallest advance worth taking; a bucket or window that would lend
/// less is used directly, so small limits stay exact.
const MIN_LEASE: u64 = 64;
/// A spend window lends at most this share of its daily limit at once.
const WINDOW_LEASE_SHARE: u64 = 1024;
/// A call draws on an advance only if its amount is at most this share of
/// it: a large call goes to the shared word and leaves the advance to the
/// small ones.
const LEASE_CALL_SHARE: u64 = 8;

/// The day (from the limiters' start) of `t` nanoseconds.
#[inline]
pub(crate) fn day_of(t: u64) -> u64 {
    t / DAY.as_nanos() as u64
}

/// `x` rounded up, by hand rather than with `f64::ceil` (a call into libm
/// on the hot path).
fn ceil(x: f64) -> u64 {
    let floor = x as u64;
    floor.saturating_add(u64::from((floor as f64) < x))
}

/// A bucket's shape in time: what one token costs and how much debt the
/// burst allows, both in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    ns_per_token: f64,
    tolerance_ns: u64,
    /// The advance one thread takes from the bucket at once (0: the
    /// bucket is too small to lend from, every take goes to it).
    lease_tokens: u64,
    /// How long an advance may be drawn on after it was taken.
    lease_ns: u64,
}

impl Rate {
    /// A bucket of `capacity` tokens refilled at `per_second`.
    pub(crate) fn new(capacity: f64, per_second: f64) -> Rate {
        // A bucket that never refills still gives its burst once: its
        // refill is made so slow that it never comes, without overflowing.
        let slowest = (1u64 << 62) as f64 / capacity.max(1.0);
        let ns_per_token = if per_second > 0.0 {
            (1e9 / per_second).min(slowest)
        } else {
            slowest
        };
        // Rounded up like a take's cost, so a full bucket always gives its
        // whole capacity at once.
        let tolerance_ns = ceil(capacity.max(0.0) * ns_per_token);
        // An advance is at most 1/64 of the burst and at most what the rate
        // refills in LEASE_TIME, and is drawn on for no longer than its own
        // refill time. Tokens are used at most that long after the bucket
        // gave them, so in any stretch of time the calls get at most the
        // burst, the refill and 1/64 of the burst. Smaller buckets lend
        // nothing and stay exact.
        let lease_ns = (tolerance_ns / 64).min(LEASE_TIME.as_nanos() as u64);
        let lease_tokens = (lease_ns as f64 / ns_per_token) as u64;
        let (lease_tokens, lease_ns) = if lease_tokens >= MIN_LEASE {
            (lease_tokens, lease_ns)
        } else {
            (0, 0)
        };
        Rate {
            ns_per_token,
            tolerance_ns,
            lease_tokens,
            lease_ns,
        }
    }

    /// The request rate `limit`.
    pub(crate) fn of_requests(limit: &RateLimit) -> Rate {
        Rate::new(f64::from(limit.burst.max(1)), f64::from(limit.per_second))
    }

    /// A tokens-per-minute budget: a minute's tokens, refilled over a minute.
    pub(crate) fn of_tokens(per_minute: u64) -> Rate {
        Rate::new(per_minute as f64, per_minute as f64 / 60.0)
    }

    /// What taking `amount` costs, rounded up, so rounding never hands out
    /// more than the rate.
    fn cost_up(&self, amount: u64) -> u64 {
        ceil(amount as f64 * self.ns_per_token)
    }

    /// What giving `amount` back returns, rounded down.
    fn cost_down(&self, amount: u64) -> u64 {
        (amount as f64 * self.ns_per_token) as u64
    }
}

/// A token bucket, kept as the generic cell rate algorithm: one word, the
/// time (in nanoseconds from its [`Limiters`]' epoch) at which the bucket
/// would be full again; 0, a time long past, is full. Taking moves that time forward by the tokens' cost and
/// is refused when it would run further ahead of now than the burst
/// allows; refill is the clock catching up, so nothing is computed for it.
#[derive(Debug, Default)]
pub struct Bucket {
    full_at: AtomicU64,
}

impl Bucket {
    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> bool {
        self.full_at
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, &mut f)
            .is_ok()
    }

    /// Takes `amount` at `t` (see [`Limiters::ticks`]) if the bucket holds
    /// that much.
    pub(crate) fn take(&self, t: u64, amount: u64, rate: Rate) -> bool {
        let cost = rate.cost_up(amount);
        self.update(|full_at| {
            let next = full_at.max(t).saturating_add(cost);
            (next - t <= rate.tolerance_ns).then_some(next)
        })
    }

    /// Gives back `give` tokens and charges `charge` more: the difference
    /// between a reservation and the actual use. A give-back never fills
    /// the bucket past its capacity; a charge can take it below zero, and
    /// the overrun is paid back by refusing later calls.
    fn adjust(&self, t: u64, give: u64, charge: u64, rate: Rate) {
        if give == charge {
            return;
        }
        let (give, charge) = (rate.cost_down(give), rate.cost_up(charge));
        // Any time at or before now means full, and every step starts from
        // max(full_at, now), so a give-back past full is simply lost.
        self.update(|full_at| Some(full_at.max(t).saturating_add(charge).saturating_sub(give)));
    }
}

/// Bits of a spend window's word that hold its day; the rest hold the
/// amount. 4096 days is longer than any process runs.
const DAY_BITS: u32 = 12;
const AMOUNT_BITS: u32 = 64 - DAY_BITS;
/// The largest amount a window holds, about 4.5 billion dollars in
/// micro-dollars; larger limits act as this one.
const MAX_AMOUNT: u64 = (1 << AMOUNT_BITS) - 1;

fn pack(day: u64, amount: u64) -> u64 {
    ((day & ((1 << DAY_BITS) - 1)) << AMOUNT_BITS) | amount.min(MAX_AMOUNT)
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> AMOUNT_BITS, word & MAX_AMOUNT)
}

/// A tenant's spend today: what is spent plus what calls in flight have
/// reserved, which is all a limit needs to be checked against, in one word
/// with its day.
#[derive(Debug, Default)]
pub struct CostWindow {
    word: AtomicU64,
}

impl CostWindow {
    fn amount_on(&self, day: u64) -> u64 {
        match unpack(self.word.load(Ordering::Relaxed)) {
            (d, amount) if d == day & ((1 << DAY_BITS) - 1) => amount,
            _ => 0,
        }
    }

    /// Reserves `estimate` within `limit` on `day`.
    fn reserve(&self, day: u64, limit: u64, estimate: u64) -> bool {
        let limit = limit.min(MAX_AMOUNT);
        let today = day & ((1 << DAY_BITS) - 1);
        self.word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (d, amount) = unpack(w);
                let amount = if d == today { amount } else { 0 };
                // Refused once the budget is spent, even for a zero
                // estimate: an unknown cost is not a free one.
                (amount < limit && amount.saturating_add(estimate) <= limit)
                    .then(|| pack(day, amount + estimate))
            })
            .is_ok()
    }

    /// Replaces the estimate reserved on `reserved_day` with the spend,
    /// now on `day`. Spend lands in the current window even if the call
    /// straddled a boundary: it was spent now.
    fn settle(&self, reserved_day: u64, day: u64, estimate: u64, spent: u64) {
        if reserved_day == day && estimate == spent {
            return;
        }
        let today = day & ((1 << DAY_BITS) - 1);
        let _ = self
            .word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (d, amount) = unpack(w);
                let amount = if d != today {
                    spent
                } else if reserved_day == day {
                    amount.saturating_sub(estimate).saturating_add(spent)
                } else {
                    amount.saturating_add(spent)
                };
                Some(pack(day, amount))
            });
    }
}

impl CostWindow {
    /// Gives back `amount` reserved on `day`; nothing once the window has
    /// moved on to a later day (that day started from zero).
    fn give_back(&self, day: u64, amount: u64) {
        let today = day & ((1 << DAY_BITS) - 1);
        let _ = self
            .word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (d, held) = unpack(w);
                (d == today).then(|| pack(day, held.saturating_sub(amount)))
            });
    }
}

/// A thread's advance on a shared bucket or spend window: a block of it
/// taken with one compare-and-swap, then handed out to this thread's calls
/// with plain loads and stores, so that calls on different threads do not
/// take turns on one cache line for every call (about ten per guarded call
/// otherwise, one per budget and one more to settle).
///
/// The advance is the bucket's or window's own: it is taken from it first,
/// so a limit is never exceeded by lending, and only the timing of a
/// bucket's use shifts by up to an advance's life (see [`Rate::new`]).
/// What a thread holds and does not use is given back when it renews the
/// advance, when the policy or the tenant changes and when its handles are
/// dropped; until then the shared budget is short of it, so another thread
/// may be refused up to one advance early per thread.
///
/// Kept in a call's per-thread handles, which one call at a time owns: the
/// fields are atomics only so that the handles can be shared with the
/// call's future, and are never changed by two threads at once.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    left: AtomicU64,
    /// For a bucket, the tick after which the advance is not drawn on; for
    /// a window, its day plus one. Zero: no advance.
    until: AtomicU64,
    /// For a bucket, the tick the advance was taken at: a give-back at any
    /// time not after now is exact (see [`Bucket::adjust`]), so the handles
    /// can give back without reading the clock.
    taken: AtomicU64,
    /// For a window, the size of the advance (a bucket's is its rate's).
    size: AtomicU64,
}

impl Lease {
    #[inline]
    fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    #[inline]
    fn set_left(&self, left: u64) {
        self.left.store(left, Ordering::Relaxed);
    }

    /// Takes `amount` from `bucket` at `t`, from this advance when it holds
    /// enough, else renewing it (or taking straight from the bucket when
    /// it cannot lend that much).
    #[inline]
    pub(crate) fn take(&self, bucket: &Bucket, t: u64, amount: u64, rate: Rate) -> bool {
        let left = self.left();
        if rate.lease_tokens > 0
            && amount <= rate.lease_tokens / LEASE_CALL_SHARE
            && left >= amount
            && t < self.until.load(Ordering::Relaxed)
        {
            self.set_left(left - amount);
            return true;
        }
        self.take_renewing(bucket, t, amount, rate)
    }

    /// [`Lease::take`] when the advance cannot serve the call: out of line,
    /// so that the call's own path stays short.
    #[inline(never)]
    fn take_renewing(&self, bucket: &Bucket, t: u64, amount: u64, rate: Rate) -> bool {
        if rate.lease_tokens == 0 || amount > rate.lease_tokens / LEASE_CALL_SHARE {
            return bucket.take(t, amount, rate);
        }
        self.give_back(bucket, rate);
        if bucket.take(t, rate.lease_tokens, rate) {
            self.set_left(rate.lease_tokens - amount);
            self.until
                .store(t.saturating_add(rate.lease_ns), Ordering::Relaxed);
            self.taken.store(t, Ordering::Relaxed);
            return true;
        }
        // Too little left in the bucket for an advance: near empty, each
        // call takes its own exactly.
        bucket.take(t, amount, rate)
    }

    /// Gives what is left of the advance back to `bucket`.
    pub(crate) fn give_back(&self, bucket: &Bucket, rate: Rate) {
        let left = self.left();
        if left > 0 {
            self.set_left(0);
            bucket.adjust(self.taken.load(Ordering::Relaxed), left, 0, rate);
        }
        self.until.store(0, Ordering::Relaxed);
    }

    /// [`Bucket::adjust`] through the advance: a give-back joins it and a
    /// charge comes out of it while it is current and large enough.
    #[inline]
    pub(crate) fn adjust(&self, bucket: &Bucket, t: u64, give: u64, charge: u64, rate: Rate) {
        if give == charge {
            return;
        }
        if rate.lease_tokens > 0
            && t < self.until.load(Ordering::Relaxed)
            && self.absorb(give, charge, rate.lease_tokens)
        {
            return;
        }
        bucket.adjust(t, give, charge, rate);
    }

    /// Settles a call that reserved `reserved` and used `used` within a
    /// current advance: a surplus joins it (up to `size`, an advance's
    /// size), an overrun comes out of it if it holds enough. False when
    /// the advance cannot take the difference and the shared budget must.
    #[inline]
    fn absorb(&self, reserved: u64, used: u64, size: u64) -> bool {
        let left = self.left();
        let fits = if reserved > used {
            left.checked_add(reserved - used).filter(|l| *l <= size)
        } else {
            left.checked_sub(used - reserved)
        };
        fits.map(|l| self.set_left(l)).is_some()
    }

    /// Reserves `estimate` within `limit` on `day` from `window`, through
    /// this advance like [`Lease::take`].
    #[inline]
    pub(crate) fn reserve(&self, window: &CostWindow, day: u64, limit: u64, estimate: u64) -> bool {
        let lease = limit.min(MAX_AMOUNT) / WINDOW_LEASE_SHARE;
        let left = self.left();
        if lease >= MIN_LEASE
            && estimate <= lease / LEASE_CALL_SHARE
            && left >= estimate
            && self.until.load(Ordering::Relaxed) == day + 1
        {
            self.set_left(left - estimate);
            return true;
        }
        self.reserve_renewing(window, day, limit, lease, estimate)
    }

    /// [`Lease::reserve`] when the advance cannot serve the call.
    #[inline(never)]
    fn reserve_renewing(
        &self,
        window: &CostWindow,
        day: u64,
        limit: u64,
        lease: u64,
        estimate: u64,
    ) -> bool {
        if lease < MIN_LEASE || estimate > lease / LEASE_CALL_SHARE {
            return window.reserve(day, limit, estimate);
        }
        self.give_back_window(window);
        if window.reserve(day, limit, lease) {
            self.set_left(lease - estimate);
            self.size.store(lease, Ordering::Relaxed);
            self.until.store(day + 1, Ordering::Relaxed);
            return true;
        }
        window.reserve(day, limit, estimate)
    }

    /// Gives what is left of the advance back to `window`, if its day is
    /// still the window's.
    pub(crate) fn give_back_window(&self, window: &CostWindow) {
        let (left, until) = (self.left(), self.until.load(Ordering::Relaxed));
        if left > 0 && until > 0 {
            window.give_back(until - 1, left);
        }
        self.set_left(0);
        self.until.store(0, Ordering::Relaxed);
    }

    /// [`CostWindow::settle`] through the advance.
    #[inline]
    pub(crate) fn settle(
        &self,
        window: &CostWindow,
        reserved_day: u64,
        day: u64,
        estimate: u64,
        spent: u64,
    ) {
        if reserved_day == day && estimate == spent {
            return;
        }
        if reserved_day == day
            && self.until.load(Ordering::Relaxed) == day + 1
            && self.absorb(estimate, spent, self.size.load(Ordering::Relaxed))
        {
            return;
        }
        window.settle(reserved_day, day, estimate, spent);
    }
}

/// The buckets and windows, keyed by what they limit.
#[derive(Debug)]
pub struct Limiters {
    epoch: Instant,
    buckets: RwLock<HashMap<String, Arc<Bucket>>>,
    costs: RwLock<HashMap<String, Arc<CostWindow>>>,
}

impl Default for Limiters {
    fn default() -> Self {
        Limiters::new()
    }
}

fn get_or_make<V: Default>(map: &RwLock<HashMap<String, Arc<V>>>, key: &str) -> Arc<V> {
    if let Some(v) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return v.clone();
    }
    map.write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.to_owned())
        .or_default()
        .clone()
}

/// A usage reservation straight on the shared buckets and window (the
/// guard's calls reserve through their per-thread advances instead).
#[derive(Debug, Default)]
pub(crate) struct Hold {
    // The service's and the dependency's budgets: a call reserves from at
    // most these two.
    tokens: [Option<(Arc<Bucket>, Rate)>; 2],
    amount: u64,
    cost: Option<(Arc<CostWindow>, u64, u64)>,
}

impl Hold {
    /// Replaces the estimates with the actual use. An unsettled hold (its
    /// call was cancelled) leaves its estimates spent, since the provider
    /// may well have done the work: dropping it does nothing.
    pub(crate) fn settle_at(self, t: u64, tokens: u64, cost: u64) {
        for (bucket, rate) in self.tokens.into_iter().flatten() {
            bucket.adjust(t, self.amount, tokens, rate);
        }
        if let Some((w, day, reserved)) = self.cost {
            w.settle(day, day_of(t), reserved, cost);
        }
    }

    /// Reserves `tokens` from each budget and `cost` (the window, its limit
    /// and the estimate) all or nothing.
    pub(crate) fn reserve(
        t: u64,
        budgets: impl IntoIterator<Item = (Arc<Bucket>, Rate)>,
        tokens: u64,
        cost: Option<(Arc<CostWindow>, u64, u64)>,
    ) -> Result<Hold, BudgetRefusal> {
        let mut hold = Hold {
            amount: tokens,
            ..Hold::default()
        };
        if tokens > 0 {
            for (i, (bucket, rate)) in budgets.into_iter().enumerate() {
                if !bucket.take(t, tokens, rate) {
                    // Give back what the earlier budgets reserved.
                    hold.settle_at(t, 0, 0);
                    return Err(BudgetRefusal::Tokens);
                }
                // Callers pass at most two budgets: the service's and the
                // dependency's.
                if let Some(slot) = hold.tokens.get_mut(i) {
                    *slot = Some((bucket, rate));
                }
            }
        }
        if let Some((w, limit, estimate)) = cost {
            let day = day_of(t);
            if !w.reserve(day, limit, estimate) {
                hold.settle_at(t, 0, 0);
                return Err(BudgetRefusal::Cost);
            }
            hold.cost = Some((w, day, estimate));
        }
        Ok(hold)
    }
}

/// A usage reservation, settled when the actual use is known.
#[derive(Debug, Default)]
pub struct Reservation {
    hold: Hold,
    limiters: Option<Arc<Limiters>>,
}

impl Reservation {
    pub(crate) fn new(hold: Hold, limiters: Arc<Limiters>) -> Self {
        Reservation {
            hold,
            limiters: Some(limiters),
        }
    }

    /// Replaces the estimates with the actual use.
    pub fn settle(self, tokens: u64, cost_usd_micros: u64) {
        self.settle_at(Instant::now(), tokens, cost_usd_micros);
    }

    /// [`Reservation::settle`] with the time already read.
    pub(crate) fn settle_at(self, now: Instant, tokens: u64, cost_usd_micros: u64) {
        if let Some(l) = &self.limiters {
            self.hold.settle_at(l.ticks(now), tokens, cost_usd_micros);
        }
    }
}

/// Which budget refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetRefusal {
    /// A tokens-per-minute budget.
    Tokens,
    /// The tenant's daily spend.
    Cost,
}

impl Limiters {
    /// No buckets yet; they are made on first use, full.
    pub fn new() -> Limiters {
        Limiters {
            epoch: Instant::now(),
            buckets: RwLock::default(),
            costs: RwLock::default(),
        }
    }

    /// Takes one request from the bucket `key` limited by `limit`.
    pub fn try_request(&self, key: &str, limit: &RateLimit) -> bool {
        let b = self.bucket(key);
        b.take(self.ticks(Instant::now()), 1, Rate::of_requests(limit))
    }

    /// The bucket `key`, made full on first use. The guard resolves it once
    /// per dependency and keeps it.
    pub(crate) fn bucket(&self, key: &str) -> Arc<Bucket> {
        get_or_make(&self.buckets, key)
    }

    /// The spend window of `tenant`, made on first use.
    pub(crate) fn cost_window(&self, tenant: &str) -> Arc<CostWindow> {
        get_or_make(&self.costs, tenant)
    }

    /// When this limiter started: the guard's breakers and retry budget
    /// keep time from it too.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanoseconds from this limiter's start to `now`: the time every
    /// bucket and window of it is kept in, so a call reads it once.
    pub(crate) fn ticks(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn day(&self, now: Instant) -> u64 {
        day_of(self.ticks(now))
    }

    /// Reserves `tokens` from each `(key, per_minute)` budget (at most two)
    /// and `cost` from the tenant's daily `limit`, all or nothing.
    pub fn reserve(
        self: &Arc<Self>,
        token_budgets: &[(&str, u64)],
        tokens: u64,
        cost: Option<(&str, u64, u64)>,
    ) -> Result<Reservation, BudgetRefusal> {
        let buckets = token_budgets
            .iter()
            .map(|(key, per_minute)| (self.bucket(key), Rate::of_tokens(*per_minute)));
        let cost =
            cost.map(|(tenant, limit, estimate)| (self.cost_window(tenant), limit, estimate));
        let hold = Hold::reserve(self.ticks(Instant::now()), buckets, tokens, cost)?;
        Ok(Reservation::new(hold, self.clone()))
    }

    /// The share of `limit` that `tenant` has spent or reserved today, in
    /// percent (for the cost-near-limit admission signal).
    pub fn cost_percent(&self, tenant: &str, limit: u64) -> u64 {
        if limit == 0 {
            return 100;
        }
        let day = self.day(Instant::now());
        let Some(w) = self
            .costs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
        else {
            return 0;
        };
        w.amount_on(day).saturating_mul(100) / limit.min(MAX_AMOUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_its_rate() {
        let l = Limiters::new();
        let limit = RateLimit {
            per_second: 10,
            burst: 5,
        };
        assert_eq!((0..20).filter(|_| l.try_request("t", &limit)).count(), 5);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!((0..20).filter(|_| l.try_request("t", &limit)).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_reservations_cannot_overshoot_the_daily_cost() {
        let l = Arc::new(Limiters::new());
        let a = l.reserve(&[], 0, Some(("t", 100, 60))).unwrap();
        assert_eq!(
            l.reserve(&[], 0, Some(("t", 100, 60))).unwrap_err(),
            BudgetRefusal::Cost,
            "the first call's pending estimate counts"
        );
        a.settle(0, 30);
        assert!(l.reserve(&[], 0, Some(("t", 100, 60))).is_ok());
        assert_eq!(l.cost_percent("t", 100), 90);
    }

    #[tokio::test(start_paused = true)]
    async fn settling_gives_back_unused_tokens() {
        let l = Arc::new(Limiters::new());
        let r = l.reserve(&[("svc", 1000)], 800, None).unwrap();
        assert!(l.reserve(&[("svc", 1000)], 800, None).is_err());
        r.settle(100, 0);
        assert!(l.reserve(&[("svc", 1000)], 800, None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_give_back_never_fills_past_capacity_and_a_charge_goes_below_zero() {
        let l = Arc::new(Limiters::new());
        // Reserve 100, use none: the bucket is full again, not 1100.
        l.reserve(&[("b", 1000)], 100, None).unwrap().settle(0, 0);
        assert!(l.reserve(&[("b", 1000)], 1001, None).is_err());
        // Reserve 10, use 1500: 500 in debt, paid back by the refill.
        l.reserve(&[("b", 1000)], 10, None).unwrap().settle(1500, 0);
        assert!(l.reserve(&[("b", 1000)], 1, None).is_err());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            l.reserve(&[("b", 1000)], 1, None).is_err(),
            "500 refilled pays the debt"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(l.reserve(&[("b", 1000)], 90, None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_day_starts_a_fresh_window_and_late_spend_lands_in_it() {
        let l = Arc::new(Limiters::new());
        let r = l.reserve(&[], 0, Some(("t", 100, 80))).unwrap();
        tokio::time::advance(DAY).await;
        assert_eq!(l.cost_percent("t", 100), 0);
        r.settle(0, 30);
        assert_eq!(l.cost_percent("t", 100), 30);
    }

    #[test]
    fn concurrent_takers_never_get_more_than_the_burst_plus_the_refill() {
        for per_second in [0.0, 1_000.0, 1e9] {
            let bucket = Bucket::default();
            let limiters = Limiters::new();
            let rate = Rate::new(100.0, per_second);
            let started = std::time::Instant::now();
            let granted: usize = std::thread::scope(|s| {
                let takers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            (0..20_000)
                                .filter(|_| bucket.take(limiters.ticks(Instant::now()), 1, rate))
                                .count()
                        })
                    })
                    .collect();
                takers.into_iter().map(|t| t.join().unwrap()).sum()
            });
            let refill = started.elapsed().as_secs_f64() * per_second;
            assert!(
                granted as f64 <= 100.0 + refill + 1.0,
                "{granted} granted at {per_second}/s, at most {}",
                100.0 + refill
            );
            assert!(granted >= 100, "the burst is there to take");
            if per_second == 0.0 {
                assert_eq!(granted, 100, "no refill: exactly the burst");
            }
        }
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_daily_limit() {
        let w = CostWindow::default();
        let granted: u64 = std::thread::scope(|s| {
            let callers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1_000).filter(|_| w.reserve(0, 10_007, 7)).count() as u64))
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).sum()
        });
        assert_eq!(granted, 10_007 / 7);
        assert_eq!(w.amount_on(0), granted * 7);
    }

    /// A bucket large enough to lend: 640 000 tokens a minute.
    const BURST: u64 = 640_000;

    fn lending_rate() -> Rate {
        let rate = Rate::new(BURST as f64, BURST as f64 / 60.0);
        assert!(rate.lease_tokens >= MIN_LEASE, "the bucket lends");
        rate
    }

    #[test]
    fn small_buckets_lend_nothing_and_stay_exact() {
        let rate = Rate::new(100.0, 10.0);
        assert_eq!(rate.lease_tokens, 0);
        let (bucket, lease) = (Bucket::default(), Lease::default());
        let granted = (0..500).filter(|_| lease.take(&bucket, 0, 1, rate)).count();
        assert_eq!(granted, 100);
    }

    #[test]
    fn advances_on_several_threads_never_give_more_than_the_bucket_plus_a_64th() {
        let rate = lending_rate();
        let bucket = Bucket::default();
        // Eight threads' advances at once, taking in turns at one instant.
        let leases: Vec<Lease> = (0..8).map(|_| Lease::default()).collect();
        let mut granted = 0u64;
        for _ in 0..100_000 {
            for lease in &leases {
                granted += u64::from(lease.take(&bucket, 1_000, 1, rate));
            }
        }
        assert_eq!(granted, BURST, "at one instant: exactly the burst");
        // An advance taken just before the bucket refilled is still drawn
        // on after it: the shift is at most one advance, 1/64 of the burst.
        let bucket = Bucket::default();
        let early = Lease::default();
        assert!(early.take(&bucket, 0, 1, rate));
        let t = rate.lease_ns - 1;
        let late = Lease::default();
        let mut at_t = (0..1_000_000)
            .filter(|_| late.take(&bucket, t, 1, rate))
            .count() as u64;
        at_t += (0..1_000_000)
            .filter(|_| early.take(&bucket, t, 1, rate))
            .count() as u64;
        assert!(at_t <= BURST + BURST / 64, "{at_t} at one instant");
        assert!(at_t >= BURST - 1, "{at_t}: the burst is all there");
    }

    #[test]
    fn an_advance_given_back_is_the_buckets_again() {
        let rate = lending_rate();
        let (bucket, lease) = (Bucket::default(), Lease::default());
        assert!(lease.take(&bucket, 0, 1, rate));
        assert!(
            !bucket.take(0, BURST, rate),
            "the advance is out of the bucket"
        );
        lease.give_back(&bucket, rate);
        assert!(
            bucket.take(0, BURST - 1, rate),
            "all but the one token used"
        );
        assert!(!bucket.take(0, 1, rate));
    }

    #[test]
    fn a_settled_surplus_or_overrun_goes_through_the_advance_and_is_not_lost() {
        let rate = lending_rate();
        let (bucket, lease) = (Bucket::default(), Lease::default());
        assert!(lease.take(&bucket, 0, 100, rate));
        // Used 40 of 100: 60 back into the advance; then a call that used
        // 150 of 100 takes 50 more from it.
        lease.adjust(&bucket, 0, 100, 40, rate);
        assert!(lease.take(&bucket, 0, 100, rate));
        lease.adjust(&bucket, 0, 100, 150, rate);
        lease.give_back(&bucket, rate);
        // 40 + 150 used in all.
        assert!(bucket.take(0, BURST - 190, rate));
        assert!(!bucket.take(0, 1, rate));
    }

    #[test]
    fn a_spend_window_lent_to_threads_never_exceeds_its_limit_and_gets_its_rest_back() {
        let w = CostWindow::default();
        let limit = 10_000_000;
        let granted: u64 = std::thread::scope(|s| {
            let callers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let lease = Lease::default();
                        let n = (0..1_000_000)
                            .filter(|_| lease.reserve(&w, 0, limit, 7))
                            .count() as u64;
                        lease.give_back_window(&w);
                        n
                    })
                })
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).sum()
        });
        assert!(granted * 7 <= limit, "{granted} calls of 7");
        assert!(
            granted * 7 > limit - 4 * (limit / WINDOW_LEASE_SHARE),
            "refused early by at most an advance per thread: {granted}"
        );
        assert_eq!(w.amount_on(0), granted * 7, "every unused advance returned");
    }

    #[test]
    fn an_advance_from_yesterday_is_neither_used_nor_given_back_today() {
        let w = CostWindow::default();
        let lease = Lease::default();
        let limit = 1_000_000;
        assert!(lease.reserve(&w, 0, limit, 10));
        assert!(w.amount_on(0) > 10, "an advance was taken");
        assert!(lease.reserve(&w, 1, limit, 10));
        assert_eq!(
            w.amount_on(1),
            limit / WINDOW_LEASE_SHARE,
            "today's advance only"
        );
        lease.give_back_window(&w);
        assert_eq!(w.amount_on(1), 10, "only today's call is today's spend");
    }

    proptest::proptest! {
        /// Whatever the order of takes and pauses, a bucket never grants
        /// more than its capacity plus what its rate refilled, and after a
        /// full refill time it grants a take of up to its capacity.
        #[test]
        fn a_bucket_never_grants_more_than_capacity_plus_refill(
            capacity in 1u64..5_000,
            per_second in 0u64..100_000,
            steps in proptest::collection::vec((0u64..2_000, 1u64..500), 1..200),
        ) {
            let bucket = Bucket::default();
            let rate = Rate::new(capacity as f64, per_second as f64);
            let mut at = 0u64;
            let mut granted = 0u64;
            for (pause_ms, amount) in steps {
                at += pause_ms * 1_000_000;
                if bucket.take(at, amount, rate) {
                    granted += amount;
                }
                let elapsed = at as f64 / 1e9;
                let bound = capacity as f64 + elapsed * per_second as f64;
                proptest::prop_assert!(granted as f64 <= bound + 0.01, "{granted} > {bound}");
            }
            if per_second > 0 {
                let refill = (capacity as f64 / per_second as f64 + 0.001) * 1e9;
                proptest::prop_assert!(bucket.take(at + refill as u64, capacity, rate));
            }
        }
    }
}
