//! Several replicas, exactly once — proven with the real binary: three
//! `paver serve` processes on one PostgreSQL database, Slack in HTTP
//! Events API mode against a recording fake Web API, and the generic
//! orchestrator driver against a fake orchestrator whose jobs take a few
//! seconds. A burst of signed mentions goes to all three (each also to a
//! second replica, as Slack's retries do), each card's Create button is
//! pressed (some presses redelivered to a second replica, some pressed
//! twice at two replicas at once), and one replica is SIGKILLed while it
//! runs jobs. Then: every event made one request, every request ran once
//! at the orchestrator and ended once, every message went out once, and
//! nothing is left in flight.
//!
//! The database: PAVER_TEST_DATABASE_URL when it names a PostgreSQL
//! server, else postgres://postgres@127.0.0.1:5432/postgres; a database of
//! its own is created for the run and dropped after. Without a reachable
//! PostgreSQL (and no PAVER_TEST_DATABASE_URL) the test says so and does
//! nothing: several replicas need PostgreSQL, SQLite is one process.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as AxPath, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use rand::Rng;
use serde_json::{json, Value};
use sqlx::Row;

use paver::storage::Db;
use support::count;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TEAM: &str = "T0G9PQBBK";
const CORPUS: &str = "../shared/corpus/slack";
const REPLICAS: usize = 3;
const CHANNELS: [&str; 4] = ["C0REPLA", "C0REPLB", "C0REPLC", "C0REPLD"];
/// How long the fake orchestrator takes over each job: long enough that a
/// replica is killed with jobs under way.
const JOB_TAKES: Duration = Duration::from_secs(4);
/// The services whose staging and dev environments the burst asks for
/// (every component of the sample catalog but the deprecated one).
const SERVICES: [&str; 19] = [
    "order-service",
    "order-worker",
    "checkout-api",
    "cart-service",
    "inventory-api",
    "shipping-service",
    "catalog-api",
    "payment-service",
    "payment-gateway",
    "billing-api",
    "fraud-detector",
    "user-service",
    "auth-service",
    "notification-worker",
    "email-sender",
    "search-api",
    "search-indexer",
    "recommendation-engine",
    "analytics-pipeline",
];

// ----- the database ---------------------------------------------------------

/// A database of this run's own on a PostgreSQL server, dropped at the end.
struct Pg {
    admin: String,
    name: String,
    url: String,
}

impl Pg {
    async fn create() -> Option<Pg> {
        let (admin, required) = match std::env::var("PAVER_TEST_DATABASE_URL") {
            Ok(u) if u.starts_with("postgres") => (u, true),
            _ => (
                "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
                false,
            ),
        };
        let db = match Db::connect_without_migrating(&admin).await {
            Ok(db) => db,
            Err(e) if !required => {
                eprintln!(
                    "replicas: no PostgreSQL at {admin} ({e}); several replicas need one, so this test did nothing"
                );
                return None;
            }
            Err(e) => panic!("PAVER_TEST_DATABASE_URL is set but unreachable: {e}"),
        };
        let name = format!(
            "paver_replicas_{:012x}",
            rand::thread_rng().gen::<u64>() >> 16
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(db.pool())
            .await
            .expect("create the test database");
        db.pool().close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let url = format!("{base}/{name}");
        Some(Pg { admin, name, url })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(db) = Db::connect_without_migrating(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(db.pool())
                        .await;
                }
            });
        })
        .join();
    }
}

// ----- the fake Slack Web API -----------------------------------------------

/// One Web API call as the fake answered it.
#[derive(Debug, Clone)]
struct SlackCall {
    replica: usize,
    method: String,
    body: Value,
    /// The ts a chat.postMessage was given.
    ts: Option<String>,
}

/// Holds a replica's Web API calls back: calls that came in before it
/// closed are answered; later ones wait for ever (the replica is about to
/// be killed) and are never recorded.
#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    active: AtomicUsize,
    /// `chat.*` sends held: only the dispatcher sends, one row after the
    /// other, so a held send means the row before it was recorded.
    held_sends: AtomicUsize,
    /// When the last call was answered (ms since `epoch`).
    answered_ms: AtomicUsize,
}

#[derive(Clone)]
struct FakeSlack {
    calls: Arc<Mutex<Vec<SlackCall>>>,
    ts: Arc<AtomicUsize>,
    gates: Arc<[Gate; REPLICAS]>,
    epoch: Instant,
}

