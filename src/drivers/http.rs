//! The generic HTTP orchestrator driver, for Humanitec-, Kratix- or
//! Port-style platforms and in-house ones: each action is `POST`ed as JSON
//! (schema `paver.orchestrator/v1`, below) to the configured URL, signed
//! with HMAC-SHA256 and carrying the job's idempotency key. The
//! orchestrator answers at once, or with a status URL Paver polls, or later
//! by calling back `POST /hooks/orchestrator/{job}` (signed over the method,
//! the path and a timestamp, see "Callbacks" below).
//!
//! # Request (Paver → orchestrator)
//!
//! ```text
//! POST <orchestrator.url>
//! Content-Type: application/json
//! Idempotency-Key: r-5kq2m8xa:3f2a…        same on every attempt of the job
//! X-Paver-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//!
//! {"schema": "paver.orchestrator/v1",
//!  "job_id": "j-7hx3k2m9qa", "idempotency_key": "r-5kq2m8xa:3f2a…",
//!  "request_id": "r-5kq2m8xa", "attempt": 1,
//!  "action": {"action": "create_environment", "service": "order-service",
//!             "environment": "staging", "resources": ["postgres"]},
//!  "requested_by": "alice", "approved_by": null, "expires_at": null,
//!  "sizes": {"postgres": {"version": "16", "cpu": "2", "memory": "4Gi", "backups": "daily"}},
//!  "callback_url": "https://paver.example.internal/hooks/orchestrator/j-7hx3k2m9qa"}
//! ```
//!
//! `action` is the typed action contract (the same JSON `paver parse`
//! writes). `expires_at` (Unix seconds) is set for preview environments;
//! `callback_url` only when `orchestrator.callback_base_url` is. `sizes`
//! holds the golden path's size of each resource the action adds
//! (`[golden_path]`), exactly as the card showed it.
//!
//! # Status document (orchestrator → Paver)
//!
//! The answer to the `POST`, the answer to a `GET <status_url>` and the
//! body of a callback all have this shape:
//!
//! ```text
//! {"status": "accepted" | "running" | "succeeded" | "failed",
//!  "message": "provisioning postgres",            progress, or the error
//!  "status_url": "https://orch/jobs/123",         where to poll (optional)
//!  "url": "https://order-service.staging…",       the environment, on success
//!  "summary": "Created staging for order-service",
//!  "links": [{"label": "Dashboard", "url": "https://…"}],
//!  "retryable": false}                            for "failed": retry later?
//! ```
//!
//! A non-2xx answer is a failure: 408, 409 (the same key is still being
//! worked on), 425, 429 and 5xx are retried with backoff, other 4xx are
//! shown in the thread. A `Location` header counts as `status_url`.
//! `status_url` and `Location` are followed only on the origin (scheme,
//! host, port) of `orchestrator.url`; any other is a permanent failure and
//! is never fetched. Answers larger than `max_response_bytes` are refused.
//!
//! # Callbacks (orchestrator → Paver)
//!
//! ```text
//! POST /hooks/orchestrator/j-7hx3k2m9qa
//! Content-Type: application/json
//! X-Paver-Timestamp: 1767225600
//! X-Paver-Signature: v1=<hex HMAC-SHA256(inbound key,
//!                        "v1:<timestamp>:POST:/hooks/orchestrator/j-7hx3k2m9qa:<body>")>
//!
//! <a status document>
//! ```
//!
//! The key is `orchestrator.inbound_signing_secret`, else
//! `orchestrator.signing_secret`. The path is `/hooks/orchestrator/<job>`
//! (the path of `callback_url` with `callback_base_url`'s prefix is
//! accepted too). The timestamp must be within `signature_tolerance_secs`
//! of Paver's clock, and each signature is accepted once: a replay answers
//! 409. Seen signatures are kept in the database, so every replica knows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::web::{self, shorten};
use super::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use crate::domain::{Action, Environment, GoldenPath, ServiceName};
use crate::storage::jobs::CallbackStored;
use crate::storage::Db;

const SYSTEM: &str = "the orchestrator";
/// The request schema's name and version.
pub const SCHEMA: &str = "paver.orchestrator/v1";
/// The signature header on requests and callbacks.
pub const SIGNATURE_HEADER: &str = "X-Paver-Signature";
/// The timestamp header of callbacks (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Paver-Timestamp";
/// The callback route; `{job}` is the executor's job id.
pub const CALLBACK_PATH: &str = "/hooks/orchestrator";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

