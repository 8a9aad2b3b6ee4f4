//! Scorecards: each catalog service measured against the platform's
//! production standards (`docs/governance/scorecards.md`), its level
//! (Bronze, Silver, Gold), and its history.
//!
//! - [`checks`]: the docs' seven checks and the configured ones.
//! - [`config`]: the `scorecards` section of the config.
//!
//! A scorecard question ("scorecard for team-payments", "is cart-service
//! production ready?") is answered here; CI's results arrive through
//! `POST /hooks/checks` (the `hooks` edge) as [`PushedResult`]s; every
//! evaluation records a service's level and failing checks when they
//! changed, so a digest can say what changed since the last one.

pub mod checks;
pub mod config;
pub mod nags;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, Component, SharedCatalog};
use crate::chat::send::Sender;
use crate::chat::{scorecards as say, Message};
use crate::domain::scorecard::{CheckOutcome, ServiceScore};
use crate::domain::{ScorecardTarget, ServiceName, TeamName};
use crate::storage::scorecards::PushedResult;
use crate::storage::{now_ms, Db, StorageError};
use crate::util::scheduler::{Lease, Scheduler, Timing};

/// The scorecard refresh's lease name.
const REFRESH_LEASE: &str = "scorecard-refresh";

pub use config::ScorecardsConfig;

#[derive(Debug, thiserror::Error)]
pub enum ScorecardError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0} is not a service in the catalog")]
    UnknownService(String),
    #[error("{0} is not a check (built-in: {builtin})", builtin = checks::BUILTIN.join(", "))]
    UnknownCheck(String),
}

/// The scorecard flow's context. Cheap to clone.
#[derive(Clone)]
pub struct Scorecards {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    catalog: SharedCatalog,
    config: ScorecardsConfig,
    http: reqwest::Client,
    /// Digests, their edits and whispers about presses.
    send: Sender,
}

impl Scorecards {
    pub fn new(db: Db, catalog: SharedCatalog, config: ScorecardsConfig, send: Sender) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.http_timeout_secs.clamp(1, 60)))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Scorecards {
            inner: Arc::new(Inner {
                db,
                catalog,
                config,
                http,
                send,
            }),
        }
    }

    pub fn config(&self) -> &ScorecardsConfig {
        &self.inner.config
    }

    async fn score(&self, catalog: &Catalog, c: &Component) -> Result<ServiceScore, StorageError> {
        let pushed = self.inner.db.scorecards().pushed(&c.name).await?;
        let ctx = checks::Context {
            config: &self.inner.config,
            catalog,
            http: &self.inner.http,
            pushed: &pushed,
            now: now_ms(),
        };
        let mut outcomes: Vec<CheckOutcome> = checks::builtin(&ctx, c);
        let custom = self
            .inner
            .config
            .checks
            .iter()
            .map(|check| checks::custom(&ctx, check, c));
        outcomes.extend(futures_util::future::join_all(custom).await);
        let score = ServiceScore::new(c.name.clone(), c.owner.clone(), outcomes);
        let failing: Vec<String> = score.failing().iter().map(|c| c.name.clone()).collect();
        self.inner
            .db
            .scorecards()
            .record(&score.service, score.level, &failing)
            .await?;
        Ok(score)
    }

    /// One service's scorecard now (and recorded when it changed).
    pub async fn service(&self, name: &str) -> Result<ServiceScore, ScorecardError> {
        let catalog = self.inner.catalog.current();
        let c = catalog
            .component(name)
            .ok_or_else(|| ScorecardError::UnknownService(name.to_owned()))?;
        Ok(self.score(&catalog, c).await?)
    }

    /// The scorecards of every service `team` owns.
    pub async fn team(&self, team: &TeamName) -> Result<Vec<ServiceScore>, ScorecardError> {
        self.matching(|c| c.owner.as_ref() == Some(team)).await
    }

    /// Every service's scorecard.
    pub async fn all(&self) -> Result<Vec<ServiceScore>, ScorecardError> {
        self.matching(|_| true).await
    }

    async fn matching(
        &self,
        keep: impl Fn(&Component) -> bool,
    ) -> Result<Vec<ServiceScore>, ScorecardError> {
        let catalog = self.inner.catalog.current();
        let mut out = Vec::new();
        for c in catalog.components().filter(|c| keep(c)) {
            out.push(self.score(&catalog, c).await?);
        }
        Ok(out)
    }

    /// The answer to "scorecard for …": the level, the failing checks and
    /// how to fix each.
    pub async fn answer(&self, target: &ScorecardTarget) -> Message {
        let result = match target {
            ScorecardTarget::Service { service } => self
                .service(service.as_str())
                .await
                .map(|s| say::service(&s)),
            ScorecardTarget::Team { team } => {
                self.team(team).await.map(|scores| say::team(team, &scores))
            }
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "scorecard failed");
            crate::chat::messages::notice(match e {
                ScorecardError::Storage(_) => {
                    "The scorecard cannot be read right now; try again in a minute.".to_owned()
                }
                other => other.to_string(),
            })
        })
    }

    /// Scores every service every `every` (the first time after one
    /// period: a restart does not re-score everything at once), on the
    /// replica holding the `scorecard-refresh` lease (`holder`: this
    /// replica's id): one replica's scores serve all.
    pub fn spawn_refresh(&self, holder: &str, every: Duration) -> Scheduler {
        let lease = Lease::new(self.inner.db.clone(), REFRESH_LEASE, holder, every * 2);
        let me = self.clone();
        Scheduler::spawn(lease, Timing::every(every), move || {
            let me = me.clone();
            async move { me.all().await.map(drop) }
        })
    }

    /// A CI run on a repository's default branch: `ci-passing` for every
    /// component the repository holds. Returns how many it counted for.
    pub async fn record_ci(
        &self,
        repo: &str,
        passed: bool,
        detail: &str,
        source: &str,
    ) -> Result<usize, ScorecardError> {
        let catalog = self.inner.catalog.current();
        let services: Vec<ServiceName> = catalog
            .components_in_repo(repo)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        for service in &services {
            self.push(PushedResult {
                service: service.clone(),
                check: "ci-passing".into(),
                passed,
                detail: Some(detail.to_owned()),
                source: source.to_owned(),
                at: now_ms(),
            })
            .await?;
        }
        Ok(services.len())
    }

    /// A result CI (or another system) reports for a check only it knows.
    pub async fn push(&self, result: PushedResult) -> Result<(), ScorecardError> {
        let catalog = self.inner.catalog.current();
        if catalog.component(result.service.as_str()).is_none() {
            return Err(ScorecardError::UnknownService(result.service.to_string()));
        }
        let known = checks::BUILTIN.contains(&result.check.as_str())
            || self
                .inner
                .config
                .checks
                .iter()
                .any(|c| c.name == result.check);
        if !known {
            return Err(ScorecardError::UnknownCheck(result.check));
        }
        Ok(self.inner.db.scorecards().push(&result).await?)
    }
}

