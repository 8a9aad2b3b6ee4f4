//! Drivers: the systems that carry out approved actions. Which driver runs
//! which action is configuration; they all share one trait.

pub mod argocd;
pub mod backstage;
pub mod gitops;
pub mod http;
pub mod kind;
pub mod router;
pub mod templates;
pub(crate) mod web;

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::domain::{Action, Environment, ResourceKind, ServiceName};

pub use kind::DriverKind;

/// One approved action to carry out.
#[derive(Debug, Clone)]
pub struct Job {
    pub request_id: String,
    /// Same for every attempt of one request: a retry must not do the work twice.
    pub idempotency_key: String,
    pub action: Action,
    /// Catalog user name (or chat id) of who asked.
    pub requester: String,
    /// Who approved, when approval was needed.
    pub approver: Option<String>,
    /// Unix seconds after which a preview environment may be reaped.
    pub expires_at: Option<i64>,
    /// The executor's id of this job (`j-…`): names the orchestrator's
    /// callback URL. Empty when a driver is called outside the executor.
    pub job_id: String,
    /// 1 on the first run; higher after a transient failure or a crash.
    pub attempt: u32,
    /// Whether an earlier run of this very job was interrupted (its
    /// executor crashed or lost its lease) and this run picks it up.
    pub resumed: bool,
    /// Durable state of the job across attempts (see [`JobState`]).
    pub state: JobState,
}

/// Where a driver keeps what it must remember across attempts and crashes
/// of one job: the Backstage task it started, the orchestrator's status
/// URL. The executor stores it in the job's row; outside the executor it
/// lives in memory.
#[async_trait]
pub trait JobStateStore: Send + Sync {
    /// What the driver saved last for this job, if anything.
    async fn checkpoint(&self) -> Result<Option<String>, DriverError>;
    /// Saves (replaces) the checkpoint; durable when this returns.
    async fn save_checkpoint(&self, value: &str) -> Result<(), DriverError>;
    /// The latest status an orchestrator posted to this job's callback
    /// endpoint (`POST /hooks/orchestrator/{job}`), if any.
    async fn callback(&self) -> Result<Option<String>, DriverError>;
}

/// A cheap handle on a [`JobStateStore`].
#[derive(Clone)]
pub struct JobState(pub Arc<dyn JobStateStore>);

impl JobState {
    pub fn new(store: Arc<dyn JobStateStore>) -> Self {
        JobState(store)
    }
    /// A state kept in memory (drivers called directly, tests).
    pub fn memory() -> (Self, Arc<MemoryJobState>) {
        let m = Arc::new(MemoryJobState::default());
        (JobState(m.clone()), m)
    }
    pub async fn checkpoint(&self) -> Result<Option<String>, DriverError> {
        self.0.checkpoint().await
    }
    pub async fn save_checkpoint(&self, value: &str) -> Result<(), DriverError> {
        self.0.save_checkpoint(value).await
    }
    pub async fn callback(&self) -> Result<Option<String>, DriverError> {
        self.0.callback().await
    }
}

impl Default for JobState {
    fn default() -> Self {
        JobState::memory().0
    }
}

impl fmt::Debug for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobState")
    }
}

/// [`JobState`] in memory.
#[derive(Debug, Default)]
pub struct MemoryJobState {
    pub checkpoint: Mutex<Option<String>>,
    pub callback: Mutex<Option<String>>,
}

#[async_trait]
impl JobStateStore for MemoryJobState {
    async fn checkpoint(&self) -> Result<Option<String>, DriverError> {
        Ok(self
            .checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
    async fn save_checkpoint(&self, value: &str) -> Result<(), DriverError> {
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(value.to_owned());
        Ok(())
    }
    async fn callback(&self) -> Result<Option<String>, DriverError> {
        Ok(self
            .callback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
}

impl Job {
    /// A job as the executor would build it for its first run.
    pub fn new(request_id: &str, idempotency_key: &str, action: Action, requester: &str) -> Job {
        Job {
            request_id: request_id.to_owned(),
            idempotency_key: idempotency_key.to_owned(),
            action,
            requester: requester.to_owned(),
            approver: None,
            expires_at: None,
            job_id: String::new(),
            attempt: 1,
            resumed: false,
            state: JobState::default(),
        }
    }
}

/// What a driver did, for the thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// One line: "Created staging for order-service (commit 1a2b3c4)".
    pub summary: String,
    /// The environment's URL, when the action has one.
    pub url: Option<String>,
    /// Further links: (label, URL or path).
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying: timeouts, 5xx, 429, a busy lock.
    #[error("{0}")]
    Transient(String),
    /// Failed, and will fail again until someone changes something outside
    /// Paver (a quota, a token, a broken target): a human may press Retry
    /// once it is fixed.
    #[error("{0}")]
    Permanent(String),
    /// The action itself cannot succeed as it stands (nothing earlier to
    /// roll back to, an environment that does not exist yet): retrying the
    /// same action is pointless, so no Retry is offered; ask differently.
    #[error("{0}")]
    Invalid(String),
}

impl DriverError {
    /// Whether pressing Retry on the failed request can help.
    pub fn retryable(&self) -> bool {
        !matches!(self, DriverError::Invalid(_))
    }
}

/// The state of one environment of one service, as a driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvStatus {
    pub environment: Environment,
    pub version: Option<String>,
    pub replicas: Option<u32>,
    pub resources: Vec<ResourceKind>,
    pub url: Option<String>,
    pub expires_at: Option<i64>,
    /// Health as the system reports it ("Healthy", "Progressing"), if known.
    pub health: Option<String>,
}

/// Progress reports while a job runs ("pushing to origin…").
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

#[async_trait]
pub trait Driver: Send + Sync {
    /// Short name for logs and cards ("gitops", "argocd").
    fn name(&self) -> &'static str;

    /// Whether running the same job again after a crash is safe (it
    /// converges on the same result instead of doing the work twice).
    fn resumable(&self) -> bool;

    /// Carries out a mutating action.
    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError>;

    /// The environments of a service (one, or all when `environment` is None).
    async fn status(
        &self,
        service: &ServiceName,
        environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError>;

    /// The URL of an environment that was just created, when this driver
    /// knows it better than the one that created it (Argo CD reads it from
    /// the application's external URLs). `None`: no opinion.
    async fn environment_url(
        &self,
        service: &ServiceName,
        environment: Environment,
        progress: Progress<'_>,
    ) -> Result<Option<String>, DriverError> {
        let _ = (service, environment, progress);
        Ok(None)
    }
}
