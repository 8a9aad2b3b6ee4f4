//! Assembling a running Paver from its configuration: database, catalog,
//! driver, outbox dispatcher and engine. `paver chat` and `paver serve`
//! both start here, so they behave the same.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{BackstageClient, Catalog, CatalogError, CatalogSource, SharedCatalog};
use crate::chat::dispatcher::{Dispatcher, Pace};
use crate::chat::ChatSink;
use crate::config::Config;
use crate::domain::Platform;
use crate::drivers::argocd::ArgoCdDriver;
use crate::drivers::backstage::BackstageDriver;
use crate::drivers::gitops::GitOpsDriver;
use crate::drivers::http::OrchestratorDriver;
use crate::drivers::router::Router;
use crate::drivers::{Driver, DriverError, DriverKind};
use crate::engine::retention::Retention;
use crate::engine::{Engine, EngineError, EngineSettings};
use crate::nlu::llm::LlmError;
use crate::nlu::Understander;
use crate::storage::lock::{lock_database, ProcessLock};
use crate::storage::{Db, StorageError};
use crate::util::redact_url;
use crate::util::scheduler::Schedulers;

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
    #[error("handing back jobs at shutdown: {0}")]
    Shutdown(StorageError),
}

/// The LLM side of understanding, as `nlu.mode` and `[llm]` say: `None`
/// runs on the rules parser alone.
pub fn understander(config: &Config) -> Result<Option<Arc<Understander>>, AppError> {
    let u = Understander::from_config(&config.llm, config.nlu.mode)?;
    if let Some(u) = &u {
        tracing::info!(routing = ?u.routing(), "understanding with the LLM: {}", u.describe());
    }
    Ok(u.map(Arc::new))
}

/// How often every service is scored again (the docs: every 6 hours), so
/// the history a digest reads is fresh without anyone asking.
const SCORECARD_REFRESH: Duration = Duration::from_secs(6 * 3600);

/// How often the expiry sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// This process's id in the schedulers' leases: the host and pid say
/// which replica holds one, the random part keeps a restarted process
/// with a reused pid from taking over its predecessor's lease early.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "paver".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::storage::nags::new_token()
    )
}

/// A running Paver's parts.
#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub catalog: SharedCatalog,
    pub engine: Engine,
    pub dispatcher: Dispatcher,
    /// This replica's id in the schedulers' leases.
    pub holder: String,
    /// The leased schedulers it runs (sweeper, scorecard refresh, nags,
    /// office-hours agenda, retention), stopped at shutdown.
    pub schedulers: Schedulers,
    /// The SQLite database's process lock (`None` on PostgreSQL), held
    /// for as long as any clone of the app lives.
    pub process_lock: Option<Arc<ProcessLock>>,
    /// The connections `/readyz` reports (registered as they start).
    pub readiness: crate::util::readiness::Readiness,
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

/// The driver that carries out approved actions: a [`Router`] sending each
/// action to the driver `[drivers]` names for it (GitOps for everything by
/// default). Only the drivers in use are opened.
pub async fn driver(config: &Config, catalog: &SharedCatalog) -> Result<Arc<dyn Driver>, AppError> {
    let missing = |what: &str| AppError::Driver(DriverError::Config(what.to_owned()));
    let mut drivers: std::collections::BTreeMap<DriverKind, Arc<dyn Driver>> = Default::default();
    for kind in config.drivers.used() {
        let d: Arc<dyn Driver> = match kind {
            DriverKind::Gitops => {
                let d = GitOpsDriver::open(config.gitops.clone())
                    .await
                    .map_err(AppError::Driver)?
                    .with_golden_path(config.golden_path());
                if config.gitops.seed_from_catalog {
                    d.seed_from(&catalog.current())
                        .await
                        .map_err(AppError::Driver)?;
                }
                Arc::new(d)
            }
            DriverKind::Backstage => {
                let base = config
                    .backstage
                    .base_url
                    .clone()
                    .or_else(|| config.catalog.backstage_url.clone())
                    .ok_or_else(|| {
                        missing("backstage.base_url (or catalog.backstage_url) is not set")
                    })?;
                let token = config
                    .backstage
                    .token
                    .clone()
                    .or_else(|| config.catalog.backstage_token.clone());
                Arc::new(
                    BackstageDriver::new(config.backstage.clone(), base, token)
                        .map_err(AppError::Driver)?
                        .with_golden_path(config.golden_path()),
                )
            }
            DriverKind::Argocd => {
                let base = config
                    .argocd
                    .base_url
                    .clone()
                    .ok_or_else(|| missing("argocd.base_url is not set"))?;
                Arc::new(
                    ArgoCdDriver::new(config.argocd.clone(), base, Some(catalog.clone()))
                        .map_err(AppError::Driver)?,
                )
            }
            DriverKind::Orchestrator => {
                let url = config
                    .orchestrator
                    .url
                    .clone()
                    .ok_or_else(|| missing("orchestrator.url is not set"))?;
                let secret = config
                    .orchestrator
                    .signing_secret
                    .clone()
                    .ok_or_else(|| missing("orchestrator.signing_secret is not set"))?;
                Arc::new(
                    OrchestratorDriver::new(config.orchestrator.clone(), url, secret)
                        .map_err(AppError::Driver)?
                        .with_golden_path(config.golden_path()),
                )
            }
        };
        drivers.insert(kind, d);
    }
    Ok(Arc::new(
        Router::new(&config.drivers, &drivers).map_err(AppError::Driver)?,
    ))
}