type HmacSha256 = Hmac<sha2::Sha256>;

/// The `[orchestrator]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Where actions are `POST`ed.
    pub url: Option<Url>,
    /// HMAC key of requests Paver sends, and of callbacks unless
    /// `inbound_signing_secret` is set (a secret).
    pub signing_secret: Option<SecretString>,
    pub signing_secret_file: Option<PathBuf>,
    /// HMAC key of callbacks, when it differs from `signing_secret` (a secret).
    pub inbound_signing_secret: Option<SecretString>,
    pub inbound_signing_secret_file: Option<PathBuf>,
    /// Paver's own public base URL; when set, requests carry a
    /// `callback_url` under it.
    pub callback_base_url: Option<Url>,
    /// Time limit of one HTTP request, in seconds.
    pub timeout_secs: u64,
    /// How long one job may take before Paver gives up, in seconds.
    pub job_timeout_secs: u64,
    /// Pause between polls of a status URL (and callback checks), in ms.
    pub poll_interval_ms: u64,
    /// How old a signed timestamp may be, in seconds.
    pub signature_tolerance_secs: u64,
    /// Largest response body read from the orchestrator, in bytes.
    pub max_response_bytes: usize,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            url: None,
            signing_secret: None,
            signing_secret_file: None,
            inbound_signing_secret: None,
            inbound_signing_secret_file: None,
            callback_base_url: None,
            timeout_secs: 30,
            job_timeout_secs: 3600,
            poll_interval_ms: 5000,
            signature_tolerance_secs: 300,
            max_response_bytes: web::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl std::fmt::Debug for OrchestratorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorConfig")
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "set"),
            )
            .field(
                "inbound_signing_secret",
                &self.inbound_signing_secret.as_ref().map(|_| "set"),
            )
            .field(
                "callback_base_url",
                &self.callback_base_url.as_ref().map(Url::as_str),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("job_timeout_secs", &self.job_timeout_secs)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("signature_tolerance_secs", &self.signature_tolerance_secs)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl OrchestratorConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.timeout_secs == 0 || self.job_timeout_secs == 0 {
            out.push(
                "orchestrator.timeout_secs, orchestrator.job_timeout_secs: must be at least 1"
                    .into(),
            );
        }
        if self.poll_interval_ms < 100 {
            out.push("orchestrator.poll_interval_ms: must be at least 100".into());
        }
        if self.max_response_bytes < 1024 {
            out.push("orchestrator.max_response_bytes: must be at least 1024".into());
        }
        if !(1..=3600).contains(&self.signature_tolerance_secs) {
            out.push("orchestrator.signature_tolerance_secs: between 1 and 3600".into());
        }
        out
    }

    /// The key that verifies callbacks: the inbound one, else the shared one.
    pub fn inbound_secret(&self) -> Option<&SecretString> {
        self.inbound_signing_secret
            .as_ref()
            .or(self.signing_secret.as_ref())
    }
}

/// Why a callback's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackAuthError {
    #[error("no X-Paver-Timestamp header, or not Unix seconds")]
    NoTimestamp,
    #[error("the signature's timestamp is too old or in the future")]
    Stale,
    #[error("no v1= signature in X-Paver-Signature")]
    NoSignature,
    #[error("the signature does not match")]
    Mismatch,
}

fn callback_mac(secret: &str, timestamp: i64, method: &str, path: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v1:{timestamp}:{}:{path}:", method.to_ascii_uppercase()).as_bytes());
    mac.update(body);
    mac
}

