//! The durable executor: approved requests become rows in the `jobs` table
//! ([`crate::storage::jobs`]); a few workers per process claim due rows with
//! a lease, renew it while the driver runs, and hand each claimed job to a
//! [`JobRunner`] (the engine), which runs the driver and finishes the job.
//!
//! - A crashed process stops renewing its leases; when a lease runs out the
//!   job is claimable again and the next claim is marked `resumed`. The
//!   driver gets the same idempotency key, so the work is not done twice.
//! - A worker that finds its lease taken over (it stalled past the lease)
//!   abandons the run: the new holder finishes it.
//! - Transient failures are rescheduled with exponential backoff and
//!   jitter ([`Executor::backoff`], on [`Backoff`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::drivers::{DriverError, JobStateStore};
use crate::storage::{now_ms, Claimed, Db};
use crate::util::Backoff;

/// How the workers behave.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Workers per process: jobs run at the same time.
    pub workers: usize,
    /// How long a claim holds without renewal (renewed every third of it).
    pub lease: Duration,
    /// The first retry's delay; doubled each attempt, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often idle workers look for due jobs (besides being woken).
    pub poll: Duration,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            workers: 2,
            lease: Duration::from_secs(30),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

/// The `[executor]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    pub workers: usize,
    pub lease_secs: u64,
    pub attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    pub poll_interval_ms: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        let s = ExecutorSettings::default();
        ExecutorConfig {
            workers: s.workers,
            lease_secs: s.lease.as_secs(),
            attempts: 6,
            backoff_base_ms: s.backoff_base.as_millis() as u64,
            backoff_max_secs: s.backoff_max.as_secs(),
            poll_interval_ms: s.poll.as_millis() as u64,
        }
    }
}

impl ExecutorConfig {
    pub fn settings(&self) -> ExecutorSettings {
        ExecutorSettings {
            workers: self.workers.max(1),
            lease: Duration::from_secs(self.lease_secs.max(1)),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            poll: Duration::from_millis(self.poll_interval_ms.max(10)),
        }
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.workers == 0 {
            out.push("executor.workers: must be at least 1".into());
        }
        if self.lease_secs < 3 {
            out.push("executor.lease_secs: must be at least 3".into());
        }
        if self.attempts == 0 {
            out.push("executor.attempts: must be at least 1".into());
        }
        if self.poll_interval_ms < 10 {
            out.push("executor.poll_interval_ms: must be at least 10".into());
        }
        out
    }
}

/// Runs one claimed job to its end (or to a reschedule).
#[async_trait]
pub trait JobRunner: Send + Sync + 'static {
    async fn run(&self, claimed: Claimed);
}

struct Inner {
    db: Db,
    settings: ExecutorSettings,
    owner: String,
    wake: Notify,
    started: AtomicBool,
    /// Set by [`Executor::drain`]: workers claim nothing more.
    stopping: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    busy: AtomicUsize,
}

