//! Slack through the real router: the published payload samples, signed
//! with the real algorithm, against a fake Slack Web API on loopback.

mod support;

use std::collections::{HashMap, VecDeque};
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

use paver::config::SlackConfig;
use paver::domain::RequestState;
use paver::engine::{Engine, EngineSettings};
use paver::policy::{PolicyConfig, UnknownUsers};
use paver::slack::{self, SlackApi, SlackState};
use support::paver::TestPaver;
use support::{count, test_db, FakeDriver, TestDb};

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

/// The workspace the fake's bot token belongs to (the corpus mention's).
const TEAM: &str = "T0G9PQBBK";

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
    if method == "auth.test" {
        return axum::Json(
            json!({"ok": true, "url": "https://example.slack.com/", "team": "Example",
            "user": "paver", "team_id": TEAM, "user_id": "U111", "bot_id": "B1"}),
        )
        .into_response();
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
    // As Slack does: a post to a user id lands in their DM (D…), and only
    // the DM's id edits it.
    let dm = |c: &str| c.strip_prefix('U').map(|rest| format!("D{rest}"));
    let reply = match method.as_str() {
        "chat.update" if channel.starts_with('U') => {
            json!({"ok": false, "error": "channel_not_found"})
        }
        "chat.postMessage" => {
            json!({"ok": true, "channel": dm(&channel).unwrap_or(channel.clone()), "ts": ts,
            "message": {"type": "message", "text": "x", "ts": ts, "user": "U0BOT", "bot_id": "B1"}})
        }
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
        // What Slack answers: the view as opened, with its id.
        "views.open" => {
            let mut view = body.get("view").cloned().unwrap_or(json!({}));
            if let Value::String(s) = &view {
                view = serde_json::from_str(s).unwrap_or(json!({}));
            }
            view["id"] = json!("V0REASON");
            view["team_id"] = json!(TEAM);
            view["state"] = json!({"values": {}});
            view["hash"] = json!("1.abc");
            view["app_id"] = json!("A111");
            view["bot_id"] = json!("B1");
            json!({"ok": true, "view": view})
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
    rig_full(
        settings,
        PolicyConfig::default(),
        SlackConfig::default(),
        None,
    )
    .await
}

/// A rig; `before_start` scripts the fake before Paver asks it anything.
async fn rig_full(
    settings: EngineSettings,
    policy: PolicyConfig,
    config: SlackConfig,
    before_start: Option<&dyn Fn(&FakeSlack)>,
) -> Rig {
    let fake = FakeSlack::default();
    if let Some(f) = before_start {
        f(&fake);
    }
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
        )
        .unwrap(),
    );
    let tdb = test_db().await;
    let paver = TestPaver::builder()
        .on_db(tdb.db.clone())
        .policy(policy)
        .settings(settings)
        .sink("slack", api.clone())
        .start()
        .await;
    let (engine, driver, catalog) = (paver.engine, paver.driver, paver.catalog);
    let config = SlackConfig {
        signing_secret: Some(SecretString::from(SECRET.to_owned())),
        ..config
    };
    let state = SlackState::new(engine.clone(), catalog, api, &config);
    state.start();
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

    /// A reason form submitted (view_submission) by `user`: Slack sends
    /// back the view's private_metadata and what was typed in its field.
    async fn submit_reason(&self, user: &str, metadata: &str, reason: &str) -> reqwest::Response {
        let p = json!({
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "example"},
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A111",
            "trigger_id": "4916855695380.xxx.submit",
            "view": {
                "id": "V0REASON",
                "type": "modal",
                "callback_id": "paver_reason",
                "private_metadata": metadata,
                "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
            },
        });
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

    /// The request waiting for approval: restart checkout-api in production,
    /// asked by alice.
    async fn awaiting_approval(&self) -> String {
        self.event(
            &mention("restart checkout-api in production", "U0ALICE", "EvDeny"),
            &[],
        )
        .await;
        self.idle().await;
        self.press("U0ALICE", &self.button("Restart")).await;
        self.idle().await;
        let req = self
            .tdb
            .db
            .requests()
            .in_state(RequestState::AwaitingApproval)
            .await
            .unwrap();
        req[0].id.clone()
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
        r.fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .all(|c| c.method == "auth.test"),
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
        .replace("team_id=T111", &format!("team_id={TEAM}"))
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
    ours["payload"]["team_id"] = json!(TEAM);
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
    let readiness = paver::util::readiness::Readiness::default();
    let task = tokio::spawn(paver::slack::socket::run(
        r.state.clone(),
        SecretString::from("xapp-test".to_owned()),
        readiness.component("slack_socket"),
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
    // `/readyz` sees the connection up while it lasts.
    assert_eq!(readiness.snapshot(), [("slack_socket", true)]);
    task.abort();
}

#[tokio::test]
async fn direct_messages_and_replies_in_a_request_thread_are_heard() {
    let r = rig().await;
    let mut dm = corpus("event_callback_message.json");
    dm["event"] = json!({"type": "message", "channel_type": "im", "channel": "D123", "user": "U0ALICE",
                         "text": "restart cart-service in dev", "ts": "1.1"});
    dm["event_id"] = json!("EvDm");
    dm["team_id"] = json!(TEAM);
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
    // Nothing was stored: the redelivery will be handled.
    assert_eq!(
        r.tdb
            .db
            .inbox()
            .state(paver::chat::Platform::Slack, "EvBusy")
            .await
            .unwrap(),
        None
    );
}

// ----- workspace boundaries (issue 10, item 7) ---------------------------------

fn form_body(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

impl Rig {
    async fn command(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post(
            "/slack/commands",
            &form_body(fields),
            "application/x-www-form-urlencoded",
            &[],
        )
        .await
    }
}

#[tokio::test]
async fn events_from_other_workspaces_are_acknowledged_and_ignored() {
    let r = rig().await;
    // Another workspace: event, press and slash command are all answered
    // 200 (so Slack does not retry) and nothing is handled.
    let mut foreign = mention("restart cart-service in dev", "U0ALICE", "EvForeign");
    foreign["team_id"] = json!("TOTHER");
    assert_eq!(r.event(&foreign, &[]).await.status(), 200);
    let mut p = corpus("block_actions_button_with_message.json");
    p["team"]["id"] = json!("TOTHER");
    p["user"]["id"] = json!("U0ALICE");
    let body = format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(p.to_string().as_bytes()).collect::<String>()
    );
    let resp = r
        .post(
            "/slack/interactions",
            &body,
            "application/x-www-form-urlencoded",
            &[],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = r
        .command(&[
            ("team_id", "TOTHER"),
            ("user_id", "U0ALICE"),
            ("channel_id", "C111"),
            ("text", "restart cart-service in dev"),
            ("trigger_id", "t-foreign"),
        ])
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().is_empty(), "no answer either");
    r.idle().await;
    assert!(r.fake.calls("chat.postMessage").is_empty());
    assert!(r.fake.calls("chat.postEphemeral").is_empty());
    assert_eq!(
        r.tdb
            .db
            .inbox()
            .state(paver::chat::Platform::Slack, "EvForeign")
            .await
            .unwrap(),
        None,
        "nothing stored"
    );
    // The workspace auth.test named is served.
    assert_eq!(
        r.event(
            &mention("restart cart-service in dev", "U0ALICE", "EvHome"),
            &[]
        )
        .await
        .status(),
        200
    );
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    assert_eq!(r.fake.calls("auth.test").len(), 1, "asked once, at start");
}

#[tokio::test]
async fn the_allow_lists_name_the_workspaces_and_the_app() {
    let r = rig_full(
        EngineSettings::default(),
        PolicyConfig::default(),
        SlackConfig {
            team_ids: vec!["T111".into()],
            app_id: Some("A111".into()),
            ..SlackConfig::default()
        },
        None,
    )
    .await;
    // auth.test's own workspace is not listed: ignored.
    let home = mention("restart cart-service in dev", "U0ALICE", "EvHome");
    assert_eq!(r.event(&home, &[]).await.status(), 200);
    // A listed workspace, but another app: ignored.
    let mut other_app = mention("restart cart-service in dev", "U0ALICE", "EvApp");
    other_app["team_id"] = json!("T111");
    other_app["api_app_id"] = json!("A999");
    assert_eq!(r.event(&other_app, &[]).await.status(), 200);
    r.idle().await;
    assert!(r.fake.calls("chat.postMessage").is_empty());
    // Listed workspace, our app: handled.
    let mut ok = mention("restart cart-service in dev", "U0ALICE", "EvOk");
    ok["team_id"] = json!("T111");
    assert_eq!(r.event(&ok, &[]).await.status(), 200);
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn until_auth_test_answers_events_are_refused_unacknowledged() {
    let fail = |f: &FakeSlack| f.fail("auth.test", 500, None);
    let r = rig_full(
        EngineSettings::default(),
        PolicyConfig::default(),
        SlackConfig::default(),
        Some(&fail),
    )
    .await;
    let p = mention("restart cart-service in dev", "U0ALICE", "EvEarly");
    // The first auth.test failed: not acknowledged, so Slack retries.
    assert_eq!(r.event(&p, &[]).await.status(), 503);
    assert_eq!(
        r.tdb
            .db
            .inbox()
            .state(paver::chat::Platform::Slack, "EvEarly")
            .await
            .unwrap(),
        None
    );
    // Paver asks again (after a second); Slack's redelivery is then handled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = r.event(&p, &[("x-slack-retry-num", "1")]).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "auth.test never retried"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    assert!(r.fake.calls("auth.test").len() >= 2);
}

#[tokio::test]
async fn users_not_in_the_catalog_get_help_not_ownership_or_status() {
    for (policy, shown) in [(UnknownUsers::None, false), (UnknownUsers::Read, true)] {
        let r = rig_full(
            EngineSettings::default(),
            PolicyConfig {
                unknown_users: policy,
                ..PolicyConfig::default()
            },
            SlackConfig::default(),
            None,
        )
        .await;
        for (i, text) in [
            "who owns checkout-api?",
            "status of order-service",
            "scorecard for team-data",
        ]
        .into_iter()
        .enumerate()
        {
            let mut ev = mention(text, "USTRANGER", &format!("EvUnknown{i}"));
            ev["event"]["ts"] = json!(format!("1678252299.00000{i}"));
            assert_eq!(r.event(&ev, &[]).await.status(), 200);
        }
        r.idle().await;
        let posts = r.fake.calls("chat.postMessage");
        assert_eq!(posts.len(), 3, "{posts:?}");
        let texts = posts.iter().map(|c| c.to_string()).collect::<String>();
        for data in [
            "owned by",
            "Status of order-service",
            "recommendation-engine",
        ] {
            assert_eq!(texts.contains(data), shown, "{policy:?} {data}: {texts}");
        }
        if !shown {
            assert!(
                posts.iter().all(|p| p["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("I don't know USTRANGER")),
                "{texts}"
            );
            assert!(texts.contains("what I can do"), "help comes along: {texts}");
        }
    }
}

// ----- nothing acknowledged is lost (issue 10, item 8) -----------------------

#[tokio::test]
async fn a_closed_database_gets_503_and_nothing_is_acknowledged() {
    let r = rig().await;
    r.tdb.db.pool().close().await;
    let resp = r
        .event(
            &mention("restart cart-service in dev", "U0ALICE", "EvDown"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 503, "not acknowledged, so Slack retries");
    let resp = r.press("U0ALICE", "confirm:r-x:n").await;
    assert_eq!(resp.status(), 503);
    let resp = r
        .command(&[
            ("team_id", TEAM),
            ("user_id", "U0ALICE"),
            ("channel_id", "C111"),
            ("text", "restart cart-service in dev"),
            ("trigger_id", "t-down"),
        ])
        .await;
    assert_eq!(resp.status(), 503);
    // Socket Mode: the envelope is left unacknowledged.
    let mut env = corpus("socket_mode_envelope_events_api_app_mention.json");
    env["payload"] = mention("restart cart-service in dev", "U0ALICE", "EvDownSocket");
    assert_eq!(envelope(&r.state, &env).await, None);
}

/// A Socket Mode frame through the adapter; its acknowledgement as JSON.
async fn envelope(state: &paver::slack::SlackState, env: &Value) -> Option<Value> {
    paver::slack::socket::handle_envelope(state, &env.to_string())
        .await
        .map(|ack| serde_json::to_value(ack).unwrap())
}

async fn set_inbox_online(db: &paver::storage::Db, online: bool) {
    // The table the acknowledgement depends on disappears and comes back:
    // to the adapter, exactly a database that fails and then recovers.
    let sql = if online {
        "ALTER TABLE inbox_offline RENAME TO inbox"
    } else {
        "ALTER TABLE inbox RENAME TO inbox_offline"
    };
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

#[tokio::test]
async fn after_an_outage_the_redelivered_event_is_handled_exactly_once() {
    let r = rig().await;
    let p = mention("restart cart-service in dev", "U0ALICE", "EvOutage");
    set_inbox_online(&r.tdb.db, false).await;
    assert_eq!(r.event(&p, &[]).await.status(), 503);
    let mut env = corpus("socket_mode_envelope_events_api_app_mention.json");
    env["payload"] = p.clone();
    assert_eq!(
        envelope(&r.state, &env).await,
        None,
        "unacknowledged envelope"
    );
    r.idle().await;
    assert!(r.fake.calls("chat.postMessage").is_empty());
    set_inbox_online(&r.tdb.db, true).await;
    // Slack's redeliveries (HTTP and Socket Mode): handled once.
    let retry = [
        ("x-slack-retry-num", "1"),
        ("x-slack-retry-reason", "http_error"),
    ];
    assert_eq!(r.event(&p, &retry).await.status(), 200);
    assert_eq!(
        envelope(&r.state, &env).await,
        Some(json!({"envelope_id": env["envelope_id"]}))
    );
    assert_eq!(r.event(&p, &retry).await.status(), 200);
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    let stored = r
        .tdb
        .db
        .inbox()
        .state(paver::chat::Platform::Slack, "EvOutage")
        .await
        .unwrap();
    assert_eq!(
        stored.map(|s| (s.status, s.attempts)),
        Some(("done".into(), 1))
    );
}

#[tokio::test]
async fn an_event_left_pending_by_a_crash_is_handled_by_recovery() {
    let r = rig().await;
    let inbox = r.tdb.db.inbox();
    // A replica stored this one, acknowledged it, and died (its lease is over).
    let work = paver::slack::inbound::SlackWork::Event {
        event: serde_json::from_value(
            mention("restart cart-service in dev", "U0ALICE", "x")["event"].clone(),
        )
        .unwrap(),
    };
    let payload = serde_json::to_string(&work).unwrap();
    inbox
        .insert(paver::chat::Platform::Slack, "EvCrash", &payload, 0)
        .await
        .unwrap()
        .unwrap();
    // Another is still being handled by a live replica: left alone.
    let mut other = mention("create staging for order-service", "U0ALICE", "y")["event"].clone();
    other["ts"] = json!("1678252299.000009");
    let live = serde_json::to_string(&paver::slack::inbound::SlackWork::Event {
        event: serde_json::from_value(other).unwrap(),
    })
    .unwrap();
    inbox
        .insert(paver::chat::Platform::Slack, "EvLive", &live, 60_000)
        .await
        .unwrap()
        .unwrap();

    paver::engine::inbox::recover_once(&r.state).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while inbox
        .state(paver::chat::Platform::Slack, "EvCrash")
        .await
        .unwrap()
        .unwrap()
        .status
        != "done"
    {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.idle().await;
    let posts = r.fake.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].to_string().contains("Restart cart-service"));
    let live = inbox
        .state(paver::chat::Platform::Slack, "EvLive")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((live.status.as_str(), live.attempts), ("pending", 1));
    // Done is done: recovery does not take it again.
    assert_eq!(
        paver::engine::inbox::recover_once(&r.state).await.unwrap(),
        0
    );
    r.idle().await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    // Handled events are forgotten in time; pending ones never are.
    let later = paver::storage::now_ms() + 1;
    assert_eq!(inbox.purge_done(later).await.unwrap(), 1);
    assert_eq!(
        inbox
            .state(paver::chat::Platform::Slack, "EvCrash")
            .await
            .unwrap(),
        None
    );
    assert!(inbox
        .state(paver::chat::Platform::Slack, "EvLive")
        .await
        .unwrap()
        .is_some());
}

/// Marks an inbox event pending again with its lease over: what a replica
/// that died after (part of) its handling, before recording it as handled,
/// leaves behind.
async fn cut_off_by_a_crash(db: &paver::storage::Db, event_id: &str) {
    sqlx::query("UPDATE inbox SET status = 'pending', lease_until = 0 WHERE event_id = $1")
        .bind(event_id)
        .execute(db.pool())
        .await
        .unwrap();
}

async fn recovered(r: &Rig, event_id: &str, attempts: i64) {
    paver::engine::inbox::recover_once(&r.state).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = r
            .tdb
            .db
            .inbox()
            .state(paver::chat::Platform::Slack, event_id)
            .await
            .unwrap()
            .unwrap();
        if (s.status.as_str(), s.attempts) == ("done", attempts) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never handled: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.idle().await;
}

#[tokio::test]
async fn an_event_handled_again_after_a_crash_stores_and_posts_nothing_twice() {
    let r = rig().await;
    let db = &r.tdb.db;
    let stored = |text: &str, ts: &str| {
        let mut event = mention(text, "U0ALICE", "x")["event"].clone();
        event["ts"] = json!(ts);
        serde_json::to_string(&paver::slack::inbound::SlackWork::Event {
            event: serde_json::from_value(event).unwrap(),
        })
        .unwrap()
    };
    let inbox = db.inbox();
    let platform = paver::chat::Platform::Slack;

    // A request: handled to the end, but the replica died before marking
    // the event handled. Taken again, it finds its request and its card.
    let payload = stored(
        "create staging for order-service with Postgres",
        "1678252300.000001",
    );
    inbox
        .insert(platform, "EvAgain", &payload, 0)
        .await
        .unwrap()
        .unwrap();
    recovered(&r, "EvAgain", 2).await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1);
    cut_off_by_a_crash(db, "EvAgain").await;
    recovered(&r, "EvAgain", 3).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests").await, 1);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox").await, 1);
    assert_eq!(r.fake.calls("chat.postMessage").len(), 1, "the card once");

    // Died after storing the request, before its card was queued: taken
    // again, the request is not stored twice and its card goes out.
    let payload = stored("restart cart-service in dev", "1678252300.000002");
    inbox
        .insert(platform, "EvHalf", &payload, 0)
        .await
        .unwrap()
        .unwrap();
    recovered(&r, "EvHalf", 2).await;
    sqlx::query("DELETE FROM outbox WHERE origin LIKE 'slack:EvHalf#%'")
        .execute(db.pool())
        .await
        .unwrap();
    r.fake.calls.lock().unwrap().clear();
    cut_off_by_a_crash(db, "EvHalf").await;
    recovered(&r, "EvHalf", 3).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests").await, 2);
    let posts = r.fake.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].to_string().contains("Restart cart-service"),
        "{posts:?}"
    );

    // A plain answer (no request) is not said twice either.
    let payload = stored("help", "1678252300.000003");
    inbox
        .insert(platform, "EvHelp", &payload, 0)
        .await
        .unwrap()
        .unwrap();
    recovered(&r, "EvHelp", 2).await;
    let said = r.fake.calls("chat.postMessage").len();
    cut_off_by_a_crash(db, "EvHelp").await;
    recovered(&r, "EvHelp", 3).await;
    assert_eq!(r.fake.calls("chat.postMessage").len(), said);
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests").await, 2);
}

// ----- bounded everywhere (issue 10, item 9) -----------------------------------

fn post_item(platform: &str, channel: &str, text: &str) -> paver::storage::outbox::OutboxItem {
    paver::storage::outbox::OutboxItem {
        platform: paver::chat::Platform::parse(platform).unwrap(),
        channel: channel.into(),
        kind: paver::storage::outbox::OutboxKind::Post,
        user_id: None,
        card_key: None,
        thread_key: None,
        thread_ref: None,
        body: serde_json::to_string(&paver::chat::messages::notice(text)).unwrap(),
    }
}

#[tokio::test]
async fn rows_for_a_platform_not_served_do_not_starve_delivery() {
    let r = rig().await;
    let outbox = r.tdb.db.outbox();
    for i in 0..200 {
        outbox
            .enqueue(&post_item("discord", "123", &format!("undeliverable {i}")))
            .await
            .unwrap();
    }
    outbox
        .enqueue(&post_item("slack", "C111", "for Slack"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while r.fake.calls("chat.postMessage").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Slack row starved behind rows nobody here can send"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r.fake.calls("chat.postMessage")[0]
        .to_string()
        .contains("for Slack"));
}

#[tokio::test]
async fn card_updates_waiting_to_be_sent_are_replaced_not_queued() {
    let r = rig().await;
    let outbox = r.tdb.db.outbox();
    let before = outbox.pending_count().await.unwrap();
    for i in 1..=100 {
        // Discord is not served here, so nothing is sent meanwhile.
        let mut item = post_item("discord", "123", &format!("progress line {i}"));
        item.kind = paver::storage::outbox::OutboxKind::Update;
        item.card_key = Some("r-coalesce".into());
        outbox.enqueue(&item).await.unwrap();
    }
    assert_eq!(outbox.pending_count().await.unwrap() - before, 1);
    let pending = outbox.pending_updates("r-coalesce").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].contains("progress line 100"), "{pending:?}");
}

/// A driver that reports 100 progress lines.
struct Chatty;

#[async_trait::async_trait]
impl paver::drivers::Driver for Chatty {
    fn name(&self) -> &'static str {
        "chatty"
    }
    fn resumable(&self) -> bool {
        true
    }
    async fn execute(
        &self,
        job: &paver::drivers::Job,
        progress: paver::drivers::Progress<'_>,
    ) -> Result<paver::drivers::Outcome, paver::drivers::DriverError> {
        for i in 1..=100 {
            progress(&format!("step {i} of 100"));
        }
        Ok(paver::drivers::Outcome {
            summary: format!("did {}", job.action.kind()),
            url: None,
            links: vec![],
        })
    }
    async fn status(
        &self,
        _service: &paver::domain::ServiceName,
        _env: Option<paver::domain::Environment>,
    ) -> Result<Vec<paver::drivers::EnvStatus>, paver::drivers::DriverError> {
        // It cannot tell, so nothing is asked to be created first.
        Err(paver::drivers::DriverError::Unreachable(
            "chatty does not know".into(),
        ))
    }
}

