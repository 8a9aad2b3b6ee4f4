//! Approvers are told where they look. When a request waits for approval,
//! a copy of its card (the same card, the same buttons and ids, so a press
//! on it is a press on the request) goes to the owning team's channel
//! mentioning the eligible approvers, or to each of them directly; before
//! the approval expires, one reminder. Each is sent once per approval
//! round, however often it is attempted (retries, recovery, replicas):
//! see [`crate::storage::cards`].
//!
//! Where, by platform and setting (`approval_notices.to`):
//! - `channel` (default): one copy in the owning team's channel on the
//!   request's platform, mentioning every eligible approver. When the team
//!   has no channel there, or it is the channel the request was made in
//!   (the card is already there), no copy: the approvers are mentioned in
//!   the "approval needed" line of the request's thread instead.
//! - `dm`: one copy to each eligible approver with a chat id on the
//!   platform (on Slack the sink keeps the DM's conversation id in the
//!   copy's reference, so it can be edited). With nobody to DM, as
//!   `channel`.
//! - `both`: the two.
//! - `off`: only the thread line, as before; no copies, no reminder.
//!
//! A new round (a retried request that needs approval again) posts no
//! second copy where one is: the copy is updated in place with the card,
//! and one line under it asks again.

use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Catalog, User};
use crate::chat::messages;
use crate::chat::send::Told;
use crate::domain::{Platform, RequestState};
use crate::policy;
use crate::storage::cards::{Audience, CardCopy, Notice};
use crate::storage::{now_ms, Request, StorageError};

use super::Requests;

/// Where approvers are told that a request waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeTo {
    /// A copy in the owning team's channel, mentioning the approvers.
    #[default]
    Channel,
    /// A copy to each approver directly (Discord, console).
    Dm,
    Both,
    /// Only the line in the request's thread.
    Off,
}

/// `[approval_notices]`: how approvers are told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalNoticeConfig {
    pub to: NoticeTo,
    /// The reminder goes out this long before the approval expires (or
    /// halfway through a shorter window); 0: no reminder.
    pub remind_before_secs: u64,
}

impl Default for ApprovalNoticeConfig {
    fn default() -> Self {
        ApprovalNoticeConfig {
            to: NoticeTo::Channel,
            remind_before_secs: 15 * 60,
        }
    }
}

impl ApprovalNoticeConfig {
    /// How long before the end of an approval window of `window` the
    /// reminder is due; `None` when there is none.
    pub fn remind_lead(&self, window: Duration) -> Option<Duration> {
        if self.to == NoticeTo::Off || self.remind_before_secs == 0 {
            return None;
        }
        // A reminder 15 minutes before the end of a 10-minute window would
        // go out with the request: remind halfway instead.
        Some(Duration::from_secs(self.remind_before_secs).min(window / 2))
    }
}

/// What one round tells the approvers of a request.
#[derive(Default)]
struct Plan {
    copies: Vec<CardCopy>,
    /// Mentioned in the request's thread when there is no copy to post.
    in_thread: Vec<String>,
}

/// The user's id on `platform` (the console knows people by name).
fn chat_id(user: &User, platform: Platform) -> Option<String> {
    match platform {
        Platform::Slack => user.slack_user_id.clone(),
        Platform::Discord => user.discord_user_id.clone(),
        Platform::Console => Some(user.name.to_string()),
    }
}

/// A mention the platform pings (`<@id>`, the same on Slack, Discord and
/// the console), or the plain name of someone without a chat id there.
fn mention(user: &User, platform: Platform) -> String {
    chat_id(user, platform)
        .map(|id| format!("<@{id}>"))
        .unwrap_or_else(|| user.name.to_string())
}

/// Whether a card sent to a person directly can be edited later (every
/// platform's sink records where a DM landed).
fn dms_editable(platform: Platform) -> bool {
    matches!(
        platform,
        Platform::Slack | Platform::Discord | Platform::Console
    )
}

/// The owning team's channel on `platform` (the console has one per team,
/// named after it).
fn team_channel(catalog: &Catalog, req: &Request) -> Option<String> {
    let team = policy::owning_team(catalog, &req.action)?;
    let group = catalog.group(team.as_str())?;
    match req.platform {
        Platform::Slack => group.slack_channel.clone(),
        Platform::Discord => group.discord_channel.clone(),
        Platform::Console => Some(group.name.to_string()),
    }
}

