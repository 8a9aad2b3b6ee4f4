//! The HTTP server (`paver serve`): chat platform endpoints, health.
//!
//! Each chat platform contributes its sending side (a [`ChatSink`] for the
//! outbox) and its routes, and is on exactly when its config is present.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::app::App;
use crate::chat::ChatSink;
use crate::config::Config;

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
        .route("/readyz", get(ready))
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
