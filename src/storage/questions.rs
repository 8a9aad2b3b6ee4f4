//! Office hours' questions: each one answered from the docs (or not known),
//! the votes on its answer, its handoff to the platform team and the
//! relayed answer, its office-hours tag, and the agendas that listed them.
//!
//! Every "once" here is a conditional statement the database decides, so
//! two presses at once, two replicas or a replayed button can never post
//! twice: a handoff is asked only from no handoff, answered only from
//! asked, an agenda recorded once per period; and each records the
//! messages it sends in the same transaction.

use serde::{Deserialize, Serialize};

use super::outbox::OutboxItem;
use super::{get_i64, get_opt_i64, get_opt_str, get_str, Db, StorageError};
use crate::domain::Platform;

/// A docs section an answer cited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cited {
    /// The page, relative to its docs root.
    pub path: String,
    /// "Databases › PostgreSQL › Rotating credentials".
    pub heading: String,
    pub url: String,
}

/// How a question's handoff to the platform team stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Posted to the platform team; nobody answered yet.
    Asked,
    /// A platform engineer's answer was relayed to the asker.
    Answered,
}

impl Handoff {
    fn as_str(self) -> &'static str {
        match self {
            Handoff::Asked => "asked",
            Handoff::Answered => "answered",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "asked" => Some(Handoff::Asked),
            "answered" => Some(Handoff::Answered),
            _ => None,
        }
    }
}

/// A question to record.
#[derive(Debug, Clone)]
pub struct NewQuestion {
    pub id: String,
    pub nonce: String,
    pub platform: Platform,
    pub channel: String,
    pub thread: Option<String>,
    /// The asker's chat id (to mention them, and to tell them apart).
    pub asker_id: String,
    /// The asker as the audit log names them.
    pub asker_name: String,
    /// Secrets redacted.
    pub question: String,
    pub known: bool,
    pub sources: Vec<Cited>,
    /// The answer as posted, JSON (a `chat::Message`).
    pub answer_json: String,
    /// Tagged for office hours when asked ("office hours: …").
    pub office_hours: bool,
    pub at: i64,
}

/// A question as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub id: String,
    pub nonce: String,
    pub platform: Platform,
    pub channel: String,
    pub thread: Option<String>,
    pub asker_id: String,
    pub asker_name: String,
    pub question: String,
    pub known: bool,
    pub sources: Vec<Cited>,
    pub answer_json: String,
    /// When it was tagged for office hours.
    pub office_hours_at: Option<i64>,
    /// The agenda (its period) that listed it.
    pub agenda_period: Option<i64>,
    pub handoff: Option<Handoff>,
    /// Who pressed "Ask a human".
    pub handoff_by: Option<String>,
    pub handoff_at: Option<i64>,
    /// Where the handoff was posted.
    pub handoff_platform: Option<Platform>,
    pub handoff_channel: Option<String>,
    /// Who answered in the platform team's thread, and what (relayed).
    pub answered_by: Option<String>,
    pub answer_text: Option<String>,
    pub answered_at: Option<i64>,
    pub created_at: i64,
}

/// The votes on a question's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Votes {
    pub helpful: i64,
    pub not_helpful: i64,
}

/// A question for `paver docs gaps`: not known, or voted not helpful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub question: String,
    pub known: bool,
    pub not_helpful: i64,
    /// The nearest (not known) or first cited section.
    pub nearest: Option<Cited>,
    pub created_at: i64,
}

/// The card key of a question's answer message.
pub fn answer_key(id: &str) -> String {
    format!("question:{id}")
}

/// The card key of a question's post in the platform team's channel.
pub fn handoff_key(id: &str) -> String {
    format!("{HANDOFF_PREFIX}{id}")
}

const HANDOFF_PREFIX: &str = "question-handoff:";

const COLUMNS: &str = "id, nonce, platform, channel, thread, asker_id, asker_name, question, known, \
     sources_json, answer_json, office_hours_at, agenda_period, handoff_state, handoff_by, handoff_at, \
     handoff_platform, handoff_channel, answered_by, answer_text, answered_at, created_at";

fn corrupt(what: String) -> StorageError {
    StorageError::Corrupt(format!("questions: {what}"))
}

fn platform_of(id: &str, s: &str) -> Result<Platform, StorageError> {
    Platform::parse(s).ok_or_else(|| corrupt(format!("{id}: platform {s}")))
}