/// The engine's settings from the configuration.
/// Each platform's pace per channel, from `slack.min_interval_ms` and
/// `discord.min_interval_ms`; the console is not paced.
pub fn pace(config: &Config) -> Pace {
    Pace::none()
        .every(
            Platform::Slack,
            Duration::from_millis(config.slack.min_interval_ms),
        )
        .every(
            Platform::Discord,
            Duration::from_millis(config.discord.min_interval_ms),
        )
}

pub fn engine_settings(config: &Config) -> EngineSettings {
    EngineSettings {
        attempts: config.executor.attempts.max(1),
        executor: config.executor.settings(),
        golden_path: config.golden_path(),
        prices: config.cost.clone(),
        approval_notices: config.approval_notices.clone(),
        scorecards: config.scorecards.clone(),
        docs: docs(config),
        office_hours: config.docs.office_hours.clone(),
        report: config.report_settings(),
        docs_llm: docs_llm(config),
        ..EngineSettings::default()
    }
}

/// The docs `[[docs.sources]]` name, indexed from what is on disk now; no
/// docs yet (questions get the "ask the platform team" reply) while a
/// source cannot be read. `None` when there are no sources.
pub fn docs(config: &Config) -> Option<crate::docs::LiveDocs> {
    if config.docs.sources.is_empty() {
        return None;
    }
    Some(crate::docs::LiveDocs::load(&config.docs))
}

/// The model that writes docs answers: `[llm]`'s, unless `[docs] llm =
/// false`; `None` (answers are quoted) without one or when it cannot be set up.
pub fn docs_llm(config: &Config) -> Option<Arc<crate::docs::answer::AnswerLlm>> {
    if config.docs.sources.is_empty() {
        return None;
    }
    match crate::docs::answer::AnswerLlm::from_config(&config.llm, &config.docs) {
        Ok(Some(llm)) => {
            tracing::info!("answering docs questions with the LLM: {}", llm.describe());
            Some(Arc::new(llm))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the LLM cannot write docs answers; they are quoted");
            None
        }
    }
}

impl App {
    /// Builds everything and starts the background work: the outbox
    /// dispatcher, recovery of interrupted requests, the docs watcher, and
    /// the leased schedulers (`Engine::spawn_schedulers`). On a SQLite
    /// file it first takes the file's process lock: a second Paver on
    /// the same file fails here.
    pub async fn start(
        config: &Config,
        catalog_path: Option<&Path>,
        sinks: HashMap<String, Arc<dyn ChatSink>>,
    ) -> Result<App, AppError> {
        // First, before anything opens or writes: a second process on the
        // same SQLite file stops here, naming it.
        let process_lock = lock_database(&config.database.url)
            .map_err(|error| AppError::Database {
                url: redact_url(&config.database.url),
                error,
            })?
            .map(Arc::new);
        let catalog = load_catalog(config, catalog_path).await?;
        let db = Db::connect(&config.database.url)
            .await
            .map_err(|error| AppError::Database {
                url: redact_url(&config.database.url),
                error,
            })?;
        let driver = driver(config, &catalog).await?;
        let understander = understander(config)?;
        let dispatcher = Dispatcher::new(db.clone(), sinks, pace(config));
        dispatcher.spawn();
        let engine = Engine::new(
            db.clone(),
            catalog.clone(),
            config.policy.clone(),
            driver,
            dispatcher.clone(),
            EngineSettings {
                understander,
                ..engine_settings(config)
            },
        );
        engine.start_workers();
        engine.recover().await?;
        // Git sources are cloned or pulled at once, then every source is
        // checked every `docs.refresh_secs`.
        if let Some(docs) = engine.docs() {
            docs.spawn_watcher(config.docs.refresh_every());
        }
        // Every replica runs every scheduler; each scheduler's lease makes
        // one replica at a time do its work (and the nag digests' and
        // agendas' records make each period's go out once even so).
        let holder = holder_id();
        let retention = Retention::new(
            db.clone(),
            config.retention.clone(),
            config.replay_keep_ms(),
            holder.clone(),
        );
        let schedulers =
            engine.spawn_schedulers(&holder, SWEEP_EVERY, SCORECARD_REFRESH, &retention);
        Ok(App {
            db,
            catalog,
            engine,
            dispatcher,
            holder,
            schedulers,
            process_lock,
            readiness: crate::util::readiness::Readiness::default(),
        })
    }
}

impl App {
    /// Graceful stop after the HTTP server stopped accepting: acknowledged
    /// events still being handled get until `grace`, running jobs too; what
    /// is still running then is handed back (its lease ended now) so another
    /// replica or the next start resumes it. Messages already queued stay in
    /// the outbox for whoever delivers next.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), AppError> {
        let deadline = tokio::time::Instant::now() + grace;
        // No scheduled work while stopping; the leases go to other replicas.
        let _ = tokio::time::timeout(grace, self.schedulers.stop()).await;
        // No pull starts while stopping; one running is killed.
        if let Some(docs) = self.engine.docs() {
            docs.stop();
        }
        while self.engine.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.engine
            .executor()
            .drain(left)
            .await
            .map_err(AppError::Shutdown)?;
        // A moment for the dispatcher to send what the last work queued.
        let _ = tokio::time::timeout(left.min(Duration::from_secs(2)), async {
            while let Ok(n) = self.dispatcher.run_once().await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }
}
