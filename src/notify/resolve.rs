//! Which catalog service, in which environment, a delivery is about.
//!
//! Each sender names it its own way: a GitHub repository (the components
//! whose `github.com/project-slug` it is), an Argo CD application (the
//! name Paver's own Argo CD driver gives that service's environment), or
//! the service outright. Nothing a delivery says is trusted past this: a
//! name that does not lead to exactly one catalog service is unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::delivery::Subject;
use crate::catalog::Catalog;
use crate::domain::{Environment, ServiceName, TeamName};
use crate::drivers::argocd::ArgoCdConfig;

/// A delivery's service, its owning team and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceName,
    pub owner: Option<TeamName>,
    pub environment: Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No catalog service goes by this name (or several do).
    Service {
        name: String,
        candidates: Vec<String>,
    },
    /// The service is known; the environment is none Paver knows
    /// (`github-pages`, say): nothing to tell.
    Environment {
        service: ServiceName,
        environment: String,
    },
}

/// Argo CD application name → the service and environment it deploys.
type AppIndex = Arc<HashMap<String, (ServiceName, Environment)>>;

/// Finds targets; keeps the Argo CD application index of the current
/// catalog (rebuilt when the catalog is replaced).
pub struct Resolver {
    argocd: ArgoCdConfig,
    apps: Mutex<Option<(Arc<Catalog>, AppIndex)>>,
}

impl Resolver {
    pub fn new(argocd: ArgoCdConfig) -> Self {
        Resolver {
            argocd,
            apps: Mutex::new(None),
        }
    }

    pub fn resolve(&self, catalog: &Arc<Catalog>, subject: &Subject) -> Result<Target, Unresolved> {
        let unknown = |name: &str, candidates: Vec<String>| Unresolved::Service {
            name: name.to_owned(),
            candidates,
        };
        let (service, env_text) = match subject {
            Subject::Repo { slug, environment } => {
                let components = catalog.components_in_repo(slug);
                let named = |c: &&crate::catalog::Component| {
                    environment.to_ascii_lowercase().contains(c.name.as_str())
                };
                let chosen = match components.as_slice() {
                    [one] => Some(*one),
                    many => {
                        // A monorepo: the environment name must say which
                        // component ("order-service-staging"); the longest
                        // name wins so "order" does not take "order-service".
                        let mut hits: Vec<_> = many.iter().filter(|c| named(c)).collect();
                        hits.sort_by_key(|c| std::cmp::Reverse(c.name.as_str().len()));
                        hits.first().map(|c| **c)
                    }
                };
                match chosen {
                    Some(c) => (c.name.clone(), environment.as_str()),
                    None => {
                        let candidates = components.iter().map(|c| c.name.to_string()).collect();
                        return Err(unknown(slug, candidates));
                    }
                }
            }
            Subject::ArgoApp { name } => {
                let index = self.app_index(catalog);
                return match index.get(name) {
                    Some((service, env)) => Ok(target(catalog, service.clone(), *env)),
                    None => Err(unknown(name, Vec::new())),
                };
            }
            Subject::Service { name, environment } => {
                match ServiceName::parse(name.trim().to_ascii_lowercase())
                    .ok()
                    .and_then(|s| catalog.component(s.as_str()).map(|c| c.name.clone()))
                {
                    Some(s) => (s, environment.as_str()),
                    None => return Err(unknown(name, Vec::new())),
                }
            }
        };
        match environment_in(env_text) {
            Some(env) => Ok(target(catalog, service, env)),
            None => Err(Unresolved::Environment {
                service,
                environment: env_text.to_owned(),
            }),
        }
    }

    /// Application name → (service, environment) for every service and
    /// environment of `catalog`, as Paver's Argo CD driver names them.
    fn app_index(&self, catalog: &Arc<Catalog>) -> AppIndex {
        let mut cached = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((of, index)) = cached.as_ref() {
            if Arc::ptr_eq(of, catalog) {
                return index.clone();
            }
        }
        let mut index = HashMap::new();
        let mut clashes = Vec::new();
        for c in catalog.components() {
            for env in Environment::ALL {
                if let Ok(app) = self.argocd.app_name(Some(catalog), &c.name, env) {
                    if let Some(before) = index.insert(app.clone(), (c.name.clone(), env)) {
                        clashes.push((app, before.0));
                    }
                }
            }
        }
        // Two services claiming one application: neither is trusted with it.
        for (app, _) in clashes {
            tracing::warn!(%app, "two catalog services map to this Argo CD application; its events are treated as unknown");
            index.remove(&app);
        }
        let index = Arc::new(index);
        *cached = Some((catalog.clone(), index.clone()));
        index
    }
}

