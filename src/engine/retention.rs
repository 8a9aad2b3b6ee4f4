//! The retention scheduler: every `retention.interval_secs`, the replica
//! holding the `retention` lease (a `util::scheduler` lease, like every
//! scheduler's) prunes what `[retention]` says is old enough
//! (`storage::retention`), logs what went per table, and lets the lease go
//! when it stops. A failed run is a warning; the next interval tries again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::storage::retention::{Cutoffs, Pruned, BATCH};
use crate::storage::{now_ms, Db, StorageError};
use crate::util::scheduler::{Lease, Scheduler, Timing};

/// The lease's name (`storage::leases`).
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
    lease: Lease<Db>,
    scheduler: Arc<Mutex<Option<Scheduler>>>,
}

impl Retention {
    /// `holder`: this replica's name in the lease, held for two intervals
    /// (so a replica that dies hands it on within two).
    pub fn new(db: Db, config: RetentionConfig, replay_keep_ms: i64, holder: String) -> Self {
        let lease = Lease::new(db.clone(), LEASE, &holder, config.interval() * 2);
        Retention {
            db,
            config,
            replay_keep_ms,
            lease,
            scheduler: Arc::new(Mutex::new(None)),
        }
    }

    /// One run at `now` (Unix ms): prunes when this replica holds the
    /// lease; `None` when another replica holds it.
    pub async fn tick(&self, now: i64) -> Result<Option<Pruned>, StorageError> {
        self.lease.run(now, self.prune(now)).await
    }

    async fn prune(&self, now: i64) -> Result<Pruned, StorageError> {
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
        Ok(p)
    }

    /// Starts the loop: the first run a minute after start (or one
    /// interval, if shorter), so starting stays quick, then every interval.
    /// Stopping cuts a run short between (or within) batches: each batch
    /// is a statement of its own, so nothing is half done.
    pub fn spawn(&self) -> Scheduler {
        let mut slot = self.scheduler.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = slot.as_ref() {
            return running.clone();
        }
        let every = self.config.interval();
        let timing = Timing::every(every).first_after(every.min(Duration::from_secs(60)));
        let this = self.clone();
        let s = Scheduler::spawn(self.lease.clone(), timing, move || {
            let this = this.clone();
            async move { this.prune(now_ms()).await }
        });
        *slot = Some(s.clone());
        s
    }

    /// Stops the loop (a run under way stops at once) and lets the lease
    /// go, so another replica need not wait.
    pub async fn stop(&self) {
        let s = self
            .scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = s {
            s.stop().await;
        }
        if let Err(e) = self.lease.release().await {
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
