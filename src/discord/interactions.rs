//! Interactions: `/paver request:<text>` and button presses, from the HTTP
//! endpoint or the gateway. Discord wants an answer within 3 s, so Paver
//! stores the interaction in the inbox, answers with a deferred response
//! (type 5 for a command, 6 for a press) and does the work after, from the
//! stored row: the command's original response is then edited to show what
//! was asked, and everything the engine says goes through the outbox. An
//! interaction that cannot be stored (database down, Paver saturated) gets
//! a 503 and is not acknowledged; one from a server Paver does not serve is
//! answered with a short note and not handled.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{ApiError, DiscordApi};
use super::gateway::GatewayMessage;
use super::render::{self, EPHEMERAL};
use super::verify::Verifier;
use super::{chat_user, Guilds, InteractionHandle};
use crate::app::App;
use crate::catalog::SharedCatalog;
use crate::chat::learned::Origin;
use crate::chat::{ButtonPayload, Conversation, Inbound, Platform, ReasonAsk, REASON_FIELD};
use crate::domain::{BadReason, Reason};
use crate::engine::inbox::{self, Accepted, InboxHandler, InboxSettings, Refused};
use crate::engine::Engine;
use crate::engine::{EngineError, Handled};

/// The slash command Paver registers, and its one option.
pub const COMMAND: &str = "paver";
pub const OPTION: &str = "request";

/// Interaction response types.
pub mod response {
    pub const PONG: u8 = 1;
    pub const CHANNEL_MESSAGE: u8 = 4;
    pub const DEFERRED_CHANNEL_MESSAGE: u8 = 5;
    pub const DEFERRED_UPDATE_MESSAGE: u8 = 6;
    pub const MODAL: u8 = 9;
}

/// Interaction types Paver reads.
mod kind {
    pub const PING: u8 = 1;
    pub const COMMAND: u8 = 2;
    pub const COMPONENT: u8 = 3;
    pub const MODAL_SUBMIT: u8 = 5;
}

/// An interaction, reduced to what Paver uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Ping,
    Command(Command),
    Press(Press),
    /// A reason form submitted (the modal a press of a button that needs a
    /// reason opened).
    Submit(Submit),
    /// Autocomplete, …: Paver registers none of them.
    Unsupported(u8),
}

/// A submitted reason form: its `custom_id` is the pressed button's
/// payload, and nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct Submit {
    pub id: String,
    pub application_id: Option<String>,
    pub guild_id: Option<String>,
    pub token: String,
    pub user_id: String,
    pub channel_id: String,
    pub custom_id: String,
    /// What was typed, parsed; a refusal is told to its writer.
    pub reason: Result<Reason, BadReason>,
}

/// A submitted reason form whose reason was accepted, as stored in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasoned {
    pub id: String,
    pub application_id: Option<String>,
    #[serde(default)]
    pub guild_id: Option<String>,
    pub token: String,
    pub user_id: String,
    pub channel_id: String,
    pub custom_id: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    pub application_id: Option<String>,
    /// `None` in direct messages.
    #[serde(default)]
    pub guild_id: Option<String>,
    pub token: String,
    pub user_id: String,
    pub channel_id: String,
    pub name: String,
    /// The `request` option, trimmed; `None` when absent or blank.
    pub request: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Press {
    pub id: String,
    pub application_id: Option<String>,
    /// `None` in direct messages.
    #[serde(default)]
    pub guild_id: Option<String>,
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
    guild_id: Option<String>,
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
    /// A modal's rows of text inputs.
    #[serde(default)]
    components: Vec<WireRow>,
}

#[derive(Deserialize)]
struct WireRow {
    #[serde(default)]
    components: Vec<WireInput>,
}