fn target(catalog: &Catalog, service: ServiceName, environment: Environment) -> Target {
    let owner = catalog
        .component(service.as_str())
        .and_then(|c| c.owner.clone());
    Target {
        service,
        owner,
        environment,
    }
}

/// The environment a sender's name for it means: `production`, `Prod`,
/// `order-service-staging`, `staging/eu-west-1`. The first word that is an
/// environment wins.
pub fn environment_in(text: &str) -> Option<Environment> {
    text.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(Environment::from_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: order-service
  annotations:
    github.com/project-slug: acme/orders
spec: { type: service, lifecycle: production, owner: team-commerce }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: order-worker
  annotations:
    github.com/project-slug: acme/orders
    argocd/app-name: "staging=ow-stg,production=ow-prd"
spec: { type: service, lifecycle: production, owner: team-commerce }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing-api
  annotations:
    github.com/project-slug: acme/billing
spec: { type: service, lifecycle: production, owner: team-payments }
"#;

    fn catalog() -> Arc<Catalog> {
        Arc::new(Catalog::from_yaml_str(CATALOG, "test"))
    }

    fn repo(slug: &str, env: &str) -> Subject {
        Subject::Repo {
            slug: slug.into(),
            environment: env.into(),
        }
    }

    #[test]
    fn repositories_applications_and_names_lead_to_one_service() {
        let r = Resolver::new(ArgoCdConfig::default());
        let c = catalog();
        let t = r.resolve(&c, &repo("ACME/Billing", "Production")).unwrap();
        assert_eq!(t.service.as_str(), "billing-api");
        assert_eq!(t.owner.unwrap().as_str(), "team-payments");
        assert_eq!(t.environment, Environment::Production);
        // A monorepo: the environment says which component.
        let t = r
            .resolve(&c, &repo("acme/orders", "order-worker-stg"))
            .unwrap();
        assert_eq!(
            (t.service.as_str(), t.environment),
            ("order-worker", Environment::Staging)
        );
        let t = r
            .resolve(&c, &repo("acme/orders", "order-service/prod"))
            .unwrap();
        assert_eq!(t.service.as_str(), "order-service");
        match r.resolve(&c, &repo("acme/orders", "staging")) {
            Err(Unresolved::Service { candidates, .. }) => {
                assert_eq!(candidates, ["order-service", "order-worker"])
            }
            other => panic!("{other:?}"),
        }
        let app = |name: &str| Subject::ArgoApp { name: name.into() };
        let t = r.resolve(&c, &app("billing-api-staging")).unwrap();
        assert_eq!(
            (t.service.as_str(), t.environment),
            ("billing-api", Environment::Staging)
        );
        let t = r.resolve(&c, &app("ow-prd")).unwrap();
        assert_eq!(
            (t.service.as_str(), t.environment),
            ("order-worker", Environment::Production)
        );
        assert!(r.resolve(&c, &app("order-worker-staging")).is_err());
        let named = Subject::Service {
            name: "Order-Service".into(),
            environment: "staging".into(),
        };
        assert_eq!(
            r.resolve(&c, &named).unwrap().service.as_str(),
            "order-service"
        );
        assert!(matches!(
            r.resolve(&c, &repo("acme/billing", "github-pages")),
            Err(Unresolved::Environment { .. })
        ));
        // A catalog annotation pointing at another service's application
        // makes that application nobody's, rather than the wrong one's.
        let hijack = format!(
            "{CATALOG}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: intruder\n  annotations:\n    argocd/app-name: \"staging=billing-api-staging\"\nspec: {{ type: service, owner: team-x }}\n"
        );
        let c2 = Arc::new(Catalog::from_yaml_str(&hijack, "test"));
        assert!(r.resolve(&c2, &app("billing-api-staging")).is_err());
        assert!(r.resolve(&c2, &app("billing-api-production")).is_ok());
        assert!(matches!(
            r.resolve(&c, &repo("evil/billing", "production")),
            Err(Unresolved::Service { .. })
        ));
    }
}
