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
        // Recording starts before the app does, so what recovery does at
        // start is counted too; the router serves the same recorder.
        let _ = server::metrics_handle(config);
        let app = App::start(config, catalog, sinks).await?;
        let router = server::router(&app, config)?;
        let _connections = server::start_connections(&app, config)?;
        // Discord's gateway (messages, and interactions without an endpoint URL).
        paver::discord::gateway::spawn(&app, config).map_err(anyhow::Error::msg)?;
        // The handlers are installed before Paver says it is listening: a
        // SIGTERM that comes right after (a fast rollout) must stop it
        // gracefully, not kill it with the default action.
        let stop = shutdown().context("installing the signal handlers")?;
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        tracing::info!(listen = %config.server.listen, "paver serving");
        eprintln!("paver listening on http://{}", listener.local_addr()?);
        // Once start-up has settled (the chat connections are up, the docs
        // read), the code only it ran goes back to the kernel.
        tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            match paver::util::memory::give_back_startup_code() {
                Ok(bytes) => tracing::debug!(bytes, "start-up code given back"),
                Err(e) => tracing::debug!(error = %e, "start-up code not given back"),
            }
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
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

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is
/// called, not when the future is first polled.
fn shutdown() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
