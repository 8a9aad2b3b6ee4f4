//! Nags: each owning team's digest of failing checks, on its schedule,
//! exactly once per period across replicas; the buttons on each line
//! (snooze, won't fix, re-check); and escalation of a critical check that
//! keeps failing.
//!
//! Exactly once: a digest is recorded (unique per team and period) in the
//! transaction that queues its messages, so of two schedulers racing one
//! records it and the other finds it recorded; the outbox then retries a
//! send that failed, and nothing else sends it again. A lease keeps the
//! other replicas from even evaluating while one scheduler works.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::config::NagsConfig;
use super::schedule::{Due, WEEK_MS};
use super::{ScorecardError, Scorecards};
use crate::catalog::Catalog;
use crate::chat::scorecards::{self as say, LineStatus};
use crate::chat::{console, ButtonOp, ButtonPayload, ChatUser, Conversation, Message};
use crate::domain::scorecard::ServiceScore;
use crate::domain::{ChannelRef, Platform, TeamName};
use crate::storage::nags::{
    new_token, DigestBody, DigestEntry, DigestRow, Mark, MarkKind, NagItem, NewDigest, UNOWNED,
};
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::{now_ms, Db, StorageError};
use crate::util::scheduler::{Lease, Scheduler, Timing};

const LEASE: &str = "nags";
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What became of one team's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded and queued (or, dry, what would be).
    Sent,
    /// Another scheduler (or an earlier run) recorded this period's.
    AlreadySent,
    /// Nothing fails (after snoozes and won't fix): no digest.
    AllPassing,
    /// The team has no channel Paver can post in.
    NoChannel,
    /// Not due by its schedule.
    NotDue(Due),
}

/// One team's digest, as a run saw it.
#[derive(Debug, Clone)]
pub struct DigestRun {
    /// `None`: the services nobody owns.
    pub team: Option<TeamName>,
    pub outcome: Outcome,
    /// The digest and its lines as console text (what was, or would be, sent).
    pub preview: Option<String>,
}

/// How `run` picks digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The scheduler: only due digests, quiet hours and the cap respected.
    Scheduled,
    /// `paver nags run-once`: this period's digest now, whatever the hour.
    Now,
    /// As `Now`, recording and sending nothing.
    Dry,
}