#[tokio::test]
async fn a_hundred_progress_lines_make_few_card_updates_and_the_last_word_wins() {
    let r = rig().await;
    // The same rig, with the chatty driver.
    let engine = TestPaver::builder()
        .on_db(r.tdb.db.clone())
        .shared_catalog(r.state.catalog.clone())
        .driver(Arc::new(Chatty))
        .sink("slack", r.state.api.clone())
        .start()
        .await
        .engine;
    let mut state = r.state.clone();
    state.engine = engine.clone();
    let base = serve(slack::routes(state)).await;
    let r = Rig { base, engine, ..r };
    r.event(
        &mention("restart cart-service in dev", "U0ALICE", "EvChatty"),
        &[],
    )
    .await;
    r.idle().await;
    r.press("U0ALICE", &r.button("Restart")).await;
    r.idle().await;
    let req = r
        .tdb
        .db
        .requests()
        .in_state(RequestState::Succeeded)
        .await
        .unwrap()
        .remove(0);
    let rows = r
        .tdb
        .db
        .outbox()
        .update_rows_for_card(&req.id)
        .await
        .unwrap();
    assert!(rows < 40, "{rows} outbox rows for 100 progress lines");
    let updates = r.fake.calls("chat.update");
    assert!(updates.len() < 40, "{} card updates sent", updates.len());
    let last = updates.last().unwrap().to_string();
    assert!(
        last.contains("Done") || last.contains("Succeeded"),
        "{last}"
    );
}

