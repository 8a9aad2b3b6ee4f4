//! The `[gitops]` section.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::domain::{Environment, ServiceName};
use crate::drivers::templates;

const URL_TEMPLATE: &str = "gitops.url_template";

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
    /// The URL of an environment: a template with `{{ service }}` and
    /// `{{ environment }}` (see [`crate::util::template`]).
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
            url_template: "https://{{ service }}.{{ environment }}.example.internal".into(),
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
        if let Some(p) = templates::problem(URL_TEMPLATE, &self.url_template, templates::URL) {
            out.push(p);
        } else if !templates::uses_any(&self.url_template, &["service"], templates::URL) {
            out.push("gitops.url_template: must contain {{ service }}".into());
        }
        if self.author_name.trim().is_empty() || self.author_email.trim().is_empty() {
            out.push("gitops.author_name, gitops.author_email: must not be empty".into());
        }
        if self.timeout_secs == 0 {
            out.push("gitops.timeout_secs: must be at least 1".into());
        }
        out
    }

    /// Reads templates written in the old `{service}` syntax (see
    /// [`templates::upgrade`]); done when the configuration is loaded.
    pub fn upgrade_templates(&mut self) {
        templates::upgrade(URL_TEMPLATE, &mut self.url_template, templates::URL);
    }

    /// The URL of one environment of one service.
    pub fn url_for(&self, service: &ServiceName, environment: Environment) -> String {
        let vars = [
            ("service", service.as_str()),
            ("environment", environment.as_str()),
        ];
        templates::fill(URL_TEMPLATE, &self.url_template, &vars).unwrap_or_else(|e| {
            // Checked when the driver was opened; a URL is never worth
            // failing an action that already happened.
            tracing::warn!(error = %e, "no environment URL");
            self.url_template.clone()
        })
    }
}