impl Default for FakeSlack {
    fn default() -> Self {
        FakeSlack {
            calls: Arc::default(),
            ts: Arc::default(),
            gates: Arc::default(),
            epoch: Instant::now(),
        }
    }
}

impl FakeSlack {
    fn calls(&self, method: &str) -> Vec<SlackCall> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }
}

fn parse_body(body: &[u8], query: Option<&str>) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    let text = if body.is_empty() {
        query.unwrap_or("").as_bytes()
    } else {
        body
    };
    let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(map)
}

fn blocks_of(body: &Value) -> Value {
    match body.get("blocks") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// The value of the button labelled `label` in a message's blocks.
fn button(body: &Value, label: &str) -> Option<String> {
    let blocks = blocks_of(body);
    for b in blocks.as_array().into_iter().flatten() {
        for e in b
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if e["text"]["text"] == label {
                return e["value"].as_str().map(str::to_owned);
            }
        }
    }
    None
}

async fn slack_api(
    State(fake): State<FakeSlack>,
    AxPath((replica, method)): AxPath<(usize, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let gate = &fake.gates[replica];
    // Counted before the gate is looked at, so whoever closes it and then
    // sees no call active knows none will be answered any more.
    gate.active.fetch_add(1, Ordering::SeqCst);
    if gate.closed.load(Ordering::SeqCst) {
        gate.active.fetch_sub(1, Ordering::SeqCst);
        if method.starts_with("chat.") {
            gate.held_sends.fetch_add(1, Ordering::SeqCst);
        }
        std::future::pending::<()>().await;
    }
    let body = parse_body(&body, query.as_deref());
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("C1")
        .to_owned();
    let ts = format!(
        "1700000000.{:06}",
        fake.ts.fetch_add(1, Ordering::SeqCst) + 1
    );
    let (reply, posted) = match method.as_str() {
        "auth.test" => (
            json!({"ok": true, "url": "https://example.slack.com/", "team": "Example",
                   "user": "paver", "team_id": TEAM, "user_id": "U111", "bot_id": "B1"}),
            None,
        ),
        "chat.postMessage" => (
            json!({"ok": true, "channel": channel, "ts": ts,
                   "message": {"type": "message", "text": "x", "ts": ts, "user": "U0BOT", "bot_id": "B1"}}),
            Some(ts.clone()),
        ),
        "chat.update" => (
            json!({"ok": true, "channel": channel, "ts": body.get("ts").cloned().unwrap_or(json!(ts)),
                   "text": "x", "message": {"type": "message", "text": "x", "user": "U0BOT", "bot_id": "B1"}}),
            None,
        ),
        "chat.postEphemeral" => (json!({"ok": true, "message_ts": ts}), None),
        "users.info" => (
            json!({"ok": true, "user": {"id": body.get("user").cloned().unwrap_or(json!("")),
                   "name": "someone", "profile": {}}}),
            None,
        ),
        _ => (json!({"ok": false, "error": "unknown_method"}), None),
    };
    fake.calls.lock().unwrap().push(SlackCall {
        replica,
        method,
        body,
        ts: posted,
    });
    gate.answered_ms
        .store(fake.epoch.elapsed().as_millis() as usize, Ordering::SeqCst);
    gate.active.fetch_sub(1, Ordering::SeqCst);
    axum::Json(reply).into_response()
}

// ----- the fake orchestrator ------------------------------------------------

/// One idempotency key's work at the fake orchestrator: done once, however
/// often it is submitted.
#[derive(Debug, Clone)]
struct OrchJob {
    request_id: String,
    /// The replica that submitted it first.
    replica: usize,
    submits: usize,
    finish_at: Instant,
}

#[derive(Clone, Default)]
struct FakeOrchestrator {
    jobs: Arc<Mutex<BTreeMap<String, OrchJob>>>,
}

impl FakeOrchestrator {
    fn status_of(&self, key: &str) -> Value {
        let jobs = self.jobs.lock().unwrap();
        let Some(job) = jobs.get(key) else {
            return json!({"status": "failed", "message": "no such job", "retryable": false});
        };
        if Instant::now() >= job.finish_at {
            json!({"status": "succeeded", "summary": "environment created",
                   "url": format!("https://{}.example.internal", job.request_id)})
        } else {
            json!({"status": "running", "message": "provisioning",
                   "status_url": format!("/jobs/{}", urlencode(key))})
        }
    }
    /// Jobs submitted and not finished, per replica that submitted them.
    fn running_by(&self, replica: usize) -> usize {
        let now = Instant::now();
        self.jobs
            .lock()
            .unwrap()
            .values()
            .filter(|j| j.replica == replica && j.finish_at > now)
            .count()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn orch_submit(
    State(fake): State<FakeOrchestrator>,
    AxPath(replica): AxPath<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(body["idempotency_key"], json!(key), "{body}");
    {
        let mut jobs = fake.jobs.lock().unwrap();
        jobs.entry(key.clone())
            .and_modify(|j| j.submits += 1)
            .or_insert_with(|| OrchJob {
                request_id: body["request_id"].as_str().unwrap_or_default().to_owned(),
                replica,
                submits: 1,
                finish_at: Instant::now() + JOB_TAKES,
            });
    }
    (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(fake.status_of(&key)),
    )
        .into_response()
}

async fn orch_status(
    State(fake): State<FakeOrchestrator>,
    AxPath(key): AxPath<String>,
) -> Response {
    axum::Json(fake.status_of(&key)).into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

// ----- the replicas -----------------------------------------------------------

struct Replica {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

/// Every replica started, killed when the test ends however it ends.
#[derive(Default)]
struct Replicas(Vec<Replica>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.0 {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Replicas {
    fn logs(&self) -> String {
        self.0
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica {i} ---\n{}", r.log.lock().unwrap()))
            .collect()
    }
}

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let catalog =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/catalog.yaml");
    let path = dir.join("paver.toml");
    std::fs::write(
        &path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 2

[catalog]
file = "{catalog}"

[slack]
min_interval_ms = 0

[drivers]
create_environment = "orchestrator"
status = "orchestrator"

[orchestrator]
poll_interval_ms = 200

[executor]
workers = 16
lease_secs = 3
"#,
            catalog = catalog.display()
        ),
    )
    .unwrap();
    path
}

fn start_replica(
    i: usize,
    dir: &std::path::Path,
    config: &std::path::Path,
    db: &str,
    slack: &str,
    orch: &str,
) -> Replica {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paver"))
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PAVER_CONFIG")
        .env("PAVER_DATABASE__URL", db)
        .env("PAVER_SLACK__BOT_TOKEN", "xoxb-replicas-test")
        .env("PAVER_SLACK__SIGNING_SECRET", SECRET)
        .env("PAVER_SLACK__API_URL", format!("{slack}/r{i}/api/"))
        .env("PAVER_ORCHESTRATOR__URL", format!("{orch}/r{i}/actions"))
        .env("PAVER_ORCHESTRATOR__SIGNING_SECRET", "orchestrator-secret")
        .env(
            "PAVER_GITOPS__REPO",
            dir.join(format!("gitops-{i}")).display().to_string(),
        )
        .env("PAVER_LOG", "warn")
        .env("HOSTNAME", format!("replica-{i}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start paver serve");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("paver listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("replica {i} did not start:\n{}", log.lock().unwrap())
        });
    Replica { child, base, log }
}

// ----- Slack's side: signed events and presses --------------------------------

fn sign(body: &str) -> (String, String) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = paver::slack::verify::signature(SECRET.as_bytes(), &ts, body.as_bytes());
    (ts, sig)
}

async fn deliver(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: &str,
    content_type: &str,
    retry: Option<u32>,
) -> u16 {
    // A redelivery is signed anew (its own timestamp) over the same body.
    let (ts, sig) = sign(body);
    let mut req = http
        .post(format!("{base}{path}"))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.to_owned());
    if let Some(n) = retry {
        req = req
            .header("x-slack-retry-num", n.to_string())
            .header("x-slack-retry-reason", "http_timeout");
    }
    match req.send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// One mention of the burst.
struct Ask {
    event_id: String,
    ts: String,
    channel: &'static str,
    service: &'static str,
    environment: &'static str,
    body: String,
}

fn asks() -> Vec<Ask> {
    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CORPUS}/event_callback_app_mention.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for (n, (service, environment)) in SERVICES
        .iter()
        .flat_map(|s| [(*s, "staging"), (*s, "dev")])
        .enumerate()
    {
        let ts = format!("1700001{n:03}.000100");
        let channel = CHANNELS[n % CHANNELS.len()];
        let mut p = corpus.clone();
        p["event_id"] = json!(format!("EvReplica{n:03}"));
        p["event"]["text"] = json!(format!("<@U111> create {environment} for {service}"));
        p["event"]["user"] = json!("U0ALICE");
        p["event"]["ts"] = json!(ts);
        p["event"]["event_ts"] = json!(ts);
        p["event"]["channel"] = json!(channel);
        p["event"].as_object_mut().unwrap().remove("blocks");
        out.push(Ask {
            event_id: format!("EvReplica{n:03}"),
            ts,
            channel,
            service,
            environment,
            body: p.to_string(),
        });
    }
    out
}

/// A press of `value` on the card `card_ts` in the thread `thread`; `n`
/// tells two presses of one person apart (Slack gives each its own
/// trigger and action time).
fn press_body(channel: &str, thread: &str, card_ts: &str, value: &str, n: usize) -> String {
    let mut p: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CORPUS}/block_actions_button_with_message.json"))
            .unwrap(),
    )
    .unwrap();
    p["user"]["id"] = json!("U0ALICE");
    p["channel"]["id"] = json!(channel);
    p["container"]["channel_id"] = json!(channel);
    p["container"]["message_ts"] = json!(card_ts);
    p["message"]["ts"] = json!(card_ts);
    p["message"]["thread_ts"] = json!(thread);
    p["trigger_id"] = json!(format!("4916855695380.{card_ts}.{n}"));
    p["actions"][0]["value"] = json!(value);
    p["actions"][0]["action_ts"] = json!(format!("1700009999.{n:06}"));
    format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(p.to_string().as_bytes()).collect::<String>()
    )
}

