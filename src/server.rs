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
    #[error("{0}")]
    Platform(String),
}

/// The sending side of every configured platform, keyed by platform name.
pub fn sinks(config: &Config) -> Result<HashMap<String, Arc<dyn ChatSink>>, ServerError> {
    let sinks: HashMap<String, Arc<dyn ChatSink>> = HashMap::new();
    let _ = config;
    Ok(sinks)
}

/// All routes of a running Paver.
pub fn router(app: &App, config: &Config) -> Result<Router, ServerError> {
    let router = Router::new()
        .route("/healthz", get(health))
        .with_state(app.clone())
        .merge(crate::drivers::http::callback_router(
            app.db.clone(),
            &config.orchestrator,
        ));
    let _ = config;
    Ok(router)
}

/// Healthy when the database answers.
async fn health(State(app): State<App>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(app.db.pool()).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}
