//! Interactions: `/paver request:<text>` and button presses, from the HTTP
//! endpoint or the gateway. Discord wants an answer within 3 s, so Paver
//! answers at once with a deferred response (type 5 for a command, 6 for
//! a press) and does the work after: the command's original response is
//! then edited to show what was asked, and everything the engine says
//! goes through the outbox.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{ApiError, DiscordApi};
use super::render::{self, EPHEMERAL};
use super::verify::Verifier;
use super::{chat_user, InteractionHandle};
use crate::app::App;
use crate::catalog::SharedCatalog;
use crate::chat::{Conversation, Inbound, Platform};
use crate::requests::engine::Handled;
use crate::requests::Engine;
use crate::storage::Db;

/// The slash command Paver registers, and its one option.
pub const COMMAND: &str = "paver";
pub const OPTION: &str = "request";

/// Interaction response types.
pub mod response {
    pub const PONG: u8 = 1;
    pub const CHANNEL_MESSAGE: u8 = 4;
    pub const DEFERRED_CHANNEL_MESSAGE: u8 = 5;
    pub const DEFERRED_UPDATE_MESSAGE: u8 = 6;
}

/// An interaction, reduced to what Paver uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Ping,
    Command(Command),
    Press(Press),
    /// Autocomplete, modal submits, …: Paver registers none of them.
    Unsupported(u8),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: String,
    pub application_id: Option<String>,
    pub token: String,
    pub user_id: String,
    pub channel_id: String,
    pub name: String,
    /// The `request` option, trimmed; `None` when absent or blank.
    pub request: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    pub id: String,
    pub application_id: Option<String>,
    pub token: String,
    pub user_id: String,
    pub channel_id: String,
    pub custom_id: String,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    application_id: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    data: Option<WireData>,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    channel: Option<WireId>,
    #[serde(default)]
    member: Option<WireMember>,
    #[serde(default)]
    user: Option<WireId>,
}

#[derive(Deserialize)]
struct WireId {
    id: String,
}

#[derive(Deserialize)]
struct WireMember {
    user: WireId,
}

#[derive(Deserialize, Default)]
struct WireData {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    options: Vec<WireOption>,
    #[serde(default)]
    custom_id: Option<String>,
}

#[derive(Deserialize)]
struct WireOption {
    name: String,
    #[serde(default)]
    value: Value,
}

/// Reads an interaction body; the error says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Incoming, String> {
    let w: Wire = serde_json::from_slice(body).map_err(|e| format!("not an interaction: {e}"))?;
    let missing = |what: &str| format!("interaction type {} without {what}", w.kind);
    if w.kind == 1 {
        return Ok(Incoming::Ping);
    }
    if w.kind != 2 && w.kind != 3 {
        return Ok(Incoming::Unsupported(w.kind));
    }
    let id = w.id.clone().ok_or_else(|| missing("an id"))?;
    let token = w
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("a token"))?;
    let user_id = w
        .member
        .as_ref()
        .map(|m| m.user.id.clone())
        .or_else(|| w.user.as_ref().map(|u| u.id.clone()))
        .ok_or_else(|| missing("a user"))?;
    let channel_id = w
        .channel_id
        .clone()
        .or_else(|| w.channel.as_ref().map(|c| c.id.clone()))
        .ok_or_else(|| missing("a channel"))?;
    let data = w.data.unwrap_or_default();
    if w.kind == 2 {
        let name = data.name.ok_or_else(|| missing("a command name"))?;
        let request = data
            .options
            .iter()
            .find(|o| o.name == OPTION)
            .and_then(|o| o.value.as_str())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        Ok(Incoming::Command(Command {
            id,
            application_id: w.application_id,
            token,
            user_id,
            channel_id,
            name,
            request,
        }))
    } else {
        let custom_id = data.custom_id.ok_or_else(|| missing("a custom_id"))?;
        Ok(Incoming::Press(Press {
            id,
            application_id: w.application_id,
            token,
            user_id,
            channel_id,
            custom_id,
        }))
    }
}

fn ephemeral_answer(text: &str) -> Value {
    json!({
        "type": response::CHANNEL_MESSAGE,
        "data": {
            "content": text,
            "flags": EPHEMERAL,
            "allowed_mentions": render::no_mentions(),
        }
    })
}

