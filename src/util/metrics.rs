//! Every metric Paver exports, named once, and the small functions that
//! record them, so call sites never spell a metric or a label key.
//!
//! Recording goes through the `metrics` facade: until [`install`] puts the
//! Prometheus recorder in place (`paver serve` with `[metrics] enabled`),
//! every call here does nothing. `/metrics` renders through the handle
//! [`install`] returns, on Paver's own HTTP server.
//!
//! Label values are `&'static str` on purpose: only words written in
//! Paver's code (action kinds, states, platforms, outcomes) can become a
//! label, never a service name, a user id, a channel or message text, so
//! the number of series stays bounded however Paver is used.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The exposition format `/metrics` answers in.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ----- names -----------------------------------------------------------------

pub const REQUESTS: &str = "paver_requests_total";
pub const REQUEST_URL_SECONDS: &str = "paver_request_url_seconds";
pub const APPROVAL_WAIT_SECONDS: &str = "paver_approval_wait_seconds";
pub const LLM_CALLS: &str = "paver_llm_calls_total";
pub const LLM_TOKENS: &str = "paver_llm_tokens_total";
pub const LLM_CALL_SECONDS: &str = "paver_llm_call_seconds";
pub const LLM_FALLBACKS: &str = "paver_llm_fallbacks_total";
pub const NOTIFICATIONS_RECEIVED: &str = "paver_notifications_received_total";
pub const NOTIFICATIONS_COALESCED: &str = "paver_notifications_coalesced_total";
pub const NOTIFICATIONS_DROPPED: &str = "paver_notifications_dropped_total";
pub const NOTIFICATIONS_DELIVERED: &str = "paver_notifications_delivered_total";
pub const CHAT_MESSAGES: &str = "paver_chat_messages_total";
pub const CHAT_API_ERRORS: &str = "paver_chat_api_errors_total";
pub const CHAT_RATE_LIMIT_WAIT_SECONDS: &str = "paver_chat_rate_limit_wait_seconds";
pub const CHAT_SEND_DELAY_SECONDS: &str = "paver_chat_send_delay_seconds";
pub const OUTBOX_DEPTH: &str = "paver_outbox_depth";
pub const OUTBOX_OLDEST_SECONDS: &str = "paver_outbox_oldest_age_seconds";
pub const JOBS_DEPTH: &str = "paver_jobs_depth";
pub const JOBS_OLDEST_SECONDS: &str = "paver_jobs_oldest_age_seconds";
pub const BUILD_INFO: &str = "paver_build_info";
pub const REPORT_REQUESTS: &str = "paver_report_requests";
pub const REPORT_DEPLOYMENTS: &str = "paver_report_deployments";
pub const REPORT_QUESTIONS: &str = "paver_report_questions";
pub const REPORT_DURATION_SECONDS: &str = "paver_report_duration_seconds";
pub const REPORT_RATIO: &str = "paver_report_ratio";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric: what the README lists and the dashboard may query.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets, in seconds.
    pub buckets: &'static [f64],
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
        buckets: &[],
    }
}

