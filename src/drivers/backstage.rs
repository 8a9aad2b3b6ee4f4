//! The Backstage scaffolder driver: `scaffold_service` (and
//! `create_environment`, when a template for it is configured) runs a
//! software template as a scaffolder task.
//!
//! 1. `POST {base}/api/scaffolder/v2/tasks` with `{"templateRef", "values"}`
//!    answers `201 {"id"}`. The task id is saved as the job's checkpoint
//!    before anything else, so a retry or a resumed run follows the same
//!    task instead of starting a second one.
//! 2. The task is followed on `GET …/v2/tasks/{id}/eventstream` (server-sent
//!    events; each `data:` is a task event). When the stream is not offered
//!    (404, not `text/event-stream`) or goes quiet, the driver polls
//!    `GET …/v2/tasks/{id}/events?after=N` and `GET …/v2/tasks/{id}`.
//!    Each `log` event's message goes to the card.
//! 3. The `completion` event carries the template's `output`: its `links`
//!    (repository, catalog entity) and `remoteUrl`/`entityRef` are posted
//!    back to the thread. A failed or cancelled task is a permanent failure
//!    with Backstage's message.
//!
//! Every request carries `Authorization: Bearer <token>`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::templates;
use super::web::{self, shorten};
use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::domain::{Action, Environment, GoldenPath, ServiceName};

const SYSTEM: &str = "Backstage";

/// The `[backstage]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackstageConfig {
    /// Backstage backend base URL; `catalog.backstage_url` when unset.
    pub base_url: Option<Url>,
    /// Bearer token (a secret); `catalog.backstage_token` when unset.
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    /// Backstage frontend base URL, for catalog links; `base_url` when unset.
    pub frontend_url: Option<Url>,
    /// Namespace of the catalog's Template entities.
    pub template_namespace: String,
    /// Template values for `scaffold_service`: each value is a string with
    /// placeholders (see [`vars`]).
    pub scaffold_values: BTreeMap<String, String>,
    /// `templateRef` run for `create_environment` (when routed here).
    pub environment_template: Option<String>,
    /// Template values for `create_environment`.
    pub environment_values: BTreeMap<String, String>,
    /// Time limit of one HTTP request, in seconds.
    pub timeout_secs: u64,
    /// How long a task may run before Paver gives up on it, in seconds.
    pub task_timeout_secs: u64,
    /// Pause between polls when the event stream is not used, in ms.
    pub poll_interval_ms: u64,
    /// Follow tasks on the server-sent event stream (else: poll only).
    pub eventstream: bool,
    /// Largest response body (and largest single event of the stream)
    /// read from Backstage, in bytes.
    pub max_response_bytes: usize,
}