fn row(r: &sqlx::any::AnyRow) -> Result<Question, StorageError> {
    let id = get_str(r, "id")?;
    let handoff = get_opt_str(r, "handoff_state")?
        .map(|s| Handoff::parse(&s).ok_or_else(|| corrupt(format!("{id}: handoff {s}"))))
        .transpose()?;
    let handoff_platform = get_opt_str(r, "handoff_platform")?
        .map(|s| platform_of(&id, &s))
        .transpose()?;
    Ok(Question {
        nonce: get_str(r, "nonce")?,
        platform: platform_of(&id, &get_str(r, "platform")?)?,
        channel: get_str(r, "channel")?,
        thread: get_opt_str(r, "thread")?,
        asker_id: get_str(r, "asker_id")?,
        asker_name: get_str(r, "asker_name")?,
        question: get_str(r, "question")?,
        known: get_i64(r, "known")? != 0,
        sources: serde_json::from_str(&get_str(r, "sources_json")?)
            .map_err(|e| corrupt(format!("{id}: {e}")))?,
        answer_json: get_str(r, "answer_json")?,
        office_hours_at: get_opt_i64(r, "office_hours_at")?,
        agenda_period: get_opt_i64(r, "agenda_period")?,
        handoff,
        handoff_by: get_opt_str(r, "handoff_by")?,
        handoff_at: get_opt_i64(r, "handoff_at")?,
        handoff_platform,
        handoff_channel: get_opt_str(r, "handoff_channel")?,
        answered_by: get_opt_str(r, "answered_by")?,
        answer_text: get_opt_str(r, "answer_text")?,
        answered_at: get_opt_i64(r, "answered_at")?,
        created_at: get_i64(r, "created_at")?,
        id,
    })
}

pub struct QuestionStore<'a> {
    pub(super) db: &'a Db,
}

