//! The Argo CD driver: `deploy`, `rollback`, `restart`, `promote` and
//! `status` through the Argo CD API server, and the URL of a new
//! environment (`status.summary.externalURLs`).
//!
//! | action | requests |
//! | --- | --- |
//! | `deploy` | `POST /api/v1/applications/{app}/sync` with `revision` (from `revision_template`, or the app's target revision when no version is given), then `GET /api/v1/applications/{app}` until the new operation succeeded and the app is Healthy |
//! | `rollback` | `GET` the app, pick an id from `status.history` (the newest entry of the version asked for, or the newest whose revision differs from the current one), `POST …/rollback` with it, then wait as for deploy |
//! | `restart` | the `restart` resource action on each Deployment/StatefulSet/DaemonSet in `status.resources` (`POST …/resource/actions`, or `…/resource/actions/v2`) |
//! | `promote` | the revision synced in `from` is synced in `to` |
//! | `status` | `GET` the app of each environment: health, sync, revision, images, external URL |
//!
//! Application names come from `app_name_template` (`{{ app }}-{{ environment }}`),
//! where `app` is the catalog annotation `argocd/app-name` (else the
//! service name); an annotation may also name every environment's app
//! itself: a template with `{{ environment }}` (the old `{environment}` is
//! still read), or `staging=a,production=b`.
//! Authentication is an API token, or a session token from
//! `POST /api/v1/session` with a username and password (renewed on 401).
//!
//! The annotation is written by the team owning the component, so it is not
//! trusted to name the right application: a name must be a Kubernetes
//! DNS-1123 subdomain (what Argo CD accepts), every name is percent-encoded
//! as one path segment, and before any mutating call (sync, rollback,
//! resource action) the application must carry the labels the platform team
//! sets on it — `paver.dev/service` and `paver.dev/environment` by default
//! (`service_label`, `environment_label`) — naming this service and
//! environment. Otherwise the action is refused and nothing is changed.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::templates;
use super::web::{self, shorten};
use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::catalog::SharedCatalog;
use crate::domain::{Action, Environment, ServiceName};

const SYSTEM: &str = "Argo CD";
const APP_NAME_TEMPLATE: &str = "argocd.app_name_template";
const REVISION_TEMPLATE: &str = "argocd.revision_template";
/// The catalog annotation naming a component's Argo CD application(s).
pub const APP_NAME_ANNOTATION: &str = "argocd/app-name";

/// The `[argocd]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// Argo CD API server base URL (`https://argocd.example.internal`).
    pub base_url: Option<Url>,
    /// API token (a secret): an account token from `argocd account generate-token`.
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    /// Or log in for a session token with a local account.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// Application name: a template with `{{ app }}` (the catalog's
    /// `argocd/app-name`, else the service name), `{{ service }}`,
    /// `{{ environment }}`.
    pub app_name_template: String,
    /// Namespace of the Application resources (apps in any namespace).
    pub app_namespace: Option<String>,
    /// Restrict to this Argo CD project.
    pub project: Option<String>,
    /// The sync revision of a version: `{{ version }}`, `v{{ version }}`, …
    pub revision_template: String,
    /// Prune resources that are no longer in Git when syncing.
    pub prune: bool,
    /// Time limit of one HTTP request, in seconds.
    pub timeout_secs: u64,
    /// How long to wait for a sync to finish and the app to be Healthy.
    pub sync_timeout_secs: u64,
    /// How long to wait for a new environment's external URL.
    pub url_timeout_secs: u64,
    /// Pause between polls, in ms.
    pub poll_interval_ms: u64,
    /// Resource actions API: "v1" (every Argo CD) or "v2" (newer servers).
    pub resource_actions: String,
    /// Kinds restarted by `restart`.
    pub restart_kinds: Vec<String>,
    /// The application label naming the service it belongs to; checked
    /// before any mutating call.
    pub service_label: String,
    /// The application label naming its environment; checked likewise.
    pub environment_label: String,
    /// Largest response body read from Argo CD, in bytes.
    pub max_response_bytes: usize,
}

