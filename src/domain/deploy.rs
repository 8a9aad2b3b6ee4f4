//! Deploys as Paver tells people about them: what a GitHub deployment, an
//! Argo CD sync or an orchestrator's hook says, in one vocabulary, and the
//! notice that follows one service's deploy in one environment.

use std::fmt;

use super::{Environment, ServiceName, Version};

/// How far a deploy got. GitHub's deployment states, Argo CD's sync phase
/// and health, and the generic hook's `status` all land on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeployStatus {
    Queued,
    InProgress,
    /// Rolled out; health not (yet) known.
    Deployed,
    Healthy,
    /// Rolled out, but unhealthy.
    Degraded,
    Failed,
    Cancelled,
}

impl DeployStatus {
    pub const ALL: [DeployStatus; 7] = [
        DeployStatus::Queued,
        DeployStatus::InProgress,
        DeployStatus::Deployed,
        DeployStatus::Healthy,
        DeployStatus::Degraded,
        DeployStatus::Failed,
        DeployStatus::Cancelled,
    ];

    /// The stored and configured spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::InProgress => "in_progress",
            DeployStatus::Deployed => "deployed",
            DeployStatus::Healthy => "healthy",
            DeployStatus::Degraded => "degraded",
            DeployStatus::Failed => "failed",
            DeployStatus::Cancelled => "cancelled",
        }
    }

    /// The canonical spelling or a synonym the systems that send hooks use
    /// (`success`, `syncing`, `error`, …); case does not matter.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "queued" | "pending" | "waiting" | "requested" => DeployStatus::Queued,
            "in_progress" | "in-progress" | "running" | "syncing" | "progressing" | "started" => {
                DeployStatus::InProgress
            }
            "deployed" | "success" | "succeeded" | "synced" | "completed" => DeployStatus::Deployed,
            "healthy" => DeployStatus::Healthy,
            "degraded" | "unhealthy" => DeployStatus::Degraded,
            "failed" | "failure" | "error" | "errored" | "timed_out" => DeployStatus::Failed,
            "cancelled" | "canceled" | "aborted" | "terminated" => DeployStatus::Cancelled,
            _ => return None,
        })
    }

    /// What people read: "deploying", "healthy", "failed".
    pub fn word(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::InProgress => "deploying",
            DeployStatus::Deployed => "deployed",
            DeployStatus::Healthy => "healthy",
            DeployStatus::Degraded => "degraded",
            DeployStatus::Failed => "failed",
            DeployStatus::Cancelled => "cancelled",
        }
    }

    /// A failure always reaches the team, whatever the routing rules say.
    pub fn is_failure(self) -> bool {
        matches!(self, DeployStatus::Failed | DeployStatus::Degraded)
    }

    /// Nothing more is expected of this deploy.
    pub fn is_final(self) -> bool {
        !matches!(self, DeployStatus::Queued | DeployStatus::InProgress)
    }
}

impl fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One step of a deploy: a status, and the version it concerns when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployStep {
    pub status: DeployStatus,
    pub version: Option<Version>,
    /// Unix milliseconds.
    pub at: i64,
}

/// Everything one notice says: one service in one environment, the steps
/// seen within the coalescing window, newest last.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployNotice {
    pub service: ServiceName,
    pub environment: Environment,
    pub steps: Vec<DeployStep>,
    /// Where the deployed thing answers.
    pub url: Option<String>,
    /// Where the deploy itself can be read (workflow run, Argo CD app).
    pub link: Option<String>,
    /// The last thing the sender said about it (an error, a sync message).
    pub message: Option<String>,
    pub commit: Option<String>,
    /// The Paver request this deploy carries out, when known.
    pub request: Option<String>,
}

impl DeployNotice {
    /// The latest step (a notice always has one).
    pub fn latest(&self) -> Option<&DeployStep> {
        self.steps.last()
    }

    /// The newest version any step named.
    pub fn version(&self) -> Option<&Version> {
        self.steps.iter().rev().find_map(|s| s.version.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_and_synonyms_land_where_people_expect() {
        for s in DeployStatus::ALL {
            assert_eq!(DeployStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeployStatus::parse("Success"), Some(DeployStatus::Deployed));
        assert_eq!(
            DeployStatus::parse("syncing"),
            Some(DeployStatus::InProgress)
        );
        assert_eq!(DeployStatus::parse("ERROR"), Some(DeployStatus::Failed));
        assert_eq!(
            DeployStatus::parse("canceled"),
            Some(DeployStatus::Cancelled)
        );
        assert_eq!(DeployStatus::parse("exploded"), None);
        assert!(DeployStatus::Degraded.is_failure() && DeployStatus::Degraded.is_final());
        assert!(!DeployStatus::InProgress.is_final());
    }
}
