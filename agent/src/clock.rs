//! Wall-clock timestamps derived from tokio's clock.
//!
//! Everything that decides (deadlines, cooldowns, windows) uses
//! `tokio::time::Instant`, so tests on a paused clock are deterministic. The
//! wire protocol wants Unix milliseconds for labels, so they are computed
//! from one anchor taken at start-up plus tokio's elapsed time: on a paused
//! clock the labels advance exactly as the test advances time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// uses tokio's time: the cycle counter only extrapolates from a reading
/// of tokio's clock, and never further than [`RESYNC`] (a reading further
/// out reads tokio's clock again), so the two never drift apart by more
/// than the counter's calibration error over that span: 1.2 ppm measured
/// here, so 60 ns, and tens of ppm at worst, so a few microseconds.
///
/// The counter is calibrated once per process, when the first guard that
/// uses it is built (or makes its first call, when built outside a
/// runtime): about a millisecond here, at most 200 ms on a very noisy
/// machine. Build guards at start-up.
///
/// Should the counter and tokio's clock ever disagree by more than
/// [`MAX_DISAGREEMENT`] when a thread ties them again (tokio's clock paused
/// after the guard was built, or a counter whose rate changed), the
/// guard's calls read tokio's clock from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallClock {
    /// The cycle counter, unless tokio's clock is paused (a test's clock
    /// moves only when the test says so, which the counter cannot see):
    /// then tokio's clock. Decided when the guard is built inside a
    /// runtime, else at its first call. A test that pauses the clock only
    /// after building its guard should choose [`CallClock::Runtime`].
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
/// again: often enough that calibration error cannot accumulate, rarely
/// enough that the one real reading it costs is shared by every call in
/// between.
pub const RESYNC: std::time::Duration = std::time::Duration::from_millis(50);

/// How far the counter's extrapolation and tokio's clock may disagree when
/// a thread ties them again before the guard stops trusting the counter:
/// far above any calibration error over [`RESYNC`] (microseconds), far
/// below any step a paused clock takes.
pub const MAX_DISAGREEMENT: std::time::Duration = std::time::Duration::from_millis(1);

/// The clock a guard's calls read, [`CallClock`] resolved.
#[derive(Debug, Clone)]
pub(crate) struct CallReader {
    /// `None`: tokio's clock.
    cycles: Option<quanta::Clock>,
    /// Set, for every reader of the guard, once one of them found the
    /// counter and tokio's clock apart.
    distrusted: Arc<AtomicBool>,
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
            distrusted: Arc::default(),
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
    pub(crate) fn start(&mut self, anchor: &mut Anchor, epoch: Instant) -> u64 {
        let Some(clock) = &self.cycles else {
            return runtime_reading(epoch);
        };
        let raw = clock.raw();
        let elapsed = clock.delta_as_nanos(anchor.raw, raw);
        // `elapsed` is 0 when the counter reads below the anchor (a move
        // to a processor whose counter lags): tie it again then too.
        if anchor.raw == 0 || elapsed == 0 || elapsed > RESYNC.as_nanos() as u64 {
            return self.resync(anchor, epoch);
        }
        anchor.ticks + elapsed
    }

    /// Ties `anchor` to tokio's clock; stops using the counter if the two
    /// disagree (or another reader of the guard found they did).
    #[cold]
    #[inline(never)]
    fn resync(&mut self, anchor: &mut Anchor, epoch: Instant) -> u64 {
        let Some(clock) = &self.cycles else {
            return runtime_reading(epoch);
        };
        // tokio's reading between two of the counter's, retried while a
        // preemption (or a slow read) leaves the pair far apart: the tie
        // is then good to within half their distance.
        let tight = MAX_DISAGREEMENT.as_nanos() as u64 / 20;
        let (mut before, mut ticks, mut after, mut close);
        let mut tries = 0;
        loop {
            before = clock.raw();
            ticks = runtime_reading(epoch);
            after = clock.raw();
            tries += 1;
            close = clock.delta_as_nanos(before, after) <= tight;
            if close || tries == 4 {
                break;
            }
        }
        let raw = before + (after.saturating_sub(before)) / 2;
        let elapsed = clock.delta_as_nanos(anchor.raw, raw);
        // Judged only on a tie that is itself good to the microsecond.
        let apart = close
            && anchor.raw != 0
            && elapsed != 0
            && ticks.abs_diff(anchor.ticks.saturating_add(elapsed))
                > MAX_DISAGREEMENT.as_nanos() as u64;
        if apart {
            self.distrusted.store(true, Ordering::Relaxed);
        }
        if self.distrusted.load(Ordering::Relaxed) {
            self.cycles = None;
        }
        *anchor = Anchor { raw, ticks };
        ticks
    }

    /// The time later in a call, extrapolated from the anchor its start
    /// set, or tokio's clock when that is older than [`RESYNC`] (a long
    /// call, a retry after its backoff).
    #[inline]
    pub(crate) fn later(&self, anchor: &Anchor, epoch: Instant) -> u64 {
        let Some(clock) = &self.cycles else {
            return runtime_reading(epoch);
        };
        let elapsed = clock.delta_as_nanos(anchor.raw, clock.raw());
        if elapsed == 0 || elapsed > RESYNC.as_nanos() as u64 {
            return runtime_reading(epoch);
        }
        anchor.ticks + elapsed
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
        let mut reader = CallReader::resolve(CallClock::Auto);
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

    /// A clock paused after the reader was made: the counter's readings go
    /// on in real time until the thread ties them to tokio's clock again,
    /// which finds the two apart, and from then on every reader of the
    /// guard follows tokio's clock. (The real sleep is the point: real time
    /// has to pass the tie's interval while tokio's stands still.)
    #[tokio::test]
    async fn a_clock_paused_later_is_found_at_the_next_tie_and_followed_from_then_on() {
        let mut reader = CallReader::resolve(CallClock::Auto);
        let mut other = reader.clone();
        assert!(reader.uses_cycles());
        let epoch = Instant::now();
        let mut anchor = Anchor::default();
        reader.start(&mut anchor, epoch);
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(10)).await;
        std::thread::sleep(RESYNC + Duration::from_millis(10));
        let paused = Instant::now();
        let at = reader.start(&mut anchor, epoch);
        assert_eq!(instant_at(epoch, at), paused);
        assert!(!reader.uses_cycles());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            instant_at(epoch, reader.later(&anchor, epoch)),
            paused + Duration::from_secs(1)
        );
        // Another thread's reader of the same guard follows at its next tie.
        let mut theirs = Anchor::default();
        other.start(&mut theirs, epoch);
        assert!(!other.uses_cycles());
    }

    /// Each counter reading lies between two readings of tokio's clock
    /// taken around it, give or take the calibration error (well under a
    /// microsecond over [`RESYNC`]; 100 µs of slack keeps the test immune
    /// to scheduling, since a preempted thread only widens the bracket).
    #[tokio::test]
    async fn counter_readings_fall_between_tokios_readings_around_them() {
        let mut reader = CallReader::resolve(CallClock::CycleCounter);
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
