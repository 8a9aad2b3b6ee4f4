//! `[scorecards]`: the docs' links, the built-in checks' knobs, and the
//! checks a platform team adds of its own.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::schedule::{Cadence, CronSpec, QuietHours, Zone};
use crate::domain::scorecard::Weight;
use crate::domain::{ChannelRef, TeamName, UserName};

/// A weight as configured (`critical`, `high`, `medium`, `low`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WeightName(pub Weight);

impl TryFrom<String> for WeightName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Weight::parse(&value)
            .map(WeightName)
            .ok_or_else(|| format!("`{value}` is not a weight (critical, high, medium, low)"))
    }
}

/// A regular expression as configured; checked when the config loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern(pub regex::Regex);

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        regex::Regex::new(&value)
            .map(Pattern)
            .map_err(|e| format!("`{value}` is not a regular expression: {e}"))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// The catalog fields a `field` check may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogField {
    Owner,
    Lifecycle,
    System,
    Description,
    Title,
    Type,
}

/// What a configured check looks at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// The annotation exists (and matches `pattern`, when given).
    Annotation {
        key: String,
        #[serde(default)]
        pattern: Option<Pattern>,
    },
    /// A catalog field is set (and matches `pattern`).
    Field {
        field: CatalogField,
        #[serde(default)]
        pattern: Option<Pattern>,
    },
    /// A tag is present: one matching `pattern`.
    Tag { pattern: Pattern },
    /// GET `url` (`{{ service }}`, `{{ owner }}` filled in) answers
    /// `status` (default 200) and, when `pointer` is given, has `equals`
    /// (or any non-null value) at that JSON pointer.
    Http {
        url: String,
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        pointer: Option<String>,
        #[serde(default)]
        equals: Option<String>,
    },
    /// Only what CI pushes to `POST /hooks/checks`.
    Pushed,
}

/// A check of the platform team's own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomCheck {
    pub name: String,
    pub weight: WeightName,
    /// One line: what to do when it fails.
    pub help: String,
    #[serde(default)]
    pub fix_url: Option<String>,
    /// Only services whose `spec.lifecycle` is one of these (empty: all).
    #[serde(default)]
    pub lifecycles: Vec<String>,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardsConfig {
    /// The "how to fix" link of a built-in check; `{{ check }}` is its name.
    pub fix_url: String,
    /// `ci-passing` needs a CI result this recent.
    pub ci_max_age_days: u64,
    /// The GitHub workflow whose runs on the default branch are
    /// `ci-passing` (by name, any case); CI may also push the result.
    pub ci_workflow: String,
    /// `has-cost-tags` looks for this annotation.
    pub cost_center_annotation: String,
    /// `has-backups`: the least retention a database's backups may have.
    pub min_backup_retention_days: u32,
    /// Time limit of one HTTP check, in seconds.
    pub http_timeout_secs: u64,
    pub checks: Vec<CustomCheck>,
    /// `[scorecards.nags]`: the weekly digests. Present: on.
    pub nags: Option<NagsConfig>,
}

impl Default for ScorecardsConfig {
    fn default() -> Self {
        ScorecardsConfig {
            fix_url: "https://docs.example.internal/governance/scorecards/#{{ check }}".into(),
            ci_max_age_days: 30,
            ci_workflow: "CI".into(),
            cost_center_annotation: "acme.example.com/cost-center".into(),
            min_backup_retention_days: 7,
            http_timeout_secs: 5,
            checks: Vec::new(),
            nags: None,
        }
    }
}

/// `[scorecards.nags]`: when each team gets its digest, and where what
/// no team owns (and escalations) go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NagsConfig {
    /// When digests go out, read in `zone` (default: Mondays at 09:00).
    pub cron: CronSpec,
    pub zone: Zone,
    /// No digest in these hours (`22:00-07:00`); a due one waits.
    pub quiet_hours: Option<QuietHours>,
    /// Digests per team in any seven days, at most.
    pub max_per_week: u32,
    /// Where services without an owner and escalations go.
    pub platform_channels: Vec<ChannelRef>,
    /// Who is mentioned in an escalation when the team names nobody
    /// (a catalog user).
    pub manager: Option<UserName>,
    /// Digests in a row a critical check may fail before it is escalated.
    pub escalate_after: u32,
    /// How long `Snooze` hides a check, in days.
    pub snooze_days: u32,
    /// How often the scheduler looks for due digests, in seconds.
    pub tick_secs: u64,
    /// Per team: `[scorecards.nags.teams.team-commerce]`.
    pub teams: BTreeMap<TeamName, TeamNags>,
}

