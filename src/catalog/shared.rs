//! The catalog in use, swapped atomically when a refresh brings a new one.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{BackstageClient, Catalog, CatalogError};

/// Where the catalog comes from.
#[derive(Clone)]
pub enum CatalogSource {
    File(PathBuf),
    Backstage(BackstageClient),
}

impl CatalogSource {
    pub async fn load(&self) -> Result<Catalog, CatalogError> {
        match self {
            CatalogSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Catalog::from_yaml_file(&path))
                    .await
                    .expect("catalog file reader panicked")
            }
            CatalogSource::Backstage(client) => Ok(Catalog::from_values(client.fetch_all().await?)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CatalogSource::File(p) => format!("file {}", p.display()),
            CatalogSource::Backstage(c) => format!("Backstage at {}", c.base_url()),
        }
    }
}

/// A cheaply clonable handle on the current catalog. Readers take an
/// `Arc<Catalog>` snapshot and never see a half-built catalog.
#[derive(Clone)]
pub struct SharedCatalog {
    current: Arc<RwLock<Arc<Catalog>>>,
}

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> Self {
        SharedCatalog {
            current: Arc::new(RwLock::new(Arc::new(catalog))),
        }
    }

    pub fn current(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, catalog: Catalog) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
    }

    /// Reloads from `source` every `interval`. A failed refresh keeps the
    /// last good catalog and logs why; so does an empty answer, since a
    /// backend that suddenly knows no services is more likely broken than
    /// the organisation gone.
    pub fn spawn_refresh(
        &self,
        source: CatalogSource,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let shared = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match source.load().await {
                    Ok(c) if c.is_empty() && !shared.current().is_empty() => {
                        tracing::warn!(source = %source.describe(), "catalog refresh returned no entities; keeping the previous catalog");
                    }
                    Ok(c) => {
                        tracing::debug!(source = %source.describe(), components = c.components().count(), "catalog refreshed");
                        shared.replace(c);
                    }
                    Err(e) => {
                        tracing::warn!(source = %source.describe(), error = %e, "catalog refresh failed; keeping the previous catalog");
                    }
                }
            }
        })
    }
}
