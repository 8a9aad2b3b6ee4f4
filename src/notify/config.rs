//! `[notify]`: where deploy notices go, which ones each team wants, and how
//! long one notice keeps collecting events.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use crate::domain::ChannelRef;
use crate::domain::{DeployStatus, Environment};

/// A status as configured (`healthy`, `failed`, …): the canonical names
/// only, so a typo is an error at startup rather than a silent filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StatusName(pub DeployStatus);

impl TryFrom<String> for StatusName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        DeployStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .map(StatusName)
            .ok_or_else(|| {
                let all: Vec<&str> = DeployStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("`{value}` is not a deploy status ({})", all.join(", "))
            })
    }
}

/// An environment as configured (`staging`, `production`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvironmentName(pub Environment);

impl TryFrom<String> for EnvironmentName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Environment::from_word(&value.to_ascii_lowercase())
            .map(EnvironmentName)
            .ok_or_else(|| format!("`{value}` is not an environment"))
    }
}

/// What one team wants to hear about, and where (instead of its catalog
/// channel). Failures reach the team whatever `statuses` says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamRule {
    /// Empty: every environment.
    pub environments: Vec<EnvironmentName>,
    /// Empty: every status.
    pub statuses: Vec<StatusName>,
    /// Empty: the team's channels from the catalog
    /// (`slack.com/channel-id`, `discord.com/channel-id`).
    pub channels: Vec<ChannelRef>,
}

impl TeamRule {
    /// Whether a deploy in `env` that is now `status` is for this team's ears.
    pub fn wants(&self, env: Environment, status: DeployStatus) -> bool {
        if status.is_failure() {
            return true;
        }
        let env_ok = self.environments.is_empty() || self.environments.iter().any(|e| e.0 == env);
        let status_ok = self.statuses.is_empty() || self.statuses.iter().any(|s| s.0 == status);
        env_ok && status_ok
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where a deploy of a service whose team has no channel goes.
    pub default_channels: Vec<ChannelRef>,
    /// Sees every production deploy, whatever the team rules say.
    pub production_channels: Vec<ChannelRef>,
    /// The platform team: told (once a day per name) about deploys of
    /// services the catalog does not know.
    pub platform_channels: Vec<ChannelRef>,
    /// Events for one service and environment this close to the notice's
    /// first event edit that notice instead of posting a new one.
    pub coalesce_secs: u64,
    /// A deploy this soon after a Paver request for the same service and
    /// environment ran (and of its version, when both name one) is that
    /// request's: told in its thread, and its card says how it went.
    pub request_window_secs: u64,
    /// Services or teams whose deploys are not announced (failures
    /// included: a mute is a mute).
    pub mute: Vec<String>,
    /// Per team (catalog group name): which environments and statuses it
    /// hears about, and where.
    pub teams: BTreeMap<String, TeamRule>,
    /// The rule for teams without one of their own.
    pub default_rule: TeamRule,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            default_channels: Vec::new(),
            production_channels: Vec::new(),
            platform_channels: Vec::new(),
            coalesce_secs: 600,
            request_window_secs: 3_600,
            mute: Vec::new(),
            teams: BTreeMap::new(),
            default_rule: TeamRule::default(),
        }
    }
}

impl NotifyConfig {
    pub fn coalesce_window(&self) -> Duration {
        Duration::from_secs(self.coalesce_secs)
    }

    pub fn request_window(&self) -> Duration {
        Duration::from_secs(self.request_window_secs)
    }

    /// The rule for `team` (its own, else the default).
    pub fn rule(&self, team: Option<&str>) -> &TeamRule {
        team.and_then(|t| self.teams.get(t))
            .unwrap_or(&self.default_rule)
    }

    pub fn is_muted(&self, service: &str, team: Option<&str>) -> bool {
        self.mute
            .iter()
            .any(|m| m == service || Some(m.as_str()) == team)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_filter_environments_and_statuses_but_never_failures() {
        let rule: TeamRule = toml::from_str(
            "environments = [\"production\"]\nstatuses = [\"healthy\"]\nchannels = [\"slack:C1\"]",
        )
        .unwrap();
        assert!(rule.wants(Environment::Production, DeployStatus::Healthy));
        assert!(!rule.wants(Environment::Staging, DeployStatus::Healthy));
        assert!(!rule.wants(Environment::Production, DeployStatus::InProgress));
        assert!(rule.wants(Environment::Staging, DeployStatus::Failed));
        assert!(rule.wants(Environment::Dev, DeployStatus::Degraded));
        assert!(toml::from_str::<TeamRule>("statuses = [\"success\"]").is_err());
        assert!(toml::from_str::<TeamRule>("environmnets = []").is_err());
    }
}
