//! Deploy notifications: Paver speaks first when a deploy lands or fails.
//!
//! The hooks (`crate::hooks`: GitHub, Argo CD, the generic hook) verify
//! and parse a delivery into a [`Delivery`]; this flow takes it from there:
//!
//! 1. a redelivery is recognised and dropped;
//! 2. the delivery is matched to one catalog service and environment
//!    ([`resolve`]); an unknown one is told to the platform team, once a
//!    day per name;
//! 3. the Paver request it carries out is found (the id it names, else a
//!    request for the same service and environment that ran recently, of
//!    the same version when both name one);
//! 4. events for one service and environment within a window share one
//!    notice, posted once to each place it belongs ([`route`]) and edited
//!    in place after that; the request's card gains a line saying how the
//!    deploy went.
//!
//! Everything said goes through the outbox (`chat::send`), so a chat
//! outage loses nothing and the channel's pace holds.

pub mod config;
pub mod delivery;
pub mod resolve;
pub mod route;

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::SharedCatalog;
use crate::chat::deploys;
use crate::chat::send::Sender;
use crate::domain::{DeployNotice, DeployStep, Environment, Platform};
use crate::drivers::argocd::ArgoCdConfig;
use crate::storage::deploys::{DeployEventRow, NoticeCard};
use crate::storage::{now_ms, Db, Request, StorageError};
use crate::util::metrics;

pub use config::{ChannelRef, NotifyConfig, TeamRule};
pub use delivery::{Delivery, Source, Subject};
use resolve::{Resolver, Target, Unresolved};

/// What became of a delivery (the hook answers by it; tests read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Told: the notice it went into, and whether it was new.
    Told { notice: String, new: bool },
    /// Seen before (a redelivery): nothing done.
    Duplicate,
    /// Recorded; no one wants to hear about it (a rule or a mute).
    Quiet,
    /// No catalog service goes by this name.
    UnknownService(String),
    /// An environment Paver does not know (`github-pages`): recorded nowhere.
    UnknownEnvironment(String),
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Replicas kept editing the same notice: the delivery was not taken,
    /// so its sender should try again.
    #[error("the notice for {0} kept changing under us; try again")]
    Contended(String),
}

/// The notification flow's context. Cheap to clone.
#[derive(Clone)]
pub struct Notifications {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    catalog: SharedCatalog,
    send: Sender,
    config: NotifyConfig,
    resolver: Resolver,
    /// Platforms with a sender: notices go only where they can be sent.
    platforms: Vec<Platform>,
    /// One deploy's events are taken one at a time in this process, so
    /// edits race only with other replicas' (the revision check settles
    /// those), not with each other.
    turns: std::sync::Mutex<HashMap<(String, Environment), Turn>>,
}

/// A deploy's turn: held while one of its events is taken.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// Attempts at editing a notice other replicas are editing too.
const EDIT_ATTEMPTS: usize = 16;

impl Notifications {
    pub fn new(
        db: Db,
        catalog: SharedCatalog,
        send: Sender,
        config: NotifyConfig,
        argocd: ArgoCdConfig,
        platforms: Vec<Platform>,
    ) -> Self {
        Notifications {
            inner: Arc::new(Inner {
                db,
                catalog,
                send,
                config,
                resolver: Resolver::new(argocd),
                platforms,
                turns: Default::default(),
            }),
        }
    }

    /// Whether any chat platform is configured to tell people on.
    pub fn can_tell(&self) -> bool {
        !self.inner.platforms.is_empty()
    }

    /// Handles one delivery.
    pub async fn handle(&self, delivery: Delivery) -> Result<Outcome, NotifyError> {
        let db = &self.inner.db;
        let source = delivery.source.as_str();
        let dedupe_space = format!("hook:{source}");
        if !db.first_delivery(&dedupe_space, &delivery.id).await? {
            tracing::info!(source, delivery = %delivery.id, "deploy hook redelivered; ignored");
            metrics::notification_received(source);
            metrics::notification_dropped(source, "duplicate");
            return Ok(Outcome::Duplicate);
        }
        match self.handle_new(&delivery).await {
            // Counted once taken: one that failed is retried by its sender
            // and counted then.
            Ok(outcome) => {
                metrics::notification_received(source);
                match &outcome {
                    Outcome::Told { new: true, .. } => {}
                    Outcome::Told { new: false, .. } => metrics::notification_coalesced(source),
                    Outcome::Duplicate => metrics::notification_dropped(source, "duplicate"),
                    Outcome::Quiet => metrics::notification_dropped(source, "quiet"),
                    Outcome::UnknownService(_) => {
                        metrics::notification_dropped(source, "unknown_service")
                    }
                    Outcome::UnknownEnvironment(_) => {
                        metrics::notification_dropped(source, "unknown_environment")
                    }
                }
                Ok(outcome)
            }
            Err(e) => {
                // Not handled: forget it was seen, so the sender's retry is.
                if let Err(forget) = db.forget_delivery(&dedupe_space, &delivery.id).await {
                    tracing::error!(error = %forget, "could not forget a failed delivery; its retry will be dropped");
                }
                Err(e)
            }
        }
    }

