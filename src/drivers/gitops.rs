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
//! [`DriverError::Transient`]; the commit stays local and is pushed by the
//! next job or the retry. A new clone whose remote already has the branch
//! starts from it instead of making its own initial commit.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::catalog::Catalog;
use crate::domain::{
    Action, Environment, GoldenPath, ResourceKind, ResourceSize, ServiceName, UserName,
};

/// `apiVersion` of the environment files.
pub const SCORE_API_VERSION: &str = "score.dev/v1b1";
pub const ANNOTATION_VERSION: &str = "paver.dev/version";
pub const ANNOTATION_REPLICAS: &str = "paver.dev/replicas";
pub const ANNOTATION_ENVIRONMENT: &str = "paver.dev/environment";
pub const ANNOTATION_DEPLOYED_AT: &str = "paver.dev/deployedAt";
pub const ANNOTATION_RESTARTED_AT: &str = "paver.dev/restartedAt";
pub const ANNOTATION_EXPIRES_AT: &str = "paver.dev/expiresAt";
pub const ANNOTATION_REQUEST_ID: &str = "paver.dev/requestId";
/// The version an environment runs before its first deploy.
pub const UNDEPLOYED_VERSION: &str = "latest";

/// The name of the remote Paver pushes to.
const REMOTE: &str = "origin";
/// The folder holding everything Paver writes.
const SERVICES_DIR: &str = "services";
/// The container Paver sets the image of.
const MAIN_CONTAINER: &str = "main";
/// The version a seeded environment starts at.
const SEED_VERSION: &str = "1.0.0";
const FILE_HEADER: &str = "# Managed by Paver: change it through Paver. Hand edits to other fields are kept, comments are not.\n";
/// How far back `rollback` looks for an earlier version.
const HISTORY_DEPTH: &str = "1000";

/// The `[gitops]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitOpsConfig {
    /// The local clone Paver commits to; `git init`ed (with an initial
    /// commit) when absent. Relative to the working directory.
    pub repo: PathBuf,
    /// A Git URL to push each commit to; `None` keeps commits local.
    pub remote: Option<String>,
    /// The branch to commit to (and push to).
    pub branch: String,
    /// The URL of an environment: `{service}` and `{environment}` are replaced.
    pub url_template: String,
    /// Author and committer of Paver's commits.
    pub author_name: String,
    pub author_email: String,
    /// Time limit of one git command (a hanging push), in seconds.
    pub timeout_secs: u64,
    /// When Paver creates the repository itself (no remote), start it with
    /// each catalog service's environments as its lifecycle suggests, so a
    /// demo begins in a world that exists. Never touches an existing repo.
    pub seed_from_catalog: bool,
}

impl Default for GitOpsConfig {
    fn default() -> Self {
        GitOpsConfig {
            repo: PathBuf::from("var/gitops"),
            remote: None,
            branch: "main".into(),
            url_template: "https://{service}.{environment}.example.internal".into(),
            author_name: "Paver".into(),
            author_email: "paver@localhost".into(),
            timeout_secs: 60,
            seed_from_catalog: false,
        }
    }
}

impl fmt::Debug for GitOpsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitOpsConfig")
            .field("repo", &self.repo)
            .field(
                "remote",
                &self.remote.as_deref().map(crate::util::redact_url),
            )
            .field("branch", &self.branch)
            .field("url_template", &self.url_template)
            .field("author_name", &self.author_name)
            .field("author_email", &self.author_email)
            .field("timeout_secs", &self.timeout_secs)
            .field("seed_from_catalog", &self.seed_from_catalog)
            .finish()
    }
}

impl GitOpsConfig {
    /// Values that parse but cannot work, as `gitops.<key>: …` lines.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.repo.as_os_str().is_empty() {
            out.push("gitops.repo: must not be empty".into());
        }
        let bad_branch = self.branch.is_empty()
            || self.branch.starts_with('-')
            || self
                .branch
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
        if bad_branch {
            out.push(format!(
                "gitops.branch: `{}` is not a usable branch name",
                self.branch
            ));
        }
        match self.remote.as_deref() {
            Some(r) if r.trim().is_empty() => out.push(
                "gitops.remote: is empty; leave it out to keep commits local".into(),
            ),
            Some(r) if url::Url::parse(r).is_ok_and(|u| u.password().is_some()) => out.push(
                "gitops.remote: must not hold a password; use an SSH key or a git credential helper"
                    .into(),
            ),
            _ => {}
        }
        if !self.url_template.contains("{service}") {
            out.push("gitops.url_template: must contain {service}".into());
        }
        if self.author_name.trim().is_empty() || self.author_email.trim().is_empty() {
            out.push("gitops.author_name, gitops.author_email: must not be empty".into());
        }
        if self.timeout_secs == 0 {
            out.push("gitops.timeout_secs: must be at least 1".into());
        }
        out
    }

    /// The URL of one environment of one service.
    pub fn url_for(&self, service: &ServiceName, environment: Environment) -> String {
        self.url_template
            .replace("{service}", service.as_str())
            .replace("{environment}", environment.as_str())
    }
}

// ---------------------------------------------------------------------------
// File formats

/// One environment file: a Score workload with Paver's annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub api_version: String,
    pub metadata: WorkloadMetadata,
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourceSpec>,
    /// Whatever else the file holds, kept as it is.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadMetadata {
    pub name: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub image: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

impl Workload {
    /// A new environment: version `latest`, one replica, no resources.
    pub fn new(service: &ServiceName, environment: Environment) -> Self {
        let mut w = Workload {
            api_version: SCORE_API_VERSION.into(),
            metadata: WorkloadMetadata {
                name: service.as_str().into(),
                annotations: BTreeMap::new(),
                other: BTreeMap::new(),
            },
            containers: BTreeMap::new(),
            resources: BTreeMap::new(),
            other: BTreeMap::new(),
        };
        w.annotate(ANNOTATION_ENVIRONMENT, environment.as_str());
        w.annotate(ANNOTATION_REPLICAS, "1");
        w.set_version(UNDEPLOYED_VERSION);
        w
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotations.get(key).map(String::as_str)
    }

    fn annotate(&mut self, key: &str, value: impl Into<String>) {
        self.metadata
            .annotations
            .insert(key.to_owned(), value.into());
    }

    /// The version annotation, else the tag of the main container's image.
    pub fn version(&self) -> Option<&str> {
        self.annotation(ANNOTATION_VERSION).or_else(|| {
            let image = &self.containers.get(MAIN_CONTAINER)?.image;
            let (_, tag) = split_tag(image);
            tag
        })
    }

    /// Sets the version annotation and the main container's image tag.
    fn set_version(&mut self, version: &str) {
        self.annotate(ANNOTATION_VERSION, version);
        let name = self.metadata.name.clone();
        let container = self
            .containers
            .entry(MAIN_CONTAINER.into())
            .or_insert_with(|| Container {
                image: name,
                other: BTreeMap::new(),
            });
        let (repository, _) = split_tag(&container.image);
        container.image = format!("{repository}:{version}");
    }

    pub fn replicas(&self) -> Result<Option<u32>, String> {
        self.annotation(ANNOTATION_REPLICAS)
            .map(|r| {
                r.trim().parse().map_err(|_| {
                    format!("{ANNOTATION_REPLICAS} is `{r}`, not a number of replicas")
                })
            })
            .transpose()
    }

    /// `expiresAt` as Unix seconds.
    pub fn expires_at(&self) -> Result<Option<i64>, String> {
        self.annotation(ANNOTATION_EXPIRES_AT)
            .map(|t| {
                let t = t.trim();
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp())
                    .or_else(|_| t.parse::<i64>())
                    .map_err(|_| format!("{ANNOTATION_EXPIRES_AT} is `{t}`, not an RFC 3339 time"))
            })
            .transpose()
    }

    /// The resources Paver knows the type of, in file order.
    pub fn resource_kinds(&self) -> Vec<ResourceKind> {
        let mut kinds: Vec<ResourceKind> = self
            .resources
            .values()
            .filter_map(|r| ResourceKind::ALL.into_iter().find(|k| k.as_str() == r.kind))
            .collect();
        kinds.dedup();
        kinds
    }

    pub fn has_resource(&self, kind: ResourceKind) -> bool {
        self.resources.values().any(|r| r.kind == kind.as_str())
    }

    /// Adds a resource of `kind` sized by the golden path (its `params`).
    fn add_resource(&mut self, kind: ResourceKind, size: Option<&ResourceSize>) {
        if self.has_resource(kind) {
            return;
        }
        let mut name = kind.as_str().to_owned();
        let mut n = 2;
        while self.resources.contains_key(&name) {
            name = format!("{}-{n}", kind.as_str());
            n += 1;
        }
        let mut other = BTreeMap::new();
        if let Some(size) = size {
            let params: serde_norway::Mapping = size
                .params()
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            other.insert("params".to_owned(), serde_norway::Value::Mapping(params));
        }
        self.resources.insert(
            name,
            ResourceSpec {
                kind: kind.as_str().into(),
                other,
            },
        );
    }

    /// Parses and checks a file's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str, service: &ServiceName) -> Result<Self, DriverError> {
        let w: Workload = serde_norway::from_str(text).map_err(|e| {
            DriverError::Permanent(format!("{path} is malformed and needs fixing by hand: {e}"))
        })?;
        let bad = |what: String| {
            DriverError::Permanent(format!(
                "{path} is malformed and needs fixing by hand: {what}"
            ))
        };
        if w.api_version != SCORE_API_VERSION {
            return Err(bad(format!(
                "apiVersion is `{}`, expected {SCORE_API_VERSION}",
                w.api_version
            )));
        }
        if w.metadata.name != service.as_str() {
            return Err(bad(format!(
                "metadata.name is `{}`, expected {service}",
                w.metadata.name
            )));
        }
        w.replicas().map_err(bad)?;
        w.expires_at().map_err(bad)?;
        Ok(w)
    }

    pub fn render(&self) -> Result<String, DriverError> {
        let body = serde_norway::to_string(self).map_err(|e| {
            DriverError::Permanent(format!("cannot write workload {}: {e}", self.metadata.name))
        })?;
        Ok(format!("{FILE_HEADER}{body}"))
    }
}

