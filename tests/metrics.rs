//! `GET /metrics` as Prometheus scrapes it: requests driven to their URL
//! and through an approval, deploy events through a Slack API that rate
//! limits, the LLM answering and failing, queues that back up — each
//! scraped over HTTP before and after, the exposition text parsed, and the
//! series expected to move checked by how much they moved. And the Grafana
//! dashboard in `config/`, which may query only series Paver exports.
//!
//! The recorder is one per process and its counters are shared by every
//! Paver of this test binary, so the tests here take turns ([`SERIAL`])
//! and compare scrapes rather than absolute values.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paver::chat::dispatcher::Pace;
use paver::config::Config;
use paver::domain::{ActionKind, Platform, RequestState};
use paver::nlu::llm::{LlmSettings, Prompts, Routing};
use paver::nlu::{NluPath, RulesParser, Understander};
use paver::notify::{ChannelRef, NotifyConfig};
use paver::storage::outbox::{OutboxItem, OutboxKind};
use paver::util::metrics::{self as names, Kind, ALL};
use secrecy::SecretString;
use serde_json::{json, Value};
use support::fake;
use support::paver::TestPaver;
use support::FakeDriver;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ----- reading the exposition text --------------------------------------------

/// One sample: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

/// A scrape: every sample's value, and the `# TYPE` of each metric.
#[derive(Debug)]
struct Scrape {
    samples: BTreeMap<Series, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels(rest.strip_suffix('}').expect("labels close"))),
            None => (series, BTreeMap::new()),
        };
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        samples.insert(
            Series {
                name: name.to_owned(),
                labels,
            },
            value,
        );
    }
    Scrape {
        samples,
        types,
        text: text.to_owned(),
    }
}

/// `a="x",b="y"`; values as Prometheus escapes them (`\"`, `\\`, `\n`).
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end + 1..];
    }
    out
}

impl Scrape {
    /// The sum of the samples of `name` that carry all of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(s, _)| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether any sample of `name` carries all of `labels`.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.keys().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// What moved between two scrapes.
struct Delta<'a> {
    before: &'a Scrape,
    after: &'a Scrape,
}

impl Delta<'_> {
    fn of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.after.value(name, labels) - self.before.value(name, labels)
    }
}

async fn scrape(base: &str) -> Scrape {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    parse(&resp.text().await.unwrap())
}

/// Every sample is a series Paver declares, with only its declared label
/// keys, and every label value is a word from Paver's own code: no
/// service, user, channel, request id or free text became a label.
fn bounded(s: &Scrape, forbidden: &[&str]) {
    let declared: BTreeMap<String, &names::Metric> = ALL
        .iter()
        .flat_map(|m| names::series(m).into_iter().map(move |n| (n, m)))
        .collect();
    let actions: BTreeSet<&str> = ActionKind::ALL.iter().map(|a| a.as_str()).collect();
    let states: BTreeSet<&str> = RequestState::ALL.iter().map(|s| s.as_str()).collect();
    let platforms = [Platform::Console, Platform::Slack, Platform::Discord].map(Platform::as_str);
    for series in s.samples.keys() {
        let m = declared
            .get(&series.name)
            .unwrap_or_else(|| panic!("{} is not declared in util::metrics", series.name));
        for (key, value) in &series.labels {
            if key == "le" {
                assert_eq!(m.kind, Kind::Histogram, "{series:?}");
                continue;
            }
            assert!(m.labels.contains(&key.as_str()), "{series:?}: label {key}");
            match key.as_str() {
                "action" => assert!(actions.contains(value.as_str()), "{series:?}"),
                "state" => assert!(
                    states.contains(value.as_str())
                        || ["queued", "running"].contains(&value.as_str()),
                    "{series:?}"
                ),
                "platform" => assert!(platforms.contains(&value.as_str()), "{series:?}"),
                "version" => assert_eq!(value, env!("CARGO_PKG_VERSION")),
                "percentile" => assert!(["p50", "p90"].contains(&value.as_str()), "{series:?}"),
                _ => assert!(
                    value.len() <= 24 && value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{series:?}: {key}={value:?} is not an outcome word"
                ),
            }
        }
    }
    for word in forbidden {
        assert!(!s.text.contains(word), "{word:?} appears in /metrics");
    }
    // Described, with the type each is declared as.
    for m in ALL {
        if let Some(t) = s.types.get(m.name) {
            let want = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert_eq!(t, want, "{}", m.name);
            assert!(
                s.text.contains(&format!("# HELP {} ", m.name)),
                "{}",
                m.name
            );
        }
    }
}

