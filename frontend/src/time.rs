//! Timestamps as the API sends them (milliseconds since the Unix epoch), shown
//! in UTC. One zone for everyone: an incident timeline compared across
//! teams, logs and the command line should not depend on the reader's clock.

/// A UTC date and time to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Utc {
    pub fn from_millis(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // `of_day` is in 0..86_400, so these fit.
        let of_day = of_day as u32;
        Utc {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day % 3600 / 60,
            second: of_day % 60,
        }
    }

    /// For people: `2023-11-14 22:13:20 UTC`.
    pub fn display(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// For `<time datetime>`: `2023-11-14T22:13:20Z`.
    pub fn iso(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// A span of time for people, in its two largest units: `45 s`, `12 min`,
/// `3 h 5 min`, `2 d 4 h`. A negative span (clocks that disagree) is `0 s`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01, after
/// Howard Hinnant's `civil_from_days`: exact for any `i64` day a timestamp in
/// milliseconds can reach, with no table and no dependency.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153; // March-based month
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(ms: i64) -> String {
        Utc::from_millis(ms).display()
    }

    #[test]
    fn known_instants() {
        assert_eq!(show(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(show(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(
            Utc::from_millis(1_700_000_000_999).iso(),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn leap_days_and_century_rules() {
        // 2000 is a leap year (divisible by 400), 2100 is not.
        assert_eq!(show(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(show(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
        assert_eq!(show(4_107_542_400_000), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn ages_read_in_their_two_largest_units() {
        assert_eq!(age(-5_000), "0 s");
        assert_eq!(age(45_999), "45 s");
        assert_eq!(age(12 * 60_000 + 30_000), "12 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(age(2 * 86_400_000 + 4 * 3_600_000 + 59_000), "2 d 4 h");
        assert_eq!(age(86_400_000 + 60_000), "1 d");
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        assert_eq!(show(-86_400_000), "1969-12-31 00:00:00 UTC");
        assert_eq!(show(-1), "1969-12-31 23:59:59 UTC");
    }
}