/// The approvers' copy on Slack: posted in the owning team's channel with
/// real mentions of the eligible approvers (not the requester), and edited
/// there with the card when one of them decides.
#[tokio::test]
async fn approvers_get_a_copy_in_the_owning_teams_channel() {
    let r = rig().await;
    r.event(
        &mention(
            "deploy order-service 1.4.0 to production",
            "U0ALICE",
            "Ev900",
        ),
        &[],
    )
    .await;
    r.idle().await;
    r.press("U0ALICE", &r.button("Deploy")).await;
    r.idle().await;
    let in_team_channel = |method: &str| -> Vec<Value> {
        r.fake
            .calls(method)
            .into_iter()
            .filter(|b| b["channel"] == "C0COMMERCE")
            .collect()
    };
    let copies = in_team_channel("chat.postMessage");
    assert_eq!(copies.len(), 1, "{copies:#?}");
    let text = blocks_of(&copies[0]).to_string();
    for approver in ["<@U0CAROL>", "<@U0DAVE>", "<@U0OMAR>"] {
        assert!(text.contains(approver), "{text}");
    }
    assert!(!text.contains("U0ALICE"), "{text}");

    r.press("U0DAVE", &r.button("Approve")).await;
    r.idle().await;
    assert_eq!(r.driver.calls(), 1);
    let last = in_team_channel("chat.update")
        .pop()
        .expect("the copy edited");
    let blocks = blocks_of(&last).to_string();
    assert!(blocks.contains("Done"), "{blocks}");
    assert!(!blocks.contains("\"actions\""), "buttons gone: {blocks}");
}