#[derive(Deserialize)]
struct WireInput {
    #[serde(default)]
    custom_id: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// What was typed in a reason form's field (empty when it is missing).
fn typed_reason(rows: Vec<WireRow>) -> String {
    rows.into_iter()
        .flat_map(|r| r.components)
        .find(|i| i.custom_id.as_deref() == Some(REASON_FIELD))
        .and_then(|i| i.value)
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct WireOption {
    name: String,
    #[serde(default)]
    value: OptionValue,
}

/// An option's value: Paver's one option is text; numbers, booleans and
/// ids of other commands' options are read and set aside.
#[derive(Deserialize)]
#[serde(untagged)]
enum OptionValue {
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl Default for OptionValue {
    fn default() -> Self {
        OptionValue::Other(serde::de::IgnoredAny)
    }
}

/// What is wrong with an interaction body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not an interaction: {0}")]
    NotAnInteraction(String),
    #[error("interaction type {kind} without {what}")]
    Missing { kind: u8, what: &'static str },
}

/// Reads an interaction body; the error says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Incoming, Malformed> {
    let w: Wire =
        serde_json::from_slice(body).map_err(|e| Malformed::NotAnInteraction(e.to_string()))?;
    let kind = w.kind;
    let missing = |what: &'static str| Malformed::Missing { kind, what };
    if w.kind == kind::PING {
        return Ok(Incoming::Ping);
    }
    if ![kind::COMMAND, kind::COMPONENT, kind::MODAL_SUBMIT].contains(&w.kind) {
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
    if w.kind == kind::MODAL_SUBMIT {
        let custom_id = data.custom_id.ok_or_else(|| missing("a custom_id"))?;
        return Ok(Incoming::Submit(Submit {
            id,
            application_id: w.application_id,
            guild_id: w.guild_id,
            token,
            user_id,
            channel_id,
            custom_id,
            reason: Reason::parse(&typed_reason(data.components)),
        }));
    }
    if w.kind == kind::COMMAND {
        let name = data.name.ok_or_else(|| missing("a command name"))?;
        let request = data
            .options
            .into_iter()
            .find(|o| o.name == OPTION)
            .and_then(|o| match o.value {
                OptionValue::Text(s) => Some(s.trim().to_owned()),
                OptionValue::Other(_) => None,
            })
            .filter(|s| !s.is_empty());
        Ok(Incoming::Command(Command {
            id,
            application_id: w.application_id,
            guild_id: w.guild_id,
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
            guild_id: w.guild_id,
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

/// The modal a press of a button that needs a reason opens: one required
/// paragraph field. Its `custom_id` is the pressed button's payload and
/// nothing else, so the submission is checked as the press would have
/// been, against the request as stored then.
pub fn reason_modal(payload: &ButtonPayload, ask: ReasonAsk) -> Value {
    json!({
        "type": response::MODAL,
        "data": {
            "custom_id": payload.encode(),
            "title": render::truncate(ask.title, 45),
            "components": [{
                "type": 1,
                "components": [{
                    "type": 4,
                    "custom_id": REASON_FIELD,
                    "label": render::truncate(ask.label, 45),
                    // A paragraph.
                    "style": 2,
                    "min_length": 1,
                    "max_length": Reason::MAX_CHARS,
                    "required": true,
                    "placeholder": render::truncate(ask.placeholder, 100),
                }],
            }],
        }
    })
}

/// An inbound Discord event as stored in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiscordWork {
    Command(Command),
    Press(Press),
    /// A reason form submitted, with an accepted reason.
    Reasoned(Reasoned),
    /// A gateway message already found to be for Paver.
    Message(GatewayMessage),
}

impl DiscordWork {
    /// The inbox key: interaction and message ids are snowflakes, unique
    /// across Discord; the prefix keeps the kinds apart all the same.
    pub fn key(&self) -> String {
        match self {
            DiscordWork::Command(c) => format!("interaction-{}", c.id),
            DiscordWork::Press(p) => format!("interaction-{}", p.id),
            DiscordWork::Reasoned(r) => format!("interaction-{}", r.id),
            DiscordWork::Message(m) => format!("message-{}", m.id),
        }
    }
}

/// What became of an interaction on its way in.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Stored (or a redelivery): acknowledge with the answer.
    Accepted(Accepted),
    /// From a server or application Paver does not serve: acknowledged
    /// with this note, not handled.
    Foreign(Value),
    /// Not stored (database down, Paver saturated, or Paver does not know
    /// its application yet): not acknowledged.
    Refused,
}

/// What Paver does with interactions (and stored gateway messages),
/// however they arrive.
#[derive(Clone)]
pub struct Interactions {
    engine: Engine,
    catalog: SharedCatalog,
    api: Arc<DiscordApi>,
    guilds: Arc<Guilds>,
    pub inbox: InboxSettings,
}

#[async_trait]
impl InboxHandler for Interactions {
    type Work = DiscordWork;

    fn platform(&self) -> Platform {
        Platform::Discord
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn inbox_settings(&self) -> &InboxSettings {
        &self.inbox
    }

    async fn handle(&self, work: DiscordWork) -> Result<(), EngineError> {
        match work {
            DiscordWork::Command(c) => {
                self.command(c).await;
                Ok(())
            }
            DiscordWork::Press(p) => {
                self.press(p).await;
                Ok(())
            }
            DiscordWork::Reasoned(r) => {
                self.reasoned(r).await;
                Ok(())
            }
            // The inbox already dropped redeliveries.
            DiscordWork::Message(m) => self.message(m, false).await.map(drop),
        }
    }
}

impl Interactions {
    pub fn new(app: &App, api: Arc<DiscordApi>, guilds: Arc<Guilds>) -> Self {
        Interactions {
            engine: app.engine.clone(),
            catalog: app.catalog.clone(),
            api,
            guilds,
            inbox: InboxSettings::default(),
        }
    }

    /// Handles stored events left pending (by a crash, or while Paver was
    /// saturated), at start and then periodically.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        inbox::spawn_recovery(self.clone())
    }

    pub fn api(&self) -> &Arc<DiscordApi> {
        &self.api
    }

    pub fn guilds(&self) -> &Arc<Guilds> {
        &self.guilds
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
            // A press that needs a reason does not act: it opens the form
            // asking for one, whose submission is the press.
            Incoming::Press(p) => match ButtonPayload::parse(&p.custom_id)
                .ok()
                .and_then(|b| Some((b.op.reason_ask()?, b)))
            {
                Some((ask, payload)) => Some((reason_modal(&payload, ask), false)),
                None => Some((
                    json!({ "type": response::DEFERRED_UPDATE_MESSAGE }),
                    true,
                )),
            },
            Incoming::Submit(Submit { reason: Err(why), .. }) => {
                Some((ephemeral_answer(&why.to_string()), false))
            }
            // The form was opened from a card: the card is updated later.
            Incoming::Submit(_) => Some((
                json!({ "type": response::DEFERRED_UPDATE_MESSAGE }),
                true,
            )),
            Incoming::Unsupported(_) => None,
        }
    }

    /// Checks where an interaction comes from and, when it has work to do,
    /// stores it in the inbox (its handling then starts, within
    /// `max_in_flight`). Pings pass.
    pub async fn admit(&self, incoming: &Incoming, work: bool) -> Admission {
        let (id, application, guild, stored) = match incoming {
            Incoming::Command(c) => (
                &c.id,
                c.application_id.as_deref(),
                c.guild_id.as_deref(),
                Some(DiscordWork::Command(c.clone())),
            ),
            Incoming::Press(p) => (
                &p.id,
                p.application_id.as_deref(),
                p.guild_id.as_deref(),
                Some(DiscordWork::Press(p.clone())),
            ),
            Incoming::Submit(s) => (
                &s.id,
                s.application_id.as_deref(),
                s.guild_id.as_deref(),
                s.reason.clone().ok().map(|reason| {
                    DiscordWork::Reasoned(Reasoned {
                        id: s.id.clone(),
                        application_id: s.application_id.clone(),
                        guild_id: s.guild_id.clone(),
                        token: s.token.clone(),
                        user_id: s.user_id.clone(),
                        channel_id: s.channel_id.clone(),
                        custom_id: s.custom_id.clone(),
                        reason,
                    })
                }),
            ),
            Incoming::Ping | Incoming::Unsupported(_) => {
                return Admission::Accepted(Accepted::Stored)
            }
        };
        match self.guilds.check(application, guild).await {
            Origin::Ours => {}
            Origin::Elsewhere(why) => {
                tracing::warn!(interaction = %id, guild = guild.unwrap_or(""), "Discord interaction from outside the served servers ignored: {why}");
                return Admission::Foreign(ephemeral_answer(
                    "This Paver does not serve this server.",
                ));
            }
            Origin::Unknown => {
                tracing::warn!(interaction = %id, "Discord interaction refused: Paver does not know its application yet");
                return Admission::Refused;
            }
        }
        let (true, Some(stored)) = (work, stored) else {
            return Admission::Accepted(Accepted::Stored);
        };
        match inbox::accept(self, &stored.key(), &stored).await {
            Ok(a) => Admission::Accepted(a),
            Err(Refused::Busy(_)) => {
                tracing::warn!(interaction = %id, "Discord interaction refused: too much in flight");
                Admission::Refused
            }
            // Logged where it failed.
            Err(Refused::Unavailable(_)) => Admission::Refused,
        }
    }

    /// A gateway message for Paver, as the inbox's worker (and tests)
    /// handle it. `dedupe`: let the engine drop a message it saw before
    /// (the inbox does that for stored messages).
    pub async fn message(&self, m: GatewayMessage, dedupe: bool) -> Result<Handled, EngineError> {
        let inbound = Inbound {
            event_id: dedupe.then(|| m.id.clone()),
            user: chat_user(&self.catalog, &m.author_id),
            conversation: Conversation {
                platform: Platform::Discord,
                channel: m.channel_id.clone(),
                thread: None,
            },
            text: m.content,
        };
        self.engine.handle_message(inbound).await
    }

    async fn command(&self, c: Command) {
        let Some(text) = c.request.clone() else {
            return;
        };
        let inbound = Inbound {
            // The inbox already dropped redeliveries.
            event_id: None,
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

    /// A reason form submitted: the press it stands for, with its reason,
    /// in the channel of the card it was opened from.
    async fn reasoned(&self, r: Reasoned) {
        let user = chat_user(&self.catalog, &r.user_id);
        let application_id = r.application_id.clone().or(self.api.application_id());
        let conversation = Conversation {
            platform: Platform::Discord,
            channel: r.channel_id.clone(),
            thread: Some(InteractionHandle::new(application_id.clone(), r.token.clone()).encode()),
        };
        if let Err(e) = self
            .engine
            .handle_reasoned(&user, Some(&conversation), &r.custom_id, r.reason)
            .await
        {
            tracing::error!(interaction = %r.id, error = %e, "handling a Discord reason form failed");
            self.went_wrong(application_id.as_deref(), &r.token).await;
        }
    }

    /// Tells the presser privately that their press failed on Paver's side.
    async fn went_wrong(&self, application_id: Option<&str>, token: &str) {
        let body = json!({
            "content": "Something went wrong on my side handling that press; it is logged. Please try again.",
            "allowed_mentions": render::no_mentions(),
            "flags": EPHEMERAL,
        });
        if let Err(e) = self.api.followup(application_id, token, &body).await {
            tracing::warn!(error = %e, "could not tell the presser");
        }
    }

    async fn press(&self, p: Press) {
        // Several replicas may each see a gateway interaction: the inbox
        // lets one of them store (and handle) it.
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
            self.went_wrong(application_id.as_deref(), &p.token).await;
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

/// An interaction whose Ed25519 signature checked out, parsed. Refusals:
/// a bad, missing or stale signature is a 401 (and a warning in the log);
/// a malformed body a 400 naming the problem.
struct Signed(Incoming);

impl FromRequest<Arc<Endpoint>> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, ep: &Arc<Endpoint>) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, ep)
            .await
            .map_err(IntoResponse::into_response)?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = ep.verifier.verify(
            header("x-signature-ed25519"),
            header("x-signature-timestamp"),
            &body,
            now,
        ) {
            tracing::warn!(error = %e, "Discord interaction refused");
            return Err((StatusCode::UNAUTHORIZED, "invalid request signature\n").into_response());
        }
        match parse(&body) {
            Ok(i) => Ok(Signed(i)),
            Err(e) => {
                tracing::warn!(error = %e, "malformed Discord interaction");
                Err((
                    StatusCode::BAD_REQUEST,
                    format!("malformed interaction: {e}\n"),
                )
                    .into_response())
            }
        }
    }
}

async fn endpoint(State(ep): State<Arc<Endpoint>>, Signed(incoming): Signed) -> Response {
    let Some((answer, work)) = Interactions::answer(&incoming) else {
        tracing::warn!(?incoming, "unsupported Discord interaction type");
        return (StatusCode::BAD_REQUEST, "unsupported interaction type\n").into_response();
    };
    match ep.interactions.admit(&incoming, work).await {
        Admission::Accepted(_) => Json(answer).into_response(),
        Admission::Foreign(note) => Json(note).into_response(),
        Admission::Refused => {
            (StatusCode::SERVICE_UNAVAILABLE, "try again shortly\n").into_response()
        }
    }
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
            guild_id: None,
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
            .to_string()
            .contains("user"));
        assert!(parse(br#"{"type": 3, "id": "1", "token": "t", "user": {"id": "5"}, "channel_id": "6", "data": {}}"#)
            .unwrap_err()
            .to_string()
            .contains("custom_id"));
        assert_eq!(parse(br#"{"type": 1}"#), Ok(Incoming::Ping));
    }
}
