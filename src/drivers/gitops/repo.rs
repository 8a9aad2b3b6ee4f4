//! The clone Paver commits to: creating it, seeding it, catching up with
//! the remote before a job, throwing away what an interrupted job left,
//! finding a job already done, committing and pushing.

use super::git::io_error;
use super::message::{commit_message, one_line};
use super::score::Workload;
use super::{GitOpsDriver, REMOTE, SEED_VERSION, SERVICES_DIR};
use crate::catalog::Catalog;
use crate::domain::{Environment, ResourceKind};
use crate::drivers::{DriverError, Job, Progress};

/// A commit that already did a job.
pub(super) struct Done {
    pub short: String,
    pub subject: String,
}

impl GitOpsDriver {
    pub(super) async fn init_repo(&self) -> Result<(), DriverError> {
        let branch = self.config.branch.as_str();
        let head_ref = format!("refs/heads/{branch}");
        self.git
            .run(&["check-ref-format", "--branch", branch])
            .await
            .map_err(|e| DriverError::Config(format!("gitops.branch: {e}")))?;
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

    pub(super) fn tracking_ref(&self) -> String {
        format!("refs/remotes/{REMOTE}/{}", self.config.branch)
    }

    /// Throws away what an interrupted job left, then catches up with the remote.
    pub(super) async fn prepare(&self, progress: Progress<'_>) -> Result<(), DriverError> {
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
    pub(super) async fn discard(&self) -> Result<(), DriverError> {
        self.git.run(&["reset", "-q", "--hard", "HEAD"]).await?;
        self.git
            .run(&["clean", "-q", "-fd", "--", SERVICES_DIR])
            .await?;
        Ok(())
    }

    pub(super) async fn push_if_ahead(&self, progress: Progress<'_>) -> Result<(), DriverError> {
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
    pub(super) async fn find_done(&self, key: &str) -> Result<Option<Done>, DriverError> {
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

    /// Commits what is staged, with the job's trailers; `None` when
    /// nothing is (the change left the files as they were).
    pub(super) async fn commit(
        &self,
        subject: &str,
        job: &Job,
    ) -> Result<Option<String>, DriverError> {
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
}

const REPO_README: &str = "\
# Platform GitOps repository

Written by Paver, the platform chat-ops bot: every commit is one approved
request, with `Request`, `Requested-by`, `Approved-by` trailers.

    services/<service>/<environment>.yaml   desired state (Score workload, score.dev/v1b1)
    services/<service>/catalog-info.yaml    Backstage Component of a scaffolded service

Change environments through Paver; a GitOps controller applies this repository.
";
