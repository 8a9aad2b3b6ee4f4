//! What Slack sends Paver, by HTTP (Events API, interactivity, slash
//! commands) or Socket Mode: verified, acknowledged at once, handled after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::api::SlackApi;
use super::{blocks, verify};
use crate::catalog::SharedCatalog;
use crate::chat::{messages, ChatUser, Conversation, Inbound, Platform};
use crate::requests::Engine;

#[derive(Clone)]
pub struct SlackState {
    pub engine: Engine,
    pub catalog: SharedCatalog,
    pub api: Arc<SlackApi>,
    /// None only under Socket Mode, where the socket itself is authenticated.
    pub signing_secret: Option<SecretString>,
    /// Paver's own user id, learned from event authorizations.
    pub bot_user_id: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPayload {
    #[error("malformed Slack payload: {0}")]
    Malformed(String),
    /// Not malformed: Paver is saturated and wants it delivered again.
    #[error("busy: {0}")]
    Busy(#[from] crate::requests::engine::Overloaded),
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
            if let Some(auth) = payload.get("authorizations").and_then(|a| a.get(0)) {
                if auth.get("is_bot").and_then(Value::as_bool) == Some(true) {
                    if let Some(uid) = auth.get("user_id").and_then(Value::as_str) {
                        *state.bot_user_id.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(uid.to_owned());
                    }
                }
            }
            let event_id = payload
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let event = event.clone();
            let me = state.clone();
            // Acknowledge now; the work happens after.
            state.engine.track(async move {
                me.on_event(event_id, &event).await;
                Ok(())
            })?;
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
    async fn on_event(&self, event_id: Option<String>, event: &Value) {
        // Bots, Paver included, are never listened to; nor are edits and deletions.
        if event.get("bot_id").is_some() || event.get("subtype").is_some() {
            return;
        }
        let Some(user) = event.get("user").and_then(Value::as_str) else {
            return;
        };
        let bot = self
            .bot_user_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if bot.as_deref() == Some(user) {
            return;
        }
        let (Some(channel), Some(text)) = (
            event.get("channel").and_then(Value::as_str),
            event.get("text").and_then(Value::as_str),
        ) else {
            return;
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
                let Some(t) = thread_ts else { return };
                let ours = self
                    .engine
                    .db()
                    .requests()
                    .any_in_thread(Platform::Slack.as_str(), channel, t)
                    .await
                    .unwrap_or(false);
                if mentions_bot || !ours {
                    return;
                }
                Some(t.to_owned())
            }
            _ => return,
        };
        let inbound = Inbound {
            event_id,
            user: chat_user(self, user).await,
            conversation: Conversation {
                platform: Platform::Slack,
                channel: channel.to_owned(),
                thread,
            },
            text: text.to_owned(),
        };
        if let Err(e) = self.engine.handle_message(inbound).await {
            tracing::error!(error = %e, "Slack event failed");
        }
    }
}

/// An interactivity payload: button presses (block_actions), modal submits.
pub async fn handle_interaction(state: &SlackState, payload: Value) -> Result<(), BadPayload> {
    match payload.get("type").and_then(Value::as_str) {
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
            let me = state.clone();
            state.engine.track(async move {
                let user = chat_user(&me, &user).await;
                let conv = Conversation {
                    platform: Platform::Slack,
                    channel,
                    thread,
                };
                for v in values {
                    me.engine.handle_button(&user, &conv, &v).await?;
                }
                Ok(())
            })?;
            Ok(())
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

/// `/paver <request>` and `/paver help`. Returns the immediate answer.
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
    if text.is_empty() || text.eq_ignore_ascii_case("help") {
        let help = messages::help();
        return Ok(
            json!({"response_type": "ephemeral", "text": blocks::fallback(&help), "blocks": blocks::render(&help)}),
        );
    }
    let event_id = f.get("trigger_id").map(|t| format!("command-{t}"));
    let me = state.clone();
    let request = text.to_owned();
    state.engine.track(async move {
        let inbound = Inbound {
            event_id,
            user: chat_user(&me, &user).await,
            conversation: Conversation {
                platform: Platform::Slack,
                channel,
                thread: None,
            },
            text: request,
        };
        me.engine.handle_message(inbound).await.map(|_| ())
    })?;
    Ok(json!({"response_type": "ephemeral", "text": format!("On it: {}", blocks::escape(text))}))
}
