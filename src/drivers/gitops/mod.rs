//! The GitOps driver, Paver's default executor: it writes the desired state
//! of every service and environment into a Git repository and commits. A
//! GitOps controller (Argo CD, Flux, a Score implementation) watching that
//! repository makes it so; Paver itself never talks to a cluster.
//!
//! Configuration is the `[gitops]` section ([`GitOpsConfig`]). The driver uses
//! the `git` command (checked for when the driver is opened), never a Git
//! library, so whatever `git` can reach (SSH keys, credential helpers,
//! `insteadOf` rules) Paver can reach too.
//!
//! # Repository layout
//!
//! ```text
//! README.md                          written by the initial commit
//! services/
//!   <service>/
//!     <environment>.yaml             desired state of one environment:
//!                                    dev.yaml, staging.yaml, production.yaml, preview.yaml
//!     catalog-info.yaml              Backstage Component (services Paver scaffolded)
//!     README.md                      skeleton of a scaffolded service,
//!     mkdocs.yml                     with TechDocs ready to publish
//!     docs/index.md
//! ```
//!
//! # Environment files
//!
//! Each `services/<service>/<environment>.yaml` is a Score workload
//! (`score.dev/v1b1`); Paver's own state sits in `paver.dev/…` annotations:
//!
//! ```yaml
//! # Managed by Paver: change it through Paver. Hand edits to other fields are kept, comments are not.
//! apiVersion: score.dev/v1b1
//! metadata:
//!   name: order-service
//!   annotations:
//!     paver.dev/deployedAt: 2025-03-01T09:30:00.000Z
//!     paver.dev/environment: staging
//!     paver.dev/replicas: '2'
//!     paver.dev/requestId: r-abc
//!     paver.dev/restartedAt: 2025-03-02T14:00:00.000Z
//!     paver.dev/version: 1.2.3
//! containers:
//!   main:
//!     image: order-service:1.2.3
//! resources:
//!   postgres:
//!     type: postgres
//!   redis:
//!     type: redis
//! ```
//!
//! | annotation | meaning |
//! | --- | --- |
//! | `paver.dev/version` | the version to run; `latest` until the first deploy. The tag of `containers.main.image` follows it (a registry prefix written by hand is kept). |
//! | `paver.dev/replicas` | number of replicas (a string, as annotations are); 1 at creation |
//! | `paver.dev/environment` | the environment, as in the file name |
//! | `paver.dev/deployedAt` | RFC 3339 time of the last deploy, rollback or promotion: a redeploy of the same version changes it, so the controller rolls out again |
//! | `paver.dev/restartedAt` | RFC 3339 time of the last restart |
//! | `paver.dev/expiresAt` | RFC 3339 time after which a preview environment may be reaped |
//! | `paver.dev/requestId` | the Paver request that last changed the file |
//!
//! `resources` maps a name (the type, for resources Paver adds) to
//! `{type: postgres|mysql|redis|kafka|rabbitmq|s3|mongodb|opensearch}`.
//! Fields Paver does not know (container `variables`, resource `params`,
//! a `service` section…) are kept when Paver rewrites the file; comments
//! are not.
//!
//! # What each action does
//!
//! Every mutating action ends in at most one commit:
//!
//! | action | effect |
//! | --- | --- |
//! | `create_environment` | writes the file: version `latest`, 1 replica, the resources, `expiresAt` when the job has an expiry. An environment that already exists with (at least) those resources is a success with no commit; one with other resources is refused (use `add_resource`). |
//! | `destroy_environment` | removes the file; an absent file is a success with no commit |
//! | `add_resource` | adds the resources to an existing file |
//! | `deploy` | sets the version and `deployedAt`; without a version, keeps it and only bumps `deployedAt` (a redeploy) |
//! | `rollback` | sets the given version; without one, the previous distinct version in the file's Git history (not crossing a destroy; `latest` does not count), like `kubectl rollout undo` |
//! | `promote` | copies the version of `from` into `to`; both must exist |
//! | `scale` | sets `replicas` |
//! | `restart` | bumps `restartedAt` |
//! | `scaffold_service` | writes `services/<name>/` with `catalog-info.yaml` (owner: the action's team, else the requester as `user:<name>`; the template in the `backstage.io/source-template` annotation), `README.md`, `mkdocs.yml` and `docs/index.md`; refused when `services/<name>/` exists |
//!
//! Every action but `create_environment`, `destroy_environment` and
//! `scaffold_service` needs the environment file to exist. Non-mutating
//! actions (`status`, `who_owns`, …) are refused: Paver answers them itself.
//!
//! # Commits
//!
//! ```text
//! deploy order-service 1.2.3 to staging
//!
//! Request: r-abc
//! Requested-by: alice
//! Approved-by: carol
//! Idempotency-Key: r-abc/1
//! ```
//!
//! `Approved-by` is left out when nobody had to approve. Author and committer
//! are `author_name <author_email>` from the configuration.
//!
//! # Idempotency and crashes
//!
//! A job whose `Idempotency-Key` is already in the branch's history is not
//! done again: the driver answers with the outcome of that commit. A change
//! that leaves the files as they are makes no commit. Before each job the
//! working tree is reset to the last commit (`git reset --hard`, and `git
//! clean` under `services/`), so what an interrupted job left behind never
//! leaks into the next commit. The clone belongs to Paver: do not edit it by
//! hand, push to the remote instead. Jobs are serialized on one driver; run one
//! Paver process per clone.
//!
//! # Remote
//!
//! With `remote` set, the clone's `origin` points there. Before each job the
//! driver fetches it and moves to `origin/<branch>` when the remote is ahead
//! (the remote is the truth: local commits that never reached a remote that
//! has since moved on are dropped, and their jobs, which failed, redo the work
//! when retried). After each commit, or whenever the branch is ahead of
//! `origin/<branch>`, it pushes. A failed fetch or push is
//! retried ([`DriverError::Unreachable`]); the commit stays local and is pushed by the
//! next job or the retry. A new clone whose remote already has the branch
//! starts from it instead of making its own initial commit.

