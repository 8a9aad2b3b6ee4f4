//! Storage on sqlx: SQLite by default, PostgreSQL for several replicas.
//!
//! One code path for both, through sqlx's `Any` driver: queries use `$n`
//! placeholders in ascending order (SQLite binds `$n` by first appearance),
//! times are Unix milliseconds in BIGINT columns, and no query relies on
//! one backend's dialect. Each backend has its own migrations folder
//! because DDL differs (AUTOINCREMENT vs BIGSERIAL).

pub mod audit;
mod batch;
pub mod cards;
pub mod costs;
pub mod deploys;
pub mod inbox;
pub mod jobs;
pub mod leases;
pub mod lock;
pub mod nags;
pub mod outbox;
pub mod pace;
pub mod platform;
pub mod questions;
pub mod replay;
pub mod report;
pub mod requests;
pub mod retention;
pub mod scorecards;
pub mod threads;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use inbox::{InboxRow, InboxState, InboxStore};
pub use jobs::{Claimed, JobRow, JobStatus, JobStore};
pub use outbox::{OutboxRow, OutboxStore};
pub use pace::{PaceStore, Slot};
pub use requests::{
    ApprovalDecision, Guard, NewDecision, NewRequest, NluRecord, Request, RequestStore, Stored,
    TransitionOutcome, Updates,
};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the SQLite database {database} is in use by another Paver process ({holder}); SQLite serves one process: stop the other one, or use PostgreSQL to run several replicas")]
    InUse { database: String, holder: String },
    #[error("cannot open the lock file {path}: {source}")]
    LockFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported database URL `{0}` (expected sqlite:… or postgres://…)")]
    Url(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("no request {0}")]
    NotFound(String),
}

/// Work waiting in a queue (outbox rows of a platform, jobs in a state):
/// how many, and since when the oldest of them waits (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog<K> {
    pub of: K,
    pub depth: i64,
    pub oldest_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How SQLite makes a commit durable, from the URL's `synchronous=`
/// (`sqlite://var/paver.db?synchronous=full`).
///
/// `normal` (the default): under WAL a commit is written to the log but
/// the log is synced only at checkpoints. A crash of Paver (even
/// `kill -9`) loses nothing; a crash of the machine or a power cut may
/// lose the last commits, an acknowledged event among them (Slack does
/// not send it again). About four times the requests a second of `full`
/// on this machine's disk (README: Benchmarks).
///
/// `full`: the log is synced on every commit; nothing acknowledged is
/// ever lost, at one disk flush per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "PRAGMA synchronous=NORMAL",
            Synchronous::Full => "PRAGMA synchronous=FULL",
        }
    }
}

/// Takes `synchronous=` out of a SQLite path's query (sqlx does not know
/// it): the path without it, and its value.
fn sqlite_synchronous(path: &str) -> Result<(String, Synchronous), StorageError> {
    let Some((file, query)) = path.split_once('?') else {
        return Ok((path.to_owned(), Synchronous::Normal));
    };
    let mut synchronous = Synchronous::Normal;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("synchronous", v)) => {
                synchronous = match v.to_ascii_lowercase().as_str() {
                    "normal" => Synchronous::Normal,
                    "full" => Synchronous::Full,
                    _ => {
                        return Err(StorageError::Url(format!(
                            "sqlite:{file}: synchronous={v} (normal or full)"
                        )))
                    }
                }
            }
            _ => rest.push(pair),
        }
    }
    let path = if rest.is_empty() {
        file.to_owned()
    } else {
        format!("{file}?{}", rest.join("&"))
    };
    Ok((path, synchronous))
}

/// A connection pool and the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The group commit of the hot path's writes (`batch`), started on
    /// the first of them: commands that never write start no task.
    batcher: std::sync::Arc<std::sync::OnceLock<batch::Batcher>>,
}

pub use crate::util::now_ms;

