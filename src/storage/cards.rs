//! Copies of a request's card where its approvers look, and what they were
//! told about each approval round. A copy is a card of its own (the
//! `cards` table holds its message ref under its key) that is updated
//! with the original; a round's notice is recorded once, and the messages
//! it sends are queued in the same transaction, so a retry, a recovery or
//! another replica can never send them twice, and a crash never records a
//! notice whose messages were not queued.

use super::outbox::OutboxItem;
use super::{get_i64, get_str, now_ms, Db, StorageError};
use crate::domain::Platform;

/// Who a copy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Posted in a channel, mentioning the approvers.
    Channel,
    /// Sent to one approver directly.
    Direct,
}

impl Audience {
    fn as_str(self) -> &'static str {
        match self {
            Audience::Channel => "channel",
            Audience::Direct => "dm",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "channel" => Some(Audience::Channel),
            "dm" => Some(Audience::Direct),
            _ => None,
        }
    }
}

/// One copy of a request's card.
#[derive(Debug, Clone, PartialEq)]
pub struct CardCopy {
    /// Its own card key (`{request}#approvers`, `{request}#dm:{user}`).
    pub card_key: String,
    pub request_id: String,
    pub platform: Platform,
    pub channel: String,
    pub audience: Audience,
    /// Whom it asked, as the chat writes them (`<@U0DAVE>`), kept so every
    /// update of the copy names the same people the post did.
    pub mentions: Vec<String>,
}

/// What approvers are told about a round, once each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Asked: the copies posted (or, for copies an earlier round left,
    /// asked again under them).
    Asked,
    /// Reminded before the approval expires.
    Reminded,
}

impl Notice {
    fn as_str(self) -> &'static str {
        match self {
            Notice::Asked => "asked",
            Notice::Reminded => "reminded",
        }
    }
}

/// One time policy asked a request's approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub id: i64,
    /// The policy rule that asked.
    pub rule: String,
}

pub struct CardStore<'a> {
    pub(super) db: &'a Db,
}

impl CardStore<'_> {
    /// The copies of request `request_id`'s card, oldest first.
    pub async fn copies_of(&self, request_id: &str) -> Result<Vec<CardCopy>, StorageError> {
        let rows = sqlx::query(
            "SELECT card_key, request_id, platform, channel, audience, mentions_json FROM card_copies \
             WHERE request_id = $1 ORDER BY created_at, card_key",
        )
        .bind(request_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let key = get_str(r, "card_key")?;
                let corrupt =
                    |what: &str| StorageError::Corrupt(format!("card copy {key}: {what}"));
                let platform = get_str(r, "platform")?;
                let audience = get_str(r, "audience")?;
                Ok(CardCopy {
                    request_id: get_str(r, "request_id")?,
                    platform: Platform::parse(&platform).ok_or_else(|| corrupt(&platform))?,
                    channel: get_str(r, "channel")?,
                    audience: Audience::parse(&audience).ok_or_else(|| corrupt(&audience))?,
                    mentions: serde_json::from_str(&get_str(r, "mentions_json")?)
                        .map_err(|e| corrupt(&e.to_string()))?,
                    card_key: key,
                })
            })
            .collect()
    }

    /// The current approval round of a request: its latest `need_approval`
    /// event (each time policy asks approvers, a new one), whose id names
    /// the round and whose detail is the policy rule that asked.
    pub async fn approval_round(&self, request_id: &str) -> Result<Option<Round>, StorageError> {
        let row = sqlx::query(
            "SELECT id, detail FROM request_events WHERE request_id = $1 AND transition = 'need_approval' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(request_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| {
            Ok(Round {
                id: get_i64(&r, "id")?,
                rule: get_str(&r, "detail")?,
            })
        })
        .transpose()
    }

    /// Records `notice` for `round` of the request, the `copies` new to it,
    /// and queues `items`, in one transaction. Returns false, recording and
    /// queueing nothing, when the notice was already given (by this process
    /// before, or by another replica) or the request no longer waits for
    /// approval.
    pub async fn tell_once(
        &self,
        request_id: &str,
        round: i64,
        notice: Notice,
        copies: &[CardCopy],
        items: &[OutboxItem],
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.db.pool.begin().await?;
        // Only while the request still waits: a decision that got in first
        // has updated every recorded copy, and a copy recorded after it
        // would keep buttons nobody may press any more.
        let first = sqlx::query(
            "INSERT INTO approval_notices (request_id, round, kind, at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
               (SELECT 1 FROM requests WHERE id = $5 AND state = 'awaiting_approval') \
             ON CONFLICT DO NOTHING",
        )
        .bind(request_id)
        .bind(round)
        .bind(notice.as_str())
        .bind(now)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for c in copies {
            let mentions = serde_json::to_string(&c.mentions).expect("strings serialize");
            sqlx::query(
                "INSERT INTO card_copies (card_key, request_id, platform, channel, audience, mentions_json, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (card_key) DO NOTHING",
            )
            .bind(&c.card_key)
            .bind(&c.request_id)
            .bind(c.platform.as_str())
            .bind(&c.channel)
            .bind(c.audience.as_str())
            .bind(mentions)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The outbox's own insert, inside this transaction: the notice and
        // its messages commit together or not at all.
        super::outbox::queue_and_commit(tx, items, now).await?;
        Ok(true)
    }

    /// How many times approvers were told `notice` about request
    /// `request_id` (any round).
    pub async fn notices(&self, request_id: &str, notice: Notice) -> Result<i64, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM approval_notices WHERE request_id = $1 AND kind = $2",
        )
        .bind(request_id)
        .bind(notice.as_str())
        .fetch_one(&self.db.pool)
        .await?;
        get_i64(&row, "n")
    }
}
