//! GitHub webhooks at the edge: the `X-Hub-Signature-256` check and the
//! deliveries Paver reads (`deployment`, `deployment_status`,
//! `workflow_run`) as typed values. Nothing past here sees GitHub's JSON.
//!
//! Only the fields Paver uses are declared; GitHub sends many more, and
//! adds fields over time, so unknown fields are ignored (not denied).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{text, web_url};
use crate::domain::{DeployStatus, Version};
use crate::notify::{Delivery, Source, Subject};

/// A delivery that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not `sha256=<64 hex digits>`")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `header` (`sha256=…`) against the HMAC-SHA256 of `body` under
/// `secret`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), BadSignature> {
    let header = header.ok_or(BadSignature::Missing)?;
    let hex_sig = header
        .strip_prefix("sha256=")
        .ok_or(BadSignature::Malformed)?;
    let given = hex::decode(hex_sig).map_err(|_| BadSignature::Malformed)?;
    if given.len() != 32 {
        return Err(BadSignature::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| BadSignature::Mismatch)
}

/// A delivery Paver cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{event}: {detail}")]
pub struct Malformed {
    pub event: String,
    /// serde's words, which name the missing or mistyped field.
    pub detail: String,
}

/// What a delivery says, for the kinds Paver reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A deployment was created (it has no outcome yet).
    Deployment {
        repo: String,
        deployment: Deployment,
    },
    /// A deployment moved on: queued, in progress, succeeded, failed.
    DeploymentStatus {
        repo: String,
        deployment: Deployment,
        status: DeploymentStatus,
    },
    /// A workflow run was requested, started or finished.
    WorkflowRun {
        repo: String,
        /// The repository's default branch, when GitHub said.
        default_branch: Option<String>,
        run: WorkflowRun,
    },
    /// Another event (`ping`, `push`, …): acknowledged and ignored.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub environment: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `payload.paver_request`: the Paver request a deploy carries out, when
    /// whoever created the deployment said so. Any other payload is fine.
    #[serde(default, rename = "payload", deserialize_with = "paver_request")]
    pub paver_request: Option<String>,
}

