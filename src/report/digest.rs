//! The weekly digest: at each fire of `report.digest_schedule`, the one
//! replica holding the `report-digest` lease builds the report of the
//! `report.weeks` whole weeks (Monday to Sunday, UTC) before the week it
//! runs in and queues it for the platform channel, recorded
//! per period (`report_digests`) in the transaction that queues it, so it
//! goes out once however many replicas tick. The chart follows as a file
//! of its own, so a failed upload never holds back the text.
//!
//! The same flow keeps the report's `/metrics` gauges, rebuilt at a scrape
//! when older than `report.metrics_refresh_secs` — never at start.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::config::ReportConfig;
use super::figures::{date, week_of, WEEK_MS};
use super::{build, chart, Report, ReportError, Scope};
use crate::catalog::{Catalog, SharedCatalog};
use crate::chat::report::{digest as say, DigestFigures};
use crate::chat::send::Sender;
use crate::chat::Upload;
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::Db;
use crate::util::metrics;
use crate::util::now_ms;
use crate::util::scheduler::{Lease, Scheduler, Timing};

const LEASE: &str = "report-digest";

/// What became of a digest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestOutcome {
    /// Queued: the message, and the chart when there is one.
    Posted { chart: bool },
    /// This period's digest was recorded already (another replica).
    AlreadyPosted,
    /// No `digest_schedule`, or it never fired yet.
    NotScheduled,
    /// No channel to post in.
    NoChannel,
}

#[derive(Clone)]
pub struct Digests {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    catalog: SharedCatalog,
    send: Sender,
    config: ReportConfig,
    /// When the `/metrics` gauges were last rebuilt.
    gauges_at: Mutex<Option<Instant>>,
}

impl Digests {
    pub fn new(db: Db, catalog: SharedCatalog, send: Sender, config: ReportConfig) -> Self {
        Digests {
            inner: Arc::new(Inner {
                db,
                catalog,
                send,
                config,
                gauges_at: Mutex::new(None),
            }),
        }
    }

    pub fn config(&self) -> &ReportConfig {
        &self.inner.config
    }

    /// The `weeks` weeks up to `end`.
    fn scope(&self, end: i64) -> Scope {
        Scope {
            since: end - i64::from(self.inner.config.weeks.max(1)) * WEEK_MS,
            until: end,
            team: None,
        }
    }

    /// The digest due at `now`, queued once per period of the schedule.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<DigestOutcome, ReportError> {
        let c = &self.inner.config;
        let Some(period) = c
            .digest_schedule
            .as_ref()
            .and_then(|cron| cron.latest_fire(c.zone.0, now))
        else {
            return Ok(DigestOutcome::NotScheduled);
        };
        let period = period.timestamp_millis();
        let store = self.inner.db.report();
        if store.digest_recorded(period).await? {
            return Ok(DigestOutcome::AlreadyPosted);
        }
        let Some(dest) = c.channels.first() else {
            tracing::warn!("a report digest is due but report.channels names no channel");
            return Ok(DigestOutcome::NoChannel);
        };
        let catalog = self.inner.catalog.current();
        // Whole weeks: the `weeks` weeks before the one the period falls in.
        let report = build(&self.inner.db, &catalog, &self.scope(week_of(period))).await?;
        let png = if c.chart {
            match chart::png(&report.weeks) {
                Ok(png) => Some(png),
                Err(e) => {
                    tracing::warn!(error = %e, "report digest: no chart");
                    None
                }
            }
        } else {
            None
        };
        let message = say(&figures(&report, png.is_some(), c.weeks));
        let item = |kind: OutboxKind, body: String| OutboxItem {
            platform: dest.platform,
            channel: dest.channel.clone(),
            kind,
            user_id: None,
            card_key: None,
            thread_key: None,
            thread_ref: None,
            body,
        };
        let mut messages = vec![item(
            OutboxKind::Post,
            serde_json::to_string(&message).expect("messages serialize"),
        )];
        if let Some(png) = &png {
            let upload = Upload::png(
                format!("platform-report-{}.png", date(period)),
                message.title.clone().unwrap_or_default(),
                png,
            );
            messages.push(item(OutboxKind::Upload, upload.to_body()));
        }
        if !store
            .record_digest(period, dest.platform, &dest.channel, now_ms(), &messages)
            .await?
        {
            return Ok(DigestOutcome::AlreadyPosted);
        }
        self.inner.send.wake();
        tracing::info!(channel = %dest, "report digest posted");
        Ok(DigestOutcome::Posted {
            chart: png.is_some(),
        })
    }

    /// The digest scheduler's lease for this replica (`holder`), with
    /// `digest_schedule`: held for two ticks, renewed every tick.
    pub fn lease(&self, holder: &str) -> Option<Lease<Db>> {
        self.inner.config.digest_schedule.as_ref()?;
        let tick = Duration::from_secs(self.inner.config.tick_secs.max(1));
        Some(Lease::new(self.inner.db.clone(), LEASE, holder, tick * 2))
    }

    /// One scheduler tick at `now`: runs the digest when this replica
    /// holds the lease; `None` when another does (or without a schedule).
    pub async fn tick(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DigestOutcome>, ReportError> {
        let Some(lease) = self.lease(holder) else {
            return Ok(None);
        };
        lease.run(now_ms(), self.run(now)).await
    }

    /// Starts the digest scheduler when `digest_schedule` is configured.
    pub fn spawn_scheduler(&self, holder: &str) -> Option<Scheduler> {
        let lease = self.lease(holder)?;
        let tick = Duration::from_secs(self.inner.config.tick_secs.max(1));
        let this = self.clone();
        Some(Scheduler::spawn(lease, Timing::every(tick), move || {
            let this = this.clone();
            async move { this.run(Utc::now()).await }
        }))
    }

    /// Sets the report's `/metrics` gauges from the last `weeks` weeks when
    /// they are older than `metrics_refresh_secs` (or were never set): a
    /// scrape costs the report's queries at most that often.
    pub async fn refresh_gauges(&self) -> Result<(), ReportError> {
        let every = Duration::from_secs(self.inner.config.metrics_refresh_secs.max(1));
        {
            let at = self
                .inner
                .gauges_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if at.is_some_and(|t| t.elapsed() < every) {
                return Ok(());
            }
        }
        // Overall figures only: labels never name a team or service.
        let report = build(&self.inner.db, &Catalog::default(), &self.scope(now_ms())).await?;
        set_gauges(&report);
        *self
            .inner
            .gauges_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }
}

