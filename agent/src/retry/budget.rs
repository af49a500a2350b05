//! The retry budget: retries may add at most a share of the first attempts,
//! plus a small floor per second, over a sliding window.
//!
//! Without it, every layer that retries multiplies the load on a dependency
//! exactly when the dependency can least take it. The budget is shared by
//! every call of the service, so the bound holds however many callers fail
//! at once; amplification (attempts over first attempts) is reported.

use crate::telemetry::{OWN_SHARDS, ShardAt, shard_index};
use shared::policy::RetryBudget as RetryBudgetPolicy;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The window over which deposits and withdrawals are remembered.
const WINDOW: Duration = Duration::from_secs(10);
/// The window is kept as this many one-second slots.
const SLOTS: usize = 10;
/// Fixed point: one retry costs this many units.
const UNIT: i64 = 1_000;

/// Bits of a deposit word holding its second; the rest hold the units.
const ID_BITS: u32 = 24;
const UNITS_BITS: u32 = 64 - ID_BITS;
const UNITS_MASK: u64 = (1 << UNITS_BITS) - 1;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Deposits([AtomicU64; SLOTS]);

/// A sliding-window retry budget shared by every guarded call.
///
/// Every first attempt deposits, so deposits are lock-free: one atomic
/// word per second-slot holding the slot's second and its units, added to
/// with one instruction. Withdrawals (a retry, on the failure path) take a
/// lock, so that two retries never spend the same unit.
#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    /// One set of slots per thread (see [`crate::telemetry`]), so that
    /// first attempts on different threads never write one cache line.
    deposits: [Deposits; OWN_SHARDS + 1],
    /// Units withdrawn per second-slot: (second, units).
    withdrawals: Mutex<[(u64, i64); SLOTS]>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new()
    }
}

impl RetryBudget {
    /// An empty budget.
    pub fn new() -> RetryBudget {
        RetryBudget::with_epoch(Instant::now())
    }

    /// An empty budget keeping time from `epoch`: the guard gives it the
    /// epoch of its limiters, so that one clock reading, turned into
    /// nanoseconds once, serves both.
    pub(crate) fn with_epoch(epoch: Instant) -> RetryBudget {
        RetryBudget {
            epoch,
            deposits: Default::default(),
            withdrawals: Mutex::new([(u64::MAX, 0); SLOTS]),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Records a first attempt, which earns `ratio_percent` of a retry.
    pub fn deposit(&self, policy: &RetryBudgetPolicy) {
        let ticks = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64;
        self.deposit_ticks(ticks, policy, shard_index());
    }

    /// [`RetryBudget::deposit`] at `ticks` nanoseconds from the budget's
    /// epoch (the time already read), counted in the calling thread's
    /// shard `at`.
    #[inline]
    pub(crate) fn deposit_ticks(&self, ticks: u64, policy: &RetryBudgetPolicy, at: ShardAt) {
        let units = u64::from(policy.ratio_percent) * UNIT as u64 / 100;
        if units == 0 {
            return;
        }
        let second = ticks / 1_000_000_000;
        let (shard, own) = at;
        let slot = &self.deposits[shard].0[(second % SLOTS as u64) as usize];
        let id = second & ID_MASK;
        let word = slot.load(Ordering::Relaxed);
        let fits = (word & UNITS_MASK) + units <= UNITS_MASK;
        if own {
            // Nobody else writes this slot: a plain store.
            let next = if word >> UNITS_BITS == id && fits {
                word + units
            } else if word >> UNITS_BITS == id {
                word | UNITS_MASK
            } else {
                (id << UNITS_BITS) | units
            };
            slot.store(next, Ordering::Relaxed);
            return;
        }
        if word >> UNITS_BITS == id && fits {
            slot.fetch_add(units, Ordering::Relaxed);
            return;
        }
        // A slot left from an earlier second starts afresh; whoever loses
        // the race adds to the winner's fresh slot.
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some(if w >> UNITS_BITS == id {
                (w & !UNITS_MASK) | ((w & UNITS_MASK) + units).min(UNITS_MASK)
            } else {
                (id << UNITS_BITS) | units
            })
        });
    }

    /// Takes one retry from the budget, or says there is none left.
    pub fn withdraw(&self, policy: &RetryBudgetPolicy) -> bool {
        let floor = i64::from(policy.min_per_second) * WINDOW.as_secs() as i64 * UNIT;
        let second = self.second(Instant::now());
        let id = second & ID_MASK;
        let deposited: i64 = self
            .deposits
            .iter()
            .flat_map(|d| &d.0)
            .map(|w| w.load(Ordering::Relaxed))
            .filter(|w| id.wrapping_sub(w >> UNITS_BITS) & ID_MASK < SLOTS as u64)
            .map(|w| (w & UNITS_MASK) as i64)
            .sum();
        let mut withdrawn = self.withdrawals.lock().unwrap_or_else(|e| e.into_inner());
        let spent: i64 = withdrawn
            .iter()
            .filter(|(s, _)| second.wrapping_sub(*s) < SLOTS as u64)
            .map(|(_, u)| *u)
            .sum();
        if deposited + floor - spent < UNIT {
            return false;
        }
        let slot = &mut withdrawn[(second % SLOTS as u64) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += UNIT;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_ratio_plus_the_floor() {
        let policy = RetryBudgetPolicy {
            ratio_percent: 20,
            min_per_second: 1,
        };
        let b = RetryBudget::new();
        for _ in 0..100 {
            b.deposit(&policy);
        }
        let granted = (0..1_000).filter(|_| b.withdraw(&policy)).count();
        // 20 % of 100 first attempts, plus 1 per second over the 10 s window.
        assert_eq!(granted, 20 + 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_so_old_deposits_expire() {
        let policy = RetryBudgetPolicy {
            ratio_percent: 100,
            min_per_second: 0,
        };
        let b = RetryBudget::new();
        for _ in 0..5 {
            b.deposit(&policy);
        }
        tokio::time::advance(WINDOW + Duration::from_secs(1)).await;
        assert!(!b.withdraw(&policy), "deposits older than the window count");
    }
}
