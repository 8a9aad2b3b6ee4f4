//! What Slack sends Paver, by HTTP (Events API, interactivity, slash
//! commands) or Socket Mode: verified, checked to come from a workspace
//! Paver serves, stored in the inbox, and only then acknowledged; the work
//! runs from the stored event ([`crate::chat::inbox`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::api::SlackApi;
use super::{blocks, verify};
use crate::catalog::SharedCatalog;
use crate::chat::inbox::{self, InboxHandler, InboxSettings, Refused};
use crate::chat::learned::{Learned, Origin};
use crate::chat::{messages, ChatUser, Conversation, Inbound, Platform};
use crate::config::SlackConfig;
use crate::engine::Engine;
use crate::engine::EngineError;

/// How long an event waits for `auth.test` at start before it is refused.
const LEARN_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct SlackState {
    pub engine: Engine,
    pub catalog: SharedCatalog,
    pub api: Arc<SlackApi>,
    /// None only under Socket Mode, where the socket itself is authenticated.
    pub signing_secret: Option<SecretString>,
    /// Paver's own user id, from `auth.test` or event authorizations.
    pub bot_user_id: Arc<Mutex<Option<String>>>,
    /// Which workspaces' events are handled.
    pub workspace: Arc<Workspace>,
    pub inbox: InboxSettings,
}

/// The workspace boundary: `slack.team_ids` (empty: the bot token's own
/// workspace, from `auth.test`) and `slack.app_id`.
pub struct Workspace {
    team_ids: Vec<String>,
    app_id: Option<String>,
    own: Arc<Learned<String>>,
}

impl Workspace {
    pub fn new(config: &SlackConfig) -> Self {
        Workspace {
            team_ids: config.team_ids.clone(),
            app_id: config.app_id.clone().filter(|a| !a.is_empty()),
            own: Learned::asking(),
        }
    }

    /// Where an event with this `team_id` and `api_app_id` came from.
    pub async fn check(&self, team: Option<&str>, app: Option<&str>) -> Origin {
        if let Some(ours) = &self.app_id {
            if app != Some(ours.as_str()) {
                return Origin::Elsewhere(format!(
                    "app {} is not slack.app_id",
                    app.unwrap_or("(none)")
                ));
            }
        }
        let Some(team) = team.filter(|t| !t.is_empty()) else {
            return Origin::Elsewhere("no team_id".into());
        };
        if !self.team_ids.is_empty() {
            return if self.team_ids.iter().any(|t| t == team) {
                Origin::Ours
            } else {
                Origin::Elsewhere(format!("team {team} is not in slack.team_ids"))
            };
        }
        match self.own.get(LEARN_WAIT).await {
            Some(own) if own == team => Origin::Ours,
            Some(own) => Origin::Elsewhere(format!("team {team} is not this workspace ({own})")),
            None => Origin::Unknown,
        }
    }
}

/// An inbound Slack event as stored in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SlackWork {
    /// An Events API event (the `event` object).
    Event { event: Value },
    /// Button presses (block_actions).
    Buttons {
        user: String,
        channel: String,
        thread: Option<String>,
        values: Vec<String>,
    },
    /// `/paver <request>`.
    Command {
        user: String,
        channel: String,
        text: String,
    },
}

impl SlackState {
    pub fn new(
        engine: Engine,
        catalog: SharedCatalog,
        api: Arc<SlackApi>,
        config: &SlackConfig,
    ) -> Self {
        SlackState {
            engine,
            catalog,
            api,
            signing_secret: config.signing_secret.clone(),
            bot_user_id: Arc::new(Mutex::new(None)),
            workspace: Arc::new(Workspace::new(config)),
            inbox: InboxSettings::default(),
        }
    }

    /// The background work: asking `auth.test` who Paver is (its workspace
    /// and user id), and handling stored events left pending.
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        let learn = self
            .workspace
            .own
            .learn("the Slack workspace (auth.test)", move || {
                let me = me.clone();
                async move {
                    let id = me.api.whoami().await?;
                    me.bot_user_id
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(id.user_id);
                    tracing::info!(team = %id.team_id, "Slack workspace known");
                    Ok::<_, crate::chat::SendError>(id.team_id)
                }
            });
        vec![learn, inbox::spawn_recovery(self.clone())]
    }
}

#[async_trait]
impl InboxHandler for SlackState {
    type Work = SlackWork;

