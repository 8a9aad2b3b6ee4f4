//! Scorecard nags: each team's digests (one per period, recorded with the
//! messages it queues), the failing checks they listed with their buttons'
//! nonces, snoozes and won't-fix marks. (The schedulers' leases, in the
//! table still named `nag_lease`, are `storage::leases`.)

use serde::{Deserialize, Serialize};

use super::outbox::OutboxItem;
use super::{get_i64, get_opt_i64, get_opt_str, get_str, Db, StorageError};

/// One line of a digest: a failing check of a service, as it was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub service: String,
    pub check: String,
    /// `critical`, `high`, `medium`, `low`.
    pub weight: String,
    /// The line that says what fails and how to fix it.
    pub line: String,
    /// The service's level words when listed (`below Bronze`, `Silver`).
    pub level: String,
    /// Its buttons' target; `None` for a won't-fix line (no buttons).
    pub item: Option<String>,
    /// Set when the team said it won't fix it: why, and who said so.
    pub wont_fix: Option<(String, String)>,
}

impl DigestEntry {
    /// `service/check`: how digests compare their lines.
    pub fn key(&self) -> String {
        format!("{}/{}", self.service, self.check)
    }
}

/// What a digest says, as recorded: its lines and what changed since the
/// team's previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestBody {
    pub entries: Vec<DigestEntry>,
    /// `service/check` keys failing now that the previous digest did not list.
    pub newly_failing: Vec<String>,
    /// Keys the previous digest listed that pass now.
    pub fixed: Vec<String>,
    /// The team's first digest: nothing to compare with.
    pub first: bool,
    /// Failing checks left out because someone snoozed them.
    pub snoozed: usize,
}

/// A digest as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestRow {
    pub id: i64,
    /// The team's name, or [`UNOWNED`].
    pub team: String,
    /// The cron fire time it is for (Unix ms).
    pub period: i64,
    pub card_key: String,
    pub platform: String,
    pub channel: String,
    pub body: DigestBody,
    /// `service/check` keys this digest escalated.
    pub escalated: Vec<String>,
    pub at: i64,
}

/// The digest of services nobody owns, told to the platform channels.
pub const UNOWNED: &str = "*unowned";

/// A digest to record.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub team: String,
    pub period: i64,
    pub card_key: String,
    pub platform: String,
    pub channel: String,
    pub body: DigestBody,
    pub escalated: Vec<String>,
    pub at: i64,
}

/// A failing check listed in a digest: what its buttons act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NagItem {
    pub id: String,
    pub nonce: String,
    pub digest_id: i64,
    pub service: String,
    pub check: String,
    /// `open`, `snoozed`, `wont_fix`, `passing`, `failing`.
    pub state: String,
    /// Who did what to it, for its line (`snoozed by alice until …`).
    pub note: Option<String>,
    pub at: i64,
}

/// What the team said about a check: hide it until a time, or it won't
/// be fixed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    Snoozed { until: i64 },
    WontFix { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub service: String,
    pub check: String,
    pub kind: MarkKind,
    pub by: String,
    pub at: i64,
}

fn corrupt(what: String) -> StorageError {
    StorageError::Corrupt(format!("nags: {what}"))
}

pub struct NagStore<'a> {
    pub(super) db: &'a Db,
}

const DIGEST_COLUMNS: &str =
    "id, team, period, card_key, platform, channel, entries_json, escalated, at";

fn digest_row(r: &sqlx::any::AnyRow) -> Result<DigestRow, StorageError> {
    let id = get_i64(r, "id")?;
    Ok(DigestRow {
        id,
        team: get_str(r, "team")?,
        period: get_i64(r, "period")?,
        card_key: get_str(r, "card_key")?,
        platform: get_str(r, "platform")?,
        channel: get_str(r, "channel")?,
        body: serde_json::from_str(&get_str(r, "entries_json")?)
            .map_err(|e| corrupt(format!("digest {id}: {e}")))?,
        escalated: serde_json::from_str(&get_str(r, "escalated")?)
            .map_err(|e| corrupt(format!("digest {id}: {e}")))?,
        at: get_i64(r, "at")?,
    })
}

fn item_row(r: &sqlx::any::AnyRow) -> Result<NagItem, StorageError> {
    Ok(NagItem {
        id: get_str(r, "id")?,
        nonce: get_str(r, "nonce")?,
        digest_id: get_i64(r, "digest_id")?,
        service: get_str(r, "service")?,
        check: get_str(r, "check_name")?,
        state: get_str(r, "state")?,
        note: get_opt_str(r, "note")?,
        at: get_i64(r, "at")?,
    })
}

