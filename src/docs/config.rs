//! `[docs]`: the folders of Markdown that office hours answers from, and
//! `[docs.office_hours]`: where questions go to humans.

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::ChannelRef;

/// The names a source's `url_template` may use.
pub const URL_NAMES: &[&str] = &["path", "anchor"];

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocsConfig {
    /// Docs roots in the MkDocs/TechDocs layout (`mkdocs.yml`, `docs/`).
    pub sources: Vec<DocsSource>,
    /// Humans in the loop: handoffs, the on-call page, the agenda.
    pub office_hours: OfficeHoursConfig,
}

/// `[docs.office_hours]`. Every key has a working default: handoffs go to
/// the catalog's platform team's channel, nobody is paged, no agenda.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeHoursConfig {
    /// The catalog group whose channel questions are handed to.
    pub team: String,
    /// Channels to hand questions to instead of the team's (`slack:C0…`,
    /// `discord:…`): the one on the asker's platform, else the first.
    pub channels: Vec<ChannelRef>,
    /// A URL POSTed a JSON page when someone presses "Ask a human".
    pub oncall_webhook: Option<url::Url>,
    /// Sent to the webhook as `Authorization: Bearer …`: a secret, from
    /// PAVER_DOCS__OFFICE_HOURS__ONCALL_TOKEN or `oncall_token_file`.
    pub oncall_token: Option<SecretString>,
    pub oncall_token_file: Option<PathBuf>,
    /// How long the page may take.
    pub oncall_timeout_secs: u64,
    /// When the agenda of tagged questions is posted (five-field cron,
    /// read in `zone`); none: no agenda.
    pub agenda_schedule: Option<AgendaCron>,
    /// The agenda's time zone (IANA, e.g. Europe/Berlin).
    pub zone: AgendaZone,
    /// How often each replica's scheduler looks whether an agenda is due.
    pub tick_secs: u64,
}

impl Default for OfficeHoursConfig {
    fn default() -> Self {
        OfficeHoursConfig {
            team: "team-platform".into(),
            channels: Vec::new(),
            oncall_webhook: None,
            oncall_token: None,
            oncall_token_file: None,
            oncall_timeout_secs: 10,
            agenda_schedule: None,
            zone: AgendaZone(Tz::UTC),
            tick_secs: 60,
        }
    }
}

impl std::fmt::Debug for OfficeHoursConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log.
        f.debug_struct("OfficeHoursConfig")
            .field("team", &self.team)
            .field("channels", &self.channels)
            .field(
                "oncall_webhook",
                &self
                    .oncall_webhook
                    .as_ref()
                    .map(|u| crate::util::redact_url(u.as_str())),
            )
            .field("oncall_token", &self.oncall_token.as_ref().map(|_| "***"))
            .field("agenda_schedule", &self.agenda_schedule)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OfficeHoursConfig {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        let token = |c: &Self| {
            c.oncall_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
        };
        self.team == other.team
            && self.channels == other.channels
            && self.oncall_webhook == other.oncall_webhook
            && token(self) == token(other)
            && self.oncall_token_file == other.oncall_token_file
            && self.oncall_timeout_secs == other.oncall_timeout_secs
            && self.agenda_schedule == other.agenda_schedule
            && self.zone == other.zone
            && self.tick_secs == other.tick_secs
    }
}

impl OfficeHoursConfig {
    /// Fills `oncall_token` from `oncall_token_file` when the environment
    /// did not set it (the config loader calls it with the other secrets).
    pub fn read_secret_file(&mut self) -> std::io::Result<()> {
        if self.oncall_token.is_none() {
            if let Some(path) = &self.oncall_token_file {
                let raw = std::fs::read_to_string(path)?;
                self.oncall_token = Some(SecretString::from(raw.trim().to_owned()));
            }
        }
        Ok(())
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if crate::domain::TeamName::parse(self.team.clone()).is_err() {
            out.push(format!(
                "docs.office_hours.team: `{}` is not a catalog group name",
                self.team
            ));
        }
        if let Some(u) = &self.oncall_webhook {
            if !matches!(u.scheme(), "http" | "https") {
                out.push(format!(
                    "docs.office_hours.oncall_webhook: `{}` is not an http(s) URL",
                    crate::util::redact_url(u.as_str())
                ));
            }
        }
        if self.oncall_token.is_some() && self.oncall_webhook.is_none() {
            out.push(
                "docs.office_hours.oncall_token: set, but there is no oncall_webhook to send it to"
                    .into(),
            );
        }
        if self.oncall_timeout_secs == 0 {
            out.push("docs.office_hours.oncall_timeout_secs: must be at least 1".into());
        }
        if self.tick_secs == 0 {
            out.push("docs.office_hours.tick_secs: must be at least 1".into());
        }
        out
    }
}

/// A five-field cron expression (`0 16 * * Thu`), parsed at load. Its own
/// small type rather than the scorecards': a flow may not import another.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct AgendaCron {
    cron: croner::Cron,
    text: String,
}

impl AgendaCron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::Cron::from_str(text.trim())
            .map_err(|e| format!("`{text}` is not a cron expression: {e}"))?;
        Ok(AgendaCron {
            cron,
            text: text.trim().to_owned(),
        })
    }

    /// The latest time it fired at or before `now`, on `zone`'s clock.
    pub fn latest_fire(&self, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl TryFrom<String> for AgendaCron {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        AgendaCron::parse(&value)
    }
}

impl std::fmt::Debug for AgendaCron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgendaCron({:?})", self.text)
    }
}

impl PartialEq for AgendaCron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An IANA time zone, parsed at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AgendaZone(pub Tz);

impl TryFrom<String> for AgendaZone {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value
            .trim()
            .parse::<Tz>()
            .map(AgendaZone)
            .map_err(|_| format!("`{value}` is not a time zone (e.g. Europe/Berlin)"))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocsSource {
    /// The root: the folder holding `mkdocs.yml` (relative paths are read
    /// from the working directory, as `catalog.file` is).
    pub dir: PathBuf,
    /// A section's link. `{{ path }}` is the page's MkDocs URL
    /// (`databases/postgres/`), `{{ anchor }}` the heading's id.
    #[serde(default = "default_url_template")]
    pub url_template: String,
}

fn default_url_template() -> String {
    // Without a site to point at, the page's path still tells where to look.
    "{{ path }}#{{ anchor }}".into()
}

impl DocsSource {
    /// A source at `dir` with the default link template.
    pub fn at(dir: impl Into<PathBuf>) -> DocsSource {
        DocsSource {
            dir: dir.into(),
            url_template: default_url_template(),
        }
    }
}

impl DocsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if let Err(e) = crate::util::template::check("url_template", &s.url_template, URL_NAMES)
            {
                out.push(format!("docs.sources[{i}].url_template: {e}"));
            }
            if !s.dir.is_dir() {
                out.push(format!(
                    "docs.sources[{i}].dir: {} is not a folder",
                    s.dir.display()
                ));
            }
        }
        out.extend(self.office_hours.problems());
        out
    }
}
