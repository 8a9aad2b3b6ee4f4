//! What each action does to the working tree: one step per action, each
//! writing and staging files (or finding nothing to do). Committing and
//! pushing are the driver's (see the module above).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::message::Subject;
use super::score::{
    CatalogInfo, CatalogInfoMetadata, ComponentSpec, Workload, ANNOTATION_DEPLOYED_AT,
    ANNOTATION_EXPIRES_AT, ANNOTATION_REPLICAS, ANNOTATION_REQUEST_ID, ANNOTATION_RESTARTED_AT,
    UNDEPLOYED_VERSION,
};
use super::{GitOpsDriver, SERVICES_DIR};
use crate::domain::wording::{count, list, with_resources};
use crate::domain::{
    Action, Environment, ResourceKind, ServiceName, TeamName, TemplateName, UserName, Version,
};
use crate::drivers::{DriverError, Job, Progress};

/// How far back `rollback` looks for an earlier version.
const HISTORY_DEPTH: &str = "1000";

/// What an action did to the working tree.
pub(super) enum Change {
    /// Files are written and staged; the commit subject.
    Staged(String),
    /// Nothing needed doing; the summary for the thread.
    Nothing(String),
}

impl GitOpsDriver {
    /// Makes the action's change in the working tree and stages it.
    pub(super) async fn apply(
        &self,
        job: &Job,
        progress: Progress<'_>,
    ) -> Result<Change, DriverError> {
        let step = Step {
            driver: self,
            job,
            progress,
        };
        match &job.action {
            Action::CreateEnvironment {
                service,
                environment,
                resources,
            } => {
                step.create_environment(service, *environment, resources)
                    .await
            }
            Action::DestroyEnvironment {
                service,
                environment,
            } => step.destroy_environment(service, *environment).await,
            Action::AddResource {
                service,
                environment,
                resources,
            } => step.add_resource(service, *environment, resources).await,
            Action::Deploy {
                service,
                environment,
                version,
            } => step.deploy(service, *environment, version.as_ref()).await,
            Action::Rollback {
                service,
                environment,
                version,
            } => step.rollback(service, *environment, version.as_ref()).await,
            Action::Promote { service, from, to } => step.promote(service, *from, *to).await,
            Action::Scale {
                service,
                environment,
                replicas,
            } => step.scale(service, *environment, *replicas).await,
            Action::Restart {
                service,
                environment,
            } => step.restart(service, *environment).await,
            Action::ScaffoldService {
                name,
                template,
                owner,
            } => step.scaffold_service(name, template, owner.as_ref()).await,
            other => Err(DriverError::Unsupported(format!(
                "`{}` changes nothing; Paver answers it without a driver",
                other.kind()
            ))),
        }
    }
}

/// One job's change, with what every step needs at hand.
struct Step<'a> {
    driver: &'a GitOpsDriver,
    job: &'a Job,
    progress: Progress<'a>,
}

