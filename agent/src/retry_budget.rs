//! The retry budget: retries may add at most a share of the first attempts,
//! plus a small floor per second, over a sliding window.
//!
//! Without it, every layer that retries multiplies the load on a dependency
//! exactly when the dependency can least take it. The budget is shared by
//! every call of the service, so the bound holds however many callers fail
//! at once; amplification (attempts over first attempts) is reported.

use shared::policy::RetryBudget as RetryBudgetPolicy;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The window over which deposits and withdrawals are remembered.
const WINDOW: Duration = Duration::from_secs(10);
/// The window is kept as this many one-second slots.
const SLOTS: usize = 10;
/// Fixed point: one retry costs this many units.
const UNIT: i64 = 1_000;

#[derive(Debug)]
struct Slots {
    /// Net units per second-slot: deposits minus withdrawals.
    net: [i64; SLOTS],
    /// The absolute second of the slot written last.
    current: u64,
}

/// A sliding-window retry budget shared by every guarded call.
#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    slots: Mutex<Slots>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new()
    }
}

impl RetryBudget {
    /// An empty budget.
    pub fn new() -> RetryBudget {
        RetryBudget {
            epoch: Instant::now(),
            slots: Mutex::new(Slots {
                net: [0; SLOTS],
                current: 0,
            }),
        }
    }

    fn with_slots<R>(&self, now: Instant, f: impl FnOnce(&mut Slots, usize) -> R) -> R {
        let now = now.saturating_duration_since(self.epoch).as_secs();
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Clear the slots that fell out of the window since the last write.
        let gap = now.saturating_sub(s.current).min(SLOTS as u64);
        for i in 1..=gap {
            let idx = ((s.current + i) % SLOTS as u64) as usize;
            s.net[idx] = 0;
        }
        s.current = now.max(s.current);
        let idx = (s.current % SLOTS as u64) as usize;
        f(&mut s, idx)
    }

    /// Records a first attempt, which earns `ratio_percent` of a retry.
    pub fn deposit(&self, policy: &RetryBudgetPolicy) {
        self.deposit_at(Instant::now(), policy);
    }

    /// [`RetryBudget::deposit`] with the time already read.
    pub(crate) fn deposit_at(&self, now: Instant, policy: &RetryBudgetPolicy) {
        let units = i64::from(policy.ratio_percent) * UNIT / 100;
        self.with_slots(now, |s, idx| s.net[idx] += units);
    }

    /// Takes one retry from the budget, or says there is none left.
    pub fn withdraw(&self, policy: &RetryBudgetPolicy) -> bool {
        let floor = i64::from(policy.min_per_second) * WINDOW.as_secs() as i64 * UNIT;
        self.with_slots(Instant::now(), |s, idx| {
            let balance: i64 = s.net.iter().sum::<i64>() + floor;
            if balance >= UNIT {
                s.net[idx] -= UNIT;
                true
            } else {
                false
            }
        })
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
