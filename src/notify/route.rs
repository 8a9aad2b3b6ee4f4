//! Where a deploy notice goes: the owning team's channels (its catalog
//! channels, or its rule's), a default when the team has none, the
//! production channels for every production deploy, and the thread of the
//! Paver request it carries out. Rules choose which environments and
//! statuses a team hears about; a failure always reaches it.

use super::config::{ChannelRef, NotifyConfig};
use super::resolve::Target;
use crate::catalog::Catalog;
use crate::domain::{DeployStatus, Environment, Platform};
use crate::storage::deploys::NoticeCard;
use crate::storage::Request;

/// One place to post: a channel, and the request card to post under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub channel: ChannelRef,
    pub thread_of: Option<String>,
}

/// Where a deploy of `target` that is now `status` should be seen, on the
/// platforms Paver can send to. A channel appears once; the request's
/// thread replaces a post in the same channel (the team reads it there).
pub fn destinations(
    config: &NotifyConfig,
    catalog: &Catalog,
    target: &Target,
    status: DeployStatus,
    request: Option<&Request>,
    platforms: &[Platform],
) -> Vec<Destination> {
    let team = target.owner.as_ref().map(|t| t.as_str());
    let muted = config.is_muted(target.service.as_str(), team) && !status.is_failure();
    let mut out: Vec<Destination> = Vec::new();
    let mut add = |channel: ChannelRef, thread_of: Option<String>| {
        if !platforms.contains(&channel.platform) {
            return;
        }
        match out.iter_mut().find(|d| d.channel == channel) {
            Some(existing) => {
                if existing.thread_of.is_none() {
                    existing.thread_of = thread_of;
                }
            }
            None => out.push(Destination { channel, thread_of }),
        }
    };
    if muted {
        return Vec::new();
    }
    // The request's thread first: a team channel that is also the
    // request's channel becomes that thread.
    if let Some(r) = request {
        add(
            ChannelRef {
                platform: r.platform,
                channel: r.channel.clone(),
            },
            Some(r.id.clone()),
        );
    }
    let rule = config.rule(team);
    if rule.wants(target.environment, status) {
        let mut team_channels = rule.channels.clone();
        if team_channels.is_empty() {
            team_channels = team
                .and_then(|t| catalog.group(t))
                .map(|g| {
                    let slack = g.slack_channel.iter().map(|c| (Platform::Slack, c));
                    let discord = g.discord_channel.iter().map(|c| (Platform::Discord, c));
                    slack
                        .chain(discord)
                        .filter_map(|(p, c)| ChannelRef::parse(&format!("{}:{c}", p.as_str())).ok())
                        .collect()
                })
                .unwrap_or_default();
        }
        // Only channels Paver can post to count: a team with a Discord
        // channel alone, on a Slack-only Paver, gets the default.
        team_channels.retain(|c| platforms.contains(&c.platform));
        if team_channels.is_empty() {
            team_channels = config.default_channels.clone();
        }
        for c in team_channels {
            add(c, None);
        }
    }
    if target.environment == Environment::Production {
        for c in &config.production_channels {
            add(c.clone(), None);
        }
    }
    out
}

/// The notice cards for the destinations not yet posted to (a notice
/// posted to a channel stays there; a later failure may add a team).
pub fn missing(wanted: &[Destination], posted: &[NoticeCard], notice_id: &str) -> Vec<NoticeCard> {
    wanted
        .iter()
        .filter(|d| {
            !posted
                .iter()
                .any(|c| c.platform == d.channel.platform && c.channel == d.channel.channel)
        })
        .map(|d| NoticeCard {
            card_key: format!(
                "{}{notice_id}:{}:{}",
                crate::chat::deploys::NOTICE_KEY_PREFIX,
                d.channel.platform.as_str(),
                d.channel.channel
            ),
            platform: d.channel.platform,
            channel: d.channel.channel.clone(),
            thread_key: d.thread_of.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ServiceName, TeamName};

    const CATALOG: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-payments
  annotations:
    slack.com/channel-id: C0PAYMENTS
    discord.com/channel-id: "1200"
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-quiet
spec: { type: team, children: [] }
"#;

    fn target(team: &str, env: Environment) -> Target {
        Target {
            service: ServiceName::parse("billing-api").unwrap(),
            owner: Some(TeamName::parse(team).unwrap()),
            environment: env,
        }
    }

    fn channels(d: &[Destination]) -> Vec<String> {
        d.iter()
            .map(|d| match &d.thread_of {
                Some(t) => format!("{} (thread {t})", d.channel),
                None => d.channel.to_string(),
            })
            .collect()
    }

    #[test]
    fn teams_defaults_production_and_rules() {
        let catalog = Catalog::from_yaml_str(CATALOG, "test");
        let config: NotifyConfig = toml::from_str(
            r#"
default_channels = ["slack:C0DEFAULT"]
production_channels = ["slack:C0DEPLOYS"]
mute = ["noisy-service"]
[teams.team-payments]
environments = ["production"]
"#,
        )
        .unwrap();
        let slack = [Platform::Slack];
        let both = [Platform::Slack, Platform::Discord];
        let prod = target("team-payments", Environment::Production);
        let d = destinations(&config, &catalog, &prod, DeployStatus::Healthy, None, &both);
        assert_eq!(
            channels(&d),
            ["slack:C0PAYMENTS", "discord:1200", "slack:C0DEPLOYS"]
        );
        // The team hears only of production; failures always.
        let staging = target("team-payments", Environment::Staging);
        assert!(destinations(
            &config,
            &catalog,
            &staging,
            DeployStatus::Healthy,
            None,
            &slack
        )
        .is_empty());
        let d = destinations(
            &config,
            &catalog,
            &staging,
            DeployStatus::Failed,
            None,
            &slack,
        );
        assert_eq!(channels(&d), ["slack:C0PAYMENTS"]);
        // No channel of its own: the default.
        let quiet = target("team-quiet", Environment::Staging);
        let d = destinations(
            &config,
            &catalog,
            &quiet,
            DeployStatus::Healthy,
            None,
            &slack,
        );
        assert_eq!(channels(&d), ["slack:C0DEFAULT"]);
        // Muted: nothing but failures.
        let mut noisy = quiet.clone();
        noisy.service = ServiceName::parse("noisy-service").unwrap();
        assert!(destinations(
            &config,
            &catalog,
            &noisy,
            DeployStatus::Healthy,
            None,
            &slack
        )
        .is_empty());
        assert_eq!(
            destinations(
                &config,
                &catalog,
                &noisy,
                DeployStatus::Degraded,
                None,
                &slack
            )
            .len(),
            1
        );
        // Cards: one per channel, keyed by notice and channel.
        let d = destinations(
            &config,
            &catalog,
            &prod,
            DeployStatus::Healthy,
            None,
            &slack,
        );
        let cards = missing(&d, &[], "d-1");
        assert_eq!(cards[0].card_key, "deploy:d-1:slack:C0PAYMENTS");
        assert_eq!(missing(&d, &cards, "d-1"), []);
    }
}