impl Default for BackstageConfig {
    fn default() -> Self {
        BackstageConfig {
            base_url: None,
            token: None,
            token_file: None,
            frontend_url: None,
            template_namespace: "default".into(),
            scaffold_values: BTreeMap::from([
                ("name".to_owned(), "{{ name }}".to_owned()),
                ("owner".to_owned(), "{{ owner_ref }}".to_owned()),
            ]),
            environment_template: None,
            environment_values: BTreeMap::from([
                ("service".to_owned(), "{{ service }}".to_owned()),
                ("environment".to_owned(), "{{ environment }}".to_owned()),
                ("resources".to_owned(), "{{ resources }}".to_owned()),
                ("sizes".to_owned(), "{{ sizes }}".to_owned()),
            ]),
            timeout_secs: 30,
            task_timeout_secs: 3600,
            poll_interval_ms: 2000,
            eventstream: true,
            max_response_bytes: web::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl std::fmt::Debug for BackstageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackstageConfig")
            .field("base_url", &self.base_url.as_ref().map(Url::as_str))
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("frontend_url", &self.frontend_url.as_ref().map(Url::as_str))
            .field("template_namespace", &self.template_namespace)
            .field("scaffold_values", &self.scaffold_values)
            .field("environment_template", &self.environment_template)
            .field("environment_values", &self.environment_values)
            .field("timeout_secs", &self.timeout_secs)
            .field("task_timeout_secs", &self.task_timeout_secs)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("eventstream", &self.eventstream)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl BackstageConfig {
    /// Reads value templates written in the old `{name}` syntax (see
    /// [`templates::upgrade`]); done when the configuration is loaded.
    pub fn upgrade_templates(&mut self) {
        for (key, value) in &mut self.scaffold_values {
            let key = format!("backstage.scaffold_values.{key}");
            templates::upgrade(&key, value, templates::SCAFFOLD_VALUES);
        }
        for (key, value) in &mut self.environment_values {
            let key = format!("backstage.environment_values.{key}");
            templates::upgrade(&key, value, templates::ENVIRONMENT_VALUES);
        }
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in &self.scaffold_values {
            let key = format!("backstage.scaffold_values.{key}");
            out.extend(templates::problem(&key, value, templates::SCAFFOLD_VALUES));
        }
        for (key, value) in &self.environment_values {
            let key = format!("backstage.environment_values.{key}");
            out.extend(templates::problem(
                &key,
                value,
                templates::ENVIRONMENT_VALUES,
            ));
        }
        if self.timeout_secs == 0 || self.task_timeout_secs == 0 {
            out.push(
                "backstage.timeout_secs, backstage.task_timeout_secs: must be at least 1".into(),
            );
        }
        if self.poll_interval_ms < 100 {
            out.push("backstage.poll_interval_ms: must be at least 100".into());
        }
        if self.max_response_bytes < 1024 {
            out.push("backstage.max_response_bytes: must be at least 1024".into());
        }
        if let Some(t) = &self.environment_template {
            if !t.contains(':') || !t.contains('/') {
                out.push(format!(
                    "backstage.environment_template: `{t}` is not a template reference like template:default/create-environment"
                ));
            }
        }
        out
    }
}

/// The names a value template of a job may use (`{{ name }}`): `name`,
/// `template`, `owner` (the team, else the requester), `owner_ref`
/// (`group:default/<team>` or `user:default/<requester>`), `service`,
/// `environment`, `resources` (a list when it is the whole value, else
/// comma-separated), `requester`, `request_id`, `idempotency_key`, `expires_at`
/// (Unix seconds, or empty). `sizes` (the resources' golden-path sizes, an
/// object when it is the whole value, else its JSON) is added by the driver,
/// which holds the golden path.
pub fn vars(job: &Job) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![
        ("requester", job.requester.clone()),
        ("request_id", job.request_id.clone()),
        ("idempotency_key", job.idempotency_key.clone()),
        (
            "expires_at",
            job.expires_at.map(|t| t.to_string()).unwrap_or_default(),
        ),
    ];
    match &job.action {
        Action::ScaffoldService {
            name,
            template,
            owner,
        } => {
            v.push(("name", name.to_string()));
            v.push(("template", template.to_string()));
            let (o, r) = match owner {
                Some(t) => (t.to_string(), format!("group:default/{t}")),
                None => (
                    job.requester.clone(),
                    format!("user:default/{}", job.requester),
                ),
            };
            v.push(("owner", o));
            v.push(("owner_ref", r));
        }
        Action::CreateEnvironment {
            service,
            environment,
            resources,
        } => {
            v.push(("service", service.to_string()));
            v.push(("environment", environment.to_string()));
            v.push((
                "resources",
                resources
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            v.push(("owner", job.requester.clone()));
            v.push(("owner_ref", format!("user:default/{}", job.requester)));
        }
        _ => {}
    }
    v
}

/// Whether a value template is `name` alone (`{{ name }}`).
fn is_only(template: &str, name: &str) -> bool {
    template
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .is_some_and(|t| t.trim() == name)
}

/// The Backstage scaffolder client and driver.
pub struct BackstageDriver {
    config: BackstageConfig,
    base: Url,
    token: Option<SecretString>,
    http: reqwest::Client,
    /// The sizes of the resources a new environment gets (`{{ sizes }}`).
    golden: GoldenPath,
}

/// What the task ended as.
#[derive(Debug)]
struct Completion {
    status: String,
    body: Value,
    last_log: Option<String>,
}

enum Stream {
    Done(Completion),
    /// Ended or went quiet before the task did.
    Interrupted,
    /// This Backstage offers no event stream.
    Unsupported,
}

impl BackstageDriver {
    /// `base` is the Backstage backend (`base_url`, else the catalog's).
    pub fn new(
        config: BackstageConfig,
        base: Url,
        token: Option<SecretString>,
    ) -> Result<Self, DriverError> {
        Ok(BackstageDriver {
            http: web::client(Duration::from_secs(config.timeout_secs.clamp(1, 30)))?,
            config,
            base,
            token,
            golden: GoldenPath::default(),
        })
    }

    /// Sends `golden`'s sizes of a new environment's resources as
    /// `{{ sizes }}`: what the card showed.
    pub fn with_golden_path(mut self, golden: GoldenPath) -> Self {
        self.golden = golden;
        self
    }

    /// `{{ sizes }}`: each resource's golden-path parameters by type, as the
    /// card shows them and the GitOps driver writes them.
    fn sizes(&self, action: &Action) -> Value {
        let Action::CreateEnvironment { resources, .. } = action else {
            return json!({});
        };
        let sizes: Map<String, Value> = resources
            .iter()
            .filter_map(|r| {
                let params = self.golden.size(*r)?.params();
                Some((r.as_str().to_owned(), json!(params)))
            })
            .collect();
        Value::Object(sizes)
    }

    /// `{base}/api/scaffolder/v2/tasks[/{task}[/{rest}]]`: the task id comes
    /// from Backstage's answer (or a checkpoint), so it is encoded as one
    /// segment like every other name.
    fn url(&self, task: Option<&str>, rest: Option<&str>) -> Result<Url, DriverError> {
        let mut segments = vec!["api", "scaffolder", "v2", "tasks"];
        segments.extend(task);
        segments.extend(rest);
        web::endpoint(&self.base, &segments)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose_secret()),
            None => rb,
        }
    }

    /// The scaffolder request for a job: `templateRef` and `values`.
    pub fn task_request(&self, job: &Job) -> Result<Value, DriverError> {
        let (template_ref, values) = match &job.action {
            Action::ScaffoldService { template, .. } => (
                format!("template:{}/{template}", self.config.template_namespace),
                &self.config.scaffold_values,
            ),
            Action::CreateEnvironment { .. } => match &self.config.environment_template {
                Some(t) => (t.clone(), &self.config.environment_values),
                None => {
                    return Err(DriverError::Config(
                        "the Backstage driver needs backstage.environment_template to create environments".into(),
                    ))
                }
            },
            other => {
                return Err(DriverError::Unsupported(format!(
                    "the Backstage driver cannot {}",
                    other.kind()
                )))
            }
        };
        let sizes = self.sizes(&job.action);
        let mut vars = vars(job);
        vars.push(("sizes", sizes.to_string()));
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut out = Map::new();
        for (key, template) in values {
            let value = if is_only(template, "resources") {
                match &job.action {
                    Action::CreateEnvironment { resources, .. } => {
                        json!(resources.iter().map(|r| r.as_str()).collect::<Vec<_>>())
                    }
                    _ => json!([]),
                }
            } else if is_only(template, "sizes") {
                sizes.clone()
            } else {
                let name = format!("backstage values.{key}");
                let filled = templates::fill(&name, template, &pairs)
                    .map_err(|e| DriverError::Config(e.to_string()))?;
                Value::String(filled)
            };
            out.insert(key.clone(), value);
        }
        Ok(json!({ "templateRef": template_ref, "values": out }))
    }

    async fn create_task(&self, job: &Job) -> Result<String, DriverError> {
        let body = self.task_request(job)?;
        let resp = self
            .auth(self.http.post(self.url(None, None)?))
            .timeout(self.timeout())
            .json(&body)
            .send()
            .await
            .map_err(|e| web::transport(SYSTEM, e))?;
        let v = web::json_capped(SYSTEM, resp, self.config.max_response_bytes).await?;
        let id = v.get("id").and_then(Value::as_str).ok_or_else(|| {
            DriverError::Malformed(format!(
                "{SYSTEM}: no task id in {}",
                shorten(&v.to_string())
            ))
        })?;
        // Backstage's ids are UUIDs. Whatever comes, it is encoded as one
        // path segment in URLs and cleaned in chat; what could not be
        // either way (empty, `.`, `..`, control characters) is refused.
        let plain = !id.is_empty()
            && id.len() <= 200
            && !id.chars().any(|c| c.is_control() || c.is_whitespace())
            && id != "."
            && id != "..";
        if !plain {
            return Err(DriverError::Malformed(format!(
                "{SYSTEM} gave an unusable task id {:?}",
                shorten(id)
            )));
        }
        Ok(id.to_owned())
    }

    async fn get_json(
        &self,
        task: &str,
        rest: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<Value, DriverError> {
        let resp = self
            .auth(self.http.get(self.url(Some(task), rest)?))
            .query(query)
            .timeout(self.timeout())
            .send()
            .await
            .map_err(|e| web::transport(SYSTEM, e))?;
        web::json_capped(SYSTEM, resp, self.config.max_response_bytes).await
    }

    /// Reads one event; returns the completion when it is one.
    fn on_event(
        ev: &Value,
        after: &mut Option<i64>,
        last_log: &mut Option<String>,
        progress: Progress<'_>,
    ) -> Option<Completion> {
        if let Some(id) = ev.get("id").and_then(Value::as_i64) {
            *after = Some(after.map_or(id, |a| a.max(id)));
        }
        let body = ev.get("body").cloned().unwrap_or(Value::Null);
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(shorten)
            .filter(|m| !m.is_empty());
        match ev.get("type").and_then(Value::as_str).unwrap_or("log") {
            "completion" => {
                let status = body
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        if body.get("error").is_some() {
                            "failed".into()
                        } else {
                            "completed".into()
                        }
                    });
                Some(Completion {
                    status,
                    body,
                    last_log: last_log.clone(),
                })
            }
            "cancelled" => Some(Completion {
                status: "cancelled".into(),
                body,
                last_log: last_log.clone(),
            }),
            "recovered" => {
                progress("Backstage recovered the task after a restart");
                None
            }
            _ => {
                if let Some(m) = message {
                    progress(&m);
                    *last_log = Some(m);
                }
                None
            }
        }
    }

    /// Follows the event stream until the task completes or the stream ends.
    async fn stream(
        &self,
        task: &str,
        after: &mut Option<i64>,
        last_log: &mut Option<String>,
        progress: Progress<'_>,
    ) -> Result<Stream, DriverError> {
        let mut rb = self
            .auth(self.http.get(self.url(Some(task), Some("eventstream"))?))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(a) = after {
            rb = rb.query(&[("after", a.to_string())]);
        }
        let resp = tokio::time::timeout(self.timeout(), rb.send())
            .await
            .map_err(|_| DriverError::Unreachable(format!("{SYSTEM} event stream timed out")))?
            .map_err(|e| web::transport(SYSTEM, e))?;
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if matches!(status.as_u16(), 404 | 405 | 406 | 501) || (status.is_success() && !is_sse) {
            return Ok(Stream::Unsupported);
        }
        if !status.is_success() {
            let body = web::text(SYSTEM, resp, self.config.max_response_bytes)
                .await
                .unwrap_or_default();
            return Err(web::status_error(SYSTEM, status, &body));
        }
        let idle = Duration::from_millis(self.config.poll_interval_ms.max(100) * 15)
            .max(Duration::from_secs(10));
        let since_event = Arc::new(AtomicUsize::new(0));
        let max = self.config.max_response_bytes;
        let mut events =
            std::pin::pin!(event_bytes(resp, idle, max, since_event.clone()).eventsource());
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                // Too large an event, like a broken stream: polling
                // follows the task (and the stream is tried again).
                Err(e) => {
                    tracing::debug!(error = %e, "Backstage event stream broke");
                    return Ok(Stream::Interrupted);
                }
            };
            since_event.store(0, Ordering::SeqCst);
            let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            // eventsource-stream names an event without `event:` "message".
            if v.get("type").is_none() && !ev.event.is_empty() && ev.event != "message" {
                v["type"] = Value::String(ev.event.clone());
            }
            if let Some(done) = Self::on_event(&v, after, last_log, progress) {
                return Ok(Stream::Done(done));
            }
        }
        Ok(Stream::Interrupted)
    }

    /// One polling round: new events, then the task's status.
    async fn poll(
        &self,
        task: &str,
        after: &mut Option<i64>,
        last_log: &mut Option<String>,
        progress: Progress<'_>,
    ) -> Result<Option<Completion>, DriverError> {
        let query: Vec<(&str, String)> = after.iter().map(|a| ("after", a.to_string())).collect();
        let events = self.get_json(task, Some("events"), &query).await?;
        for ev in events.as_array().into_iter().flatten() {
            if let Some(done) = Self::on_event(ev, after, last_log, progress) {
                return Ok(Some(done));
            }
        }
        let t = self.get_json(task, None, &[]).await?;
        let status = t.get("status").and_then(Value::as_str).unwrap_or("open");
        Ok(match status {
            "completed" | "failed" | "cancelled" => Some(Completion {
                status: status.to_owned(),
                body: json!({}),
                last_log: last_log.clone(),
            }),
            _ => None,
        })
    }

    async fn follow(&self, task: &str, progress: Progress<'_>) -> Result<Completion, DriverError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.task_timeout_secs);
        let pause = Duration::from_millis(self.config.poll_interval_ms.max(100));
        let mut after = None;
        let mut last_log = None;
        let mut use_stream = self.config.eventstream;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::failed(format!(
                    "Backstage task {} did not finish within {} s; see it in Backstage",
                    shorten(task),
                    self.config.task_timeout_secs
                )));
            }
            if use_stream {
                match self.stream(task, &mut after, &mut last_log, progress).await {
                    Ok(Stream::Done(c)) => {
                        // Some Backstage versions leave the status out of
                        // the completion event: the task has it.
                        if c.body.get("status").is_none() && c.body.get("error").is_none() {
                            if let Ok(t) = self.get_json(task, None, &[]).await {
                                if let Some(s) = t.get("status").and_then(Value::as_str) {
                                    if s != "open" && s != "processing" {
                                        return Ok(Completion {
                                            status: s.to_owned(),
                                            ..c
                                        });
                                    }
                                }
                            }
                        }
                        return Ok(c);
                    }
                    Ok(Stream::Unsupported) => {
                        tracing::debug!("Backstage offers no event stream; polling");
                        use_stream = false;
                    }
                    Ok(Stream::Interrupted) => {}
                    Err(e) if e.is_transient() => {
                        tracing::debug!(error = %e, "Backstage event stream failed; polling");
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(c) = self.poll(task, &mut after, &mut last_log, progress).await? {
                return Ok(c);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The frontend page of an entity, or `None` when the reference does
    /// not make one (its parts are the template's output, encoded).
    fn entity_url(&self, entity_ref: &str) -> Option<String> {
        // kind:namespace/name, namespace optional.
        let (kind, rest) = entity_ref
            .split_once(':')
            .unwrap_or(("component", entity_ref));
        let (ns, name) = rest.split_once('/').unwrap_or(("default", rest));
        let front = self.config.frontend_url.as_ref().unwrap_or(&self.base);
        web::endpoint(front, &["catalog", ns, &kind.to_lowercase(), name])
            .ok()
            .map(String::from)
    }

    fn outcome(&self, job: &Job, raw_task: &str, c: Completion) -> Result<Outcome, DriverError> {
        let task = &shorten(raw_task);
        match c.status.as_str() {
            "completed" => {}
            "cancelled" => {
                return Err(DriverError::failed(format!(
                    "the Backstage task {task} was cancelled"
                )))
            }
            _ => {
                let why = c
                    .body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(shorten)
                    .or(c.last_log)
                    .unwrap_or_else(|| "no message".into());
                return Err(DriverError::failed(format!(
                    "the Backstage task {task} failed: {why}"
                )));
            }
        }
        let output = c.body.get("output").cloned().unwrap_or(Value::Null);
        let mut links: Vec<(String, String)> = Vec::new();
        for l in output
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let title = l.get("title").and_then(Value::as_str);
            let target = match (
                l.get("url").and_then(Value::as_str),
                l.get("entityRef").and_then(Value::as_str),
            ) {
                (Some(u), _) => u.to_owned(),
                (None, Some(e)) => match self.entity_url(e) {
                    Some(u) => u,
                    None => continue,
                },
                (None, None) => continue,
            };
            let label = title.map(shorten).unwrap_or_else(|| {
                if l.get("entityRef").is_some() {
                    "Catalog entity".into()
                } else {
                    "Link".into()
                }
            });
            links.push((label, target));
        }
        let has = |links: &Vec<(String, String)>, u: &str| links.iter().any(|(_, x)| x == u);
        if let Some(u) = output.get("remoteUrl").and_then(Value::as_str) {
            if !has(&links, u) {
                links.push(("Repository".into(), u.to_owned()));
            }
        }
        if let Some(u) = output
            .get("entityRef")
            .and_then(Value::as_str)
            .and_then(|e| self.entity_url(e))
        {
            if !has(&links, &u) {
                links.push(("Catalog entity".into(), u));
            }
        }
        if let Ok(u) = web::endpoint(
            self.config.frontend_url.as_ref().unwrap_or(&self.base),
            &["create", "tasks", raw_task],
        ) {
            links.push(("Backstage task".into(), u.to_string()));
        }
        let (summary, url) = match &job.action {
            Action::ScaffoldService { name, template, .. } => (
                format!("Scaffolded {name} from template {template} (Backstage task {task})"),
                None,
            ),
            Action::CreateEnvironment {
                service,
                environment,
                ..
            } => (
                format!("Created {environment} for {service} (Backstage task {task})"),
                ["url", "environmentUrl"]
                    .iter()
                    .find_map(|k| output.get(*k).and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            other => (
                format!("{} done (Backstage task {task})", other.kind()),
                None,
            ),
        };
        Ok(Outcome {
            summary,
            url,
            links,
        })
    }
}

#[derive(serde::Serialize, Deserialize)]
struct Checkpoint {
    backstage_task: String,
}

#[async_trait]
impl Driver for BackstageDriver {
    fn name(&self) -> &'static str {
        "backstage"
    }

    /// A resumed run follows the task saved in the checkpoint.
    fn resumable(&self) -> bool {
        true
    }

    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        let saved = job
            .state
            .checkpoint()
            .await?
            .and_then(|c| serde_json::from_str::<Checkpoint>(&c).ok());
        let task = match saved {
            Some(c) => {
                progress(&format!(
                    "following Backstage task {}",
                    shorten(&c.backstage_task)
                ));
                c.backstage_task
            }
            None => {
                let id = self.create_task(job).await?;
                job.state
                    .save_checkpoint(
                        &serde_json::to_string(&Checkpoint {
                            backstage_task: id.clone(),
                        })
                        .expect("serializes"),
                    )
                    .await?;
                progress(&format!("Backstage task {} started", shorten(&id)));
                id
            }
        };
        let done = self.follow(&task, progress).await?;
        self.outcome(job, &task, done)
    }

    async fn status(
        &self,
        _service: &ServiceName,
        _environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        Ok(Vec::new())
    }
}

/// Why the bytes of an event stream stopped coming.
#[derive(Debug, thiserror::Error)]
enum StreamBreak {
    #[error("no bytes for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Transport(reqwest::Error),
    #[error("an event larger than {0} bytes")]
    TooLarge(usize),
}

/// The body of an event-stream response as bytes for `eventsource-stream`,
/// ending with [`StreamBreak::Idle`] after `idle` without a byte, and with
/// [`StreamBreak::TooLarge`] once more than `max` bytes came since the last
/// event (`since_event`, reset by the reader at each event): a stream is
/// long by nature, one event is not, and a line that never ends must not
/// grow the parser's buffer without bound.
fn event_bytes(
    resp: reqwest::Response,
    idle: Duration,
    max: usize,
    since_event: Arc<AtomicUsize>,
) -> impl futures_util::Stream<Item = Result<impl AsRef<[u8]>, StreamBreak>> + Send {
    futures_util::stream::unfold(Some(resp), move |resp| {
        let since_event = since_event.clone();
        async move {
            let mut resp = resp?;
            match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => Some((Err(StreamBreak::Idle(idle)), None)),
                Ok(Err(e)) => Some((Err(StreamBreak::Transport(e)), None)),
                Ok(Ok(None)) => None,
                Ok(Ok(Some(chunk))) => {
                    let held = since_event.fetch_add(chunk.len(), Ordering::SeqCst) + chunk.len();
                    if held > max {
                        Some((Err(StreamBreak::TooLarge(max)), None))
                    } else {
                        Some((Ok(chunk), Some(resp)))
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_server_sent_events_across_chunks() {
        // What the driver gets from eventsource-stream: events split across
        // chunks, comments skipped, CRLF lines, multi-line data.
        let chunks: Vec<Result<&[u8], std::convert::Infallible>> = vec![
            Ok(b"event: log\ndata: {\"a\":"),
            Ok(b"1}\n\n: comment\r\nevent: completion\r\ndata: x\r\ndata: y\r\n\r\n"),
        ];
        let evs: Vec<_> = futures_util::stream::iter(chunks)
            .eventsource()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event, "log");
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].event, "completion");
        assert_eq!(evs[1].data, "x\ny");
    }
}
