//! Delivers outbox rows to the chat adapters, in order, with retries, at
//! each channel's pace.
//!
//! The pace lives in the database (`storage::pace`), not in this process:
//! before each send the dispatcher reserves the channel's slot there, and
//! a 429 holds the channel there, so replicas sharing a database together
//! keep every channel to its pace instead of each keeping it alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{ChatSink, Message, SendError, Upload};
use crate::domain::Platform;
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::{now_ms, Db, OutboxRow, Slot, StorageError};
use crate::util::metrics;

/// Rows claimed at once, and all sent side by side: a claim takes one row
/// per channel (`claim_due`), so each goes to a different channel, and a
/// round lasts as long as its slowest send (the round's holds and marks are
/// group-committed together, `storage::batch`).
const PER_ROUND: usize = 64;

/// Attempts before a message is given up on (and logged).
const MAX_ATTEMPTS: i64 = 8;

/// The longest a send may take before it counts as failed (and is tried
/// again): well within the row's hold while it is sent
/// (`storage::outbox::SEND_HOLD_MS`), so no other replica sends it meanwhile.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest nap between two looks at the outbox (rows queued by another
/// replica, or retries, are found within this).
const TICK_MS: i64 = 250;

/// How far apart two sends to one channel must start, per platform. Every
/// send counts (posts, updates, ephemerals): Slack's limit of about one a
/// second per channel is for posts, but one rule for all is the safe side.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    intervals: HashMap<Platform, Duration>,
}

impl Pace {
    /// No pacing: sends go out as fast as they come; a 429 still holds the
    /// channel for every replica.
    pub fn none() -> Self {
        Pace::default()
    }

    /// Sends to one channel of `platform` start at least `interval` apart.
    pub fn every(mut self, platform: Platform, interval: Duration) -> Self {
        self.intervals.insert(platform, interval);
        self
    }

    fn interval_ms(&self, platform: Platform) -> i64 {
        self.intervals
            .get(&platform)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
    }
}

/// A send slot: reserved at `at` (Unix ms) in a channel paced `interval` apart.
#[derive(Clone, Copy)]
struct Granted {
    at: i64,
    interval: i64,
}

/// Counts what became of a row (`outcome` of [`metrics::chat_message`]);
/// a deploy notice's post or edit counts as a notification too, once it is
/// sent or given up.
fn counted(item: &OutboxItem, outcome: &'static str) {
    let platform = item.platform.as_str();
    metrics::chat_message(platform, outcome);
    if matches!(outcome, "sent" | "failed")
        && item
            .card_key
            .as_deref()
            .is_some_and(super::deploys::is_notice_key)
    {
        metrics::notification_delivered(platform, outcome);
    }
}

/// The sink call a row makes; an update carries the card's message ref.
enum Call {
    Post,
    Update(String),
    Ephemeral,
    Upload(Upload),
}

#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    sinks: Arc<HashMap<String, Arc<dyn ChatSink>>>,
    pace: Arc<Pace>,
    wake: Arc<Notify>,
    /// Told after each round that handled rows, for whoever waits for
    /// the outbox to empty.
    sent: Arc<Notify>,
    /// The soonest time (Unix ms) a channel this process paced or held
    /// opens again, so the loop naps until then rather than a whole tick.
    soonest: Arc<AtomicI64>,
}