/// `approval_notices.to = "dm"` on Slack: each eligible approver gets the
/// card in their DM (posted to their user id, where Slack opens the DM),
/// and the copy there is edited through the DM's own id when one decides.
#[tokio::test]
async fn approvers_get_the_card_in_a_slack_dm_that_follows_the_decision() {
    let r = rig_with(EngineSettings {
        approval_notices: paver::requests::approvals::ApprovalNoticeConfig {
            to: paver::requests::approvals::NoticeTo::Dm,
            ..Default::default()
        },
        ..EngineSettings::default()
    })
    .await;
    r.event(
        &mention(
            "deploy order-service 1.4.0 to production",
            "U0ALICE",
            "Ev901",
        ),
        &[],
    )
    .await;
    r.idle().await;
    r.press("U0ALICE", &r.button("Deploy")).await;
    r.idle().await;
    let dms: Vec<Value> = r
        .fake
        .calls("chat.postMessage")
        .into_iter()
        .filter(|b| b["channel"].as_str().is_some_and(|c| c.starts_with('U')))
        .collect();
    let to: Vec<&str> = dms.iter().filter_map(|b| b["channel"].as_str()).collect();
    assert_eq!(to.len(), 3, "{to:?}");
    assert!(!to.contains(&"U0ALICE"), "{to:?}");
    r.press("U0DAVE", &r.button("Approve")).await;
    r.idle().await;
    assert_eq!(r.driver.calls(), 1);
    // Every DM copy was edited, through its DM (D…), none through a user id.
    let updates = r.fake.calls("chat.update");
    let dm_edits: Vec<&str> = updates
        .iter()
        .filter_map(|b| b["channel"].as_str())
        .filter(|c| c.starts_with('D'))
        .collect();
    for approver in ["D0CAROL", "D0DAVE", "D0OMAR"] {
        assert!(dm_edits.contains(&approver), "{approver}: {dm_edits:?}");
    }
    assert!(
        !updates
            .iter()
            .any(|b| b["channel"].as_str().is_some_and(|c| c.starts_with('U'))),
        "an edit through a user id fails on Slack"
    );
}

