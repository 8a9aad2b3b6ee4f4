//! Slack through the real router: the published payload samples, signed
//! with the real algorithm, against a fake Slack Web API on loopback.

mod support;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as AxPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::{json, Value};

use paver::catalog::{Catalog, SharedCatalog};
use paver::chat::dispatcher::Dispatcher;
use paver::chat::ChatSink;
use paver::policy::PolicyConfig;
use paver::requests::{Engine, EngineSettings, RequestState};
use paver::slack::{self, SlackApi, SlackState};
use support::{test_db, FakeDriver, TestDb, SAMPLE_CATALOG};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const CORPUS: &str = "../shared/corpus/slack";

#[derive(Debug, Clone)]
struct Call {
    method: String,
    body: Value,
}

/// Scripted failures per Web API method: (status, Retry-After seconds).
type Failures = HashMap<String, VecDeque<(u16, Option<u64>)>>;

#[derive(Clone, Default)]
struct FakeSlack {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Scripted failures per method: (status, retry-after seconds).
    failures: Arc<Mutex<Failures>>,
    emails: Arc<Mutex<HashMap<String, String>>>,
    socket_url: Arc<Mutex<Option<String>>>,
    ts: Arc<Mutex<u64>>,
}

impl FakeSlack {
    fn calls(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }
    fn fail(&self, method: &str, status: u16, retry_after: Option<u64>) {
        self.failures
            .lock()
            .unwrap()
            .entry(method.into())
            .or_default()
            .push_back((status, retry_after));
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

async fn fake_api(
    State(fake): State<FakeSlack>,
    AxPath(method): AxPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert!(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("Bearer xox") || a.starts_with("Bearer xapp")),
        "every Web API call carries the token"
    );
    let body = parse_body(&body, query.as_deref());
    fake.calls.lock().unwrap().push(Call {
        method: method.clone(),
        body: body.clone(),
    });
    if let Some((status, retry)) = fake
        .failures
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(|q| q.pop_front())
    {
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
        if let Some(r) = retry {
            resp.headers_mut()
                .insert("retry-after", r.to_string().parse().unwrap());
        }
        return resp;
    }
    let ts = {
        let mut t = fake.ts.lock().unwrap();
        *t += 1;
        format!("1700000000.{:06}", *t)
    };
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("C1")
        .to_owned();
    let reply = match method.as_str() {
        "chat.postMessage" => json!({"ok": true, "channel": channel, "ts": ts,
            "message": {"type": "message", "text": "x", "ts": ts, "user": "U0BOT", "bot_id": "B1"}}),
        "chat.update" => {
            let updated = body.get("ts").cloned().unwrap_or(json!(ts));
            json!({"ok": true, "channel": channel, "ts": updated, "text": "x",
                   "message": {"type": "message", "text": "x", "user": "U0BOT", "bot_id": "B1"}})
        }
        "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
        "users.info" => {
            let user = body
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let email = fake.emails.lock().unwrap().get(&user).cloned();
            json!({"ok": true, "user": {"id": user, "name": "someone", "profile": {"email": email}}})
        }
        "apps.connections.open" => {
            json!({"ok": true, "url": fake.socket_url.lock().unwrap().clone()})
        }
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(reply).into_response()
}

struct Rig {
    base: String,
    fake: FakeSlack,
    engine: Engine,
    state: SlackState,
    http: reqwest::Client,
    tdb: TestDb,
    driver: FakeDriver,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn rig() -> Rig {
    rig_with(EngineSettings::default()).await
}

async fn rig_with(settings: EngineSettings) -> Rig {
    let fake = FakeSlack::default();
    let api_base = serve(
        Router::new()
            .route("/api/{method}", any(fake_api))
            .with_state(fake.clone()),
    )
    .await;
    let api = Arc::new(
        SlackApi::new(
            &url::Url::parse(&format!("{api_base}/api/")).unwrap(),
            &SecretString::from("xoxb-test-token".to_owned()),
            Duration::from_millis(20),
        )
        .unwrap(),
    );
    let tdb = test_db().await;
    let catalog = SharedCatalog::new(Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).unwrap());
    let mut sinks: HashMap<String, Arc<dyn ChatSink>> = HashMap::new();
    sinks.insert("slack".into(), api.clone());
    let dispatcher = Dispatcher::new(tdb.db.clone(), sinks);
    dispatcher.spawn();
    let driver = FakeDriver::default();
    let engine = Engine::new(
        tdb.db.clone(),
        catalog.clone(),
        PolicyConfig::default(),
        Arc::new(driver.clone()),
        dispatcher,
        settings,
    );
    let state = SlackState {
        engine: engine.clone(),
        catalog,
        api,
        signing_secret: Some(SecretString::from(SECRET.to_owned())),
        bot_user_id: Arc::default(),
    };
    let base = serve(slack::routes(state.clone())).await;
    Rig {
        base,
        fake,
        engine,
        state,
        http: reqwest::Client::new(),
        tdb,
        driver,
    }
}

fn sign(body: &str, ts: i64) -> (String, String) {
    let ts = ts.to_string();
    (
        ts.clone(),
        paver::slack::verify::signature(SECRET.as_bytes(), &ts, body.as_bytes()),
    )
}

fn corpus(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{CORPUS}/{name}")).unwrap()).unwrap()
}

impl Rig {
    async fn post(
        &self,
        path: &str,
        body: &str,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let (ts, sig) = sign(body, chrono::Utc::now().timestamp());
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body.to_owned());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn event(&self, payload: &Value, extra: &[(&str, &str)]) -> reqwest::Response {
        self.post(
            "/slack/events",
            &payload.to_string(),
            "application/json",
            extra,
        )
        .await
    }

    async fn press(&self, user: &str, value: &str) -> reqwest::Response {
        let mut p = corpus("block_actions_button_with_message.json");
        p["user"]["id"] = json!(user);
        p["actions"][0]["value"] = json!(value);
        let body = format!(
            "payload={}",
            url::form_urlencoded::byte_serialize(p.to_string().as_bytes()).collect::<String>()
        );
        self.post(
            "/slack/interactions",
            &body,
            "application/x-www-form-urlencoded",
            &[],
        )
        .await
    }

    async fn idle(&self) {
        assert!(self
            .engine
            .wait_idle(Duration::from_secs(20))
            .await
            .unwrap());
    }

    /// The value of the button labelled `label` on the latest card.
    fn button(&self, label: &str) -> String {
        let mut found = None;
        for call in self.fake.calls.lock().unwrap().iter() {
            if call.method != "chat.postMessage" && call.method != "chat.update" {
                continue;
            }
            let blocks = blocks_of(&call.body);
            for b in blocks.as_array().into_iter().flatten() {
                for e in b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if e["text"]["text"] == label {
                        found = e["value"].as_str().map(str::to_owned);
                    }
                }
            }
        }
        found.unwrap_or_else(|| panic!("no {label} button was sent"))
    }
}

fn blocks_of(body: &Value) -> Value {
    match body.get("blocks") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap(),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn mention(text: &str, user: &str, event_id: &str) -> Value {
    let mut p = corpus("event_callback_app_mention.json");
    p["event"]["text"] = json!(format!("<@U111> {text}"));
    p["event"]["user"] = json!(user);
    p["event_id"] = json!(event_id);
    p
}

#[tokio::test]
async fn url_verification_answers_the_challenge() {
    let r = rig().await;
    let p = corpus("events_url_verification.json");
    let resp = r.event(&p, &[]).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["challenge"], p["challenge"]);
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_junk_are_refused() {
    let r = rig().await;
    let body = mention("restart cart-service in dev", "U0ALICE", "Ev1").to_string();
    // Wrong signature, no headers, a stale timestamp: 401 and nothing else.
    let resp = r
        .http
        .post(format!("{}/slack/events", r.base))
        .header(
            "x-slack-request-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("x-slack-signature", "v0=deadbeef")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = r
        .http
        .post(format!("{}/slack/events", r.base))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (ts, sig) = sign(&body, chrono::Utc::now().timestamp() - 600);
    let resp = r
        .http
        .post(format!("{}/slack/commands", r.base))
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Signed but malformed: 400, not a panic.
    assert_eq!(r.event(&json!("just a string"), &[]).await.status(), 400);
    assert_eq!(
        r.post("/slack/events", "{not json", "application/json", &[])
            .await
            .status(),
        400
    );
    assert_eq!(
        r.post(
            "/slack/interactions",
            "payload=%7Bnope",
            "application/x-www-form-urlencoded",
            &[]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        r.post(
            "/slack/interactions",
            "nothing here",
            "application/x-www-form-urlencoded",
            &[]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        r.post(
            "/slack/commands",
            "text=hi",
            "application/x-www-form-urlencoded",
            &[]
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        r.event(&json!({"type": "event_callback"}), &[])
            .await
            .status(),
        400
    );
    r.idle().await;
    assert!(
        r.fake.calls.lock().unwrap().is_empty(),
        "nothing was processed"
    );
    assert!(r
        .tdb
        .db
        .requests()
        .in_state(RequestState::Proposed)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_mention_becomes_a_card_and_buttons_drive_it_to_the_url() {
    let r = rig().await;
    let resp = r
        .event(
            &mention(
                "create staging for order-service with Postgres",
                "U0ALICE",
                "Ev100",
            ),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 200);
    r.idle().await;
    let posts = r.fake.calls("chat.postMessage");
    assert_eq!(posts.len(), 1);
    let card = &posts[0];
    assert_eq!(card["channel"], "C111");
    assert_eq!(
        card["thread_ts"], "1678252212.229129",
        "the card goes in the mention's thread"
    );
    let blocks = blocks_of(card);
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("Create staging for order-service"));
    let create = r.button("Create");
    assert!(create.starts_with("confirm:r-"));

    // Someone else cannot confirm: they get an ephemeral note.
    assert_eq!(r.press("U0DAVE", &create).await.status(), 200);
    r.idle().await;
    let eph = r.fake.calls("chat.postEphemeral");
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0]["user"], "U0DAVE");

    assert_eq!(r.press("U0ALICE", &create).await.status(), 200);
    r.idle().await;
    assert_eq!(r.driver.calls(), 1);
    let updates = r.fake.calls("chat.update");
    assert!(!updates.is_empty());
    assert!(
        updates.iter().all(|u| u["ts"] == "1700000000.000001"),
        "updated in place: {updates:?}"
    );
    let thread_msgs: Vec<Value> = r
        .fake
        .calls("chat.postMessage")
        .into_iter()
        .skip(1)
        .collect();
    // Slack threads do not nest: the result goes to the thread the card is in.
    assert!(
        thread_msgs
            .iter()
            .any(|m| m["thread_ts"] == "1678252212.229129"
                && m.to_string()
                    .contains("https://order-service.staging.example.internal")),
        "{thread_msgs:?}"
    );
}

#[tokio::test]
async fn approval_through_slack_needs_a_second_person() {
    let r = rig().await;
    r.event(
        &mention("restart checkout-api in production", "U0ALICE", "Ev200"),
        &[],
    )
    .await;
    r.idle().await;
    r.press("U0ALICE", &r.button("Restart")).await;
    r.idle().await;
    let approve = r.button("Approve");
    r.press("U0ALICE", &approve).await;
    r.idle().await;
    assert_eq!(r.driver.calls(), 0, "four-eyes");
    r.press("U0DAVE", &approve).await;
    r.idle().await;
    assert_eq!(r.driver.calls(), 1);
    let req = &r
        .tdb
        .db
        .requests()
        .in_state(RequestState::Succeeded)
        .await
        .unwrap()[0];
    assert_eq!(req.approver.as_deref(), Some("dave"));
}

#[tokio::test]
async fn retries_and_bots_are_not_processed() {
    let r = rig().await;
    let p = mention("restart cart-service in dev", "U0ALICE", "EvDup");
    assert_eq!(r.event(&p, &[]).await.status(), 200);
    assert_eq!(
        r.event(
            &p,
            &[
                ("x-slack-retry-num", "1"),
                ("x-slack-retry-reason", "http_timeout")
            ]
        )
        .await
        .status(),
        200
    );
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    // Messages from bots (and edits) are ignored.
    for name in [
        "slack-morphism/message_changed_by_bot.json",
        "slack-morphism/message_changed.json",
    ] {
        assert_eq!(r.event(&corpus(name), &[]).await.status(), 200);
    }
    let mut bot = mention("restart cart-service in dev", "U0ALICE", "EvBot");
    bot["event"]["bot_id"] = json!("B1");
    r.event(&bot, &[]).await;
    let mut own = mention("restart cart-service in dev", "U111", "EvOwn");
    own["event"]["user"] = json!("U111");
    r.event(&own, &[]).await;
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn slash_commands_answer_at_once_and_post_the_card() {
    let r = rig().await;
    let form =
        std::fs::read_to_string(format!("{CORPUS}/slash_command_bolt_python.form.txt")).unwrap();
    let form = form
        .trim()
        .replace("user_id=W111", "user_id=U0ALICE")
        .replace("text=Hi", "text=restart+cart-service+in+dev");
    let resp = r
        .post(
            "/slack/commands",
            &form,
            "application/x-www-form-urlencoded",
            &[],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    let help = form.replace("text=restart+cart-service+in+dev", "text=help");
    let body: Value = r
        .post(
            "/slack/commands",
            &help,
            "application/x-www-form-urlencoded",
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["blocks"].to_string().contains("create staging"),
        "{body}"
    );
}

#[tokio::test]
async fn user_text_is_escaped_when_shown_back() {
    let r = rig().await;
    r.event(
        &mention(
            "how do I get <!channel> to read <https://evil.example|the docs>?",
            "U0ALICE",
            "EvEsc",
        ),
        &[],
    )
    .await;
    r.idle().await;
    let post = r.fake.calls("chat.postMessage")[0].to_string();
    assert!(!post.contains("<!channel>"), "{post}");
    assert!(!post.contains("<https://evil"), "{post}");
}

#[tokio::test]
async fn identity_falls_back_to_the_catalog_email() {
    let r = rig().await;
    r.fake
        .emails
        .lock()
        .unwrap()
        .insert("UNEWBOB".into(), "bob@example.com".into());
    r.event(
        &mention("restart payment-service in dev", "UNEWBOB", "EvId1"),
        &[],
    )
    .await;
    // In a thread of its own: a message in the thread of bob's proposal
    // would be a follow-up to it.
    let mut stranger = mention("restart payment-service in dev", "USTRANGER", "EvId2");
    stranger["event"]["ts"] = json!("1678252299.000001");
    r.event(&stranger, &[]).await;
    r.idle().await;
    let reqs = r
        .tdb
        .db
        .requests()
        .in_state(RequestState::Proposed)
        .await
        .unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].requester, "bob");
    let texts = r
        .fake
        .calls("chat.postMessage")
        .iter()
        .map(|c| c.to_string())
        .collect::<String>();
    assert!(texts.contains("don't know USTRANGER"), "{texts}");
    // users.info is cached.
    r.event(
        &mention("restart payment-service in dev", "UNEWBOB", "EvId3"),
        &[],
    )
    .await;
    r.idle().await;
    assert_eq!(
        r.fake
            .calls("users.info")
            .iter()
            .filter(|c| c["user"] == "UNEWBOB")
            .count(),
        1
    );
}

#[tokio::test]
async fn rate_limits_and_errors_delay_but_never_drop() {
    let r = rig().await;
    r.fake.fail("chat.postMessage", 429, Some(1));
    r.fake.fail("chat.postMessage", 500, None);
    r.event(
        &mention("restart cart-service in dev", "U0ALICE", "Ev429"),
        &[],
    )
    .await;
    r.idle().await;
    let posts = r.fake.calls("chat.postMessage");
    assert_eq!(posts.len(), 3, "two failures, then the one delivery");
    assert_eq!(r.tdb.db.outbox().pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn socket_mode_uses_the_same_handlers_and_acknowledges_envelopes() {
    let r = rig().await;
    // A fake Socket Mode server: sends hello and two envelopes, collects acks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *r.fake.socket_url.lock().unwrap() = Some(format!("ws://{addr}/link"));
    let acks = Arc::new(Mutex::new(Vec::<Value>::new()));
    let corpus_env = corpus("socket_mode_envelope_events_api_app_mention.json");
    let mut ours = corpus_env.clone();
    ours["envelope_id"] = json!("env-ours");
    ours["payload"]["event"] =
        mention("restart cart-service in dev", "U0ALICE", "x")["event"].clone();
    ours["payload"]["event_id"] = json!("EvSocket");
    let server_acks = acks.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(json!({"type": "hello"}).to_string().into())
            .await
            .unwrap();
        for env in [corpus_env, ours] {
            ws.send(env.to_string().into()).await.unwrap();
            if let Some(Ok(m)) = ws.next().await {
                server_acks
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(m.to_text().unwrap()).unwrap());
            }
        }
        // Hold the connection open until the test ends.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let task = tokio::spawn(paver::slack::socket::run(
        r.state.clone(),
        SecretString::from("xapp-test".to_owned()),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acks.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "envelopes were not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.idle().await;
    let acks = acks.lock().unwrap().clone();
    assert_eq!(
        acks[0]["envelope_id"],
        "ac2cfd40-6f8c-4d5e-a1ad-646e532baa19"
    );
    assert_eq!(acks[1]["envelope_id"], "env-ours");
    // The corpus envelope is a plain channel message (not a mention event): ignored.
    // Ours is an app_mention: a card.
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    assert_eq!(r.fake.calls("apps.connections.open").len(), 1);
    task.abort();
}

#[tokio::test]
async fn direct_messages_and_replies_in_a_request_thread_are_heard() {
    let r = rig().await;
    let mut dm = corpus("event_callback_message.json");
    dm["event"] = json!({"type": "message", "channel_type": "im", "channel": "D123", "user": "U0ALICE",
                         "text": "restart cart-service in dev", "ts": "1.1"});
    dm["event_id"] = json!("EvDm");
    assert_eq!(r.event(&dm, &[]).await.status(), 200);
    // A request made by mention opens a thread; a reply there is for Paver,
    // a plain channel message elsewhere is not.
    r.event(
        &mention("create staging for order-service", "U0ALICE", "EvT1"),
        &[],
    )
    .await;
    r.idle().await;
    let mut reply = dm.clone();
    reply["event"] = json!({"type": "message", "channel_type": "channel", "channel": "C111", "user": "U0ALICE",
                            "text": "who owns order-service?", "ts": "2.2", "thread_ts": "1678252212.229129"});
    reply["event_id"] = json!("EvT2");
    r.event(&reply, &[]).await;
    let mut chatter = reply.clone();
    chatter["event"]["thread_ts"] = json!("9.9");
    chatter["event"]["text"] = json!("who owns cart-service?");
    chatter["event_id"] = json!("EvT3");
    r.event(&chatter, &[]).await;
    r.idle().await;
    let posts = r.fake.calls("chat.postMessage");
    assert!(
        posts.iter().any(|p| p["channel"] == "D123"),
        "DM answered: {posts:?}"
    );
    let owner_replies: Vec<&Value> = posts
        .iter()
        .filter(|p| p.to_string().contains("owned by"))
        .collect();
    assert_eq!(owner_replies.len(), 1, "{posts:?}");
    assert_eq!(owner_replies[0]["thread_ts"], "1678252212.229129");
}

#[tokio::test]
async fn a_saturated_paver_asks_slack_to_redeliver_instead_of_queueing() {
    let r = rig_with(EngineSettings {
        max_in_flight: 0,
        ..EngineSettings::default()
    })
    .await;
    let resp = r
        .event(
            &mention("restart cart-service in dev", "U0ALICE", "EvBusy"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 503, "not acknowledged, so Slack retries");
    r.idle().await;
    assert!(r.fake.calls("chat.postMessage").is_empty());
    // The event was not marked processed: the redelivery will be handled.
    assert!(r.tdb.db.first_delivery("slack", "EvBusy").await.unwrap());
}
