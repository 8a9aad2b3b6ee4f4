//! The Discord adapter end to end: signed interactions through the real
//! router (`paver::server::router`), the engine and the outbox, and a fake
//! Discord API on 127.0.0.1 that records every call the adapter makes.
//! On SQLite, and on PostgreSQL when PAVER_TEST_DATABASE_URL is set.

mod support;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ed25519_dalek::{Signer, SigningKey};
use secrecy::SecretString;
use serde_json::{json, Value};

use paver::app::App;
use paver::catalog::Catalog;
use paver::chat::{ButtonPayload, Message, SendError};
use paver::config::Config;
use paver::discord::gateway::{Gateway, GatewayMessage};
use paver::domain::RequestState;
use paver::engine::EngineSettings;
use paver::engine::Handled;
use paver::policy::{PolicyConfig, UnknownUsers};
use support::paver::TestPaver;
use support::{FakeDriver, SAMPLE_CATALOG};

const SLASH: &str = "../shared/corpus/discord/interaction_slash_command.json";
const BUTTON: &str = "../shared/corpus/discord/interaction_button_click.json";

/// From the corpus samples: the application, and Mason, who is alice here.
const APP_ID: &str = "290926444748734465";
const ALICE: &str = "53908232506183680";
const DAVE: &str = "80351110224678912";
const STRANGER: &str = "11111111111111111";
const BOT: &str = "99999999999999999";
/// The slash command sample's channel; presses happen there too.
const CHANNEL: &str = "645027906669510667";

// ----- a fake Discord API ---------------------------------------------------

#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
    response: Value,
    at: Instant,
}

struct Scripted {
    method: &'static str,
    path_contains: String,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    next_id: Arc<AtomicU64>,
    /// Application lookups (kept out of `calls`); the first `app_failures`
    /// of them fail.
    app_lookups: Arc<AtomicU64>,
    app_failures: Arc<AtomicU64>,
}

/// The server the corpus samples come from: the application's own.
const GUILD: &str = "290926798626357999";

impl Fake {
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(fake_api).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn id(&self) -> String {
        (1_300_000_000_000_000_000 + self.next_id.fetch_add(1, Ordering::SeqCst)).to_string()
    }

    /// The next call matching gets this answer instead of the usual one.
    fn script(
        &self,
        method: &'static str,
        path_contains: &str,
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    ) {
        self.script.lock().unwrap().push_back(Scripted {
            method,
            path_contains: path_contains.into(),
            status,
            headers,
            body,
        });
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn matching(&self, method: &str, path_contains: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.contains(path_contains))
            .collect()
    }