// Buckets are chosen for what each wait really is: a request reaches its
// URL in seconds to an hour, an approver answers in minutes to days, the
// LLM in fractions of a second to its time limit, a 429 holds a channel
// for up to a minute or so, and a message leaves the outbox at once or,
// behind a channel's pace, a hold or an outage, minutes later.
const URL_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];
const APPROVAL_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0,
];
const LLM_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0];
const WAIT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
const DELAY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// Every metric, in the order the README lists them.
pub const ALL: &[Metric] = &[
    metric(
        REQUESTS,
        Kind::Counter,
        &["action", "state"],
        "Requests that entered a state (proposed when created, then each transition), by action kind.",
    ),
    Metric {
        buckets: URL_BUCKETS,
        ..metric(
            REQUEST_URL_SECONDS,
            Kind::Histogram,
            &["action"],
            "Time from a request's creation to its success with a URL, in seconds.",
        )
    },
    Metric {
        buckets: APPROVAL_BUCKETS,
        ..metric(
            APPROVAL_WAIT_SECONDS,
            Kind::Histogram,
            &["action", "outcome"],
            "Time a request waited for approvers, from asking to approved, denied, cancelled or expired, in seconds.",
        )
    },
    metric(
        LLM_CALLS,
        Kind::Counter,
        &["purpose", "outcome"],
        "Calls to the LLM server (understanding messages, writing docs answers), by outcome.",
    ),
    metric(
        LLM_TOKENS,
        Kind::Counter,
        &["purpose", "kind"],
        "Tokens the LLM server reported, prompt and completion.",
    ),
    Metric {
        buckets: LLM_BUCKETS,
        ..metric(
            LLM_CALL_SECONDS,
            Kind::Histogram,
            &["purpose"],
            "Duration of one call to the LLM server, in seconds.",
        )
    },
    metric(
        LLM_FALLBACKS,
        Kind::Counter,
        &["purpose", "reason"],
        "Messages read by the rules and docs answers quoted because the LLM's answer could not be used, by reason.",
    ),
    metric(
        NOTIFICATIONS_RECEIVED,
        Kind::Counter,
        &["source"],
        "Verified deploy events the notification flow took (redeliveries included; one it failed on counts when its sender's retry is taken).",
    ),
    metric(
        NOTIFICATIONS_COALESCED,
        Kind::Counter,
        &["source"],
        "Deploy events folded into a notice already open for their service and environment.",
    ),
    metric(
        NOTIFICATIONS_DROPPED,
        Kind::Counter,
        &["source", "reason"],
        "Deploy events that told nobody: redeliveries, muted or unrouted, unknown service or environment.",
    ),
    metric(
        NOTIFICATIONS_DELIVERED,
        Kind::Counter,
        &["platform", "outcome"],
        "Deploy notice posts and edits the outbox sent or gave up on.",
    ),
    metric(
        CHAT_MESSAGES,
        Kind::Counter,
        &["platform", "outcome"],
        "Outbox deliveries: sent, retried, held by a rate limit, given up, superseded by a newer edit.",
    ),
    metric(
        CHAT_API_ERRORS,
        Kind::Counter,
        &["platform", "kind"],
        "Errors from the Slack and Discord APIs: rate_limited, server_error, refused, unreachable, invalid.",
    ),
    Metric {
        buckets: WAIT_BUCKETS,
        ..metric(
            CHAT_RATE_LIMIT_WAIT_SECONDS,
            Kind::Histogram,
            &["platform"],
            "Channels held by a platform's rate limit (a 429), and for how long, in seconds.",
        )
    },
    Metric {
        buckets: DELAY_BUCKETS,
        ..metric(
            CHAT_SEND_DELAY_SECONDS,
            Kind::Histogram,
            &["platform"],
            "Time from a message queued in the outbox to its send (a channel's pace, rate limits and retries included), in seconds.",
        )
    },
    metric(
        OUTBOX_DEPTH,
        Kind::Gauge,
        &["platform"],
        "Messages waiting in the outbox (read from the database at scrape time).",
    ),
    metric(
        OUTBOX_OLDEST_SECONDS,
        Kind::Gauge,
        &["platform"],
        "Age of the oldest message waiting in the outbox, in seconds (0 when none waits).",
    ),
    metric(
        JOBS_DEPTH,
        Kind::Gauge,
        &["state"],
        "Jobs queued or running (read from the database at scrape time).",
    ),
    metric(
        JOBS_OLDEST_SECONDS,
        Kind::Gauge,
        &["state"],
        "Age of the oldest queued or running job, in seconds (0 when there is none).",
    ),
    metric(
        BUILD_INFO,
        Kind::Gauge,
        &["version"],
        "Always 1; the version of Paver serving.",
    ),
    metric(
        REPORT_REQUESTS,
        Kind::Gauge,
        &[],
        "The platform report: requests created in its window (report.weeks, up to now).",
    ),
    metric(
        REPORT_DEPLOYMENTS,
        Kind::Gauge,
        &[],
        "The platform report: production deployments in its window, succeeded or failed.",
    ),
    metric(
        REPORT_QUESTIONS,
        Kind::Gauge,
        &[],
        "The platform report: docs questions asked in its window.",
    ),
    metric(
        REPORT_DURATION_SECONDS,
        Kind::Gauge,
        &["figure", "percentile"],
        "The platform report's durations in its window, in seconds: request_to_url, approval_wait, lead_time, time_to_restore at percentile p50 and p90 (NaN: nothing measured).",
    ),
    metric(
        REPORT_RATIO,
        Kind::Gauge,
        &["figure"],
        "The platform report's rates in its window: clarified, llm_assisted, questions_answered, questions_escalated, questions_helpful, change_failure (NaN: no denominator).",
    ),
];

/// The series names Prometheus stores for `m`: a histogram is its
/// `_bucket`, `_sum` and `_count`.
pub fn series(m: &Metric) -> Vec<String> {
    match m.kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{}{s}", m.name))
            .collect(),
        _ => vec![m.name.to_owned()],
    }
}

