//! Delivers outbox rows to the chat adapters, in order, with retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{ChatSink, Message, SendError};
use crate::storage::outbox::OutboxKind;
use crate::storage::{Db, OutboxRow, StorageError};

/// Attempts before a message is given up on (and logged).
const MAX_ATTEMPTS: i64 = 8;

#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    sinks: Arc<HashMap<String, Arc<dyn ChatSink>>>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(db: Db, sinks: HashMap<String, Arc<dyn ChatSink>>) -> Self {
        Dispatcher {
            db,
            sinks: Arc::new(sinks),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The platforms it can send to.
    pub fn platforms(&self) -> Vec<crate::domain::Platform> {
        self.sinks
            .keys()
            .filter_map(|k| crate::domain::Platform::parse(k))
            .collect()
    }

    /// Call after enqueueing, so delivery starts at once instead of at the next tick.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.run_once().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox dispatch failed"),
                }
                let _ = tokio::time::timeout(Duration::from_millis(250), me.wake.notified()).await;
            }
        })
    }

    /// Sends what is due; returns how many rows it handled.
    pub async fn run_once(&self) -> Result<usize, StorageError> {
        let platforms: Vec<String> = self.sinks.keys().cloned().collect();
        let rows = self.db.outbox().claim_due(&platforms, 50).await?;
        let n = rows.len();
        for row in rows {
            self.deliver(row).await?;
        }
        Ok(n)
    }

    async fn deliver(&self, row: OutboxRow) -> Result<(), StorageError> {
        let outbox = self.db.outbox();
        let item = &row.item;
        let Some(sink) = self.sinks.get(item.platform.as_str()) else {
            return outbox.defer(row.id, 1_000).await;
        };
        let message: Message = match serde_json::from_str(&item.body) {
            Ok(m) => m,
            Err(e) => return outbox.mark_failed(row.id, &format!("bad body: {e}")).await,
        };
        let thread = match (&item.thread_ref, &item.thread_key) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(key)) => match outbox.card_ref(key).await? {
                Some(r) => Some(r),
                // The card it belongs under is not out yet: wait for it.
                None if row.attempts < MAX_ATTEMPTS => {
                    return outbox
                        .retry_later(row.id, "waiting for its card", 200)
                        .await
                }
                None => None,
            },
            (None, None) => None,
        };
        let result = match item.kind {
            OutboxKind::Post => sink
                .post(&item.channel, thread.as_deref(), &message)
                .await
                .map(Some),
            OutboxKind::Update => {
                let key = item.card_key.as_deref().unwrap_or_default();
                if outbox.superseded(row.id, key).await? {
                    return outbox.mark_superseded(row.id).await;
                }
                match outbox.card_ref(key).await? {
                    Some(r) => sink.update(&item.channel, &r, &message).await.map(|_| None),
                    None if row.attempts < MAX_ATTEMPTS => {
                        return outbox.retry_later(row.id, "card not posted yet", 200).await
                    }
                    None => Err(SendError::Permanent(format!("card {key} was never posted"))),
                }
            }
            OutboxKind::Ephemeral => sink
                .ephemeral(
                    &item.channel,
                    item.user_id.as_deref().unwrap_or_default(),
                    thread.as_deref(),
                    &message,
                )
                .await
                .map(|_| None),
        };
        match result {
            Ok(sent_ref) => {
                if let (Some(r), Some(key)) = (sent_ref, &item.card_key) {
                    if item.kind == OutboxKind::Post {
                        outbox
                            .save_card(key, item.platform, &item.channel, &r)
                            .await?;
                    }
                }
                outbox.mark_sent(row.id).await
            }
            Err(SendError::RateLimited(wait)) => {
                outbox.defer(row.id, wait.as_millis() as i64).await
            }
            Err(SendError::Transient(e)) if row.attempts + 1 < MAX_ATTEMPTS => {
                // 0.5 s, 1 s, 2 s, … capped at a minute.
                let delay = (500i64 << row.attempts.min(7)).min(60_000);
                tracing::warn!(outbox = row.id, error = %e, "send failed; will retry");
                outbox.retry_later(row.id, &e, delay).await
            }
            Err(e) => {
                tracing::error!(outbox = row.id, error = %e, "giving up on a message");
                outbox.mark_failed(row.id, &e.to_string()).await
            }
        }
    }
}
