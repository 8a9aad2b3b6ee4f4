//! What Slack sends Paver, by HTTP (Events API, interactivity, slash
//! commands) or Socket Mode: verified (a layer on the routes, [`verify`]),
//! typed ([`super::wire`]), checked to come from a workspace Paver serves,
//! stored in the inbox, and only then acknowledged; the work runs from the
//! stored event ([`crate::engine::inbox`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::api::SlackApi;
use super::wire::{
    ChannelType, EventsPayload, Interaction, InteractionKind, Malformed, SlackEvent, SlashCommand,
    Source,
};
use super::{blocks, verify};
use crate::catalog::SharedCatalog;
use crate::chat::learned::{Learned, Origin};
use crate::chat::{
    messages, ButtonPayload, ChatUser, Conversation, Inbound, Platform, REASON_FIELD,
};
use crate::config::SlackConfig;
use crate::domain::{BadReason, Reason};
use crate::engine::inbox::{self, InboxHandler, InboxSettings, Refused};
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
    /// An Events API event (the `event` object, in Slack's field names).
    Event { event: SlackEvent },
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
    /// A reason form submitted: the press it stands for (a button
    /// payload), with its reason. Slack does not say where the form was
    /// opened: the request's own conversation is used.
    Reasoned {
        user: String,
        payload: String,
        reason: Reason,
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
            SlackWork::Event { event } => self.on_event(event).await,
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
            SlackWork::Reasoned {
                user,
                payload,
                reason,
            } => {
                let user = chat_user(self, &user).await;
                self.engine
                    .handle_reasoned(&user, None, &payload, reason)
                    .await
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
    Malformed(#[from] Malformed),
    /// Not malformed: Paver is saturated and wants it delivered again.
    #[error("busy: {0}")]
    Busy(#[from] crate::engine::Overloaded),
    /// Not malformed: it cannot be stored (or its workspace checked) now,
    /// and is not acknowledged, so Slack delivers it again.
    #[error("cannot take events right now")]
    Unavailable,
}

/// The answer to `url_verification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    pub challenge: String,
}

/// The immediate answer to a slash command, seen only by its author.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandReply {
    response_type: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<Vec<serde_json::Value>>,
}

impl CommandReply {
    fn ephemeral(text: String, blocks: Option<Vec<serde_json::Value>>) -> Self {
        CommandReply {
            response_type: "ephemeral",
            text,
            blocks,
        }
    }
}

/// The answer to a reason form's submission that Paver refuses: Slack
/// shows `errors` under the named fields and keeps the form open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewErrors {
    response_action: &'static str,
    errors: BTreeMap<&'static str, String>,
}

impl ViewErrors {
    fn reason(why: BadReason) -> Self {
        ViewErrors {
            response_action: "errors",
            errors: BTreeMap::from([(REASON_FIELD, why.to_string())]),
        }
    }
}

/// The Slack routes, every one behind the signature check.
pub fn routes(state: SlackState) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/interactions", post(interactions))
        .route("/slack/commands", post(commands))
        .route_layer(axum::middleware::from_fn_with_state(
            state.signing_secret.clone(),
            verify::signed,
        ))
        .with_state(state)
}

fn bad_request(e: BadPayload) -> Response {
    match e {
        BadPayload::Malformed(m) => {
            tracing::info!(error = %m, "Slack payload refused");
            (StatusCode::BAD_REQUEST, m.to_string()).into_response()
        }
        // Slack retries a delivery that did not get a 2xx.
        BadPayload::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        BadPayload::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
    }
}

async fn events(State(state): State<SlackState>, body: Bytes) -> Response {
    let payload = match EventsPayload::parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e.into()),
    };
    match handle_event_payload(&state, payload).await {
        Ok(Some(reply)) => Json(reply).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => bad_request(e),
    }
}

