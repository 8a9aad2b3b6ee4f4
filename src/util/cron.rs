//! A cron schedule read on a time zone's clock, for config sections: the
//! scorecard nags, the office-hours agenda and the report's weekly digest
//! fire by it, once per period (the latest fire time names the period).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// A five-field cron expression (`0 16 * * Thu`), parsed at load.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Cron {
    cron: croner::Cron,
    text: String,
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::Cron::from_str(text.trim())
            .map_err(|e| format!("`{text}` is not a cron expression: {e}"))?;
        Ok(Cron {
            cron,
            text: text.trim().to_owned(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The latest time it fired at or before `now`, on `zone`'s clock.
    pub fn latest_fire(&self, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl TryFrom<String> for Cron {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Cron::parse(&value)
    }
}

impl std::fmt::Debug for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An IANA time zone, parsed at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Zone(pub Tz);

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value
            .trim()
            .parse::<Tz>()
            .map(Zone)
            .map_err(|_| format!("`{value}` is not a time zone (e.g. Europe/Berlin)"))
    }
}
