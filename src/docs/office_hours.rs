//! Office hours with humans in the loop: every question answered from the
//! docs is recorded and its answer carries `Helpful` / `Not helpful` /
//! `Ask a human` (and `Office hours` when the docs don't know); "Ask a
//! human" hands the question to the platform team's channel (and pages
//! the on-call through a webhook when configured) and the first answer in
//! that thread is relayed back to the asker; `paver docs gaps` lists what
//! the docs miss; the office-hours agenda is posted on a schedule.
//!
//! Each press reads the question back from storage and checks its nonce;
//! each "once" (a handoff, a relay, an agenda period) is a conditional
//! write in the transaction that queues its messages, so two presses, two
//! replicas or a replayed button never post twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use super::config::OfficeHoursConfig;
use super::Docs;
use crate::catalog::{Catalog, SharedCatalog};
use crate::chat::office_hours::{self as say, AgendaItem};
use crate::chat::send::Sender;
use crate::chat::{
    console, ButtonOp, ButtonPayload, ChatUser, Conversation, Handled, Inbound, Message,
};
use crate::domain::{ChannelRef, Platform};
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::questions::{
    answer_key, handoff_key, new_token, Cited, GapRow, Handoff, NewQuestion, Question, Votes,
};
use crate::storage::{now_ms, Db, StorageError};
use crate::util::scheduler::{Lease, Scheduler, Timing};

/// The scheduler lease's name (in the scorecards' lease table: one table
/// of named leases serves every scheduler).
const LEASE: &str = "docs-agenda";

/// What the docs said to a question, for its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Said {
    pub known: bool,
    /// The sections cited (answered), or the nearest one (not known).
    pub sources: Vec<Cited>,
}

/// What a reply said, for its record: the sections it cites (or quotes),
/// or the nearest one when it does not know.
pub fn said_by(reply: &super::answer::DocsReply) -> Said {
    let cite = |s: &super::answer::Source| Cited {
        path: s.path.clone(),
        heading: s.breadcrumb(),
        url: s.url.clone(),
    };
    let sources = if reply.known {
        reply.sources.iter().map(cite).collect()
    } else {
        reply.nearest.iter().map(cite).collect()
    };
    Said {
        known: reply.known,
        sources,
    }
}

fn tag_pattern() -> &'static regex::Regex {
    static TAG: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        regex::Regex::new(r"(?i)(#office[-_]?hours\b:?|\boffice[ -]?hours\s*:)")
            .expect("a valid pattern")
    })
}