fn paver_request<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Payload {
        Object {
            #[serde(default)]
            paver_request: Option<String>,
        },
        Other(serde::de::IgnoredAny),
    }
    Ok(match Payload::deserialize(d)? {
        Payload::Object { paver_request } => paver_request,
        Payload::Other(_) => None,
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeploymentStatus {
    pub state: DeployState,
    #[serde(default)]
    pub description: Option<String>,
    /// Where the deployed thing is (GitHub's `environment_url`, else the
    /// older `target_url`); empty strings count as none.
    #[serde(default)]
    pub environment_url: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    /// Where the deploy's log is.
    #[serde(default)]
    pub log_url: Option<String>,
}

impl DeploymentStatus {
    /// The deployed environment's URL, if GitHub was told one.
    pub fn url(&self) -> Option<&str> {
        [&self.environment_url, &self.target_url]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|u| !u.is_empty())
    }
}

/// GitHub's deployment states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    Pending,
    Queued,
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub head_sha: String,
    pub status: RunStatus,
    #[serde(default)]
    pub conclusion: Option<Conclusion>,
    pub html_url: String,
    pub run_number: u64,
    /// The commit the run is of; its `timestamp` is when it was made.
    #[serde(default)]
    pub head_commit: Option<HeadCommit>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HeadCommit {
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Requested,
    Queued,
    InProgress,
    Completed,
    Waiting,
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
    Skipped,
    TimedOut,
    ActionRequired,
    Neutral,
    Stale,
    StartupFailure,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct DeploymentBody {
    repository: Repository,
    deployment: Deployment,
}

#[derive(Deserialize)]
struct DeploymentStatusBody {
    repository: Repository,
    deployment: Deployment,
    deployment_status: DeploymentStatus,
}

#[derive(Deserialize)]
struct WorkflowRunBody {
    repository: Repository,
    workflow_run: WorkflowRun,
}

/// Reads a delivery of kind `event` (the `X-GitHub-Event` header).
pub fn parse(event: &str, body: &[u8]) -> Result<Event, Malformed> {
    let bad = |detail: String| Malformed {
        event: event.to_owned(),
        detail,
    };
    Ok(match event {
        "deployment" => {
            let b: DeploymentBody = super::from_json(body).map_err(bad)?;
            Event::Deployment {
                repo: b.repository.full_name,
                deployment: b.deployment,
            }
        }
        "deployment_status" => {
            let b: DeploymentStatusBody = super::from_json(body).map_err(bad)?;
            Event::DeploymentStatus {
                repo: b.repository.full_name,
                deployment: b.deployment,
                status: b.deployment_status,
            }
        }
        "workflow_run" => {
            let b: WorkflowRunBody = super::from_json(body).map_err(bad)?;
            Event::WorkflowRun {
                repo: b.repository.full_name,
                default_branch: b.repository.default_branch,
                run: b.workflow_run,
            }
        }
        other => Event::Other(other.to_owned()),
    })
}

/// What a delivery means for deploy notifications; `None` for what says
/// nothing about a deploy (an `inactive` status, a skipped run, a workflow
/// whose name names no environment).
pub fn delivery(event: Event, delivery_id: &str) -> Option<Delivery> {
    let base = |repo: String, environment: String, status: DeployStatus| Delivery {
        source: Source::GitHub,
        id: delivery_id.to_owned(),
        subject: Subject::Repo {
            slug: repo,
            environment,
        },
        status,
        version: None,
        url: None,
        link: None,
        message: None,
        commit: None,
        commit_at: None,
        request_id: None,
    };
    match event {
        Event::Deployment { repo, deployment } => Some(Delivery {
            version: version_of(&deployment),
            message: deployment.description.as_deref().and_then(text),
            commit: Some(deployment.sha.clone()),
            request_id: deployment.paver_request.clone(),
            ..base(repo, deployment.environment.clone(), DeployStatus::Queued)
        }),
        Event::DeploymentStatus {
            repo,
            deployment,
            status,
        } => {
            let state = match status.state {
                DeployState::Pending | DeployState::Queued => DeployStatus::Queued,
                DeployState::InProgress => DeployStatus::InProgress,
                DeployState::Success => DeployStatus::Deployed,
                DeployState::Failure | DeployState::Error => DeployStatus::Failed,
                // A newer deployment replaced this one: nothing happened.
                DeployState::Inactive => return None,
            };
            Some(Delivery {
                version: version_of(&deployment),
                url: status.url().and_then(web_url),
                link: status.log_url.as_deref().and_then(web_url),
                message: status
                    .description
                    .as_deref()
                    .or(deployment.description.as_deref())
                    .and_then(text),
                commit: Some(deployment.sha.clone()),
                request_id: deployment.paver_request.clone(),
                ..base(repo, deployment.environment.clone(), state)
            })
        }
        Event::WorkflowRun { repo, run, .. } => {
            // A run belongs to no environment; a deploy workflow's name
            // says which ("Deploy to production").
            let name = run.name.clone().unwrap_or_default();
            crate::notify::resolve::environment_in(&name)?;
            let status = match (run.status, run.conclusion) {
                (RunStatus::Completed, Some(Conclusion::Success)) => DeployStatus::Deployed,
                (
                    RunStatus::Completed,
                    Some(Conclusion::Failure | Conclusion::TimedOut | Conclusion::StartupFailure),
                ) => DeployStatus::Failed,
                (RunStatus::Completed, Some(Conclusion::Cancelled)) => DeployStatus::Cancelled,
                (RunStatus::Completed, _) => return None,
                (RunStatus::InProgress, _) => DeployStatus::InProgress,
                _ => DeployStatus::Queued,
            };
            Some(Delivery {
                link: web_url(&run.html_url),
                commit: Some(run.head_sha.clone()),
                commit_at: run
                    .head_commit
                    .as_ref()
                    .and_then(|c| c.timestamp.as_deref())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_millis()),
                ..base(repo, name, status)
            })
        }
        Event::Other(_) => None,
    }
}

/// A finished run of the CI workflow (`ci_workflow`, by name) on the
/// default branch: `ci-passing` for the repository's components. Its
/// repository, whether it passed, and a line saying which run.
pub fn ci_result(event: &Event, ci_workflow: &str) -> Option<(String, bool, String)> {
    let Event::WorkflowRun {
        repo,
        default_branch,
        run,
    } = event
    else {
        return None;
    };
    let name = run.name.as_deref()?;
    let default = default_branch.as_deref().unwrap_or("main");
    if !name.eq_ignore_ascii_case(ci_workflow)
        || run.head_branch.as_deref() != Some(default)
        || run.status != RunStatus::Completed
    {
        return None;
    }
    let passed = match run.conclusion? {
        Conclusion::Success => true,
        Conclusion::Failure | Conclusion::TimedOut | Conclusion::StartupFailure => false,
        // Cancelled, skipped, …: says nothing about the code.
        _ => return None,
    };
    let detail = format!(
        "{name} run #{} on {default} {}",
        run.run_number,
        if passed { "passed" } else { "failed" }
    );
    Some((repo.clone(), passed, detail))
}

/// The version a deployment is of: its ref when that is a version tag
/// (`v2.5.0`, `2.5.0`); a branch name is not a version.
fn version_of(d: &Deployment) -> Option<Version> {
    let r = d.git_ref.trim_start_matches("refs/tags/");
    let tag_like = r
        .trim_start_matches(['v', 'V'])
        .starts_with(|c: char| c.is_ascii_digit());
    tag_like.then(|| Version::parse(r).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = "../shared/corpus/github";

    #[test]
    fn githubs_own_test_vector_verifies() {
        #[derive(Deserialize)]
        struct Vector {
            secret: String,
            payload: String,
            x_hub_signature_256: String,
        }
        let v: Vector = serde_json::from_str(
            &std::fs::read_to_string(format!("{CORPUS}/x_hub_signature_256_test_vector.json"))
                .unwrap(),
        )
        .unwrap();
        let (secret, body) = (v.secret.as_bytes(), v.payload.as_bytes());
        assert_eq!(verify(secret, body, Some(&v.x_hub_signature_256)), Ok(()));
        assert_eq!(
            verify(b"another secret", body, Some(&v.x_hub_signature_256)),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            verify(secret, b"Hello, World?", Some(&v.x_hub_signature_256)),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(verify(secret, body, None), Err(BadSignature::Missing));
        for bad in ["757107ea", "sha1=757107ea", "sha256=zz", "sha256=7571"] {
            assert_eq!(
                verify(secret, body, Some(bad)),
                Err(BadSignature::Malformed),
                "{bad}"
            );
        }
    }

    fn example(path: &str) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}/payload-examples/{path}")).unwrap()
    }

    #[test]
    fn every_corpus_example_of_the_kinds_paver_reads_parses() {
        let mut seen = 0;
        for kind in ["deployment", "deployment_status", "workflow_run"] {
            for entry in std::fs::read_dir(format!("{CORPUS}/payload-examples/{kind}")).unwrap() {
                let path = entry.unwrap().path();
                let body = std::fs::read(&path).unwrap();
                let e = parse(kind, &body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!matches!(e, Event::Other(_)), "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 9, "{seen} examples");
    }

    #[test]
    fn a_deploy_runs_delivery_carries_its_head_commits_time() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&example("workflow_run/completed.payload.json")).unwrap();
        body["workflow_run"]["name"] = "Deploy to production".into();
        let e = parse("workflow_run", &serde_json::to_vec(&body).unwrap()).unwrap();
        let d = delivery(e, "d-1").expect("a deploy run");
        assert_eq!(d.status, DeployStatus::Deployed);
        assert_eq!(d.commit_at, Some(1_601_915_527_000));
    }

    #[test]
    fn deployments_and_runs_read_as_they_are_sent() {
        let e = parse(
            "deployment_status",
            &example("deployment_status/payload.json"),
        )
        .unwrap();
        let Event::DeploymentStatus {
            repo,
            deployment,
            status,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(repo, "Codertocat/Hello-World");
        assert_eq!(deployment.environment, "production");
        assert_eq!(deployment.sha, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
        assert_eq!(status.state, DeployState::Success);
        // GitHub sends `target_url: ""`: no URL, not an empty link.
        assert_eq!(status.url(), None);

        let e = parse(
            "workflow_run",
            &example("workflow_run/completed.payload.json"),
        )
        .unwrap();
        let Event::WorkflowRun { run, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.conclusion, Some(Conclusion::Success));
        assert_eq!(run.run_number, 163);
        // The head commit's time is the start of the report's lead time.
        assert_eq!(
            run.head_commit
                .as_ref()
                .and_then(|c| c.timestamp.as_deref()),
            Some("2020-10-05T16:32:07Z")
        );
    }

    #[test]
    fn other_events_are_ignored_and_broken_ones_name_the_field() {
        assert_eq!(parse("ping", b"{}").unwrap(), Event::Other("ping".into()));
        let e = parse(
            "deployment_status",
            br#"{"repository":{"full_name":"a/b"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("deployment"), "{e}");
        let e = parse("workflow_run", b"not json").unwrap_err();
        assert!(e.to_string().starts_with("workflow_run:"), "{e}");
        // An unknown state is an error, not a guess.
        let mut v: serde_json::Value =
            serde_json::from_slice(&example("deployment_status/payload.json")).unwrap();
        v["deployment_status"]["state"] = "exploded".into();
        let e = parse("deployment_status", v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("exploded"), "{e}");
    }
}