impl Default for ArgoCdConfig {
    fn default() -> Self {
        ArgoCdConfig {
            base_url: None,
            token: None,
            token_file: None,
            username: None,
            password: None,
            password_file: None,
            app_name_template: "{{ app }}-{{ environment }}".into(),
            app_namespace: None,
            project: None,
            revision_template: "{{ version }}".into(),
            prune: false,
            timeout_secs: 30,
            sync_timeout_secs: 600,
            url_timeout_secs: 120,
            poll_interval_ms: 2000,
            resource_actions: "v1".into(),
            restart_kinds: vec![
                "Deployment".into(),
                "StatefulSet".into(),
                "DaemonSet".into(),
            ],
            service_label: "paver.dev/service".into(),
            environment_label: "paver.dev/environment".into(),
            max_response_bytes: web::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl std::fmt::Debug for ArgoCdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoCdConfig")
            .field("base_url", &self.base_url.as_ref().map(Url::as_str))
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "set"))
            .field("app_name_template", &self.app_name_template)
            .field("app_namespace", &self.app_namespace)
            .field("project", &self.project)
            .field("revision_template", &self.revision_template)
            .field("prune", &self.prune)
            .field("timeout_secs", &self.timeout_secs)
            .field("sync_timeout_secs", &self.sync_timeout_secs)
            .field("url_timeout_secs", &self.url_timeout_secs)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("resource_actions", &self.resource_actions)
            .field("restart_kinds", &self.restart_kinds)
            .field("service_label", &self.service_label)
            .field("environment_label", &self.environment_label)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl ArgoCdConfig {
    /// The application of one environment of a service: the catalog's
    /// `argocd/app-name` when it names one per environment (a template with
    /// `{{ environment }}`, or `staging=a,production=b`); else
    /// `app_name_template` with `{{ app }}` (the annotation's plain name, or
    /// the service name), `{{ service }}` and `{{ environment }}`. A name that is not a
    /// valid Argo CD application name is refused (see [`valid_app_name`]).
    pub fn app_name(
        &self,
        catalog: Option<&crate::catalog::Catalog>,
        service: &ServiceName,
        env: Environment,
    ) -> Result<String, DriverError> {
        let name = self.raw_app_name(catalog, service, env);
        valid_app_name(&name).map_err(|why| {
            DriverError::Config(format!(
                "the Argo CD application name {:?} for {service} in {env} (catalog annotation {APP_NAME_ANNOTATION} or argocd.app_name_template) is not valid: {why}",
                shorten(&name)
            ))
        })?;
        Ok(name)
    }

    fn raw_app_name(
        &self,
        catalog: Option<&crate::catalog::Catalog>,
        service: &ServiceName,
        env: Environment,
    ) -> String {
        let annotation = catalog
            .and_then(|c| {
                c.component(service.as_str())
                    .and_then(|c| c.annotations.get(APP_NAME_ANNOTATION).cloned())
            })
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        let app = annotation
            .clone()
            .filter(|a| !a.contains('{') && !a.contains('='))
            .unwrap_or_else(|| service.to_string());
        let vars = [
            ("app", app.as_str()),
            ("service", service.as_str()),
            ("environment", env.as_str()),
        ];
        match annotation {
            Some(a) if a.contains('=') => {
                let found = a.split(',').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    (Environment::from_word(k.trim()) == Some(env)).then(|| v.trim().to_owned())
                });
                found.unwrap_or_else(|| self.configured_app_name(&vars))
            }
            Some(a) if a.contains('{') => {
                // The team's own template, in either syntax; one that does
                // not fill is refused as a name (see `app_name`).
                let a = templates::template::upgrade_legacy(&a, templates::APP_NAME).unwrap_or(a);
                templates::fill(APP_NAME_ANNOTATION, &a, &vars).unwrap_or(a)
            }
            _ => self.configured_app_name(&vars),
        }
    }

    /// `app_name_template` filled (it was checked when the configuration
    /// was loaded; unfilled, it is refused as a name).
    fn configured_app_name(&self, vars: &[(&str, &str)]) -> String {
        let t = &self.app_name_template;
        templates::fill(APP_NAME_TEMPLATE, t, vars).unwrap_or_else(|_| t.clone())
    }

    /// Reads templates written in the old `{app}` syntax (see
    /// [`templates::upgrade`]); done when the configuration is loaded.
    pub fn upgrade_templates(&mut self) {
        templates::upgrade(
            APP_NAME_TEMPLATE,
            &mut self.app_name_template,
            templates::APP_NAME,
        );
        templates::upgrade(
            REVISION_TEMPLATE,
            &mut self.revision_template,
            templates::REVISION,
        );
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let app_name = &self.app_name_template;
        if let Some(p) = templates::problem(APP_NAME_TEMPLATE, app_name, templates::APP_NAME) {
            out.push(p);
        } else if !templates::uses_any(app_name, &["app", "service"], templates::APP_NAME) {
            out.push("argocd.app_name_template: must contain {{ app }} or {{ service }}".into());
        }
        let revision = &self.revision_template;
        if let Some(p) = templates::problem(REVISION_TEMPLATE, revision, templates::REVISION) {
            out.push(p);
        } else if !templates::uses_any(revision, &["version"], templates::REVISION) {
            out.push("argocd.revision_template: must contain {{ version }}".into());
        }
        if !matches!(self.resource_actions.as_str(), "v1" | "v2") {
            out.push("argocd.resource_actions: \"v1\" or \"v2\"".into());
        }
        if self.timeout_secs == 0 || self.sync_timeout_secs == 0 {
            out.push("argocd.timeout_secs, argocd.sync_timeout_secs: must be at least 1".into());
        }
        if self.poll_interval_ms < 100 {
            out.push("argocd.poll_interval_ms: must be at least 100".into());
        }
        if self.service_label.trim().is_empty() || self.environment_label.trim().is_empty() {
            out.push("argocd.service_label, argocd.environment_label: must not be empty".into());
        }
        if self.max_response_bytes < 1024 {
            out.push("argocd.max_response_bytes: must be at least 1024".into());
        }
        if self.username.is_some() != self.password.is_some() && self.token.is_none() {
            out.push("argocd: set both username and password (PAVER_ARGOCD__PASSWORD or password_file), or a token".into());
        }
        out
    }
}