/// Deny asks why: the press opens a modal (views.open with the press's
/// trigger, the button's payload alone in private_metadata) and denies
/// nothing; the form's submission denies, and the card and the thread say
/// who and why. An empty reason is refused in the form.
#[tokio::test]
async fn deny_opens_a_form_and_its_submission_denies_with_the_reason() {
    let r = rig().await;
    let id = r.awaiting_approval().await;
    let deny = r.button("Deny");
    assert_eq!(r.press("U0DAVE", &deny).await.status(), 200);
    r.idle().await;
    let opened = r.fake.calls("views.open");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["trigger_id"], "4916855695380.xxx.yyy");
    let view = match &opened[0]["view"] {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(view["type"], "modal");
    assert_eq!(view["callback_id"], "paver_reason");
    assert_eq!(
        view["private_metadata"],
        json!(deny),
        "the payload, nothing else"
    );
    let input = &view["blocks"][0];
    assert_eq!(input["type"], "input");
    assert_eq!(input["element"]["type"], "plain_text_input");
    assert_eq!(input["element"]["multiline"], true);
    assert_eq!(input["element"]["max_length"], 500);
    assert_ne!(input["optional"], true, "a reason is required");
    let req = r.tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(
        req.state,
        RequestState::AwaitingApproval,
        "the press alone did nothing"
    );

    // An empty reason: the form shows why, and nothing happens.
    let resp = r.submit_reason("U0DAVE", &deny, "   ").await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["response_action"], "errors");
    assert!(answer["errors"]["reason"]
        .as_str()
        .unwrap()
        .contains("Say why"));
    r.idle().await;
    assert_eq!(
        r.tdb.db.requests().get(&id).await.unwrap().state,
        RequestState::AwaitingApproval
    );

    // With a reason: denied, and said where people look.
    let resp = r
        .submit_reason("U0DAVE", &deny, "  not during the <!channel> freeze \n")
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "an empty 200 closes the form"
    );
    r.idle().await;
    let req = r.tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Denied);
    assert_eq!(req.denied_by.as_deref(), Some("dave"));
    assert_eq!(
        req.denial_reason.as_deref(),
        Some("not during the <!channel> freeze")
    );
    assert_eq!(r.driver.calls(), 0);
    let events = r.tdb.db.requests().events(&id).await.unwrap();
    let deny_event = events.iter().find(|e| e.transition == "deny").unwrap();
    assert_eq!(deny_event.actor, "dave");
    assert_eq!(
        deny_event.detail,
        "denied: not during the <!channel> freeze"
    );
    let card = r.fake.calls("chat.update").pop().unwrap();
    let card = blocks_of(&card).to_string();
    assert!(
        card.contains("Denied by dave: not during the ‹!channel› freeze"),
        "{card}"
    );
    assert!(
        !card.contains("<!channel>"),
        "a reason pings nobody: {card}"
    );
    assert!(
        r.fake.calls("chat.postMessage").iter().any(|m| m
            .to_string()
            .contains("dave denied this request: not during")),
        "the thread is told"
    );
}