/// Polls `cond` every 100 ms until it holds or `limit` passes.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_kill_everything_exactly_once() {
    let Some(pg) = Pg::create().await else {
        return;
    };
    let t0 = Instant::now();
    // Migrated once here, so the replicas start on a ready schema.
    let db = Db::connect(&pg.url).await.expect("migrate");
    let slack = FakeSlack::default();
    let slack_url = serve(
        Router::new()
            .route("/r{replica}/api/{method}", any(slack_api))
            .with_state(slack.clone()),
    )
    .await;
    let orch = FakeOrchestrator::default();
    let orch_url = serve(
        Router::new()
            .route("/r{replica}/actions", post(orch_submit))
            .route("/jobs/{key}", get(orch_status))
            .with_state(orch.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let mut replicas = Replicas::default();
    for i in 0..REPLICAS {
        replicas.0.push(start_replica(
            i,
            dir.path(),
            &config,
            &pg.url,
            &slack_url,
            &orch_url,
        ));
    }
    let bases: Vec<String> = replicas.0.iter().map(|r| r.base.clone()).collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = t0.elapsed();

    // The burst: every mention at one replica and, at once, its retry at
    // the next, all at the same time.
    let asks = asks();
    let sends = asks.iter().enumerate().flat_map(|(n, a)| {
        let (first, second) = (&bases[n % REPLICAS], &bases[(n + 1) % REPLICAS]);
        [
            deliver(
                &http,
                first,
                "/slack/events",
                &a.body,
                "application/json",
                None,
            ),
            deliver(
                &http,
                second,
                "/slack/events",
                &a.body,
                "application/json",
                Some(1),
            ),
        ]
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every delivery acknowledged: {statuses:?}\n{}",
        replicas.logs()
    );

    // Each mention's card, in its thread, with its Create button.
    let cards = || {
        let mut by_thread: HashMap<String, Vec<SlackCall>> = HashMap::new();
        for c in slack.calls("chat.postMessage") {
            if button(&c.body, "Create").is_some() {
                let thread = c.body["thread_ts"].as_str().unwrap_or_default().to_owned();
                by_thread.entry(thread).or_default().push(c);
            }
        }
        by_thread
    };
    let all_carded = wait_for(Duration::from_secs(60), "every card", || async {
        cards().len() == asks.len()
    })
    .await;
    let cards = cards();
    // Every event handled (none pending in the inbox): one request each,
    // the redeliveries having made none.
    wait_for(Duration::from_secs(60), "every event handled", || async {
        count(&db, "SELECT COUNT(*) FROM inbox WHERE status = 'pending'").await == 0
    })
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM requests").await,
        asks.len() as i64,
        "one request per event, redeliveries included"
    );

    // The presses: each card's Create at one replica; every third press
    // also redelivered to another replica; every fourth card pressed twice
    // (a double click) at two replicas at once.
    let mut presses = Vec::new();
    let (mut redelivered, mut double) = (0, 0);
    for (n, a) in asks.iter().enumerate() {
        let card = &cards[&a.ts][0];
        let value = button(&card.body, "Create").unwrap();
        let card_ts = card.ts.clone().unwrap();
        let body = press_body(a.channel, &a.ts, &card_ts, &value, 0);
        let at = |k: usize| bases[(n + k) % REPLICAS].clone();
        presses.push((at(0), body.clone(), None));
        if n % 3 == 0 {
            redelivered += 1;
            presses.push((at(1), body.clone(), Some(1)));
        }
        if n % 4 == 0 {
            double += 1;
            presses.push((
                at(2),
                press_body(a.channel, &a.ts, &card_ts, &value, 1),
                None,
            ));
        }
    }
    let statuses = futures_util::future::join_all(presses.iter().map(|(base, body, retry)| {
        deliver(
            &http,
            base,
            "/slack/interactions",
            body,
            "application/x-www-form-urlencoded",
            *retry,
        )
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every press acknowledged: {statuses:?}\n{}",
        replicas.logs()
    );

    // Kill the replica with the most jobs under way at the orchestrator,
    // once it has at least two. Its Web API calls are let finish first and
    // the next held (never answered), so the kill falls between two sends
    // (after its next send is held, or two quiet seconds after its last
    // answer, time enough to record it):
    // a send Slack took but the dead process never recorded would be sent
    // again by the next replica, and Slack's chat.postMessage has no
    // idempotency key to stop that (the one window Paver cannot close).
    wait_for(Duration::from_secs(60), "jobs under way", || async {
        (0..REPLICAS).any(|i| orch.running_by(i) >= 2)
    })
    .await;
    let victim = (0..REPLICAS).max_by_key(|i| orch.running_by(*i)).unwrap();
    let gate = &slack.gates[victim];
    gate.closed.store(true, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(30),
        "the victim's calls answered",
        || async {
            let quiet = (slack.epoch.elapsed().as_millis() as usize)
                .saturating_sub(gate.answered_ms.load(Ordering::SeqCst));
            gate.active.load(Ordering::SeqCst) == 0
                && (gate.held_sends.load(Ordering::SeqCst) > 0 || quiet > 2_000)
        },
    )
    .await;
    let running_at_kill = orch.running_by(victim);
    replicas.0[victim].child.kill().unwrap();
    replicas.0[victim].child.wait().unwrap();
    let killed_at = t0.elapsed();

    // The other two finish everything.
    let in_flight = || async {
        let mut left = Vec::new();
        for (what, sql) in [
            ("open requests", "SELECT COUNT(*) FROM requests WHERE state NOT IN ('succeeded', 'failed', 'cancelled', 'expired', 'denied')"),
            ("live jobs", "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"),
            ("pending outbox rows", "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"),
            ("pending inbox rows", "SELECT COUNT(*) FROM inbox WHERE status = 'pending'"),
        ] {
            let n = count(&db, sql).await;
            if n > 0 {
                left.push(format!("{n} {what}"));
            }
        }
        left
    };
    let settling = Instant::now();
    loop {
        let left = in_flight().await;
        if left.is_empty() {
            break;
        }
        assert!(
            settling.elapsed() < Duration::from_secs(120),
            "still in flight after 120 s: {}\n{}",
            left.join(", "),
            replicas.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = settling.elapsed();
    let logs = replicas.logs();

    // Every event made exactly one request, and each its own.
    let rows = sqlx::query("SELECT id, state, service, environment, channel, thread FROM requests")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), asks.len(), "one request per event\n{logs}");
    let mut request_of: HashMap<String, String> = HashMap::new();
    for r in &rows {
        let id: String = r.get("id");
        let state: String = r.get("state");
        assert_eq!(state, "succeeded", "{id}\n{logs}");
        let thread: String = r.get("thread");
        assert!(
            request_of.insert(thread.clone(), id).is_none(),
            "two requests in thread {thread}"
        );
    }
    for a in &asks {
        let id = request_of
            .get(&a.ts)
            .unwrap_or_else(|| panic!("no request for {}", a.event_id));
        let r = rows
            .iter()
            .find(|r| r.get::<String, _>("id") == *id)
            .unwrap();
        assert_eq!(r.get::<String, _>("service"), a.service);
        assert_eq!(r.get::<String, _>("environment"), a.environment);
        assert_eq!(r.get::<String, _>("channel"), a.channel);
    }

    // Each ended once: one transition into succeeded, one confirmation.
    for (what, sql) in [
        (
            "succeeded",
            "SELECT request_id, COUNT(*) AS n FROM request_events WHERE to_state = 'succeeded' GROUP BY request_id",
        ),
        (
            "confirmed",
            "SELECT request_id, COUNT(*) AS n FROM request_events WHERE to_state = 'confirmed' GROUP BY request_id",
        ),
        (
            "job",
            "SELECT request_id, COUNT(*) AS n FROM jobs GROUP BY request_id",
        ),
    ] {
        let per: Vec<(String, i64)> = sqlx::query(sql)
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("request_id"), r.get("n")))
            .collect();
        assert_eq!(per.len(), asks.len(), "{what}: {per:?}");
        assert!(per.iter().all(|(_, n)| *n == 1), "{what} more than once: {per:?}");
    }

    // Each ran once at the orchestrator: one idempotency key per request,
    // done once; a resumed job (the killed replica's) asked again at most
    // with the same key.
    let keys: Vec<(String, String)> = sqlx::query("SELECT request_id, idempotency_key FROM jobs")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("request_id"), r.get("idempotency_key")))
        .collect();
    let orch_jobs = orch.jobs.lock().unwrap().clone();
    assert_eq!(orch_jobs.len(), asks.len(), "one execution per request");
    for (request, key) in &keys {
        let j = orch_jobs
            .get(key)
            .unwrap_or_else(|| panic!("{key} never ran"));
        assert_eq!(&j.request_id, request);
    }
    let resubmitted = orch_jobs.values().filter(|j| j.submits > 1).count();
    let resumed_elsewhere = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE attempts > 1")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>("n");

    // Every message went out once: one card per thread, posted once (its
    // updates edit that ts), one result line per thread, no post twice.
    let posts = slack.calls("chat.postMessage");
    let updates = slack.calls("chat.update");
    let card_ts: BTreeSet<String> = cards
        .values()
        .flatten()
        .filter_map(|c| c.ts.clone())
        .collect();
    for (thread, c) in &cards {
        assert_eq!(c.len(), 1, "thread {thread}: {} cards", c.len());
    }
    assert!(
        updates
            .iter()
            .all(|u| card_ts.contains(u.body["ts"].as_str().unwrap_or_default())),
        "an update edited something other than a card"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in &posts {
        let mut key = p.body.clone();
        key.as_object_mut().map(|o| o.remove("ts"));
        *seen.entry(key.to_string()).or_default() += 1;
    }
    let dup: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(dup.is_empty(), "posted more than once: {dup:#?}");
    let results_per_thread = |thread: &str| {
        posts
            .iter()
            .filter(|p| {
                p.body["thread_ts"] == thread && p.body.to_string().contains(".example.internal")
            })
            .count()
    };
    for a in &asks {
        assert_eq!(results_per_thread(&a.ts), 1, "the result in {}", a.ts);
    }
    let sent_posts = count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'post' AND status = 'sent'",
    )
    .await;
    assert_eq!(
        posts.len() as i64,
        sent_posts,
        "every chat.postMessage is one outbox row sent"
    );
    let failed = count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'failed'").await;
    assert_eq!(failed, 0);

    let total = t0.elapsed();
    eprintln!(
        "replicas: {} events (each also redelivered to a second replica), {} presses \
         ({redelivered} redelivered, {double} double clicks at a second replica); \
         replica {victim} SIGKILLed at {killed_at:.1?} with {running_at_kill} jobs under way \
         ({resubmitted} submitted again with the same key, {resumed_elsewhere} jobs taken over); \
         {} posts, {} updates; started in {started:.1?}, carded in {all_carded:.1?}, \
         settled {settled:.1?} after the kill, {total:.1?} in all",
        asks.len(),
        presses.len(),
        posts.len(),
        updates.len(),
    );
    assert!(
        slack
            .calls("chat.postMessage")
            .iter()
            .chain(updates.iter())
            .filter(|c| c.replica == victim)
            .count()
            > 0,
        "the victim took part"
    );
}
