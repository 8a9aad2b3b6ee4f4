//! A deploy event as the hooks deliver it to the notification flow: already
//! verified and parsed at the edge, not yet matched to the catalog.

use crate::domain::{DeployStatus, Version};

/// Which system sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    GitHub,
    ArgoCd,
    Generic,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GitHub => "github",
            Source::ArgoCd => "argocd",
            Source::Generic => "generic",
        }
    }

    /// How people call it.
    pub fn title(self) -> &'static str {
        match self {
            Source::GitHub => "GitHub",
            Source::ArgoCd => "Argo CD",
            Source::Generic => "the deploy hook",
        }
    }
}

/// What names the deployed thing, as the sender knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A GitHub repository (`owner/name`): its catalog component
    /// (`github.com/project-slug`), and the environment as GitHub names it.
    Repo { slug: String, environment: String },
    /// An Argo CD application: the service and environment it is the
    /// application of (`argocd/app-name`, `argocd.app_name_template`).
    ArgoApp { name: String },
    /// A service and environment named outright (the generic hook).
    Service { name: String, environment: String },
}

impl Subject {
    /// The name people would recognise, for notes about unknown services.
    pub fn label(&self) -> &str {
        match self {
            Subject::Repo { slug, .. } => slug,
            Subject::ArgoApp { name } | Subject::Service { name, .. } => name,
        }
    }
}

/// One deploy event.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub source: Source,
    /// Unique per delivery of this source (GitHub's `X-GitHub-Delivery`, a
    /// digest of the body otherwise): a redelivery is recognised by it.
    pub id: String,
    pub subject: Subject,
    pub status: DeployStatus,
    pub version: Option<Version>,
    /// Where the deployed thing answers.
    pub url: Option<String>,
    /// Where the deploy can be read (a workflow run, the Argo CD app).
    pub link: Option<String>,
    pub message: Option<String>,
    pub commit: Option<String>,
    /// When that commit was made (Unix ms), where the sender says: the
    /// report's lead time for changes runs from it.
    pub commit_at: Option<i64>,
    /// The Paver request the sender says this deploy carries out.
    pub request_id: Option<String>,
}
