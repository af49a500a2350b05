//! Capped exponential backoff with jitter.
//!
//! Retry `n` (1 for the first retry) waits, before jitter,
//! `min(max, base · 2^(n-1))`. Full jitter draws uniformly from zero to that;
//! decorrelated jitter draws from `base` to three times the previous delay,
//! capped; no jitter waits exactly that. Every delay is within `0..=max`
//! (decorrelated within `base..=max` when `base <= max`), whatever the
//! inputs: the arithmetic saturates instead of overflowing.

use crate::random::RandomSource;
use shared::policy::{Jitter, RetryPolicy};
use std::time::Duration;

/// The backoff state of one guarded call: decorrelated jitter remembers the
/// previous delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    jitter: Jitter,
    previous_ms: u64,
}

impl Backoff {
    /// A backoff with these parameters.
    pub fn new(base_ms: u64, max_ms: u64, jitter: Jitter) -> Backoff {
        Backoff {
            base_ms,
            max_ms,
            jitter,
            previous_ms: base_ms,
        }
    }

    /// The backoff a retry policy describes.
    pub fn for_policy(policy: &RetryPolicy) -> Backoff {
        Backoff::new(policy.base_delay_ms, policy.max_delay_ms, policy.jitter)
    }

    /// The capped exponential delay before jitter, for retry `retry` (from 1).
    pub fn exponential_ms(&self, retry: u32) -> u64 {
        let shift = retry.saturating_sub(1).min(63);
        let factor = 1u64 << shift;
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The delay before retry `retry` (from 1).
    pub fn delay(&mut self, retry: u32, random: &dyn RandomSource) -> Duration {
        let ms = match self.jitter {
            Jitter::None => self.exponential_ms(retry),
            Jitter::Full => random.between(0, self.exponential_ms(retry)),
            Jitter::Decorrelated => {
                let hi = self.previous_ms.saturating_mul(3).max(self.base_ms);
                let ms = random.between(self.base_ms, hi).min(self.max_ms);
                self.previous_ms = ms;
                ms
            }
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SplitMix64;
    use proptest::prelude::*;

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::Full),
            Just(Jitter::Decorrelated),
            Just(Jitter::None)
        ]
    }

    proptest! {
        #[test]
        fn a_backoff_is_never_above_the_cap(
            base in 0u64..1_000_000, max in 0u64..10_000_000, j in jitter(),
            seed: u64, retries in 1u32..200,
        ) {
            let r = SplitMix64::seeded(seed);
            let mut b = Backoff::new(base, max, j);
            for n in 1..=retries {
                prop_assert!(b.delay(n, &r) <= Duration::from_millis(max));
            }
        }

        #[test]
        fn huge_inputs_saturate_instead_of_overflowing(
            base: u64, max: u64, j in jitter(), seed: u64, retry: u32,
        ) {
            let r = SplitMix64::seeded(seed);
            let mut b = Backoff::new(base, max, j);
            // Never negative is given by the type; never a panic is the point.
            let d = b.delay(retry.max(1), &r);
            prop_assert!(d <= Duration::from_millis(max));
        }

        #[test]
        fn full_jitter_stays_below_the_exponential_delay(
            base in 1u64..10_000, max in 1u64..1_000_000, seed: u64, retry in 1u32..40,
        ) {
            let r = SplitMix64::seeded(seed);
            let mut b = Backoff::new(base, max, Jitter::Full);
            let exp = b.exponential_ms(retry);
            prop_assert!(exp <= max);
            prop_assert!(b.delay(retry, &r).as_millis() as u64 <= exp);
        }

        #[test]
        fn decorrelated_jitter_stays_between_base_and_three_times_the_previous_delay(
            base in 1u64..10_000, extra in 0u64..1_000_000, seed: u64, retries in 1u32..60,
        ) {
            let max = base + extra;
            let r = SplitMix64::seeded(seed);
            let mut b = Backoff::new(base, max, Jitter::Decorrelated);
            let mut previous = base;
            for n in 1..=retries {
                let d = b.delay(n, &r).as_millis() as u64;
                prop_assert!(d >= base, "{d} below the base {base}");
                prop_assert!(d <= max);
                prop_assert!(d <= previous.saturating_mul(3).max(base));
                previous = d;
            }
        }

        #[test]
        fn without_jitter_the_delay_doubles_until_the_cap(
            base in 1u64..1_000, max in 1u64..100_000, retry in 1u32..30,
        ) {
            let r = SplitMix64::seeded(0);
            let mut b = Backoff::new(base, max, Jitter::None);
            let expected = (base << (retry - 1)).min(max);
            prop_assert_eq!(b.delay(retry, &r), Duration::from_millis(expected));
        }
    }
}
