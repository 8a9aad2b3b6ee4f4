//! The report's figures as types: a rate keeps its numerator and
//! denominator and a percentile its sample count, so "n/a" is said when
//! there is nothing to measure instead of a 0 that looks like a result.

use serde::Serialize;

/// `num` of `den`: a share (clarified requests of all requests, failed
/// deploys of all deploys). `None` as a ratio when `den` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rate {
    pub num: u64,
    pub den: u64,
}

impl Rate {
    pub fn new(num: u64, den: u64) -> Self {
        Rate { num, den }
    }

    pub fn ratio(self) -> Option<f64> {
        (self.den > 0).then(|| self.num as f64 / self.den as f64)
    }

    /// "12.5% (3/24)", or "n/a (0/0)".
    pub fn display(self) -> String {
        match self.ratio() {
            Some(r) => format!("{:.1}% ({}/{})", r * 100.0, self.num, self.den),
            None => "n/a (0/0)".into(),
        }
    }
}

/// The median and 90th percentile of durations (milliseconds), by nearest
/// rank: the value at rank ⌈p·n⌉ of the sorted sample. Both `None` when
/// the sample is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    /// How many durations were measured.
    pub n: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

impl Percentiles {
    pub fn of(mut sample: Vec<i64>) -> Self {
        sample.sort_unstable();
        Percentiles {
            n: sample.len() as u64,
            p50_ms: nearest_rank(&sample, 50),
            p90_ms: nearest_rank(&sample, 90),
        }
    }

    /// "p50 4m 10s · p90 1h 2m (n=37)", or "n/a (n=0)".
    pub fn display(self) -> String {
        match (self.p50_ms, self.p90_ms) {
            (Some(a), Some(b)) => {
                format!("p50 {} · p90 {} (n={})", duration(a), duration(b), self.n)
            }
            _ => "n/a (n=0)".into(),
        }
    }
}

/// The value at rank ⌈pct/100 · n⌉ (1-based) of a sorted sample.
pub fn nearest_rank(sorted: &[i64], pct: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(pct) * n).div_ceil(100).max(1);
    sorted.get((rank - 1) as usize).copied()
}

/// A duration for people: "0.4s", "45s", "4m 10s", "3h 5m", "2d 4h".
pub fn duration(ms: i64) -> String {
    // Under a second (a request confirmed in the console) is not "0s".
    if ms < 1000 {
        return format!("{:.1}s", ms.max(0) as f64 / 1000.0);
    }
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

pub const DAY_MS: i64 = 86_400_000;
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// The Monday 00:00 UTC that starts the week of `ms` (Unix ms).
pub fn week_of(ms: i64) -> i64 {
    let day = ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
    (day - (day + 3).rem_euclid(7)) * DAY_MS
}

/// "2026-11-23", the day `ms` falls on (UTC).
pub fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_documented_element() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(nearest_rank(&eleven, 50), Some(6));
        assert_eq!(nearest_rank(&eleven, 90), Some(10));
        let p = Percentiles::of(vec![30, 10, 20]);
        assert_eq!((p.n, p.p50_ms, p.p90_ms), (3, Some(20), Some(30)));
    }

    #[test]
    fn rates_say_na_without_a_denominator() {
        assert_eq!(Rate::new(0, 0).ratio(), None);
        assert_eq!(Rate::new(0, 0).display(), "n/a (0/0)");
        assert_eq!(Rate::new(3, 24).display(), "12.5% (3/24)");
        assert_eq!(Percentiles::of(vec![]).display(), "n/a (n=0)");
    }

    #[test]
    fn weeks_start_on_monday_utc() {
        // 2026-11-26 is a Thursday; its week starts Monday 2026-11-23.
        let thu = chrono::DateTime::parse_from_rfc3339("2026-11-26T15:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(date(week_of(thu)), "2026-11-23");
        assert_eq!(week_of(week_of(thu)), week_of(thu));
        assert_eq!(duration(250_000), "4m 10s");
        assert_eq!(duration(420), "0.4s");
        assert_eq!(duration(0), "0.0s");
        assert_eq!(duration(3 * 3_600_000 + 300_000), "3h 5m");
    }
}
