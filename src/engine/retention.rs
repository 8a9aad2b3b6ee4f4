//! The retention scheduler: every `retention.interval_secs`, the replica
//! holding the `retention` lease (a row of `nag_lease`, like the nag and
//! agenda schedulers') prunes what `[retention]` says is old enough
//! (`storage::retention`), logs what went per table, and lets the lease go
//! when it stops. A failed run is a warning; the next interval tries again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::storage::retention::{Cutoffs, Pruned, BATCH};
use crate::storage::{now_ms, Db, StorageError};

/// The lease's name in `nag_lease`.
pub const LEASE: &str = "retention";

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The longest age accepted (a hundred years), so a cutoff never overflows.
const MAX_DAYS: u32 = 36_500;

/// `[retention]`: how long rows that only serve deduplication or delivery
/// are kept, in days; 0 keeps them forever. The audit log (requests,
/// their events and approvals), deploy events, questions and scorecard
/// history are never pruned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the lease holder prunes.
    pub interval_secs: u64,
    /// Handled inbox events and `processed_events` (chat events and deploy
    /// hooks already seen). A redelivery within this many days of the
    /// event is still recognised and dropped; Slack retries within the
    /// hour, Discord does not retry, GitHub keeps deliveries to redeliver
    /// by hand for a few days.
    pub dedupe_days: u32,
    /// Outbox rows delivered, given up on or superseded (pending rows are
    /// never pruned).
    pub outbox_days: u32,
    /// Finished jobs superseded by a later Retry of the same request (the
    /// latest job of each request is kept: its generation numbers the next).
    pub jobs_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval_secs: 3600,
            dedupe_days: 7,
            outbox_days: 14,
            jobs_days: 30,
        }
    }
}

impl RetentionConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(60..=86_400).contains(&self.interval_secs) {
            out.push(
                "retention.interval_secs: between 60 and 86400 (a minute to a day)".to_owned(),
            );
        }
        for (key, days) in [
            ("dedupe_days", self.dedupe_days),
            ("outbox_days", self.outbox_days),
            ("jobs_days", self.jobs_days),
        ] {
            if days > MAX_DAYS {
                out.push(format!(
                    "retention.{key}: at most {MAX_DAYS} (0 keeps rows forever)"
                ));
            }
        }
        out
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }

    /// The cutoffs at `now` (Unix ms); `replay_keep_ms`: how long a
    /// callback signature must be remembered (the longest tolerance).
    pub fn cutoffs(&self, now: i64, replay_keep_ms: i64) -> Cutoffs {
        let before = |days: u32| (days > 0).then(|| now - i64::from(days.min(MAX_DAYS)) * DAY_MS);
        Cutoffs {
            dedupe: before(self.dedupe_days),
            outbox: before(self.outbox_days),
            jobs: before(self.jobs_days),
            callback_replay: Some(now - replay_keep_ms.max(0)),
        }
    }
}

/// One replica's retention scheduler.
#[derive(Clone)]
pub struct Retention {
    db: Db,
    config: RetentionConfig,
    replay_keep_ms: i64,
    holder: String,
    stop: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Retention {
    /// `holder`: this replica's name in the lease.
    pub fn new(db: Db, config: RetentionConfig, replay_keep_ms: i64, holder: String) -> Self {
        Retention {
            db,
            config,
            replay_keep_ms,
            holder,
            stop: Arc::new(watch::channel(false).0),
            task: Arc::new(Mutex::new(None)),
        }
    }

    /// One run at `now` (Unix ms): prunes when this replica holds the
    /// lease (taken or renewed for two intervals, so a replica that dies
    /// hands it on within two); `None` when another replica holds it.
    pub async fn tick(&self, now: i64) -> Result<Option<Pruned>, StorageError> {
        let until = now + 2 * self.config.interval().as_millis() as i64;
        if !self
            .db
            .nags()
            .lease(LEASE, &self.holder, now, until)
            .await?
        {
            tracing::debug!(holder = %self.holder, "retention: another replica holds the lease");
            return Ok(None);
        }
        let cut = self.config.cutoffs(now, self.replay_keep_ms);
        let p = self.db.retention().prune(&cut, BATCH).await?;
        tracing::info!(
            inbox = p.inbox,
            processed_events = p.processed_events,
            outbox = p.outbox,
            jobs = p.jobs,
            callback_replay = p.callback_replay,
            "retention: pruned {} rows",
            p.total()
        );
        Ok(Some(p))
    }

    /// Starts the loop: the first run a minute after start (or one
    /// interval, if shorter), so starting stays quick, then every interval.
    pub fn spawn(&self) {
        let this = self.clone();
        let mut stop = self.stop.subscribe();
        let every = self.config.interval();
        let handle = tokio::spawn(async move {
            let first = tokio::time::Instant::now() + every.min(Duration::from_secs(60));
            let mut ticks = tokio::time::interval_at(first, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                // Stopping cuts a run short between (or within) batches:
                // each batch is a statement of its own, so nothing is half
                // done, and the next holder carries on.
                tokio::select! {
                    r = this.tick(now_ms()) => if let Err(e) = r {
                        tracing::warn!(error = %e, "retention: pruning failed; trying again next interval");
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
        if let Some(old) = self.task.lock().expect("not poisoned").replace(handle) {
            old.abort();
        }
    }

    /// Stops the loop (a run under way stops at once) and lets the lease
    /// go, so another replica need not wait.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Err(e) = self.db.nags().release(LEASE, &self.holder).await {
            tracing::warn!(error = %e, "retention: letting the lease go failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commented `[retention]` of config/paver.toml, uncommented, is
    /// the defaults, and passes the checks.
    #[test]
    fn the_example_config_is_the_defaults() {
        let text = std::fs::read_to_string("config/paver.toml").unwrap();
        let start = text.find("# [retention]").unwrap();
        let section: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches("# "))
            .map(|l| l.split("  #").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        #[derive(Deserialize)]
        struct Root {
            retention: RetentionConfig,
        }
        let root: Root = toml::from_str(&section).unwrap();
        assert_eq!(root.retention, RetentionConfig::default());
        assert!(root.retention.problems().is_empty());
    }

    #[test]
    fn out_of_range_values_are_problems() {
        let bad = RetentionConfig {
            interval_secs: 5,
            dedupe_days: MAX_DAYS + 1,
            ..RetentionConfig::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("retention.interval_secs"));
        assert!(p[1].starts_with("retention.dedupe_days"));
        let now = 1_000 * DAY_MS;
        let c = RetentionConfig::default().cutoffs(now, 660_000);
        assert_eq!(c.dedupe, Some(now - 7 * DAY_MS));
        assert_eq!(c.outbox, Some(now - 14 * DAY_MS));
        assert_eq!(c.jobs, Some(now - 30 * DAY_MS));
        assert_eq!(c.callback_replay, Some(now - 660_000));
    }
}
