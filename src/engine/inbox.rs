//! Inbound chat events, handled durably: an adapter stores the event in the
//! inbox (`storage::inbox`) and only then acknowledges it; the work runs
//! from the stored row, within the engine's `max_in_flight` bound, and the
//! row is marked done once the engine has handled it. A crash (or a failed
//! handling) leaves the row pending: recovery takes it again when its lease
//! has run out, on this replica or another.
//!
//! The inbox row is also the deduplication: a redelivered event finds its
//! row and is acknowledged without being handled again.

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::domain::Platform;

use super::{Engine, EngineError, Overloaded};
use crate::storage::{InboxRow, StorageError};

#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// How long a worker holds an event before another may take it; the
    /// worker renews it while the engine is still busy with the event, so
    /// only a dead worker's events are taken again.
    pub lease: Duration,
    /// How often recovery looks for events left behind.
    pub every: Duration,
    /// Handlings of one event before Paver gives up on it (and logs it).
    /// (Handled events are kept `retention.dedupe_days`, so redeliveries
    /// are still recognised: `engine::retention` prunes them.)
    pub max_attempts: i64,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            lease: Duration::from_secs(10),
            every: Duration::from_secs(5),
            max_attempts: 5,
        }
    }
}

impl InboxSettings {
    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }
}

/// The event is safe in the inbox: acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored, and being handled.
    Stored,
    /// Stored before (a redelivery): nothing more to do.
    Duplicate,
    /// Stored while Paver was saturated: recovery handles it when there is room.
    Deferred,
}

/// The event is not stored: do not acknowledge it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Busy(#[from] Overloaded),
    #[error("the event could not be stored: {0}")]
    Unavailable(#[from] StorageError),
}

/// An adapter's side of the inbox: its platform, and how it handles one
/// stored event.
#[async_trait]
pub trait InboxHandler: Clone + Send + Sync + 'static {
    /// What the adapter stores for an event (JSON in the inbox row).
    type Work: Serialize + DeserializeOwned + Send + 'static;

    fn platform(&self) -> Platform;

    fn engine(&self) -> &Engine;

    fn inbox_settings(&self) -> &InboxSettings;

    /// Handles one event. An error leaves it pending for another try.
    async fn handle(&self, work: Self::Work) -> Result<(), EngineError>;
}

fn payload<W: Serialize>(work: &W) -> String {
    serde_json::to_string(work).expect("inbox work serializes")
}

/// Stores an event, then starts its handling. Refuses (so the platform
/// redelivers) when Paver is saturated or the event cannot be stored.
pub async fn accept<H: InboxHandler>(
    h: &H,
    event_id: &str,
    work: &H::Work,
) -> Result<Accepted, Refused> {
    // A slot first: when Paver is saturated nothing is stored, and the
    // platform is asked to deliver again later.
    let (tx, rx) = oneshot::channel::<InboxRow>();
    let me = h.clone();
    h.engine().track(async move {
        // Dropped sender: a duplicate, or storing failed; the slot is freed.
        if let Ok(row) = rx.await {
            run(&me, row).await;
        }
        Ok(())
    })?;
    let platform = h.platform();
    let lease = h.inbox_settings().lease_ms();
    match h
        .engine()
        .db()
        .inbox()
        .insert(platform, event_id, &payload(work), lease)
        .await
    {
        Ok(Some(row)) => {
            let _ = tx.send(row);
            Ok(Accepted::Stored)
        }
        Ok(None) => {
            tracing::debug!(
                platform = platform.as_str(),
                event_id,
                "redelivered event acknowledged again"
            );
            Ok(Accepted::Duplicate)
        }
        Err(e) => {
            tracing::warn!(platform = platform.as_str(), event_id, error = %e, "could not store an inbound event; not acknowledging it");
            Err(Refused::Unavailable(e))
        }
    }
}

/// Like [`accept`], for events the platform cannot redeliver (gateway
/// messages): when Paver is saturated the event is stored anyway, for
/// recovery to handle once there is room.
pub async fn accept_or_defer<H: InboxHandler>(
    h: &H,
    event_id: &str,
    work: &H::Work,
) -> Result<Accepted, Refused> {
    match accept(h, event_id, work).await {
        Err(Refused::Busy(_)) => {
            let platform = h.platform();
            let stored = h
                .engine()
                .db()
                .inbox()
                .insert(platform, event_id, &payload(work), 0)
                .await?;
            Ok(match stored {
                Some(_) => Accepted::Deferred,
                None => Accepted::Duplicate,
            })
        }
        other => other,
    }
}

