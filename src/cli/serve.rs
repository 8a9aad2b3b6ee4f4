//! `paver serve`: the HTTP server for the chat platforms.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use paver::app::App;
use paver::config::Config;
use paver::server;

/// `catalog` (`--catalog`) overrides the configured catalog.
pub fn run(config: &Config, catalog: Option<&Path>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let sinks = server::sinks(config)?;
        if sinks.is_empty() {
            tracing::warn!(
                "no chat platform is configured (slack.*, discord.*): serving health checks only"
            );
        }
        let app = App::start(config, catalog, sinks).await?;
        let router = server::router(&app, config)?;
        let _connections = server::start_connections(&app, config)?;
        // Discord's gateway (messages, and interactions without an endpoint URL).
        paver::discord::gateway::spawn(&app, config).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        tracing::info!(listen = %config.server.listen, "paver serving");
        eprintln!("paver listening on http://{}", listener.local_addr()?);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown())
            .await
            .context("serving HTTP")?;
        // No longer accepting: finish or hand back what is in flight.
        let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
        tracing::info!(grace_secs = grace.as_secs(), "shutting down");
        app.shutdown(grace).await.context("shutting down")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