/// A reason form submitted after another approver decided is refused as a
/// late press is: nothing changes, and the approver is told privately.
#[tokio::test]
async fn a_reason_submitted_after_another_approval_is_refused() {
    let r = rig().await;
    let id = r.awaiting_approval().await;
    let deny = r.button("Deny");
    r.press("U0CAROL", &deny).await;
    r.press("U0DAVE", &r.button("Approve")).await;
    r.idle().await;
    assert_eq!(r.driver.calls(), 1);
    let before = r.tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(before.state, RequestState::Succeeded);
    let ephemerals = r.fake.calls("chat.postEphemeral").len();

    let resp = r.submit_reason("U0CAROL", &deny, "too risky").await;
    assert_eq!(resp.status(), 200);
    r.idle().await;
    let after = r.tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(after.state, RequestState::Succeeded);
    assert_eq!((after.denied_by, after.denial_reason), (None, None));
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(r.driver.calls(), 1);
    let told = r.fake.calls("chat.postEphemeral");
    assert_eq!(told.len(), ephemerals + 1, "{told:?}");
    assert_eq!(told.last().unwrap()["user"], "U0CAROL");
    // Slack does not say where the form was opened: the request's channel.
    assert_eq!(told.last().unwrap()["channel"], "C111");
}

/// Under Socket Mode a reason form is refused in its acknowledgement (the
/// same errors as over HTTP), and accepted with a bare one.
#[tokio::test]
async fn socket_mode_refuses_an_empty_reason_in_the_acknowledgement() {
    let r = rig().await;
    let id = r.awaiting_approval().await;
    let deny = r.button("Deny");
    let form = |envelope_id: &str, reason: &str| {
        json!({
            "type": "interactive",
            "envelope_id": envelope_id,
            "payload": {
                "type": "view_submission",
                "team": {"id": TEAM},
                "user": {"id": "U0DAVE", "team_id": TEAM},
                "view": {"callback_id": "paver_reason", "private_metadata": deny,
                         "state": {"values": {"reason": {"reason": {"value": reason}}}}},
            },
        })
    };
    let ack = envelope(&r.state, &form("env-empty", "")).await.unwrap();
    assert_eq!(ack["envelope_id"], "env-empty");
    assert_eq!(ack["payload"]["response_action"], "errors");
    assert!(ack["payload"]["errors"]["reason"].is_string(), "{ack}");
    let ack = envelope(&r.state, &form("env-why", "no rollback plan"))
        .await
        .unwrap();
    assert_eq!(ack, json!({"envelope_id": "env-why"}));
    r.idle().await;
    let req = r.tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Denied);
    assert_eq!(req.denial_reason.as_deref(), Some("no rollback plan"));
}

