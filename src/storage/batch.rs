//! Group commit: small writes from many concurrent handlings share one
//! transaction. Closures (`Db::batched`) are batched on SQLite only;
//! [`Grouped`] writes (`Db::grouped`) on both backends.
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
//!
//! The hottest writes are [`Grouped`]: each kind's writes in a batch run
//! as a few multi-row statements (one `INSERT … VALUES (…), (…)` for the
//! batch's events), not one statement each: every statement is a
//! hand-off to sqlx's SQLite thread and back, and with one per row those
//! hand-offs cost a committing task as much as SQLite's own work.
//! They take their locks in one order (see [`Grouped`]), which is what
//! lets PostgreSQL replicas batch them too: closures, whose locks no order
//! binds, run alone there.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
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

/// A kind of write whose instances in one batch run together, as a few
/// multi-row statements.
///
/// Within a transaction the batch's groups run in the order of
/// [`Grouped::ORDER`], each group's writes in the order of their
/// [`Grouped::key`], and the closures last. Every batch thus writes its
/// rows in one global order, so batches on several PostgreSQL replicas
/// that insert the same rows (an event Slack delivered to two replicas)
/// wait for each other instead of deadlocking. (An `UPDATE … WHERE id IN`
/// locks in the order PostgreSQL scans; the rows a replica updates are
/// its own claims, which no other replica's batch touches.)
pub(crate) trait Grouped: Send + Sync + Sized + 'static {
    type Out: Send + 'static;
    /// What this write locks, ordered as all writes of its kind lock.
    type Key: Ord;
    /// Where this kind's group runs among a batch's groups (unique).
    const ORDER: u8;
    fn key(&self) -> Self::Key;
    /// Runs `ops` (sorted by key; equal keys in queue order) together:
    /// one output per op, in order.
    fn run_all(
        conn: &mut AnyConnection,
        ops: Vec<Arc<Self>>,
    ) -> BoxFuture<'_, Result<Vec<Self::Out>, StorageError>>;
}

type Op = Arc<dyn Any + Send + Sync>;
type RunAll =
    for<'c> fn(&'c mut AnyConnection, Vec<Op>) -> BoxFuture<'c, Result<Vec<Output>, StorageError>>;

/// `G::run_all` over type-erased ops (all of them `G`s: grouped by type).
fn run_erased<G: Grouped>(
    conn: &mut AnyConnection,
    ops: Vec<Op>,
) -> BoxFuture<'_, Result<Vec<Output>, StorageError>> {
    let mut ops: Vec<(usize, Arc<G>)> = ops
        .into_iter()
        .map(|o| o.downcast::<G>().expect("a group holds one type"))
        .enumerate()
        .collect();
    // Stable: of equal keys the first queued runs first.
    ops.sort_by_cached_key(|(_, op)| op.key());
    let (at, ops): (Vec<usize>, Vec<Arc<G>>) = ops.into_iter().unzip();
    Box::pin(async move {
        let n = ops.len();
        let outs = G::run_all(conn, ops).await?;
        if outs.len() != n {
            return Err(StorageError::Corrupt(format!(
                "a grouped write answered {} of {n}",
                outs.len()
            )));
        }
        // Back in queue order.
        let mut placed: Vec<Option<Output>> = (0..n).map(|_| None).collect();
        for (i, out) in at.into_iter().zip(outs) {
            placed[i] = Some(Box::new(out) as Output);
        }
        Ok(placed.into_iter().flatten().collect())
    })
}

enum Work {
    One(Write),
    Grouped {
        order: u8,
        kind: TypeId,
        op: Op,
        run: RunAll,
    },
}

