//! The durable job queue behind the executor.
//!
//! An approved request becomes a row here. Workers claim due rows with a
//! lease: on PostgreSQL the candidate row is locked with `FOR UPDATE SKIP
//! LOCKED`, so replicas never wait on each other; on SQLite (one writer)
//! the claim is the same conditional `UPDATE` without the lock clause. In
//! both, the `UPDATE … WHERE` on the state and lease is what makes a claim
//! exclusive. A worker renews its lease while it runs; a lease that runs out
//! (a crashed worker) makes the row claimable again, and the next claim
//! reports it as resumed.

use rand::Rng;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow};

use super::{get_i64, get_opt_i64, get_str, now_ms, Backend, Backlog, Db, StorageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
    }
    /// Queued or running: work left to do.
    pub fn is_live(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// The `state` column holds something this code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct UnknownJobStatus(pub String);

impl TryFrom<String> for JobStatus {
    type Error = UnknownJobStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        JobStatus::parse(&s).ok_or(UnknownJobStatus(s))
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct JobRow {
    pub id: String,
    pub request_id: String,
    pub generation: i64,
    pub idempotency_key: String,
    #[sqlx(rename = "state", try_from = "String")]
    pub status: JobStatus,
    /// Claims so far (a crashed run counts).
    pub attempts: i64,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub owner: Option<String>,
    pub last_error: Option<String>,
    pub checkpoint: Option<String>,
    pub callback: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A job a worker now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub job: JobRow,
    /// The row was `running` under a lease that ran out: an earlier run
    /// was interrupted and this claim picks it up.
    pub resumed: bool,
}

/// What became of an orchestrator's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStored {
    Stored,
    /// The job is over; the callback changes nothing.
    Finished,
    Unknown,
}

pub struct JobStore<'a> {
    pub(super) db: &'a Db,
}

const COLUMNS: &str = "id, request_id, generation, idempotency_key, state, attempts, run_at, lease_until, owner, last_error, checkpoint, callback, created_at, updated_at";

/// Due: queued and its time has come, or running under a lease that ran
/// out. Binds the current time twice, as `$n` and `$n+1`.
fn due(n: usize) -> String {
    format!(
        "((state = 'queued' AND run_at <= ${n}) OR (state = 'running' AND lease_until < ${}))",
        n + 1
    )
}

fn decode(row: &AnyRow) -> Result<JobRow, StorageError> {
    Ok(JobRow::from_row(row)?)
}

fn job_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let s: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("j-{s}")
}

/// The idempotency key of a request's nth run: `<request>:<action hash>`
/// for the first, with `:<n>` after each Retry press (a human asked for the
/// work to be done again; crashes and transient retries keep the key).
pub fn idempotency_key(request_id: &str, action_hash: &str, generation: i64) -> String {
    if generation <= 1 {
        format!("{request_id}:{action_hash}")
    } else {
        format!("{request_id}:{action_hash}:{generation}")
    }
}

