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
//! The day is counted in 24-hour windows from the agent's start on tokio's
//! clock, not calendar days, so that it behaves on a paused clock; the
//! control plane's daily reports are the calendar view.

use shared::policy::RateLimit;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A token bucket with fractional refill.
#[derive(Debug)]
pub struct Bucket {
    available: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: f64) -> Bucket {
        Bucket {
            available: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant, capacity: f64, per_second: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.available = (self.available + elapsed * per_second).min(capacity);
    }

    /// Takes `amount` if the bucket holds that much.
    fn take(&mut self, now: Instant, amount: f64, capacity: f64, per_second: f64) -> bool {
        self.refill(now, capacity, per_second);
        if self.available >= amount {
            self.available -= amount;
            true
        } else {
            false
        }
    }

    /// Gives back (or, negative, charges) the difference between a
    /// reservation and the actual use. A charge can take the bucket below
    /// zero: the overrun is paid back by refusing later calls.
    fn adjust(&mut self, now: Instant, delta: f64, capacity: f64, per_second: f64) {
        self.refill(now, capacity, per_second);
        self.available = (self.available + delta).min(capacity);
    }
}

#[derive(Debug, Default)]
struct CostWindow {
    window: u64,
    spent: u64,
    reserved: u64,
}

/// The buckets and windows, keyed by what they limit.
#[derive(Debug)]
pub struct Limiters {
    epoch: Instant,
    buckets: RwLock<HashMap<String, Arc<Mutex<Bucket>>>>,
    costs: RwLock<HashMap<String, Arc<Mutex<CostWindow>>>>,
}

impl Default for Limiters {
    fn default() -> Self {
        Limiters::new()
    }
}

fn get_or_make<V>(
    map: &RwLock<HashMap<String, Arc<Mutex<V>>>>,
    key: &str,
    make: impl FnOnce() -> V,
) -> Arc<Mutex<V>> {
    if let Some(v) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return v.clone();
    }
    map.write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.to_owned())
        .or_insert_with(|| Arc::new(Mutex::new(make())))
        .clone()
}

/// Tokens taken from one bucket: the bucket, the amount, its capacity and
/// its rate per second.
type TokenHold = (Arc<Mutex<Bucket>>, f64, f64, f64);

/// A usage reservation, settled when the actual use is known.
#[derive(Debug, Default)]
pub struct Reservation {
    // The service's and the dependency's budgets fit inline; a call should
    // not allocate to reserve.
    tokens: [Option<TokenHold>; 2],
    more_tokens: Vec<TokenHold>,
    cost: Option<(Arc<Mutex<CostWindow>>, u64, u64)>,
}

impl Reservation {
    fn hold(&mut self, hold: TokenHold) {
        match self.tokens.iter_mut().find(|t| t.is_none()) {
            Some(free) => *free = Some(hold),
            None => self.more_tokens.push(hold),
        }
    }

    /// Replaces the estimates with the actual use.
    pub fn settle(self, tokens: u64, cost_usd_micros: u64) {
        self.settle_at(Instant::now(), tokens, cost_usd_micros);
    }