// ----- requests ----------------------------------------------------------------

#[tokio::test]
async fn requests_to_their_url_and_through_approval_move_their_series() {
    let _turn = SERIAL.lock().await;
    let h = TestPaver::start().await;
    let base = h.serve(&Config::default()).await;
    let before = scrape(&base).await;

    let staging = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &staging, "Create").await;
    assert_eq!(h.request(&staging).await.state, RequestState::Succeeded);

    let prod = h
        .propose("alice", "deploy checkout-api 2.3.1 to prod")
        .await;
    h.press("alice", &prod, "Deploy").await;
    assert_eq!(h.request(&prod).await.state, RequestState::AwaitingApproval);
    let waiting = scrape(&base).await;
    h.press("dave", &prod, "Approve").await;
    assert_eq!(h.request(&prod).await.state, RequestState::Succeeded);

    // A second production deploy, denied: its wait ends as `denied`.
    let denied = h
        .propose("alice", "deploy checkout-api 2.3.2 to prod")
        .await;
    h.press("alice", &denied, "Deploy").await;
    h.press_with_reason("dave", &denied, "Deny", "not during the freeze")
        .await;
    assert_eq!(h.request(&denied).await.state, RequestState::Denied);
    let after = scrape(&base).await;

    let d = Delta {
        before: &before,
        after: &after,
    };
    let req = names::REQUESTS;
    let create = "create_environment";
    for state in [
        "proposed",
        "confirmed",
        "approved",
        "executing",
        "succeeded",
    ] {
        assert_eq!(
            d.of(req, &[("action", create), ("state", state)]),
            1.0,
            "{create} {state}"
        );
    }
    assert_eq!(
        d.of(req, &[("action", create), ("state", "awaiting_approval")]),
        0.0
    );
    for (state, n) in [
        ("proposed", 2.0),
        ("confirmed", 2.0),
        ("awaiting_approval", 2.0),
        ("approved", 1.0),
        ("executing", 1.0),
        ("succeeded", 1.0),
        ("denied", 1.0),
    ] {
        assert_eq!(
            d.of(req, &[("action", "deploy"), ("state", state)]),
            n,
            "deploy {state}"
        );
    }
    // While it waited, the deploy had been asked for but not decided.
    let so_far = Delta {
        before: &before,
        after: &waiting,
    };
    assert_eq!(
        so_far.of(req, &[("action", "deploy"), ("state", "awaiting_approval")]),
        1.0
    );
    assert_eq!(
        so_far.of(req, &[("action", "deploy"), ("state", "approved")]),
        0.0
    );

    // Time to URL: one observation per request that succeeded with one.
    let url_count = format!("{}_count", names::REQUEST_URL_SECONDS);
    let url_inf = format!("{}_bucket", names::REQUEST_URL_SECONDS);
    assert_eq!(d.of(&url_count, &[("action", create)]), 1.0);
    assert_eq!(d.of(&url_count, &[("action", "deploy")]), 1.0);
    assert_eq!(d.of(&url_inf, &[("action", create), ("le", "+Inf")]), 1.0);
    // The fake driver answers at once: within a minute of asking.
    assert_eq!(d.of(&url_inf, &[("action", create), ("le", "60")]), 1.0);

    // Approval wait: asked → approved, asked → denied.
    let wait_count = format!("{}_count", names::APPROVAL_WAIT_SECONDS);
    let wait_sum = format!("{}_sum", names::APPROVAL_WAIT_SECONDS);
    assert_eq!(
        d.of(
            &wait_count,
            &[("action", "deploy"), ("outcome", "approved")]
        ),
        1.0
    );
    assert_eq!(
        d.of(&wait_count, &[("action", "deploy"), ("outcome", "denied")]),
        1.0
    );
    let waited = d.of(&wait_sum, &[("action", "deploy")]);
    assert!((0.0..60.0).contains(&waited), "{waited}");
    assert_eq!(d.of(&wait_count, &[("action", create)]), 0.0);

    // Everything said went out through the console sink.
    assert!(
        d.of(
            names::CHAT_MESSAGES,
            &[("platform", "console"), ("outcome", "sent")]
        ) >= 6.0
    );

    bounded(
        &after,
        &[
            "order-service",
            "checkout-api",
            "alice",
            "dave",
            "freeze",
            &staging,
            &prod,
            "C1",
        ],
    );
}