/// Handles one stored event, keeping its lease while the engine works.
async fn run<H: InboxHandler>(h: &H, row: InboxRow) {
    let db = h.engine().db().clone();
    let inbox = db.inbox();
    let settings = h.inbox_settings().clone();
    let work: H::Work = match serde_json::from_str(&row.payload) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(inbox = row.id, event_id = %row.event_id, error = %e, "unreadable inbox event; giving up on it");
            if let Err(e) = inbox.mark_failed(row.id, &format!("unreadable: {e}")).await {
                tracing::warn!(inbox = row.id, error = %e, "could not record an inbox failure");
            }
            return;
        }
    };
    // Keyed by the event: a handling taken again after a crash finds what
    // the first one stored and queued (`util::origin`).
    let origin = format!("{}:{}", row.platform.as_str(), row.event_id);
    let handling = crate::util::origin::within(origin, row.attempts > 1, h.handle(work));
    tokio::pin!(handling);
    let mut renew = tokio::time::interval((settings.lease / 3).max(Duration::from_millis(10)));
    renew.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut handling => break r,
            _ = renew.tick() => {
                if let Err(e) = inbox.renew(row.id, settings.lease_ms()).await {
                    tracing::warn!(inbox = row.id, error = %e, "could not renew an inbox lease");
                }
            }
        }
    };
    let recorded = match result {
        // Should this fail, the event is handled again after its lease:
        // at least once, never lost.
        Ok(()) => inbox.mark_done(row.id).await,
        Err(e) if row.attempts >= settings.max_attempts => {
            tracing::error!(inbox = row.id, event_id = %row.event_id, attempts = row.attempts, error = %e, "giving up on an inbound event");
            inbox.mark_failed(row.id, &e.to_string()).await
        }
        Err(e) => {
            tracing::warn!(inbox = row.id, event_id = %row.event_id, attempt = row.attempts, error = %e, "handling an inbound event failed; it will be tried again");
            inbox.failed_attempt(row.id, &e.to_string()).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(inbox = row.id, error = %e, "could not record the outcome of an inbound event");
    }
}

/// Takes the platform's pending events whose lease ran out (left by a
/// crash, a failed handling, or stored while Paver was saturated) and
/// starts them, as far as `max_in_flight` allows. Returns how many started.
pub async fn recover_once<H: InboxHandler>(h: &H) -> Result<usize, StorageError> {
    let settings = h.inbox_settings().clone();
    let db = h.engine().db().clone();
    let inbox = db.inbox();
    let rows = inbox
        .claim_stale(h.platform(), 50, settings.lease_ms())
        .await?;
    let mut started = 0;
    let mut rows = rows.into_iter();
    while let Some(row) = rows.next() {
        if row.attempts > settings.max_attempts {
            tracing::error!(inbox = row.id, event_id = %row.event_id, "an inbound event kept failing; giving up on it");
            inbox
                .mark_failed(row.id, "gave up after repeated attempts")
                .await?;
            continue;
        }
        let (id, me) = (row.id, h.clone());
        let tracked = h.engine().track(async move {
            run(&me, row).await;
            Ok(())
        });
        if tracked.is_err() {
            // Saturated: give this one and the rest back for the next round.
            inbox.release(id).await?;
            for rest in rows {
                inbox.release(rest.id).await?;
            }
            break;
        }
        started += 1;
    }
    if started > 0 {
        tracing::info!(
            platform = h.platform().as_str(),
            started,
            "handling inbound events left pending"
        );
    }
    Ok(started)
}

/// Recovery at start, then every `every`. (Handled events are forgotten
/// by the retention scheduler, under its lease, after
/// `retention.dedupe_days`.)
pub fn spawn_recovery<H: InboxHandler>(h: H) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = recover_once(&h).await {
                tracing::warn!(platform = h.platform().as_str(), error = %e, "inbox recovery failed");
            }
            tokio::time::sleep(h.inbox_settings().every).await;
        }
    })
}