/// A digest's `Won't fix` on Slack opens the same reason form as Deny;
/// its submission marks the check, and the digest lists it with the
/// reason. `Snooze 1 week` acts at once (no form).
#[tokio::test]
async fn a_digests_wont_fix_asks_why_in_a_modal_and_snooze_needs_none() {
    use paver::scorecards::nags::Mode;
    let nags = paver::scorecards::config::NagsConfig {
        cron: paver::scorecards::schedule::CronSpec::parse("0 9 * * *").unwrap(),
        ..Default::default()
    };
    let r = rig_with(EngineSettings {
        scorecards: paver::scorecards::ScorecardsConfig {
            nags: Some(nags),
            ..Default::default()
        },
        ..EngineSettings::default()
    })
    .await;
    let commerce = paver::domain::TeamName::parse("team-commerce").unwrap();
    r.engine
        .scorecards()
        .run_nags(chrono::Utc::now(), Some(&commerce), Mode::Now)
        .await
        .unwrap();
    r.idle().await;
    let digest = r
        .fake
        .calls("chat.postMessage")
        .into_iter()
        .find(|b| b["channel"] == "C0COMMERCE")
        .expect("the digest in the team's channel");
    assert!(
        blocks_of(&digest).to_string().contains("team-commerce"),
        "{digest:#}"
    );
    let wont_fix = r.button("Won't fix");
    assert_eq!(r.press("U0ALICE", &wont_fix).await.status(), 200);
    r.idle().await;
    let opened = r.fake.calls("views.open");
    assert_eq!(opened.len(), 1, "{opened:?}");
    let view = match &opened[0]["view"] {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(
        view["private_metadata"],
        json!(wont_fix),
        "the payload, nothing else"
    );
    let resp = r
        .submit_reason("U0ALICE", &wont_fix, "retired next quarter")
        .await;
    assert_eq!(resp.status(), 200);
    r.idle().await;
    let said: String = r
        .fake
        .calls("chat.update")
        .iter()
        .map(|b| blocks_of(b).to_string())
        .collect();
    assert!(said.contains("retired next quarter"), "{said}");
    // Snooze acts on the press: no second form.
    assert_eq!(
        r.press("U0ALICE", &r.button("Snooze 1 week"))
            .await
            .status(),
        200
    );
    r.idle().await;
    assert_eq!(r.fake.calls("views.open").len(), 1);
}
