//! Wall-clock timestamps derived from tokio's clock.
//!
//! Everything that decides (deadlines, cooldowns, windows) uses
//! `tokio::time::Instant`, so tests on a paused clock are deterministic. The
//! wire protocol wants Unix milliseconds for labels, so they are computed
//! from one anchor taken at start-up plus tokio's elapsed time: on a paused
//! clock the labels advance exactly as the test advances time.

use tokio::time::Instant;

/// Converts tokio instants into Unix milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor: Instant,
    anchor_unix_ms: i64,
}

impl WallClock {
    /// Anchored at the system clock's reading now.
    pub fn system() -> WallClock {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        WallClock::anchored_at(unix_ms)
    }

    /// Anchored at a given Unix time, for tests.
    pub fn anchored_at(unix_ms: i64) -> WallClock {
        WallClock {
            anchor: Instant::now(),
            anchor_unix_ms: unix_ms,
        }
    }

    /// Unix milliseconds at `at`.
    pub fn unix_ms_at(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.anchor).as_millis() as i64;
        self.anchor_unix_ms + elapsed
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        self.unix_ms_at(Instant::now())
    }
}