// ----- the recorder ------------------------------------------------------------

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// The one recorder of this process. Tests start many Pavers in one
/// process and the facade takes one global recorder: the first call
/// installs it, every later call gets the same handle.
static INSTALLED: OnceLock<Result<PrometheusHandle, InstallError>> = OnceLock::new();

/// How often histogram samples are folded into their buckets between
/// scrapes (a scrape folds them too), so an unscraped Paver does not
/// keep every sample.
const UPKEEP: Duration = Duration::from_secs(60);

/// Installs the Prometheus recorder once per process and returns its
/// handle. Fails only when something else installed a recorder first.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    INSTALLED.get_or_init(build).clone()
}

fn build() -> Result<PrometheusHandle, InstallError> {
    let mut builder = PrometheusBuilder::new();
    for m in ALL.iter().filter(|m| !m.buckets.is_empty()) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(m.name.to_owned()), m.buckets)
            .map_err(|e| InstallError(e.to_string()))?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| InstallError(e.to_string()))?;
    for m in ALL {
        match m.kind {
            Kind::Counter => describe_counter!(m.name, m.help),
            Kind::Gauge => describe_gauge!(m.name, m.help),
            Kind::Histogram => describe_histogram!(m.name, m.help),
        }
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // A task on the runtime that installs it (`paver serve`'s), not a thread.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let upkeep = handle.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    Ok(handle)
}

/// One scrape at a time: the gauges read from a database are set and
/// rendered together, so two Pavers in one process (tests) never render
/// each other's half-set queue gauges.
static SCRAPE: Mutex<()> = Mutex::new(());