    fn platform(&self) -> Platform {
        Platform::Slack
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn inbox_settings(&self) -> &InboxSettings {
        &self.inbox
    }

    async fn handle(&self, work: SlackWork) -> Result<(), EngineError> {
        match work {
            SlackWork::Event { event } => self.on_event(&event).await,
            SlackWork::Buttons {
                user,
                channel,
                thread,
                values,
            } => {
                let user = chat_user(self, &user).await;
                let conv = Conversation {
                    platform: Platform::Slack,
                    channel,
                    thread,
                };
                for v in values {
                    self.engine.handle_button(&user, &conv, &v).await?;
                }
                Ok(())
            }
            SlackWork::Command {
                user,
                channel,
                text,
            } => {
                let inbound = Inbound {
                    // The inbox already dropped redeliveries.
                    event_id: None,
                    user: chat_user(self, &user).await,
                    conversation: Conversation {
                        platform: Platform::Slack,
                        channel,
                        thread: None,
                    },
                    text,
                };
                self.engine.handle_message(inbound).await.map(drop)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPayload {
    #[error("malformed Slack payload: {0}")]
    Malformed(String),
    /// Not malformed: Paver is saturated and wants it delivered again.
    #[error("busy: {0}")]
    Busy(#[from] crate::engine::Overloaded),
    /// Not malformed: it cannot be stored (or its workspace checked) now,
    /// and is not acknowledged, so Slack delivers it again.
    #[error("cannot take events right now")]
    Unavailable,
}

pub fn routes(state: SlackState) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/interactions", post(interactions))
        .route("/slack/commands", post(commands))
        .with_state(state)
}

/// Every HTTP request must carry a valid signature; anything else is a 401,
/// a warning in the log, and nothing more.
fn check(state: &SlackState, headers: &HeaderMap, body: &[u8]) -> Result<(), StatusCode> {
    let Some(secret) = &state.signing_secret else {
        tracing::warn!("Slack HTTP request refused: no signing secret is configured");
        return Err(StatusCode::UNAUTHORIZED);
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verify::verify(
        secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        now,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "Slack request with a bad signature refused");
        StatusCode::UNAUTHORIZED
    })
}

fn bad_request(e: BadPayload) -> Response {
    match e {
        BadPayload::Malformed(m) => {
            tracing::info!(error = %m, "Slack payload refused");
            (StatusCode::BAD_REQUEST, m).into_response()
        }
        // Slack retries a delivery that did not get a 2xx.
        BadPayload::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        BadPayload::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
    }
}

async fn events(State(state): State<SlackState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = check(&state, &headers, &body) {
        return (status, "bad signature").into_response();
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(BadPayload::Malformed(format!("not JSON: {e}"))),
    };
    match handle_event_payload(&state, payload).await {
        Ok(Some(reply)) => Json(reply).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => bad_request(e),
    }
}

fn form(body: &[u8]) -> Result<HashMap<String, String>, BadPayload> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BadPayload::Malformed("form body is not UTF-8".into()))?;
    if !text.contains('=') {
        return Err(BadPayload::Malformed("not a form body".into()));
    }
    Ok(url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect())
}

async fn interactions(
    State(state): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(status) = check(&state, &headers, &body) {
        return (status, "bad signature").into_response();
    }
    let payload = form(&body).and_then(|f| {
        let raw = f
            .get("payload")
            .ok_or_else(|| BadPayload::Malformed("no payload field".into()))?;
        serde_json::from_str::<Value>(raw)
            .map_err(|e| BadPayload::Malformed(format!("payload is not JSON: {e}")))
    });
    match payload {
        Ok(p) => match handle_interaction(&state, p).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => bad_request(e),
        },
        Err(e) => bad_request(e),
    }
}

async fn commands(State(state): State<SlackState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = check(&state, &headers, &body) {
        return (status, "bad signature").into_response();
    }
    match form(&body) {
        Ok(f) => match handle_command(&state, &f).await {
            Ok(Value::Null) => StatusCode::OK.into_response(),
            Ok(reply) => Json(reply).into_response(),
            Err(e) => bad_request(e),
        },
        Err(e) => bad_request(e),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

async fn chat_user(state: &SlackState, id: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Slack,
        id: id.to_owned(),
        catalog: state.api.identify(&state.catalog, id).await,
    }
}

/// Stores an event in the inbox (then it is handled); refuses, so Slack
/// delivers it again, when Paver is saturated or cannot store it.
async fn store(state: &SlackState, key: &str, work: SlackWork) -> Result<(), BadPayload> {
    match inbox::accept(state, key, &work).await {
        Ok(_) => Ok(()),
        Err(Refused::Busy(o)) => Err(BadPayload::Busy(o)),
        Err(Refused::Unavailable(_)) => Err(BadPayload::Unavailable),
    }
}

/// Whether a payload from `team`/`app` is for Paver: `Ok(false)` for
/// another workspace (acknowledged and ignored, so Slack does not retry).
async fn admit(
    state: &SlackState,
    what: &str,
    team: Option<&str>,
    app: Option<&str>,
) -> Result<bool, BadPayload> {
    match state.workspace.check(team, app).await {
        Origin::Ours => Ok(true),
        Origin::Elsewhere(why) => {
            tracing::warn!(
                team = team.unwrap_or(""),
                app = app.unwrap_or(""),
                "Slack {what} from outside the served workspace ignored: {why}"
            );
            Ok(false)
        }
        Origin::Unknown => {
            tracing::warn!(
                "Slack {what} refused: Paver does not know its own workspace yet (auth.test has not answered)"
            );
            Err(BadPayload::Unavailable)
        }
    }
}

/// A stable key for a payload that carries no id of its own: the same
/// delivery gives the same key.
fn digest(prefix: &str, text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    format!("{prefix}-{}", hex::encode(&hash[..16]))
}

/// An Events API payload (HTTP body or Socket Mode `events_api` payload).
/// Returns the body to answer with, if the payload needs one.
pub async fn handle_event_payload(
    state: &SlackState,
    payload: Value,
) -> Result<Option<Value>, BadPayload> {
    match payload.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = payload
                .get("challenge")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BadPayload::Malformed("url_verification without a challenge".into())
                })?;
            Ok(Some(json!({"challenge": challenge})))
        }
        Some("event_callback") => {
            let event = payload
                .get("event")
                .filter(|e| e.is_object())
                .ok_or_else(|| BadPayload::Malformed("event_callback without an event".into()))?;
            let event_id = payload
                .get("event_id")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BadPayload::Malformed("event_callback without an event_id".into())
                })?;
            if !admit(
                state,
                "event",
                str_at(&payload, &["team_id"]),
                str_at(&payload, &["api_app_id"]),
            )
            .await?
            {
                return Ok(None);
            }
            if let Some(auth) = payload.get("authorizations").and_then(|a| a.get(0)) {
                if auth.get("is_bot").and_then(Value::as_bool) == Some(true) {
                    if let Some(uid) = auth.get("user_id").and_then(Value::as_str) {
                        *state.bot_user_id.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(uid.to_owned());
                    }
                }
            }
            store(
                state,
                event_id,
                SlackWork::Event {
                    event: event.clone(),
                },
            )
            .await?;
            Ok(None)
        }
        Some(other) => {
            tracing::debug!(kind = other, "Slack payload type ignored");
            Ok(None)
        }
        None => Err(BadPayload::Malformed("no type".into())),
    }
}