impl Default for NagsConfig {
    fn default() -> Self {
        NagsConfig {
            cron: CronSpec::parse("0 9 * * Mon").expect("the default cron parses"),
            zone: Zone(chrono_tz::Europe::Berlin),
            quiet_hours: None,
            max_per_week: 1,
            platform_channels: Vec::new(),
            manager: None,
            escalate_after: 3,
            snooze_days: 7,
            tick_secs: 60,
            teams: BTreeMap::new(),
        }
    }
}

/// One team's own schedule and manager; unset fields take the defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamNags {
    pub cron: Option<CronSpec>,
    pub zone: Option<Zone>,
    pub quiet_hours: Option<QuietHours>,
    pub max_per_week: Option<u32>,
    /// The team's engineering manager (a catalog user), mentioned when a
    /// critical check of theirs is escalated.
    pub manager: Option<UserName>,
    /// No digests for this team.
    pub off: bool,
}

impl NagsConfig {
    fn team(&self, team: &TeamName) -> Option<&TeamNags> {
        self.teams.get(team)
    }

    /// `team`'s schedule; `None` when its digests are off.
    pub fn cadence(&self, team: &TeamName) -> Option<Cadence> {
        let t = self.team(team);
        if t.is_some_and(|t| t.off) {
            return None;
        }
        Some(Cadence {
            cron: t
                .and_then(|t| t.cron.clone())
                .unwrap_or_else(|| self.cron.clone()),
            zone: t.and_then(|t| t.zone).unwrap_or(self.zone).0,
            quiet: t.and_then(|t| t.quiet_hours).or(self.quiet_hours),
            max_per_week: t.and_then(|t| t.max_per_week).unwrap_or(self.max_per_week),
        })
    }

    /// The schedule of a team without overrides (and of the digest of
    /// services nobody owns).
    pub fn default_cadence(&self) -> Cadence {
        Cadence {
            cron: self.cron.clone(),
            zone: self.zone.0,
            quiet: self.quiet_hours,
            max_per_week: self.max_per_week,
        }
    }

    /// Whom an escalation of `team`'s check mentions.
    pub fn manager(&self, team: &TeamName) -> Option<&UserName> {
        self.team(team)
            .and_then(|t| t.manager.as_ref())
            .or(self.manager.as_ref())
    }
}

impl ScorecardsConfig {
    /// What parses but cannot work.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let builtin = super::checks::BUILTIN;
        for (i, c) in self.checks.iter().enumerate() {
            let valid = !c.name.is_empty()
                && c.name.len() <= 60
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                out.push(format!(
                    "scorecards.checks[{i}].name: `{}` must be lowercase letters, digits and dashes",
                    c.name
                ));
            }
            if builtin.contains(&c.name.as_str()) {
                out.push(format!(
                    "scorecards.checks[{i}].name: `{}` is a built-in check",
                    c.name
                ));
            }
            if let Rule::Http { url, .. } = &c.rule {
                if let Err(e) = crate::util::template::check(
                    "scorecards.checks.url",
                    url,
                    &["service", "owner"],
                ) {
                    out.push(e.to_string());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nags_section_as_the_example_config_writes_it() {
        let text = std::fs::read_to_string("config/paver.toml").unwrap();
        let start = text.find("# [scorecards.nags]").unwrap();
        // The commented example, uncommented, under a `[scorecards]` root.
        let section: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| l.split("  #").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            .replace("[scorecards.nags", "[nags");
        let config: ScorecardsConfig = toml::from_str(&section).unwrap();
        let nags = config.nags.unwrap();
        let commerce = TeamName::parse("team-commerce").unwrap();
        let c = nags.cadence(&commerce).unwrap();
        assert_eq!(c.zone, chrono_tz::America::New_York);
        assert_eq!(c.max_per_week, 2);
        assert_eq!(nags.manager(&commerce).unwrap().as_str(), "alice");
        let other = TeamName::parse("team-data").unwrap();
        assert_eq!(nags.cadence(&other).unwrap().cron.as_str(), "0 9 * * Mon");
        assert_eq!(nags.manager(&other).unwrap().as_str(), "grace");
        assert!(toml::from_str::<ScorecardsConfig>("[nags]\nzone = \"Mars/Olympus\"").is_err());
        assert!(toml::from_str::<ScorecardsConfig>("[nags]\ncron = \"whenever\"").is_err());
    }
}
