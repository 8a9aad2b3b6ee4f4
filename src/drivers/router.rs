//! The driver Paver runs: it sends each action to the driver the `[drivers]`
//! section names for it, merges `status` from one or more drivers, and can
//! ask a second driver (Argo CD) for the URL of an environment another one
//! (GitOps, a Backstage template, an orchestrator) just created.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Driver, DriverError, DriverKind, EnvStatus, Job, Outcome, Progress};
use crate::domain::{ActionKind, Environment, ServiceName};

/// One driver, or several (for `status`, whose answers are merged).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(DriverKind),
    Many(Vec<DriverKind>),
}

impl OneOrMany {
    pub fn kinds(&self) -> Vec<DriverKind> {
        match self {
            OneOrMany::One(k) => vec![*k],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The `[drivers]` section: which driver carries out which action.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriversConfig {
    pub create_environment: DriverKind,
    pub destroy_environment: DriverKind,
    pub add_resource: DriverKind,
    pub deploy: DriverKind,
    pub rollback: DriverKind,
    pub promote: DriverKind,
    pub scale: DriverKind,
    pub restart: DriverKind,
    pub scaffold_service: DriverKind,
    /// Who answers `status`: one driver, or a list whose answers are merged
    /// (the first that knows a field wins).
    pub status: OneOrMany,
    /// A driver asked for the URL of a freshly created environment
    /// (`"argocd"`: the application's external URL); none by default.
    pub environment_url: Option<DriverKind>,
}

impl Default for DriversConfig {
    fn default() -> Self {
        let g = DriverKind::Gitops;
        DriversConfig {
            create_environment: g,
            destroy_environment: g,
            add_resource: g,
            deploy: g,
            rollback: g,
            promote: g,
            scale: g,
            restart: g,
            scaffold_service: g,
            status: OneOrMany::One(g),
            environment_url: None,
        }
    }
}

impl DriversConfig {
    /// The driver of each mutating action.
    pub fn routes(&self) -> Vec<(ActionKind, DriverKind)> {
        use ActionKind as K;
        vec![
            (K::CreateEnvironment, self.create_environment),
            (K::DestroyEnvironment, self.destroy_environment),
            (K::AddResource, self.add_resource),
            (K::Deploy, self.deploy),
            (K::Rollback, self.rollback),
            (K::Promote, self.promote),
            (K::Scale, self.scale),
            (K::Restart, self.restart),
            (K::ScaffoldService, self.scaffold_service),
        ]
    }

    /// Every driver the configuration uses.
    pub fn used(&self) -> Vec<DriverKind> {
        let mut out: Vec<DriverKind> = self.routes().iter().map(|(_, d)| *d).collect();
        out.extend(self.status.kinds());
        out.extend(self.environment_url);
        out.sort();
        out.dedup();
        out
    }

    /// Whether the configuration uses driver `kind` anywhere.
    pub fn uses(&self, kind: DriverKind) -> bool {
        self.used().contains(&kind)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, d) in self.routes() {
            if !d.supports(kind) {
                out.push(format!("drivers.{kind}: the {d} driver cannot {kind}"));
            }
        }
        let status = self.status.kinds();
        if status.is_empty() {
            out.push("drivers.status: name at least one driver".into());
        }
        for d in status.iter().filter(|d| !d.has_status()) {
            out.push(format!(
                "drivers.status: the {d} driver has no status (use gitops and/or argocd)"
            ));
        }
        if let Some(d) = self
            .environment_url
            .filter(|d| !d.reports_environment_urls())
        {
            out.push(format!(
                "drivers.environment_url: the {d} driver does not report environment URLs (use \"argocd\")"
            ));
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
    /// `drivers` holds the opened drivers; every driver `config` uses
    /// must be there.
    pub fn new(
        config: &DriversConfig,
        drivers: &BTreeMap<DriverKind, Arc<dyn Driver>>,
    ) -> Result<Router, DriverError> {
        let get = |name: DriverKind, key: &str| {
            drivers.get(&name).cloned().ok_or_else(|| {
                DriverError::Config(format!(
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
            .kinds()
            .into_iter()
            .map(|n| get(n, "status"))
            .collect::<Result<Vec<_>, _>>()?;
        let environment_url = config
            .environment_url
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
            DriverError::Unsupported(format!(
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
        c.scale = DriverKind::Argocd;
        c.environment_url = Some(DriverKind::Gitops);
        let p = c.problems().join("\n");
        assert!(
            p.contains("drivers.scale: the argocd driver cannot scale"),
            "{p}"
        );
        assert!(p.contains("drivers.environment_url"), "{p}");
        // An unknown driver is refused when the section is read.
        let e = serde_json::from_str::<DriversConfig>(r#"{"deploy": "flux"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `flux`"), "{e}");
    }
}