impl Step<'_> {
    async fn write_env(
        &self,
        service: &ServiceName,
        environment: Environment,
        workload: &mut Workload,
    ) -> Result<(), DriverError> {
        self.driver
            .write_env(service, environment, workload, self.job, self.progress)
            .await
    }

    /// Sets the workload of `service` in `environment` to `version`, stamps
    /// when it was deployed, and writes it (deploy, roll back, promote).
    async fn roll_out(
        &self,
        service: &ServiceName,
        environment: Environment,
        workload: &mut Workload,
        version: &str,
    ) -> Result<(), DriverError> {
        workload.set_version(version);
        workload.annotate(ANNOTATION_DEPLOYED_AT, now());
        self.write_env(service, environment, workload).await
    }

    async fn create_environment(
        &self,
        service: &ServiceName,
        environment: Environment,
        resources: &[ResourceKind],
    ) -> Result<Change, DriverError> {
        if let Some(existing) = self.driver.read_env(service, environment).await? {
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
            return Err(DriverError::InvalidRequest(format!(
                "{service} already has a {environment} environment{}; add {} with add_resource",
                with_resources(&existing.resource_kinds()),
                missing.join(", ")
            )));
        }
        let mut w = Workload::new(service, environment);
        for r in resources {
            w.add_resource(*r, self.driver.golden.size(*r));
        }
        if let Some(t) = self.job.expires_at {
            let t = DateTime::<Utc>::from_timestamp(t, 0)
                .ok_or_else(|| DriverError::Malformed(format!("expiry {t} is not a valid time")))?;
            w.annotate(
                ANNOTATION_EXPIRES_AT,
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
        }
        self.write_env(service, environment, &mut w).await?;
        Ok(Change::Staged(
            Subject::Create {
                service,
                environment,
                resources,
            }
            .to_string(),
        ))
    }

    async fn destroy_environment(
        &self,
        service: &ServiceName,
        environment: Environment,
    ) -> Result<Change, DriverError> {
        let rel = GitOpsDriver::env_path(service, environment);
        if !self.driver.root.join(&rel).exists() {
            return Ok(Change::Nothing(format!(
                "{service} has no {environment} environment: nothing to destroy"
            )));
        }
        (self.progress)(&format!("removing {rel}"));
        self.driver
            .git
            .run(&["rm", "-q", "--ignore-unmatch", "--", &rel])
            .await?;
        Ok(Change::Staged(
            Subject::Destroy {
                service,
                environment,
            }
            .to_string(),
        ))
    }

    async fn add_resource(
        &self,
        service: &ServiceName,
        environment: Environment,
        resources: &[ResourceKind],
    ) -> Result<Change, DriverError> {
        let mut w = self.driver.require_env(service, environment).await?;
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
            w.add_resource(*r, self.driver.golden.size(*r));
        }
        self.write_env(service, environment, &mut w).await?;
        Ok(Change::Staged(
            Subject::AddResources {
                service,
                environment,
                resources: &new,
            }
            .to_string(),
        ))
    }

    async fn deploy(
        &self,
        service: &ServiceName,
        environment: Environment,
        version: Option<&Version>,
    ) -> Result<Change, DriverError> {
        let mut w = self.driver.require_env(service, environment).await?;
        let (redeploy, version) = match version {
            Some(v) => (false, v.as_str().to_owned()),
            None => (true, w.version().unwrap_or(UNDEPLOYED_VERSION).to_owned()),
        };
        self.roll_out(service, environment, &mut w, &version)
            .await?;
        Ok(Change::Staged(
            Subject::Deploy {
                redeploy,
                service,
                version: &version,
                environment,
            }
            .to_string(),
        ))
    }

    async fn rollback(
        &self,
        service: &ServiceName,
        environment: Environment,
        version: Option<&Version>,
    ) -> Result<Change, DriverError> {
        let mut w = self.driver.require_env(service, environment).await?;
        let current = w.version().unwrap_or(UNDEPLOYED_VERSION).to_owned();
        let target = match version {
            Some(v) => v.as_str().to_owned(),
            None => self
                .driver
                .previous_version(service, environment, &current)
                .await?
                .ok_or_else(|| {
                    DriverError::InvalidRequest(format!(
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
        self.roll_out(service, environment, &mut w, &target).await?;
        Ok(Change::Staged(
            Subject::RollBack {
                service,
                environment,
                from: &current,
                to: &target,
            }
            .to_string(),
        ))
    }

    async fn promote(
        &self,
        service: &ServiceName,
        from: Environment,
        to: Environment,
    ) -> Result<Change, DriverError> {
        let source = self.driver.require_env(service, from).await?;
        let mut w = self.driver.require_env(service, to).await?;
        let version = match source.version() {
            Some(v) if v != UNDEPLOYED_VERSION => v.to_owned(),
            _ => {
                return Err(DriverError::Refused(format!(
                    "{service} {from} has no deployed version to promote; deploy one first"
                )))
            }
        };
        if w.version() == Some(version.as_str()) {
            return Ok(Change::Nothing(format!(
                "{service} {to} already runs {version} (no change)"
            )));
        }
        self.roll_out(service, to, &mut w, &version).await?;
        Ok(Change::Staged(
            Subject::Promote {
                service,
                version: &version,
                from,
                to,
            }
            .to_string(),
        ))
    }

    async fn scale(
        &self,
        service: &ServiceName,
        environment: Environment,
        replicas: u32,
    ) -> Result<Change, DriverError> {
        let mut w = self.driver.require_env(service, environment).await?;
        if w.replicas().ok().flatten() == Some(replicas) {
            return Ok(Change::Nothing(format!(
                "{service} {environment} already runs {} (no change)",
                count(u64::from(replicas), "replica")
            )));
        }
        w.annotate(ANNOTATION_REPLICAS, replicas.to_string());
        self.write_env(service, environment, &mut w).await?;
        Ok(Change::Staged(
            Subject::Scale {
                service,
                environment,
                replicas,
            }
            .to_string(),
        ))
    }

    async fn restart(
        &self,
        service: &ServiceName,
        environment: Environment,
    ) -> Result<Change, DriverError> {
        let mut w = self.driver.require_env(service, environment).await?;
        w.annotate(ANNOTATION_RESTARTED_AT, now());
        self.write_env(service, environment, &mut w).await?;
        Ok(Change::Staged(
            Subject::Restart {
                service,
                environment,
            }
            .to_string(),
        ))
    }

    async fn scaffold_service(
        &self,
        name: &ServiceName,
        template: &TemplateName,
        owner: Option<&TeamName>,
    ) -> Result<Change, DriverError> {
        let dir = format!("{SERVICES_DIR}/{name}");
        if self.driver.root.join(&dir).exists() {
            return Err(DriverError::Refused(format!(
                "a service named {name} already exists in the GitOps repository ({dir}/); pick another name"
            )));
        }
        let owner = self.scaffold_owner(owner)?;
        for (file, contents) in scaffold_files(name, template, &owner, &self.job.request_id)? {
            self.driver
                .write_file(&format!("{dir}/{file}"), &contents, self.progress)
                .await?;
        }
        Ok(Change::Staged(
            Subject::Scaffold {
                name,
                template,
                owner: &owner,
            }
            .to_string(),
        ))
    }

    /// The owner of a scaffolded service: the team asked for, else the
    /// requester as a catalog user.
    fn scaffold_owner(&self, team: Option<&TeamName>) -> Result<String, DriverError> {
        match team {
            Some(team) => Ok(team.as_str().to_owned()),
            None => match UserName::parse(self.job.requester.as_str()) {
                Ok(user) => Ok(format!("user:{user}")),
                Err(_) => Err(DriverError::Refused(format!(
                    "scaffold_service needs an owner team: none was given, and the requester \
                     `{}` is not a catalog user name",
                    self.job.requester
                ))),
            },
        }
    }
}

/// The files of a scaffolded service, relative to its folder.
fn scaffold_files(
    name: &ServiceName,
    template: &TemplateName,
    owner: &str,
    request_id: &str,
) -> Result<[(&'static str, String); 4], DriverError> {
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
                (ANNOTATION_REQUEST_ID.into(), request_id.to_owned()),
            ]),
            tags: vec![template.as_str().into()],
        },
        spec: ComponentSpec {
            kind: "service".into(),
            lifecycle: "experimental".into(),
            owner: owner.to_owned(),
        },
    };
    let yaml = serde_norway::to_string(&info)
        .map_err(|e| DriverError::Io(format!("cannot write catalog-info for {name}: {e}")))?;
    Ok([
        ("catalog-info.yaml", yaml),
        (
            "README.md",
            format!(
                "# {name}\n\nScaffolded by Paver from the `{template}` template for \
                 {owner} (request {request_id}).\n\nThe desired state of each environment lives \
                 next to this file as `<environment>.yaml`; change it through Paver.\n"
            ),
        ),
        (
            "mkdocs.yml",
            format!("site_name: {name}\nnav:\n  - Home: index.md\nplugins:\n  - techdocs-core\n"),
        ),
        (
            "docs/index.md",
            format!("# {name}\n\nWhat {name} does, how to run it, and who to ask.\n"),
        ),
    ])
}

impl GitOpsDriver {
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
            DriverError::Malformed(format!(
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
}

/// Now, as the `deployedAt`/`restartedAt` annotations write it.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