impl Requests {
    /// The people who may approve `req` now: the members of its approver
    /// teams who pass the same check a press does (four-eyes included).
    fn eligible_approvers<'c>(&self, catalog: &'c Catalog, req: &Request) -> Vec<&'c User> {
        let approvers = req.approvers.clone().unwrap_or_default();
        approvers
            .eligible(catalog, &req.requester)
            .into_iter()
            .filter(|u| {
                policy::may_approve(
                    catalog,
                    &approvers,
                    u,
                    &req.requester,
                    &req.requester_chat_id,
                )
                .is_ok()
            })
            .filter_map(|u| catalog.user(u.as_str()))
            .collect()
    }

    fn plan(&self, req: &Request) -> Plan {
        let to = self.ctx.settings.approval_notices.to;
        if to == NoticeTo::Off {
            return Plan::default();
        }
        let catalog = self.ctx.catalog.current();
        let people = self.eligible_approvers(&catalog, req);
        if people.is_empty() {
            // Nobody to tell: the card's notes say nobody can approve.
            return Plan::default();
        }
        let platform = req.platform;
        let mentions: Vec<String> = people.iter().map(|u| mention(u, platform)).collect();
        let mut plan = Plan::default();
        if matches!(to, NoticeTo::Dm | NoticeTo::Both) && dms_editable(platform) {
            for u in &people {
                if let Some(id) = chat_id(u, platform) {
                    plan.copies.push(CardCopy {
                        card_key: format!("{}#dm:{}", req.id, u.name),
                        request_id: req.id.clone(),
                        platform,
                        // Slack opens the DM when posted to a user id;
                        // Discord's sink opens it for a channel `@<id>`.
                        channel: match platform {
                            Platform::Slack => id,
                            _ => format!("@{id}"),
                        },
                        audience: Audience::Direct,
                        mentions: vec![mention(u, platform)],
                    });
                }
            }
        }
        let in_channel = to != NoticeTo::Dm || plan.copies.is_empty();
        if in_channel {
            match team_channel(&catalog, req) {
                Some(channel) if channel != req.channel => plan.copies.push(CardCopy {
                    card_key: format!("{}#approvers", req.id),
                    request_id: req.id.clone(),
                    platform,
                    channel,
                    audience: Audience::Channel,
                    mentions,
                }),
                _ if plan.copies.is_empty() => plan.in_thread = mentions,
                _ => {}
            }
        }
        plan
    }

    /// Tells the approvers of `req`, if it awaits approval, about its
    /// current round: the "approval needed" line in its thread and the
    /// copies of its card. Safe to call again: a round is told once.
    pub(super) async fn tell_approvers(&self, req: &Request) -> Result<(), StorageError> {
        if req.state != RequestState::AwaitingApproval {
            return Ok(());
        }
        let cards = self.ctx.db.cards();
        let Some(round) = cards.approval_round(&req.id).await? else {
            return Ok(());
        };
        let plan = self.plan(req);
        let earlier = cards.copies_of(&req.id).await?;
        let mut told = vec![Told::InThread(messages::approval_needed_mentioning(
            req,
            &round.rule,
            &plan.in_thread,
        ))];
        for copy in plan.copies {
            told.push(match earlier.iter().find(|c| c.card_key == copy.card_key) {
                Some(old) => Told::UnderCopy(
                    old.clone(),
                    messages::approval_asked_again(old.audience, &old.mentions),
                ),
                None => Told::Copy(copy),
            });
        }
        self.ctx
            .send
            .tell_approvers(req, round.id, Notice::Asked, &told)
            .await?;
        Ok(())
    }

    /// Reminds the approvers of `req` once its approval expires within the
    /// configured lead, once per round: under each copy, or in its thread
    /// when it has none.
    pub(super) async fn remind_approvers(&self, req: &Request) -> Result<(), StorageError> {
        let window = self.ctx.policy.approval_expiry();
        let Some(lead) = self.ctx.settings.approval_notices.remind_lead(window) else {
            return Ok(());
        };
        let now = now_ms();
        let due = req.state == RequestState::AwaitingApproval
            && req
                .approval_expires_at
                .is_some_and(|t| t >= now && t - (lead.as_millis() as i64) <= now);
        if !due {
            return Ok(());
        }
        let cards = self.ctx.db.cards();
        let Some(round) = cards.approval_round(&req.id).await? else {
            return Ok(());
        };
        let copies = cards.copies_of(&req.id).await?;
        let told: Vec<Told> = if copies.is_empty() {
            let plan = self.plan(req);
            if plan.in_thread.is_empty() {
                return Ok(());
            }
            vec![Told::InThread(messages::approval_reminder(
                req,
                Audience::Channel,
                &plan.in_thread,
            ))]
        } else {
            copies
                .into_iter()
                .map(|c| {
                    let m = messages::approval_reminder(req, c.audience, &c.mentions);
                    Told::UnderCopy(c, m)
                })
                .collect()
        };
        self.ctx
            .send
            .tell_approvers(req, round.id, Notice::Reminded, &told)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reminder_fits_the_window() {
        let day = Duration::from_secs(24 * 3600);
        let c = ApprovalNoticeConfig::default();
        assert_eq!(c.remind_lead(day), Some(Duration::from_secs(900)));
        assert_eq!(
            c.remind_lead(Duration::from_secs(600)),
            Some(Duration::from_secs(300))
        );
        let none = ApprovalNoticeConfig {
            remind_before_secs: 0,
            ..c.clone()
        };
        assert_eq!(none.remind_lead(day), None);
        let off = ApprovalNoticeConfig {
            to: NoticeTo::Off,
            ..c
        };
        assert_eq!(off.remind_lead(day), None);
    }
}