    async fn handle_new(&self, d: &Delivery) -> Result<Outcome, NotifyError> {
        let catalog = self.inner.catalog.current();
        let target = match self.inner.resolver.resolve(&catalog, &d.subject) {
            Ok(t) => t,
            Err(Unresolved::Service { name, candidates }) => {
                self.tell_platform_team(d, &name, &candidates).await?;
                return Ok(Outcome::UnknownService(name));
            }
            Err(Unresolved::Environment {
                service,
                environment,
            }) => {
                tracing::info!(%service, environment = %crate::util::text::shorten(&environment), "deploy to an environment Paver does not know; ignored");
                return Ok(Outcome::UnknownEnvironment(environment));
            }
        };
        let turn = self.turn(&target);
        let _turn = turn.lock().await;
        let request = self.request_of(d, &target).await?;
        let mut outcome = Outcome::Quiet;
        let mut notice_id = None;
        if let Some((id, new)) = self.tell(d, &target, request.as_ref()).await? {
            notice_id = Some(id.clone());
            outcome = Outcome::Told { notice: id, new };
        }
        self.inner
            .db
            .deploys()
            .record_event(&DeployEventRow {
                source: d.source.as_str().into(),
                delivery: d.id.clone(),
                service: target.service.clone(),
                environment: target.environment,
                version: d.version.clone(),
                status: d.status,
                notice_id,
                at: now_ms(),
                commit: d.commit.clone(),
                commit_at: d.commit_at,
            })
            .await?;
        Ok(outcome)
    }

    fn turn(&self, target: &Target) -> Turn {
        let mut turns = self.inner.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns
            .entry((target.service.to_string(), target.environment))
            .or_default()
            .clone()
    }

    /// The Paver request this deploy carries out, if any: the one the
    /// delivery names (when it is for this service and environment), else
    /// the latest one for them that ran within the window and, when both
    /// name a version, of that version.
    async fn request_of(
        &self,
        d: &Delivery,
        target: &Target,
    ) -> Result<Option<Request>, StorageError> {
        let requests = self.inner.db.requests();
        let matches = |r: &Request| {
            r.action.service() == Some(&target.service)
                && r.action.environment() == Some(target.environment)
        };
        if let Some(id) = &d.request_id {
            if let Some(r) = requests.find(id).await? {
                if matches(&r) {
                    return Ok(Some(r));
                }
                tracing::warn!(request = %id, service = %target.service, "a deploy hook names a request for another service or environment; not threaded under it");
            }
        }
        let since = now_ms() - self.inner.config.request_window().as_millis() as i64;
        let candidates = requests
            .running_or_done_since(target.service.as_str(), target.environment.as_str(), since)
            .await?;
        Ok(candidates.into_iter().find(|r| {
            matches(r)
                && match (r.action.version(), &d.version) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        }))
    }