#[async_trait::async_trait]
impl crate::policy::Scores for Scorecards {
    async fn score(&self, service: &ServiceName) -> Option<ServiceScore> {
        match self.service(service.as_str()).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(%service, error = %e, "scorecard unreadable for policy");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scorecard::{Level, Verdict};

    async fn scorecards() -> (tempfile::TempDir, Scorecards) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        let catalog = SharedCatalog::new(
            Catalog::from_yaml_file(std::path::Path::new("../shared/fixtures/catalog.yaml"))
                .unwrap(),
        );
        let dispatcher = crate::chat::dispatcher::Dispatcher::new(
            db.clone(),
            Default::default(),
            crate::chat::dispatcher::Pace::none(),
        );
        let send = Sender::new(
            db.clone(),
            dispatcher,
            catalog.clone(),
            crate::domain::GoldenPath::default(),
        );
        let s = Scorecards::new(db, catalog, ScorecardsConfig::default(), send);
        (dir, s)
    }

    fn verdict<'a>(s: &'a ServiceScore, check: &str) -> &'a Verdict {
        &s.checks.iter().find(|c| c.name == check).unwrap().verdict
    }

    #[tokio::test]
    async fn the_sample_catalog_scores_as_the_docs_describe() {
        let (_dir, s) = scorecards().await;
        // legacy-reports has no owner: below Bronze, has-owner failing.
        let legacy = s.service("legacy-reports").await.unwrap();
        assert_eq!(legacy.level, None);
        assert!(matches!(verdict(&legacy, "has-owner"), Verdict::Fail(_)));
        // order-service: owner, docs, on-call; its postgres has no backups
        // configured; no CI result yet, so below Bronze.
        let order = s.service("order-service").await.unwrap();
        assert_eq!(verdict(&order, "has-owner"), &Verdict::Pass);
        assert_eq!(verdict(&order, "has-techdocs"), &Verdict::Pass);
        assert_eq!(verdict(&order, "has-oncall"), &Verdict::Pass);
        assert!(
            matches!(verdict(&order, "has-backups"), Verdict::Fail(w) if w.contains("orders-db"))
        );
        assert_eq!(order.level, None);
        // A service without a database: has-backups does not apply.
        let checkout = s.service("checkout-api").await.unwrap();
        assert_eq!(verdict(&checkout, "has-backups"), &Verdict::NotApplicable);
        // CI reports green: critical checks pass, Bronze (high ones fail:
        // no monitoring result).
        let push = |check: &str, passed| PushedResult {
            service: ServiceName::parse("checkout-api").unwrap(),
            check: check.into(),
            passed,
            detail: None,
            source: "hook".into(),
            at: now_ms(),
        };
        s.push(push("ci-passing", true)).await.unwrap();
        assert_eq!(
            s.service("checkout-api").await.unwrap().level,
            Some(Level::Bronze)
        );
        s.push(push("has-monitoring", true)).await.unwrap();
        let checkout = s.service("checkout-api").await.unwrap();
        assert_eq!(checkout.level, Some(Level::Silver));
        // Failing, most critical first.
        let names: Vec<&str> = checkout.failing().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["has-cost-tags"]);
        // History: each change recorded once.
        let latest = s
            .inner
            .db
            .scorecards()
            .latest(&checkout.service)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (latest.level, latest.failing.clone()),
            (Some(Level::Silver), vec!["has-cost-tags".to_owned()])
        );
        assert!(s.push(push("no-such-check", true)).await.is_err());
        let mut stranger = push("ci-passing", true);
        stranger.service = ServiceName::parse("ghost").unwrap();
        assert!(s.push(stranger).await.is_err());
    }
}