impl QuestionStore<'_> {
    /// Records a question and queues its answer (and anything else said
    /// with it) in one transaction. A question recorded before under the
    /// same id (the same chat event, handled again after a crash) is left
    /// as it is, and nothing is queued again.
    pub async fn record(
        &self,
        q: &NewQuestion,
        messages: &[OutboxItem],
    ) -> Result<(), StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let sources = serde_json::to_string(&q.sources).expect("citations serialize");
        let stored = sqlx::query(
            "INSERT INTO questions (id, nonce, platform, channel, thread, asker_id, asker_name, question, known, \
             sources_json, answer_json, office_hours_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&q.id)
        .bind(&q.nonce)
        .bind(q.platform.as_str())
        .bind(&q.channel)
        .bind(q.thread.clone())
        .bind(&q.asker_id)
        .bind(&q.asker_name)
        .bind(&q.question)
        .bind(i64::from(q.known))
        .bind(sources)
        .bind(&q.answer_json)
        .bind(q.office_hours.then_some(q.at))
        .bind(q.at)
        .execute(&mut *tx)
        .await?;
        if stored.rows_affected() == 0 {
            // Recorded, with its messages, by an earlier handling of the
            // same chat event (its id is derived from it).
            tx.rollback().await?;
            return Ok(());
        }
        super::outbox::queue_and_commit(tx, messages, q.at).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Question>, StorageError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM questions WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Records `voter`'s vote (replacing their earlier one).
    pub async fn vote(
        &self,
        id: &str,
        voter: &str,
        helpful: bool,
        at: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO question_votes (question_id, voter, helpful, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (question_id, voter) DO UPDATE SET helpful = excluded.helpful, at = excluded.at",
        )
        .bind(id)
        .bind(voter)
        .bind(i64::from(helpful))
        .bind(at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    pub async fn votes(&self, id: &str) -> Result<Votes, StorageError> {
        // COUNTs, not SUM: SUM is NUMERIC on PostgreSQL.
        let r = sqlx::query(
            "SELECT COUNT(CASE WHEN helpful = 1 THEN 1 END) AS yes, COUNT(CASE WHEN helpful = 0 THEN 1 END) AS no \
             FROM question_votes WHERE question_id = $1",
        )
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(Votes {
            helpful: get_i64(&r, "yes")?,
            not_helpful: get_i64(&r, "no")?,
        })
    }

    /// Marks the question handed off to the platform team in `channel`,
    /// and queues `messages`, in one transaction; false, queueing nothing,
    /// when it was handed off already (a second press, another replica).
    pub async fn hand_off(
        &self,
        id: &str,
        by: &str,
        platform: Platform,
        channel: &str,
        at: i64,
        messages: &[OutboxItem],
    ) -> Result<bool, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE questions SET handoff_state = $1, handoff_by = $2, handoff_at = $3, handoff_platform = $4, \
             handoff_channel = $5 WHERE id = $6 AND handoff_state IS NULL",
        )
        .bind(Handoff::Asked.as_str())
        .bind(by)
        .bind(at)
        .bind(platform.as_str())
        .bind(channel)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        super::outbox::queue_and_commit(tx, messages, at).await?;
        Ok(true)
    }

    /// Marks the handoff answered by `by` with `text`, and queues
    /// `messages`, in one transaction; false, queueing nothing, unless it
    /// was waiting for its first answer.
    pub async fn answer(
        &self,
        id: &str,
        by: &str,
        text: &str,
        at: i64,
        messages: &[OutboxItem],
    ) -> Result<bool, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE questions SET handoff_state = $1, answered_by = $2, answer_text = $3, answered_at = $4 \
             WHERE id = $5 AND handoff_state = $6",
        )
        .bind(Handoff::Answered.as_str())
        .bind(by)
        .bind(text)
        .bind(at)
        .bind(id)
        .bind(Handoff::Asked.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        super::outbox::queue_and_commit(tx, messages, at).await?;
        Ok(true)
    }

    /// Tags the question for office hours; false when it was already.
    pub async fn tag(&self, id: &str, at: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE questions SET office_hours_at = $1 WHERE id = $2 AND office_hours_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Questions tagged for office hours that no agenda listed yet, oldest
    /// first.
    pub async fn untreated(&self) -> Result<Vec<Question>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM questions WHERE office_hours_at IS NOT NULL AND agenda_period IS NULL \
             ORDER BY office_hours_at, id"
        ))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(row).collect()
    }

    /// Records the agenda of `period` (listing `ids`), marks them listed
    /// and queues `messages`, in one transaction; false, changing and
    /// queueing nothing, when that period's agenda exists already.
    pub async fn record_agenda(
        &self,
        period: i64,
        platform: Platform,
        channel: &str,
        ids: &[String],
        at: i64,
        messages: &[OutboxItem],
    ) -> Result<bool, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let first = sqlx::query(
            "INSERT INTO office_hours_agendas (period, platform, channel, questions, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (period) DO NOTHING",
        )
        .bind(period)
        .bind(platform.as_str())
        .bind(channel)
        .bind(ids.len() as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for id in ids {
            sqlx::query(
                "UPDATE questions SET agenda_period = $1 WHERE id = $2 AND agenda_period IS NULL",
            )
            .bind(period)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        super::outbox::queue_and_commit(tx, messages, at).await?;
        Ok(true)
    }

    /// Whether the agenda of `period` was recorded.
    pub async fn agenda_recorded(&self, period: i64) -> Result<bool, StorageError> {
        let r = sqlx::query("SELECT period FROM office_hours_agendas WHERE period = $1")
            .bind(period)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(r.is_some())
    }

    /// Questions asked at or after `since` that the docs did not answer or
    /// that someone voted not helpful, newest first.
    pub async fn gaps(&self, since: i64) -> Result<Vec<GapRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT q.question, q.known, q.sources_json, q.created_at, \
             (SELECT COUNT(*) FROM question_votes v WHERE v.question_id = q.id AND v.helpful = 0) AS not_helpful \
             FROM questions q WHERE q.created_at >= $1 ORDER BY q.created_at DESC, q.id",
        )
        .bind(since)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let known = get_i64(r, "known")? != 0;
            let not_helpful = get_i64(r, "not_helpful")?;
            if known && not_helpful == 0 {
                continue;
            }
            let sources: Vec<Cited> = serde_json::from_str(&get_str(r, "sources_json")?)
                .map_err(|e| corrupt(e.to_string()))?;
            out.push(GapRow {
                question: get_str(r, "question")?,
                known,
                not_helpful,
                nearest: sources.into_iter().next(),
                created_at: get_i64(r, "created_at")?,
            });
        }
        Ok(out)
    }

    /// The question whose handoff was posted as `message_ref` in `channel`
    /// (Slack: a reply's `thread_ts`), or whose handoff post started the
    /// Discord thread `channel` (`message_ref` `None`).
    pub(super) async fn handoff_at(
        &self,
        platform: Platform,
        channel: &str,
        message_ref: Option<&str>,
    ) -> Result<Option<String>, StorageError> {
        let like = format!("{HANDOFF_PREFIX}%");
        let r = match message_ref {
            Some(m) => {
                sqlx::query(
                    "SELECT card_key FROM cards WHERE platform = $1 AND channel = $2 AND message_ref = $3 AND card_key LIKE $4 LIMIT 1",
                )
                .bind(platform.as_str())
                .bind(channel)
                .bind(m)
                .bind(like)
                .fetch_optional(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT card_key FROM cards WHERE platform = $1 AND message_ref = $2 AND card_key LIKE $3 LIMIT 1",
                )
                .bind(platform.as_str())
                .bind(channel)
                .bind(like)
                .fetch_optional(self.db.pool())
                .await?
            }
        };
        r.map(|r| {
            let key = get_str(&r, "card_key")?;
            Ok(key.strip_prefix(HANDOFF_PREFIX).unwrap_or(&key).to_owned())
        })
        .transpose()
    }
}

/// A fresh question id (`q-…`) or nonce.
pub fn new_token() -> String {
    super::requests::random_token(12)
}