/// What Paver does with interactions, however they arrive.
#[derive(Clone)]
pub struct Interactions {
    engine: Engine,
    catalog: SharedCatalog,
    db: Db,
    api: Arc<DiscordApi>,
}

impl Interactions {
    pub fn new(app: &App, api: Arc<DiscordApi>) -> Self {
        Interactions {
            engine: app.engine.clone(),
            catalog: app.catalog.clone(),
            db: app.db.clone(),
            api,
        }
    }

    pub fn api(&self) -> &Arc<DiscordApi> {
        &self.api
    }

    /// The immediate answer, and whether there is work to do after it.
    /// `None`: not an interaction Paver handles.
    pub fn answer(incoming: &Incoming) -> Option<(Value, bool)> {
        match incoming {
            Incoming::Ping => Some((json!({ "type": response::PONG }), false)),
            Incoming::Command(c) if c.name != COMMAND => Some((
                ephemeral_answer(&format!(
                    "I only know `/{COMMAND} {OPTION}:<what you need>`."
                )),
                false,
            )),
            Incoming::Command(Command { request: None, .. }) => Some((
                ephemeral_answer(&format!(
                    "Tell me what you need: `/{COMMAND} {OPTION}: create staging for order-service with postgres`, or `/{COMMAND} {OPTION}: help`."
                )),
                false,
            )),
            Incoming::Command(_) => Some((
                json!({ "type": response::DEFERRED_CHANNEL_MESSAGE }),
                true,
            )),
            Incoming::Press(_) => Some((
                json!({ "type": response::DEFERRED_UPDATE_MESSAGE }),
                true,
            )),
            Incoming::Unsupported(_) => None,
        }
    }

    /// The work after the answer.
    pub async fn work(&self, incoming: Incoming) {
        match incoming {
            Incoming::Command(c) => self.command(c).await,
            Incoming::Press(p) => self.press(p).await,
            Incoming::Ping | Incoming::Unsupported(_) => {}
        }
    }

    async fn command(&self, c: Command) {
        let Some(text) = c.request.clone() else {
            return;
        };
        let inbound = Inbound {
            event_id: Some(c.id.clone()),
            user: chat_user(&self.catalog, &c.user_id),
            conversation: Conversation {
                platform: Platform::Discord,
                channel: c.channel_id.clone(),
                thread: None,
            },
            text: text.clone(),
        };
        let quoted: String = render::truncate(&text, 1500)
            .lines()
            .map(|l| format!("> {}\n", render::escape_markdown(l)))
            .collect();
        let asked = format!("<@{}> asked:\n{quoted}", c.user_id);
        let content = match self.engine.handle_message(inbound).await {
            Ok(Handled::Duplicate) => return,
            Ok(Handled::Ignored) => {
                format!("{asked}Nothing for me to do there. Try `/{COMMAND} {OPTION}: help`.")
            }
            Ok(_) => asked,
            Err(e) => {
                tracing::error!(interaction = %c.id, error = %e, "handling a Discord command failed");
                format!("{asked}Something went wrong on my side; it is logged. Please try again.")
            }
        };
        let body = json!({
            "content": render::truncate(&content, render::CONTENT_MAX),
            "allowed_mentions": render::no_mentions(),
        });
        self.edit_original(c.application_id.as_deref(), &c.token, &body)
            .await;
    }

    /// Edits the deferred response. Our answer may still be on its way to
    /// Discord, so "unknown interaction" is retried briefly.
    async fn edit_original(&self, application: Option<&str>, token: &str, body: &Value) {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            let wait = match self.api.edit_original(application, token, body).await {
                Ok(()) => return,
                Err(ApiError::RateLimited(d)) if d <= Duration::from_secs(5) => d,
                Err(e @ (ApiError::Network(_) | ApiError::Discord { .. }))
                    if attempt < 5 && (e.status().is_none_or(|s| s == 404 || s >= 500)) =>
                {
                    delay
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not edit the interaction response");
                    return;
                }
            };
            tokio::time::sleep(wait).await;
            delay *= 2;
        }
    }

    async fn press(&self, p: Press) {
        // Several replicas may each see a gateway interaction: one handles it.
        match self
            .db
            .first_delivery(Platform::Discord.as_str(), &p.id)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "dedupe check failed; handling the press anyway"),
        }
        let user = chat_user(&self.catalog, &p.user_id);
        let application_id = p.application_id.clone().or(self.api.application_id());
        let conversation = Conversation {
            platform: Platform::Discord,
            channel: p.channel_id.clone(),
            thread: Some(InteractionHandle::new(application_id.clone(), p.token.clone()).encode()),
        };
        if let Err(e) = self
            .engine
            .handle_button(&user, &conversation, &p.custom_id)
            .await
        {
            tracing::error!(interaction = %p.id, error = %e, "handling a Discord button press failed");
            let mut body = json!({
                "content": "Something went wrong on my side handling that press; it is logged. Please try again.",
                "allowed_mentions": render::no_mentions(),
            });
            body["flags"] = json!(EPHEMERAL);
            if let Err(e) = self
                .api
                .followup(application_id.as_deref(), &p.token, &body)
                .await
            {
                tracing::warn!(error = %e, "could not tell the presser");
            }
        }
    }
}

