//! The inbox: inbound chat events stored before Paver acknowledges them,
//! handled from here, and marked done only once the engine has handled
//! them. A row's lease keeps two workers (or two replicas) from handling it
//! at once; a pending row whose lease ran out was left by a crash and is
//! taken again by recovery.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, FromRow};

use super::batch::{self, Grouped};
use super::{get_i64, now_ms, Backend, Db, StorageError};
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

/// An event to store (`InboxStore::insert`), grouped with a batch's others.
struct NewEvent {
    platform: Platform,
    event_id: String,
    payload: String,
    lease_until: i64,
    now: i64,
}

impl Grouped for NewEvent {
    /// `None`: stored before (a redelivery), or earlier in this batch.
    type Out = Option<InboxRow>;
    type Key = (&'static str, String);
    const ORDER: u8 = 10;

    fn key(&self) -> Self::Key {
        (self.platform.as_str(), self.event_id.clone())
    }

    fn run_all(
        conn: &mut AnyConnection,
        ops: Vec<Arc<Self>>,
    ) -> BoxFuture<'_, Result<Vec<Self::Out>, StorageError>> {
        Box::pin(async move {
            let mut stored = HashMap::new();
            for range in batch::chunks(ops.len()) {
                let sql = format!(
                    "INSERT INTO inbox (platform, event_id, payload, attempts, lease_until, received_at) \
                     VALUES {} ON CONFLICT (platform, event_id) DO NOTHING RETURNING {COLUMNS}",
                    batch::values(range.len(), 6)
                );
                let mut q = sqlx::query(&sql);
                for op in &ops[range] {
                    q = q
                        .bind(op.platform.as_str())
                        .bind(op.event_id.as_str())
                        .bind(op.payload.as_str())
                        .bind(1_i64)
                        .bind(op.lease_until)
                        .bind(op.now);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let row = InboxRow::from_row(&row)?;
                    stored.insert((row.platform, row.event_id.clone()), row);
                }
            }
            // A row goes to the first of its event's inserts: a second copy
            // in the same batch (Slack's retry racing the original) is a
            // redelivery like any other.
            Ok(ops
                .iter()
                .map(|op| stored.remove(&(op.platform, op.event_id.clone())))
                .collect())
        })
    }
}

/// A handled event to mark done (`InboxStore::mark_done`).
struct Done {
    id: i64,
    at: i64,
}

impl Grouped for Done {
    type Out = ();
    type Key = i64;
    const ORDER: u8 = 40;

    fn key(&self) -> i64 {
        self.id
    }

    fn run_all(
        conn: &mut AnyConnection,
        ops: Vec<Arc<Self>>,
    ) -> BoxFuture<'_, Result<Vec<()>, StorageError>> {
        Box::pin(async move {
            // One time for the group: they are done as of this commit.
            let at = ops.iter().map(|o| o.at).max().unwrap_or_default();
            let ids: Vec<i64> = ops.iter().map(|o| o.id).collect();
            batch::update_ids(
                conn,
                "UPDATE inbox SET status = 'done', done_at = $1, lease_until = 0",
                at,
                &ids,
            )
            .await?;
            Ok(vec![(); ops.len()])
        })
    }
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
        // Group-committed: the acknowledgement of a burst of events waits
        // for one commit, and their inserts are a few statements.
        self.db
            .grouped(NewEvent {
                platform,
                event_id: event_id.to_owned(),
                payload: payload.to_owned(),
                lease_until: now + lease_ms,
                now,
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
        // Rows another replica is taking are passed over (PostgreSQL), as
        // in the outbox's claim.
        let lock = match self.db.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE inbox SET lease_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM inbox WHERE platform = $2 AND status = 'pending' AND lease_until <= $3 ORDER BY id LIMIT $4{lock}) \
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
        self.db.grouped(Done { id, at: now_ms() }).await
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

#[cfg(test)]
mod tests {
    use super::super::Db;
    use crate::domain::Platform;

    /// Slack retries an event it thinks was lost while the first delivery
    /// is still being stored: both copies may land in one batch's insert.
    #[tokio::test]
    async fn an_event_delivered_twice_at_once_is_handled_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/i.db", dir.path().display()))
            .await
            .unwrap();
        let deliveries: Vec<_> = (0..40)
            .map(|i| {
                let db = db.clone();
                async move {
                    let event = format!("Ev{}", i % 20);
                    db.inbox()
                        .insert(Platform::Slack, &event, &format!("{{\"n\":{i}}}"), 30_000)
                        .await
                        .unwrap()
                }
            })
            .collect();
        let taken: Vec<_> = futures_util::future::join_all(deliveries)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut events: Vec<_> = taken.iter().map(|r| r.event_id.clone()).collect();
        events.sort();
        events.dedup();
        assert_eq!((taken.len(), events.len()), (20, 20), "{taken:?}");
        for row in &taken {
            let n: i64 = row.event_id[2..].parse().unwrap();
            assert!(
                row.payload == format!("{{\"n\":{n}}}")
                    || row.payload == format!("{{\"n\":{}}}", n + 20)
            );
            assert_eq!(row.attempts, 1);
        }
        let inbox = db.inbox();
        let done: Vec<_> = taken.iter().map(|r| inbox.mark_done(r.id)).collect();
        for r in futures_util::future::join_all(done).await {
            r.unwrap();
        }
        assert_eq!(db.inbox().pending_count().await.unwrap(), 0);
        let state = db
            .inbox()
            .state(Platform::Slack, "Ev7")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.status, "done");
    }
}
