//! Git docs sources: a shallow clone under `[docs] cache_dir`, brought to
//! the branch's tip on every refresh (`fetch --depth 1` + `reset --hard`).
//!
//! The `git` CLI is run with arguments, never through a shell; the remote
//! comes after `--`, remote helpers that run commands are off, and a token
//! reaches git through its environment (`GIT_CONFIG_*`), not its argv,
//! where other users of the machine could read it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::config::GitSource;

/// How long one git command may take (a clone of a large docs repository
/// over a slow link included).
pub const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git could not be started (is it installed?): {0}")]
    Spawn(std::io::Error),
    #[error("git {command} of {remote} timed out after {secs}s")]
    Timeout {
        command: &'static str,
        remote: String,
        secs: u64,
    },
    #[error("git {command} of {remote} failed: {detail}")]
    Failed {
        command: &'static str,
        remote: String,
        detail: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("${0} (token_env) is not set")]
    NoToken(String),
}

/// The clone of `source` under `cache_dir`: one folder per remote and
/// branch, named so a person can tell which is which.
pub fn checkout_dir(cache_dir: &Path, source: &GitSource) -> PathBuf {
    let mut hash = Sha256::new();
    hash.update(source.remote.as_str().as_bytes());
    hash.update([0]);
    hash.update(source.branch.as_bytes());
    let digest = hex::encode(&hash.finalize()[..6]);
    // The remote's last part (`platform-docs`), kept to safe characters.
    let name: String = source
        .remote
        .redacted()
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':', '\\'])
        .next()
        .unwrap_or("repo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    cache_dir.join(format!("{name}-{digest}"))
}

/// The docs root inside the clone.
pub fn root(cache_dir: &Path, source: &GitSource) -> PathBuf {
    checkout_dir(cache_dir, source).join(&source.subdir)
}

/// Clones `source` (the first time) or brings the clone to the branch's
/// tip; returns the commit checked out.
pub async fn sync(cache_dir: &Path, source: &GitSource) -> Result<String, GitError> {
    let git = Git::new(source)?;
    let dir = checkout_dir(cache_dir, source);
    if dir.join(".git").is_dir() {
        git.run(
            "fetch",
            Some(&dir),
            &[
                "fetch",
                "--quiet",
                "--depth",
                "1",
                "--no-tags",
                "origin",
                // Not an option: branch names starting with `-` are refused.
                &source.branch,
            ],
        )
        .await?;
        git.run(
            "reset",
            Some(&dir),
            &["reset", "--quiet", "--hard", "FETCH_HEAD"],
        )
        .await?;
    } else {
        // Cloned beside its final place and moved there once complete: a
        // clone cut short never looks like a checkout.
        let partial = dir.with_extension("partial");
        remove(&partial).await?;
        remove(&dir).await?;
        tokio::fs::create_dir_all(cache_dir)
            .await
            .map_err(|e| GitError::Io {
                path: cache_dir.to_owned(),
                source: e,
            })?;
        let partial_arg = partial.to_string_lossy().into_owned();
        git.run(
            "clone",
            None,
            &[
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--single-branch",
                "--no-tags",
                "--branch",
                &source.branch,
                "--",
                source.remote.as_str(),
                &partial_arg,
            ],
        )
        .await?;
        tokio::fs::rename(&partial, &dir)
            .await
            .map_err(|e| GitError::Io {
                path: dir.clone(),
                source: e,
            })?;
    }
    let head = git
        .run("rev-parse", Some(&dir), &["rev-parse", "HEAD"])
        .await?;
    Ok(head.trim().to_owned())
}

async fn remove(dir: &Path) -> Result<(), GitError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(GitError::Io {
            path: dir.to_owned(),
            source: e,
        }),
    }
}

struct Git<'a> {
    source: &'a GitSource,
    token: Option<String>,
}

impl<'a> Git<'a> {
    fn new(source: &'a GitSource) -> Result<Git<'a>, GitError> {
        let token = match &source.token_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| GitError::NoToken(var.clone()))?,
            ),
            None => None,
        };
        Ok(Git { source, token })
    }

    /// Runs git in `dir` (none: the working directory); its stdout.
    async fn run(
        &self,
        command: &'static str,
        dir: Option<&Path>,
        args: &[&str],
    ) -> Result<String, GitError> {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        // `ext::`/`fd::` are refused when the config is read; this holds
        // even for a remote that got past that (or a submodule's).
        cmd.args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "protocol.fd.allow=never",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // No SSH password prompt either: a key or nothing.
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if let Some(token) = &self.token {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Bearer {token}"),
                );
        }
        let child = cmd.spawn().map_err(GitError::Spawn)?;
        let out = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(GitError::Spawn(e)),
            // Dropping the future kills git (`kill_on_drop`).
            Err(_) => {
                return Err(GitError::Timeout {
                    command,
                    remote: self.source.remote.redacted(),
                    secs: TIMEOUT.as_secs(),
                })
            }
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut detail = match stderr.trim() {
            "" => match out.status.code() {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            },
            s => s.lines().take(5).collect::<Vec<_>>().join("; "),
        };
        // git repeats the remote (user info and all) in its messages.
        detail = detail.replace(self.source.remote.as_str(), &self.source.remote.redacted());
        if let Some(token) = self.token.as_deref() {
            detail = detail.replace(token, "***");
        }
        Err(GitError::Failed {
            command,
            remote: self.source.remote.redacted(),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::config::GitRemote;

    fn source(remote: &str, branch: &str) -> GitSource {
        GitSource {
            remote: GitRemote::parse(remote).unwrap(),
            branch: branch.into(),
            subdir: PathBuf::from("docs-site"),
            token_env: None,
        }
    }

    #[test]
    fn each_remote_and_branch_has_a_folder_of_its_own() {
        let cache = Path::new("/var/cache/paver");
        let a = checkout_dir(
            cache,
            &source(
                "https://bot:pw@git.example.com/acme/platform-docs.git",
                "main",
            ),
        );
        let b = checkout_dir(
            cache,
            &source(
                "https://bot:pw@git.example.com/acme/platform-docs.git",
                "next",
            ),
        );
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("platform-docs-"), "{name}");
        assert!(!name.contains("pw"));
        assert_eq!(
            root(cache, &source("git@github.com:acme/docs.git", "main"))
                .parent()
                .unwrap()
                .parent(),
            Some(cache)
        );
    }
}