struct Endpoint {
    verifier: Verifier,
    interactions: Interactions,
}

/// `POST /discord/interactions`.
pub fn router(verifier: Verifier, interactions: Interactions) -> Router {
    Router::new()
        .route("/discord/interactions", post(endpoint))
        .with_state(Arc::new(Endpoint {
            verifier,
            interactions,
        }))
}

async fn endpoint(State(ep): State<Arc<Endpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = ep.verifier.verify(
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
        &body,
        now,
    ) {
        tracing::warn!(error = %e, "Discord interaction refused");
        return (StatusCode::UNAUTHORIZED, "invalid request signature\n").into_response();
    }
    let incoming = match parse(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "malformed Discord interaction");
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed interaction: {e}\n"),
            )
                .into_response();
        }
    };
    let Some((answer, work)) = Interactions::answer(&incoming) else {
        tracing::warn!(?incoming, "unsupported Discord interaction type");
        return (StatusCode::BAD_REQUEST, "unsupported interaction type\n").into_response();
    };
    if work {
        let handler = ep.interactions.clone();
        tokio::spawn(async move { handler.work(incoming).await });
    }
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!("../shared/corpus/discord/{name}")).unwrap()
    }

    #[test]
    fn the_corpus_samples_parse() {
        match parse(&sample("interaction_slash_command.json")).unwrap() {
            Incoming::Command(c) => {
                assert_eq!(c.id, "786008729715212338");
                assert_eq!(c.user_id, "53908232506183680");
                assert_eq!(c.channel_id, "645027906669510667");
                assert_eq!(c.name, "cardsearch");
                assert_eq!(c.request, None);
                assert_eq!(c.application_id, None);
            }
            other => panic!("{other:?}"),
        }
        match parse(&sample("interaction_button_click.json")).unwrap() {
            Incoming::Press(p) => {
                assert_eq!(p.custom_id, "click_one");
                assert_eq!(p.user_id, "53908232506183680");
                assert_eq!(p.channel_id, "345626669114982999");
                assert_eq!(p.application_id.as_deref(), Some("290926444748734465"));
                assert_eq!(p.token, "unique_interaction_token");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers() {
        assert_eq!(
            Interactions::answer(&Incoming::Ping),
            Some((json!({"type": 1}), false))
        );
        let c = Command {
            id: "1".into(),
            application_id: None,
            token: "t".into(),
            user_id: "2".into(),
            channel_id: "3".into(),
            name: COMMAND.into(),
            request: Some("help".into()),
        };
        assert_eq!(
            Interactions::answer(&Incoming::Command(c.clone())),
            Some((json!({"type": 5}), true))
        );
        let (a, work) = Interactions::answer(&Incoming::Command(Command {
            request: None,
            ..c.clone()
        }))
        .unwrap();
        assert_eq!(
            (a["type"].as_u64(), a["data"]["flags"].as_u64(), work),
            (Some(4), Some(64), false)
        );
        assert_eq!(Interactions::answer(&Incoming::Unsupported(4)), None);
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert!(parse(b"not json").is_err());
        assert!(parse(b"{}").is_err());
        assert!(parse(br#"{"type": 2, "id": "1", "token": "t"}"#)
            .unwrap_err()
            .contains("user"));
        assert!(parse(br#"{"type": 3, "id": "1", "token": "t", "user": {"id": "5"}, "channel_id": "6", "data": {}}"#)
            .unwrap_err()
            .contains("custom_id"));
        assert_eq!(parse(br#"{"type": 1}"#), Ok(Incoming::Ping));
    }
}