    /// Waits (at most 10 s) until the calls satisfy `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = calls
                    .iter()
                    .map(|c| format!("{} {} {}", c.method, c.path, c.body))
                    .collect();
                panic!("timed out waiting for {what}; calls:\n{}", seen.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn fake_api(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/api/v10/oauth2/applications/@me" {
        let n = fake.app_lookups.fetch_add(1, Ordering::SeqCst);
        if n < fake.app_failures.load(Ordering::SeqCst) {
            return StatusCode::BAD_GATEWAY.into_response();
        }
        return axum::Json(json!({ "id": APP_ID, "name": "Paver", "guild_id": GUILD }))
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scripted = {
        let mut script = fake.script.lock().unwrap();
        let hit = script
            .iter()
            .position(|s| s.method == method.as_str() && path.contains(&s.path_contains));
        hit.and_then(|i| script.remove(i))
    };
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let (status, extra, response) = match scripted {
        Some(s) => (s.status, s.headers, s.body),
        None => match (method.as_str(), parts.as_slice()) {
            ("POST", ["channels", c, "messages"]) => {
                (200, vec![], json!({ "id": fake.id(), "channel_id": c }))
            }
            ("PATCH", ["channels", c, "messages", m]) => {
                (200, vec![], json!({ "id": m, "channel_id": c }))
            }
            ("POST", ["channels", c, "messages", m, "threads"]) => {
                (201, vec![], json!({ "id": m, "type": 11, "parent_id": c }))
            }
            ("POST", ["users", "@me", "channels"]) => {
                (200, vec![], json!({ "id": "424242424242" }))
            }
            ("POST", ["webhooks", _, _]) => (200, vec![], json!({ "id": fake.id() })),
            ("PATCH", ["webhooks", _, _, "messages", "@original"]) => {
                (200, vec![], json!({ "id": fake.id() }))
            }
            ("POST", ["interactions", _, _, "callback"]) => (204, vec![], Value::Null),
            ("POST", ["applications", _, "commands"])
            | ("POST", ["applications", _, "guilds", _, "commands"]) => (
                201,
                vec![],
                json!({ "id": fake.id(), "name": body["name"] }),
            ),
            _ => (
                404,
                vec![],
                json!({ "code": 0, "message": format!("no route {path}") }),
            ),
        },
    };
    fake.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
        response: response.clone(),
        at: Instant::now(),
    });
    let mut r = if response.is_null() {
        StatusCode::from_u16(status).unwrap().into_response()
    } else {
        (StatusCode::from_u16(status).unwrap(), axum::Json(response)).into_response()
    };
    for (k, v) in extra {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

// ----- the harness ------------------------------------------------------------

struct Harness {
    fake: Fake,
    app: App,
    config: Config,
    key: SigningKey,
    base: String,
    driver: FakeDriver,
    client: reqwest::Client,
    /// The Paver behind `app`; it owns the database for the test's life.
    _paver: TestPaver,
}

/// The sample catalog, with Discord ids for alice and dave.
fn catalog() -> Catalog {
    let text = std::fs::read_to_string(Path::new(SAMPLE_CATALOG)).unwrap();
    let text = text
        .replace(
            "slack.com/user-id: U0ALICE",
            &format!("slack.com/user-id: U0ALICE\n    discord.com/user-id: \"{ALICE}\""),
        )
        .replace(
            "slack.com/user-id: U0DAVE",
            &format!("slack.com/user-id: U0DAVE\n    discord.com/user-id: \"{DAVE}\""),
        );
    let catalog = Catalog::from_yaml_str(&text, "test catalog");
    assert_eq!(
        catalog.user_by_discord_id(ALICE).unwrap().name.as_str(),
        "alice"
    );
    catalog
}

async fn harness() -> Harness {
    harness_with(EngineSettings::default(), PolicyConfig::default(), 0).await
}

/// A harness; the first `app_failures` application lookups fail.
async fn harness_with(
    settings: EngineSettings,
    policy: PolicyConfig,
    app_failures: u64,
) -> Harness {
    let fake = Fake::default();
    fake.app_failures.store(app_failures, Ordering::SeqCst);
    let api_base = fake.serve().await;
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let mut config = Config::default();
    config.discord.token = Some(SecretString::from("test-bot-token"));
    config.discord.application_id = Some(APP_ID.into());
    config.discord.public_key = Some(hex::encode(key.verifying_key().as_bytes()));
    config.discord.api_url = url::Url::parse(&format!("{api_base}/api/v10")).unwrap();
    let sinks = paver::server::sinks(&config).unwrap();
    assert!(sinks.contains_key("discord"));
    let paver = TestPaver::builder()
        .catalog(catalog())
        .policy(policy)
        .settings(settings)
        .sinks(sinks)
        .start()
        .await;
    let app = paver.app();
    let driver = paver.driver.clone();
    let router = paver::server::router(&app, &config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Harness {
        fake,
        app,
        config,
        key,
        base,
        driver,
        client: reqwest::Client::new(),
        _paver: paver,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    let mut m = timestamp.as_bytes().to_vec();
    m.extend_from_slice(body);
    hex::encode(key.sign(&m).to_bytes())
}

fn sample(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The corpus slash command, as `/paver request:<text>` from `user`.
fn slash(id: &str, user: &str, text: &str) -> Vec<u8> {
    let mut v = sample(SLASH);
    v["id"] = json!(id);
    v["token"] = json!(format!("token-{id}"));
    v["member"]["user"]["id"] = json!(user);
    v["data"]["name"] = json!("paver");
    v["data"]["options"] = json!([{ "type": 3, "name": "request", "value": text }]);
    serde_json::to_vec(&v).unwrap()
}

/// The corpus button click, pressing `custom_id` as `user` in [`CHANNEL`].
fn click(id: &str, user: &str, custom_id: &str) -> Vec<u8> {
    let mut v = sample(BUTTON);
    v["id"] = json!(id);
    v["token"] = json!(format!("token-{id}"));
    v["member"]["user"]["id"] = json!(user);
    v["channel_id"] = json!(CHANNEL);
    v["data"]["custom_id"] = json!(custom_id);
    serde_json::to_vec(&v).unwrap()
}

/// A reason form submitted (MODAL_SUBMIT) as `user` in [`CHANNEL`]: Discord
/// sends back the modal's custom_id and what was typed in its field.
fn submit(id: &str, user: &str, custom_id: &str, reason: &str) -> Vec<u8> {
    let mut v = sample(BUTTON);
    v["type"] = json!(5);
    v["id"] = json!(id);
    v["token"] = json!(format!("token-{id}"));
    v["member"]["user"]["id"] = json!(user);
    v["channel_id"] = json!(CHANNEL);
    v["data"] = json!({
        "custom_id": custom_id,
        "components": [{"type": 1, "components": [{"type": 4, "custom_id": "reason", "value": reason}]}],
    });
    serde_json::to_vec(&v).unwrap()
}

impl Harness {
    /// A gateway handler, as `discord::gateway::spawn` makes it.
    fn gateway(&self) -> Gateway {
        let api = paver::discord::api(&self.config).unwrap().unwrap();
        let guilds = paver::discord::Guilds::new(&self.config.discord);
        guilds.start(api.clone());
        Gateway::new(&self.app, api, guilds)
    }

    async fn post_raw(
        &self,
        body: &[u8],
        signature: Option<String>,
        timestamp: Option<String>,
    ) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}/discord/interactions", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("X-Signature-Ed25519", s);
        }
        if let Some(t) = timestamp {
            req = req.header("X-Signature-Timestamp", t);
        }
        let r = tokio::time::timeout(Duration::from_secs(10), req.send())
            .await
            .expect("the endpoint answers")
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Sends a correctly signed interaction; returns the status and the
    /// answer, and checks it came within Discord's 3 s.
    async fn send(&self, body: &[u8]) -> (u16, Value) {
        let ts = now().to_string();
        let started = Instant::now();
        let (status, text) = self
            .post_raw(body, Some(sign(&self.key, &ts, body)), Some(ts))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered in {:?}",
            started.elapsed()
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The latest rendering of the card with `title_part`: (message id, body).
    fn card(&self, title_part: &str) -> Option<(String, Value)> {
        self.fake.calls().into_iter().rev().find_map(|c| {
            let title = c.body["embeds"][0]["title"].as_str()?;
            if !title.contains(title_part) {
                return None;
            }
            let id = if c.method == "PATCH" {
                c.path.rsplit('/').next()?.to_owned()
            } else {
                c.response["id"].as_str()?.to_owned()
            };
            Some((id, c.body.clone()))
        })
    }

    fn status_of(card: &Value) -> String {
        card["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "Status")
            .map(|f| f["value"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn buttons(card: &Value) -> Vec<(String, String)> {
        card["components"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row["components"].as_array().unwrap().clone())
            .map(|b| {
                (
                    b["label"].as_str().unwrap().to_owned(),
                    b["custom_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn button(&self, title_part: &str, label: &str) -> String {
        let (_, card) = self.card(title_part).expect("the card");
        Self::buttons(&card)
            .into_iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no {label} button on {card}"))
            .1
    }

    async fn idle(&self) {
        assert!(
            self.app
                .engine
                .wait_idle(Duration::from_secs(10))
                .await
                .unwrap(),
            "engine never went idle"
        );
    }
}

fn texts(calls: &[Call]) -> String {
    calls
        .iter()
        .map(|c| format!("{} {}\n", c.path, c.body))
        .collect()
}

// ----- the endpoint ------------------------------------------------------------

#[tokio::test]
async fn ping_gets_pong_and_bad_requests_are_refused() {
    let h = harness().await;
    let ping =
        br#"{"id":"1","type":1,"application_id":"290926444748734465","token":"t","version":1}"#;
    let (status, answer) = h.send(ping).await;
    assert_eq!((status, answer), (200, json!({ "type": 1 })));

    let ts = now().to_string();
    // Signed by another key.
    let other = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let (status, _) = h
        .post_raw(ping, Some(sign(&other, &ts, ping)), Some(ts.clone()))
        .await;
    assert_eq!(status, 401);
    // Signed, then changed.
    let sig = sign(&h.key, &ts, ping);
    let changed =
        br#"{"id":"1","type":2,"application_id":"290926444748734465","token":"t","version":1}"#;
    assert_eq!(
        h.post_raw(changed, Some(sig.clone()), Some(ts.clone()))
            .await
            .0,
        401
    );
    // The signature covers the timestamp.
    let later = (now() + 1).to_string();
    assert_eq!(
        h.post_raw(ping, Some(sig.clone()), Some(later)).await.0,
        401
    );
    // Headers missing, or junk.
    assert_eq!(h.post_raw(ping, None, Some(ts.clone())).await.0, 401);
    assert_eq!(h.post_raw(ping, Some(sig), None).await.0, 401);
    assert_eq!(
        h.post_raw(ping, Some("xyz".into()), Some(ts.clone()))
            .await
            .0,
        401
    );
    // Correctly signed, but stale (a replay), or from the future.
    for at in [now() - 600, now() + 600] {
        let at = at.to_string();
        assert_eq!(
            h.post_raw(ping, Some(sign(&h.key, &at, ping)), Some(at.clone()))
                .await
                .0,
            401
        );
    }
    // Correctly signed, but not an interaction.
    for body in [
        &b"{not json"[..],
        br#"{"id":"2"}"#,
        br#"{"id":"2","type":2,"token":"t"}"#,
        br#"{"id":"2","type":3,"token":"t","channel_id":"5","user":{"id":"6"}}"#,
    ] {
        let (status, _) = h.send(body).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
    }
    // Autocomplete: Paver registers none.
    assert_eq!(h.send(br#"{"id":"3","type":4}"#).await.0, 400);
    h.idle().await;
    assert!(
        h.fake.calls().is_empty(),
        "nothing refused reached Discord: {:?}",
        h.fake.calls()
    );
}

#[tokio::test]
async fn the_sample_slash_command_is_not_ours_and_is_answered_at_once() {
    let h = harness().await;
    let body = std::fs::read(SLASH).unwrap();
    let (status, answer) = h.send(&body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap()
        .contains("/paver"));
    assert_eq!(answer["data"]["allowed_mentions"]["parse"], json!([]));
    h.idle().await;
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn a_slash_command_is_deferred_then_the_original_is_edited_and_the_card_posted() {
    let h = harness().await;
    // Our deferral may not have reached Discord yet when we edit: retried.
    h.fake.script(
        "PATCH",
        "/messages/@original",
        404,
        vec![],
        json!({ "code": 10015, "message": "Unknown Webhook" }),
    );
    let (status, answer) = h
        .send(&slash(
            "900000000000000001",
            ALICE,
            "create staging for order-service with Postgres @everyone",
        ))
        .await;
    assert_eq!((status, answer), (200, json!({ "type": 5 })));

    let calls = h
        .fake
        .wait_for(
            "the original response edited and the card posted",
            |calls| {
                calls
                    .iter()
                    .filter(|c| c.path.ends_with("/messages/@original"))
                    .count()
                    == 2
                    && calls
                        .iter()
                        .any(|c| c.path == format!("/api/v10/channels/{CHANNEL}/messages"))
            },
        )
        .await;
    let edit = calls
        .iter()
        .rfind(|c| c.path.ends_with("/messages/@original"))
        .unwrap();
    assert_eq!(
        edit.path,
        format!("/api/v10/webhooks/{APP_ID}/token-900000000000000001/messages/@original")
    );
    assert_eq!(edit.method, "PATCH");
    let content = edit.body["content"].as_str().unwrap();
    assert!(content.contains(&format!("<@{ALICE}> asked")), "{content}");
    assert!(content.contains("create staging for order-service with Postgres"));
    assert!(!content.contains("@everyone"), "{content}");
    assert_eq!(edit.body["allowed_mentions"]["parse"], json!([]));

    let post = calls
        .iter()
        .find(|c| c.path == format!("/api/v10/channels/{CHANNEL}/messages"))
        .unwrap();
    assert_eq!(post.auth.as_deref(), Some("Bot test-bot-token"));
    let embed = &post.body["embeds"][0];
    assert_eq!(
        embed["title"],
        "Create staging for order-service with postgres"
    );
    assert!(embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "Owner" && f["value"] == "team-commerce"));
    assert_eq!(post.body["allowed_mentions"]["parse"], json!([]));
    let buttons = Harness::buttons(&post.body);
    assert_eq!(
        buttons.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
        ["Create", "Cancel"]
    );
    for (_, custom_id) in &buttons {
        assert!(custom_id.len() <= 100);
        let p = ButtonPayload::parse(custom_id).unwrap();
        assert_eq!(
            &p.encode(),
            custom_id,
            "the custom_id is the payload, nothing else"
        );
    }
    assert_eq!(h.driver.calls(), 0, "nothing runs before a press");
}

#[tokio::test]
async fn request_confirm_and_approve_by_someone_else() {
    let h = harness().await;
    let (status, answer) = h
        .send(&slash(
            "900000000000000010",
            ALICE,
            "deploy order-service 1.4.0 to production",
        ))
        .await;
    assert_eq!((status, answer["type"].clone()), (200, json!(5)));
    h.fake
        .wait_for("the card", |_| h.card("Deploy order-service").is_some())
        .await;
    let (card_id, card) = h.card("Deploy order-service").unwrap();
    assert_eq!(Harness::status_of(&card), "Waiting for your confirmation");

    // Alice confirms: the card is updated in place, approval is asked in its thread.
    let (status, answer) = h
        .send(&click(
            "900000000000000011",
            ALICE,
            &h.button("Deploy order-service", "Deploy"),
        ))
        .await;
    assert_eq!((status, answer), (200, json!({ "type": 6 })));
    let thread_messages = format!("/api/v10/channels/{card_id}/messages");
    h.fake
        .wait_for("approval asked in the card's thread", |calls| {
            calls.iter().any(|c| {
                c.path == thread_messages
                    && c.body["content"]
                        .as_str()
                        .is_some_and(|t| t.contains("Approval needed"))
            })
        })
        .await;
    let threads = h.fake.matching(
        "POST",
        &format!("/channels/{CHANNEL}/messages/{card_id}/threads"),
    );
    assert_eq!(threads.len(), 1);
    assert!(threads[0].body["name"]
        .as_str()
        .unwrap()
        .contains("Deploy order-service"));
    h.idle().await;
    let (same_id, card) = h.card("Deploy order-service").unwrap();
    assert_eq!(same_id, card_id, "updated in place");
    assert!(!h
        .fake
        .matching("PATCH", &format!("/channels/{CHANNEL}/messages/{card_id}"))
        .is_empty());
    assert_eq!(
        Harness::buttons(&card)
            .iter()
            .map(|b| b.0.as_str())
            .collect::<Vec<_>>(),
        ["Approve", "Deny", "Cancel"]
    );

    // Alice may not approve her own request: told privately, by a follow-up.
    let approve = h.button("Deploy order-service", "Approve");
    h.send(&click("900000000000000012", ALICE, &approve)).await;
    let calls = h
        .fake
        .wait_for("an ephemeral follow-up to alice", |calls| {
            calls
                .iter()
                .any(|c| c.path == format!("/api/v10/webhooks/{APP_ID}/token-900000000000000012"))
        })
        .await;
    let whisper = calls
        .iter()
        .find(|c| c.path.ends_with("token-900000000000000012"))
        .unwrap();
    assert_eq!(whisper.body["flags"], 64);
    assert!(whisper.body["content"]
        .as_str()
        .unwrap()
        .contains("four-eyes"));
    assert_eq!(h.driver.calls(), 0);

    // Someone unknown to the catalog cannot approve either.
    h.send(&click("900000000000000013", STRANGER, &approve))
        .await;
    h.fake
        .wait_for("a follow-up to the stranger", |calls| {
            calls
                .iter()
                .any(|c| c.path.ends_with("token-900000000000000013"))
        })
        .await;

    // Dave approves: it runs, the card says Done and loses its buttons.
    h.send(&click("900000000000000014", DAVE, &approve)).await;
    h.fake
        .wait_for("the result in the thread", |calls| {
            calls.iter().any(|c| {
                c.path == thread_messages
                    && c.body["content"]
                        .as_str()
                        .is_some_and(|t| t.contains("Done"))
            })
        })
        .await;
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
    let job = h.driver.jobs.lock().unwrap()[0].clone();
    assert_eq!(
        (job.requester.as_str(), job.approver.as_deref()),
        ("alice", Some("dave"))
    );
    let (_, card) = h.card("Deploy order-service").unwrap();
    assert_eq!(Harness::status_of(&card), "Done");
    assert_eq!(card["components"], json!([]));
    // One thread for the request, reused.
    assert_eq!(h.fake.matching("POST", "/threads").len(), 1);

    let id = ButtonPayload::parse(&approve).unwrap().request_id;
    let req = h.app.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded);
    assert_eq!(req.platform, paver::chat::Platform::Discord);
    assert_eq!(req.channel, CHANNEL);
    let events = h.app.db.requests().events(&id).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.actor == "dave" && e.chat == format!("discord:{DAVE}")));

    // A press replayed after the fact changes nothing.
    h.send(&click("900000000000000015", DAVE, &approve)).await;
    h.fake
        .wait_for("the replayed press answered", |calls| {
            calls
                .iter()
                .any(|c| c.path.ends_with("token-900000000000000015"))
        })
        .await;
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
}

#[tokio::test]
async fn the_sample_button_click_is_not_ours_and_says_so_privately() {
    let h = harness().await;
    let body = std::fs::read(BUTTON).unwrap();
    let (status, answer) = h.send(&body).await;
    assert_eq!((status, answer), (200, json!({ "type": 6 })));
    h.fake
        .wait_for("an ephemeral follow-up", |calls| !calls.is_empty())
        .await;
    h.idle().await;
    let calls = h.fake.calls();
    assert_eq!(calls.len(), 1, "{}", texts(&calls));
    assert_eq!(
        calls[0].path,
        format!("/api/v10/webhooks/{APP_ID}/unique_interaction_token")
    );
    assert_eq!(calls[0].body["flags"], 64);
    assert!(calls[0].body["content"]
        .as_str()
        .unwrap()
        .contains("not one of mine"));
}

#[tokio::test]
async fn unknown_users_can_ask_but_not_request_changes() {
    for (policy, shown) in [(UnknownUsers::None, false), (UnknownUsers::Read, true)] {
        let h = harness_with(
            EngineSettings::default(),
            PolicyConfig {
                unknown_users: policy,
                ..PolicyConfig::default()
            },
            0,
        )
        .await;
        h.send(&slash(
            "900000000000000020",
            STRANGER,
            "create staging for order-service with postgres",
        ))
        .await;
        h.send(&slash(
            "900000000000000021",
            STRANGER,
            "who owns order-service?",
        ))
        .await;
        let channel = format!("/api/v10/channels/{CHANNEL}/messages");
        let calls = h
            .fake
            .wait_for("two replies", |calls| {
                calls.iter().filter(|c| c.path == channel).count() == 2
            })
            .await;
        h.idle().await;
        let replies = texts(&calls);
        assert!(replies.contains("I don't know"), "{replies}");
        // Ownership only with `policy.unknown_users = "read"`; help otherwise.
        assert_eq!(replies.contains("owned by"), shown, "{policy:?}: {replies}");
        assert_eq!(
            replies.contains("can't share ownership"),
            !shown,
            "{policy:?}: {replies}"
        );
        assert!(h.card("Create staging").is_none(), "no card for a stranger");
    }
}

#[tokio::test]
async fn a_redelivered_interaction_is_handled_once() {
    let h = harness().await;
    let body = slash("900000000000000030", ALICE, "restart cart-service in dev");
    h.send(&body).await;
    h.send(&body).await;
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    h.idle().await;
    // Both answers were deferrals; a little time for the second one's work.
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.idle().await;
    let cards = h
        .fake
        .matching("POST", &format!("/channels/{CHANNEL}/messages"))
        .into_iter()
        .filter(|c| c.body["embeds"][0]["title"].is_string())
        .count();
    assert_eq!(cards, 1);
    assert_eq!(h.fake.matching("PATCH", "@original").len(), 1);

    // The same press twice runs once.
    let restart = h.button("Restart cart-service", "Restart");
    let press = click("900000000000000031", ALICE, &restart);
    h.send(&press).await;
    h.send(&press).await;
    h.fake
        .wait_for("done", |_| {
            h.card("Restart cart-service")
                .is_some_and(|(_, c)| Harness::status_of(&c) == "Done")
        })
        .await;
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
}

// ----- sending ---------------------------------------------------------------

#[tokio::test]
async fn rate_limits_are_respected_and_failures_retried_from_the_outbox() {
    let h = harness().await;
    let sink = paver::discord::sink(&h.config).unwrap().unwrap();
    let note = Message {
        text: "hello".into(),
        ..Message::default()
    };
    // A 429: reported with Discord's wait, and the route is not tried again before it.
    h.fake.script(
        "POST",
        "/channels/1000/messages",
        429,
        vec![
            ("retry-after", "2.5".into()),
            ("x-ratelimit-scope", "user".into()),
        ],
        json!({ "message": "You are being rate limited.", "retry_after": 2.5, "global": false }),
    );
    match sink.post("1000", None, &note).await {
        Err(SendError::RateLimited(d)) => {
            assert!(
                d >= Duration::from_millis(2400) && d <= Duration::from_secs(3),
                "{d:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sink.post("1000", None, &note).await,
        Err(SendError::RateLimited(_))
    ));
    assert_eq!(h.fake.matching("POST", "/channels/1000/").len(), 1);
    // Other routes are not held up.
    sink.post("2000", None, &note).await.unwrap();
    // A bucket used up is waited for before it is used again.
    h.fake.script(
        "POST",
        "/channels/3000/messages",
        200,
        vec![
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset-after", "30".into()),
        ],
        json!({ "id": "5", "channel_id": "3000" }),
    );
    sink.post("3000", None, &note).await.unwrap();
    match sink.post("3000", None, &note).await {
        Err(SendError::RateLimited(d)) => assert!(d > Duration::from_secs(25), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.fake.matching("POST", "/channels/3000/").len(), 1);
    // Failures: an outage retries, a refusal does not.
    h.fake.script(
        "POST",
        "/channels/4000/messages",
        502,
        vec![],
        json!({ "message": "bad gateway", "code": 0 }),
    );
    assert!(matches!(
        sink.post("4000", None, &note).await,
        Err(SendError::Transient(_))
    ));
    h.fake.script(
        "POST",
        "/channels/4000/messages",
        403,
        vec![],
        json!({ "message": "Missing Permissions", "code": 50013 }),
    );
    assert!(matches!(
        sink.post("4000", None, &note).await,
        Err(SendError::Permanent(e)) if e.contains("50013")
    ));

    // Through the outbox: a rate-limited card and a failed post are delivered later.
    h.fake.script(
        "POST",
        &format!("/channels/{CHANNEL}/messages"),
        429,
        vec![("retry-after", "0.3".into())],
        json!({ "message": "You are being rate limited.", "retry_after": 0.3, "global": false }),
    );
    h.fake.script(
        "POST",
        &format!("/channels/{CHANNEL}/messages"),
        500,
        vec![],
        json!({ "message": "oops", "code": 0 }),
    );
    h.send(&slash(
        "900000000000000040",
        ALICE,
        "create staging for order-service with postgres",
    ))
    .await;
    h.fake
        .wait_for("the card delivered after all", |_| {
            h.card("Create staging").is_some()
        })
        .await;
    let attempts = h
        .fake
        .matching("POST", &format!("/channels/{CHANNEL}/messages"));
    assert_eq!(attempts.len(), 3, "{}", texts(&attempts));
    assert!(
        attempts[1].at.duration_since(attempts[0].at) >= Duration::from_millis(300),
        "the retry waited out Retry-After"
    );
}

#[tokio::test]
async fn replies_go_in_a_thread_or_as_replies_where_threads_are_not_possible() {
    let h = harness().await;
    let sink = paver::discord::sink(&h.config).unwrap().unwrap();
    let card = Message {
        title: Some("Restart cart-service in dev".into()),
        ..Message::default()
    };
    let note = Message {
        text: "progress".into(),
        ..Message::default()
    };
    // A text channel: a thread on the card, named after it, then reused.
    let card_ref = sink.post("5000", None, &card).await.unwrap();
    let r = sink.post("5000", Some(&card_ref), &note).await.unwrap();
    assert_eq!(r.split_once('/').map(|(t, _)| t), Some(card_ref.as_str()));
    sink.post("5000", Some(&card_ref), &note).await.unwrap();
    let threads = h.fake.matching("POST", "/threads");
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].body["name"], "Restart cart-service in dev");
    assert_eq!(
        h.fake
            .matching("POST", &format!("/channels/{card_ref}/messages"))
            .len(),
        2
    );
    // A thread that exists already (another replica made it) is used.
    let other = sink.post("5000", None, &card).await.unwrap();
    h.fake.script(
        "POST",
        "/threads",
        400,
        vec![],
        json!({ "code": 160004, "message": "A thread has already been created for this message" }),
    );
    sink.post("5000", Some(&other), &note).await.unwrap();
    assert_eq!(
        h.fake
            .matching("POST", &format!("/channels/{other}/messages"))
            .len(),
        1
    );
    // A DM (or a thread): no threads there, so a reply to the card, and no second try.
    let dm_card = sink.post("6000", None, &card).await.unwrap();
    h.fake.script(
        "POST",
        "/threads",
        400,
        vec![],
        json!({ "code": 50024, "message": "Cannot execute action on this channel type" }),
    );
    sink.post("6000", Some(&dm_card), &note).await.unwrap();
    sink.post("6000", Some(&dm_card), &note).await.unwrap();
    let replies: Vec<Call> = h
        .fake
        .matching("POST", "/channels/6000/messages")
        .into_iter()
        .filter(|c| c.body.get("message_reference").is_some())
        .collect();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].body["message_reference"]["message_id"], dm_card);
    assert_eq!(replies[0].body["allowed_mentions"]["replied_user"], false);
    assert_eq!(
        h.fake
            .matching("POST", "/channels/6000/messages/")
            .iter()
            .filter(|c| c.path.ends_with("/threads"))
            .count(),
        1
    );
    // A card inside a thread is updated there.
    let in_thread = sink.post("5000", Some(&card_ref), &card).await.unwrap();
    sink.update("5000", &in_thread, &card).await.unwrap();
    let (thread, message) = in_thread.split_once('/').unwrap();
    assert_eq!(
        h.fake
            .matching("PATCH", &format!("/channels/{thread}/messages/{message}"))
            .len(),
        1
    );
    // Whispers without a live interaction go by DM.
    sink.ephemeral("5000", ALICE, None, &note).await.unwrap();
    assert_eq!(h.fake.matching("POST", "/users/@me/channels").len(), 1);
    assert_eq!(
        h.fake
            .matching("POST", "/channels/424242424242/messages")
            .len(),
        1
    );
}

// ----- the gateway --------------------------------------------------------------

#[tokio::test]
async fn gateway_messages_for_paver_become_requests() {
    let h = harness().await;
    let gateway = h.gateway();
    let msg = |id: &str, channel: &str, guild: Option<&str>, text: &str| GatewayMessage {
        id: id.into(),
        channel_id: channel.into(),
        guild_id: guild.map(str::to_owned),
        author_id: ALICE.into(),
        content: text.into(),
        ..GatewayMessage::default()
    };
    // Before Ready, Paver does not know who it is: nothing is handled.
    assert_eq!(
        gateway.on_message(msg("1001", "7000", None, "help")).await,
        None
    );
    gateway.set_bot_id(BOT.parse().unwrap());

    // A DM.
    let dm = gateway
        .on_message(msg(
            "1002",
            "7000",
            None,
            "create staging for order-service with postgres",
        ))
        .await;
    assert!(matches!(dm, Some(Handled::Proposed(_))), "{dm:?}");
    // Redelivered: dropped.
    assert_eq!(
        gateway
            .on_message(msg(
                "1002",
                "7000",
                None,
                "create staging for order-service with postgres",
            ))
            .await,
        Some(Handled::Duplicate)
    );
    // Server chatter that is not for Paver; bots; Paver itself.
    assert_eq!(
        gateway
            .on_message(msg(
                "1003",
                "8000",
                Some(GUILD),
                "deploy order-service to prod"
            ))
            .await,
        None
    );
    let mut bot = msg("1004", "7000", None, "help");
    bot.author_is_bot = true;
    assert_eq!(gateway.on_message(bot).await, None);
    let mut me = msg("1005", "7000", None, "help");
    me.author_id = BOT.into();
    assert_eq!(gateway.on_message(me).await, None);
    // A mention, and a reply to Paver.
    let mut mention = msg(
        "1006",
        "8000",
        Some(GUILD),
        &format!("<@{BOT}> who owns order-service?"),
    );
    mention.mentions = vec![BOT.into()];
    assert_eq!(gateway.on_message(mention).await, Some(Handled::Replied));
    let mut reply = msg("1007", "8000", Some(GUILD), "who owns cart-service?");
    reply.replies_to = Some(BOT.into());
    assert_eq!(gateway.on_message(reply).await, Some(Handled::Replied));

    // The DM's card went to the DM channel.
    h.fake
        .wait_for("the DM card", |_| h.card("Create staging").is_some())
        .await;
    let (card_id, _) = h.card("Create staging").unwrap();
    assert_eq!(
        h.fake
            .matching("POST", "/channels/7000/messages")
            .iter()
            .filter(|c| c.response["id"] == card_id.as_str())
            .count(),
        1
    );
    h.idle().await;

    // A card in a server channel; a plain message in its thread is for Paver.
    let mut ask = msg(
        "1008",
        "8000",
        Some(GUILD),
        &format!("<@!{BOT}> restart cart-service in dev"),
    );
    ask.mentions = vec![BOT.into()];
    assert!(matches!(
        gateway.on_message(ask).await,
        Some(Handled::Proposed(_))
    ));
    h.fake
        .wait_for("the server card", |_| {
            h.card("Restart cart-service").is_some()
        })
        .await;
    h.idle().await;
    let (thread, _) = h.card("Restart cart-service").unwrap();
    let in_thread = gateway
        .on_message(msg(
            "1009",
            &thread,
            Some(GUILD),
            "status of cart-service in dev",
        ))
        .await;
    assert_eq!(in_thread, Some(Handled::Replied));
    h.idle().await;
    assert!(!h
        .fake
        .matching("POST", &format!("/channels/{thread}/messages"))
        .is_empty());
}

#[tokio::test]
async fn register_commands_creates_the_slash_command() {
    let h = harness().await;
    let id = paver::discord::commands::register(&h.config, Some("290926798626357999"))
        .await
        .unwrap();
    let id2 = paver::discord::commands::register(&h.config, None)
        .await
        .unwrap();
    assert_ne!(id, id2);
    let guild = h.fake.matching(
        "POST",
        &format!("/api/v10/applications/{APP_ID}/guilds/290926798626357999/commands"),
    );
    assert_eq!(guild.len(), 1);
    assert_eq!(guild[0].body["name"], "paver");
    assert_eq!(guild[0].body["options"][0]["name"], "request");
    assert_eq!(guild[0].auth.as_deref(), Some("Bot test-bot-token"));
    assert_eq!(
        h.fake
            .matching("POST", &format!("/api/v10/applications/{APP_ID}/commands"))
            .len(),
        1
    );
    // Without an application id there is nothing to register under.
    let mut config = h.config.clone();
    config.discord.application_id = None;
    assert!(paver::discord::commands::register(&config, None)
        .await
        .unwrap_err()
        .to_string()
        .contains("application_id"));
}

#[tokio::test]
async fn the_endpoint_needs_the_bot_token_and_a_valid_key() {
    let h = harness().await;
    let mut config = h.config.clone();
    config.discord.token = None;
    assert!(paver::server::router(&h.app, &config).is_err());
    assert!(paver::server::sinks(&config).unwrap().is_empty());
    let mut config = h.config.clone();
    config.discord.public_key = Some("00".repeat(31));
    assert!(paver::server::router(&h.app, &config).is_err());
    let mut config = h.config.clone();
    config.discord.api_url = url::Url::parse("https://discord.com/api/v9").unwrap();
    assert!(paver::server::sinks(&config).is_err());
}

#[tokio::test]
async fn gateway_interactions_are_acknowledged_through_the_api() {
    let h = harness().await;
    let gateway = h.gateway();
    gateway.set_bot_id(BOT.parse().unwrap());
    let command = paver::discord::interactions::parse(&slash(
        "900000000000000050",
        ALICE,
        "restart cart-service in dev",
    ))
    .unwrap();
    gateway.on_interaction(command).await;
    let callbacks = h.fake.matching(
        "POST",
        "/api/v10/interactions/900000000000000050/token-900000000000000050/callback",
    );
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].body, json!({ "type": 5 }));
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    h.idle().await;
    h.fake
        .wait_for("the original response edited", |calls| {
            calls
                .iter()
                .any(|c| c.method == "PATCH" && c.path.contains("@original"))
        })
        .await;
    let press = paver::discord::interactions::parse(&click(
        "900000000000000051",
        ALICE,
        &h.button("Restart cart-service", "Restart"),
    ))
    .unwrap();
    gateway.on_interaction(press).await;
    assert_eq!(
        h.fake.matching("POST", "/interactions/900000000000000051/")[0].body,
        json!({ "type": 6 })
    );
    h.fake
        .wait_for("done", |_| {
            h.card("Restart cart-service")
                .is_some_and(|(_, c)| Harness::status_of(&c) == "Done")
        })
        .await;
    assert_eq!(h.driver.calls(), 1);
}

#[tokio::test]
async fn the_gateway_client_uses_the_configured_api_url() {
    // serenity's own HTTP client (HttpBuilder::proxy) asks the fake, not
    // discord.com, for the gateway address. The websocket itself is not
    // exercised here: that needs the real Discord.
    let h = harness().await;
    let handle = paver::discord::gateway::spawn(&h.app, &h.config)
        .unwrap()
        .expect("a gateway task when a token is set");
    let calls = h
        .fake
        .wait_for("the gateway lookup", |calls| {
            calls.iter().any(|c| c.path.starts_with("/api/v10/gateway"))
        })
        .await;
    handle.abort();
    let lookup = calls
        .iter()
        .find(|c| c.path.starts_with("/api/v10/gateway"))
        .unwrap();
    assert_eq!(lookup.auth.as_deref(), Some("Bot test-bot-token"));
    let mut off = h.config.clone();
    off.discord.gateway = false;
    assert!(paver::discord::gateway::spawn(&h.app, &off)
        .unwrap()
        .is_none());
}

// ----- server boundaries (issue 10, item 7) ----------------------------------

#[tokio::test]
async fn interactions_and_messages_from_other_servers_are_acknowledged_not_handled() {
    let h = harness().await;
    let mut foreign: Value = serde_json::from_slice(&slash(
        "900000000000000060",
        ALICE,
        "restart cart-service in dev",
    ))
    .unwrap();
    foreign["guild_id"] = json!("111111111111111111");
    let (status, answer) = h.send(&serde_json::to_vec(&foreign).unwrap()).await;
    assert_eq!(
        status, 200,
        "acknowledged, so Discord does not show a failure"
    );
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    let mut other_app: Value =
        serde_json::from_slice(&click("900000000000000061", ALICE, "confirm:r-x:n")).unwrap();
    other_app["application_id"] = json!("123456789012345678");
    let (status, answer) = h.send(&serde_json::to_vec(&other_app).unwrap()).await;
    assert_eq!((status, answer["type"].as_u64()), (200, Some(4)));
    // The gateway: a mention from another server is not for Paver.
    let gateway = h.gateway();
    gateway.set_bot_id(BOT.parse().unwrap());
    let mention = GatewayMessage {
        id: "2001".into(),
        channel_id: "8000".into(),
        guild_id: Some("111111111111111111".into()),
        author_id: ALICE.into(),
        content: format!("<@{BOT}> restart cart-service in dev"),
        mentions: vec![BOT.into()],
        ..GatewayMessage::default()
    };
    assert_eq!(gateway.on_message(mention.clone()).await, None);
    assert_eq!(gateway.receive(mention.clone()).await, None);
    h.idle().await;
    assert!(h.fake.calls().is_empty(), "{:?}", h.fake.calls());
    assert_eq!(
        h.app
            .db
            .inbox()
            .state(
                paver::chat::Platform::Discord,
                "interaction-900000000000000060"
            )
            .await
            .unwrap(),
        None
    );
    // The application's own server is served.
    let home = GatewayMessage {
        id: "2002".into(),
        guild_id: Some(GUILD.into()),
        ..mention
    };
    assert_eq!(
        gateway.receive(home).await,
        Some(paver::engine::inbox::Accepted::Stored)
    );
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    h.idle().await;
}

#[tokio::test]
async fn the_guild_allow_list_replaces_the_applications_server() {
    let h = harness().await;
    let mut config = h.config.discord.clone();
    config.guild_ids = vec!["222222222222222222".into()];
    let guilds = paver::discord::Guilds::new(&config);
    // application_id and guild_ids are configured: nothing to ask.
    assert!(guilds
        .start(paver::discord::api(&h.config).unwrap().unwrap())
        .is_none());
    use paver::chat::learned::Origin;
    assert_eq!(
        guilds.check(Some(APP_ID), Some("222222222222222222")).await,
        Origin::Ours
    );
    assert!(matches!(
        guilds.check(Some(APP_ID), Some(GUILD)).await,
        Origin::Elsewhere(_)
    ));
    assert!(matches!(
        guilds.check(Some("1"), Some("222222222222222222")).await,
        Origin::Elsewhere(_)
    ));
    assert_eq!(guilds.check(None, None).await, Origin::Ours, "a DM");
}

#[tokio::test]
async fn until_the_application_is_known_interactions_are_refused() {
    let h = harness_with(EngineSettings::default(), PolicyConfig::default(), 1).await;
    let body = slash("900000000000000070", ALICE, "restart cart-service in dev");
    assert_eq!(h.send(&body).await.0, 503, "unknown application: refused");
    // Asked again after a second: then handled.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = h.send(&body).await;
        if status == 200 {
            assert_eq!(answer["type"], 5);
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "the application was never learned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    assert!(h.fake.app_lookups.load(Ordering::SeqCst) >= 2);
}

// ----- nothing acknowledged is lost (issue 10, item 8) ------------------------

#[tokio::test]
async fn a_closed_database_gets_503_for_interactions() {
    let h = harness().await;
    h.app.db.pool().close().await;
    let (status, _) = h
        .send(&slash(
            "900000000000000080",
            ALICE,
            "restart cart-service in dev",
        ))
        .await;
    assert_eq!(status, 503, "not acknowledged");
    let (status, _) = h
        .send(&click("900000000000000081", ALICE, "confirm:r-x:n"))
        .await;
    assert_eq!(status, 503);
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn after_an_outage_an_interaction_sent_again_is_handled_once() {
    let h = harness().await;
    let body = slash("900000000000000090", ALICE, "restart cart-service in dev");
    sqlx::query("ALTER TABLE inbox RENAME TO inbox_offline")
        .execute(h.app.db.pool())
        .await
        .unwrap();
    assert_eq!(h.send(&body).await.0, 503);
    sqlx::query("ALTER TABLE inbox_offline RENAME TO inbox")
        .execute(h.app.db.pool())
        .await
        .unwrap();
    assert_eq!(h.send(&body).await.0, 200);
    assert_eq!(h.send(&body).await.0, 200);
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    h.idle().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.idle().await;
    assert_eq!(h.fake.matching("PATCH", "@original").len(), 1);
    let state = h
        .app
        .db
        .inbox()
        .state(
            paver::chat::Platform::Discord,
            "interaction-900000000000000090",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.status.as_str(), state.attempts), ("done", 1));
}

#[tokio::test]
async fn a_stored_interaction_left_by_a_crash_is_handled_by_recovery() {
    let h = harness().await;
    let gateway = h.gateway();
    let paver::discord::interactions::Incoming::Command(c) = paver::discord::interactions::parse(
        &slash("900000000000000100", ALICE, "restart cart-service in dev"),
    )
    .unwrap() else {
        panic!("a command")
    };
    let work = paver::discord::interactions::DiscordWork::Command(c);
    h.app
        .db
        .inbox()
        .insert(
            paver::chat::Platform::Discord,
            &work.key(),
            &serde_json::to_string(&work).unwrap(),
            0,
        )
        .await
        .unwrap()
        .unwrap();
    paver::engine::inbox::recover_once(gateway.interactions())
        .await
        .unwrap();
    h.fake
        .wait_for("the card", |_| h.card("Restart cart-service").is_some())
        .await;
    h.fake
        .wait_for("the original response edited", |calls| {
            calls
                .iter()
                .any(|c| c.method == "PATCH" && c.path.contains("@original"))
        })
        .await;
    h.idle().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = h
            .app
            .db
            .inbox()
            .state(paver::chat::Platform::Discord, &work.key())
            .await
            .unwrap()
            .unwrap();
        if state.status == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "never marked done");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- bounded everywhere (issue 10, item 9) -----------------------------------

#[tokio::test]
async fn discord_interactions_and_gateway_events_are_bounded_by_max_in_flight() {
    let h = harness_with(
        EngineSettings {
            max_in_flight: 0,
            ..EngineSettings::default()
        },
        PolicyConfig::default(),
        0,
    )
    .await;
    // HTTP interaction: 503, nothing stored.
    let (status, _) = h
        .send(&slash(
            "900000000000000110",
            ALICE,
            "restart cart-service in dev",
        ))
        .await;
    assert_eq!(status, 503);
    // Gateway interaction: not acknowledged.
    let gateway = h.gateway();
    gateway.set_bot_id(BOT.parse().unwrap());
    let command = paver::discord::interactions::parse(&slash(
        "900000000000000111",
        ALICE,
        "restart cart-service in dev",
    ))
    .unwrap();
    gateway.on_interaction(command).await;
    // Gateway message: Discord cannot deliver it again, so it is stored for
    // later instead of being handled beyond the bound.
    let msg = GatewayMessage {
        id: "3001".into(),
        channel_id: "7000".into(),
        guild_id: None,
        author_id: ALICE.into(),
        content: "restart cart-service in dev".into(),
        ..GatewayMessage::default()
    };
    assert_eq!(
        gateway.receive(msg).await,
        Some(paver::engine::inbox::Accepted::Deferred)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.idle().await;
    assert!(h.fake.calls().is_empty(), "{:?}", h.fake.calls());
    let inbox = h.app.db.inbox();
    assert_eq!(
        inbox
            .state(
                paver::chat::Platform::Discord,
                "interaction-900000000000000110"
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        inbox
            .state(paver::chat::Platform::Discord, "message-3001")
            .await
            .unwrap()
            .map(|s| s.status),
        Some("pending".into())
    );
}

/// `approval_notices.to = "dm"` on Discord: the one eligible approver with
/// a Discord id (dave) gets the card in a DM, pinged by nothing but the DM
/// itself; his press there runs the request, and the DM copy is edited in
/// its DM channel like the card in the channel.
#[tokio::test]
async fn approvers_get_the_card_in_a_dm_that_follows_the_decision() {
    use paver::requests::approvals::{ApprovalNoticeConfig, NoticeTo};
    let h = harness_with(
        EngineSettings {
            approval_notices: ApprovalNoticeConfig {
                to: NoticeTo::Dm,
                ..ApprovalNoticeConfig::default()
            },
            ..EngineSettings::default()
        },
        PolicyConfig::default(),
        0,
    )
    .await;
    h.send(&slash(
        "900000000000000310",
        ALICE,
        "deploy order-service 1.4.0 to production",
    ))
    .await;
    h.fake
        .wait_for("the card", |_| h.card("Deploy order-service").is_some())
        .await;
    h.send(&click(
        "900000000000000311",
        ALICE,
        &h.button("Deploy order-service", "Deploy"),
    ))
    .await;
    // The fake opens every DM as channel 424242424242.
    let dm_messages = "/api/v10/channels/424242424242/messages";
    let calls = h
        .fake
        .wait_for("the copy in dave's DM", |calls| {
            calls
                .iter()
                .any(|c| c.method == "POST" && c.path == dm_messages)
        })
        .await;
    h.idle().await;
    let opened = h.fake.matching("POST", "/users/@me/channels");
    assert_eq!(
        opened.len(),
        1,
        "one DM: dave is the only one with a Discord id"
    );
    assert_eq!(opened[0].body["recipient_id"], DAVE);
    let copy = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == dm_messages)
        .unwrap();
    let copy_id = copy.response["id"].as_str().unwrap().to_owned();
    let approve = Harness::buttons(&copy.body)
        .into_iter()
        .find(|(l, _)| l == "Approve")
        .unwrap()
        .1;
    assert_eq!(approve, h.button("Deploy order-service", "Approve"));

    h.send(&click("900000000000000312", DAVE, &approve)).await;
    let edited = format!("{dm_messages}/{copy_id}");
    h.fake
        .wait_for("the DM copy edited to Done", |calls| {
            calls.iter().any(|c| {
                c.method == "PATCH"
                    && c.path == edited
                    && c.body["components"] == json!([])
                    && Harness::status_of(&c.body) == "Done"
            })
        })
        .await;
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
    let (_, card) = h.card("Deploy order-service").unwrap();
    assert_eq!(card["components"], json!([]));
}

/// Deny asks why: the press is answered with a modal (type 9) whose
/// custom_id is the button's payload alone, and denies nothing; the modal's
/// submission denies, and the card says who and why. An empty reason is
/// refused privately and changes nothing.
#[tokio::test]
async fn deny_opens_a_modal_and_its_submission_denies_with_the_reason() {
    let h = harness().await;
    h.send(&slash(
        "900000000000000040",
        ALICE,
        "deploy order-service 1.4.0 to production",
    ))
    .await;
    h.fake
        .wait_for("the card", |_| h.card("Deploy order-service").is_some())
        .await;
    h.send(&click(
        "900000000000000041",
        ALICE,
        &h.button("Deploy order-service", "Deploy"),
    ))
    .await;
    h.idle().await;
    let deny = h.button("Deploy order-service", "Deny");
    let id = ButtonPayload::parse(&deny).unwrap().request_id;

    let (status, modal) = h.send(&click("900000000000000042", DAVE, &deny)).await;
    assert_eq!(status, 200);
    assert_eq!(modal["type"], 9, "{modal}");
    assert_eq!(
        modal["data"]["custom_id"],
        json!(deny),
        "the payload, nothing else"
    );
    let input = &modal["data"]["components"][0]["components"][0];
    assert_eq!(
        (input["type"].clone(), input["style"].clone()),
        (json!(4), json!(2))
    );
    assert_eq!(input["custom_id"], "reason");
    assert_eq!(input["required"], true);
    assert_eq!(input["max_length"], 500);
    h.idle().await;
    let req = h.app.db.requests().get(&id).await.unwrap();
    assert_eq!(
        req.state,
        RequestState::AwaitingApproval,
        "the press alone did nothing"
    );

    // An empty reason: told privately at once, nothing happens.
    let (status, answer) = h
        .send(&submit("900000000000000043", DAVE, &deny, "  "))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64);
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap()
        .contains("Say why"));
    h.idle().await;
    assert_eq!(
        h.app.db.requests().get(&id).await.unwrap().state,
        RequestState::AwaitingApproval
    );

    // With a reason: denied; the card says who and why.
    let (status, answer) = h
        .send(&submit(
            "900000000000000044",
            DAVE,
            &deny,
            "not during the @everyone freeze",
        ))
        .await;
    assert_eq!((status, answer), (200, json!({ "type": 6 })));
    h.idle().await;
    let req = h.app.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Denied);
    assert_eq!(req.denied_by.as_deref(), Some("dave"));
    assert_eq!(
        req.denial_reason.as_deref(),
        Some("not during the @everyone freeze")
    );
    assert_eq!(h.driver.calls(), 0);
    let (_, card) = h.card("Deploy order-service").unwrap();
    assert_eq!(
        Harness::status_of(&card),
        "Denied by dave: not during the @\u{200B}everyone freeze"
    );
    assert_eq!(card["components"], json!([]));
    let events = h.app.db.requests().events(&id).await.unwrap();
    assert!(events.iter().any(|e| e.transition == "deny"
        && e.chat == format!("discord:{DAVE}")
        && e.detail == "denied: not during the @everyone freeze"));

    // The same submission again (a stale form): refused, nothing changes.
    h.send(&submit("900000000000000045", DAVE, &deny, "again"))
        .await;
    h.fake
        .wait_for("the stale form answered privately", |calls| {
            calls
                .iter()
                .any(|c| c.path.ends_with("token-900000000000000045"))
        })
        .await;
    h.idle().await;
    let after = h.app.db.requests().get(&id).await.unwrap();
    assert_eq!(after.denial_reason, req.denial_reason);
    assert_eq!(after.updated_at, req.updated_at);
}
