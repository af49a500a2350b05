//! Randomness for jitter, injectable so that tests are deterministic.
//!
//! Backoff jitter needs numbers that differ between clients (that is the
//! point of jitter), not numbers an adversary cannot guess, so a small
//! counter-based generator is enough and keeps the hot path lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of uniformly distributed 64-bit numbers.
pub trait RandomSource: Send + Sync + 'static {
    /// The next number.
    fn next_u64(&self) -> u64;

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    fn between(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = u128::from(hi - lo) + 1;
        // Multiply-shift instead of modulo: no division, and no bias worth
        // speaking of for spans this far below 2^64.
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }
}

/// SplitMix64: each draw is a pure function of an atomic counter, so
/// concurrent callers never contend on a lock and a fixed seed replays
/// exactly.
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    /// A generator that replays the same sequence for the same seed.
    pub fn seeded(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the wall clock and the process id, so that
    /// instances started together still jitter apart.
    pub fn from_entropy() -> SplitMix64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_sequence() {
        let a = SplitMix64::seeded(7);
        let b = SplitMix64::seeded(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn between_stays_within_its_bounds() {
        let r = SplitMix64::seeded(1);
        for _ in 0..10_000 {
            let x = r.between(10, 20);
            assert!((10..=20).contains(&x));
        }
        assert_eq!(r.between(5, 5), 5);
        assert_eq!(r.between(9, 3), 9);
    }
}