impl JobStore<'_> {
    /// Queues a run of the request unless one is queued or running already;
    /// returns the live job either way.
    pub async fn enqueue(
        &self,
        request_id: &str,
        action_hash: &str,
    ) -> Result<JobRow, StorageError> {
        for _ in 0..3 {
            if let Some(live) = self.live_for(request_id).await? {
                return Ok(live);
            }
            let row = sqlx::query(
                "SELECT COALESCE(MAX(generation), 0) AS g FROM jobs WHERE request_id = $1",
            )
            .bind(request_id)
            .fetch_one(&self.db.pool)
            .await?;
            let generation = get_i64(&row, "g")? + 1;
            let now = now_ms();
            // A concurrent enqueue loses on the live-job index or the key.
            sqlx::query(
                "INSERT INTO jobs (id, request_id, generation, idempotency_key, state, run_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(job_id())
            .bind(request_id)
            .bind(generation)
            .bind(idempotency_key(request_id, action_hash, generation))
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        }
        self.live_for(request_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("cannot queue a job for {request_id}")))
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// The queued or running job of a request.
    pub async fn live_for(&self, request_id: &str) -> Result<Option<JobRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE request_id = $1 AND state IN ('queued', 'running')"
        ))
        .bind(request_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Every job of a request, oldest first.
    pub async fn for_request(&self, request_id: &str) -> Result<Vec<JobRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY generation"
        ))
        .bind(request_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Claims the next due job for `owner` with a lease of `lease_ms`.
    pub async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Claimed>, StorageError> {
        match self.db.backend {
            Backend::Postgres => {
                let mut tx = self.db.pool.begin().await?;
                let claimed = claim_on(&mut tx, " FOR UPDATE SKIP LOCKED", owner, lease_ms).await?;
                tx.commit().await?;
                Ok(claimed)
            }
            // One writer: no row locks; the conditional UPDATE decides.
            Backend::Sqlite => {
                let mut conn = self.db.pool.acquire().await?;
                claim_on(&mut conn, "", owner, lease_ms).await
            }
        }
    }

    /// Extends the lease; false when the job is no longer ours.
    pub async fn renew(&self, id: &str, owner: &str, lease_ms: i64) -> Result<bool, StorageError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND owner = $4 AND state = 'running'",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the job back to the queue, due in `delay_ms`.
    pub async fn reschedule(
        &self,
        id: &str,
        owner: &str,
        delay_ms: i64,
        error: &str,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, lease_until = NULL, owner = NULL, last_error = $2, updated_at = $3 \
             WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(now + delay_ms)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the job; false when it was no longer ours.
    pub async fn finish(
        &self,
        id: &str,
        owner: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, lease_until = NULL, last_error = COALESCE($2, last_error), updated_at = $3 \
             WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(status.as_str())
        .bind(error.map(str::to_owned))
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn save_checkpoint(&self, id: &str, value: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE jobs SET checkpoint = $1, updated_at = $2 WHERE id = $3")
            .bind(value)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn checkpoint(&self, id: &str) -> Result<Option<String>, StorageError> {
        Ok(self.get(id).await?.and_then(|j| j.checkpoint))
    }

    /// Records an orchestrator's status for a job (the latest wins).
    pub async fn store_callback(
        &self,
        id: &str,
        body: &str,
    ) -> Result<CallbackStored, StorageError> {
        let done = sqlx::query(
            "UPDATE jobs SET callback = $1, updated_at = $2 WHERE id = $3 AND state IN ('queued', 'running')",
        )
        .bind(body)
        .bind(now_ms())
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(CallbackStored::Stored);
        }
        Ok(match self.get(id).await? {
            Some(_) => CallbackStored::Finished,
            None => CallbackStored::Unknown,
        })
    }

    pub async fn callback(&self, id: &str) -> Result<Option<String>, StorageError> {
        Ok(self.get(id).await?.and_then(|j| j.callback))
    }

    /// Ends `owner`'s leases on its running jobs now (a graceful shutdown
    /// hands them back): the next claim, here or on another replica, resumes
    /// them. Returns how many.
    pub async fn release(&self, owner: &str) -> Result<u64, StorageError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE owner = $3 AND state = 'running'",
        )
        // Already past, so the row is due at once.
        .bind(now - 1)
        .bind(now)
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Jobs queued or running, whoever holds them.
    pub async fn live_count(&self) -> Result<i64, StorageError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running')")
                .fetch_one(&self.db.pool)
                .await?;
        get_i64(&row, "n")
    }

    /// Jobs queued and running, and since when the oldest of each was
    /// queued (`/metrics` reads it at each scrape). A state with no job
    /// is not listed.
    pub async fn backlog(&self) -> Result<Vec<Backlog<JobStatus>>, StorageError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs \
             WHERE state IN ('queued', 'running') GROUP BY state",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state = get_str(r, "state")?;
                Ok(Backlog {
                    of: JobStatus::parse(&state)
                        .ok_or_else(|| StorageError::Corrupt(format!("job state {state}")))?,
                    depth: get_i64(r, "n")?,
                    oldest_at: get_opt_i64(r, "oldest")?,
                })
            })
            .collect()
    }

    /// When the next job becomes due (a queued run time or a lease's end).
    pub async fn next_due(&self) -> Result<Option<i64>, StorageError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN state = 'queued' THEN run_at ELSE lease_until END) AS t FROM jobs WHERE state IN ('queued', 'running')",
        )
        .fetch_one(&self.db.pool)
        .await?;
        get_opt_i64(&row, "t")
    }
}

async fn claim_on(
    conn: &mut AnyConnection,
    lock: &str,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Claimed>, StorageError> {
    let now = now_ms();
    // A locked row is ours until commit: take one. Without locks (SQLite)
    // look at a few, in case another worker wins the first.
    let limit = if lock.is_empty() { 5 } else { 1 };
    let candidates = sqlx::query(&format!(
        "SELECT id, state FROM jobs WHERE {} ORDER BY run_at, id LIMIT {limit}{lock}",
        due(1)
    ))
    .bind(now)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for c in candidates {
        let id = get_str(&c, "id")?;
        let resumed = get_str(&c, "state")? == JobStatus::Running.as_str();
        let done = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id = $4 AND {}",
            due(5)
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(&id)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() != 1 {
            continue;
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *conn)
            .await?;
        return Ok(Some(Claimed {
            job: decode(&row)?,
            resumed,
        }));
    }
    Ok(None)
}