pub struct ArgoCdDriver {
    config: ArgoCdConfig,
    base: Url,
    catalog: Option<SharedCatalog>,
    http: reqwest::Client,
    session: tokio::sync::Mutex<Option<String>>,
}

/// Query parameters of a request.
pub type Query = Vec<(&'static str, String)>;

/// Why a rollback has nowhere to go.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoRollback {
    #[error("its history is empty")]
    EmptyHistory,
    #[error("version {version} is not in its history (it has {history})")]
    NotInHistory { version: String, history: String },
    #[error("there is no earlier revision in its history")]
    NothingEarlier,
}

/// What a rollback picked from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPick {
    pub id: i64,
    pub revision: String,
}

impl ArgoCdDriver {
    pub fn new(
        config: ArgoCdConfig,
        base: Url,
        catalog: Option<SharedCatalog>,
    ) -> Result<Self, DriverError> {
        Ok(ArgoCdDriver {
            http: web::client(Duration::from_secs(config.timeout_secs.clamp(1, 30)))?,
            config,
            base,
            catalog,
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// The application of one environment of a service (see
    /// [`ArgoCdConfig::app_name`]).
    pub fn app_name(&self, service: &ServiceName, env: Environment) -> Result<String, DriverError> {
        let catalog = self.catalog.as_ref().map(|c| c.current());
        self.config.app_name(catalog.as_deref(), service, env)
    }

    fn app_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(n) = &self.config.app_namespace {
            q.push(("appNamespace", n.clone()));
        }
        if let Some(p) = &self.config.project {
            q.push(("project", p.clone()));
        }
        q
    }

    /// The scoping fields of a request body (`appNamespace`, `project`).
    fn scope(&self, body: &mut Value) {
        if let Some(n) = &self.config.app_namespace {
            body["appNamespace"] = json!(n);
        }
        if let Some(p) = &self.config.project {
            body["project"] = json!(p);
        }
    }

    async fn login(&self) -> Result<String, DriverError> {
        let (Some(user), Some(pw)) = (&self.config.username, &self.config.password) else {
            return Err(DriverError::Config(
                "Argo CD: no token and no username/password configured".into(),
            ));
        };
        let resp = self
            .http
            .post(web::endpoint(&self.base, &["api", "v1", "session"])?)
            .timeout(self.timeout())
            .json(&json!({"username": user, "password": pw.expose_secret()}))
            .send()
            .await
            .map_err(|e| web::transport(SYSTEM, e))?;
        let v = web::json_capped(SYSTEM, resp, self.config.max_response_bytes).await?;
        v.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| DriverError::Malformed("Argo CD: the session has no token".into()))
    }

    async fn bearer(&self, renew: bool) -> Result<Option<String>, DriverError> {
        if let Some(t) = &self.config.token {
            return Ok(Some(t.expose_secret().to_owned()));
        }
        if self.config.username.is_none() {
            return Ok(None);
        }
        let mut s = self.session.lock().await;
        if renew || s.is_none() {
            *s = Some(self.login().await?);
        }
        Ok(s.clone())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    /// `…/api/v1/applications/{app}/{rest…}`, every segment encoded.
    fn app_url(&self, app: &str, rest: &[&str]) -> Result<Url, DriverError> {
        let mut segments = vec!["api", "v1", "applications", app];
        segments.extend_from_slice(rest);
        web::endpoint(&self.base, &segments)
    }

    /// One API call; a session token is renewed once on 401.
    async fn call(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, DriverError> {
        let mut renew = false;
        loop {
            let mut rb = self
                .http
                .request(method.clone(), url.clone())
                .query(query)
                .timeout(self.timeout());
            if let Some(t) = self.bearer(renew).await? {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = rb.send().await.map_err(|e| web::transport(SYSTEM, e))?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                && !renew
                && self.config.token.is_none()
                && self.config.username.is_some()
            {
                renew = true;
                continue;
            }
            return web::json_capped(SYSTEM, resp, self.config.max_response_bytes)
                .await
                .map_err(|e| match e {
                    // gRPC FailedPrecondition, surfaced as 400: wait and retry.
                    DriverError::Status { ref message, .. }
                        if message.contains("another operation is already in progress") =>
                    {
                        DriverError::Busy(e.to_string())
                    }
                    other => other,
                });
        }
    }

    pub async fn get_app(&self, app: &str) -> Result<Value, DriverError> {
        self.call(
            Method::GET,
            self.app_url(app, &[])?,
            &self.app_query(),
            None,
        )
        .await
        .map_err(|e| match e {
            DriverError::Status {
                status: reqwest::StatusCode::NOT_FOUND,
                ..
            } => DriverError::NotFound(format!("Argo CD has no application {app} ({e})")),
            other => other,
        })
    }

    /// The body of `POST …/sync`.
    pub fn sync_request(&self, app: &str, revision: Option<&str>) -> Value {
        let mut b = json!({"name": app, "prune": self.config.prune});
        if let Some(r) = revision {
            b["revision"] = json!(r);
        }
        self.scope(&mut b);
        b
    }

    /// The body of `POST …/rollback`.
    pub fn rollback_request(&self, app: &str, id: i64) -> Value {
        let mut b = json!({"name": app, "id": id, "prune": self.config.prune});
        self.scope(&mut b);
        b
    }

    fn revision_for(&self, version: &str) -> String {
        let t = &self.config.revision_template;
        // Checked when the configuration was loaded.
        templates::fill(REVISION_TEMPLATE, t, &[("version", version)]).unwrap_or_else(|_| t.clone())
    }

    fn started_at(app: &Value) -> Option<String> {
        app.pointer("/status/operationState/startedAt")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Waits until the operation started after `before` has succeeded and
    /// the app is Healthy.
    async fn wait_synced(
        &self,
        app: &str,
        before: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Value, DriverError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.sync_timeout_secs);
        let pause = Duration::from_millis(self.config.poll_interval_ms.max(100));
        let mut last = String::new();
        loop {
            let a = self.get_app(app).await?;
            let started = Self::started_at(&a);
            let ours = started.is_some() && started.as_deref() != before;
            let phase = a
                .pointer("/status/operationState/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let op_message = a
                .pointer("/status/operationState/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            let health = a
                .pointer("/status/health/status")
                .and_then(Value::as_str)
                .unwrap_or("Unknown");
            let sync = a
                .pointer("/status/sync/status")
                .and_then(Value::as_str)
                .unwrap_or("Unknown");
            let line = if ours {
                let (phase, health, sync) = (shorten(phase), shorten(health), shorten(sync));
                format!("Argo CD: {app} sync {phase}, {health}, {sync}")
            } else {
                format!("Argo CD: waiting for the sync of {app} to start")
            };
            if line != last {
                progress(&line);
                last = line;
            }
            if ours {
                match phase {
                    "Failed" | "Error" => {
                        return Err(DriverError::failed(format!(
                            "Argo CD sync of {app} {}: {}",
                            phase.to_lowercase(),
                            shorten(op_message)
                        )))
                    }
                    "Succeeded" if health == "Healthy" => return Ok(a),
                    _ => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let why = a
                    .pointer("/status/health/message")
                    .and_then(Value::as_str)
                    .map(|m| format!(": {}", shorten(m)))
                    .unwrap_or_default();
                return Err(DriverError::failed(format!(
                    "Argo CD application {app} is not Healthy after {} s (operation {}, health {health}, sync {sync}){why}",
                    self.config.sync_timeout_secs,
                    if phase.is_empty() { "not started" } else { phase },
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }

    fn links(&self, app: &str) -> Vec<(String, String)> {
        web::endpoint(&self.base, &["applications", app])
            .map(|u| vec![("Argo CD".to_owned(), u.to_string())])
            .unwrap_or_default()
    }

    /// Refuses an application that does not belong to `service` in `env`:
    /// the labels the platform team sets on it (`service_label`,
    /// `environment_label`) must name both. The catalog annotation that
    /// picked the name is the team's own text; the labels are not.
    pub fn check_owner(
        &self,
        name: &str,
        app: &Value,
        service: &ServiceName,
        env: Environment,
    ) -> Result<(), DriverError> {
        let labels = app.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let mut wrong = Vec::new();
        for (key, want) in [
            (&self.config.service_label, service.as_str()),
            (&self.config.environment_label, env.as_str()),
        ] {
            match label(key) {
                Some(got) if got == want => {}
                Some(got) => wrong.push(format!("{key}={} (expected {want})", shorten(got))),
                None => wrong.push(format!("no label {key} (expected {want})")),
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(DriverError::Refused(format!(
            "refusing to change Argo CD application {name}: it does not belong to {service} in {env}: {}. The platform team sets these labels on the application",
            wrong.join(", ")
        )))
    }

    /// The application, after checking it belongs to `service` in `env`
    /// (see [`Self::check_owner`]): what every mutating call reads first.
    async fn owned_app(
        &self,
        name: &str,
        service: &ServiceName,
        env: Environment,
    ) -> Result<Value, DriverError> {
        let app = self.get_app(name).await?;
        self.check_owner(name, &app, service, env)?;
        Ok(app)
    }

    fn external_url(app: &Value) -> Option<String> {
        app.pointer("/status/summary/externalURLs")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find_map(Value::as_str))
            .map(str::to_owned)
    }

    /// Starts (or, resumed, finds) an operation and waits for it. `start`
    /// posts it; the checkpoint keeps the operation that was there before.
    async fn operate(
        &self,
        job: &Job,
        (service, env): (&ServiceName, Environment),
        app: &str,
        what: &str,
        body: Value,
        progress: Progress<'_>,
    ) -> Result<Value, DriverError> {
        let saved = job
            .state
            .checkpoint()
            .await?
            .and_then(|c| serde_json::from_str::<OpCheckpoint>(&c).ok())
            .filter(|c| c.app == app && c.op == what);
        let before = match saved {
            Some(c) => {
                progress(&format!("Argo CD: following the {what} of {app}"));
                c.before
            }
            None => {
                let current = self.owned_app(app, service, env).await?;
                let before = Self::started_at(&current);
                self.call(Method::POST, self.app_url(app, &[what])?, &[], Some(&body))
                    .await?;
                job.state
                    .save_checkpoint(
                        &serde_json::to_string(&OpCheckpoint {
                            app: app.to_owned(),
                            op: what.to_owned(),
                            before: before.clone(),
                            restarted: vec![],
                        })
                        .expect("serializes"),
                    )
                    .await?;
                before
            }
        };
        self.wait_synced(app, before.as_deref(), progress).await
    }

    /// The history entry a rollback goes to.
    pub fn pick_rollback(
        &self,
        app: &Value,
        version: Option<&str>,
    ) -> Result<HistoryPick, NoRollback> {
        let mut history: Vec<HistoryPick> = app
            .pointer("/status/history")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|h| {
                Some(HistoryPick {
                    id: h.get("id")?.as_i64()?,
                    revision: h
                        .get("revision")
                        .and_then(Value::as_str)
                        .or_else(|| h.pointer("/revisions/0").and_then(Value::as_str))
                        .unwrap_or("")
                        .to_owned(),
                })
            })
            .collect();
        history.sort_by_key(|h| h.id);
        if history.is_empty() {
            return Err(NoRollback::EmptyHistory);
        }
        match version {
            Some(v) => {
                let wanted = self.revision_for(v);
                history
                    .iter()
                    .rev()
                    .find(|h| h.revision == wanted || h.revision == v)
                    .cloned()
                    .ok_or_else(|| NoRollback::NotInHistory {
                        version: v.to_owned(),
                        history: history
                            .iter()
                            .map(|h| short(&h.revision))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
            None => {
                let current = app
                    .pointer("/status/sync/revision")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        history
                            .last()
                            .map(|h| h.revision.clone())
                            .unwrap_or_default()
                    });
                let last = history.last().map(|h| h.id);
                history
                    .iter()
                    .rev()
                    .filter(|h| Some(h.id) != last)
                    .find(|h| h.revision != current)
                    .cloned()
                    .ok_or(NoRollback::NothingEarlier)
            }
        }
    }

    async fn deploy(
        &self,
        job: &Job,
        service: &ServiceName,
        env: Environment,
        version: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, DriverError> {
        let app = self.app_name(service, env)?;
        let revision = version.map(|v| self.revision_for(v));
        let body = self.sync_request(&app, revision.as_deref());
        let done = self
            .operate(job, (service, env), &app, "sync", body, progress)
            .await?;
        let synced = done
            .pointer("/status/sync/revision")
            .and_then(Value::as_str)
            .map(short)
            .unwrap_or_default();
        Ok(Outcome {
            summary: match version {
                Some(v) => format!("Deployed {service} {v} to {env} (Argo CD {app} at {synced})"),
                None => format!("Redeployed {service} in {env} (Argo CD {app} at {synced})"),
            },
            url: Self::external_url(&done),
            links: self.links(&app),
        })
    }

    async fn rollback(
        &self,
        job: &Job,
        service: &ServiceName,
        env: Environment,
        version: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, DriverError> {
        let app = self.app_name(service, env)?;
        let saved = job
            .state
            .checkpoint()
            .await?
            .and_then(|c| serde_json::from_str::<OpCheckpoint>(&c).ok());
        // A resumed run must not pick again: the history moved on.
        let pick = match saved.filter(|c| c.op == "rollback") {
            Some(_) => None,
            None => {
                let current = self.owned_app(&app, service, env).await?;
                Some(self.pick_rollback(&current, version).map_err(|why| {
                    DriverError::Refused(format!(
                        "cannot roll back {app}: {}",
                        shorten(&why.to_string())
                    ))
                })?)
            }
        };
        if let Some(p) = &pick {
            progress(&format!(
                "Argo CD: rolling {app} back to history {} ({})",
                p.id,
                short(&p.revision)
            ));
        }
        let body = self.rollback_request(&app, pick.as_ref().map_or(0, |p| p.id));
        let done = self
            .operate(job, (service, env), &app, "rollback", body, progress)
            .await?;
        let rev = pick
            .map(|p| short(&p.revision))
            .or_else(|| {
                done.pointer("/status/sync/revision")
                    .and_then(Value::as_str)
                    .map(short)
            })
            .unwrap_or_default();
        Ok(Outcome {
            summary: format!("Rolled {service} in {env} back to {rev} (Argo CD {app})"),
            url: Self::external_url(&done),
            links: self.links(&app),
        })
    }

    /// The request of the `restart` action on one resource: path, query, body.
    pub fn restart_request(
        &self,
        app: &str,
        r: &Value,
    ) -> Result<(Url, Query, Value), DriverError> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        if self.config.resource_actions == "v2" {
            let mut b = json!({
                "name": app,
                "namespace": s("namespace"),
                "resourceName": s("name"),
                "version": s("version"),
                "group": s("group"),
                "kind": s("kind"),
                "action": "restart",
            });
            self.scope(&mut b);
            Ok((
                self.app_url(app, &["resource", "actions", "v2"])?,
                vec![],
                b,
            ))
        } else {
            let mut q = vec![
                ("namespace", s("namespace")),
                ("resourceName", s("name")),
                ("version", s("version")),
                ("group", s("group")),
                ("kind", s("kind")),
            ];
            q.extend(self.app_query());
            Ok((
                self.app_url(app, &["resource", "actions"])?,
                q,
                json!("restart"),
            ))
        }
    }

    async fn restart(
        &self,
        job: &Job,
        service: &ServiceName,
        env: Environment,
        progress: Progress<'_>,
    ) -> Result<Outcome, DriverError> {
        let app = self.app_name(service, env)?;
        let current = self.owned_app(&app, service, env).await?;
        let targets: Vec<Value> = current
            .pointer("/status/resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| {
                r.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| self.config.restart_kinds.iter().any(|x| x == k))
                    && !r.get("hook").and_then(Value::as_bool).unwrap_or(false)
            })
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(DriverError::NotFound(format!(
                "Argo CD application {app} has no {} to restart",
                self.config.restart_kinds.join(", ")
            )));
        }
        let mut cp = job
            .state
            .checkpoint()
            .await?
            .and_then(|c| serde_json::from_str::<OpCheckpoint>(&c).ok())
            .filter(|c| c.op == "restart" && c.app == app)
            .unwrap_or(OpCheckpoint {
                app: app.clone(),
                op: "restart".into(),
                before: None,
                restarted: vec![],
            });
        let mut names = Vec::new();
        for r in &targets {
            let key = format!(
                "{}/{}/{}",
                r.get("kind").and_then(Value::as_str).unwrap_or(""),
                r.get("namespace").and_then(Value::as_str).unwrap_or(""),
                r.get("name").and_then(Value::as_str).unwrap_or("")
            );
            names.push(key.clone());
            if cp.restarted.contains(&key) {
                progress(&format!("Argo CD: {key} was already restarted"));
                continue;
            }
            let (url, query, body) = self.restart_request(&app, r)?;
            self.call(Method::POST, url, &query, Some(&body)).await?;
            progress(&format!("Argo CD: restarted {key}"));
            cp.restarted.push(key);
            job.state
                .save_checkpoint(&serde_json::to_string(&cp).expect("serializes"))
                .await?;
        }
        Ok(Outcome {
            summary: format!("Restarted {service} in {env} ({})", names.join(", ")),
            url: Self::external_url(&current),
            links: self.links(&app),
        })
    }

    async fn promote(
        &self,
        job: &Job,
        service: &ServiceName,
        from: Environment,
        to: Environment,
        progress: Progress<'_>,
    ) -> Result<Outcome, DriverError> {
        let source = self.app_name(service, from)?;
        let target = self.app_name(service, to)?;
        // The revision comes from the source: it must be this service's too.
        let src = self.owned_app(&source, service, from).await?;
        let revision = src
            .pointer("/status/sync/revision")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DriverError::NotFound(format!(
                    "Argo CD application {source} has no synced revision"
                ))
            })?;
        let body = self.sync_request(&target, Some(&revision));
        let done = self
            .operate(job, (service, to), &target, "sync", body, progress)
            .await?;
        Ok(Outcome {
            summary: format!(
                "Promoted {service} {} from {from} to {to} (Argo CD {target})",
                short(&revision)
            ),
            url: Self::external_url(&done),
            links: self.links(&target),
        })
    }

    /// An environment's state as Argo CD shows it.
    pub fn env_status(service: &ServiceName, env: Environment, app: &Value) -> EnvStatus {
        let images: Vec<&str> = app
            .pointer("/status/summary/images")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let tag = |img: &&str| {
            let (repo, tag) = img.rsplit_once(':')?;
            (!tag.contains('/')).then_some((repo.to_owned(), tag.to_owned()))
        };
        let version = images
            .iter()
            .filter_map(&tag)
            .find(|(repo, _)| repo.rsplit('/').next() == Some(service.as_str()))
            .or_else(|| images.iter().find_map(tag))
            .map(|(_, t)| t)
            .or_else(|| {
                app.pointer("/status/sync/revision")
                    .and_then(Value::as_str)
                    .map(short)
            });
        let health = app
            .pointer("/status/health/status")
            .and_then(Value::as_str)
            .map(
                |h| match app.pointer("/status/sync/status").and_then(Value::as_str) {
                    Some(s) => format!("{h}, {s}"),
                    None => h.to_owned(),
                },
            );
        EnvStatus {
            environment: env,
            version,
            replicas: None,
            resources: vec![],
            url: Self::external_url(app),
            expires_at: None,
            health,
        }
    }
}

/// What a run of an operation remembers across attempts.
#[derive(serde::Serialize, Deserialize)]
struct OpCheckpoint {
    app: String,
    op: String,
    /// `operationState.startedAt` before this job's operation.
    before: Option<String>,
    /// Resources already restarted (`Kind/namespace/name`).
    #[serde(default)]
    restarted: Vec<String>,
}

/// Why a name is not a valid Argo CD application name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_APP_NAME} characters")]
    TooLong,
    #[error("it contains {0:?}; only lowercase letters, digits, '-' and '.' are allowed")]
    Character(char),
    #[error("each dot-separated part must start and end with a lowercase letter or digit")]
    Part,
}

/// The longest Kubernetes object name (a DNS-1123 subdomain).
pub const MAX_APP_NAME: usize = 253;

/// Whether `name` is a Kubernetes DNS-1123 subdomain, the names Argo CD
/// gives applications: lowercase letters, digits, `-` and `.`, each
/// dot-separated part starting and ending with a letter or digit, at most
/// 253 characters. This keeps `/`, `..`, `?`, `%` and the like out of the
/// API paths whatever the catalog says.
pub fn valid_app_name(name: &str) -> Result<(), AppNameError> {
    if name.is_empty() {
        return Err(AppNameError::Empty);
    }
    if name.len() > MAX_APP_NAME {
        return Err(AppNameError::TooLong);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(AppNameError::Character(c));
    }
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if name
        .split('.')
        .any(|part| !alnum(part.as_bytes().first()) || !alnum(part.as_bytes().last()))
    {
        return Err(AppNameError::Part);
    }
    Ok(())
}

/// A commit SHA shortened; other revisions as they are.
fn short(rev: &str) -> String {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        rev[..7].to_owned()
    } else {
        shorten(rev)
    }
}

#[async_trait]
impl Driver for ArgoCdDriver {
    fn name(&self) -> &'static str {
        "argocd"
    }

    /// A resumed run follows the operation it started (the checkpoint);
    /// restarts already done are not redone.
    fn resumable(&self) -> bool {
        true
    }

    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        match &job.action {
            Action::Deploy {
                service,
                environment,
                version,
            } => {
                self.deploy(
                    job,
                    service,
                    *environment,
                    version.as_ref().map(|v| v.as_str()),
                    progress,
                )
                .await
            }
            Action::Rollback {
                service,
                environment,
                version,
            } => {
                self.rollback(
                    job,
                    service,
                    *environment,
                    version.as_ref().map(|v| v.as_str()),
                    progress,
                )
                .await
            }
            Action::Restart {
                service,
                environment,
            } => self.restart(job, service, *environment, progress).await,
            Action::Promote { service, from, to } => {
                self.promote(job, service, *from, *to, progress).await
            }
            other => Err(DriverError::Unsupported(format!(
                "the Argo CD driver cannot {}",
                other.kind()
            ))),
        }
    }

    async fn status(
        &self,
        service: &ServiceName,
        environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        let envs = match environment {
            Some(e) => vec![e],
            None => Environment::ALL.to_vec(),
        };
        let mut out = Vec::new();
        for env in envs {
            let app = self.app_name(service, env)?;
            match self.get_app(&app).await {
                Ok(a) => out.push(Self::env_status(service, env, &a)),
                Err(DriverError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn environment_url(
        &self,
        service: &ServiceName,
        environment: Environment,
        progress: Progress<'_>,
    ) -> Result<Option<String>, DriverError> {
        let app = self.app_name(service, environment)?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.url_timeout_secs);
        let pause = Duration::from_millis(self.config.poll_interval_ms.max(100));
        progress(&format!("Argo CD: waiting for the URL of {app}"));
        let mut refresh = true;
        loop {
            let mut q = self.app_query();
            if refresh {
                q.push(("refresh", "normal".into()));
                refresh = false;
            }
            match self
                .call(Method::GET, self.app_url(&app, &[])?, &q, None)
                .await
            {
                Ok(a) => {
                    if let Some(u) = Self::external_url(&a) {
                        return Ok(Some(u));
                    }
                }
                // The application may not exist yet (an ApplicationSet makes it).
                Err(DriverError::NotFound(_)) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::NotYet(format!(
                    "Argo CD shows no external URL for {app} after {} s",
                    self.config.url_timeout_secs
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(config: ArgoCdConfig) -> ArgoCdDriver {
        ArgoCdDriver::new(config, Url::parse("http://127.0.0.1:1").unwrap(), None).unwrap()
    }

    #[test]
    fn application_names_are_dns_subdomains() {
        for ok in ["order-service-staging", "a", "pay.api-1", &"a".repeat(253)] {
            assert_eq!(valid_app_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", AppNameError::Empty),
            (&"a".repeat(254), AppNameError::TooLong),
            ("team-a/prod", AppNameError::Character('/')),
            ("..", AppNameError::Part),
            ("a..b", AppNameError::Part),
            ("app?x=1", AppNameError::Character('?')),
            ("app%2fprod", AppNameError::Character('%')),
            ("Order", AppNameError::Character('O')),
            ("-a", AppNameError::Part),
            ("a.", AppNameError::Part),
        ] {
            assert_eq!(valid_app_name(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn picks_rollback_targets_from_history() {
        let d = driver(ArgoCdConfig {
            revision_template: "v{{ version }}".into(),
            ..ArgoCdConfig::default()
        });
        let app = json!({"status": {
        "sync": {"revision": "v1.3.0"},
        "history": [
            {"id": 3, "revision": "v1.2.0"},
            {"id": 4, "revision": "v1.3.0"},
            {"id": 5, "revision": "v1.3.0"},
            {"id": 1, "revision": "v1.1.0"},
        ]}});
        assert_eq!(
            d.pick_rollback(&app, None).unwrap(),
            HistoryPick {
                id: 3,
                revision: "v1.2.0".into()
            }
        );
        assert_eq!(d.pick_rollback(&app, Some("1.1.0")).unwrap().id, 1);
        assert!(d
            .pick_rollback(&app, Some("0.9.0"))
            .unwrap_err()
            .to_string()
            .contains("v1.1.0, v1.2.0"));
        assert!(d.pick_rollback(&json!({}), None).is_err());
    }

    #[test]
    fn reads_status_from_the_real_application_sample() {
        let text = std::fs::read_to_string("../shared/corpus/argocd/application_with_status.json")
            .expect("the Argo CD sample beside this checkout");
        let app: Value = serde_json::from_str(&text).unwrap();
        let svc = ServiceName::parse("test-lla").unwrap();
        let s = ArgoCdDriver::env_status(&svc, Environment::Staging, &app);
        assert_eq!(s.health.as_deref(), Some("Healthy, Synced"));
        assert_eq!(s.version.as_deref(), Some("latest"));
        // The sample's live revision (rev1) is not in its history: the
        // newest entry before the last is the one to go back to.
        let d = driver(ArgoCdConfig::default());
        let ids: Vec<i64> = app["status"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect();
        let pick = d.pick_rollback(&app, None).unwrap();
        assert!(pick.id < *ids.iter().max().unwrap());
    }
}