/// The exposition text, after `set_gauges` set what is read at scrape time.
pub fn render(handle: &PrometheusHandle, set_gauges: impl FnOnce()) -> String {
    let _one = SCRAPE.lock().unwrap_or_else(|p| p.into_inner());
    set_gauges();
    handle.render()
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

// ----- requests ------------------------------------------------------------------

/// A request of `action` kind entered `state`.
pub fn request_state(action: &'static str, state: &'static str) {
    counter!(REQUESTS, "action" => action, "state" => state).increment(1);
}

/// A request succeeded with a URL `ms` after it was created.
pub fn request_url(action: &'static str, ms: i64) {
    histogram!(REQUEST_URL_SECONDS, "action" => action).record(seconds(ms));
}

/// A request left `awaiting_approval` (`outcome`: approved, denied,
/// cancelled, expired) `ms` after approvers were asked.
pub fn approval_wait(action: &'static str, outcome: &'static str, ms: i64) {
    histogram!(APPROVAL_WAIT_SECONDS, "action" => action, "outcome" => outcome).record(seconds(ms));
}

// ----- the LLM -------------------------------------------------------------------

/// One call to the LLM server, timed from [`LlmCall::start`]. Dropped
/// without an outcome, it counts as a timeout: a caller's own time limit
/// cancels a call by dropping it.
#[derive(Debug)]
pub struct LlmCall {
    purpose: &'static str,
    started: Instant,
    done: bool,
}

impl LlmCall {
    pub fn start(purpose: &'static str) -> Self {
        LlmCall {
            purpose,
            started: Instant::now(),
            done: false,
        }
    }

    /// The server answered; it reported these tokens.
    pub fn answered(mut self, prompt_tokens: u64, completion_tokens: u64) {
        self.finish("ok");
        let purpose = self.purpose;
        counter!(LLM_TOKENS, "purpose" => purpose, "kind" => "prompt").increment(prompt_tokens);
        counter!(LLM_TOKENS, "purpose" => purpose, "kind" => "completion")
            .increment(completion_tokens);
    }

    /// The call failed (`outcome`: timeout, rate_limited, server_error, …).
    pub fn failed(mut self, outcome: &'static str) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: &'static str) {
        self.done = true;
        let purpose = self.purpose;
        counter!(LLM_CALLS, "purpose" => purpose, "outcome" => outcome).increment(1);
        histogram!(LLM_CALL_SECONDS, "purpose" => purpose)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for LlmCall {
    fn drop(&mut self) {
        if !self.done {
            self.finish("timeout");
        }
    }
}

/// The LLM's answer was not used for `purpose`, for `reason`.
pub fn llm_fallback(purpose: &'static str, reason: &'static str) {
    counter!(LLM_FALLBACKS, "purpose" => purpose, "reason" => reason).increment(1);
}

// ----- deploy notifications ------------------------------------------------------

pub fn notification_received(source: &'static str) {
    counter!(NOTIFICATIONS_RECEIVED, "source" => source).increment(1);
}

pub fn notification_coalesced(source: &'static str) {
    counter!(NOTIFICATIONS_COALESCED, "source" => source).increment(1);
}

/// A deploy event told nobody (`reason`: duplicate, quiet,
/// unknown_service, unknown_environment).
pub fn notification_dropped(source: &'static str, reason: &'static str) {
    counter!(NOTIFICATIONS_DROPPED, "source" => source, "reason" => reason).increment(1);
}

/// A deploy notice's post or edit was sent (`outcome` sent) or given up (failed).
pub fn notification_delivered(platform: &'static str, outcome: &'static str) {
    counter!(NOTIFICATIONS_DELIVERED, "platform" => platform, "outcome" => outcome).increment(1);
}

// ----- chat platforms --------------------------------------------------------------

/// What the outbox did with one row (`outcome`: sent, retried,
/// rate_limited, failed, superseded).
pub fn chat_message(platform: &'static str, outcome: &'static str) {
    counter!(CHAT_MESSAGES, "platform" => platform, "outcome" => outcome).increment(1);
}

/// An API call to `platform` failed (`kind`: rate_limited, server_error,
/// refused, unreachable).
pub fn chat_api_error(platform: &'static str, kind: &'static str) {
    counter!(CHAT_API_ERRORS, "platform" => platform, "kind" => kind).increment(1);
}

/// A 429 from `platform` holds a channel for `ms`.
pub fn chat_rate_limit_wait(platform: &'static str, ms: i64) {
    histogram!(CHAT_RATE_LIMIT_WAIT_SECONDS, "platform" => platform).record(seconds(ms));
}

/// A message to `platform` was sent `ms` after it was queued.
pub fn chat_send_delay(platform: &'static str, ms: i64) {
    histogram!(CHAT_SEND_DELAY_SECONDS, "platform" => platform).record(seconds(ms));
}

// ----- queues (set at scrape time) -----------------------------------------------

/// `depth` messages wait in the outbox for `platform`, the oldest `age_ms` old.
pub fn outbox_backlog(platform: &'static str, depth: i64, age_ms: i64) {
    gauge!(OUTBOX_DEPTH, "platform" => platform).set(depth as f64);
    gauge!(OUTBOX_OLDEST_SECONDS, "platform" => platform).set(seconds(age_ms));
}

/// `depth` jobs are in `state` (queued, running), the oldest `age_ms` old.
pub fn jobs_backlog(state: &'static str, depth: i64, age_ms: i64) {
    gauge!(JOBS_DEPTH, "state" => state).set(depth as f64);
    gauge!(JOBS_OLDEST_SECONDS, "state" => state).set(seconds(age_ms));
}

// ----- the platform report (set when a scrape finds them stale) --------------------

pub fn report_requests(n: u64) {
    gauge!(REPORT_REQUESTS).set(n as f64);
}

pub fn report_deployments(n: u64) {
    gauge!(REPORT_DEPLOYMENTS).set(n as f64);
}

pub fn report_questions(n: u64) {
    gauge!(REPORT_QUESTIONS).set(n as f64);
}

/// A duration figure's percentile (`p50`, `p90`), in seconds; `None` (nothing measured) is NaN.
pub fn report_duration(figure: &'static str, percentile: &'static str, secs: Option<f64>) {
    gauge!(REPORT_DURATION_SECONDS, "figure" => figure, "percentile" => percentile)
        .set(secs.unwrap_or(f64::NAN));
}

/// A rate figure; `None` (no denominator) is NaN.
pub fn report_ratio(figure: &'static str, ratio: Option<f64>) {
    gauge!(REPORT_RATIO, "figure" => figure).set(ratio.unwrap_or(f64::NAN));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prometheus_names_with_the_conventional_suffixes() {
        let mut seen = std::collections::BTreeSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("paver_"), "{}", m.name);
            assert!(
                m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}: buckets are for histograms",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        }
    }

    #[test]
    fn a_histogram_is_stored_as_three_series() {
        let m = ALL.iter().find(|m| m.name == LLM_CALL_SECONDS).unwrap();
        assert_eq!(
            series(m),
            [
                "paver_llm_call_seconds_bucket",
                "paver_llm_call_seconds_sum",
                "paver_llm_call_seconds_count"
            ]
        );
    }
}
