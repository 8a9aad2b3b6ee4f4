//! `[report]`: the weekly digest of the platform report and the window of
//! its `/metrics` series. Every key has a harmless default: no schedule,
//! no digest.

use serde::Deserialize;

use crate::domain::ChannelRef;
use crate::util::cron::{Cron, Zone};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// When the digest is posted (five-field cron, read in `zone`); none:
    /// no digest.
    pub digest_schedule: Option<Cron>,
    /// The schedule's time zone (IANA, e.g. Europe/Berlin).
    pub zone: Zone,
    /// The platform channel the digest goes to (`slack:C0…`,
    /// `discord:…`): the first is used; none: `notify.platform_channels`.
    pub channels: Vec<ChannelRef>,
    /// How many weeks the digest and the `/metrics` series cover.
    pub weeks: u32,
    /// Attach the weekly chart (a PNG) to the digest.
    pub chart: bool,
    /// How often each replica's scheduler looks whether a digest is due.
    pub tick_secs: u64,
    /// How old the report behind `/metrics` may be before a scrape
    /// rebuilds it.
    pub metrics_refresh_secs: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            digest_schedule: None,
            zone: Zone(chrono_tz::Tz::UTC),
            channels: Vec::new(),
            weeks: 4,
            chart: true,
            tick_secs: 60,
            metrics_refresh_secs: 900,
        }
    }
}

impl ReportConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.weeks == 0 || self.weeks > 52 {
            out.push("report.weeks: 1 to 52".into());
        }
        if self.tick_secs == 0 {
            out.push("report.tick_secs: must be at least 1".into());
        }
        if self.metrics_refresh_secs == 0 {
            out.push("report.metrics_refresh_secs: must be at least 1".into());
        }
        out
    }
}