impl SlackState {
    async fn on_event(&self, event: &Value) -> Result<(), EngineError> {
        // Bots, Paver included, are never listened to; nor are edits and deletions.
        if event.get("bot_id").is_some() || event.get("subtype").is_some() {
            return Ok(());
        }
        let Some(user) = event.get("user").and_then(Value::as_str) else {
            return Ok(());
        };
        let bot = self
            .bot_user_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if bot.as_deref() == Some(user) {
            return Ok(());
        }
        let (Some(channel), Some(text)) = (
            event.get("channel").and_then(Value::as_str),
            event.get("text").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let ts = event.get("ts").and_then(Value::as_str);
        let thread_ts = event.get("thread_ts").and_then(Value::as_str);
        let thread = match event.get("type").and_then(Value::as_str) {
            // A mention starts (or continues) a thread under the message.
            Some("app_mention") => thread_ts.or(ts).map(str::to_owned),
            Some("message") if event.get("channel_type").and_then(Value::as_str) == Some("im") => {
                thread_ts.map(str::to_owned)
            }
            Some("message") => {
                // In channels Paver hears mentions through app_mention; a
                // plain message counts only as a reply in a request's thread.
                let mentions_bot = bot
                    .as_ref()
                    .is_some_and(|b| text.contains(&format!("<@{b}>")));
                let Some(t) = thread_ts else { return Ok(()) };
                if mentions_bot {
                    return Ok(());
                }
                let ours = self
                    .engine
                    .db()
                    .requests()
                    .any_in_thread(Platform::Slack.as_str(), channel, t)
                    .await?;
                if !ours {
                    return Ok(());
                }
                Some(t.to_owned())
            }
            _ => return Ok(()),
        };
        let inbound = Inbound {
            // The inbox already dropped redeliveries; a retry after a crash
            // must not be taken for one.
            event_id: None,
            user: chat_user(self, user).await,
            conversation: Conversation {
                platform: Platform::Slack,
                channel: channel.to_owned(),
                thread,
            },
            text: text.to_owned(),
        };
        self.engine.handle_message(inbound).await.map(drop)
    }
}

fn team_of_interaction(payload: &Value) -> Option<&str> {
    str_at(payload, &["team", "id"])
        .or_else(|| str_at(payload, &["user", "team_id"]))
        .or_else(|| str_at(payload, &["team_id"]))
}

/// An interactivity payload: button presses (block_actions), modal submits.
pub async fn handle_interaction(state: &SlackState, payload: Value) -> Result<(), BadPayload> {
    let kind = payload.get("type").and_then(Value::as_str);
    if kind.is_none() {
        return Err(BadPayload::Malformed("interaction without a type".into()));
    }
    if !admit(
        state,
        "interaction",
        team_of_interaction(&payload),
        str_at(&payload, &["api_app_id"]),
    )
    .await?
    {
        return Ok(());
    }
    match kind {
        Some("block_actions") => {
            let user = str_at(&payload, &["user", "id"])
                .ok_or_else(|| BadPayload::Malformed("block_actions without a user".into()))?
                .to_owned();
            let channel = str_at(&payload, &["channel", "id"])
                .or_else(|| str_at(&payload, &["container", "channel_id"]))
                .ok_or_else(|| BadPayload::Malformed("block_actions without a channel".into()))?
                .to_owned();
            let thread = str_at(&payload, &["message", "thread_ts"]).map(str::to_owned);
            let values: Vec<String> = payload
                .get("actions")
                .and_then(Value::as_array)
                .ok_or_else(|| BadPayload::Malformed("block_actions without actions".into()))?
                .iter()
                .filter_map(|a| a.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect();
            // Interactions carry no event id: the delivery itself is the key.
            let key = digest("interaction", &payload.to_string());
            store(
                state,
                &key,
                SlackWork::Buttons {
                    user,
                    channel,
                    thread,
                    values,
                },
            )
            .await
        }
        // Paver opens no modals of its own yet; a submission is acknowledged.
        Some("view_submission")
        | Some("view_closed")
        | Some("shortcut")
        | Some("message_action") => Ok(()),
        Some(other) => {
            tracing::debug!(kind = other, "Slack interaction ignored");
            Ok(())
        }
        None => Err(BadPayload::Malformed("interaction without a type".into())),
    }
}

/// `/paver <request>` and `/paver help`. Returns the immediate answer
/// (`Null`: none, for a command from another workspace).
pub async fn handle_command(
    state: &SlackState,
    f: &HashMap<String, String>,
) -> Result<Value, BadPayload> {
    let get = |k: &str| {
        f.get(k)
            .map(String::as_str)
            .ok_or_else(|| BadPayload::Malformed(format!("slash command without {k}")))
    };
    let text = f.get("text").map(|t| t.trim()).unwrap_or("");
    let user = get("user_id")?.to_owned();
    let channel = get("channel_id")?.to_owned();
    if !admit(
        state,
        "slash command",
        f.get("team_id").map(String::as_str),
        f.get("api_app_id").map(String::as_str),
    )
    .await?
    {
        return Ok(Value::Null);
    }
    if text.is_empty() || text.eq_ignore_ascii_case("help") {
        let help = messages::help();
        return Ok(
            json!({"response_type": "ephemeral", "text": blocks::fallback(&help), "blocks": blocks::render(&help)}),
        );
    }
    let key = match f.get("trigger_id") {
        Some(t) => format!("command-{t}"),
        None => {
            let mut fields: Vec<_> = f.iter().collect();
            fields.sort();
            digest("command", &format!("{fields:?}"))
        }
    };
    store(
        state,
        &key,
        SlackWork::Command {
            user,
            channel,
            text: text.to_owned(),
        },
    )
    .await?;
    Ok(json!({"response_type": "ephemeral", "text": format!("On it: {}", blocks::escape(text))}))
}