/// The `X-Paver-Signature` of a callback: `v1=<hex HMAC-SHA256(secret,
/// "v1:<timestamp>:<METHOD>:<path>:<body>")>`, the timestamp going in
/// `X-Paver-Timestamp`. Binding the method and the path (the job) means a
/// callback signed for one job cannot be replayed against another.
pub fn sign_callback(
    secret: &str,
    timestamp: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    let mac = callback_mac(secret, timestamp, method, path, body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A callback as it arrived: what its signature is checked against.
#[derive(Debug, Clone, Copy)]
pub struct CallbackRequest<'a> {
    /// `X-Paver-Timestamp`.
    pub timestamp: &'a str,
    /// `X-Paver-Signature`.
    pub signature: &'a str,
    pub method: &'a str,
    pub body: &'a [u8],
}

/// Checks a callback's signature (one of the `v1=` values, comma-separated,
/// so a key can be rotated) for one of `paths`, in constant time, and that
/// its timestamp is within `tolerance_secs` of `now`. Returns the signature
/// that matched, in lowercase hex: the key of the replay cache.
pub fn verify_callback(
    secret: &str,
    req: &CallbackRequest<'_>,
    paths: &[&str],
    now: i64,
    tolerance_secs: u64,
) -> Result<String, CallbackAuthError> {
    let CallbackRequest {
        timestamp,
        signature,
        method,
        body,
    } = *req;
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| CallbackAuthError::NoTimestamp)?;
    if (now - t).unsigned_abs() > tolerance_secs {
        return Err(CallbackAuthError::Stale);
    }
    let sigs: Vec<Vec<u8>> = signature
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .filter_map(|v| hex::decode(v).ok())
        .collect();
    if sigs.is_empty() {
        return Err(CallbackAuthError::NoSignature);
    }
    for raw in &sigs {
        for path in paths {
            if callback_mac(secret, t, method, path, body)
                .verify_slice(raw)
                .is_ok()
            {
                return Ok(hex::encode(raw));
            }
        }
    }
    Err(CallbackAuthError::Mismatch)
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a signature header against the body, in constant time, and that
/// its timestamp is within `tolerance_secs` of `now`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), &'static str> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or("no timestamp in the signature")?;
    if (now - t).unsigned_abs() > tolerance_secs {
        return Err("the signature's timestamp is too old or in the future");
    }
    for s in sigs {
        let Ok(raw) = hex::decode(&s) else { continue };
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&raw).is_ok() {
            return Ok(());
        }
    }
    Err("the signature does not match")
}

/// A link in a status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusLink {
    pub label: String,
    pub url: String,
}

/// The status document of schema v1.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StatusDoc {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<StatusLink>,
    #[serde(default)]
    pub retryable: bool,
}

impl StatusDoc {
    fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }

    fn result(&self, job: &Job) -> Result<Outcome, DriverError> {
        match self.status.as_str() {
            "succeeded" => {
                Ok(Outcome {
                    summary: self.summary.as_deref().map(shorten).unwrap_or_else(|| {
                        format!("{} done by the orchestrator", job.action.kind())
                    }),
                    url: self.url.as_deref().and_then(plain_link),
                    links: self
                        .links
                        .iter()
                        .filter_map(|l| Some((shorten(&l.label), plain_link(&l.url)?)))
                        .collect(),
                })
            }
            _ => {
                let m = format!(
                    "the orchestrator failed: {}",
                    shorten(self.message.as_deref().unwrap_or("no message"))
                );
                Err(DriverError::Failed {
                    message: m,
                    retry: self.retryable,
                })
            }
        }
    }
}