impl Dispatcher {
    pub fn new(db: Db, sinks: HashMap<String, Arc<dyn ChatSink>>, pace: Pace) -> Self {
        Dispatcher {
            db,
            sinks: Arc::new(sinks),
            pace: Arc::new(pace),
            wake: Arc::new(Notify::new()),
            sent: Arc::new(Notify::new()),
            soonest: Arc::new(AtomicI64::new(i64::MAX)),
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
                let soonest = me.soonest.swap(i64::MAX, Ordering::Relaxed);
                let nap = (soonest.saturating_sub(now_ms())).clamp(0, TICK_MS);
                if nap > 0 {
                    let nap = Duration::from_millis(nap as u64);
                    let _ = tokio::time::timeout(nap, me.wake.notified()).await;
                }
            }
        })
    }

    /// Sends what is due; returns how many rows it handled. The rows of
    /// one claim are each the oldest pending row of its channel
    /// (`claim_due`), so they are in different channels, with no order
    /// promised between them: they go out side by side, and one slow
    /// channel does not hold up the rest.
    pub async fn run_once(&self) -> Result<usize, StorageError> {
        use futures_util::StreamExt;
        let platforms: Vec<String> = self.sinks.keys().cloned().collect();
        let rows = self
            .db
            .outbox()
            .claim_due(&platforms, PER_ROUND as i64)
            .await?;
        let n = rows.len();
        let mut delivered = futures_util::stream::iter(rows)
            .map(|row| self.deliver(row))
            .buffer_unordered(PER_ROUND);
        let mut failed = None;
        while let Some(r) = delivered.next().await {
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        if n > 0 {
            self.sent.notify_waiters();
        }
        failed.map_or(Ok(n), Err)
    }

    /// Told (`notify_waiters`) after each round that handled rows.
    pub fn sent(&self) -> Arc<Notify> {
        self.sent.clone()
    }

    async fn deliver(&self, row: OutboxRow) -> Result<(), StorageError> {
        let outbox = self.db.outbox();
        let item = &row.item;
        let Some(sink) = self.sinks.get(item.platform.as_str()) else {
            return outbox.defer(row.id, 1_000).await;
        };
        // An upload's body is the file; every other row's, a message.
        let parsed = if item.kind == OutboxKind::Upload {
            serde_json::from_str::<Upload>(&item.body).map(|u| (Message::default(), Some(u)))
        } else {
            serde_json::from_str::<Message>(&item.body).map(|m| (m, None))
        };
        let (message, upload) = match parsed {
            Ok(p) => p,
            Err(e) => {
                counted(item, "failed");
                return outbox.mark_failed(row.id, &format!("bad body: {e}")).await;
            }
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
        // What to call is settled (the card looked up) before the channel's
        // slot is reserved, so the slot is taken right before the send.
        let call = match item.kind {
            OutboxKind::Post => Ok(Call::Post),
            OutboxKind::Upload => match upload {
                Some(u) => Ok(Call::Upload(u)),
                None => Err(SendError::Permanent("an upload without its file".into())),
            },
            OutboxKind::Ephemeral => Ok(Call::Ephemeral),
            OutboxKind::Update => {
                let key = item.card_key.as_deref().unwrap_or_default();
                if outbox.superseded(row.id, key).await? {
                    counted(item, "superseded");
                    return outbox.mark_superseded(row.id).await;
                }
                match outbox.card_ref(key).await? {
                    Some(r) => Ok(Call::Update(r)),
                    None if row.attempts < MAX_ATTEMPTS => {
                        return outbox.retry_later(row.id, "card not posted yet", 200).await
                    }
                    None => Err(SendError::Permanent(format!("card {key} was never posted"))),
                }
            }
        };
        let result = match call {
            Err(e) => Err(e),
            Ok(call) => {
                // Still ours? (The claim may have run out while earlier rows
                // of the batch were sent, and another replica taken it.) A
                // claim with a send's hold still left is ours for the send.
                let now = now_ms();
                if !crate::storage::outbox::covers_send(row.claim, now)
                    && !outbox.hold_for_send(row.id, row.claim, now).await?
                {
                    tracing::info!(
                        outbox = row.id,
                        "another dispatcher took this message over; it sends it"
                    );
                    return Ok(());
                }
                let Some(slot) = self.take_slot(&row).await? else {
                    return Ok(());
                };
                let started = now_ms();
                let send = async {
                    match call {
                        Call::Update(r) => {
                            sink.update(&item.channel, &r, &message).await.map(|_| None)
                        }
                        Call::Ephemeral => sink
                            .ephemeral(
                                &item.channel,
                                item.user_id.as_deref().unwrap_or_default(),
                                thread.as_deref(),
                                &message,
                            )
                            .await
                            .map(|_| None),
                        Call::Post => sink
                            .post(&item.channel, thread.as_deref(), &message)
                            .await
                            .map(Some),
                        Call::Upload(file) => sink
                            .upload(&item.channel, thread.as_deref(), &file)
                            .await
                            .map(|_| None),
                    }
                };
                let sent = tokio::time::timeout(SEND_TIMEOUT, send)
                    .await
                    .unwrap_or_else(|_| {
                        Err(SendError::Transient(format!(
                            "no answer within {} s",
                            SEND_TIMEOUT.as_secs()
                        )))
                    });
                self.paced_from(&row, slot, started).await;
                sent
            }
        };
        match result {
            Ok(sent_ref) => {
                counted(item, "sent");
                metrics::chat_send_delay(item.platform.as_str(), now_ms() - row.created_at);
                match (sent_ref, &item.card_key) {
                    (Some(r), Some(key)) if item.kind == OutboxKind::Post => {
                        outbox
                            .mark_card_sent(row.id, key, item.platform, &item.channel, &r)
                            .await
                    }
                    _ => outbox.mark_sent(row.id).await,
                }
            }
            Err(SendError::RateLimited(wait)) => {
                // Held in the database, so no replica sends to the channel
                // before the platform said it may; the row waits as long.
                let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4);
                let until = now_ms().saturating_add(wait_ms);
                counted(item, "rate_limited");
                metrics::chat_rate_limit_wait(item.platform.as_str(), wait_ms);
                tracing::info!(outbox = row.id, channel = %item.channel, ?wait, "rate limited; holding the channel");
                self.db
                    .pace()
                    .hold(item.platform, &item.channel, until)
                    .await?;
                self.wake_by(until);
                outbox.defer_until(row.id, until).await
            }
            Err(SendError::Transient(e)) if row.attempts + 1 < MAX_ATTEMPTS => {
                // 0.5 s, 1 s, 2 s, … capped at a minute.
                let delay = (500i64 << row.attempts.min(7)).min(60_000);
                tracing::warn!(outbox = row.id, error = %e, "send failed; will retry");
                counted(item, "retried");
                outbox.retry_later(row.id, &e, delay).await
            }
            Err(e) => {
                tracing::error!(outbox = row.id, error = %e, "giving up on a message");
                counted(item, "failed");
                outbox.mark_failed(row.id, &e.to_string()).await
            }
        }
    }

    /// Reserves the row's channel for a send now. `None` when the
    /// channel's pace (or a 429) says to wait: the row is then deferred
    /// until the channel opens; being its channel's oldest pending row, it
    /// keeps the rows behind it waiting too, so none overtakes it.
    async fn take_slot(&self, row: &OutboxRow) -> Result<Option<Granted>, StorageError> {
        let item = &row.item;
        let interval = self.pace.interval_ms(item.platform);
        let now = now_ms();
        if interval == 0 {
            // Unpaced: claim_due already skipped the channel if it is held.
            return Ok(Some(Granted { at: now, interval }));
        }
        match self
            .db
            .pace()
            .reserve(item.platform, &item.channel, now, interval)
            .await?
        {
            Slot::Granted => {
                self.wake_by(now + interval);
                Ok(Some(Granted { at: now, interval }))
            }
            Slot::Wait { until } => {
                self.wake_by(until);
                self.db.outbox().defer_until(row.id, until).await?;
                Ok(None)
            }
        }
    }

    /// The pace counts from when a send really started. The slot was
    /// granted for the time read before the reservation; a slow database
    /// (SQLite's busy wait) or a busy process can start the send later, and
    /// the next send, granted at slot + interval, would then follow it too
    /// closely. So the channel's next slot moves to start + interval (never
    /// earlier). Its channel's next row is claimed only after this one is
    /// marked sent, so this lands before anyone reserves again. A failure
    /// here is only logged: the message is out, and must be marked sent.
    async fn paced_from(&self, row: &OutboxRow, slot: Granted, started: i64) {
        if slot.interval == 0 || started <= slot.at {
            return;
        }
        let item = &row.item;
        let next = started + slot.interval;
        match self
            .db
            .pace()
            .hold(item.platform, &item.channel, next)
            .await
        {
            Ok(()) => self.wake_by(next),
            Err(e) => {
                tracing::warn!(outbox = row.id, error = %e, "could not move the channel's pace")
            }
        }
    }

    fn wake_by(&self, at: i64) {
        self.soonest.fetch_min(at, Ordering::Relaxed);
    }
}