struct Job {
    work: Work,
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
        self.queue_work(Work::One(write)).await
    }

    /// Runs `op` with the next batch's others of its kind; its output once
    /// the batch committed.
    pub(crate) async fn run_grouped<G: Grouped>(&self, op: G) -> Result<G::Out, StorageError> {
        self.queue_work(Work::Grouped {
            order: G::ORDER,
            kind: TypeId::of::<G>(),
            op: Arc::new(op),
            run: run_erased::<G>,
        })
        .await
    }

    async fn queue_work<T: Send + 'static>(&self, work: Work) -> Result<T, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { work, reply })
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
        // A connection is held while writes keep coming and given back when
        // the queue runs dry. Taken from the pool for every batch, it was
        // queued behind every reader waiting for one: on PostgreSQL, where
        // a handling's reads each take a connection, acknowledgements
        // waited hundreds of milliseconds behind them.
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let why = e.to_string();
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(StorageError::Sqlx(sqlx::Error::Io(
                        std::io::Error::other(format!("no connection to commit on: {why}")),
                    ))));
                }
                continue;
            }
        };
        loop {
            let (n, t0) = (jobs.len(), std::time::Instant::now());
            let committed = commit(&mut conn, std::mem::take(&mut jobs)).await;
            tracing::trace!(
                writes = n,
                elapsed_us = t0.elapsed().as_micros() as u64,
                "group commit"
            );
            if !committed {
                // It may be the connection that failed: a fresh one next.
                break;
            }
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if jobs.is_empty() {
                break;
            }
        }
    }
}

/// Commits `jobs` together; should that fail, each alone. Whether they
/// committed together.
async fn commit(conn: &mut AnyConnection, jobs: Vec<Job>) -> bool {
    let error = match together(conn, &jobs).await {
        Ok(outputs) => {
            for (job, out) in jobs.into_iter().zip(outputs) {
                let _ = job.reply.send(Ok(out));
            }
            return true;
        }
        Err(e) if jobs.len() == 1 => e,
        Err(e) => {
            tracing::debug!(writes = jobs.len(), error = %e, "a batched write failed; committing each alone");
            for job in jobs {
                let out = together(conn, std::slice::from_ref(&job)).await;
                let _ = job
                    .reply
                    .send(out.map(|mut o| o.pop().expect("one output")));
            }
            return false;
        }
    };
    let job = jobs.into_iter().next().expect("one job");
    let _ = job.reply.send(Err(error));
    false
}

async fn together(conn: &mut AnyConnection, jobs: &[Job]) -> Result<Vec<Output>, StorageError> {
    let mut tx = conn.begin().await?;
    let mut outputs: Vec<Option<Output>> = jobs.iter().map(|_| None).collect();
    let mut groups: BTreeMap<(u8, TypeId), (RunAll, Vec<usize>)> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Work::Grouped {
            order, kind, run, ..
        } = &job.work
        {
            groups
                .entry((*order, *kind))
                .or_insert((*run, Vec::new()))
                .1
                .push(i);
        }
    }
    for (run, members) in groups.into_values() {
        let ops = members
            .iter()
            .map(|&i| match &jobs[i].work {
                Work::Grouped { op, .. } => op.clone(),
                Work::One(_) => unreachable!("only grouped jobs are members"),
            })
            .collect();
        for (i, out) in members.into_iter().zip(run(&mut tx, ops).await?) {
            outputs[i] = Some(out);
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        if let Work::One(write) = &job.work {
            outputs[i] = Some(write(&mut tx).await?);
        }
    }
    tx.commit().await?;
    Ok(outputs
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect())
}

/// Splits `n` rows into chunks of powers of two, largest first: a
/// multi-row statement's text depends on its row count, and so at most a
/// handful of texts per kind are ever prepared (and cached).
pub(crate) fn chunks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = n - start;
        if left == 0 {
            return None;
        }
        let size = 1 << (usize::BITS - 1 - left.leading_zeros());
        let range = start..start + size;
        start += size;
        Some(range)
    })
}