/// A link from the orchestrator that is safe to post: an http(s) URL with
/// nothing in it that chat would read as markup. Others are left out.
fn plain_link(u: &str) -> Option<String> {
    let parsed = Url::parse(u).ok()?;
    let markup = u
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>|`\"".contains(c));
    (matches!(parsed.scheme(), "http" | "https") && !markup).then(|| u.to_owned())
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    submitted: bool,
    status_url: Option<String>,
}

pub struct OrchestratorDriver {
    config: OrchestratorConfig,
    url: Url,
    secret: SecretString,
    http: reqwest::Client,
    golden: GoldenPath,
}

impl OrchestratorDriver {
    pub fn new(
        config: OrchestratorConfig,
        url: Url,
        secret: SecretString,
    ) -> Result<Self, DriverError> {
        Ok(OrchestratorDriver {
            http: web::client(Duration::from_secs(config.timeout_secs.clamp(1, 30)))?,
            config,
            url,
            secret,
            golden: GoldenPath::default(),
        })
    }

    /// Sends `golden`'s sizes of the action's resources (`sizes` in the
    /// body): what the card showed.
    pub fn with_golden_path(mut self, golden: GoldenPath) -> Self {
        self.golden = golden;
        self
    }

    /// The JSON body of a job (schema v1).
    pub fn request_body(&self, job: &Job) -> Value {
        json!({
            "schema": SCHEMA,
            "job_id": job.job_id,
            "idempotency_key": job.idempotency_key,
            "request_id": job.request_id,
            "attempt": job.attempt,
            "action": job.action,
            "requested_by": job.requester,
            "approved_by": job.approver,
            "expires_at": job.expires_at,
            "sizes": self.sizes(&job.action),
            "callback_url": self.config.callback_base_url.as_ref()
                .filter(|_| !job.job_id.is_empty())
                .and_then(|b| web::endpoint(b, &["hooks", "orchestrator", &job.job_id]).ok())
                .map(String::from),
        })
    }

    /// The golden-path parameters of each resource the action adds.
    fn sizes(&self, action: &Action) -> BTreeMap<&'static str, BTreeMap<&'static str, String>> {
        match action {
            Action::CreateEnvironment { resources, .. } | Action::AddResource { resources, .. } => {
                resources
                    .iter()
                    .filter_map(|r| self.golden.size(*r).map(|s| (r.as_str(), s.params())))
                    .collect()
            }
            _ => BTreeMap::new(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    fn signed(
        &self,
        rb: reqwest::RequestBuilder,
        key: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let now = chrono::Utc::now().timestamp();
        rb.header(
            SIGNATURE_HEADER,
            sign(self.secret.expose_secret(), now, body),
        )
        .header(IDEMPOTENCY_HEADER, key)
        .timeout(self.timeout())
    }

    /// Reads a status document; `Location` counts as its `status_url`.
    async fn read(&self, resp: reqwest::Response) -> Result<StatusDoc, DriverError> {
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = web::text(SYSTEM, resp, self.config.max_response_bytes).await?;
        if !status.is_success() {
            let e = web::status_error(SYSTEM, status, &body);
            return Err(match (status.as_u16(), e) {
                // The orchestrator is still busy with this job's key.
                (409, e) => DriverError::Busy(e.to_string()),
                (_, e) => e,
            });
        }
        let mut doc: StatusDoc = if body.trim().is_empty() {
            StatusDoc {
                status: "accepted".into(),
                ..StatusDoc::default()
            }
        } else {
            serde_json::from_str(&body).map_err(|e| {
                DriverError::Malformed(format!(
                    "{SYSTEM} answered something that is not a status document ({e}): {}",
                    shorten(&body)
                ))
            })?
        };
        if doc.status_url.is_none() {
            doc.status_url = location;
        }
        Ok(doc)
    }

    async fn submit(&self, job: &Job) -> Result<StatusDoc, DriverError> {
        let body = serde_json::to_vec(&self.request_body(job)).expect("serializes");
        let rb = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let resp = self
            .signed(rb, &job.idempotency_key, &body)
            .body(body)
            .send()
            .await
            .map_err(|e| web::transport(SYSTEM, e))?;
        self.read(resp).await
    }

    /// Where a `status_url` points, if it is on the orchestrator's own
    /// origin: a status URL elsewhere would make Paver send signed
    /// requests wherever the answer says (an internal address, a metadata
    /// service), so it is refused, never fetched.
    pub fn status_target(&self, status_url: &str) -> Result<Url, DriverError> {
        let url = self.url.join(status_url).map_err(|e| {
            DriverError::Malformed(format!(
                "{SYSTEM} gave a bad status_url {:?}: {e}",
                shorten(status_url)
            ))
        })?;
        if url.origin() != self.url.origin() {
            return Err(DriverError::Refused(format!(
                "{SYSTEM} gave a status_url on another origin ({}); only {} is polled",
                shorten(&url.origin().ascii_serialization()),
                self.url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    async fn poll(&self, job: &Job, status_url: &str) -> Result<StatusDoc, DriverError> {
        let url = self.status_target(status_url)?;
        let resp = self
            .signed(self.http.get(url), &job.idempotency_key, b"")
            .send()
            .await
            .map_err(|e| web::transport(SYSTEM, e))?;
        self.read(resp).await
    }
}

#[async_trait]
impl Driver for OrchestratorDriver {
    fn name(&self) -> &'static str {
        "orchestrator"
    }

    /// The orchestrator de-duplicates by the idempotency key; a resumed run
    /// goes back to waiting for the job it submitted.
    fn resumable(&self) -> bool {
        true
    }

    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        let saved = job
            .state
            .checkpoint()
            .await?
            .and_then(|c| serde_json::from_str::<Checkpoint>(&c).ok())
            .filter(|c| c.submitted);
        let mut status_url = match saved {
            Some(c) => {
                progress("waiting for the orchestrator");
                c.status_url
            }
            None => {
                let doc = self.submit(job).await?;
                if doc.finished() {
                    return doc.result(job);
                }
                job.state
                    .save_checkpoint(
                        &serde_json::to_string(&Checkpoint {
                            submitted: true,
                            status_url: doc.status_url.clone(),
                        })
                        .expect("serializes"),
                    )
                    .await?;
                progress(
                    doc.message
                        .as_deref()
                        .unwrap_or("accepted by the orchestrator"),
                );
                doc.status_url
            }
        };
        let callbacks = self.config.callback_base_url.is_some() && !job.job_id.is_empty();
        if status_url.is_none() && !callbacks {
            return Err(DriverError::Config(
                "the orchestrator gave no status_url, and no orchestrator.callback_base_url is configured for it to call back".into(),
            ));
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.job_timeout_secs);
        let pause = Duration::from_millis(self.config.poll_interval_ms.max(100));
        let mut last_message: Option<String> = None;
        loop {
            let mut docs = Vec::new();
            if let Some(cb) = job.state.callback().await? {
                match serde_json::from_str::<StatusDoc>(&cb) {
                    Ok(d) => docs.push(d),
                    Err(e) => tracing::warn!(error = %e, "unreadable orchestrator callback"),
                }
            }
            if let Some(u) = status_url.clone() {
                docs.push(self.poll(job, &u).await?);
            }
            for d in docs {
                if d.finished() {
                    return d.result(job);
                }
                if d.status_url.is_some() && d.status_url != status_url {
                    status_url = d.status_url.clone();
                }
                if let Some(m) = d.message.filter(|m| last_message.as_ref() != Some(m)) {
                    progress(&shorten(&m));
                    last_message = Some(m);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::failed(format!(
                    "the orchestrator did not finish within {} s",
                    self.config.job_timeout_secs
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn status(
        &self,
        _service: &ServiceName,
        _environment: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        Ok(Vec::new())
    }
}

#[derive(Clone)]
struct CallbackState {
    db: Db,
    secret: Option<SecretString>,
    tolerance_secs: u64,
    /// The path prefix of `callback_base_url` (`/paver` behind a proxy
    /// that strips it), so a signature over the full path verifies too.
    prefix: String,
}

/// `POST /hooks/orchestrator/{job}`: an orchestrator reports on a job.
/// 202 stored · 200 the job is already over · 400 not a status document ·
/// 401 bad signature · 404 no such job · 409 a replay (this signature was
/// seen before) · 503 no signing secret configured, or no database.
pub fn callback_router(db: Db, config: &OrchestratorConfig) -> axum::Router {
    let prefix = config
        .callback_base_url
        .as_ref()
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    axum::Router::new()
        .route(&format!("{CALLBACK_PATH}/{{job}}"), post(callback))
        .with_state(CallbackState {
            db,
            secret: config.inbound_secret().cloned(),
            tolerance_secs: config.signature_tolerance_secs,
            prefix,
        })
}

async fn callback(
    State(s): State<CallbackState>,
    Path(job): Path<String>,
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let reply = |code: StatusCode, msg: &str| (code, axum::Json(json!({ "message": msg })));
    let Some(secret) = &s.secret else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "orchestrator callbacks are off: no orchestrator.signing_secret",
        );
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    // The path as it arrived, and as the orchestrator saw it in
    // `callback_url` when a proxy strips a prefix on the way.
    let path = uri.path().to_owned();
    let full = format!("{}{path}", s.prefix);
    let paths: Vec<&str> = if s.prefix.is_empty() {
        vec![&path]
    } else {
        vec![&path, &full]
    };
    let now = chrono::Utc::now().timestamp();
    let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
    let req = CallbackRequest {
        timestamp: &timestamp,
        signature: &signature,
        method: method.as_str(),
        body: &body,
    };
    let signature = match verify_callback(
        secret.expose_secret(),
        &req,
        &paths,
        now,
        s.tolerance_secs,
    ) {
        Ok(sig) => sig,
        Err(why) => {
            tracing::warn!(job = %shorten(&job), %why, "orchestrator callback refused: bad signature");
            return reply(StatusCode::UNAUTHORIZED, &why.to_string());
        }
    };
    let valid_id = job.len() <= 40 && job.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid_id {
        return reply(StatusCode::NOT_FOUND, "no such job");
    }
    let doc: StatusDoc = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("not a status document: {e}"),
            )
        }
    };
    if !matches!(
        doc.status.as_str(),
        "accepted" | "queued" | "running" | "succeeded" | "failed"
    ) {
        return reply(StatusCode::BAD_REQUEST, "unknown status");
    }
    // The signature is kept a little longer than it can be fresh (the
    // retention scheduler prunes it after); past that, its timestamp alone
    // refuses it.
    match s.db.callback_replay().first_use(&signature).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%job, "orchestrator callback refused: replayed signature");
            return reply(
                StatusCode::CONFLICT,
                "this callback was already received (replayed signature)",
            );
        }
        Err(e) => {
            tracing::error!(%job, error = %e, "checking an orchestrator callback for replay failed");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            );
        }
    }
    let text = serde_json::to_string(&doc).expect("serializes");
    match s.db.jobs().store_callback(&job, &text).await {
        Ok(CallbackStored::Stored) => reply(StatusCode::ACCEPTED, "stored"),
        Ok(CallbackStored::Finished) => reply(StatusCode::OK, "the job is already finished"),
        Ok(CallbackStored::Unknown) => reply(StatusCode::NOT_FOUND, "no such job"),
        Err(e) => {
            tracing::error!(%job, error = %e, "storing an orchestrator callback failed");
            // Not stored: the same delivery, retried, must get through.
            if let Err(e) = s.db.callback_replay().forget(&signature).await {
                tracing::warn!(%job, error = %e, "could not forget a callback signature");
            }
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire() {
        let h = sign("s3cr3t", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify("s3cr3t", &h, b"{\"a\":1}", 1_700_000_100, 300),
            Ok(())
        );
        assert!(verify("s3cr3t", &h, b"{\"a\":2}", 1_700_000_100, 300).is_err());
        assert!(verify("other", &h, b"{\"a\":1}", 1_700_000_100, 300).is_err());
        assert!(verify("s3cr3t", &h, b"{\"a\":1}", 1_700_001_000, 300).is_err());
        assert!(verify("s3cr3t", "v1=00", b"", 0, 300).is_err());
    }

    #[test]
    fn callback_signatures_bind_method_path_and_time() {
        let t = 1_700_000_000;
        let path = "/hooks/orchestrator/j-a";
        let sig = sign_callback("k", t, "POST", path, b"{}");
        assert!(sig.starts_with("v1="));
        let ok = |secret, ts: &str, sig: &str, method, p: &str, body: &[u8], now| {
            let req = CallbackRequest {
                timestamp: ts,
                signature: sig,
                method,
                body,
            };
            verify_callback(secret, &req, &[p], now, 300)
        };
        let ts = t.to_string();
        assert_eq!(
            ok("k", &ts, &sig, "POST", path, b"{}", t + 10),
            Ok(sig[3..].to_owned())
        );
        let mismatch = Err(CallbackAuthError::Mismatch);
        assert_eq!(ok("k", &ts, &sig, "PUT", path, b"{}", t), mismatch);
        assert_eq!(
            ok("k", &ts, &sig, "POST", "/hooks/orchestrator/j-b", b"{}", t),
            mismatch
        );
        assert_eq!(ok("k", &ts, &sig, "POST", path, b"{ }", t), mismatch);
        assert_eq!(ok("x", &ts, &sig, "POST", path, b"{}", t), mismatch);
        assert_eq!(
            ok("k", &(t + 1).to_string(), &sig, "POST", path, b"{}", t),
            mismatch
        );
        assert_eq!(
            ok("k", &ts, &sig, "POST", path, b"{}", t + 301),
            Err(CallbackAuthError::Stale)
        );
        assert_eq!(
            ok("k", &ts, &sig, "POST", path, b"{}", t - 301),
            Err(CallbackAuthError::Stale)
        );
        assert_eq!(
            ok("k", "", &sig, "POST", path, b"{}", t),
            Err(CallbackAuthError::NoTimestamp)
        );
        assert_eq!(
            ok("k", &ts, "t=1,v2=00", "POST", path, b"{}", t),
            Err(CallbackAuthError::NoSignature)
        );
        // A rotated key: either signature may match.
        let both = format!("{},{sig}", sign_callback("new", t, "POST", path, b"{}"));
        assert!(ok("k", &ts, &both, "POST", path, b"{}", t).is_ok());
    }
}
