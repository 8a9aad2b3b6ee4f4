//! The inbox: inbound chat events stored before Paver acknowledges them,
//! handled from here, and marked done only once the engine has handled
//! them. A row's lease keeps two workers (or two replicas) from handling it
//! at once; a pending row whose lease ran out was left by a crash and is
//! taken again by recovery.

use sqlx::FromRow;

use super::{get_i64, now_ms, Db, StorageError};
use crate::domain::Platform;

/// A stored inbound event.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct InboxRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub platform: Platform,
    pub event_id: String,
    /// The adapter's own JSON for the work (typed by the adapter).
    pub payload: String,
    /// Handlings started so far, this one included.
    pub attempts: i64,
    pub received_at: i64,
}

/// What an inbox row looks like now (for checks and tests).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct InboxState {
    pub status: String,
    pub attempts: i64,
}

pub struct InboxStore<'a> {
    pub(super) db: &'a Db,
}

const COLUMNS: &str = "id, platform, event_id, payload, attempts, received_at";

impl InboxStore<'_> {
    /// Stores an event, held by the caller for `lease_ms` (the caller
    /// handles it at once). `None`: the event is already stored, so this is
    /// a redelivery, to be acknowledged and not handled again.
    pub async fn insert(
        &self,
        platform: Platform,
        event_id: &str,
        payload: &str,
        lease_ms: i64,
    ) -> Result<Option<InboxRow>, StorageError> {
        let now = now_ms();
        let (platform, event_id, payload) =
            (platform.as_str(), event_id.to_owned(), payload.to_owned());
        // Group-committed: the acknowledgement of a burst of events waits
        // for one commit, not for one each.
        self.db
            .batched(move |conn| {
                let (event_id, payload) = (event_id.clone(), payload.clone());
                Box::pin(async move {
                    let found = sqlx::query(&format!(
                        "INSERT INTO inbox (platform, event_id, payload, attempts, lease_until, received_at) \
                         VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (platform, event_id) DO NOTHING RETURNING {COLUMNS}"
                    ))
                    .bind(platform)
                    .bind(event_id)
                    .bind(payload)
                    .bind(now + lease_ms)
                    .bind(now)
                    .fetch_optional(conn)
                    .await?;
                    Ok(found.as_ref().map(InboxRow::from_row).transpose()?)
                })
            })
            .await
    }

    /// Takes up to `limit` pending rows of `platform` whose lease ran out,
    /// oldest first, each for `lease_ms` (and counts an attempt). The lease
    /// is taken by one conditional update, so two replicas never take the
    /// same row.
    pub async fn claim_stale(
        &self,
        platform: Platform,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<InboxRow>, StorageError> {
        let now = now_ms();
        let rows = sqlx::query(&format!(
            "UPDATE inbox SET lease_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM inbox WHERE platform = $2 AND status = 'pending' AND lease_until <= $3 ORDER BY id LIMIT $4) \
             AND status = 'pending' AND lease_until <= $5 RETURNING {COLUMNS}"
        ))
        .bind(now + lease_ms)
        .bind(platform.as_str())
        .bind(now)
        .bind(limit)
        .bind(now)
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(InboxRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Extends the lease of a row still being handled.
    pub async fn renew(&self, id: i64, lease_ms: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE inbox SET lease_until = $1 WHERE id = $2 AND status = 'pending'")
            .bind(now_ms() + lease_ms)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Gives a taken row back at once (it could not be started: too busy).
    pub async fn release(&self, id: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE inbox SET lease_until = 0, attempts = attempts - 1 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Records why a handling failed; the row stays pending, and is taken
    /// again once its lease runs out.
    pub async fn failed_attempt(&self, id: i64, error: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE inbox SET last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Group-committed, like the insert: a burst's events are marked done
    /// a batch at a time.
    pub async fn mark_done(&self, id: i64) -> Result<(), StorageError> {
        let now = now_ms();
        self.db
            .batched(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE inbox SET status = 'done', done_at = $1, lease_until = 0 WHERE id = $2",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Gives up on a row that failed too often (kept for the record until
    /// retention prunes it with the handled ones: `storage::retention`).
    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE inbox SET status = 'failed', last_error = $1, lease_until = 0 WHERE id = $2",
        )
        .bind(error)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Forgets handled events received before `before_ms`: their
    /// redeliveries (Slack retries within minutes) are long over. (The
    /// retention scheduler prunes in batches through `storage::retention`.)
    pub async fn purge_done(&self, before_ms: i64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM inbox WHERE status = 'done' AND received_at < $1")
            .bind(before_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn state(
        &self,
        platform: Platform,
        event_id: &str,
    ) -> Result<Option<InboxState>, StorageError> {
        let found =
            sqlx::query("SELECT status, attempts FROM inbox WHERE platform = $1 AND event_id = $2")
                .bind(platform.as_str())
                .bind(event_id)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(found.as_ref().map(InboxState::from_row).transpose()?)
    }

    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE status = 'pending'")
            .fetch_one(&self.db.pool)
            .await?;
        get_i64(&row, "n")
    }
}