async fn interactions(State(state): State<SlackState>, body: Bytes) -> Response {
    let payload = match Interaction::parse_form(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e.into()),
    };
    match handle_interaction(&state, payload).await {
        Ok(None) => StatusCode::OK.into_response(),
        Ok(Some(errors)) => Json(errors).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn commands(State(state): State<SlackState>, body: Bytes) -> Response {
    let command = match SlashCommand::parse_form(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(e.into()),
    };
    match handle_command(&state, command).await {
        Ok(None) => StatusCode::OK.into_response(),
        Ok(Some(reply)) => Json(reply).into_response(),
        Err(e) => bad_request(e),
    }
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

/// Whether a payload from `source` is for Paver: `Ok(false)` for
/// another workspace (acknowledged and ignored, so Slack does not retry).
async fn admit(state: &SlackState, what: &str, source: &Source) -> Result<bool, BadPayload> {
    let (team, app) = (source.team.as_deref(), source.app.as_deref());
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

/// An Events API payload (HTTP body or Socket Mode `events_api` payload).
/// Returns the body to answer with, if the payload needs one.
pub async fn handle_event_payload(
    state: &SlackState,
    payload: EventsPayload,
) -> Result<Option<Challenge>, BadPayload> {
    match payload {
        EventsPayload::UrlVerification { challenge } => Ok(Some(Challenge { challenge })),
        EventsPayload::Callback(callback) => {
            if !admit(state, "event", &callback.origin).await? {
                return Ok(None);
            }
            if let Some(uid) = callback.bot_user {
                *state.bot_user_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(uid);
            }
            store(
                state,
                &callback.event_id,
                SlackWork::Event {
                    event: callback.event,
                },
            )
            .await?;
            Ok(None)
        }
        EventsPayload::Other(kind) => {
            tracing::debug!(kind, "Slack payload type ignored");
            Ok(None)
        }
    }
}

impl SlackState {
    async fn on_event(&self, event: SlackEvent) -> Result<(), EngineError> {
        let (mention, m) = match event {
            SlackEvent::AppMention(m) => (true, m),
            SlackEvent::Message(m) => (false, m),
            SlackEvent::Other => return Ok(()),
        };
        // Bots, Paver included, are never listened to; nor are edits and deletions.
        if m.bot_id.is_some() || m.subtype.is_some() {
            return Ok(());
        }
        let Some(user) = m.user else {
            return Ok(());
        };
        let bot = self
            .bot_user_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if bot.as_deref() == Some(user.as_str()) {
            return Ok(());
        }
        let (Some(channel), Some(text)) = (m.channel, m.text) else {
            return Ok(());
        };
        let thread = if mention {
            // A mention starts (or continues) a thread under the message.
            m.thread_ts.or(m.ts)
        } else if m.channel_type == Some(ChannelType::Im) {
            m.thread_ts
        } else {
            // In channels Paver hears mentions through app_mention; a
            // plain message counts only as a reply in a thread Paver owns (a
            // request's, or the platform team's under a question handed off).
            let mentions_bot = bot
                .as_ref()
                .is_some_and(|b| text.contains(&format!("<@{b}>")));
            let Some(t) = m.thread_ts else { return Ok(()) };
            if mentions_bot {
                return Ok(());
            }
            let ours = self
                .engine
                .db()
                .threads()
                .hears(Platform::Slack, &channel, Some(&t))
                .await?;
            if !ours {
                return Ok(());
            }
            Some(t)
        };
        let inbound = Inbound {
            // The inbox already dropped redeliveries; a retry after a crash
            // must not be taken for one.
            event_id: None,
            user: chat_user(self, &user).await,
            conversation: Conversation {
                platform: Platform::Slack,
                channel,
                thread,
            },
            text,
        };
        self.engine.handle_message(inbound).await.map(drop)
    }
}

/// An interactivity payload: button presses (block_actions), reason forms
/// submitted. Returns what to answer a refused submission with (the form
/// stays open and shows it).
pub async fn handle_interaction(
    state: &SlackState,
    interaction: Interaction,
) -> Result<Option<ViewErrors>, BadPayload> {
    if !admit(state, "interaction", &interaction.origin).await? {
        return Ok(None);
    }
    match interaction.kind {
        InteractionKind::BlockActions(p) => {
            // A press that needs a reason does not act: it opens the form
            // asking for one, whose submission is the press.
            let (ask, act): (Vec<_>, Vec<_>) = p
                .values
                .into_iter()
                .partition(|v| ButtonPayload::parse(v).is_ok_and(|b| b.op.needs_reason()));
            for v in &ask {
                open_reason_form(state, &p.user, p.trigger_id.as_deref(), v).await;
            }
            if act.is_empty() {
                return Ok(None);
            }
            store(
                state,
                &p.delivery,
                SlackWork::Buttons {
                    user: p.user,
                    channel: p.channel,
                    thread: p.thread,
                    values: act,
                },
            )
            .await
            .map(|()| None)
        }
        InteractionKind::ReasonGiven(given) => match given.reason {
            Err(why) => Ok(Some(ViewErrors::reason(why))),
            Ok(reason) => store(
                state,
                &given.delivery,
                SlackWork::Reasoned {
                    user: given.user,
                    payload: given.payload.encode(),
                    reason,
                },
            )
            .await
            .map(|()| None),
        },
        // Paver opens no modals of its own yet; a submission is acknowledged.
        InteractionKind::Other(kind) => {
            if !matches!(
                kind.as_str(),
                "view_submission" | "view_closed" | "shortcut" | "message_action"
            ) {
                tracing::debug!(kind, "Slack interaction ignored");
            }
            Ok(None)
        }
    }
}

/// Opens the reason form for a press (views.open). The trigger lasts about
/// 3 s, so this is done now, not from the inbox; should Slack refuse it,
/// the press did nothing and the user can press again.
async fn open_reason_form(state: &SlackState, user: &str, trigger: Option<&str>, value: &str) {
    let Ok(payload) = ButtonPayload::parse(value) else {
        return;
    };
    let Some(ask) = payload.op.reason_ask() else {
        return;
    };
    let Some(trigger) = trigger else {
        tracing::warn!(
            user,
            "a press that needs a reason came without a trigger_id; no form opened"
        );
        return;
    };
    if let Err(e) = state
        .api
        .open_view(trigger, blocks::reason_modal(&payload, ask))
        .await
    {
        tracing::warn!(user, error = %e, "could not open the reason form (views.open)");
    }
}

/// `/paver <request>` and `/paver help`. Returns the immediate answer
/// (`None`: none, for a command from another workspace).
pub async fn handle_command(
    state: &SlackState,
    command: SlashCommand,
) -> Result<Option<CommandReply>, BadPayload> {
    if !admit(state, "slash command", &command.origin).await? {
        return Ok(None);
    }
    let text = command.text;
    if text.is_empty() || text.eq_ignore_ascii_case("help") {
        let help = messages::help();
        return Ok(Some(CommandReply::ephemeral(
            blocks::fallback(&help),
            Some(blocks::render(&help)),
        )));
    }
    let reply = CommandReply::ephemeral(format!("On it: {}", blocks::escape(&text)), None);
    store(
        state,
        &command.delivery,
        SlackWork::Command {
            user: command.user,
            channel: command.channel,
            text,
        },
    )
    .await?;
    Ok(Some(reply))
}