    /// Opens or edits the notice for the target; `None` when nobody is to
    /// be told. Returns the notice id and whether it is new.
    async fn tell(
        &self,
        d: &Delivery,
        target: &Target,
        request: Option<&Request>,
    ) -> Result<Option<(String, bool)>, NotifyError> {
        let store = self.inner.db.deploys();
        let catalog = self.inner.catalog.current();
        let wanted = route::destinations(
            &self.inner.config,
            &catalog,
            target,
            d.status,
            request,
            &self.inner.platforms,
        );
        let step = DeployStep {
            status: d.status,
            version: d.version.clone(),
            at: now_ms(),
        };
        let window = self.inner.config.coalesce_window().as_millis() as i64;
        for attempt in 0..EDIT_ATTEMPTS {
            if attempt > 0 {
                // Another replica edited it: let it finish before reading again.
                let pause = rand::random::<u64>() % (5 * attempt as u64) + 1;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            match store
                .open_notice(&target.service, target.environment)
                .await?
            {
                Some(open) if now_ms() - open.opened_at > window => {
                    // The window is over: the next event starts a new notice.
                    store.close(&open.id, open.rev).await?;
                }
                Some(open) => {
                    let notice = merged(&open.notice, d, step.clone(), request);
                    let cards = store.cards(&open.id).await?;
                    let added = route::missing(&wanted, &cards, &open.id);
                    if cards.is_empty() && added.is_empty() {
                        // Nobody was told of this deploy and nobody wants
                        // this event either: keep it quiet, but on record.
                        if store.update(&open.id, open.rev, &notice).await? {
                            return Ok(None);
                        }
                        continue;
                    }
                    if !store.update(&open.id, open.rev, &notice).await? {
                        continue;
                    }
                    store.add_cards(&open.id, &added).await?;
                    self.show(&open.id, open.rev + 1, &notice, &cards, &added, d)
                        .await?;
                    return Ok(Some((open.id, false)));
                }
                None => {
                    let id = format!("d-{}", crate::storage::deploys::new_id());
                    let notice = merged(&empty(target), d, step.clone(), request);
                    let cards = route::missing(&wanted, &[], &id);
                    if !store.open(&id, &notice, &cards).await? {
                        continue;
                    }
                    if cards.is_empty() {
                        return Ok(None);
                    }
                    self.show(&id, 0, &notice, &[], &cards, d).await?;
                    return Ok(Some((id, true)));
                }
            }
        }
        Err(NotifyError::Contended(format!(
            "{} {}",
            target.service, target.environment
        )))
    }

    /// Puts the notice where it belongs: edits where it was posted, posts
    /// where it is new, and the request's card line. Then, if another
    /// replica edited the notice meanwhile, sends what is stored now, so
    /// the last edit to reach the outbox is the newest (whoever enqueued
    /// last read the newest).
    async fn show(
        &self,
        id: &str,
        rev: i64,
        notice: &DeployNotice,
        posted: &[NoticeCard],
        new: &[NoticeCard],
        d: &Delivery,
    ) -> Result<(), StorageError> {
        let send = &self.inner.send;
        let source = d.source.title();
        let message = deploys::notice(notice, source);
        for c in posted {
            send.update_keyed(c.platform, &c.channel, &c.card_key, &message)
                .await?;
        }
        for c in new {
            send.post_keyed(
                c.platform,
                &c.channel,
                &c.card_key,
                c.thread_key.as_deref(),
                &message,
            )
            .await?;
        }
        self.update_request_card(notice).await?;
        let mut seen = rev;
        for _ in 0..EDIT_ATTEMPTS {
            let Some(now) = self.inner.db.deploys().notice(id).await? else {
                break;
            };
            if now.rev == seen {
                break;
            }
            seen = now.rev;
            let latest = deploys::notice(&now.notice, source);
            for c in self.inner.db.deploys().cards(id).await? {
                send.update_keyed(c.platform, &c.channel, &c.card_key, &latest)
                    .await?;
            }
            self.update_request_card(&now.notice).await?;
        }
        Ok(())
    }

    async fn update_request_card(&self, notice: &DeployNotice) -> Result<(), StorageError> {
        let Some(id) = &notice.request else {
            return Ok(());
        };
        if let Some(req) = self.inner.db.requests().find(id).await? {
            self.inner
                .send
                .update_card(&req, Some(&deploys::request_line(notice)))
                .await?;
        }
        Ok(())
    }

    /// Tells the platform channels about an unknown service, once a day
    /// per name (across replicas: the day's key is recorded first).
    async fn tell_platform_team(
        &self,
        d: &Delivery,
        name: &str,
        candidates: &[String],
    ) -> Result<(), StorageError> {
        tracing::warn!(source = d.source.as_str(), name = %crate::util::text::shorten(name), "deploy of a service not in the catalog");
        let channels: Vec<&ChannelRef> = self
            .inner
            .config
            .platform_channels
            .iter()
            .filter(|c| self.inner.platforms.contains(&c.platform))
            .collect();
        if channels.is_empty() {
            return Ok(());
        }
        let day = chrono::Utc::now().format("%Y-%m-%d");
        let key = format!("{}:{}:{day}", d.source.as_str(), name.to_ascii_lowercase());
        if !self
            .inner
            .db
            .first_delivery("hook:unknown-service", &key)
            .await?
        {
            return Ok(());
        }
        let message = deploys::unknown_service(d.source.title(), name, candidates);
        for c in channels {
            self.inner
                .send
                .post_to(c.platform, &c.channel, &message)
                .await?;
        }
        Ok(())
    }
}

fn empty(target: &Target) -> DeployNotice {
    DeployNotice {
        service: target.service.clone(),
        environment: target.environment,
        steps: Vec::new(),
        url: None,
        link: None,
        message: None,
        commit: None,
        request: None,
    }
}

/// The notice with the delivery's step added (a repeat of the latest step
/// is not added twice) and what the delivery knows newer than the notice.
fn merged(
    notice: &DeployNotice,
    d: &Delivery,
    step: DeployStep,
    request: Option<&Request>,
) -> DeployNotice {
    let mut n = notice.clone();
    let repeat = n.latest().is_some_and(|l| {
        l.status == step.status && (step.version.is_none() || l.version == step.version)
    });
    if !repeat {
        n.steps.push(step);
    }
    // A new version's deploy starts over: the old one's URL, message and
    // commit no longer describe it.
    if d.version.is_some() && d.version.as_ref() != notice.version() {
        n.message = None;
        n.commit = None;
    }
    n.url = d.url.clone().or(n.url);
    n.link = d.link.clone().or(n.link);
    n.message = d.message.clone().or(n.message);
    n.commit = d.commit.clone().or(n.commit);
    if let Some(r) = request {
        n.request = Some(r.id.clone());
    }
    n
}
