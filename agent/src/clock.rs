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

/// Which clock a guard's calls read at their start and their end.
///
/// Reading the clock twice is a fifth of a guarded call's cost on a
/// virtual machine, where the kernel's `clock_gettime` costs about 38 ns
/// and the processor's cycle counter about 13 ns. Every decision still
/// uses tokio's [`Instant`]s: the cycle counter only extrapolates from a
/// reading of tokio's clock, which each thread takes again every
/// [`RESYNC`], so the two never drift apart by more than the counter's
/// calibration error over that span (about a microsecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallClock {
    /// The cycle counter, unless tokio's clock is paused (a test's clock
    /// moves only when the test says so, which the counter cannot see):
    /// then tokio's clock. Decided at the guard's first call.
    #[default]
    Auto,
    /// tokio's clock at every reading.
    Runtime,
    /// The cycle counter, resynchronised with tokio's clock (which falls
    /// back to the operating system's clock where the processor has no
    /// invariant counter).
    CycleCounter,
}

/// How often a thread's cycle-counter readings are tied to tokio's clock
/// again: often enough that calibration error cannot accumulate (about
/// 1 ppm here, so 50 ns), rarely enough that the one real reading it costs
/// is shared by every call in between.
pub const RESYNC: std::time::Duration = std::time::Duration::from_millis(50);

/// The clock a guard's calls read, [`CallClock`] resolved.
#[derive(Debug, Clone)]
pub(crate) struct CallReader {
    /// `None`: tokio's clock.
    cycles: Option<quanta::Clock>,
}

/// One thread's tie between the cycle counter and a guard's ticks
/// (nanoseconds from its epoch): the counter's value at a reading of
/// tokio's clock, and that reading. Kept in the thread's handles, so it is
/// read and renewed without synchronisation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Anchor {
    raw: u64,
    ticks: u64,
}

impl CallReader {
    /// Resolves `choice`; for [`CallClock::Auto`], inside the runtime that
    /// will run the calls.
    pub(crate) fn resolve(choice: CallClock) -> CallReader {
        let cycles = match choice {
            CallClock::Runtime => false,
            CallClock::CycleCounter => true,
            CallClock::Auto => !runtime_clock_is_paused(),
        };
        CallReader {
            cycles: cycles.then(quanta::Clock::new),
        }
    }

    /// Whether this reader extrapolates with the cycle counter.
    pub(crate) fn uses_cycles(&self) -> bool {
        self.cycles.is_some()
    }

    /// The time at a call's start, in ticks (nanoseconds) from `epoch`;
    /// ties `anchor` to tokio's clock again when it is older than
    /// [`RESYNC`] (or was never tied).
    #[inline]
    pub(crate) fn start(&self, anchor: &mut Anchor, epoch: Instant) -> u64 {
        let Some(clock) = &self.cycles else {
            return runtime_reading(epoch);
        };
        let raw = clock.raw();
        let elapsed = clock.delta_as_nanos(anchor.raw, raw);
        // `elapsed` is 0 when the counter reads below the anchor (a move
        // to a processor whose counter lags): tie it again then too.
        if anchor.raw == 0 || elapsed == 0 || elapsed > RESYNC.as_nanos() as u64 {
            return resync(anchor, raw, epoch);
        }
        anchor.ticks + elapsed
    }

    /// The time later in a call, extrapolated from the anchor its start
    /// set (never older than [`RESYNC`] plus the call's own length).
    #[inline]
    pub(crate) fn later(&self, anchor: &Anchor, epoch: Instant) -> u64 {
        let Some(clock) = &self.cycles else {
            return runtime_reading(epoch);
        };
        anchor.ticks + clock.delta_as_nanos(anchor.raw, clock.raw())
    }
}

/// tokio's clock now, in ticks from `epoch`.
#[inline]
fn runtime_reading(epoch: Instant) -> u64 {
    Instant::now().saturating_duration_since(epoch).as_nanos() as u64
}

/// The instant `ticks` nanoseconds after `epoch`.
#[inline]
pub(crate) fn instant_at(epoch: Instant, ticks: u64) -> Instant {
    epoch + std::time::Duration::from_nanos(ticks)
}

/// Ties `anchor` to tokio's clock at counter value `raw`.
#[cold]
#[inline(never)]
fn resync(anchor: &mut Anchor, raw: u64, epoch: Instant) -> u64 {
    let ticks = runtime_reading(epoch);
    *anchor = Anchor { raw, ticks };
    ticks
}

/// Whether tokio's clock is paused here: it stands still while real time
/// passes. (Outside a runtime it is the system's clock, which moves.) A
/// paused runtime advances its clock only when idle, never during this
/// synchronous check, so a moving reading settles it.
fn runtime_clock_is_paused() -> bool {
    let before = Instant::now();
    let real = std::time::Instant::now();
    while real.elapsed() < std::time::Duration::from_micros(20) {
        std::hint::spin_loop();
    }
    Instant::now() == before
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn auto_reads_tokios_clock_when_it_is_paused_so_advancing_moves_every_reading() {
        let reader = CallReader::resolve(CallClock::Auto);
        assert!(!reader.uses_cycles());
        let epoch = Instant::now();
        let mut anchor = Anchor::default();
        assert_eq!(reader.start(&mut anchor, epoch), 0);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(reader.later(&anchor, epoch), 5_000_000_000);
    }

    #[tokio::test]
    async fn auto_reads_the_cycle_counter_when_the_clock_runs() {
        assert!(CallReader::resolve(CallClock::Auto).uses_cycles());
        assert!(!CallReader::resolve(CallClock::Runtime).uses_cycles());
    }

    /// Each counter reading lies between two readings of tokio's clock
    /// taken around it, give or take the calibration error (well under a
    /// microsecond over [`RESYNC`]; 100 µs of slack keeps the test immune
    /// to scheduling, since a preempted thread only widens the bracket).
    #[tokio::test]
    async fn counter_readings_fall_between_tokios_readings_around_them() {
        let reader = CallReader::resolve(CallClock::CycleCounter);
        let epoch = Instant::now();
        let slack = Duration::from_micros(100);
        let mut anchor = Anchor::default();
        let mut last = 0;
        for i in 0..2_000 {
            let before = Instant::now();
            let ticks = if i % 2 == 0 {
                reader.start(&mut anchor, epoch)
            } else {
                reader.later(&anchor, epoch)
            };
            let after = Instant::now();
            let at = instant_at(epoch, ticks);
            assert!(at + slack >= before && at <= after + slack, "reading {i}");
            // Within a thread the readings never go back by more than the
            // calibration error at a resynchronisation.
            assert!(ticks + 1_000 >= last, "reading {i} went back");
            last = ticks;
        }
    }
}
