//! Retention: what the retention scheduler prunes, and only that.
//!
//! Pruned by age: handled inbox events and `processed_events` rows (the
//! dedupe of chat redeliveries and deploy hooks), finished outbox rows
//! (sent, given up, superseded), superseded finished jobs, and
//! `callback_replay` signatures past their tolerance. Never pruned: a
//! pending inbox or outbox row, a queued or running job, the latest job of
//! a request, and the audit log (`requests`, `request_events`,
//! `approvals`), deploy events, questions and scorecard history.
//!
//! Each table is pruned in bounded batches (one `DELETE … WHERE key IN
//! (SELECT … LIMIT n)` per statement, looped until a batch comes back
//! short), so a large backlog never holds a long write lock: SQLite's one
//! writer and PostgreSQL's row locks are taken for one batch at a time.

use super::{Db, StorageError};

/// Rows per `DELETE` statement.
pub const BATCH: i64 = 1000;

/// What is old enough to go, as Unix-millisecond cutoffs: rows from
/// before a cutoff are pruned; `None` keeps the table whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// Handled (done or given-up) inbox events and `processed_events`.
    pub dedupe: Option<i64>,
    /// Sent, given-up and superseded outbox rows.
    pub outbox: Option<i64>,
    /// Finished jobs that a later job of the same request superseded.
    pub jobs: Option<i64>,
    /// Callback and hook signatures (their timestamps refuse them anyway).
    pub callback_replay: Option<i64>,
}

/// Rows pruned, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub inbox: u64,
    pub processed_events: u64,
    pub outbox: u64,
    pub jobs: u64,
    pub callback_replay: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.inbox + self.processed_events + self.outbox + self.jobs + self.callback_replay
    }
}

/// Inbox rows whose handling is over (`done`, or `failed`: given up),
/// received and finished before the cutoff. Pending rows (held or not)
/// never match.
const INBOX: &str = "DELETE FROM inbox WHERE id IN (\
    SELECT id FROM inbox WHERE status IN ('done', 'failed') AND received_at < $1 \
    AND (done_at IS NULL OR done_at < $2) ORDER BY received_at LIMIT $3) \
  AND status IN ('done', 'failed')";

const PROCESSED_EVENTS: &str = "DELETE FROM processed_events WHERE (platform, event_id) IN (\
    SELECT platform, event_id FROM processed_events WHERE at < $1 ORDER BY at LIMIT $2)";

/// Outbox rows that will never be sent again: delivered, given up, or
/// superseded by a later update of the same card. Pending rows never match.
const OUTBOX: &str = "DELETE FROM outbox WHERE id IN (\
    SELECT id FROM outbox WHERE status IN ('sent', 'failed', 'superseded') AND created_at < $1 \
    AND (sent_at IS NULL OR sent_at < $2) ORDER BY id LIMIT $3) \
  AND status IN ('sent', 'failed', 'superseded')";

/// Finished jobs with a later generation of the same request. The latest
/// job of each request is kept whatever its age: the next Retry's
/// generation is `MAX(generation) + 1` (`storage::jobs`), and the
/// idempotency key is built from the generation, so deleting the latest
/// would let a Retry reuse a key a driver has already seen (and skip the
/// work as done). Older generations are below the kept maximum, so their
/// keys can never come back.
const JOBS: &str = "DELETE FROM jobs WHERE id IN (\
    SELECT j.id FROM jobs AS j WHERE j.state IN ('succeeded', 'failed') AND j.updated_at < $1 \
    AND EXISTS (SELECT 1 FROM jobs AS later \
      WHERE later.request_id = j.request_id AND later.generation > j.generation) \
    ORDER BY j.updated_at LIMIT $2) \
  AND state IN ('succeeded', 'failed')";

const CALLBACK_REPLAY: &str = "DELETE FROM callback_replay WHERE signature IN (\
    SELECT signature FROM callback_replay WHERE seen_at < $1 ORDER BY seen_at LIMIT $2)";

pub struct RetentionStore<'a> {
    pub(super) db: &'a Db,
}

impl RetentionStore<'_> {
    /// Prunes every table whose cutoff is set, `batch` rows per statement.
    pub async fn prune(&self, cut: &Cutoffs, batch: i64) -> Result<Pruned, StorageError> {
        let batch = batch.max(1);
        let mut out = Pruned::default();
        if let Some(t) = cut.dedupe {
            out.inbox = self.drain(INBOX, &[t, t], batch).await?;
            out.processed_events = self.drain(PROCESSED_EVENTS, &[t], batch).await?;
        }
        if let Some(t) = cut.outbox {
            out.outbox = self.drain(OUTBOX, &[t, t], batch).await?;
        }
        if let Some(t) = cut.jobs {
            out.jobs = self.drain(JOBS, &[t], batch).await?;
        }
        if let Some(t) = cut.callback_replay {
            out.callback_replay = self.drain(CALLBACK_REPLAY, &[t], batch).await?;
        }
        Ok(out)
    }

    /// Runs `sql` (the cutoffs bound first, then the batch size) until a
    /// batch deletes fewer than `batch` rows. Each statement is its own
    /// transaction.
    async fn drain(&self, sql: &str, cutoffs: &[i64], batch: i64) -> Result<u64, StorageError> {
        let mut total = 0;
        loop {
            let mut q = sqlx::query(sql);
            for c in cutoffs {
                q = q.bind(*c);
            }
            let n = q.bind(batch).execute(self.db.pool()).await?.rows_affected();
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
            // Let the handlers' writes in between batches.
            tokio::task::yield_now().await;
        }
    }
}