/// The worker pool of one process. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl Executor {
    pub fn new(db: Db, settings: ExecutorSettings) -> Self {
        let tag: u32 = rand::thread_rng().gen();
        Executor {
            inner: Arc::new(Inner {
                db,
                settings,
                owner: format!("paver-{}-{tag:08x}", std::process::id()),
                wake: Notify::new(),
                started: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                workers: Mutex::new(Vec::new()),
                busy: AtomicUsize::new(0),
            }),
        }
    }

    /// This process's name on the leases it holds.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    pub fn settings(&self) -> &ExecutorSettings {
        &self.inner.settings
    }

    /// Wakes idle workers: a job was queued.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// Jobs this process is running now.
    pub fn busy(&self) -> usize {
        self.inner.busy.load(Ordering::SeqCst)
    }

    /// Starts the workers (once; later calls do nothing).
    pub fn start(&self, runner: impl FnOnce() -> Arc<dyn JobRunner>) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let runner = runner();
        let mut workers = self.inner.workers.lock().unwrap_or_else(|p| p.into_inner());
        for n in 0..self.inner.settings.workers.max(1) {
            let me = self.clone();
            let runner = runner.clone();
            workers.push(tokio::spawn(async move { me.work(n, runner).await }));
        }
    }

    /// Stops the workers at once, as a crash would: jobs they held stay
    /// `running` until their leases run out. For shutdown and tests.
    pub fn stop(&self) {
        for w in self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            w.abort();
        }
    }

    /// Graceful stop (SIGTERM): claim nothing more, let running jobs finish
    /// within `grace`, then stop the workers and hand back the leases of
    /// what is still running, so another replica (or the next start)
    /// resumes it at once with the same idempotency key instead of after
    /// the lease runs out. Returns how many jobs were handed back.
    pub async fn drain(&self, grace: Duration) -> Result<u64, crate::storage::StorageError> {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let deadline = tokio::time::Instant::now() + grace;
        while self.busy() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop();
        let handed_back = self.inner.db.jobs().release(&self.inner.owner).await?;
        if handed_back > 0 {
            tracing::warn!(
                jobs = handed_back,
                "shutdown: handed back jobs still running after the grace period"
            );
        }
        Ok(handed_back)
    }

    /// The delay before retry number `attempt` (1 = after the first
    /// failure): [`Backoff`] from the settings.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let s = &self.inner.settings;
        Backoff::new(s.backoff_base, s.backoff_max).delay(attempt)
    }

    async fn work(&self, n: usize, runner: Arc<dyn JobRunner>) {
        let inner = &self.inner;
        let lease_ms = inner.settings.lease.as_millis() as i64;
        loop {
            if inner.stopping.load(Ordering::SeqCst) {
                return;
            }
            let woken = inner.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match inner.db.jobs().claim(&inner.owner, lease_ms).await {
                Ok(Some(claimed)) => {
                    tracing::info!(worker = n, job = %claimed.job.id, request = %claimed.job.request_id,
                        attempt = claimed.job.attempts, resumed = claimed.resumed, "job claimed");
                    inner.busy.fetch_add(1, Ordering::SeqCst);
                    self.run_with_lease(&runner, claimed).await;
                    inner.busy.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = n, error = %e, "claiming a job failed"),
            }
            let mut wait = inner.settings.poll;
            if let Ok(Some(due)) = inner.db.jobs().next_due().await {
                let until = Duration::from_millis((due - now_ms()).max(0) as u64 + 5);
                wait = wait.min(until);
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs the job while renewing its lease; abandons it when the lease is
    /// lost to another worker.
    async fn run_with_lease(&self, runner: &Arc<dyn JobRunner>, claimed: Claimed) {
        let id = claimed.job.id.clone();
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let heartbeat = {
            let me = self.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let lease = me.inner.settings.lease;
                let lease_ms = lease.as_millis() as i64;
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match me
                        .inner
                        .db
                        .jobs()
                        .renew(&id, &me.inner.owner, lease_ms)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = lost_tx.send(());
                            return;
                        }
                        Err(e) => tracing::warn!(job = %id, error = %e, "renewing a lease failed"),
                    }
                }
            })
        };
        // Aborts the heartbeat however this ends (even when this task is aborted).
        struct Abort(JoinHandle<()>);
        impl Drop for Abort {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _heartbeat = Abort(heartbeat);
        tokio::select! {
            _ = runner.run(claimed) => {}
            Ok(()) = lost_rx => {
                tracing::warn!(job = %id, "lease lost to another worker; abandoning this run");
            }
        }
    }
}

/// A job's checkpoint and callback, in its row.
pub struct DbJobState {
    pub db: Db,
    pub job_id: String,
}

fn storage(e: crate::storage::StorageError) -> DriverError {
    DriverError::Storage(format!("job storage: {e}"))
}

#[async_trait]
impl JobStateStore for DbJobState {
    async fn checkpoint(&self) -> Result<Option<String>, DriverError> {
        self.db
            .jobs()
            .checkpoint(&self.job_id)
            .await
            .map_err(storage)
    }
    async fn save_checkpoint(&self, value: &str) -> Result<(), DriverError> {
        self.db
            .jobs()
            .save_checkpoint(&self.job_id, value)
            .await
            .map_err(storage)
    }
    async fn callback(&self) -> Result<Option<String>, DriverError> {
        self.db.jobs().callback(&self.job_id).await.map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let settings = ExecutorSettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..ExecutorSettings::default()
        };
        // No database is needed to compute delays.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = rt
            .block_on(Db::connect(&format!(
                "sqlite://{}/x.db",
                dir.path().display()
            )))
            .unwrap();
        let ex = Executor::new(db, settings);
        for _ in 0..50 {
            let d1 = ex.backoff(1).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = ex.backoff(3).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d9 = ex.backoff(9).as_millis();
            assert!((500..=1000).contains(&d9), "{d9}");
        }
    }
}