#[tokio::test]
async fn an_approval_wait_is_measured_from_when_approvers_were_asked() {
    let _turn = SERIAL.lock().await;
    let h = TestPaver::start().await;
    let base = h.serve(&Config::default()).await;
    let id = h
        .propose("alice", "deploy checkout-api 2.3.1 to prod")
        .await;
    h.press("alice", &id, "Deploy").await;
    // Approvers were asked 40 minutes ago (the audit log says when).
    sqlx::query(
        "UPDATE request_events SET at = at - 2400000 WHERE request_id = $1 AND to_state = 'awaiting_approval'",
    )
    .bind(&id)
    .execute(h.db().pool())
    .await
    .unwrap();
    let before = scrape(&base).await;
    h.press("dave", &id, "Approve").await;
    let after = scrape(&base).await;
    let d = Delta {
        before: &before,
        after: &after,
    };
    let bucket = format!("{}_bucket", names::APPROVAL_WAIT_SECONDS);
    let sum = format!("{}_sum", names::APPROVAL_WAIT_SECONDS);
    let labels = [("action", "deploy"), ("outcome", "approved")];
    let waited = d.of(&sum, &labels);
    assert!((2400.0..2460.0).contains(&waited), "{waited}");
    // Over half an hour, within the hour.
    let le = |b: &str| d.of(&bucket, &[labels[0], labels[1], ("le", b)]);
    assert_eq!(le("1800"), 0.0);
    assert_eq!(le("3600"), 1.0);
}

// ----- queues ------------------------------------------------------------------

