//! The HTTP server (`paver serve`): chat platform endpoints, health,
//! metrics.
//!
//! Each chat platform contributes its sending side (a [`ChatSink`] for the
//! outbox) and its routes, and is on exactly when its config is present.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::App;
use crate::chat::ChatSink;
use crate::config::Config;
use crate::storage::{now_ms, JobStatus};
use crate::util::metrics;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("slack: {0}")]
    Slack(#[from] crate::slack::api::SlackSetupError),
    #[error(transparent)]
    Discord(#[from] crate::discord::SetupError),
}

/// The sending side of every configured platform, keyed by platform name.
pub fn sinks(config: &Config) -> Result<HashMap<String, Arc<dyn ChatSink>>, ServerError> {
    let mut sinks: HashMap<String, Arc<dyn ChatSink>> = HashMap::new();
    if let Some(api) = crate::slack::api(config)? {
        sinks.insert(crate::chat::Platform::Slack.as_str().into(), api);
    }
    if let Some(discord) = crate::discord::sink(config)? {
        sinks.insert("discord".into(), discord);
    }
    Ok(sinks)
}

/// All routes of a running Paver.
pub fn router(app: &App, config: &Config) -> Result<Router, ServerError> {
    let mut router = Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready));
    if let Some(handle) = metrics_handle(config) {
        router = router.route(
            "/metrics",
            get(move |State(app): State<App>| scrape(app, handle.clone())),
        );
    }
    let mut router = router
        .with_state(app.clone())
        .merge(crate::drivers::http::callback_router(
            app.db.clone(),
            &config.orchestrator,
        ));
    router = router.merge(crate::hooks::router(
        app.db.clone(),
        notifications(app, config),
        app.engine.scorecards().clone(),
        &config.hooks,
    ));
    if config.slack.signing_secret.is_some() {
        if let Some(api) = crate::slack::api(config)? {
            router = router.merge(crate::slack::routes(crate::slack::state(app, config, api)));
        }
    }
    if let Some(discord) = crate::discord::routes(app, config)? {
        router = router.merge(discord);
    }
    Ok(router)
}

/// The Prometheus recorder, installed the first time it is asked for (once
/// per process); `None` with `[metrics] enabled = false`, or when another
/// recorder was installed first (then `/metrics` is not served).
pub fn metrics_handle(config: &Config) -> Option<PrometheusHandle> {
    if !config.metrics.enabled {
        return None;
    }
    match metrics::install() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "no /metrics");
            None
        }
    }
}

/// `GET /metrics`: what was recorded, with the queue gauges read from the
/// database now. A database that does not answer leaves them as they were
/// (`/readyz` says why) and the rest is still served.
async fn scrape(app: App, handle: PrometheusHandle) -> impl IntoResponse {
    let outbox = app.db.outbox().backlog().await;
    let jobs = app.db.jobs().backlog().await;
    // The report's gauges: rebuilt only when older than
    // report.metrics_refresh_secs, so most scrapes read nothing for them.
    if let Err(e) = app.engine.report().refresh_gauges().await {
        tracing::warn!(error = %e, "metrics: the report's gauges not refreshed");
    }
    let now = now_ms();
    let age = |oldest: Option<i64>| oldest.map_or(0, |t| now - t);
    let body = metrics::render(&handle, || {
        match &outbox {
            Ok(rows) => {
                // Every platform Paver sends to is set, so one that emptied
                // shows 0 rather than the depth of its last backlog.
                let mut platforms = app.dispatcher.platforms();
                for r in rows {
                    if !platforms.contains(&r.of) {
                        platforms.push(r.of);
                    }
                }
                for p in platforms {
                    let row = rows.iter().find(|r| r.of == p);
                    metrics::outbox_backlog(
                        p.as_str(),
                        row.map_or(0, |r| r.depth),
                        age(row.and_then(|r| r.oldest_at)),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: outbox backlog not read"),
        }
        match &jobs {
            Ok(rows) => {
                for state in [JobStatus::Queued, JobStatus::Running] {
                    let row = rows.iter().find(|r| r.of == state);
                    metrics::jobs_backlog(
                        state.as_str(),
                        row.map_or(0, |r| r.depth),
                        age(row.and_then(|r| r.oldest_at)),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: job backlog not read"),
        }
    });
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
}

/// The deploy notification flow, on the app's outbox and catalog.
pub fn notifications(app: &App, config: &Config) -> crate::notify::Notifications {
    crate::notify::Notifications::new(
        app.db.clone(),
        app.catalog.clone(),
        app.engine.sender().clone(),
        config.notify.clone(),
        config.argocd.clone(),
        app.dispatcher.platforms(),
    )
}

/// Long-lived outbound connections: Slack Socket Mode when an app token is set.
pub fn start_connections(
    app: &App,
    config: &Config,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServerError> {
    let mut tasks = Vec::new();
    if let (Some(app_token), Some(api)) =
        (config.slack.app_token.clone(), crate::slack::api(config)?)
    {
        let state = crate::slack::state(app, config, api);
        let ready = app.readiness.component("slack_socket");
        tasks.push(tokio::spawn(crate::slack::socket::run(
            state, app_token, ready,
        )));
    }
    Ok(tasks)
}

/// Ready to take traffic: the database answers, the catalog has components,
/// and every chat connection this replica started (Slack Socket Mode,
/// Discord's gateway) is up. 503 names what is not.
async fn ready(State(app): State<App>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let mut checks = serde_json::Map::new();
    let database = match app.db.ping().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            false
        }
    };
    checks.insert("database".into(), database.into());
    checks.insert(
        "catalog".into(),
        app.catalog.current().components().next().is_some().into(),
    );
    for (name, up) in app.readiness.snapshot() {
        checks.insert(name.into(), up.into());
    }
    let ready = checks.values().all(|v| v == &serde_json::Value::Bool(true));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "checks": checks})),
    )
}

/// Healthy when the database answers.
async fn health(State(app): State<App>) -> (StatusCode, &'static str) {
    match app.db.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}