/// Splits `registry:5000/team/app:1.2` into the repository and the tag.
fn split_tag(image: &str) -> (&str, Option<&str>) {
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].find(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, None),
    }
}

/// `services/<name>/catalog-info.yaml` of a scaffolded service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogInfo {
    pub api_version: String,
    pub kind: String,
    pub metadata: CatalogInfoMetadata,
    pub spec: ComponentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogInfoMetadata {
    pub name: String,
    pub description: String,
    pub annotations: BTreeMap<String, String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub lifecycle: String,
    pub owner: String,
}

// ---------------------------------------------------------------------------
// The git command

struct GitOutput {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl GitOutput {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `git -C <repo> …` with Paver's identity and a time limit.
struct Git {
    program: OsString,
    dir: PathBuf,
    identity: [String; 2],
    timeout: Duration,
    /// The remote URL's password, if any, hidden from every message.
    secret: Option<String>,
}

impl Git {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-C")
            .arg(&self.dir)
            .arg("-c")
            .arg(&self.identity[0])
            .arg("-c")
            .arg(&self.identity[1])
            .args(["-c", "commit.gpgSign=false", "-c", "core.quotePath=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs git and returns what it did, whatever its exit code.
    async fn output(&self, args: &[&str], input: Option<&[u8]>) -> Result<GitOutput, DriverError> {
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().map_err(|e| spawn_error(&self.program, e))?;
        let writer = match (input, child.stdin.take()) {
            (Some(data), Some(mut stdin)) => {
                let data = data.to_vec();
                Some(tokio::spawn(async move {
                    // A failed write shows up as git's own error.
                    let _ = stdin.write_all(&data).await;
                }))
            }
            _ => None,
        };
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(DriverError::Transient(format!(
                    "git {} failed to run: {e}",
                    args[0]
                )))
            }
            Err(_) => {
                return Err(DriverError::Transient(format!(
                    "git {} timed out after {}s",
                    args[0],
                    self.timeout.as_secs()
                )))
            }
        };
        if let Some(w) = writer {
            let _ = w.await;
        }
        Ok(GitOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs git; anything but success is an error carrying git's stderr.
    async fn run(&self, args: &[&str]) -> Result<String, DriverError> {
        let out = self.output(args, None).await?;
        if out.code == Some(0) {
            Ok(out.text())
        } else {
            Err(self.failure(args, &out))
        }
    }

    /// For commands answering yes (exit 0) or no (exit 1).
    async fn check(&self, args: &[&str]) -> Result<bool, DriverError> {
        let out = self.output(args, None).await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(args, &out)),
        }
    }

    fn failure(&self, args: &[&str], out: &GitOutput) -> DriverError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let detail = match (stderr.trim(), stdout.trim()) {
            ("", "") => match out.code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            },
            ("", s) | (s, _) => s.to_owned(),
        };
        let mut message = format!("git {} failed: {detail}", args[0]);
        if let Some(secret) = self.secret.as_deref().filter(|s| !s.is_empty()) {
            message = message.replace(secret, "***");
        }
        let network = matches!(args[0], "fetch" | "push" | "ls-remote");
        let busy = detail.contains(".lock") || detail.contains("cannot lock ref");
        if network || busy {
            DriverError::Transient(message)
        } else {
            DriverError::Permanent(message)
        }
    }
}

fn spawn_error(program: &OsString, e: std::io::Error) -> DriverError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DriverError::Permanent(format!(
            "the gitops driver runs the `{}` command, which was not found on PATH: install git \
             (apt-get install git, apk add git, brew install git) or configure another driver",
            program.to_string_lossy()
        ))
    } else {
        DriverError::Permanent(format!("cannot run `{}`: {e}", program.to_string_lossy()))
    }
}