/// `($1, $2), ($3, $4)`: the VALUES of `rows` rows of `columns` parameters.
pub(crate) fn values(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * columns + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// Runs `update` (an `UPDATE … SET …` whose `$1` is `at`) on the rows
/// `ids`, a chunk of `WHERE id IN (…)` at a time.
pub(crate) async fn update_ids(
    conn: &mut AnyConnection,
    update: &str,
    at: i64,
    ids: &[i64],
) -> Result<(), StorageError> {
    for range in chunks(ids.len()) {
        let sql = format!("{update} WHERE id IN ({})", params(2, range.len()));
        let mut q = sqlx::query(&sql).bind(at);
        for id in &ids[range] {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$first, …`: a list of `n` parameters from `$first` on (for `IN (…)`).
pub(crate) fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use sqlx::AnyConnection;

    use super::super::Db;
    use super::{chunks, params, values, Grouped, StorageError};

    #[test]
    fn rows_are_split_into_powers_of_two_largest_first() {
        let sizes = |n| chunks(n).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(57), [32, 16, 8, 1]);
        assert_eq!(sizes(256), [256]);
        let ranges: Vec<_> = chunks(7).collect();
        assert_eq!(ranges, [0..4, 4..6, 6..7]);
    }

    #[test]
    fn placeholders_number_rows_and_lists_in_order() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 1), "($1)");
        assert_eq!(params(2, 3), "$2, $3, $4");
    }

    /// A grouped write for the tests: one multi-row insert for the batch's
    /// puts, each answered with what was stored under its key.
    struct Put {
        k: String,
        v: i64,
    }

    impl Grouped for Put {
        type Out = i64;
        /// Against queue order, so that answers must be put back in it.
        type Key = std::cmp::Reverse<i64>;
        const ORDER: u8 = 0;

        fn key(&self) -> Self::Key {
            std::cmp::Reverse(self.v)
        }

        fn run_all(
            conn: &mut AnyConnection,
            ops: Vec<Arc<Self>>,
        ) -> BoxFuture<'_, Result<Vec<i64>, StorageError>> {
            Box::pin(async move {
                let mut stored = std::collections::HashMap::new();
                for range in chunks(ops.len()) {
                    let sql = format!(
                        "INSERT INTO t (k, v) VALUES {} RETURNING k, v",
                        values(range.len(), 2)
                    );
                    let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
                    for op in &ops[range] {
                        q = q.bind(op.k.as_str()).bind(op.v);
                    }
                    stored.extend(q.fetch_all(&mut *conn).await?);
                }
                Ok(ops.iter().map(|op| stored[&op.k]).collect())
            })
        }
    }

    fn put_grouped(
        db: &Db,
        k: &str,
        v: i64,
    ) -> impl std::future::Future<Output = Result<i64, StorageError>> {
        let (db, k) = (db.clone(), k.to_owned());
        async move { db.grouped(Put { k, v }).await }
    }

    #[tokio::test]
    async fn grouped_writes_commit_together_and_each_hears_its_own_row() {
        let (_dir, db) = db().await;
        let writes: Vec<_> = (0..300)
            .map(|i| put_grouped(&db, &format!("k{i}"), i * 7))
            .collect();
        let results = futures_util::future::join_all(writes).await;
        let expected: Vec<_> = (0..300).map(|i| Ok::<i64, ()>(i * 7)).collect();
        let got: Vec<_> = results.into_iter().map(|r| r.map_err(|_| ())).collect();
        assert_eq!(got, expected);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, 300);
    }

    #[tokio::test]
    async fn a_failing_grouped_write_fails_alone_beside_closures() {
        let (_dir, db) = db().await;
        put(&db, "taken", 0).await.unwrap();
        // Queued together with plain writes: the duplicate fails its
        // group's statement, and so the batch, which is then committed
        // write by write.
        let grouped: Vec<_> = (1..40)
            .map(|i| put_grouped(&db, &format!("g{i}"), i))
            .chain([put_grouped(&db, "taken", 99)])
            .collect();
        let plain: Vec<_> = (1..20).map(|i| put(&db, &format!("p{i}"), i)).collect();
        let (grouped, plain) = tokio::join!(
            futures_util::future::join_all(grouped),
            futures_util::future::join_all(plain)
        );
        assert!(plain.iter().all(|r| matches!(r, Ok(1))), "{plain:?}");
        assert!(grouped[..39].iter().all(|r| r.is_ok()), "{grouped:?}");
        assert!(grouped[39].is_err());
        let (n, taken): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), SUM(CASE WHEN k = 'taken' THEN v ELSE 0 END) FROM t")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!((n, taken), (1 + 39 + 19, 0));
    }

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