mod apply;
mod config;
mod git;
mod message;
mod repo;
mod score;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;
use tokio::sync::Mutex;

use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::domain::wording::past_tense;
use crate::domain::{Action, Environment, GoldenPath, ServiceName};
use apply::Change;
use git::{io_error, spawn_error, Git};

pub use config::GitOpsConfig;
pub use score::{
    BadAnnotation, CatalogInfo, CatalogInfoMetadata, ComponentSpec, Container, ResourceSpec,
    Workload, WorkloadMetadata, ANNOTATION_DEPLOYED_AT, ANNOTATION_ENVIRONMENT,
    ANNOTATION_EXPIRES_AT, ANNOTATION_REPLICAS, ANNOTATION_REQUEST_ID, ANNOTATION_RESTARTED_AT,
    ANNOTATION_VERSION, SCORE_API_VERSION, UNDEPLOYED_VERSION,
};

/// The name of the remote Paver pushes to.
const REMOTE: &str = "origin";
/// The folder holding everything Paver writes.
const SERVICES_DIR: &str = "services";
/// The version a seeded environment starts at.
const SEED_VERSION: &str = "1.0.0";

/// The GitOps driver. One instance serves many concurrent jobs: work on the
/// repository is serialized.
pub struct GitOpsDriver {
    config: GitOpsConfig,
    root: PathBuf,
    git: Git,
    lock: Mutex<()>,
    /// The sizes written as each resource's `params`: what the card showed.
    golden: GoldenPath,
}

impl fmt::Debug for GitOpsDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitOpsDriver")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish()
    }
}

impl GitOpsDriver {
    /// Opens the repository, creating it (with an initial commit) when absent,
    /// and checks that `git` is installed. Configuration problems and a
    /// missing `git` are [`DriverError::Config`]; an unreachable remote,
    /// when the clone is new, is [`DriverError::Unreachable`].
    pub async fn open(config: GitOpsConfig) -> Result<Self, DriverError> {
        Self::open_with_program(config, "git").await
    }