fn key_of(team: Option<&TeamName>) -> String {
    team.map(|t| t.to_string())
        .unwrap_or_else(|| UNOWNED.to_owned())
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn body(message: &Message) -> String {
    serde_json::to_string(message).expect("messages serialize")
}

fn post(
    channel: &ChannelRef,
    card_key: Option<String>,
    thread_key: Option<String>,
    m: &Message,
) -> OutboxItem {
    OutboxItem {
        platform: channel.platform,
        channel: channel.channel.clone(),
        kind: OutboxKind::Post,
        user_id: None,
        card_key,
        thread_key,
        thread_ref: None,
        body: body(m),
    }
}

fn line_key(item: &str) -> String {
    format!("nag:{item}")
}

impl Scorecards {
    fn nags(&self) -> Option<&NagsConfig> {
        self.inner.config.nags.as_ref()
    }

    /// Every audience with services: each owning team, and (as `None`)
    /// the services nobody owns.
    fn audiences(catalog: &Catalog) -> BTreeSet<Option<TeamName>> {
        catalog.components().map(|c| c.owner.clone()).collect()
    }

    /// Where `team`'s digest goes: its Slack channel from the catalog, else
    /// its Discord one; what nobody owns goes to the first platform channel.
    fn destination(&self, catalog: &Catalog, team: Option<&TeamName>) -> Option<ChannelRef> {
        match team {
            Some(t) => {
                let g = catalog.group(t.as_str())?;
                g.slack_channel
                    .as_ref()
                    .map(|c| ChannelRef {
                        platform: Platform::Slack,
                        channel: c.clone(),
                    })
                    .or_else(|| {
                        g.discord_channel.as_ref().map(|c| ChannelRef {
                            platform: Platform::Discord,
                            channel: c.clone(),
                        })
                    })
            }
            None => self.nags()?.platform_channels.first().cloned(),
        }
    }

    /// Evaluates digests at `now`: every team (or only `only`), as `mode`
    /// says. The scheduler runs it under its lease; the CLI directly.
    pub async fn run_nags(
        &self,
        now: DateTime<Utc>,
        only: Option<&TeamName>,
        mode: Mode,
    ) -> Result<Vec<DigestRun>, ScorecardError> {
        let Some(nags) = self.nags().cloned() else {
            return Ok(Vec::new());
        };
        let catalog = self.inner.catalog.current();
        let mut out = Vec::new();
        for team in Self::audiences(&catalog) {
            if only.is_some_and(|o| team.as_ref() != Some(o)) {
                continue;
            }
            let cadence = match &team {
                Some(t) => match nags.cadence(t) {
                    Some(c) => c,
                    None => continue,
                },
                None => nags.default_cadence(),
            };
            let key = key_of(team.as_ref());
            let store = self.inner.db.nags();
            let last = store.recent(&key, 1).await?.first().map(|d| d.period);
            let period = match mode {
                Mode::Scheduled => {
                    let sent = store
                        .sent_since(&key, now.timestamp_millis() - WEEK_MS + 1)
                        .await?;
                    match cadence.due(now, last, sent.try_into().unwrap_or(u32::MAX)) {
                        Due::Now { period } => period,
                        other => {
                            out.push(DigestRun {
                                team,
                                outcome: Outcome::NotDue(other),
                                preview: None,
                            });
                            continue;
                        }
                    }
                }
                Mode::Now | Mode::Dry => cadence.cron.latest_fire(cadence.zone, now).unwrap_or(now),
            };
            let run = self
                .digest_for(&catalog, &nags, team, period, now, mode == Mode::Dry)
                .await?;
            out.push(run);
        }
        Ok(out)
    }

    async fn scores_of(
        &self,
        team: Option<&TeamName>,
    ) -> Result<Vec<ServiceScore>, ScorecardError> {
        match team {
            Some(t) => self.team(t).await,
            None => self.matching(|c| c.owner.is_none()).await,
        }
    }

    async fn digest_for(
        &self,
        catalog: &Catalog,
        nags: &NagsConfig,
        team: Option<TeamName>,
        period: DateTime<Utc>,
        now: DateTime<Utc>,
        dry: bool,
    ) -> Result<DigestRun, ScorecardError> {
        let key = key_of(team.as_ref());
        let store = self.inner.db.nags();
        let now_ms = now.timestamp_millis();
        let marks: HashMap<(String, String), Mark> = store
            .marks()
            .await?
            .into_iter()
            .map(|m| ((m.service.clone(), m.check.clone()), m))
            .collect();
        let mut scores = self.scores_of(team.as_ref()).await?;
        scores.sort_by(|a, b| {
            a.level
                .cmp(&b.level)
                .then_with(|| a.service.cmp(&b.service))
        });
        let mut body = DigestBody::default();
        let mut failing_now = BTreeSet::new();
        let mut items = Vec::new();
        for s in &scores {
            for c in s.failing() {
                let k = (s.service.to_string(), c.name.clone());
                failing_now.insert(format!("{}/{}", k.0, k.1));
                let mark = marks.get(&k);
                if let Some(Mark {
                    kind: MarkKind::Snoozed { until },
                    ..
                }) = mark
                {
                    if *until > now_ms {
                        body.snoozed += 1;
                        continue;
                    }
                }
                let wont_fix = match mark {
                    Some(Mark {
                        kind: MarkKind::WontFix { reason },
                        by,
                        ..
                    }) => Some((reason.clone(), by.clone())),
                    _ => None,
                };
                let item = wont_fix.is_none().then(|| format!("n-{}", new_token()));
                if let Some(id) = &item {
                    items.push(NagItem {
                        id: id.clone(),
                        nonce: new_token(),
                        digest_id: 0,
                        service: k.0.clone(),
                        check: k.1.clone(),
                        state: "open".into(),
                        note: None,
                        at: now_ms,
                    });
                }
                body.entries.push(DigestEntry {
                    service: k.0,
                    check: k.1,
                    weight: c.weight.as_str().to_owned(),
                    line: say::failing_line(c),
                    level: s
                        .level
                        .map(|l| l.title().to_owned())
                        .unwrap_or_else(|| "below Bronze".into()),
                    item,
                    wont_fix,
                });
            }
        }
        let run = |outcome, preview| DigestRun {
            team: team.clone(),
            outcome,
            preview,
        };
        if body.entries.iter().all(|e| e.wont_fix.is_some()) {
            return Ok(run(Outcome::AllPassing, None));
        }
        let streak_len = nags.escalate_after.max(1) as i64;
        let previous = store.recent(&key, streak_len).await?;
        match previous.first() {
            None => body.first = true,
            Some(prev) => {
                let before: BTreeSet<String> = prev.body.entries.iter().map(|e| e.key()).collect();
                body.newly_failing = body
                    .entries
                    .iter()
                    .map(|e| e.key())
                    .filter(|k| !before.contains(k))
                    .collect();
                body.fixed = before
                    .into_iter()
                    .filter(|k| !failing_now.contains(k))
                    .collect();
            }
        }
        // A critical check escalates on the digest that makes its streak
        // `escalate_after` long: once per streak, since each digest is
        // recorded once.
        let mut escalated = Vec::new();
        for e in body
            .entries
            .iter()
            .filter(|e| e.weight == "critical" && e.wont_fix.is_none())
        {
            let k = e.key();
            let streak = 1 + previous
                .iter()
                .take_while(|d| {
                    d.body
                        .entries
                        .iter()
                        .any(|p| p.key() == k && p.wont_fix.is_none())
                })
                .count() as i64;
            if streak == streak_len {
                escalated.push(e.clone());
            }
        }
        let audience = say::digest_audience(team.as_ref());
        let open = |_: &DigestEntry| LineStatus::Open;
        let digest = say::digest(&audience, &body, &open);
        let nonces: HashMap<&str, &str> = items
            .iter()
            .map(|i| (i.id.as_str(), i.nonce.as_str()))
            .collect();
        let lines: Vec<(String, Message)> = body
            .entries
            .iter()
            .filter_map(|e| {
                let id = e.item.as_deref()?;
                Some((
                    id.to_owned(),
                    say::digest_line(e, nonces[id], &LineStatus::Open),
                ))
            })
            .collect();
        let manager = team
            .as_ref()
            .and_then(|t| nags.manager(t))
            .and_then(|u| catalog.user(u.as_str()));
        let audience_ref = audience.as_str();
        let escalated_ref = &escalated;
        let escalations: Vec<(ChannelRef, Message)> = nags
            .platform_channels
            .iter()
            .flat_map(|ch| {
                let id = manager.and_then(|u| match ch.platform {
                    Platform::Slack => u.slack_user_id.clone(),
                    Platform::Discord => u.discord_user_id.clone(),
                    Platform::Console => None,
                });
                escalated_ref.iter().map(move |e| {
                    (
                        ch.clone(),
                        say::escalation(audience_ref, e, nags.escalate_after, id.as_deref()),
                    )
                })
            })
            .collect();
        let mut preview = console::render(&digest, false);
        for (_, l) in &lines {
            preview.push('\n');
            preview.push_str(&console::render(l, true));
        }
        for (ch, m) in &escalations {
            preview.push_str(&format!("\n[{ch}] "));
            preview.push_str(&console::render(m, false));
        }
        if dry {
            return Ok(run(Outcome::Sent, Some(preview)));
        }
        let Some(dest) = self.destination(catalog, team.as_ref()) else {
            tracing::warn!(team = %key, "a digest is due but the team has no Slack or Discord channel (nor, for unowned services, scorecards.nags.platform_channels)");
            return Ok(run(Outcome::NoChannel, Some(preview)));
        };
        let card_key = format!("nag-digest:{key}:{}", period.timestamp_millis());
        let mut messages = vec![post(&dest, Some(card_key.clone()), None, &digest)];
        for (id, m) in &lines {
            messages.push(post(&dest, Some(line_key(id)), Some(card_key.clone()), m));
        }
        for (ch, m) in &escalations {
            messages.push(post(ch, None, None, m));
        }
        let recorded = store
            .record(
                &NewDigest {
                    team: key.clone(),
                    period: period.timestamp_millis(),
                    card_key,
                    platform: dest.platform.as_str().to_owned(),
                    channel: dest.channel.clone(),
                    body,
                    escalated: escalated.iter().map(|e| e.key()).collect(),
                    at: now_ms,
                },
                &items,
                &messages,
            )
            .await?;
        match recorded {
            Some(_) => {
                self.inner.send.wake();
                tracing::info!(team = %key, period = %period, "scorecard digest recorded and queued");
                Ok(run(Outcome::Sent, Some(preview)))
            }
            None => Ok(run(Outcome::AlreadySent, None)),
        }
    }

    /// The scheduler's lease for this replica (`holder`): held for two
    /// ticks and renewed every tick, so one replica evaluates digests at a
    /// time and a replica that dies hands on within two.
    pub fn nag_lease(&self, holder: &str) -> Option<Lease<Db>> {
        let tick = Duration::from_secs(self.nags()?.tick_secs.max(1));
        Some(Lease::new(self.inner.db.clone(), LEASE, holder, tick * 2))
    }

    /// Starts the scheduler when `[scorecards.nags]` is configured: every
    /// `tick_secs`, the replica holding the lease sends the due digests.
    pub fn spawn_nag_scheduler(&self, holder: &str) -> Option<Scheduler> {
        let tick = Duration::from_secs(self.nags()?.tick_secs.max(1));
        let lease = self.nag_lease(holder)?;
        let this = self.clone();
        Some(Scheduler::spawn(lease, Timing::every(tick), move || {
            let this = this.clone();
            async move { this.run_nags(Utc::now(), None, Mode::Scheduled).await }
        }))
    }

    /// One scheduler tick at `now`: sends the due digests when this
    /// replica (`holder`) holds the lease; `None` when another does (or
    /// without `[scorecards.nags]`).
    pub async fn nag_tick(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<DigestRun>>, ScorecardError> {
        let Some(lease) = self.nag_lease(holder) else {
            return Ok(None);
        };
        lease
            .run(now_ms(), self.run_nags(now, None, Mode::Scheduled))
            .await
    }

    /// A digest button pressed (`reason`: what the user gave with it, which
    /// `Won't fix` needs). The payload's id is a nag item's; its nonce must
    /// match the stored one.
    pub async fn press(
        &self,
        user: &ChatUser,
        conv: Option<&Conversation>,
        payload: &ButtonPayload,
        reason: Option<&str>,
    ) -> Result<(), StorageError> {
        let store = self.inner.db.nags();
        let item = match store.item(&payload.request_id).await? {
            Some(i) if i.nonce == payload.nonce => i,
            _ => {
                tracing::warn!(user = %user.chat_label(), item = %payload.request_id, "stale or forged digest button");
                return self.whisper(user, conv, &say::nag_button_stale()).await;
            }
        };
        let by = user.audit_name();
        match payload.op {
            ButtonOp::Snooze => {
                let days = self.nags().map(|n| n.snooze_days).unwrap_or(7).max(1);
                let at = now_ms();
                store
                    .mark(&Mark {
                        service: item.service.clone(),
                        check: item.check.clone(),
                        kind: MarkKind::Snoozed {
                            until: at + i64::from(days) * DAY_MS,
                        },
                        by: by.clone(),
                        at,
                    })
                    .await?;
                store.set_item(&item.id, "snoozed", Some(&by), at).await?;
            }
            ButtonOp::WontFix => match reason.map(str::trim).filter(|r| !r.is_empty()) {
                Some(reason) => return self.wont_fix(&item.id, &by, reason).await,
                None => {
                    let words = format!("{} on {}", item.check, item.service);
                    return self
                        .whisper(user, conv, &say::wont_fix_needs_reason(&words))
                        .await;
                }
            },
            ButtonOp::Recheck => {
                let passes = match self.service(&item.service).await {
                    Ok(score) => score
                        .checks
                        .iter()
                        .any(|c| c.name == item.check && c.passes()),
                    Err(ScorecardError::Storage(e)) => return Err(e),
                    // The service left the catalog: nothing fails any more.
                    Err(_) => true,
                };
                let state = if passes { "passing" } else { "failing" };
                store.set_item(&item.id, state, Some(&by), now_ms()).await?;
            }
            _ => return self.whisper(user, conv, &say::nag_button_stale()).await,
        }
        self.refresh(item.digest_id).await
    }

    /// Tells only `user`, where they pressed (a reason form submitted on
    /// Slack says not where: then the log has it).
    async fn whisper(
        &self,
        user: &ChatUser,
        conv: Option<&Conversation>,
        message: &crate::chat::Message,
    ) -> Result<(), StorageError> {
        match conv {
            Some(c) => self.inner.send.whisper(user, c, message).await,
            None => {
                tracing::info!(user = %user.chat_label(), text = %message.text, "not told: no conversation");
                Ok(())
            }
        }
    }

    /// The team won't fix the check of digest item `item`, for `reason`
    /// (said by `by`): it leaves the digest's failing lines and is listed,
    /// with the reason, in every later digest. The `Won't fix` modal calls
    /// this through [`Scorecards::press`] once the user gave a reason.
    pub async fn wont_fix(&self, item: &str, by: &str, reason: &str) -> Result<(), StorageError> {
        let store = self.inner.db.nags();
        let Some(item) = store.item(item).await? else {
            return Ok(());
        };
        let reason: String = reason.trim().chars().take(500).collect();
        let at = now_ms();
        store
            .mark(&Mark {
                service: item.service.clone(),
                check: item.check.clone(),
                kind: MarkKind::WontFix { reason },
                by: by.to_owned(),
                at,
            })
            .await?;
        store.set_item(&item.id, "wont_fix", Some(by), at).await?;
        self.refresh(item.digest_id).await
    }

    /// Edits a digest and its lines in place to show how each stands.
    async fn refresh(&self, digest_id: i64) -> Result<(), StorageError> {
        let store = self.inner.db.nags();
        let Some(d) = store.digest(digest_id).await? else {
            return Ok(());
        };
        let items: HashMap<String, NagItem> = store
            .items_of(d.id)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let marks: HashMap<(String, String), Mark> = store
            .marks()
            .await?
            .into_iter()
            .map(|m| ((m.service.clone(), m.check.clone()), m))
            .collect();
        let status = |e: &DigestEntry| status_of(e, &items, &marks);
        let team = TeamName::parse(d.team.clone()).ok();
        let message = say::digest(&say::digest_audience(team.as_ref()), &d.body, &status);
        let platform = stored_platform(&d)?;
        let send = &self.inner.send;
        send.update_keyed(platform, &d.channel, &d.card_key, &message)
            .await?;
        for e in &d.body.entries {
            let Some(item) = e.item.as_ref().and_then(|id| items.get(id)) else {
                continue;
            };
            if item.state == "open" {
                continue;
            }
            let line = say::digest_line(e, &item.nonce, &status(e));
            send.update_keyed(platform, &d.channel, &line_key(&item.id), &line)
                .await?;
        }
        Ok(())
    }
}

fn stored_platform(d: &DigestRow) -> Result<Platform, StorageError> {
    Platform::parse(&d.platform)
        .ok_or_else(|| StorageError::Corrupt(format!("digest {}: platform {}", d.id, d.platform)))
}

fn status_of(
    e: &DigestEntry,
    items: &HashMap<String, NagItem>,
    marks: &HashMap<(String, String), Mark>,
) -> LineStatus {
    let Some(item) = e.item.as_ref().and_then(|id| items.get(id)) else {
        return LineStatus::Open;
    };
    let by = item.note.clone().unwrap_or_default();
    let mark = marks.get(&(item.service.clone(), item.check.clone()));
    match item.state.as_str() {
        "snoozed" => LineStatus::Snoozed {
            by,
            until: match mark.map(|m| &m.kind) {
                Some(MarkKind::Snoozed { until }) => ms_to_utc(*until).format("%-d %b").to_string(),
                _ => "later".into(),
            },
        },
        "wont_fix" => LineStatus::WontFix {
            by,
            reason: match mark.map(|m| &m.kind) {
                Some(MarkKind::WontFix { reason }) => reason.clone(),
                _ => String::new(),
            },
        },
        "passing" => LineStatus::PassingNow { by },
        "failing" => LineStatus::StillFailing { by },
        _ => LineStatus::Open,
    }
}
