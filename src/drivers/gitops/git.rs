//! The `git` command, run with Paver's identity, a time limit, and errors
//! that say what failed (with the remote's password hidden).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::drivers::DriverError;

/// What one git command did.
pub(super) struct GitOutput {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl GitOutput {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `git -C <repo> …` with Paver's identity and a time limit.
pub(super) struct Git {
    pub program: OsString,
    pub dir: PathBuf,
    pub identity: [String; 2],
    pub timeout: Duration,
    /// The remote URL's password, if any, hidden from every message.
    pub secret: Option<String>,
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
    pub async fn output(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<GitOutput, DriverError> {
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
                return Err(DriverError::Busy(format!(
                    "git {} failed to run: {e}",
                    args[0]
                )))
            }
            Err(_) => {
                return Err(DriverError::Unreachable(format!(
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
    pub async fn run(&self, args: &[&str]) -> Result<String, DriverError> {
        let out = self.output(args, None).await?;
        if out.code == Some(0) {
            Ok(out.text())
        } else {
            Err(self.failure(args, &out))
        }
    }

    /// For commands answering yes (exit 0) or no (exit 1).
    pub async fn check(&self, args: &[&str]) -> Result<bool, DriverError> {
        let out = self.output(args, None).await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(args, &out)),
        }
    }

    pub fn failure(&self, args: &[&str], out: &GitOutput) -> DriverError {
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
        if network {
            DriverError::Unreachable(message)
        } else if busy {
            DriverError::Busy(message)
        } else {
            DriverError::Git(message)
        }
    }
}

pub(super) fn spawn_error(program: &OsString, e: std::io::Error) -> DriverError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DriverError::Config(format!(
            "the gitops driver runs the `{}` command, which was not found on PATH: install git \
             (apt-get install git, apk add git, brew install git) or configure another driver",
            program.to_string_lossy()
        ))
    } else {
        DriverError::Config(format!("cannot run `{}`: {e}", program.to_string_lossy()))
    }
}

/// A local file operation that failed.
pub(super) fn io_error(what: &str, e: std::io::Error) -> DriverError {
    DriverError::Io(format!("{what}: {e}"))
}