    /// [`Reservation::settle`] with the time already read.
    pub(crate) fn settle_at(mut self, now: Instant, tokens: u64, cost_usd_micros: u64) {
        let held = self.tokens.iter_mut().filter_map(Option::take);
        for (bucket, reserved, capacity, rate) in held.chain(self.more_tokens.drain(..)) {
            let delta = reserved - tokens as f64;
            lock(&bucket).adjust(now, delta, capacity, rate);
        }
        if let Some((w, window, reserved)) = self.cost.take() {
            let mut w = lock(&w);
            if w.window == window {
                w.reserved = w.reserved.saturating_sub(reserved);
            }
            // Spend lands in the current window even if the call straddled
            // a boundary: it was spent now.
            w.spent = w.spent.saturating_add(cost_usd_micros);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Unsettled (the call was cancelled): the estimate stands as spent,
        // since the provider may well have done the work.
        if let Some((w, window, reserved)) = self.cost.take() {
            let mut w = lock(&w);
            if w.window == window {
                w.reserved = w.reserved.saturating_sub(reserved);
                w.spent = w.spent.saturating_add(reserved);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        let b = self.request_bucket(key, limit);
        Limiters::take_request(&b, limit, Instant::now())
    }

    /// The bucket `key` of a request rate, made full on first use. The
    /// guard resolves it once per dependency and keeps it.
    pub(crate) fn request_bucket(&self, key: &str, limit: &RateLimit) -> Arc<Mutex<Bucket>> {
        let capacity = f64::from(limit.burst.max(1));
        get_or_make(&self.buckets, key, || Bucket::new(capacity))
    }

    /// The bucket `key` of a tokens-per-minute budget, made full on first
    /// use.
    pub(crate) fn token_bucket(&self, key: &str, per_minute: u64) -> Arc<Mutex<Bucket>> {
        get_or_make(&self.buckets, key, || Bucket::new(per_minute as f64))
    }

    /// Takes one request from `bucket`, limited by `limit`, at `now`.
    pub(crate) fn take_request(bucket: &Mutex<Bucket>, limit: &RateLimit, now: Instant) -> bool {
        let capacity = f64::from(limit.burst.max(1));
        let rate = f64::from(limit.per_second);
        lock(bucket).take(now, 1.0, capacity, rate)
    }

    fn day(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / DAY.as_secs()
    }

    /// Reserves `tokens` from each `(key, per_minute)` budget and `cost`
    /// from the tenant's daily `limit`, all or nothing.
    pub fn reserve(
        &self,
        token_budgets: &[(&str, u64)],
        tokens: u64,
        cost: Option<(&str, u64, u64)>,
    ) -> Result<Reservation, BudgetRefusal> {
        let buckets = token_budgets
            .iter()
            .map(|(key, per_minute)| (self.token_bucket(key, *per_minute), *per_minute));
        self.reserve_at(Instant::now(), buckets, tokens, cost)
    }

    /// [`Limiters::reserve`] from buckets already resolved (they are only
    /// read when `tokens` is not zero), at `now`.
    pub(crate) fn reserve_at(
        &self,
        now: Instant,
        token_budgets: impl IntoIterator<Item = (Arc<Mutex<Bucket>>, u64)>,
        tokens: u64,
        cost: Option<(&str, u64, u64)>,
    ) -> Result<Reservation, BudgetRefusal> {
        let mut r = Reservation::default();
        if tokens > 0 {
            for (b, per_minute) in token_budgets {
                let capacity = per_minute as f64;
                let rate = capacity / 60.0;
                if !lock(&b).take(now, tokens as f64, capacity, rate) {
                    // Give back what the earlier budgets reserved.
                    r.settle_at(now, 0, 0);
                    return Err(BudgetRefusal::Tokens);
                }
                r.hold((b, tokens as f64, capacity, rate));
            }
        }
        if let Some((tenant, limit, estimate)) = cost {
            let day = self.day(now);
            let w = get_or_make(&self.costs, tenant, CostWindow::default);
            let mut g = lock(&w);
            if g.window != day {
                *g = CostWindow {
                    window: day,
                    ..CostWindow::default()
                };
            }
            // Refused once the budget is spent, even for a zero estimate:
            // an unknown cost is not a free one.
            if g.spent.saturating_add(g.reserved) >= limit
                || g.spent.saturating_add(g.reserved).saturating_add(estimate) > limit
            {
                drop(g);
                r.settle_at(now, 0, 0);
                return Err(BudgetRefusal::Cost);
            }
            g.reserved += estimate;
            drop(g);
            r.cost = Some((w, day, estimate));
        }
        Ok(r)
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
        let g = lock(&w);
        if g.window != day {
            return 0;
        }
        g.spent.saturating_add(g.reserved).saturating_mul(100) / limit
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
        let l = Limiters::new();
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
        let l = Limiters::new();
        let r = l.reserve(&[("svc", 1000)], 800, None).unwrap();
        assert!(l.reserve(&[("svc", 1000)], 800, None).is_err());
        r.settle(100, 0);
        assert!(l.reserve(&[("svc", 1000)], 800, None).is_ok());
    }
}
