//! The driver Paver runs: it sends each action to the driver the `[drivers]`
//! section names for it, merges `status` from one or more drivers, and can
//! ask a second driver (Argo CD) for the URL of an environment another one
//! (GitOps, a Backstage template, an orchestrator) just created.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::domain::{ActionKind, Environment, ServiceName};

/// The driver names `[drivers]` may use.
pub const DRIVER_NAMES: [&str; 4] = ["gitops", "backstage", "argocd", "orchestrator"];

/// What each driver can do; checked by `paver check-config`.
pub fn supports(driver: &str, kind: ActionKind) -> bool {
    use ActionKind as K;
    match driver {
        "gitops" | "orchestrator" => kind.is_mutating(),
        "backstage" => matches!(kind, K::ScaffoldService | K::CreateEnvironment),
        "argocd" => matches!(kind, K::Deploy | K::Rollback | K::Restart | K::Promote),
        _ => false,
    }
}

/// One driver name, or several (for `status`, whose answers are merged).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The `[drivers]` section: which driver carries out which action.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriversConfig {
    pub create_environment: String,
    pub destroy_environment: String,
    pub add_resource: String,
    pub deploy: String,
    pub rollback: String,
    pub promote: String,
    pub scale: String,
    pub restart: String,
    pub scaffold_service: String,
    /// Who answers `status`: one driver, or a list whose answers are merged
    /// (the first that knows a field wins).
    pub status: OneOrMany,
    /// A driver asked for the URL of a freshly created environment
    /// (`"argocd"`: the application's external URL); none by default.
    pub environment_url: Option<String>,
}

impl Default for DriversConfig {
    fn default() -> Self {
        let g = || "gitops".to_owned();
        DriversConfig {
            create_environment: g(),
            destroy_environment: g(),
            add_resource: g(),
            deploy: g(),
            rollback: g(),
            promote: g(),
            scale: g(),
            restart: g(),
            scaffold_service: g(),
            status: OneOrMany::One(g()),
            environment_url: None,
        }
    }
}

impl DriversConfig {
    /// The driver of each mutating action.
    pub fn routes(&self) -> Vec<(ActionKind, &str)> {
        use ActionKind as K;
        vec![
            (K::CreateEnvironment, self.create_environment.as_str()),
            (K::DestroyEnvironment, self.destroy_environment.as_str()),
            (K::AddResource, self.add_resource.as_str()),
            (K::Deploy, self.deploy.as_str()),
            (K::Rollback, self.rollback.as_str()),
            (K::Promote, self.promote.as_str()),
            (K::Scale, self.scale.as_str()),
            (K::Restart, self.restart.as_str()),
            (K::ScaffoldService, self.scaffold_service.as_str()),
        ]
    }

    /// Every driver the configuration uses.
    pub fn used(&self) -> Vec<String> {
        let mut out: Vec<String> = self.routes().iter().map(|(_, d)| d.to_string()).collect();
        out.extend(self.status.names());
        out.extend(self.environment_url.clone());
        out.sort();
        out.dedup();
        out
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let known = |d: &str| DRIVER_NAMES.contains(&d);
        for (kind, d) in self.routes() {
            if !known(d) {
                out.push(format!(
                    "drivers.{kind}: unknown driver `{d}` (expected one of {})",
                    DRIVER_NAMES.join(", ")
                ));
            } else if !supports(d, kind) {
                out.push(format!("drivers.{kind}: the {d} driver cannot {kind}"));
            }
        }
        let status = self.status.names();
        if status.is_empty() {
            out.push("drivers.status: name at least one driver".into());
        }
        for d in &status {
            if !known(d) {
                out.push(format!("drivers.status: unknown driver `{d}`"));
            } else if d == "backstage" || d == "orchestrator" {
                out.push(format!(
                    "drivers.status: the {d} driver has no status (use gitops and/or argocd)"
                ));
            }
        }
        if let Some(d) = &self.environment_url {
            if d != "argocd" && known(d) {
                out.push(format!(
                    "drivers.environment_url: the {d} driver does not report environment URLs (use \"argocd\")"
                ));
            } else if !known(d) {
                out.push(format!("drivers.environment_url: unknown driver `{d}`"));
            }
        }
        out
    }
}

/// Routes each action to its driver.
pub struct Router {
    routes: BTreeMap<ActionKind, Arc<dyn Driver>>,
    status: Vec<Arc<dyn Driver>>,
    environment_url: Option<Arc<dyn Driver>>,
}

impl Router {
    /// `drivers` maps names to opened drivers; every name `config` uses
    /// must be there.
    pub fn new(
        config: &DriversConfig,
        drivers: &BTreeMap<String, Arc<dyn Driver>>,
    ) -> Result<Router, DriverError> {
        let get = |name: &str, key: &str| {
            drivers.get(name).cloned().ok_or_else(|| {
                DriverError::Permanent(format!(
                    "drivers.{key}: the {name} driver is not configured"
                ))
            })
        };
        let mut routes = BTreeMap::new();
        for (kind, name) in config.routes() {
            routes.insert(kind, get(name, kind.as_str())?);
        }
        let status = config
            .status
            .names()
            .iter()
            .map(|n| get(n, "status"))
            .collect::<Result<Vec<_>, _>>()?;
        let environment_url = config
            .environment_url
            .as_deref()
            .map(|n| get(n, "environment_url"))
            .transpose()?;
        Ok(Router {
            routes,
            status,
            environment_url,
        })
    }