/// The report's overall figures as gauges.
pub fn set_gauges(r: &Report) {
    let s = &r.self_service;
    let d = &r.dora.overall;
    let secs = |ms: Option<i64>| ms.map(|v| v as f64 / 1000.0);
    metrics::report_requests(s.requests);
    for (figure, p) in [
        ("request_to_url", s.time_to_url),
        ("approval_wait", s.approval_wait),
        ("lead_time", d.lead_time),
        ("time_to_restore", d.time_to_restore),
    ] {
        metrics::report_duration(figure, "p50", secs(p.p50_ms));
        metrics::report_duration(figure, "p90", secs(p.p90_ms));
    }
    for (figure, rate) in [
        ("clarified", s.clarified),
        ("llm_assisted", s.llm_assisted),
        ("questions_answered", r.questions.answered),
        ("questions_escalated", r.questions.escalated),
        ("questions_helpful", r.questions.helpful),
        ("change_failure", d.change_failure),
    ] {
        metrics::report_ratio(figure, rate.ratio());
    }
    metrics::report_deployments(d.deployments);
    metrics::report_questions(r.questions.asked);
}

/// The headline figures, worded for the digest.
pub fn figures(r: &Report, chart: bool, weeks: u32) -> DigestFigures {
    let s = &r.self_service;
    let q = &r.questions;
    let d = &r.dora.overall;
    let window = match (r.weeks.first(), r.weeks.last()) {
        (Some(a), Some(b)) => format!("{} to {}", a.week, end_day(b.start_ms)),
        _ => r.since.clone(),
    };
    DigestFigures {
        window,
        figures: vec![
            ("Requests".into(), s.requests.to_string()),
            ("Request to URL".into(), s.time_to_url.display()),
            ("Approval wait".into(), s.approval_wait.display()),
            ("Clarified in thread".into(), s.clarified.display()),
            (
                "LLM".into(),
                format!(
                    "{} · {} calls, {} tokens",
                    s.llm_assisted.display(),
                    s.llm_calls,
                    s.prompt_tokens + s.completion_tokens
                ),
            ),
            (
                "Questions".into(),
                format!(
                    "{} asked · answered {} · escalated {} · helpful {}",
                    q.asked,
                    q.answered.display(),
                    q.escalated.display(),
                    q.helpful.display()
                ),
            ),
            (
                "Deploys (production)".into(),
                format!("{} ({:.2}/week)", d.deployments, d.per_week),
            ),
            ("Lead time".into(), d.lead_time.display()),
            ("Change failure".into(), d.change_failure.display()),
            (
                "Time to restore".into(),
                match d.unrestored {
                    0 => d.time_to_restore.display(),
                    n => format!("{} · {n} not restored", d.time_to_restore.display()),
                },
            ),
        ],
        topics: q
            .top_unanswered
            .iter()
            .map(|t| (t.topic.clone(), t.asked))
            .collect(),
        chart,
        weeks,
    }
}

/// The last day of the week starting at `start_ms`.
fn end_day(start_ms: i64) -> String {
    date(start_ms + WEEK_MS - 1)
}
