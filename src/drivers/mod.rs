//! Drivers: the systems that carry out approved actions. Which driver runs
//! which action is configuration; they all share one trait.

pub mod gitops;

use async_trait::async_trait;

use crate::domain::{Action, Environment, ResourceKind, ServiceName};

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
    /// Retrying will not help: validation, 4xx, a missing environment.
    #[error("{0}")]
    Permanent(String),
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
}
