//! When a team's digest is due: a cron expression read in the team's time
//! zone, quiet hours, and a cap per week. Everything is parsed when the
//! config loads, and "now" is always passed in, so the schedule can be
//! tested with any clock.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// The cron expression and the zone it is read in: `util::cron`'s, shared
/// with the office-hours agenda and the report digest.
pub use crate::util::cron::{Cron as CronSpec, Zone};

/// Hours in which no digest is posted, on the team's wall clock:
/// `22:00-07:00` (may span midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not quiet hours: write HH:MM-HH:MM, e.g. 22:00-07:00");
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let time = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(bad());
        }
        Ok(QuietHours { start, end })
    }

    /// Whether `t` (a wall clock time) is quiet; the end is not.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let t = t.with_nanosecond(0).unwrap_or(t);
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl TryFrom<String> for QuietHours {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        QuietHours::parse(&value)
    }
}

/// One team's schedule, resolved from the defaults and its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Cadence {
    pub cron: CronSpec,
    pub zone: Tz,
    pub quiet: Option<QuietHours>,
    /// Digests per seven days, at most.
    pub max_per_week: u32,
}

/// Whether a digest is due now, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// This period's digest went out already (or the cron never fired).
    NotYet,
    /// Due, but the team's quiet hours hold it until they end.
    Quiet,
    /// Due, but the team had its digests for this week.
    Capped,
    /// Due: the period is the cron's latest fire time.
    Now { period: DateTime<Utc> },
}

pub const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

impl Cadence {
    /// `last_period`: the period of the team's latest digest (Unix ms);
    /// `sent_last_week`: its digests in the seven days before `now`.
    pub fn due(&self, now: DateTime<Utc>, last_period: Option<i64>, sent_last_week: u32) -> Due {
        let Some(period) = self.cron.latest_fire(self.zone, now) else {
            return Due::NotYet;
        };
        if last_period.is_some_and(|last| last >= period.timestamp_millis()) {
            return Due::NotYet;
        }
        if self
            .quiet
            .is_some_and(|q| q.contains(now.with_timezone(&self.zone).time()))
        {
            return Due::Quiet;
        }
        if sent_last_week >= self.max_per_week {
            return Due::Capped;
        }
        Due::Now { period }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cadence(cron: &str, zone: &str, quiet: Option<&str>, cap: u32) -> Cadence {
        Cadence {
            cron: CronSpec::parse(cron).unwrap(),
            zone: zone.parse().unwrap(),
            quiet: quiet.map(|q| QuietHours::parse(q).unwrap()),
            max_per_week: cap,
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn monday_nine_in_berlin_is_due_from_then_until_the_digest_goes() {
        let c = cadence("0 9 * * Mon", "Europe/Berlin", None, 1);
        // Monday 30 Nov 2026, 09:00 in Berlin (CET) is 08:00 UTC.
        let fire = utc(2026, 11, 30, 8, 0);
        // Before it: last week's Monday is the latest fire, already sent.
        let last_week = utc(2026, 11, 23, 8, 0).timestamp_millis();
        assert_eq!(
            c.due(utc(2026, 11, 30, 7, 59), Some(last_week), 0),
            Due::NotYet
        );
        assert_eq!(
            c.due(utc(2026, 11, 30, 8, 0), Some(last_week), 0),
            Due::Now { period: fire }
        );
        assert_eq!(
            c.due(utc(2026, 12, 2, 15, 0), Some(last_week), 0),
            Due::Now { period: fire }
        );
        // Sent: not again this period.
        assert_eq!(
            c.due(utc(2026, 11, 30, 8, 1), Some(fire.timestamp_millis()), 1),
            Due::NotYet
        );
        // Summer time: 09:00 CEST is 07:00 UTC.
        assert_eq!(
            c.due(utc(2026, 6, 1, 7, 0), None, 0),
            Due::Now {
                period: utc(2026, 6, 1, 7, 0)
            }
        );
        // Another zone, another instant: 09:00 in New York is 14:00 UTC.
        let ny = cadence("0 9 * * Mon", "America/New_York", None, 1);
        let ny_last_week = utc(2026, 11, 23, 14, 0).timestamp_millis();
        assert_eq!(
            ny.due(utc(2026, 11, 30, 8, 0), Some(ny_last_week), 0),
            Due::NotYet
        );
        assert_eq!(
            ny.due(utc(2026, 11, 30, 14, 0), Some(ny_last_week), 0),
            Due::Now {
                period: utc(2026, 11, 30, 14, 0)
            }
        );
    }

    #[test]
    fn quiet_hours_hold_a_digest_until_they_end_and_the_cap_holds_it_for_the_week() {
        // Daily at 23:00 with quiet hours 22:00-07:00: held until 07:00.
        let c = cadence("0 23 * * *", "Europe/Berlin", Some("22:00-07:00"), 3);
        assert_eq!(c.due(utc(2026, 11, 30, 22, 0), None, 0), Due::Quiet);
        assert_eq!(c.due(utc(2026, 12, 1, 5, 59), None, 0), Due::Quiet);
        assert_eq!(
            c.due(utc(2026, 12, 1, 6, 0), None, 0),
            Due::Now {
                period: utc(2026, 11, 30, 22, 0)
            }
        );
        // Three this week already: capped.
        assert_eq!(c.due(utc(2026, 12, 1, 6, 0), None, 3), Due::Capped);
        // Quiet hours within a day.
        let q = QuietHours::parse("12:00-13:30").unwrap();
        assert!(q.contains(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
        assert!(!q.contains(NaiveTime::from_hms_opt(13, 30, 0).unwrap()));
    }

    #[test]
    fn bad_schedules_are_refused_at_load() {
        assert!(CronSpec::parse("every monday").is_err());
        assert!(CronSpec::parse("0 9 * * Mon").is_ok());
        assert!(Zone::try_from("Mars/Olympus".to_owned()).is_err());
        assert!(QuietHours::parse("22-07").is_err());
        assert!(QuietHours::parse("07:00-07:00").is_err());
        assert!(QuietHours::parse("25:00-07:00").is_err());
    }
}