    async fn open_with_program(
        config: GitOpsConfig,
        program: impl Into<OsString>,
    ) -> Result<Self, DriverError> {
        let program = program.into();
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(DriverError::Config(problems.join("; ")));
        }
        let version = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| spawn_error(&program, e))?;
        if !version.success() {
            return Err(DriverError::Config(format!(
                "`{} --version` failed ({version}): is git installed correctly?",
                program.to_string_lossy()
            )));
        }
        let root = std::path::absolute(&config.repo)
            .map_err(|e| io_error(&format!("gitops.repo {}", config.repo.display()), e))?;
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| io_error(&format!("cannot create {}", root.display()), e))?;
        let secret = config
            .remote
            .as_deref()
            .and_then(|r| url::Url::parse(r).ok())
            .and_then(|u| u.password().map(str::to_owned));
        let git = Git {
            program,
            dir: root.clone(),
            identity: [
                format!("user.name={}", config.author_name),
                format!("user.email={}", config.author_email),
            ],
            timeout: Duration::from_secs(config.timeout_secs),
            secret,
        };
        let driver = GitOpsDriver {
            config,
            root,
            git,
            lock: Mutex::new(()),
            golden: GoldenPath::default(),
        };
        driver.init_repo().await?;
        Ok(driver)
    }

    /// Writes `golden`'s sizes into the resources it adds (the card shows
    /// the same ones).
    pub fn with_golden_path(mut self, golden: GoldenPath) -> Self {
        self.golden = golden;
        self
    }

    /// The clone's absolute path.
    pub fn repo(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &GitOpsConfig {
        &self.config
    }

    fn env_path(service: &ServiceName, environment: Environment) -> String {
        format!("{SERVICES_DIR}/{service}/{environment}.yaml")
    }

    async fn read_env(
        &self,
        service: &ServiceName,
        environment: Environment,
    ) -> Result<Option<Workload>, DriverError> {
        let rel = Self::env_path(service, environment);
        match tokio::fs::read_to_string(self.root.join(&rel)).await {
            Ok(text) => Workload::parse(&rel, &text, service).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&format!("cannot read {rel}"), e)),
        }
    }

    async fn require_env(
        &self,
        service: &ServiceName,
        environment: Environment,
    ) -> Result<Workload, DriverError> {
        self.read_env(service, environment).await?.ok_or_else(|| {
            DriverError::InvalidRequest(format!(
                "{service} has no {environment} environment; create it first"
            ))
        })
    }

    /// Writes a file atomically (readers never see half of it) and stages it.
    async fn write_file(
        &self,
        rel: &str,
        contents: &str,
        progress: Progress<'_>,
    ) -> Result<(), DriverError> {
        progress(&format!("writing {rel}"));
        let path = self.root.join(rel);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(DriverError::Io(format!("bad path {rel}")));
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(&format!("cannot create {}", dir.display()), e))?;
        let tmp = dir.join(format!(".{}.paver-tmp", name.to_string_lossy()));
        tokio::fs::write(&tmp, contents)
            .await
            .map_err(|e| io_error(&format!("cannot write {rel}"), e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io_error(&format!("cannot write {rel}"), e))?;
        self.git.run(&["add", "--", rel]).await?;
        Ok(())
    }

    async fn write_env(
        &self,
        service: &ServiceName,
        environment: Environment,
        workload: &mut Workload,
        job: &Job,
        progress: Progress<'_>,
    ) -> Result<(), DriverError> {
        workload.annotate(ANNOTATION_REQUEST_ID, job.request_id.as_str());
        let text = workload.render()?;
        self.write_file(&Self::env_path(service, environment), &text, progress)
            .await
    }

    /// The outcome of an action, the same whether it ran now or earlier.
    fn outcome(&self, action: &Action, summary: String) -> Outcome {
        let (url, links) = match action {
            Action::CreateEnvironment {
                service,
                environment,
                ..
            }
            | Action::AddResource {
                service,
                environment,
                ..
            }
            | Action::Deploy {
                service,
                environment,
                ..
            }
            | Action::Rollback {
                service,
                environment,
                ..
            }
            | Action::Scale {
                service,
                environment,
                ..
            }
            | Action::Restart {
                service,
                environment,
            }
            | Action::Promote {
                service,
                to: environment,
                ..
            } => (
                Some(self.config.url_for(service, *environment)),
                vec![("manifest".into(), Self::env_path(service, *environment))],
            ),
            Action::ScaffoldService { name, .. } => (
                None,
                vec![(
                    "catalog-info".into(),
                    format!("{SERVICES_DIR}/{name}/catalog-info.yaml"),
                )],
            ),
            _ => (None, Vec::new()),
        };
        Outcome {
            summary,
            url,
            links,
        }
    }

    async fn execute_locked(
        &self,
        job: &Job,
        progress: Progress<'_>,
    ) -> Result<Outcome, DriverError> {
        self.prepare(progress).await?;
        let key = if job.idempotency_key.is_empty() {
            job.request_id.as_str()
        } else {
            job.idempotency_key.as_str()
        };
        if let Some(done) = self.find_done(key).await? {
            progress(&format!("already done in commit {}", done.short));
            self.push_if_ahead(progress).await?;
            let summary = format!("{} (commit {})", past_tense(&done.subject), done.short);
            return Ok(self.outcome(&job.action, summary));
        }
        let committed = match self.apply(job, progress).await {
            Ok(Change::Nothing(summary)) => Ok(summary),
            Ok(Change::Staged(subject)) => match self.commit(&subject, job).await {
                Ok(Some(short)) => {
                    progress(&format!("committed {short}"));
                    Ok(format!("{} (commit {short})", past_tense(&subject)))
                }
                Ok(None) => Ok(format!("Nothing to change: {subject}")),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let summary = match committed {
            Ok(s) => s,
            Err(e) => {
                if let Err(cleanup) = self.discard().await {
                    tracing::warn!(target: "paver::gitops", "cannot reset the working tree: {cleanup}");
                }
                return Err(e);
            }
        };
        self.push_if_ahead(progress).await?;
        Ok(self.outcome(&job.action, summary))
    }
}

#[async_trait]
impl Driver for GitOpsDriver {
    fn name(&self) -> &'static str {
        "gitops"
    }

    fn resumable(&self) -> bool {
        true
    }

    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        if !job.action.kind().is_mutating() {
            return Err(DriverError::Unsupported(format!(
                "`{}` changes nothing; Paver answers it without a driver",
                job.action.kind()
            )));
        }
        let _guard = self.lock.lock().await;
        self.execute_locked(job, progress).await
    }

    async fn status(
        &self,
        service: &ServiceName,
        environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        let environments = match environment {
            Some(e) => vec![e],
            None => Environment::ALL.to_vec(),
        };
        let mut out = Vec::new();
        for env in environments {
            let Some(w) = self.read_env(service, env).await? else {
                continue;
            };
            out.push(EnvStatus {
                environment: env,
                version: w.version().map(str::to_owned),
                // Both were checked when the file was parsed.
                replicas: w.replicas().ok().flatten(),
                resources: w.resource_kinds(),
                url: Some(self.config.url_for(service, env)),
                expires_at: w.expires_at().ok().flatten(),
                health: None,
            });
        }
        Ok(out)
    }
}