impl Db {
    /// Connects (creating a SQLite file and its directory when needed) and
    /// runs the migrations.
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        let db = Self::connect_without_migrating(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn connect_without_migrating(url: &str) -> Result<Db, StorageError> {
        sqlx::any::install_default_drivers();
        let (backend, url, synchronous) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or("");
            if !file.is_empty() && file != ":memory:" {
                if let Some(dir) = Path::new(file)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            }
            let (path, synchronous) = sqlite_synchronous(path)?;
            let url = if path.contains("mode=") {
                format!("sqlite://{path}")
            } else if path.contains('?') {
                format!("sqlite://{path}&mode=rwc")
            } else {
                format!("sqlite://{path}?mode=rwc")
            };
            (Backend::Sqlite, url, synchronous)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned(), Synchronous::Normal)
        } else {
            return Err(StorageError::Url(crate::util::redact_url(url)));
        };
        let max = match backend {
            // One writer at a time is SQLite's nature; more connections only wait.
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file in this process, nothing that
            // drops: no ping (a round trip to its thread) before each
            // statement. A PostgreSQL one may have been cut: pinged.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(synchronous.pragma())
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys=ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Db {
            pool,
            backend,
            batcher: Default::default(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Runs `write` in the next group commit (`batch`): many handlings'
    /// small writes share one transaction. Its result once committed.
    pub(crate) async fn batched<T, F>(&self, write: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: for<'c> Fn(
                &'c mut sqlx::AnyConnection,
            ) -> futures_util::future::BoxFuture<'c, Result<T, StorageError>>
            + Send
            + Sync
            + 'static,
    {
        match self.backend {
            Backend::Sqlite => self.batcher().run(write).await,
            // Alone, in a transaction of its own. PostgreSQL commits
            // side by side anyway (row locks, not one writer), and no order
            // binds a closure's locks: batched on several replicas, they
            // could take the same rows' locks in different orders and
            // deadlock, which PostgreSQL breaks only after a second.
            Backend::Postgres => batch::alone(&self.pool, write).await,
        }
    }

    /// Runs `op` in the next group commit with the others of its kind
    /// (`batch::Grouped`: a few multi-row statements for all of them); its
    /// output once committed. On both backends: grouped writes take their
    /// locks in one order (`batch::Grouped`), so PostgreSQL replicas'
    /// batches do not deadlock.
    pub(crate) async fn grouped<G: batch::Grouped>(&self, op: G) -> Result<G::Out, StorageError> {
        self.batcher().run_grouped(op).await
    }

    fn batcher(&self) -> &batch::Batcher {
        self.batcher
            .get_or_init(|| batch::Batcher::start(self.pool.clone()))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn requests(&self) -> RequestStore<'_> {
        RequestStore { db: self }
    }

    pub fn deploys(&self) -> deploys::DeployStore<'_> {
        deploys::DeployStore { db: self }
    }

    pub fn outbox(&self) -> OutboxStore<'_> {
        OutboxStore { db: self }
    }

    /// Copies of cards where approvers look, and what they were told.
    pub fn cards(&self) -> cards::CardStore<'_> {
        cards::CardStore { db: self }
    }

    pub fn scorecards(&self) -> scorecards::ScorecardStore<'_> {
        scorecards::ScorecardStore { db: self }
    }

    /// The schedulers' named leases.
    pub fn leases(&self) -> leases::LeaseStore<'_> {
        leases::LeaseStore { db: self }
    }

    pub fn nags(&self) -> nags::NagStore<'_> {
        nags::NagStore { db: self }
    }

    /// Office hours' questions, votes, handoffs and agendas.
    pub fn questions(&self) -> questions::QuestionStore<'_> {
        questions::QuestionStore { db: self }
    }

    pub fn pace(&self) -> PaceStore<'_> {
        PaceStore { db: self }
    }

    pub fn inbox(&self) -> InboxStore<'_> {
        InboxStore { db: self }
    }

    pub fn jobs(&self) -> JobStore<'_> {
        JobStore { db: self }
    }

    pub fn callback_replay(&self) -> replay::ReplayStore<'_> {
        replay::ReplayStore { db: self }
    }

    /// What the platform report reads, and its digests.
    pub fn report(&self) -> report::ReportStore<'_> {
        report::ReportStore { db: self }
    }

    /// Pruning by age (the retention scheduler's SQL).
    pub fn retention(&self) -> retention::RetentionStore<'_> {
        retention::RetentionStore { db: self }
    }

    /// The audit log (request events and approvals) as one stream.
    pub fn audit(&self) -> audit::AuditStore<'_> {
        audit::AuditStore { db: self }
    }

    /// Whether the database answers (the health check).
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn threads(&self) -> threads::ThreadStore<'_> {
        threads::ThreadStore { db: self }
    }

    /// Records a chat event id; false when it was already recorded (a retry).
    pub async fn first_delivery(
        &self,
        platform: &str,
        event_id: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO processed_events (platform, event_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(platform)
        .bind(event_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a recorded event id, so its redelivery is handled (after
    /// handling it the first time failed).
    pub async fn forget_delivery(
        &self,
        platform: &str,
        event_id: &str,
    ) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM processed_events WHERE platform = $1 AND event_id = $2")
            .bind(platform)
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(crate) fn get_str(row: &AnyRow, col: &str) -> Result<String, StorageError> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &str) -> Result<Option<String>, StorageError> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> Result<i64, StorageError> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>, StorageError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_is_read_from_the_url_and_taken_out_of_it() {
        let (path, s) = sqlite_synchronous("var/paver.db").unwrap();
        assert_eq!((path.as_str(), s), ("var/paver.db", Synchronous::Normal));
        let (path, s) = sqlite_synchronous("var/paver.db?synchronous=FULL&mode=rwc").unwrap();
        assert_eq!(
            (path.as_str(), s),
            ("var/paver.db?mode=rwc", Synchronous::Full)
        );
        let (path, s) = sqlite_synchronous("x.db?mode=ro&synchronous=normal").unwrap();
        assert_eq!((path.as_str(), s), ("x.db?mode=ro", Synchronous::Normal));
        let e = sqlite_synchronous("x.db?synchronous=off").unwrap_err();
        assert!(e.to_string().contains("normal or full"), "{e}");
    }

    #[tokio::test]
    async fn a_full_sync_database_opens_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!(
            "sqlite://{}/f.db?synchronous=full",
            dir.path().display()
        ))
        .await
        .unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        // FULL is 2, NORMAL 1.
        assert_eq!(mode, 2);
    }
}
