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

/// Why a driver did not carry out a job, by cause. The executor asks
/// [`DriverError::recovery`] what to do about it; the text is what the
/// requester reads in the thread.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// The remote system answered with a non-success HTTP status (and its
    /// own message, fit for chat). 5xx, 408, 425 and 429 are retried.
    #[error("{system} answered {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        system: String,
        status: reqwest::StatusCode,
        message: String,
    },
    /// The remote system could not be reached, or did not answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// The target is busy with something else (an operation in progress, a
    /// held lock, a conflicting job); it will not be for long.
    #[error("{0}")]
    Busy(String),
    /// What was made is not ready yet (an environment without its URL).
    #[error("{0}")]
    NotYet(String),
    /// Paver's job storage failed around the run.
    #[error("{0}")]
    Storage(String),
    /// The answer could not be read (not JSON, too large, missing fields).
    #[error("{0}")]
    Malformed(String),
    /// The target has no such thing (an application, a template).
    #[error("{0}")]
    NotFound(String),
    /// The target refuses this change (ownership labels, a name taken, a
    /// URL that would leave its origin).
    #[error("{0}")]
    Refused(String),
    /// The target ran the change and it failed, or did not finish in time;
    /// `retry` when the target says trying again may help.
    #[error("{message}")]
    Failed { message: String, retry: bool },
    /// A git command failed (other than reaching the remote or a held lock).
    #[error("{0}")]
    Git(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// Paver's configuration or setup cannot work (a missing git, a driver
    /// not configured, no token).
    #[error("{0}")]
    Config(String),
    /// This driver does not do this kind of action.
    #[error("{0}")]
    Unsupported(String),
    /// Paver stopped trying (it restarted mid-run, or used up the attempts):
    /// a human checks the target, then may press Retry.
    #[error("{0}")]
    Abandoned(String),
    /// The request itself cannot succeed as it stands (nothing earlier to
    /// roll back to, an environment that does not exist yet): ask
    /// differently; retrying the same request is pointless.
    #[error("{0}")]
    InvalidRequest(String),
}

/// What to do about a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Try again by itself, after a backoff (timeouts, 5xx, 429, a busy lock).
    Backoff,
    /// Fail, with a Retry button: it fails until someone fixes something
    /// outside Paver (a quota, a token, a broken target).
    RetryButton,
    /// Fail without Retry: the request must change.
    NoRetry,
}

impl DriverError {
    /// The target ran the change and it failed; retrying will not help.
    pub fn failed(message: String) -> Self {
        DriverError::Failed {
            message,
            retry: false,
        }
    }

    /// What the executor does about this failure.
    pub fn recovery(&self) -> Recovery {
        use DriverError as E;
        match self {
            E::Status { status, .. } if web::is_transient(*status) => Recovery::Backoff,
            E::Failed { retry: true, .. } => Recovery::Backoff,
            E::Unreachable(_) | E::Busy(_) | E::NotYet(_) | E::Storage(_) => Recovery::Backoff,
            E::InvalidRequest(_) => Recovery::NoRetry,
            E::Status { .. }
            | E::Failed { .. }
            | E::Malformed(_)
            | E::NotFound(_)
            | E::Refused(_)
            | E::Git(_)
            | E::Io(_)
            | E::Config(_)
            | E::Unsupported(_)
            | E::Abandoned(_) => Recovery::RetryButton,
        }
    }

    /// Whether the executor retries by itself, after a backoff.
    pub fn is_transient(&self) -> bool {
        self.recovery() == Recovery::Backoff
    }

    /// Whether pressing Retry on the failed request can help.
    pub fn retryable(&self) -> bool {
        self.recovery() != Recovery::NoRetry
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What is retried, what offers Retry, and the text, per cause.
    #[test]
    fn each_cause_has_its_recovery_and_its_text() {
        use reqwest::StatusCode as S;
        use DriverError as E;
        let status = |status| E::Status {
            system: "Argo CD".into(),
            status,
            message: "spec is invalid".into(),
        };
        let text = |s: &str| s.to_owned();
        let cases = [
            (status(S::SERVICE_UNAVAILABLE), Recovery::Backoff),
            (status(S::TOO_MANY_REQUESTS), Recovery::Backoff),
            (status(S::BAD_REQUEST), Recovery::RetryButton),
            (E::Unreachable(text("x timed out")), Recovery::Backoff),
            (E::Busy(text("a lock")), Recovery::Backoff),
            (E::NotYet(text("no URL yet")), Recovery::Backoff),
            (E::Storage(text("job storage: gone")), Recovery::Backoff),
            (
                E::Failed {
                    message: text("try later"),
                    retry: true,
                },
                Recovery::Backoff,
            ),
            (E::failed(text("sync failed")), Recovery::RetryButton),
            (E::Malformed(text("not JSON")), Recovery::RetryButton),
            (E::NotFound(text("no app")), Recovery::RetryButton),
            (E::Refused(text("labels")), Recovery::RetryButton),
            (E::Git(text("git commit failed")), Recovery::RetryButton),
            (E::Io(text("disk")), Recovery::RetryButton),
            (E::Config(text("no git")), Recovery::RetryButton),
            (E::Unsupported(text("cannot")), Recovery::RetryButton),
            (E::Abandoned(text("restarted")), Recovery::RetryButton),
            (
                E::InvalidRequest(text("create it first")),
                Recovery::NoRetry,
            ),
        ];
        for (e, recovery) in cases {
            assert_eq!(e.recovery(), recovery, "{e:?}");
            assert_eq!(e.is_transient(), recovery == Recovery::Backoff, "{e:?}");
            assert_eq!(e.retryable(), recovery != Recovery::NoRetry, "{e:?}");
        }
        assert_eq!(
            status(S::BAD_REQUEST).to_string(),
            "Argo CD answered 400 Bad Request: spec is invalid"
        );
        let bare = E::Status {
            system: "x".into(),
            status: S::BAD_GATEWAY,
            message: String::new(),
        };
        assert_eq!(bare.to_string(), "x answered 502 Bad Gateway");
        assert_eq!(E::failed(text("sync failed")).to_string(), "sync failed");
    }
}