impl NagStore<'_> {
    /// The team's latest digests, newest first.
    pub async fn recent(&self, team: &str, limit: i64) -> Result<Vec<DigestRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {DIGEST_COLUMNS} FROM nag_digests WHERE team = $1 ORDER BY period DESC, id DESC LIMIT $2"
        ))
        .bind(team)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(digest_row).collect()
    }

    /// How many digests the team got at or after `since`.
    pub async fn sent_since(&self, team: &str, since: i64) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM nag_digests WHERE team = $1 AND at >= $2")
            .bind(team)
            .bind(since)
            .fetch_one(self.db.pool())
            .await?;
        get_i64(&row, "n")
    }

    pub async fn digest(&self, id: i64) -> Result<Option<DigestRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {DIGEST_COLUMNS} FROM nag_digests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(digest_row).transpose()
    }

    /// Records a digest, its items and the messages it sends, in one
    /// transaction. `None`, recording and queueing nothing, when the
    /// team's digest for that period exists already (another replica, a
    /// retry): a period's digest is sent once.
    pub async fn record(
        &self,
        digest: &NewDigest,
        items: &[NagItem],
        messages: &[OutboxItem],
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let entries = serde_json::to_string(&digest.body).expect("digests serialize");
        let escalated = serde_json::to_string(&digest.escalated).expect("strings serialize");
        let row = sqlx::query(
            "INSERT INTO nag_digests (team, period, card_key, platform, channel, entries_json, escalated, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (team, period) DO NOTHING RETURNING id",
        )
        .bind(&digest.team)
        .bind(digest.period)
        .bind(&digest.card_key)
        .bind(&digest.platform)
        .bind(&digest.channel)
        .bind(entries)
        .bind(escalated)
        .bind(digest.at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id = get_i64(&row, "id")?;
        for item in items {
            sqlx::query(
                "INSERT INTO nag_items (id, nonce, digest_id, service, check_name, state, note, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&item.id)
            .bind(&item.nonce)
            .bind(id)
            .bind(&item.service)
            .bind(&item.check)
            .bind(&item.state)
            .bind(item.note.clone())
            .bind(digest.at)
            .execute(&mut *tx)
            .await?;
        }
        // The outbox's own insert, inside this transaction: the digest and
        // its messages commit together or not at all; the dispatcher then
        // retries a failed send, and nothing sends it twice.
        super::outbox::queue_and_commit(tx, messages, super::now_ms()).await?;
        Ok(Some(id))
    }

    pub async fn item(&self, id: &str) -> Result<Option<NagItem>, StorageError> {
        let row = sqlx::query(
            "SELECT id, nonce, digest_id, service, check_name, state, note, at FROM nag_items WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(item_row).transpose()
    }

    pub async fn items_of(&self, digest_id: i64) -> Result<Vec<NagItem>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, nonce, digest_id, service, check_name, state, note, at FROM nag_items WHERE digest_id = $1 ORDER BY id",
        )
        .bind(digest_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(item_row).collect()
    }

    /// Sets an item's state and note (after a press).
    pub async fn set_item(
        &self,
        id: &str,
        state: &str,
        note: Option<&str>,
        at: i64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE nag_items SET state = $1, note = $2, at = $3 WHERE id = $4")
            .bind(state)
            .bind(note.map(str::to_owned))
            .bind(at)
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Marks a check of a service (replacing an earlier mark).
    pub async fn mark(&self, m: &Mark) -> Result<(), StorageError> {
        let (kind, until, reason) = match &m.kind {
            MarkKind::Snoozed { until } => ("snoozed", Some(*until), None),
            MarkKind::WontFix { reason } => ("wont_fix", None, Some(reason.clone())),
        };
        sqlx::query(
            "INSERT INTO nag_marks (service, check_name, kind, until, reason, by_whom, at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (service, check_name) DO UPDATE SET kind = excluded.kind, until = excluded.until, \
             reason = excluded.reason, by_whom = excluded.by_whom, at = excluded.at",
        )
        .bind(&m.service)
        .bind(&m.check)
        .bind(kind)
        .bind(until)
        .bind(reason)
        .bind(&m.by)
        .bind(m.at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Every mark (snoozes that ran out included: the caller compares).
    pub async fn marks(&self) -> Result<Vec<Mark>, StorageError> {
        let rows = sqlx::query(
            "SELECT service, check_name, kind, until, reason, by_whom, at FROM nag_marks ORDER BY service, check_name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind = match get_str(r, "kind")?.as_str() {
                    "snoozed" => MarkKind::Snoozed {
                        until: get_opt_i64(r, "until")?.unwrap_or(0),
                    },
                    "wont_fix" => MarkKind::WontFix {
                        reason: get_opt_str(r, "reason")?.unwrap_or_default(),
                    },
                    other => return Err(corrupt(format!("mark kind {other}"))),
                };
                Ok(Mark {
                    service: get_str(r, "service")?,
                    check: get_str(r, "check_name")?,
                    kind,
                    by: get_str(r, "by_whom")?,
                    at: get_i64(r, "at")?,
                })
            })
            .collect()
    }
}

/// A fresh item id or nonce (random, so replicas never pick the same one).
pub fn new_token() -> String {
    super::requests::random_token(12)
}
