//! Login throttling per account and per client address, so that password
//! guessing is slow whichever of the two an attacker varies.

use crate::clock::Clock;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Adapts the injected clock to governor, so tests control refills too.
#[derive(Clone, Debug)]
struct InjectedClock(Arc<dyn Clock>);

impl GovernorClock for InjectedClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now_ms()).unwrap_or(0))
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, InjectedClock, NoOpMiddleware<Duration>>;

/// How many attempts one account may take in a burst; then one per
/// [`ACCOUNT_REFILL`].
pub const ACCOUNT_BURST: u32 = 5;
const ACCOUNT_REFILL: Duration = Duration::from_secs(12);
/// How many attempts one address may take in a burst; then one per
/// [`ADDRESS_REFILL`].
pub const ADDRESS_BURST: u32 = 20;
const ADDRESS_REFILL: Duration = Duration::from_secs(3);
/// Above this many tracked keys, idle ones are forgotten, so that a flood of
/// made-up usernames cannot grow memory without bound.
const MAX_TRACKED: usize = 50_000;

/// Per-account and per-address login limits.
pub struct LoginThrottle {
    clock: InjectedClock,
    accounts: Keyed<String>,
    addresses: Keyed<IpAddr>,
}

impl LoginThrottle {
    /// Limits that read time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> LoginThrottle {
        let clock = InjectedClock(clock);
        let quota = |burst: u32, every: Duration| {
            Quota::with_period(every)
                .expect("non-zero period")
                .allow_burst(NonZeroU32::new(burst).expect("non-zero burst"))
        };
        LoginThrottle {
            accounts: RateLimiter::new(
                quota(ACCOUNT_BURST, ACCOUNT_REFILL),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            addresses: RateLimiter::new(
                quota(ADDRESS_BURST, ADDRESS_REFILL),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
        }
    }

    /// Takes one attempt for `username` from `address`. On refusal, returns
    /// how many seconds to wait.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), u64> {
        if self.accounts.len() > MAX_TRACKED {
            self.accounts.retain_recent();
        }
        if self.addresses.len() > MAX_TRACKED {
            self.addresses.retain_recent();
        }
        let now = self.clock.now();
        let wait = |not_until: governor::NotUntil<Duration>| {
            not_until.wait_time_from(now).as_secs().max(1)
        };
        if let Some(ip) = address {
            self.addresses.check_key(&ip).map_err(wait)?;
        }
        self.accounts
            .check_key(&username.to_lowercase())
            .map_err(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn an_account_is_throttled_after_its_burst_and_recovers() {
        let clock = ManualClock::new(1_000_000);
        let throttle = LoginThrottle::new(clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ACCOUNT_BURST {
            assert!(throttle.check("alice", Some(ip)).is_ok());
        }
        let wait = throttle.check("Alice", Some(ip)).unwrap_err();
        assert!((1..=12).contains(&wait), "{wait}");
        // Another account from the same address is not affected...
        assert!(throttle.check("bob", Some(ip)).is_ok());
        // ...and the account recovers after one refill period.
        clock.advance_ms(12_000);
        assert!(throttle.check("alice", Some(ip)).is_ok());
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let clock = ManualClock::new(1_000_000);
        let throttle = LoginThrottle::new(clock);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..ADDRESS_BURST {
            assert!(throttle.check(&format!("user{i}"), Some(ip)).is_ok());
        }
        assert!(throttle.check("someone-else", Some(ip)).is_err());
        assert!(
            throttle
                .check("someone-else", Some("10.0.0.3".parse().unwrap()))
                .is_ok()
        );
    }
}