/// Whether the asker tagged the question for office hours ("office hours:
/// …", "#officehours"), and the question without the tag.
pub fn read_tag(question: &str) -> (bool, String) {
    let re = tag_pattern();
    if !re.is_match(question) {
        return (false, question.to_owned());
    }
    let rest = re.replace_all(question, " ");
    (true, rest.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The question as recorded: a URL's password and `password=…`-like
/// pairs hidden (people paste connection strings into questions).
pub fn redact(question: &str) -> String {
    question
        .split(' ')
        .map(|w| {
            if w.contains("://") {
                return crate::util::redact_url(w);
            }
            match w.split_once('=') {
                Some((k, v))
                    if !v.is_empty()
                        && ["password", "passwd", "secret", "token", "api_key", "apikey"]
                            .iter()
                            .any(|s| k.to_ascii_lowercase().contains(s)) =>
                {
                    format!("{k}=***")
                }
                _ => w.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cheap to clone; all clones share one flow.
#[derive(Clone)]
pub struct OfficeHours {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    catalog: SharedCatalog,
    send: Sender,
    config: OfficeHoursConfig,
    http: reqwest::Client,
}

/// The JSON the on-call webhook receives.
#[derive(Debug, Serialize)]
struct Page<'a> {
    event: &'static str,
    question_id: &'a str,
    question: &'a str,
    asked_by: &'a str,
    asked_in: &'a str,
    known: bool,
    sources: &'a [Cited],
    platform_channel: String,
}

/// What became of an agenda run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgendaOutcome {
    /// Recorded and queued (or, dry, what it would say).
    Posted { questions: usize },
    /// Recorded with nothing to post: no question was tagged.
    Empty,
    /// This period's agenda was recorded already (another replica).
    AlreadyPosted,
    /// No `agenda_schedule`, or it never fired yet.
    NotScheduled,
    /// There is no platform channel to post it in.
    NoChannel,
}

/// One agenda run: what became of it, and the agenda as console text.
#[derive(Debug, Clone)]
pub struct AgendaRun {
    pub outcome: AgendaOutcome,
    pub preview: Option<String>,
}

/// A question the docs miss, as `paver docs gaps` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    /// The most recent wording.
    pub question: String,
    /// How many times it was asked (unanswered or voted not helpful).
    pub count: usize,
    /// Of those, how many the docs had no answer for.
    pub unanswered: usize,
    /// Not-helpful votes on the answers given.
    pub not_helpful: i64,
    /// Unix ms.
    pub last_asked: i64,
    /// The section nearest to it (or the one that did not help).
    pub nearest: Option<Cited>,
}

pub use crate::domain::topic::gap_key;

/// Groups gap rows (newest first) by [`gap_key`], most asked first.
pub fn group_gaps(rows: &[GapRow]) -> Vec<Gap> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Gap> = HashMap::new();
    for r in rows {
        let key = gap_key(&r.question);
        let key = if key.is_empty() {
            r.question.to_lowercase()
        } else {
            key
        };
        let g = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Gap {
                question: r.question.clone(),
                count: 0,
                unanswered: 0,
                not_helpful: 0,
                last_asked: r.created_at,
                nearest: r.nearest.clone(),
            }
        });
        g.count += 1;
        g.unanswered += usize::from(!r.known);
        g.not_helpful += r.not_helpful;
        if r.created_at > g.last_asked {
            g.last_asked = r.created_at;
            g.question = r.question.clone();
        }
    }
    let mut out: Vec<Gap> = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.not_helpful.cmp(&a.not_helpful))
            .then(b.last_asked.cmp(&a.last_asked))
    });
    out
}

/// The docs' gaps of the last `days` days, most asked first.
pub async fn gaps(db: &Db, days: u32, now: i64) -> Result<Vec<Gap>, StorageError> {
    let since = now - i64::from(days) * 24 * 3600 * 1000;
    Ok(group_gaps(&db.questions().gaps(since).await?))
}

fn body(m: &Message) -> String {
    serde_json::to_string(m).expect("messages serialize")
}

fn post(platform: Platform, channel: &str, card_key: Option<String>, m: &Message) -> OutboxItem {
    OutboxItem {
        platform,
        channel: channel.to_owned(),
        kind: OutboxKind::Post,
        user_id: None,
        card_key,
        thread_key: None,
        thread_ref: None,
        body: body(m),
    }
}

fn update(platform: Platform, channel: &str, card_key: String, m: &Message) -> OutboxItem {
    OutboxItem {
        kind: OutboxKind::Update,
        card_key: Some(card_key),
        ..post(platform, channel, None, m)
    }
}

/// A message in the asker's thread: the thread they asked in, or, where
/// they asked outside one (the console), the thread under the answer.
fn in_asker_thread(q: &Question, m: &Message) -> OutboxItem {
    OutboxItem {
        thread_ref: q.thread.clone(),
        thread_key: q.thread.is_none().then(|| answer_key(&q.id)),
        ..post(q.platform, &q.channel, None, m)
    }
}

fn day_of(ms: i64, zone: chrono_tz::Tz) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&zone).format("%-d %b").to_string())
        .unwrap_or_default()
}