#[tokio::test]
async fn queue_gauges_show_what_waits_and_for_how_long() {
    let _turn = SERIAL.lock().await;
    let h = TestPaver::builder()
        .fake_driver(FakeDriver {
            delay: Duration::from_secs(3),
            ..FakeDriver::default()
        })
        .start()
        .await;
    let base = h.serve(&Config::default()).await;
    let s = scrape(&base).await;
    assert_eq!(
        s.value(names::OUTBOX_DEPTH, &[("platform", "console")]),
        0.0
    );
    assert_eq!(s.value(names::JOBS_DEPTH, &[]), 0.0);
    assert_eq!(s.value(names::JOBS_OLDEST_SECONDS, &[]), 0.0);

    // A job that runs three seconds, queued a minute ago.
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press_now("alice", &id, "Restart").await;
    let mut live = None;
    for _ in 0..100 {
        let jobs = h.db().jobs().for_request(&id).await.unwrap();
        if let Some(job) = jobs.into_iter().find(|j| j.status.is_live()) {
            live = Some(job);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = live.expect("the job is queued");
    sqlx::query("UPDATE jobs SET created_at = created_at - 60000 WHERE id = $1")
        .bind(&job.id)
        .execute(h.db().pool())
        .await
        .unwrap();
    // A message for Discord, which this Paver cannot send to, queued a
    // minute and a half ago: it waits.
    h.db()
        .outbox()
        .enqueue(&OutboxItem {
            platform: Platform::Discord,
            channel: "900000000000000001".into(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: None,
            thread_ref: None,
            body: serde_json::to_string(&paver::chat::messages::notice("held")).unwrap(),
        })
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET created_at = created_at - 90000 WHERE platform = 'discord'")
        .execute(h.db().pool())
        .await
        .unwrap();

    let s = scrape(&base).await;
    assert_eq!(
        s.value(names::OUTBOX_DEPTH, &[("platform", "discord")]),
        1.0
    );
    let age = s.value(names::OUTBOX_OLDEST_SECONDS, &[("platform", "discord")]);
    assert!((90.0..150.0).contains(&age), "{age}");
    assert_eq!(s.value(names::JOBS_DEPTH, &[]), 1.0, "{}", s.text);
    let age = s.value(names::JOBS_OLDEST_SECONDS, &[]);
    assert!((60.0..120.0).contains(&age), "{age}");

    // Done, and what it said sent: the gauges go back to 0, but
    // Discord's message still waits (so the harness's `idle`, which waits
    // for an empty outbox, is not what to wait for).
    let mut s = scrape(&base).await;
    for _ in 0..500 {
        if s.value(names::JOBS_DEPTH, &[]) == 0.0
            && s.value(names::OUTBOX_DEPTH, &[("platform", "console")]) == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = scrape(&base).await;
    }
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert_eq!(s.value(names::JOBS_DEPTH, &[]), 0.0);
    assert_eq!(s.value(names::JOBS_OLDEST_SECONDS, &[]), 0.0);
    assert!(s.has(names::JOBS_DEPTH, &[("state", "queued")]));
    assert!(s.has(names::JOBS_DEPTH, &[("state", "running")]));
    assert_eq!(
        s.value(names::OUTBOX_DEPTH, &[("platform", "discord")]),
        1.0
    );
    assert_eq!(
        s.value(names::OUTBOX_DEPTH, &[("platform", "console")]),
        0.0
    );
    assert_eq!(
        s.value(names::OUTBOX_OLDEST_SECONDS, &[("platform", "console")]),
        0.0
    );
}

// ----- deploy notifications and Slack --------------------------------------------

const GENERIC_SECRET: &str = "generic-hook-secret";

/// A Slack Web API that rate-limits its first `chat.postMessage` for a second.
async fn fake_slack() -> fake::FakeServer {
    let limited = Arc::new(AtomicUsize::new(0));
    fake::serve(move |r| {
        let limited = limited.clone();
        async move {
            let method = r.path.rsplit('/').next().unwrap_or_default().to_owned();
            if method == "chat.postMessage" && limited.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut resp = fake::json(429, json!({"ok": false, "error": "ratelimited"}));
                resp.headers_mut()
                    .insert("retry-after", "1".parse().unwrap());
                return resp;
            }
            let ts = format!("1700000000.{:06}", limited.fetch_add(1, Ordering::SeqCst));
            let channel = r
                .body
                .as_ref()
                .and_then(|b| b.get("channel"))
                .and_then(Value::as_str)
                .unwrap_or("C1")
                .to_owned();
            match method.as_str() {
                "chat.postMessage" => fake::json(
                    200,
                    json!({"ok": true, "channel": channel, "ts": ts,
                           "message": {"type": "message", "text": "x", "ts": ts, "user": "U0BOT", "bot_id": "B1"}}),
                ),
                "chat.update" => fake::json(
                    200,
                    json!({"ok": true, "channel": channel, "ts": ts, "text": "x",
                           "message": {"type": "message", "text": "x", "user": "U0BOT", "bot_id": "B1"}}),
                ),
                _ => fake::json(200, json!({"ok": false, "error": "unknown_method"})),
            }
        }
    })
    .await
}

async fn hook(http: &reqwest::Client, base: &str, event: &Value) -> u16 {
    support::post_generic_hook(http, base, GENERIC_SECRET, event.to_string())
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn deploy_events_and_a_rate_limiting_slack_move_their_series() {
    let _turn = SERIAL.lock().await;
    let slack = fake_slack().await;
    let mut config = Config::default();
    config.slack.bot_token = Some(SecretString::from("xoxb-test".to_owned()));
    config.slack.api_url = format!("{}/api/", slack.url).parse().unwrap();
    config.hooks.generic_secret = Some(SecretString::from(GENERIC_SECRET.to_owned()));
    config.notify = NotifyConfig {
        production_channels: vec![ChannelRef::parse("slack:C0DEPLOYS").unwrap()],
        ..NotifyConfig::default()
    };
    let api = paver::slack::api(&config).unwrap().expect("a Slack API");
    let h = TestPaver::builder()
        .sink("slack", api)
        // A second between two sends to one channel.
        .pace(Pace::none().every(Platform::Slack, Duration::from_secs(1)))
        .start()
        .await;
    let base = h.serve(&config).await;
    let http = reqwest::Client::new();
    let before = scrape(&base).await;

    let event = |id: &str, service: &str, status: &str| {
        json!({"id": id, "service": service, "environment": "production",
               "status": status, "version": "2.5.0"})
    };
    // A deploy, its next step (coalesced into its notice), the first
    // again (a redelivery), another service's deploy (a second notice in
    // the same channel, after the channel's pace), and a deploy of a
    // service nobody knows.
    assert_eq!(
        hook(&http, &base, &event("m-1", "order-service", "in_progress")).await,
        202
    );
    assert_eq!(
        hook(&http, &base, &event("m-2", "order-service", "healthy")).await,
        202
    );
    // (Another body, so another signature: the hook's replay guard would
    // refuse the same one before the flow sees it.) Seen: 200, not 202.
    assert_eq!(
        hook(&http, &base, &event("m-1", "order-service", "running")).await,
        200
    );
    assert_eq!(
        hook(&http, &base, &event("m-3", "checkout-api", "healthy")).await,
        202
    );
    assert_eq!(
        hook(&http, &base, &event("m-4", "no-such-service", "healthy")).await,
        202
    );
    h.idle().await;
    let after = scrape(&base).await;
    let d = Delta {
        before: &before,
        after: &after,
    };

    let generic = [("source", "generic")];
    assert_eq!(d.of(names::NOTIFICATIONS_RECEIVED, &generic), 5.0);
    assert_eq!(d.of(names::NOTIFICATIONS_COALESCED, &generic), 1.0);
    let dropped = |reason| {
        d.of(
            names::NOTIFICATIONS_DROPPED,
            &[generic[0], ("reason", reason)],
        )
    };
    assert_eq!(dropped("duplicate"), 1.0);
    assert_eq!(dropped("unknown_service"), 1.0);
    assert_eq!(dropped("quiet"), 0.0);
    // Two notices posted, and edited at least once; none given up.
    let delivered = |outcome| {
        d.of(
            names::NOTIFICATIONS_DELIVERED,
            &[("platform", "slack"), ("outcome", outcome)],
        )
    };
    assert!(delivered("sent") >= 3.0, "{}", delivered("sent"));
    assert_eq!(delivered("failed"), 0.0);

    // Slack's 429: an API error, a held message, a wait of a second.
    let slack_ = ("platform", "slack");
    assert_eq!(
        d.of(names::CHAT_API_ERRORS, &[slack_, ("kind", "rate_limited")]),
        1.0
    );
    assert_eq!(
        d.of(names::CHAT_MESSAGES, &[slack_, ("outcome", "rate_limited")]),
        1.0
    );
    let holds = format!("{}_count", names::CHAT_RATE_LIMIT_WAIT_SECONDS);
    let held = format!("{}_sum", names::CHAT_RATE_LIMIT_WAIT_SECONDS);
    assert_eq!(d.of(&holds, &[slack_]), 1.0);
    assert_eq!(d.of(&held, &[slack_]), 1.0);
    // Every send's delay since it was queued; the first post's includes
    // the second Slack held the channel for.
    let sent = d.of(names::CHAT_MESSAGES, &[slack_, ("outcome", "sent")]);
    assert!(sent >= 3.0, "{sent}");
    let delays = format!("{}_count", names::CHAT_SEND_DELAY_SECONDS);
    let quick = format!("{}_bucket", names::CHAT_SEND_DELAY_SECONDS);
    assert_eq!(d.of(&delays, &[slack_]), sent);
    assert!(d.of(&quick, &[slack_, ("le", "0.5")]) < sent);

    bounded(
        &after,
        &[
            "order-service",
            "checkout-api",
            "no-such-service",
            "C0DEPLOYS",
            "m-1",
        ],
    );
}

// ----- the LLM -------------------------------------------------------------------

#[tokio::test]
async fn llm_calls_tokens_latency_and_fallbacks_are_counted() {
    let _turn = SERIAL.lock().await;
    let h = TestPaver::start().await;
    let base = h.serve(&Config::default()).await;
    // One good answer with its token counts, then a server error.
    let calls = Arc::new(AtomicUsize::new(0));
    let llm = fake::serve(move |_| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n > 0 {
                return fake::json(500, json!({"error": {"message": "boom", "type": "test"}}));
            }
            let args = json!({"proposal": {"action": "restart", "service": "cart-service", "environment": "dev"}});
            fake::json(
                200,
                json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                        "role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "propose_action", "arguments": args.to_string()}}]}}],
                    "usage": {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}
                }),
            )
        }
    })
    .await;
    let mut settings = LlmSettings::new(format!("{}/v1", llm.url).parse().unwrap(), "test-model");
    settings.timeout = Duration::from_secs(5);
    // One failure must not open the breaker for the next test's sake; the
    // breaker is this understander's own anyway.
    let u = Understander::new(settings, Prompts::embedded(), Routing::LlmFirst).unwrap();
    let catalog = h.catalog.current();
    let rules = RulesParser::new(&catalog);
    let before = scrape(&base).await;

    let ok = u
        .understand(&rules, &catalog, "restart cart-service in dev")
        .await;
    assert_eq!(ok.path, NluPath::Llm);
    let failed = u
        .understand(&rules, &catalog, "restart cart-service in dev")
        .await;
    assert_eq!(failed.path, NluPath::Fallback);
    let after = scrape(&base).await;
    let d = Delta {
        before: &before,
        after: &after,
    };
    let understand = ("purpose", "understand");
    assert_eq!(
        d.of(names::LLM_CALLS, &[understand, ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        d.of(names::LLM_CALLS, &[understand, ("outcome", "server_error")]),
        1.0
    );
    assert_eq!(
        d.of(names::LLM_TOKENS, &[understand, ("kind", "prompt")]),
        321.0
    );
    assert_eq!(
        d.of(names::LLM_TOKENS, &[understand, ("kind", "completion")]),
        45.0
    );
    let count = format!("{}_count", names::LLM_CALL_SECONDS);
    let sum = format!("{}_sum", names::LLM_CALL_SECONDS);
    assert_eq!(d.of(&count, &[understand]), 2.0);
    let took = d.of(&sum, &[understand]);
    assert!(took > 0.0 && took < 5.0, "{took}");
    assert_eq!(
        d.of(
            names::LLM_FALLBACKS,
            &[understand, ("reason", "server_error")]
        ),
        1.0
    );
    assert_eq!(d.of(names::LLM_CALLS, &[("purpose", "docs")]), 0.0);
    bounded(&after, &["cart-service", "test-model"]);
}

// ----- configuration ----------------------------------------------------------

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let _turn = SERIAL.lock().await;
    let h = TestPaver::start().await;
    let mut config = Config::default();
    config.metrics.enabled = false;
    let base = h.serve(&config).await;
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

// ----- the dashboard and the README ----------------------------------------------

/// Every PromQL expression of the dashboard's panels.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            out.push((
                title,
                t["expr"].as_str().expect("a target's expr").to_owned(),
            ));
        }
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_series_paver_exports_and_all_of_them() {
    let path = Path::new("config/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    let exported: BTreeSet<String> = ALL.iter().flat_map(names::series).collect();
    let mut used = BTreeSet::new();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= ALL.len(), "{} queries", queries.len());
    let word = regex::Regex::new(r"\bpaver_[a-z_]+").unwrap();
    for (title, expr) in &queries {
        let found: Vec<&str> = word.find_iter(expr).map(|m| m.as_str()).collect();
        assert!(!found.is_empty(), "{title}: {expr} queries no Paver series");
        for name in found {
            assert!(exported.contains(name), "{title}: {name} is not exported");
            // Quantiles come from buckets, counters are read as rates.
            if expr.contains("histogram_quantile") {
                assert!(
                    expr.contains("_bucket") && expr.contains("le"),
                    "{title}: {expr}"
                );
            }
            if name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count") {
                assert!(
                    expr.contains("rate(") || expr.contains("increase("),
                    "{title}: {name} is a counter: {expr}"
                );
            }
            used.insert(
                ALL.iter()
                    .find(|m| names::series(m).iter().any(|s| s == name))
                    .unwrap()
                    .name,
            );
        }
    }
    for m in ALL {
        assert!(used.contains(m.name), "no panel shows {}", m.name);
    }
    // Every panel reads the dashboard's Prometheus.
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        }
    }
}

#[test]
fn the_readme_lists_every_metric() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme.find("## Metrics").expect("a Metrics section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for m in ALL {
        assert!(
            section.contains(&format!("`{}`", m.name)),
            "{} is not in the README",
            m.name
        );
    }
}
