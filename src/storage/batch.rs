//! Group commit: small writes from many concurrent handlings share one
//! transaction (on SQLite; on PostgreSQL each runs alone, `Db::batched`).
//!
//! A commit costs far more than the statements in it: SQLite writes every
//! page a transaction touched to its log (the same index pages, over and
//! over, for a run of small inserts), PostgreSQL flushes its log. With a
//! transaction per event, the hot path spent its time committing (and, on
//! SQLite, with several connections, sleeping in the busy handler while
//! another held the write lock). Here one task takes what is queued, runs it
//! in one transaction and commits once; each caller hears back only after
//! that commit, so an acknowledged event is as durable as before.
//!
//! A write is a closure over the connection that may be run more than once:
//! when one write of a batch fails, the batch is rolled back and each write
//! is run again alone, so the failure is its own and the others commit. (On
//! PostgreSQL any error aborts the whole transaction, so there is no
//! carrying on past one.) A write must therefore do nothing but SQL, and
//! draw anything random or from the handling's context (ids, nonces, the
//! origin of a message) before it is queued.

use std::any::Any;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

use super::StorageError;

/// The most writes committed together: a bound on how long the first of
/// them waits for the last.
const MAX_BATCH: usize = 256;

type Output = Box<dyn Any + Send>;

/// One write, runnable again (see the module's note).
pub(crate) type Write = Arc<
    dyn for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<Output, StorageError>>
        + Send
        + Sync,
>;

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Output, StorageError>>,
}

/// The queue into the committing task (started on the first write).
#[derive(Clone, Debug)]
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Batcher {
    /// Starts the committing task on `pool`; it ends when the last handle
    /// to the queue is dropped.
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(pool, rx));
        Batcher { queue }
    }

    /// Runs `write` in the next batch; its result once the batch committed.
    pub(crate) async fn run<T, F>(&self, write: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StorageError>>
            + Send
            + Sync
            + 'static,
    {
        let write: Write = Arc::new(move |conn| {
            let fut = write(conn);
            Box::pin(async move { fut.await.map(|t| Box::new(t) as Output) })
        });
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { write, reply })
            .map_err(|_| StorageError::Corrupt("the commit task has stopped".into()))?;
        let out = answer
            .await
            .map_err(|_| StorageError::Corrupt("the commit task dropped a write".into()))??;
        Ok(*out
            .downcast::<T>()
            .expect("a write's output is the type it was queued with"))
    }
}

/// Runs `write` in a transaction of its own, at once (no batching).
pub(crate) async fn alone<T, F>(pool: &AnyPool, write: F) -> Result<T, StorageError>
where
    F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StorageError>>,
{
    let mut tx = pool.begin().await?;
    let out = write(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

async fn commit_loop(pool: AnyPool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (n, t0) = (jobs.len(), std::time::Instant::now());
        commit(&pool, std::mem::take(&mut jobs)).await;
        tracing::trace!(
            writes = n,
            elapsed_us = t0.elapsed().as_micros() as u64,
            "group commit"
        );
    }
}

/// Commits `jobs` together; should one fail, each alone.
async fn commit(pool: &AnyPool, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        match together(pool, &jobs).await {
            Ok(outputs) => {
                for (job, out) in jobs.into_iter().zip(outputs) {
                    let _ = job.reply.send(Ok(out));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(writes = jobs.len(), error = %e, "a batched write failed; committing each alone");
            }
        }
    }
    for job in jobs {
        let out = together(pool, std::slice::from_ref(&job)).await;
        let _ = job
            .reply
            .send(out.map(|mut o| o.pop().expect("one output")));
    }
}

async fn together(pool: &AnyPool, jobs: &[Job]) -> Result<Vec<Output>, StorageError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut outputs = Vec::with_capacity(jobs.len());
    for job in jobs {
        outputs.push((job.write)(&mut tx).await?);
    }
    tx.commit().await?;
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use super::StorageError;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/b.db", dir.path().display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
        (dir, db)
    }

    fn put(
        db: &Db,
        k: &str,
        v: i64,
    ) -> impl std::future::Future<Output = Result<u64, StorageError>> {
        let (db, k) = (db.clone(), k.to_owned());
        async move {
            db.batched(move |conn| {
                let k = k.clone();
                Box::pin(async move {
                    let done = sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                        .bind(k)
                        .bind(v)
                        .execute(conn)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
        }
    }

    #[tokio::test]
    async fn concurrent_writes_all_commit_and_each_hears_its_own_result() {
        let (_dir, db) = db().await;
        let writes: Vec<_> = (0..200).map(|i| put(&db, &format!("k{i}"), i)).collect();
        let results = futures_util::future::join_all(writes).await;
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
        let (n, sum): (i64, i64) = sqlx::query_as("SELECT COUNT(*), SUM(v) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!((n, sum), (200, (0..200).sum::<i64>()));
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_and_the_rest_of_its_batch_commits() {
        let (_dir, db) = db().await;
        put(&db, "taken", 0).await.unwrap();
        // Queued together: the duplicate key fails the batch, which is then
        // committed write by write.
        let mut writes: Vec<_> = (1..50).map(|i| put(&db, &format!("k{i}"), i)).collect();
        writes.insert(25, put(&db, "taken", 99));
        let results = futures_util::future::join_all(writes).await;
        let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert_eq!(failed.len(), 1, "{results:?}");
        assert!(results[25].is_err());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, 50);
        let v: i64 = sqlx::query_scalar("SELECT v FROM t WHERE k = 'taken'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(v, 0, "the failed write left nothing behind");
    }
}