fn io_error(what: &str, e: std::io::Error) -> DriverError {
    DriverError::Permanent(format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------
// The driver

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

/// What an action did to the working tree.
enum Change {
    /// Files are written and staged; the commit subject.
    Staged(String),
    /// Nothing needed doing; the summary for the thread.
    Nothing(String),
}

/// A commit that already did a job.
struct Done {
    short: String,
    subject: String,
}

impl GitOpsDriver {
    /// Opens the repository, creating it (with an initial commit) when absent,
    /// and checks that `git` is installed. Configuration problems and a
    /// missing `git` are [`DriverError::Permanent`]; an unreachable remote,
    /// when the clone is new, is [`DriverError::Transient`].
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
            return Err(DriverError::Permanent(problems.join("; ")));
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
            return Err(DriverError::Permanent(format!(
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

    async fn init_repo(&self) -> Result<(), DriverError> {
        let branch = self.config.branch.as_str();
        let head_ref = format!("refs/heads/{branch}");
        self.git
            .run(&["check-ref-format", "--branch", branch])
            .await
            .map_err(|e| DriverError::Permanent(format!("gitops.branch: {e}")))?;
        if !self.root.join(".git").exists() {
            tracing::info!(target: "paver::gitops", "creating GitOps repository {}", self.root.display());
            self.git.run(&["init", "-q"]).await?;
            self.git.run(&["symbolic-ref", "HEAD", &head_ref]).await?;
        }
        // A lock left by a git killed mid-way would block every job; only
        // Paver works in this clone, and it has not started yet.
        let stale = self.root.join(".git/index.lock");
        if stale.exists() {
            tracing::warn!(target: "paver::gitops", "removing stale {}", stale.display());
            tokio::fs::remove_file(&stale)
                .await
                .map_err(|e| io_error(&format!("cannot remove {}", stale.display()), e))?;
        }
        if let Some(url) = &self.config.remote {
            match self.git.run(&["remote", "get-url", REMOTE]).await {
                Ok(current) if current.trim() == url => {}
                Ok(_) => {
                    self.git.run(&["remote", "set-url", REMOTE, url]).await?;
                }
                Err(_) => {
                    self.git.run(&["remote", "add", REMOTE, url]).await?;
                }
            }
        }
        let born = self
            .git
            .check(&["rev-parse", "-q", "--verify", "HEAD"])
            .await?;
        if born {
            let current = self
                .git
                .output(&["symbolic-ref", "-q", "--short", "HEAD"], None)
                .await?
                .text();
            if current.trim() != branch {
                let exists = self
                    .git
                    .check(&["rev-parse", "-q", "--verify", &head_ref])
                    .await?;
                if exists {
                    self.git.run(&["checkout", "-q", branch]).await?;
                } else {
                    self.git.run(&["checkout", "-q", "-b", branch]).await?;
                }
            }
            return Ok(());
        }
        self.git.run(&["symbolic-ref", "HEAD", &head_ref]).await?;
        if self.config.remote.is_some() {
            self.git.run(&["fetch", "-q", REMOTE]).await?;
            let tracking = self.tracking_ref();
            if self
                .git
                .check(&["rev-parse", "-q", "--verify", &tracking])
                .await?
            {
                self.git.run(&["reset", "-q", "--hard", &tracking]).await?;
                return Ok(());
            }
        }
        let readme = self.root.join("README.md");
        if !readme.exists() {
            tokio::fs::write(&readme, REPO_README)
                .await
                .map_err(|e| io_error(&format!("cannot write {}", readme.display()), e))?;
        }
        self.git.run(&["add", "--", "README.md"]).await?;
        self.git
            .run(&[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "initialize Paver GitOps repository",
            ])
            .await?;
        Ok(())
    }

    /// Seeds a repository that has no service yet from the catalog: a
    /// service whose lifecycle is `production` gets dev and production at
    /// version 1.0.0, an `experimental` one gets dev, with
    /// the resources the catalog says it depends on in each. One commit.
    /// Returns how many environments were written (0: nothing to do).
    pub async fn seed_from(&self, catalog: &Catalog) -> Result<usize, DriverError> {
        if self.config.remote.is_some() || self.root.join(SERVICES_DIR).exists() {
            return Ok(0);
        }
        let _guard = self.lock.lock().await;
        let quiet = |_: &str| {};
        let mut written = 0;
        for c in catalog.components() {
            let envs: &[Environment] = match c.lifecycle.as_deref() {
                // Staging environments are what people create on demand.
                Some("production") => &[Environment::Dev, Environment::Production],
                Some("experimental") => &[Environment::Dev],
                _ => &[],
            };
            let resources: Vec<ResourceKind> = c
                .depends_on
                .iter()
                .filter_map(|d| d.strip_prefix("resource:"))
                .filter_map(|name| catalog.resources().iter().find(|r| r.name == name))
                .filter_map(|r| r.resource_type.as_deref().and_then(ResourceKind::from_word))
                .collect();
            for env in envs {
                let mut w = Workload::new(&c.name, *env);
                w.set_version(SEED_VERSION);
                for r in &resources {
                    w.add_resource(*r, self.golden.size(*r));
                }
                let text = w.render()?;
                self.write_file(&Self::env_path(&c.name, *env), &text, &quiet)
                    .await?;
                written += 1;
            }
        }
        if written > 0 {
            self.git
                .run(&["commit", "-q", "-m", "seed environments from the catalog"])
                .await?;
            tracing::info!(target: "paver::gitops", environments = written, "seeded the GitOps repository from the catalog");
        }
        Ok(written)
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/{REMOTE}/{}", self.config.branch)
    }

    fn env_path(service: &ServiceName, environment: Environment) -> String {
        format!("{SERVICES_DIR}/{service}/{environment}.yaml")
    }

    /// Throws away what an interrupted job left, then catches up with the remote.
    async fn prepare(&self, progress: Progress<'_>) -> Result<(), DriverError> {
        self.discard().await?;
        if self.config.remote.is_none() {
            return Ok(());
        }
        progress(&format!("fetching {REMOTE}"));
        self.git.run(&["fetch", "-q", "--prune", REMOTE]).await?;
        let tracking = self.tracking_ref();
        if !self
            .git
            .check(&["rev-parse", "-q", "--verify", &tracking])
            .await?
        {
            return Ok(()); // the remote has no such branch yet: the push creates it
        }
        if self
            .git
            .check(&["merge-base", "--is-ancestor", &tracking, "HEAD"])
            .await?
        {
            return Ok(()); // up to date, or ahead with commits still to push
        }
        if !self
            .git
            .check(&["merge-base", "--is-ancestor", "HEAD", &tracking])
            .await?
        {
            let dropped = self
                .git
                .run(&["log", "--format=%h %s", &format!("{tracking}..HEAD")])
                .await
                .unwrap_or_default();
            tracing::warn!(
                target: "paver::gitops",
                "{REMOTE}/{} moved on; dropping local commits that were never pushed:\n{}",
                self.config.branch,
                dropped.trim()
            );
            progress(&format!(
                "{REMOTE} moved on: dropped local commits that were never pushed"
            ));
        }
        self.git.run(&["reset", "-q", "--hard", &tracking]).await?;
        Ok(())
    }

    /// Resets the working tree and index to the last commit.
    async fn discard(&self) -> Result<(), DriverError> {
        self.git.run(&["reset", "-q", "--hard", "HEAD"]).await?;
        self.git
            .run(&["clean", "-q", "-fd", "--", SERVICES_DIR])
            .await?;
        Ok(())
    }

    async fn push_if_ahead(&self, progress: Progress<'_>) -> Result<(), DriverError> {
        if self.config.remote.is_none() {
            return Ok(());
        }
        let tracking = self.tracking_ref();
        let ahead = if self
            .git
            .check(&["rev-parse", "-q", "--verify", &tracking])
            .await?
        {
            let n = self
                .git
                .run(&["rev-list", "--count", &format!("{tracking}..HEAD")])
                .await?;
            n.trim() != "0"
        } else {
            true
        };
        if ahead {
            progress(&format!("pushing to {REMOTE}"));
            let refspec = format!("HEAD:refs/heads/{}", self.config.branch);
            self.git.run(&["push", "-q", REMOTE, &refspec]).await?;
            progress(&format!("pushed to {REMOTE}"));
        }
        Ok(())
    }

    /// The newest commit on the branch carrying this idempotency key.
    async fn find_done(&self, key: &str) -> Result<Option<Done>, DriverError> {
        let trailer = format!("Idempotency-Key: {}", one_line(key));
        let grep = format!("--grep={trailer}");
        let log = self
            .git
            .run(&[
                "log",
                "--abbrev=7",
                "--format=%h%x1f%s%x1f%B%x1e",
                "-F",
                &grep,
                "HEAD",
            ])
            .await?;
        for record in log.split('\x1e') {
            let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
            let (Some(short), Some(subject), Some(body)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if body.lines().any(|l| l.trim_end() == trailer) {
                return Ok(Some(Done {
                    short: short.to_owned(),
                    subject: subject.to_owned(),
                }));
            }
        }
        Ok(None)
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
            DriverError::Invalid(format!(
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
            return Err(DriverError::Permanent(format!("bad path {rel}")));
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

    /// Makes the action's change in the working tree and stages it.
    async fn apply(&self, job: &Job, progress: Progress<'_>) -> Result<Change, DriverError> {
        match &job.action {
            Action::CreateEnvironment {
                service,
                environment,
                resources,
            } => {
                let (service, environment) = (service, *environment);
                if let Some(existing) = self.read_env(service, environment).await? {
                    let missing: Vec<&str> = resources
                        .iter()
                        .filter(|r| !existing.has_resource(**r))
                        .map(|r| r.as_str())
                        .collect();
                    if missing.is_empty() {
                        return Ok(Change::Nothing(format!(
                            "{service} already has a {environment} environment (no change)"
                        )));
                    }
                    return Err(DriverError::Invalid(format!(
                        "{service} already has a {environment} environment{}; add {} with add_resource",
                        with_resources(&existing.resource_kinds()),
                        missing.join(", ")
                    )));
                }
                let mut w = Workload::new(service, environment);
                for r in resources {
                    w.add_resource(*r, self.golden.size(*r));
                }
                if let Some(t) = job.expires_at {
                    let t = DateTime::<Utc>::from_timestamp(t, 0).ok_or_else(|| {
                        DriverError::Permanent(format!("expiry {t} is not a valid time"))
                    })?;
                    w.annotate(
                        ANNOTATION_EXPIRES_AT,
                        t.to_rfc3339_opts(SecondsFormat::Secs, true),
                    );
                }
                self.write_env(service, environment, &mut w, job, progress)
                    .await?;
                let kinds: Vec<ResourceKind> = resources.clone();
                Ok(Change::Staged(format!(
                    "create {environment} for {service}{}",
                    with_resources(&kinds)
                )))
            }
            Action::DestroyEnvironment {
                service,
                environment,
            } => {
                let rel = Self::env_path(service, *environment);
                if !self.root.join(&rel).exists() {
                    return Ok(Change::Nothing(format!(
                        "{service} has no {environment} environment: nothing to destroy"
                    )));
                }
                progress(&format!("removing {rel}"));
                self.git
                    .run(&["rm", "-q", "--ignore-unmatch", "--", &rel])
                    .await?;
                Ok(Change::Staged(format!(
                    "destroy {environment} for {service}"
                )))
            }
            Action::AddResource {
                service,
                environment,
                resources,
            } => {
                let mut w = self.require_env(service, *environment).await?;
                let new: Vec<ResourceKind> = resources
                    .iter()
                    .copied()
                    .filter(|r| !w.has_resource(*r))
                    .collect();
                if new.is_empty() {
                    return Ok(Change::Nothing(format!(
                        "{service} {environment} already has {} (no change)",
                        list(resources)
                    )));
                }
                for r in &new {
                    w.add_resource(*r, self.golden.size(*r));
                }
                self.write_env(service, *environment, &mut w, job, progress)
                    .await?;
                Ok(Change::Staged(format!(
                    "add {} to {service} {environment}",
                    list(&new)
                )))
            }
            Action::Deploy {
                service,
                environment,
                version,
            } => {
                let mut w = self.require_env(service, *environment).await?;
                let (verb, version) = match version {
                    Some(v) => ("deploy", v.as_str().to_owned()),
                    None => (
                        "redeploy",
                        w.version().unwrap_or(UNDEPLOYED_VERSION).to_owned(),
                    ),
                };
                w.set_version(&version);
                w.annotate(ANNOTATION_DEPLOYED_AT, now());
                self.write_env(service, *environment, &mut w, job, progress)
                    .await?;
                Ok(Change::Staged(format!(
                    "{verb} {service} {version} to {environment}"
                )))
            }
            Action::Rollback {
                service,
                environment,
                version,
            } => {
                let mut w = self.require_env(service, *environment).await?;
                let current = w.version().unwrap_or(UNDEPLOYED_VERSION).to_owned();
                let target = match version {
                    Some(v) => v.as_str().to_owned(),
                    None => self
                        .previous_version(service, *environment, &current)
                        .await?
                        .ok_or_else(|| {
                            DriverError::Invalid(format!(
                                "{service} {environment} has no earlier version than {current} \
                                 to roll back to; name the version"
                            ))
                        })?,
                };
                if target == current {
                    return Ok(Change::Nothing(format!(
                        "{service} {environment} already runs {current} (no change)"
                    )));
                }
                w.set_version(&target);
                w.annotate(ANNOTATION_DEPLOYED_AT, now());
                self.write_env(service, *environment, &mut w, job, progress)
                    .await?;
                Ok(Change::Staged(format!(
                    "roll back {service} {environment} from {current} to {target}"
                )))
            }
            Action::Promote { service, from, to } => {
                let source = self.require_env(service, *from).await?;
                let mut w = self.require_env(service, *to).await?;
                let version = match source.version() {
                    Some(v) if v != UNDEPLOYED_VERSION => v.to_owned(),
                    _ => {
                        return Err(DriverError::Permanent(format!(
                            "{service} {from} has no deployed version to promote; deploy one first"
                        )))
                    }
                };
                if w.version() == Some(version.as_str()) {
                    return Ok(Change::Nothing(format!(
                        "{service} {to} already runs {version} (no change)"
                    )));
                }
                w.set_version(&version);
                w.annotate(ANNOTATION_DEPLOYED_AT, now());
                self.write_env(service, *to, &mut w, job, progress).await?;
                Ok(Change::Staged(format!(
                    "promote {service} {version} from {from} to {to}"
                )))
            }
            Action::Scale {
                service,
                environment,
                replicas,
            } => {
                let mut w = self.require_env(service, *environment).await?;
                if w.replicas().ok().flatten() == Some(*replicas) {
                    return Ok(Change::Nothing(format!(
                        "{service} {environment} already runs {} (no change)",
                        plural(*replicas, "replica")
                    )));
                }
                w.annotate(ANNOTATION_REPLICAS, replicas.to_string());
                self.write_env(service, *environment, &mut w, job, progress)
                    .await?;
                Ok(Change::Staged(format!(
                    "scale {service} {environment} to {}",
                    plural(*replicas, "replica")
                )))
            }
            Action::Restart {
                service,
                environment,
            } => {
                let mut w = self.require_env(service, *environment).await?;
                w.annotate(ANNOTATION_RESTARTED_AT, now());
                self.write_env(service, *environment, &mut w, job, progress)
                    .await?;
                Ok(Change::Staged(format!("restart {service} {environment}")))
            }
            Action::ScaffoldService {
                name,
                template,
                owner,
            } => {
                let dir = format!("{SERVICES_DIR}/{name}");
                if self.root.join(&dir).exists() {
                    return Err(DriverError::Permanent(format!(
                        "a service named {name} already exists in the GitOps repository ({dir}/); pick another name"
                    )));
                }
                let owner = match owner {
                    Some(team) => team.as_str().to_owned(),
                    None => match UserName::parse(job.requester.as_str()) {
                        Ok(user) => format!("user:{user}"),
                        Err(_) => {
                            return Err(DriverError::Permanent(format!(
                                "scaffold_service needs an owner team: none was given, and the requester \
                                 `{}` is not a catalog user name",
                                job.requester
                            )))
                        }
                    },
                };
                let info = CatalogInfo {
                    api_version: "backstage.io/v1alpha1".into(),
                    kind: "Component".into(),
                    metadata: CatalogInfoMetadata {
                        name: name.as_str().into(),
                        description: format!("{name}, scaffolded by Paver from {template}"),
                        annotations: BTreeMap::from([
                            (
                                "backstage.io/source-template".into(),
                                format!("template:default/{template}"),
                            ),
                            ("backstage.io/techdocs-ref".into(), "dir:.".into()),
                            (ANNOTATION_REQUEST_ID.into(), job.request_id.clone()),
                        ]),
                        tags: vec![template.as_str().into()],
                    },
                    spec: ComponentSpec {
                        kind: "service".into(),
                        lifecycle: "experimental".into(),
                        owner: owner.clone(),
                    },
                };
                let yaml = serde_norway::to_string(&info).map_err(|e| {
                    DriverError::Permanent(format!("cannot write catalog-info for {name}: {e}"))
                })?;
                let files = [
                    ("catalog-info.yaml", yaml),
                    (
                        "README.md",
                        format!(
                            "# {name}\n\nScaffolded by Paver from the `{template}` template for \
                             {owner} (request {}).\n\nThe desired state of each environment lives \
                             next to this file as `<environment>.yaml`; change it through Paver.\n",
                            job.request_id
                        ),
                    ),
                    (
                        "mkdocs.yml",
                        format!(
                            "site_name: {name}\nnav:\n  - Home: index.md\nplugins:\n  - techdocs-core\n"
                        ),
                    ),
                    (
                        "docs/index.md",
                        format!("# {name}\n\nWhat {name} does, how to run it, and who to ask.\n"),
                    ),
                ];
                for (file, contents) in files {
                    self.write_file(&format!("{dir}/{file}"), &contents, progress)
                        .await?;
                }
                Ok(Change::Staged(format!(
                    "scaffold {name} from {template} for {owner}"
                )))
            }
            other => Err(DriverError::Permanent(format!(
                "`{}` changes nothing; Paver answers it without a driver",
                other.kind()
            ))),
        }
    }

    /// The newest version in the file's history that differs from `current`,
    /// not looking past the commit that last created the file.
    async fn previous_version(
        &self,
        service: &ServiceName,
        environment: Environment,
        current: &str,
    ) -> Result<Option<String>, DriverError> {
        let rel = Self::env_path(service, environment);
        let log = self
            .git
            .run(&[
                "log",
                "--format=%H",
                "-n",
                HISTORY_DEPTH,
                "HEAD",
                "--",
                &rel,
            ])
            .await?;
        let commits: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        if commits.is_empty() {
            return Ok(None);
        }
        let input: String = commits.iter().map(|c| format!("{c}:{rel}\n")).collect();
        let args = ["cat-file", "--batch"];
        let out = self.git.output(&args, Some(input.as_bytes())).await?;
        if out.code != Some(0) {
            return Err(self.git.failure(&args, &out));
        }
        let unexpected = || {
            DriverError::Permanent(format!(
                "unexpected output from git cat-file while reading the history of {rel}"
            ))
        };
        let mut rest: &[u8] = &out.stdout;
        for _ in &commits {
            let eol = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(unexpected)?;
            let header = String::from_utf8_lossy(&rest[..eol]).into_owned();
            rest = &rest[eol + 1..];
            if header.ends_with(" missing") {
                break; // the file was destroyed here: older versions are another life
            }
            let size: usize = header
                .split(' ')
                .nth(2)
                .and_then(|s| s.parse().ok())
                .ok_or_else(unexpected)?;
            let blob = rest.get(..size).ok_or_else(unexpected)?;
            rest = rest.get(size + 1..).unwrap_or_default();
            let text = String::from_utf8_lossy(blob);
            // A revision broken by hand is skipped, not fatal.
            let Ok(w) = Workload::parse(&rel, &text, service) else {
                continue;
            };
            if let Some(v) = w.version() {
                if v != current && v != UNDEPLOYED_VERSION {
                    return Ok(Some(v.to_owned()));
                }
            }
        }
        Ok(None)
    }

    async fn commit(&self, subject: &str, job: &Job) -> Result<Option<String>, DriverError> {
        if self.git.check(&["diff", "--cached", "--quiet"]).await? {
            return Ok(None);
        }
        let message = commit_message(subject, job);
        self.git
            .run(&["commit", "-q", "--cleanup=whitespace", "-m", &message])
            .await?;
        let short = self.git.run(&["rev-parse", "--short=7", "HEAD"]).await?;
        Ok(Some(short.trim().to_owned()))
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
            return Err(DriverError::Permanent(format!(
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

fn commit_message(subject: &str, job: &Job) -> String {
    let mut m = format!(
        "{subject}\n\nRequest: {}\nRequested-by: {}\n",
        one_line(&job.request_id),
        one_line(&job.requester)
    );
    if let Some(a) = &job.approver {
        m.push_str(&format!("Approved-by: {}\n", one_line(a)));
    }
    let key = if job.idempotency_key.is_empty() {
        &job.request_id
    } else {
        &job.idempotency_key
    };
    m.push_str(&format!("Idempotency-Key: {}\n", one_line(key)));
    m
}

/// Keeps a value on its trailer's line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "deploy order-service 1.2.3 to staging" → "Deployed order-service 1.2.3 to staging".
fn past_tense(subject: &str) -> String {
    let (verb, rest) = subject.split_once(' ').unwrap_or((subject, ""));
    let done = match verb {
        "create" => "Created",
        "destroy" => "Destroyed",
        "add" => "Added",
        "deploy" => "Deployed",
        "redeploy" => "Redeployed",
        "roll" => "Rolled",
        "promote" => "Promoted",
        "scale" => "Scaled",
        "restart" => "Restarted",
        "scaffold" => "Scaffolded",
        _ => {
            let mut chars = subject.chars();
            return match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect(),
                None => String::new(),
            };
        }
    };
    if rest.is_empty() {
        done.to_owned()
    } else {
        format!("{done} {rest}")
    }
}

fn list(kinds: &[ResourceKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn with_resources(kinds: &[ResourceKind]) -> String {
    if kinds.is_empty() {
        String::new()
    } else {
        format!(" with {}", list(kinds))
    }
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

const REPO_README: &str = "\
# Platform GitOps repository

Written by Paver, the platform chat-ops bot: every commit is one approved
request, with `Request`, `Requested-by`, `Approved-by` trailers.

    services/<service>/<environment>.yaml   desired state (Score workload, score.dev/v1b1)
    services/<service>/catalog-info.yaml    Backstage Component of a scaffolded service

Change environments through Paver; a GitOps controller applies this repository.
";

#[cfg(test)]
mod tests {
    use std::process::Command as StdCommand;
    use std::sync::{Arc, Mutex as StdMutex};

    use super::*;
    use crate::domain::{TeamName, TemplateName, Version};

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    /// Runs git synchronously in `dir`, independent of the driver.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = StdCommand::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=Test", "-c", "user.email=test@localhost"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn commits(dir: &Path) -> usize {
        git(dir, &["rev-list", "--count", "HEAD"])
            .trim()
            .parse()
            .unwrap()
    }

    fn last_message(dir: &Path) -> String {
        git(dir, &["log", "-1", "--format=%B"])
    }

    fn config(dir: &Path) -> GitOpsConfig {
        GitOpsConfig {
            repo: dir.join("repo"),
            ..GitOpsConfig::default()
        }
    }

    async fn driver(dir: &Path) -> GitOpsDriver {
        GitOpsDriver::open(config(dir)).await.unwrap()
    }

    fn job(id: &str, action: Action) -> Job {
        Job {
            approver: Some("carol".into()),
            ..Job::new(id, &format!("{id}/exec"), action, "alice")
        }
    }

    /// Runs a job and returns its result with the progress it reported.
    async fn run(d: &GitOpsDriver, job: &Job) -> (Result<Outcome, DriverError>, Vec<String>) {
        let seen = StdMutex::new(Vec::new());
        let progress = |m: &str| seen.lock().unwrap().push(m.to_owned());
        let r = d.execute(job, &progress).await;
        (r, seen.into_inner().unwrap())
    }

    async fn ok(d: &GitOpsDriver, job: &Job) -> Outcome {
        match run(d, job).await.0 {
            Ok(o) => o,
            Err(e) => panic!("{:?} failed: {e:?}", job.action),
        }
    }

    async fn permanent(d: &GitOpsDriver, job: &Job) -> String {
        match run(d, job).await.0 {
            // What fails for good: a broken target or an impossible action.
            Err(DriverError::Permanent(m) | DriverError::Invalid(m)) => m,
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    fn create(service: &str, environment: Environment, resources: &[ResourceKind]) -> Action {
        Action::CreateEnvironment {
            service: svc(service),
            environment,
            resources: resources.to_vec(),
        }
    }

    fn deploy(service: &str, environment: Environment, version: Option<&str>) -> Action {
        Action::Deploy {
            service: svc(service),
            environment,
            version: version.map(|v| Version::parse(v).unwrap()),
        }
    }

    fn workload(d: &GitOpsDriver, service: &str, environment: Environment) -> Workload {
        let rel = GitOpsDriver::env_path(&svc(service), environment);
        let text = std::fs::read_to_string(d.repo().join(&rel)).unwrap();
        Workload::parse(&rel, &text, &svc(service)).unwrap()
    }

    use Environment::{Dev, Preview, Production, Staging};
    use ResourceKind::{Postgres, Redis, S3};

    #[tokio::test]
    async fn open_creates_the_repository_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        assert!(d.repo().is_absolute());
        assert!(d.repo().join(".git").is_dir());
        assert!(d.repo().join("README.md").is_file());
        assert_eq!(commits(d.repo()), 1);
        assert_eq!(git(d.repo(), &["branch", "--show-current"]).trim(), "main");
        assert_eq!(
            git(d.repo(), &["log", "-1", "--format=%an <%ae>"]).trim(),
            "Paver <paver@localhost>"
        );
        drop(d);
        let d = driver(dir.path()).await;
        assert_eq!(commits(d.repo()), 1, "reopening makes no commit");
    }

    #[tokio::test]
    async fn open_uses_the_configured_branch_of_an_existing_repository() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        drop(d);
        let d = GitOpsDriver::open(GitOpsConfig {
            branch: "gitops".into(),
            ..config(dir.path())
        })
        .await
        .unwrap();
        assert_eq!(
            git(d.repo(), &["branch", "--show-current"]).trim(),
            "gitops"
        );
        ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
        assert_eq!(
            git(d.repo(), &["rev-list", "--count", "gitops"]).trim(),
            "2"
        );
        assert_eq!(git(d.repo(), &["rev-list", "--count", "main"]).trim(), "1");
    }

    #[tokio::test]
    async fn a_missing_git_or_bad_config_is_said_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = GitOpsDriver::open_with_program(config(dir.path()), "paver-no-such-git")
            .await
            .unwrap_err();
        let DriverError::Permanent(m) = err else {
            panic!("{err:?}")
        };
        assert!(
            m.contains("paver-no-such-git") && m.contains("not found"),
            "{m}"
        );
        assert!(m.contains("install git"), "{m}");

        let err = GitOpsDriver::open(GitOpsConfig {
            branch: "bad branch".into(),
            timeout_secs: 0,
            ..config(dir.path())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gitops.branch") && err.contains("gitops.timeout_secs"),
            "{err}"
        );
        let c = GitOpsConfig {
            remote: Some("https://paver:hunter2@git.example.internal/gitops.git".into()),
            ..GitOpsConfig::default()
        };
        assert!(c.problems().iter().any(|p| p.contains("password")));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn create_environment_writes_a_score_file_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let j = job(
            "r-abc",
            create("order-service", Staging, &[Postgres, Redis]),
        );
        let (out, progress) = run(&d, &j).await;
        let out = out.unwrap();
        assert_eq!(
            out.url.as_deref(),
            Some("https://order-service.staging.example.internal")
        );
        assert!(
            out.summary
                .starts_with("Created staging for order-service with postgres, redis (commit "),
            "{}",
            out.summary
        );
        assert_eq!(
            out.links,
            vec![(
                "manifest".to_owned(),
                "services/order-service/staging.yaml".to_owned()
            )]
        );
        assert!(progress.contains(&"writing services/order-service/staging.yaml".to_owned()));
        let short = git(d.repo(), &["rev-parse", "--short=7", "HEAD"]);
        assert!(
            progress.contains(&format!("committed {}", short.trim())),
            "{progress:?}"
        );
        assert!(out.summary.contains(short.trim()));

        assert_eq!(commits(d.repo()), 2);
        let msg = last_message(d.repo());
        assert!(msg.starts_with("create staging for order-service with postgres, redis\n\n"));
        for line in [
            "Request: r-abc",
            "Requested-by: alice",
            "Approved-by: carol",
            "Idempotency-Key: r-abc/exec",
        ] {
            assert!(
                msg.lines().any(|l| l == line),
                "{line:?} missing from {msg}"
            );
        }

        let text =
            std::fs::read_to_string(d.repo().join("services/order-service/staging.yaml")).unwrap();
        assert!(text.starts_with("# Managed by Paver"), "{text}");
        let raw: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(raw["apiVersion"].as_str(), Some("score.dev/v1b1"));
        assert_eq!(raw["metadata"]["name"].as_str(), Some("order-service"));
        let ann = &raw["metadata"]["annotations"];
        assert_eq!(ann["paver.dev/version"].as_str(), Some("latest"));
        assert_eq!(ann["paver.dev/replicas"].as_str(), Some("1"));
        assert_eq!(ann["paver.dev/requestId"].as_str(), Some("r-abc"));
        assert_eq!(ann["paver.dev/environment"].as_str(), Some("staging"));
        assert!(ann.get("paver.dev/expiresAt").is_none());
        assert_eq!(
            raw["containers"]["main"]["image"].as_str(),
            Some("order-service:latest")
        );
        assert_eq!(
            raw["resources"]["postgres"]["type"].as_str(),
            Some("postgres")
        );
        assert_eq!(raw["resources"]["redis"]["type"].as_str(), Some("redis"));
        assert!(
            git(d.repo(), &["status", "--porcelain"]).is_empty(),
            "the tree is clean"
        );
    }

    #[tokio::test]
    async fn the_same_job_twice_makes_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let jobs = [
            job("r-1", create("order-service", Staging, &[Postgres])),
            job("r-2", deploy("order-service", Staging, None)),
            job(
                "r-3",
                Action::Restart {
                    service: svc("order-service"),
                    environment: Staging,
                },
            ),
            job(
                "r-4",
                Action::ScaffoldService {
                    name: svc("billing-api"),
                    template: TemplateName::parse("go-service").unwrap(),
                    owner: None,
                },
            ),
        ];
        for (i, j) in jobs.iter().enumerate() {
            let first = ok(&d, j).await;
            assert_eq!(commits(d.repo()), i + 2);
            let (again, progress) = run(&d, j).await;
            assert_eq!(again.unwrap(), first, "a re-run gives the same outcome");
            assert_eq!(commits(d.repo()), i + 2, "{:?} committed twice", j.action);
            assert!(progress
                .iter()
                .any(|p| p.starts_with("already done in commit")));
        }
        // A different job whose key merely starts with the same text is new work.
        let mut similar = jobs[2].clone();
        similar.idempotency_key = "r-3/exec-2".into();
        ok(&d, &similar).await;
        assert_eq!(commits(d.repo()), 6);
    }

    #[tokio::test]
    async fn an_interrupted_job_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        // A crash between writing and committing: a stray file and an edit.
        let stray = d.repo().join("services/ghost-service/dev.yaml");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, "junk").unwrap();
        let staging = d.repo().join("services/order-service/staging.yaml");
        std::fs::write(&staging, "half a fi").unwrap();
        ok(
            &d,
            &job(
                "r-2",
                Action::Scale {
                    service: svc("order-service"),
                    environment: Staging,
                    replicas: 3,
                },
            ),
        )
        .await;
        assert!(!stray.exists());
        assert_eq!(
            workload(&d, "order-service", Staging).replicas(),
            Ok(Some(3))
        );
        let changed = git(d.repo(), &["show", "--name-only", "--format=", "HEAD"]);
        assert_eq!(changed.trim(), "services/order-service/staging.yaml");
    }

    #[tokio::test]
    async fn creating_an_existing_environment() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(
            &d,
            &job("r-1", create("order-service", Staging, &[Postgres, Redis])),
        )
        .await;
        let again = ok(
            &d,
            &job("r-2", create("order-service", Staging, &[Postgres])),
        )
        .await;
        assert!(
            again.summary.contains("already has a staging"),
            "{}",
            again.summary
        );
        assert_eq!(
            again.url.as_deref(),
            Some("https://order-service.staging.example.internal")
        );
        assert_eq!(commits(d.repo()), 2);
        let m = permanent(&d, &job("r-3", create("order-service", Staging, &[S3]))).await;
        assert!(
            m.contains("already has a staging") && m.contains("add_resource"),
            "{m}"
        );
        assert_eq!(commits(d.repo()), 2);
    }

    #[tokio::test]
    async fn preview_environments_carry_their_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let mut j = job("r-1", create("cart-service", Preview, &[Redis]));
        j.expires_at = Some(1_767_225_600); // 2026-01-01T00:00:00Z
        ok(&d, &j).await;
        let w = workload(&d, "cart-service", Preview);
        assert_eq!(
            w.annotation(ANNOTATION_EXPIRES_AT),
            Some("2026-01-01T00:00:00Z")
        );
        let status = d.status(&svc("cart-service"), Some(Preview)).await.unwrap();
        assert_eq!(status[0].expires_at, Some(1_767_225_600));
    }

    #[tokio::test]
    async fn destroy_removes_the_file_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
        let destroy = |id| {
            job(
                id,
                Action::DestroyEnvironment {
                    service: svc("order-service"),
                    environment: Dev,
                },
            )
        };
        let out = ok(&d, &destroy("r-2")).await;
        assert!(
            out.summary
                .starts_with("Destroyed dev for order-service (commit "),
            "{}",
            out.summary
        );
        assert_eq!(out.url, None);
        assert!(!d.repo().join("services/order-service/dev.yaml").exists());
        assert_eq!(commits(d.repo()), 3);
        assert!(last_message(d.repo()).starts_with("destroy dev for order-service\n"));
        let git_files = git(d.repo(), &["ls-files", "services"]);
        assert!(git_files.is_empty(), "{git_files}");

        let again = ok(&d, &destroy("r-3")).await;
        assert!(
            again.summary.contains("nothing to destroy"),
            "{}",
            again.summary
        );
        assert_eq!(commits(d.repo()), 3);
    }

    #[tokio::test]
    async fn add_resource_adds_only_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let add = |id, env, resources: &[ResourceKind]| {
            job(
                id,
                Action::AddResource {
                    service: svc("order-service"),
                    environment: env,
                    resources: resources.to_vec(),
                },
            )
        };
        let m = permanent(&d, &add("r-0", Staging, &[Redis])).await;
        assert_eq!(
            m,
            "order-service has no staging environment; create it first"
        );
        assert_eq!(commits(d.repo()), 1);

        ok(
            &d,
            &job("r-1", create("order-service", Staging, &[Postgres])),
        )
        .await;
        let out = ok(&d, &add("r-2", Staging, &[Postgres, Redis])).await;
        assert!(
            out.summary
                .starts_with("Added redis to order-service staging"),
            "{}",
            out.summary
        );
        assert_eq!(
            workload(&d, "order-service", Staging).resource_kinds(),
            vec![Postgres, Redis]
        );
        assert_eq!(commits(d.repo()), 3);
        let same = ok(&d, &add("r-3", Staging, &[Redis])).await;
        assert!(same.summary.contains("no change"), "{}", same.summary);
        assert_eq!(commits(d.repo()), 3);
    }

    #[tokio::test]
    async fn deploy_sets_or_keeps_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let m = permanent(
            &d,
            &job("r-0", deploy("order-service", Staging, Some("1.2.3"))),
        )
        .await;
        assert!(
            m.contains("has no staging environment; create it first"),
            "{m}"
        );

        ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        let out = ok(
            &d,
            &job("r-2", deploy("order-service", Staging, Some("1.2.3"))),
        )
        .await;
        assert!(out
            .summary
            .starts_with("Deployed order-service 1.2.3 to staging (commit "));
        assert!(last_message(d.repo()).starts_with("deploy order-service 1.2.3 to staging\n"));
        let w = workload(&d, "order-service", Staging);
        assert_eq!(w.version(), Some("1.2.3"));
        assert_eq!(w.containers["main"].image, "order-service:1.2.3");
        let first = w.annotation(ANNOTATION_DEPLOYED_AT).unwrap().to_owned();

        tokio::time::sleep(Duration::from_millis(5)).await;
        let out = ok(&d, &job("r-3", deploy("order-service", Staging, None))).await;
        assert!(out
            .summary
            .starts_with("Redeployed order-service 1.2.3 to staging"));
        let w = workload(&d, "order-service", Staging);
        assert_eq!(w.version(), Some("1.2.3"));
        assert_ne!(w.annotation(ANNOTATION_DEPLOYED_AT), Some(first.as_str()));
        assert_eq!(w.annotation(ANNOTATION_REQUEST_ID), Some("r-3"));
        assert_eq!(commits(d.repo()), 4);
    }

    #[tokio::test]
    async fn hand_edits_are_kept_and_the_registry_too() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(
            &d,
            &job("r-1", create("order-service", Staging, &[Postgres])),
        )
        .await;
        let path = d.repo().join("services/order-service/staging.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("image: order-service:latest", "image: registry.example:5000/shop/order-service:latest\n    variables:\n      LOG_LEVEL: debug")
            + "service:\n  ports:\n    www:\n      port: 8080\n";
        std::fs::write(&path, text).unwrap();
        git(d.repo(), &["commit", "-qam", "hand edit"]);
        ok(
            &d,
            &job("r-2", deploy("order-service", Staging, Some("2.0.0"))),
        )
        .await;
        let w = workload(&d, "order-service", Staging);
        assert_eq!(
            w.containers["main"].image,
            "registry.example:5000/shop/order-service:2.0.0"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("LOG_LEVEL: debug") && text.contains("port: 8080"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn rollback_uses_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let rollback = |id, version: Option<&str>| {
            job(
                id,
                Action::Rollback {
                    service: svc("order-service"),
                    environment: Production,
                    version: version.map(|v| Version::parse(v).unwrap()),
                },
            )
        };
        ok(&d, &job("r-1", create("order-service", Production, &[]))).await;
        let m = permanent(&d, &rollback("r-2", None)).await;
        assert!(m.contains("no earlier version"), "{m}");
        ok(
            &d,
            &job("r-3", deploy("order-service", Production, Some("1.0.0"))),
        )
        .await;
        let m = permanent(&d, &rollback("r-4", None)).await;
        assert!(m.contains("no earlier version than 1.0.0"), "{m}");

        ok(
            &d,
            &job("r-5", deploy("order-service", Production, Some("1.1.0"))),
        )
        .await;
        // Changes that keep the version do not count as versions.
        ok(
            &d,
            &job(
                "r-6",
                Action::Scale {
                    service: svc("order-service"),
                    environment: Production,
                    replicas: 4,
                },
            ),
        )
        .await;
        ok(&d, &job("r-7", deploy("order-service", Production, None))).await;
        let before = commits(d.repo());
        let out = ok(&d, &rollback("r-8", None)).await;
        assert!(
            out.summary
                .starts_with("Rolled back order-service production from 1.1.0 to 1.0.0"),
            "{}",
            out.summary
        );
        assert_eq!(commits(d.repo()), before + 1);
        let w = workload(&d, "order-service", Production);
        assert_eq!(w.version(), Some("1.0.0"));
        assert_eq!(w.replicas(), Ok(Some(4)), "only the version goes back");

        // Explicit versions, and one that is already running.
        ok(&d, &rollback("r-9", Some("v0.9.0"))).await;
        assert_eq!(
            workload(&d, "order-service", Production).version(),
            Some("0.9.0")
        );
        let same = ok(&d, &rollback("r-10", Some("0.9.0"))).await;
        assert!(
            same.summary.contains("already runs 0.9.0"),
            "{}",
            same.summary
        );
        assert_eq!(commits(d.repo()), before + 2);
    }

    #[tokio::test]
    async fn rollback_does_not_reach_past_a_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
        ok(&d, &job("r-2", deploy("order-service", Dev, Some("1.0.0")))).await;
        let destroy = Action::DestroyEnvironment {
            service: svc("order-service"),
            environment: Dev,
        };
        ok(&d, &job("r-3", destroy)).await;
        ok(&d, &job("r-4", create("order-service", Dev, &[]))).await;
        ok(&d, &job("r-5", deploy("order-service", Dev, Some("2.0.0")))).await;
        let rollback = Action::Rollback {
            service: svc("order-service"),
            environment: Dev,
            version: None,
        };
        let m = permanent(&d, &job("r-6", rollback)).await;
        assert!(m.contains("no earlier version than 2.0.0"), "{m}");
    }

    #[tokio::test]
    async fn scale_restart_and_promote() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let scale = |id, replicas| {
            job(
                id,
                Action::Scale {
                    service: svc("order-service"),
                    environment: Staging,
                    replicas,
                },
            )
        };
        let promote = |id| {
            job(
                id,
                Action::Promote {
                    service: svc("order-service"),
                    from: Staging,
                    to: Production,
                },
            )
        };
        let m = permanent(&d, &scale("r-0", 3)).await;
        assert!(m.contains("create it first"), "{m}");
        ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        let out = ok(&d, &scale("r-2", 3)).await;
        assert!(out
            .summary
            .starts_with("Scaled order-service staging to 3 replicas"));
        assert_eq!(
            workload(&d, "order-service", Staging).replicas(),
            Ok(Some(3))
        );
        assert!(ok(&d, &scale("r-3", 3)).await.summary.contains("no change"));
        assert_eq!(commits(d.repo()), 3);

        let restart = Action::Restart {
            service: svc("order-service"),
            environment: Staging,
        };
        let out = ok(&d, &job("r-4", restart)).await;
        assert!(out.summary.starts_with("Restarted order-service staging"));
        assert!(workload(&d, "order-service", Staging)
            .annotation(ANNOTATION_RESTARTED_AT)
            .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok()));
        assert_eq!(commits(d.repo()), 4);

        // Promotion needs both environments and a real version.
        let m = permanent(&d, &promote("r-5")).await;
        assert!(m.contains("no production environment"), "{m}");
        ok(&d, &job("r-6", create("order-service", Production, &[]))).await;
        let m = permanent(&d, &promote("r-7")).await;
        assert!(m.contains("no deployed version"), "{m}");
        ok(
            &d,
            &job("r-8", deploy("order-service", Staging, Some("3.1.4"))),
        )
        .await;
        let before = commits(d.repo());
        let out = ok(&d, &promote("r-9")).await;
        assert!(
            out.summary
                .starts_with("Promoted order-service 3.1.4 from staging to production"),
            "{}",
            out.summary
        );
        assert_eq!(
            out.url.as_deref(),
            Some("https://order-service.production.example.internal")
        );
        assert_eq!(
            workload(&d, "order-service", Production).version(),
            Some("3.1.4")
        );
        assert_eq!(
            workload(&d, "order-service", Staging).replicas(),
            Ok(Some(3))
        );
        assert_eq!(
            workload(&d, "order-service", Production).replicas(),
            Ok(Some(1))
        );
        assert_eq!(commits(d.repo()), before + 1);
        assert!(ok(&d, &promote("r-10"))
            .await
            .summary
            .contains("already runs 3.1.4"));
        assert_eq!(commits(d.repo()), before + 1);
    }

    #[tokio::test]
    async fn scaffold_writes_a_backstage_component() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        let scaffold = |id, owner: Option<&str>| {
            job(
                id,
                Action::ScaffoldService {
                    name: svc("payment-api"),
                    template: TemplateName::parse("go-service").unwrap(),
                    owner: owner.map(|o| TeamName::parse(o).unwrap()),
                },
            )
        };
        let out = ok(&d, &scaffold("r-1", Some("team-payments"))).await;
        assert!(
            out.summary
                .starts_with("Scaffolded payment-api from go-service for team-payments (commit "),
            "{}",
            out.summary
        );
        assert_eq!(out.url, None);
        let text = std::fs::read_to_string(d.repo().join("services/payment-api/catalog-info.yaml"))
            .unwrap();
        let info: CatalogInfo = serde_norway::from_str(&text).unwrap();
        assert_eq!(info.kind, "Component");
        assert_eq!(info.api_version, "backstage.io/v1alpha1");
        assert_eq!(info.metadata.name, "payment-api");
        assert_eq!(info.spec.owner, "team-payments");
        assert_eq!(
            info.metadata.annotations["backstage.io/source-template"],
            "template:default/go-service"
        );
        // The catalog reads it like any other entity.
        let catalog = crate::catalog::Catalog::from_yaml_str(&text, "catalog-info.yaml");
        assert!(catalog.warnings().is_empty(), "{:?}", catalog.warnings());
        assert_eq!(
            catalog.owner_of("payment-api").map(|g| g.name.as_str()),
            None, // the group itself lives in the real catalog
        );
        assert!(catalog.component("payment-api").is_some());
        let files = git(d.repo(), &["ls-files", "services/payment-api"]);
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            [
                "services/payment-api/README.md",
                "services/payment-api/catalog-info.yaml",
                "services/payment-api/docs/index.md",
                "services/payment-api/mkdocs.yml",
            ]
        );
        assert_eq!(commits(d.repo()), 2);
        let m = permanent(&d, &scaffold("r-2", Some("team-payments"))).await;
        assert!(m.contains("already exists"), "{m}");
        assert_eq!(commits(d.repo()), 2);

        let mut by_chat_id = job(
            "r-3",
            Action::ScaffoldService {
                name: svc("ledger"),
                template: TemplateName::parse("go-service").unwrap(),
                owner: None,
            },
        );
        by_chat_id.requester = "U024BE7LH".into();
        let m = permanent(&d, &by_chat_id).await;
        assert!(m.contains("needs an owner"), "{m}");
        by_chat_id.requester = "alice".into();
        ok(&d, &by_chat_id).await;
        let text =
            std::fs::read_to_string(d.repo().join("services/ledger/catalog-info.yaml")).unwrap();
        assert!(text.contains("owner: user:alice"), "{text}");
    }

    #[tokio::test]
    async fn questions_are_not_executed() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        for action in [
            Action::Status {
                service: svc("order-service"),
                environment: None,
            },
            Action::WhoOwns {
                service: svc("order-service"),
            },
            Action::Help,
        ] {
            let m = permanent(&d, &job("r-1", action)).await;
            assert!(m.contains("changes nothing"), "{m}");
        }
        assert_eq!(commits(d.repo()), 1);
    }

    #[tokio::test]
    async fn malformed_files_are_named_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let d = driver(dir.path()).await;
        ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        ok(&d, &job("r-2", create("order-service", Dev, &[]))).await;
        let path = d.repo().join("services/order-service/staging.yaml");
        for broken in [
            "apiVersion: [unclosed\n",
            "",
            "apiVersion: score.dev/v1b1\nmetadata:\n  name: other-service\ncontainers: {}\n",
            "apiVersion: score.dev/v1b1\nmetadata:\n  name: order-service\n  annotations:\n    paver.dev/replicas: many\n",
        ] {
            std::fs::write(&path, broken).unwrap();
            git(d.repo(), &["commit", "-qam", "break it"]);
            let m = permanent(&d, &job("r-3", deploy("order-service", Staging, Some("1.0.0")))).await;
            assert!(m.contains("services/order-service/staging.yaml is malformed"), "{m}");
            let err = d.status(&svc("order-service"), None).await.unwrap_err();
            assert!(err.to_string().contains("staging.yaml"), "{err}");
            // The healthy environment still answers on its own.
            let dev = d.status(&svc("order-service"), Some(Dev)).await.unwrap();
            assert_eq!(dev.len(), 1);
        }
    }

    #[tokio::test]
    async fn status_reads_every_environment() {
        let dir = tempfile::tempdir().unwrap();
        let d = GitOpsDriver::open(GitOpsConfig {
            url_template: "https://{environment}.example.test/{service}".into(),
            ..config(dir.path())
        })
        .await
        .unwrap();
        let s = svc("order-service");
        assert_eq!(d.status(&s, None).await.unwrap(), vec![]);
        ok(
            &d,
            &job("r-1", create("order-service", Production, &[Postgres])),
        )
        .await;
        ok(&d, &job("r-2", create("order-service", Dev, &[Redis, S3]))).await;
        ok(&d, &job("r-3", deploy("order-service", Dev, Some("0.4.0")))).await;
        let all = d.status(&s, None).await.unwrap();
        assert_eq!(
            all,
            vec![
                EnvStatus {
                    environment: Dev,
                    version: Some("0.4.0".into()),
                    replicas: Some(1),
                    resources: vec![Redis, S3],
                    url: Some("https://dev.example.test/order-service".into()),
                    expires_at: None,
                    health: None,
                },
                EnvStatus {
                    environment: Production,
                    version: Some("latest".into()),
                    replicas: Some(1),
                    resources: vec![Postgres],
                    url: Some("https://production.example.test/order-service".into()),
                    expires_at: None,
                    health: None,
                },
            ]
        );
        let one = d.status(&s, Some(Production)).await.unwrap();
        assert_eq!(one, all[1..]);
        assert!(d.status(&s, Some(Staging)).await.unwrap().is_empty());
        assert!(d
            .status(&svc("cart-service"), None)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn concurrent_jobs_are_serialized() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(driver(dir.path()).await);
        let mut tasks = Vec::new();
        for i in 0..6 {
            let d = Arc::clone(&d);
            tasks.push(tokio::spawn(async move {
                let j = job(
                    &format!("r-{i}"),
                    create(&format!("svc-{i}"), Staging, &[Redis]),
                );
                let noop = |_: &str| {};
                d.execute(&j, &noop).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(commits(d.repo()), 7);
        assert!(git(d.repo(), &["status", "--porcelain"]).is_empty());
    }

    fn bare_remote(dir: &Path) -> PathBuf {
        let remote = dir.join("remote.git");
        let out = StdCommand::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&remote)
            .output()
            .unwrap();
        assert!(out.status.success());
        remote
    }

    fn remote_log(remote: &Path) -> Vec<String> {
        git(remote, &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn with_remote(dir: &Path, name: &str, remote: &Path) -> GitOpsConfig {
        GitOpsConfig {
            repo: dir.join(name),
            remote: Some(remote.display().to_string()),
            ..GitOpsConfig::default()
        }
    }

    #[tokio::test]
    async fn commits_are_pushed_to_the_remote() {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_remote(dir.path());
        let d = GitOpsDriver::open(with_remote(dir.path(), "clone", &remote))
            .await
            .unwrap();
        let (out, progress) = run(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        out.unwrap();
        assert!(
            progress.contains(&"pushed to origin".to_owned()),
            "{progress:?}"
        );
        assert_eq!(
            remote_log(&remote),
            [
                "create staging for order-service",
                "initialize Paver GitOps repository"
            ]
        );
        // Nothing to push: no push.
        let (_, progress) = run(&d, &job("r-1", create("order-service", Staging, &[]))).await;
        assert!(
            !progress.iter().any(|p| p.starts_with("push")),
            "{progress:?}"
        );
    }

    #[tokio::test]
    async fn a_rejected_push_is_transient_and_the_retry_pushes() {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_remote(dir.path());
        let d = GitOpsDriver::open(with_remote(dir.path(), "clone", &remote))
            .await
            .unwrap();
        let hook = remote.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho 'protected branch: denied' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

        let j = job("r-1", deploy("order-service", Staging, None));
        let m = permanent(&d, &j).await;
        assert!(m.contains("create it first"), "{m}");
        let j = job("r-2", create("order-service", Staging, &[Postgres]));
        match run(&d, &j).await.0 {
            Err(DriverError::Transient(m)) => {
                assert!(m.starts_with("git push failed:"), "{m}");
                assert!(m.contains("protected branch: denied"), "git's stderr: {m}");
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
        assert_eq!(commits(d.repo()), 2, "the commit stays local");
        assert!(git(&remote, &["branch", "--list", "main"]).is_empty());

        std::fs::remove_file(&hook).unwrap();
        let (out, progress) = run(&d, &j).await;
        out.unwrap();
        assert!(
            progress.contains(&"pushed to origin".to_owned()),
            "{progress:?}"
        );
        assert_eq!(commits(d.repo()), 2, "the retry made no second commit");
        assert_eq!(remote_log(&remote).len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        // A new clone cannot start without its remote.
        let gone = dir.path().join("gone.git");
        let err = GitOpsDriver::open(with_remote(dir.path(), "clone", &gone))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DriverError::Transient(ref m) if m.starts_with("git fetch failed")),
            "{err:?}"
        );
        // An existing one opens, and each job says what failed.
        drop(driver(dir.path()).await);
        let d = GitOpsDriver::open(with_remote(dir.path(), "repo", &gone))
            .await
            .unwrap();
        match run(&d, &job("r-1", create("order-service", Dev, &[])))
            .await
            .0
        {
            Err(DriverError::Transient(m)) => {
                assert!(
                    m.starts_with("git fetch failed:") && m.contains("gone.git"),
                    "{m}"
                )
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
        assert_eq!(commits(d.repo()), 1);
    }

    #[tokio::test]
    async fn replicas_sharing_a_remote_build_on_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_remote(dir.path());
        let a = GitOpsDriver::open(with_remote(dir.path(), "a", &remote))
            .await
            .unwrap();
        ok(&a, &job("r-1", create("order-service", Staging, &[]))).await;
        // A second clone starts from the remote's history.
        let b = GitOpsDriver::open(with_remote(dir.path(), "b", &remote))
            .await
            .unwrap();
        assert_eq!(commits(b.repo()), 2);
        ok(
            &b,
            &job("r-2", deploy("order-service", Staging, Some("1.0.0"))),
        )
        .await;
        // The first catches up before it writes.
        ok(
            &a,
            &job("r-3", deploy("order-service", Staging, Some("1.1.0"))),
        )
        .await;
        assert_eq!(remote_log(&remote).len(), 4);
        // And both see the same job as done, whichever clone did it.
        let (_, progress) = run(
            &b,
            &job("r-3", deploy("order-service", Staging, Some("1.1.0"))),
        )
        .await;
        assert!(
            progress.iter().any(|p| p.starts_with("already done")),
            "{progress:?}"
        );
        let rollback = Action::Rollback {
            service: svc("order-service"),
            environment: Staging,
            version: None,
        };
        ok(&b, &job("r-4", rollback)).await;
        assert_eq!(
            workload(&b, "order-service", Staging).version(),
            Some("1.0.0")
        );

        // Unpushed local commits that conflict with a moved remote are dropped,
        // and their job, retried, is done again on top.
        let hook = remote.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\n[ -e \"$GIT_DIR/deny\" ] && exit 1\nexit 0\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(remote.join("deny"), "").unwrap();
        let scale = job(
            "r-5",
            Action::Scale {
                service: svc("order-service"),
                environment: Staging,
                replicas: 2,
            },
        );
        assert!(matches!(
            run(&a, &scale).await.0,
            Err(DriverError::Transient(_))
        ));
        std::fs::remove_file(remote.join("deny")).unwrap();
        ok(&b, &job("r-6", create("order-service", Dev, &[]))).await;
        let (out, progress) = run(&a, &scale).await;
        out.unwrap();
        assert!(
            progress.iter().any(|p| p.contains("dropped local commits")),
            "{progress:?}"
        );
        let log = remote_log(&remote);
        assert_eq!(log[0], "scale order-service staging to 2 replicas");
        assert_eq!(log[1], "create dev for order-service");
        assert_eq!(log.len(), 7);
    }

    #[test]
    fn image_tags_and_summaries() {
        assert_eq!(split_tag("app:1.0"), ("app", Some("1.0")));
        assert_eq!(split_tag("reg:5000/team/app"), ("reg:5000/team/app", None));
        assert_eq!(
            split_tag("reg:5000/team/app:2"),
            ("reg:5000/team/app", Some("2"))
        );
        assert_eq!(
            past_tense("roll back x dev from 2 to 1"),
            "Rolled back x dev from 2 to 1"
        );
        assert_eq!(past_tense("hand edit"), "Hand edit");
        assert_eq!(one_line("a\nb  c"), "a b c");
    }

    #[test]
    fn the_documented_example_is_what_is_written() {
        let mut w = Workload::new(&svc("order-service"), Staging);
        w.set_version("1.2.3");
        w.annotate(ANNOTATION_REPLICAS, "2");
        w.annotate(ANNOTATION_DEPLOYED_AT, "2025-03-01T09:30:00.000Z");
        w.annotate(ANNOTATION_RESTARTED_AT, "2025-03-02T14:00:00.000Z");
        w.annotate(ANNOTATION_REQUEST_ID, "r-abc");
        w.add_resource(Postgres, None);
        w.add_resource(Redis, None);
        let rendered = w.render().unwrap();
        let doc = include_str!("gitops.rs");
        let example: String = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|s| s.split("//! ```").next())
            .unwrap()
            .lines()
            .map(|l| l.strip_prefix("//! ").unwrap_or("").to_owned() + "\n")
            .collect();
        assert_eq!(rendered, example);
    }
}