impl OfficeHours {
    pub fn new(db: Db, catalog: SharedCatalog, send: Sender, config: OfficeHoursConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.oncall_timeout_secs.max(1)))
            .build()
            .unwrap_or_default();
        OfficeHours {
            inner: Arc::new(Inner {
                db,
                catalog,
                send,
                config,
                http,
            }),
        }
    }

    pub fn config(&self) -> &OfficeHoursConfig {
        &self.inner.config
    }

    /// The platform team's channels: the configured ones, else the
    /// catalog team's Slack and Discord channels.
    fn platform_channels(&self, catalog: &Catalog) -> Vec<ChannelRef> {
        let c = &self.inner.config;
        if !c.channels.is_empty() {
            return c.channels.clone();
        }
        let Some(g) = catalog.group(&c.team) else {
            return Vec::new();
        };
        let slack = g.slack_channel.iter().map(|ch| ChannelRef {
            platform: Platform::Slack,
            channel: ch.clone(),
        });
        let discord = g.discord_channel.iter().map(|ch| ChannelRef {
            platform: Platform::Discord,
            channel: ch.clone(),
        });
        slack.chain(discord).collect()
    }

    /// Where a question asked on `platform` is handed off: the platform
    /// team's channel there, else its first.
    fn handoff_channel(&self, platform: Platform) -> Option<ChannelRef> {
        let all = self.platform_channels(&self.inner.catalog.current());
        all.iter()
            .find(|c| c.platform == platform)
            .or(all.first())
            .cloned()
    }

    /// Answers `question` (asked by `user` in `conv`) from `docs` (none
    /// configured: "ask the platform team"), records it, and posts the
    /// answer with its buttons.
    pub async fn ask(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        question: &str,
        docs: Option<&Docs>,
        llm: Option<&super::answer::AnswerLlm>,
    ) -> Result<Handled, StorageError> {
        let (tagged, question) = read_tag(question);
        let catalog = self.inner.catalog.current();
        let (answer, said) = match docs {
            Some(d) => {
                let reply = super::answer::answer(d, llm, &question).await;
                (super::reply::message(&reply, &catalog), said_by(&reply))
            }
            None => (
                crate::chat::messages::ask(&question, &catalog),
                Said::default(),
            ),
        };
        let at = now_ms();
        let new = NewQuestion {
            // Derived from the chat event when one is handled: asked again
            // after a crash, the question finds its first record.
            id: crate::util::origin::next_id("q-").unwrap_or_else(|| format!("q-{}", new_token())),
            nonce: new_token(),
            platform: conv.platform,
            channel: conv.channel.clone(),
            thread: conv.thread.clone(),
            asker_id: user.id.clone(),
            asker_name: user.audit_name(),
            question: redact(&question),
            known: said.known,
            sources: said.sources,
            answer_json: body(&answer),
            office_hours: tagged,
            at,
        };
        let q = Question {
            id: new.id.clone(),
            nonce: new.nonce.clone(),
            platform: new.platform,
            channel: new.channel.clone(),
            thread: new.thread.clone(),
            asker_id: new.asker_id.clone(),
            asker_name: new.asker_name.clone(),
            question: new.question.clone(),
            known: new.known,
            sources: new.sources.clone(),
            answer_json: new.answer_json.clone(),
            office_hours_at: tagged.then_some(at),
            agenda_period: None,
            handoff: None,
            handoff_by: None,
            handoff_at: None,
            handoff_platform: None,
            handoff_channel: None,
            answered_by: None,
            answer_text: None,
            answered_at: None,
            created_at: at,
        };
        let card = say::answer_card(&answer, &q, Votes::default(), None);
        let item = OutboxItem {
            thread_ref: conv.thread.clone(),
            ..post(conv.platform, &conv.channel, Some(answer_key(&q.id)), &card)
        };
        self.inner.db.questions().record(&new, &[item]).await?;
        self.inner.send.wake();
        Ok(Handled::Replied)
    }

    /// The answer card of `q` as it stands now.
    async fn answer_card(&self, q: &Question) -> Result<Message, StorageError> {
        let answer: Message = serde_json::from_str(&q.answer_json)
            .map_err(|e| StorageError::Corrupt(format!("question {}: {e}", q.id)))?;
        let votes = self.inner.db.questions().votes(&q.id).await?;
        let channel = q
            .handoff_platform
            .zip(q.handoff_channel.as_deref())
            .map(|(p, c)| say::channel_mention(p, c));
        Ok(say::answer_card(&answer, q, votes, channel.as_deref()))
    }

    /// The handoff post of `q` as it stands now.
    async fn handoff_post(&self, q: &Question) -> Result<Message, StorageError> {
        let asked_in = match &q.thread {
            Some(t) => say::thread_link(q.platform, &q.channel, Some(t)),
            None => {
                let r = self.inner.db.outbox().card_ref(&answer_key(&q.id)).await?;
                say::thread_link(q.platform, &q.channel, r.as_deref())
            }
        };
        let sources: Vec<(String, String)> = q
            .sources
            .iter()
            .map(|c| (c.heading.clone(), c.url.clone()))
            .collect();
        Ok(say::handoff(
            q,
            &asked_in,
            &say::what_paver_answered(q.known),
            &sources,
        ))
    }

    /// Edits the answer (and the handoff post, when there is one) in place.
    async fn refresh(&self, id: &str) -> Result<(), StorageError> {
        let Some(q) = self.inner.db.questions().get(id).await? else {
            return Ok(());
        };
        let send = &self.inner.send;
        let card = self.answer_card(&q).await?;
        send.update_keyed(q.platform, &q.channel, &answer_key(&q.id), &card)
            .await?;
        if let (Some(p), Some(c)) = (q.handoff_platform, &q.handoff_channel) {
            let m = self.handoff_post(&q).await?;
            send.update_keyed(p, c, &handoff_key(&q.id), &m).await?;
        }
        Ok(())
    }

    /// A button of a docs answer or a handoff post, pressed by `user` in
    /// `conv`. The payload's id is a question's; its nonce must match.
    pub async fn press(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &ButtonPayload,
    ) -> Result<(), StorageError> {
        let store = self.inner.db.questions();
        let q = match store.get(&payload.request_id).await? {
            Some(q) if q.nonce == payload.nonce => q,
            _ => {
                tracing::warn!(user = %user.chat_label(), question = %payload.request_id, "stale or forged docs button");
                return self
                    .inner
                    .send
                    .whisper(user, conv, &say::stale_button())
                    .await;
            }
        };
        match payload.op {
            ButtonOp::Helpful | ButtonOp::NotHelpful => {
                let helpful = payload.op == ButtonOp::Helpful;
                store
                    .vote(&q.id, &user.audit_name(), helpful, now_ms())
                    .await?;
                self.refresh(&q.id).await
            }
            ButtonOp::AskHuman => self.ask_human(user, conv, q).await,
            ButtonOp::OfficeHours => {
                // The asker, or the platform team where it was handed off.
                let in_handoff = q.handoff_platform == Some(conv.platform)
                    && q.handoff_channel.as_deref() == Some(conv.channel.as_str());
                if user.audit_name() != q.asker_name && !in_handoff {
                    return self
                        .inner
                        .send
                        .whisper(user, conv, &say::not_the_asker(&q.asker_name))
                        .await;
                }
                store.tag(&q.id, now_ms()).await?;
                self.refresh(&q.id).await
            }
            _ => {
                self.inner
                    .send
                    .whisper(user, conv, &say::stale_button())
                    .await
            }
        }
    }

    async fn ask_human(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        q: Question,
    ) -> Result<(), StorageError> {
        if q.handoff.is_some() {
            // Asked already: the answer shows it (an old rendering may
            // still have had the button).
            return self.refresh(&q.id).await;
        }
        if user.audit_name() != q.asker_name {
            return self
                .inner
                .send
                .whisper(user, conv, &say::not_the_asker(&q.asker_name))
                .await;
        }
        let Some(dest) = self.handoff_channel(q.platform) else {
            return self
                .inner
                .send
                .whisper(user, conv, &say::no_platform_channel())
                .await;
        };
        let at = now_ms();
        let asked = Question {
            handoff: Some(Handoff::Asked),
            handoff_by: Some(user.audit_name()),
            handoff_at: Some(at),
            handoff_platform: Some(dest.platform),
            handoff_channel: Some(dest.channel.clone()),
            ..q
        };
        let mention = say::channel_mention(dest.platform, &dest.channel);
        let messages = vec![
            post(
                dest.platform,
                &dest.channel,
                Some(handoff_key(&asked.id)),
                &self.handoff_post(&asked).await?,
            ),
            in_asker_thread(&asked, &say::handed_off(&mention)),
            update(
                asked.platform,
                &asked.channel,
                answer_key(&asked.id),
                &self.answer_card(&asked).await?,
            ),
        ];
        let won = self
            .inner
            .db
            .questions()
            .hand_off(
                &asked.id,
                &user.audit_name(),
                dest.platform,
                &dest.channel,
                at,
                &messages,
            )
            .await?;
        if !won {
            // Another press (here or on another replica) got there first.
            return self.refresh(&asked.id).await;
        }
        self.inner.send.wake();
        tracing::info!(question = %asked.id, channel = %dest, "question handed to the platform team");
        if let Err(e) = self.page(&asked, &dest).await {
            tracing::warn!(question = %asked.id, error = %e, "paging the platform on-call failed");
            let m = say::page_failed(&mention, &e);
            self.inner
                .db
                .outbox()
                .enqueue(&in_asker_thread(&asked, &m))
                .await?;
            self.inner.send.wake();
        }
        Ok(())
    }

    /// POSTs the page to the on-call webhook, when one is configured.
    async fn page(&self, q: &Question, dest: &ChannelRef) -> Result<(), String> {
        let c = &self.inner.config;
        let Some(url) = &c.oncall_webhook else {
            return Ok(());
        };
        let asked_in = say::thread_link(q.platform, &q.channel, q.thread.as_deref());
        let page = Page {
            event: "paver.office_hours.ask_a_human",
            question_id: &q.id,
            question: &q.question,
            asked_by: &q.asker_name,
            asked_in: &asked_in,
            known: q.known,
            sources: &q.sources,
            platform_channel: dest.to_string(),
        };
        let mut req = self.inner.http.post(url.clone()).json(&page);
        if let Some(token) = &c.oncall_token {
            use secrecy::ExposeSecret;
            req = req.bearer_auth(token.expose_secret());
        }
        // The URL may hold a key (many paging services put it there): the
        // error is said without it.
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the on-call webhook answered {status}"));
        }
        Ok(())
    }

    /// A plain message in the platform team's thread under question
    /// `question_id`'s handoff: the first one by someone other than the
    /// asker is relayed to the asker, once; the rest are theirs.
    pub async fn reply_in_handoff(
        &self,
        msg: &Inbound,
        question_id: &str,
    ) -> Result<Handled, StorageError> {
        let store = self.inner.db.questions();
        let Some(q) = store.get(question_id).await? else {
            return Ok(Handled::Ignored);
        };
        if q.handoff != Some(Handoff::Asked) || msg.user.audit_name() == q.asker_name {
            return Ok(Handled::Ignored);
        }
        let text = msg.text.trim();
        if text.is_empty() {
            return Ok(Handled::Ignored);
        }
        let by = match &msg.user.catalog {
            Some(u) => u.as_str().to_owned(),
            None => msg.user.id.clone(),
        };
        let conv = &msg.conversation;
        let link = match &conv.thread {
            Some(t) => say::thread_link(conv.platform, &conv.channel, Some(t)),
            None => say::thread_link(conv.platform, &conv.channel, None),
        };
        let kept: String = text.chars().take(4000).collect();
        let at = now_ms();
        let answered = Question {
            handoff: Some(Handoff::Answered),
            answered_by: Some(by.clone()),
            answer_text: Some(kept.clone()),
            answered_at: Some(at),
            ..q
        };
        let mut messages = vec![
            in_asker_thread(
                &answered,
                &say::relayed(&answered.asker_id, &by, &kept, &link),
            ),
            update(
                answered.platform,
                &answered.channel,
                answer_key(&answered.id),
                &self.answer_card(&answered).await?,
            ),
        ];
        if let (Some(p), Some(c)) = (answered.handoff_platform, &answered.handoff_channel) {
            messages.push(update(
                p,
                c,
                handoff_key(&answered.id),
                &self.handoff_post(&answered).await?,
            ));
        }
        if !store
            .answer(&answered.id, &by, &kept, at, &messages)
            .await?
        {
            return Ok(Handled::Ignored);
        }
        self.inner.send.wake();
        tracing::info!(question = %answered.id, by = %by, "platform team's answer relayed");
        Ok(Handled::Replied)
    }

    // ----- the agenda -----------------------------------------------------

    /// The agenda at `now`: the untreated tagged questions, posted to the
    /// platform channel once per period of `agenda_schedule` (or, `dry`,
    /// only shown — whatever the schedule).
    pub async fn run_agenda(
        &self,
        now: DateTime<Utc>,
        dry: bool,
    ) -> Result<AgendaRun, StorageError> {
        let c = &self.inner.config;
        let zone = c.zone.0;
        let period = match &c.agenda_schedule {
            Some(cron) => cron.latest_fire(zone, now),
            None if dry => Some(now),
            None => None,
        };
        let Some(period) = period else {
            return Ok(AgendaRun {
                outcome: AgendaOutcome::NotScheduled,
                preview: None,
            });
        };
        let store = self.inner.db.questions();
        let period_ms = period.timestamp_millis();
        if !dry && store.agenda_recorded(period_ms).await? {
            return Ok(AgendaRun {
                outcome: AgendaOutcome::AlreadyPosted,
                preview: None,
            });
        }
        let questions = store.untreated().await?;
        let mut items = Vec::new();
        for q in &questions {
            let votes = store.votes(&q.id).await?;
            items.push(AgendaItem {
                question: q.question.clone(),
                asker: q.asker_name.clone(),
                asked: day_of(q.created_at, zone),
                known: q.known,
                not_helpful: votes.not_helpful,
                handoff: q.handoff,
            });
        }
        let message = say::agenda(&day_of(period_ms, zone), &items);
        let preview = (!items.is_empty()).then(|| console::render(&message, false));
        if dry {
            let outcome = if items.is_empty() {
                AgendaOutcome::Empty
            } else {
                AgendaOutcome::Posted {
                    questions: items.len(),
                }
            };
            return Ok(AgendaRun { outcome, preview });
        }
        let Some(dest) = self
            .platform_channels(&self.inner.catalog.current())
            .into_iter()
            .next()
        else {
            tracing::warn!("an office-hours agenda is due but there is no platform channel (docs.office_hours.channels, or the team's in the catalog)");
            return Ok(AgendaRun {
                outcome: AgendaOutcome::NoChannel,
                preview,
            });
        };
        let ids: Vec<String> = questions.iter().map(|q| q.id.clone()).collect();
        // An empty period is recorded too: a question tagged later waits
        // for the next agenda instead of being posted on its own.
        let messages = if items.is_empty() {
            Vec::new()
        } else {
            vec![post(dest.platform, &dest.channel, None, &message)]
        };
        let recorded = store
            .record_agenda(
                period_ms,
                dest.platform,
                &dest.channel,
                &ids,
                now_ms(),
                &messages,
            )
            .await?;
        if !recorded {
            return Ok(AgendaRun {
                outcome: AgendaOutcome::AlreadyPosted,
                preview: None,
            });
        }
        self.inner.send.wake();
        // Their answers now say "discussed at office hours".
        for id in &ids {
            self.refresh(id).await?;
        }
        let outcome = if items.is_empty() {
            AgendaOutcome::Empty
        } else {
            tracing::info!(questions = items.len(), channel = %dest, "office-hours agenda posted");
            AgendaOutcome::Posted {
                questions: items.len(),
            }
        };
        Ok(AgendaRun { outcome, preview })
    }

    /// The agenda scheduler's lease for this replica (`holder`), with
    /// `agenda_schedule`: held for two ticks, renewed every tick.
    pub fn agenda_lease(&self, holder: &str) -> Option<Lease<Db>> {
        self.inner.config.agenda_schedule.as_ref()?;
        let tick = Duration::from_secs(self.inner.config.tick_secs.max(1));
        Some(Lease::new(self.inner.db.clone(), LEASE, holder, tick * 2))
    }

    /// One scheduler tick at `now`: runs the agenda when this replica
    /// (`holder`) holds the lease; `None` when another does (or without
    /// `agenda_schedule`).
    pub async fn agenda_tick(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AgendaRun>, StorageError> {
        let Some(lease) = self.agenda_lease(holder) else {
            return Ok(None);
        };
        lease.run(now_ms(), self.run_agenda(now, false)).await
    }

    /// Starts the agenda scheduler when `agenda_schedule` is configured.
    pub fn spawn_agenda_scheduler(&self, holder: &str) -> Option<Scheduler> {
        let lease = self.agenda_lease(holder)?;
        let tick = Duration::from_secs(self.inner.config.tick_secs.max(1));
        let this = self.clone();
        Some(Scheduler::spawn(lease, Timing::every(tick), move || {
            let this = this.clone();
            async move { this.run_agenda(Utc::now(), false).await }
        }))
    }
}
