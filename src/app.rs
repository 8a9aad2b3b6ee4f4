//! Assembling a running Paver from its configuration: database, catalog,
//! driver, outbox dispatcher and engine. `paver chat` and `paver serve`
//! both start here, so they behave the same.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{BackstageClient, Catalog, CatalogError, CatalogSource, SharedCatalog};
use crate::chat::dispatcher::Dispatcher;
use crate::chat::ChatSink;
use crate::config::{redact_url, Config};
use crate::drivers::gitops::GitOpsDriver;
use crate::drivers::{Driver, DriverError};
use crate::nlu::llm::LlmError;
use crate::nlu::Understander;
use crate::requests::{Engine, EngineError, EngineSettings};
use crate::storage::{Db, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("loading the catalog from {source_name}: {error}")]
    Catalog {
        source_name: String,
        error: CatalogError,
    },
    #[error("opening the database {url}: {error}")]
    Database { url: String, error: StorageError },
    #[error("opening the driver: {0}")]
    Driver(DriverError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("setting up the LLM: {0}")]
    Llm(#[from] LlmError),
}

/// The LLM side of understanding, as `nlu.mode` and `[llm]` say: `None`
/// runs on the rules parser alone.
pub fn understander(config: &Config) -> Result<Option<Arc<Understander>>, AppError> {
    let u = Understander::from_config(config, config.nlu.mode)?;
    if let Some(u) = &u {
        tracing::info!(routing = ?u.routing(), "understanding with the LLM: {}", u.describe());
    }
    Ok(u.map(Arc::new))
}

/// A running Paver's parts.
#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub catalog: SharedCatalog,
    pub engine: Engine,
    pub dispatcher: Dispatcher,
}

/// `explicit` (`--catalog`) wins; then `catalog.file`; then a Backstage backend.
pub fn catalog_source(config: &Config, explicit: Option<&Path>) -> Option<CatalogSource> {
    if let Some(p) = explicit.or(config.catalog.file.as_deref()) {
        return Some(CatalogSource::File(p.to_path_buf()));
    }
    config.catalog.backstage_url.as_ref().map(|url| {
        CatalogSource::Backstage(BackstageClient::new(
            url.clone(),
            config.catalog.backstage_token.clone(),
            Duration::from_secs(config.catalog.timeout_secs),
        ))
    })
}

/// Loads the catalog once and keeps it fresh (unless it was given explicitly).
pub async fn load_catalog(
    config: &Config,
    explicit: Option<&Path>,
) -> Result<SharedCatalog, AppError> {
    let source = catalog_source(config, explicit);
    let catalog = match &source {
        Some(s) => s.load().await.map_err(|error| AppError::Catalog {
            source_name: s.describe(),
            error,
        })?,
        None => {
            tracing::warn!("no catalog configured (catalog.file, catalog.backstage_url or --catalog): every service will be unknown");
            Catalog::default()
        }
    };
    let shared = SharedCatalog::new(catalog);
    if let (Some(source), None) = (source, explicit) {
        shared.spawn_refresh(
            source,
            Duration::from_secs(config.catalog.refresh_secs.max(1)),
        );
    }
    Ok(shared)
}

/// The driver that carries out approved actions.
pub async fn driver(config: &Config) -> Result<Arc<dyn Driver>, AppError> {
    let gitops = GitOpsDriver::open(config.gitops.clone())
        .await
        .map_err(AppError::Driver)?;
    Ok(Arc::new(gitops))
}

impl App {
    /// Builds everything and starts the background work: the outbox
    /// dispatcher, recovery of interrupted requests, the expiry sweeper.
    pub async fn start(
        config: &Config,
        catalog_path: Option<&Path>,
        sinks: HashMap<String, Arc<dyn ChatSink>>,
    ) -> Result<App, AppError> {
        let catalog = load_catalog(config, catalog_path).await?;
        let db = Db::connect(&config.database.url)
            .await
            .map_err(|error| AppError::Database {
                url: redact_url(&config.database.url),
                error,
            })?;
        let driver = driver(config).await?;
        let understander = understander(config)?;
        let dispatcher = Dispatcher::new(db.clone(), sinks);
        dispatcher.spawn();
        let engine = Engine::new(
            db.clone(),
            catalog.clone(),
            config.policy.clone(),
            driver,
            dispatcher.clone(),
            EngineSettings {
                understander,
                ..EngineSettings::default()
            },
        );
        engine.recover().await?;
        engine.spawn_sweeper(Duration::from_secs(30));
        Ok(App {
            db,
            catalog,
            engine,
            dispatcher,
        })
    }
}