    fn route(&self, kind: ActionKind) -> Result<&Arc<dyn Driver>, DriverError> {
        self.routes.get(&kind).ok_or_else(|| {
            DriverError::Permanent(format!(
                "`{kind}` changes nothing; Paver answers it without a driver"
            ))
        })
    }
}

#[async_trait]
impl Driver for Router {
    fn name(&self) -> &'static str {
        let mut names = self.routes.values().map(|d| d.name());
        match names.next() {
            Some(first) if names.all(|n| n == first) => first,
            Some(_) => "router",
            None => "router",
        }
    }

    /// Safe to re-run after a crash only when every driver it routes to is.
    fn resumable(&self) -> bool {
        self.routes.values().all(|d| d.resumable())
    }

    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        let kind = job.action.kind();
        let driver = self.route(kind)?;
        let mut outcome = driver.execute(job, progress).await?;
        if let (ActionKind::CreateEnvironment, Some(reporter), Some(service), Some(env)) = (
            kind,
            &self.environment_url,
            job.action.service(),
            job.action.environment(),
        ) {
            match reporter.environment_url(service, env, progress).await {
                Ok(Some(url)) => outcome.url = Some(url),
                Ok(None) => {}
                // The environment exists; only its URL is unknown.
                Err(e) => {
                    tracing::warn!(service = %service, environment = %env, error = %e, "no environment URL");
                    outcome
                        .links
                        .push(("URL".into(), format!("not known yet ({e})")));
                }
            }
        }
        Ok(outcome)
    }

    async fn status(
        &self,
        service: &ServiceName,
        environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        let mut merged: Vec<EnvStatus> = Vec::new();
        let mut first_error = None;
        let mut any_ok = false;
        for d in &self.status {
            match d.status(service, environment).await {
                Ok(list) => {
                    any_ok = true;
                    merge(&mut merged, list);
                }
                Err(e) => {
                    tracing::warn!(driver = d.name(), service = %service, error = %e, "status failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match (any_ok, first_error) {
            (false, Some(e)) => Err(e),
            _ => {
                merged.sort_by_key(|s| {
                    Environment::ALL
                        .iter()
                        .position(|e| *e == s.environment)
                        .unwrap_or(usize::MAX)
                });
                Ok(merged)
            }
        }
    }

    async fn environment_url(
        &self,
        service: &ServiceName,
        environment: Environment,
        progress: Progress<'_>,
    ) -> Result<Option<String>, DriverError> {
        match &self.environment_url {
            Some(d) => d.environment_url(service, environment, progress).await,
            None => Ok(None),
        }
    }
}

/// Adds `more` into `into`: per environment, fields `into` lacks are taken
/// from `more`; environments only `more` knows are added.
pub fn merge(into: &mut Vec<EnvStatus>, more: Vec<EnvStatus>) {
    for m in more {
        match into.iter_mut().find(|s| s.environment == m.environment) {
            Some(s) => {
                s.version = s.version.take().or(m.version);
                s.replicas = s.replicas.or(m.replicas);
                if s.resources.is_empty() {
                    s.resources = m.resources;
                }
                s.url = s.url.take().or(m.url);
                s.expires_at = s.expires_at.or(m.expires_at);
                s.health = s.health.take().or(m.health);
            }
            None => into.push(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(env: Environment, version: Option<&str>, health: Option<&str>) -> EnvStatus {
        EnvStatus {
            environment: env,
            version: version.map(str::to_owned),
            replicas: None,
            resources: vec![],
            url: None,
            expires_at: None,
            health: health.map(str::to_owned),
        }
    }

    #[test]
    fn merges_status_field_by_field() {
        let mut a = vec![st(Environment::Staging, Some("1.2.0"), None)];
        merge(
            &mut a,
            vec![
                st(Environment::Staging, Some("1.1.0"), Some("Healthy")),
                st(Environment::Production, Some("1.0.0"), Some("Degraded")),
            ],
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].version.as_deref(), Some("1.2.0"));
        assert_eq!(a[0].health.as_deref(), Some("Healthy"));
        assert_eq!(a[1].environment, Environment::Production);
    }

    #[test]
    fn checks_which_driver_can_do_what() {
        let mut c = DriversConfig::default();
        assert!(c.problems().is_empty());
        c.scale = "argocd".into();
        c.deploy = "flux".into();
        c.environment_url = Some("gitops".into());
        let p = c.problems().join("\n");
        assert!(
            p.contains("drivers.scale: the argocd driver cannot scale"),
            "{p}"
        );
        assert!(p.contains("unknown driver `flux`"), "{p}");
        assert!(p.contains("drivers.environment_url"), "{p}");
    }
}
