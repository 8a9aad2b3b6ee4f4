//! The gateway connection (serenity). What becomes a request:
//!
//! - a direct message to Paver;
//! - a server message that mentions Paver, or replies to one of its messages;
//! - any message in a request's thread (a thread Paver started under a card,
//!   or the thread a card was posted in).
//!
//! Button presses and `/paver` arrive here too when no interactions
//! endpoint URL is set in the developer portal; they are answered exactly
//! like the HTTP ones ([`super::interactions`]).
//!
//! Only servers Paver serves count ([`super::Guilds`]). A message for
//! Paver is stored in the inbox first and handled from there, within
//! `max_in_flight`; the gateway cannot deliver a message again, so one
//! that arrives while Paver is saturated is stored for later rather than
//! dropped.
//!
//! Intents: `GUILD_MESSAGES`, `DIRECT_MESSAGES` and the privileged
//! `MESSAGE_CONTENT` (without it Discord still sends the text of mentions
//! and DMs, but not of plain replies in a request's thread).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serenity::all::{
    ActionRowComponent, ClientBuilder, CommandDataOptionValue, Context, EventHandler,
    GatewayIntents, Interaction, Ready,
};

use serde::{Deserialize, Serialize};

use super::api::DiscordApi;
use super::interactions::{
    Admission, Command, DiscordWork, Incoming, Interactions, Press, Submit, OPTION,
};
use super::Guilds;
use crate::app::App;
use crate::chat::learned::Origin;
use crate::chat::Platform;
use crate::chat::REASON_FIELD;
use crate::config::Config;
use crate::domain::Reason;
use crate::engine::inbox::{self, Accepted, Refused};
use crate::engine::Handled;
use crate::storage::Db;
use crate::util::Backoff;

/// What Paver asks the gateway for.
pub const INTENTS: GatewayIntents = GatewayIntents::GUILD_MESSAGES
    .union(GatewayIntents::DIRECT_MESSAGES)
    .union(GatewayIntents::MESSAGE_CONTENT);

/// A gateway message, reduced to what decides whether Paver answers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayMessage {
    pub id: String,
    pub channel_id: String,
    /// `None` in direct messages.
    pub guild_id: Option<String>,
    pub author_id: String,
    pub author_is_bot: bool,
    pub from_webhook: bool,
    pub content: String,
    /// Ids of the users it mentions.
    pub mentions: Vec<String>,
    /// The author of the message it replies to.
    pub replies_to: Option<String>,
}

impl From<&serenity::model::channel::Message> for GatewayMessage {
    fn from(m: &serenity::model::channel::Message) -> Self {
        GatewayMessage {
            id: m.id.to_string(),
            channel_id: m.channel_id.to_string(),
            guild_id: m.guild_id.map(|g| g.to_string()),
            author_id: m.author.id.to_string(),
            author_is_bot: m.author.bot,
            from_webhook: m.webhook_id.is_some(),
            content: m.content.clone(),
            mentions: m.mentions.iter().map(|u| u.id.to_string()).collect(),
            replies_to: m
                .referenced_message
                .as_ref()
                .map(|r| r.author.id.to_string()),
        }
    }
}

/// How long "this channel is not a request's thread" is believed.
const NOT_A_THREAD_TTL: Duration = Duration::from_secs(60);

/// The gateway's event handler. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    db: Db,
    /// Up from the gateway's Ready until the client stops.
    ready: crate::util::readiness::Component,
    interactions: Interactions,
    bot_id: Arc<AtomicU64>,
    threads: Arc<Mutex<HashMap<String, (bool, Instant)>>>,
}

impl Gateway {
    pub fn new(app: &App, api: Arc<DiscordApi>, guilds: Arc<Guilds>) -> Self {
        Gateway {
            db: app.db.clone(),
            ready: app.readiness.component("discord_gateway"),
            interactions: Interactions::new(app, api, guilds),
            bot_id: Arc::new(AtomicU64::new(0)),
            threads: Arc::default(),
        }
    }

    /// Paver's own user id (from the gateway's Ready event).
    pub fn set_bot_id(&self, id: u64) {
        self.bot_id.store(id, Ordering::SeqCst);
    }

    fn bot_id(&self) -> Option<String> {
        match self.bot_id.load(Ordering::SeqCst) {
            0 => None,
            id => Some(id.to_string()),
        }
    }

    /// Whether `channel` is a thread Paver owns, a request's or a
    /// handoff's (storage decides; answers are cached here, a "no" only
    /// briefly).
    async fn is_request_thread(&self, channel: &str) -> bool {
        if channel.is_empty() || !channel.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if let Some((known, at)) = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
        {
            if *known || at.elapsed() < NOT_A_THREAD_TTL {
                return *known;
            }
        }
        let known = match self
            .db
            .threads()
            .hears(Platform::Discord, channel, None)
            .await
        {
            Ok(known) => known,
            Err(e) => {
                tracing::warn!(error = %e, "looking up request threads failed");
                return false;
            }
        };
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if threads.len() > 10_000 {
            threads.retain(|_, (known, _)| *known);
        }
        threads.insert(channel.to_owned(), (known, Instant::now()));
        known
    }

    pub fn interactions(&self) -> &Interactions {
        &self.interactions
    }

    /// Whether a message is for Paver: addressed to it, by a person, from a
    /// server Paver serves (or a direct message).
    async fn for_paver(&self, m: &GatewayMessage) -> bool {
        let Some(bot) = self.bot_id() else {
            return false;
        };
        if m.author_is_bot || m.from_webhook || m.author_id == bot || m.content.trim().is_empty() {
            return false;
        }
        let addressed = m.guild_id.is_none()
            || m.mentions.contains(&bot)
            || m.content.contains(&format!("<@{bot}>"))
            || m.content.contains(&format!("<@!{bot}>"))
            || m.replies_to.as_deref() == Some(bot.as_str())
            || self.is_request_thread(&m.channel_id).await;
        if !addressed {
            return false;
        }
        match self
            .interactions
            .guilds()
            .check(None, m.guild_id.as_deref())
            .await
        {
            Origin::Ours => true,
            Origin::Elsewhere(why) => {
                tracing::warn!(message = %m.id, guild = m.guild_id.as_deref().unwrap_or(""), "Discord message from outside the served servers ignored: {why}");
                false
            }
            Origin::Unknown => {
                tracing::warn!(message = %m.id, "Discord message ignored: Paver does not know its application yet");
                false
            }
        }
    }

    /// Handles a message at once if it is for Paver; `None` when it is not.
    /// The gateway itself goes through [`Gateway::receive`] instead.
    pub async fn on_message(&self, m: GatewayMessage) -> Option<Handled> {
        if !self.for_paver(&m).await {
            return None;
        }
        let id = m.id.clone();
        match self.interactions.message(m, true).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(message = %id, error = %e, "handling a Discord message failed");
                None
            }
        }
    }

    /// A message from the gateway: when it is for Paver, stored in the
    /// inbox and handled from there. `None`: not for Paver, or it could not
    /// be stored (logged).
    pub async fn receive(&self, m: GatewayMessage) -> Option<Accepted> {
        if !self.for_paver(&m).await {
            return None;
        }
        let work = DiscordWork::Message(m);
        match inbox::accept_or_defer(&self.interactions, &work.key(), &work).await {
            Ok(a) => Some(a),
            Err(Refused::Busy(_)) => None,
            Err(e) => {
                tracing::error!(error = %e, "a Discord message could not be stored; it is lost");
                None
            }
        }
    }

    /// Stores an interaction, acknowledges it through the API, and its work
    /// runs from the inbox. One that cannot be stored is not acknowledged.
    pub async fn on_interaction(&self, incoming: Incoming) {
        let (id, token) = match &incoming {
            Incoming::Command(c) => (c.id.clone(), c.token.clone()),
            Incoming::Press(p) => (p.id.clone(), p.token.clone()),
            Incoming::Submit(s) => (s.id.clone(), s.token.clone()),
            _ => return,
        };
        let Some((answer, work)) = Interactions::answer(&incoming) else {
            return;
        };
        let reply = match self.interactions.admit(&incoming, work).await {
            // Another replica stored it, and acknowledges it.
            Admission::Accepted(Accepted::Duplicate) => return,
            Admission::Accepted(_) => answer,
            Admission::Foreign(note) => note,
            Admission::Refused => return,
        };
        if let Err(e) = self
            .interactions
            .api()
            .interaction_callback(&id, &token, &reply)
            .await
        {
            tracing::info!(interaction = %id, error = %e, "could not acknowledge the interaction");
        }
    }
}

fn incoming(interaction: Interaction) -> Option<Incoming> {
    match interaction {
        Interaction::Command(c) => Some(Incoming::Command(Command {
            id: c.id.to_string(),
            application_id: Some(c.application_id.to_string()),
            guild_id: c.guild_id.map(|g| g.to_string()),
            token: c.token,
            user_id: c.user.id.to_string(),
            channel_id: c.channel_id.to_string(),
            request: c.data.options.iter().find_map(|o| match &o.value {
                CommandDataOptionValue::String(s) if o.name == OPTION && !s.trim().is_empty() => {
                    Some(s.trim().to_owned())
                }
                _ => None,
            }),
            name: c.data.name,
        })),
        Interaction::Component(c) => Some(Incoming::Press(Press {
            id: c.id.to_string(),
            application_id: Some(c.application_id.to_string()),
            guild_id: c.guild_id.map(|g| g.to_string()),
            token: c.token,
            user_id: c.user.id.to_string(),
            channel_id: c.channel_id.to_string(),
            custom_id: c.data.custom_id,
        })),
        Interaction::Modal(m) => {
            let typed = m
                .data
                .components
                .iter()
                .flat_map(|row| &row.components)
                .find_map(|c| match c {
                    ActionRowComponent::InputText(t) if t.custom_id == REASON_FIELD => {
                        t.value.clone()
                    }
                    _ => None,
                })
                .unwrap_or_default();
            Some(Incoming::Submit(Submit {
                id: m.id.to_string(),
                application_id: Some(m.application_id.to_string()),
                guild_id: m.guild_id.map(|g| g.to_string()),
                token: m.token,
                user_id: m.user.id.to_string(),
                channel_id: m.channel_id.to_string(),
                custom_id: m.data.custom_id,
                reason: Reason::parse(&typed),
            }))
        }
        _ => None,
    }
}

#[serenity::async_trait]
impl EventHandler for Gateway {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.set_bot_id(ready.user.id.get());
        self.ready.up();
        tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), "Discord gateway connected");
    }

    /// A shard dropping (and resuming) between two Ready events.
    async fn shard_stage_update(
        &self,
        _ctx: Context,
        event: serenity::gateway::ShardStageUpdateEvent,
    ) {
        if event.new == serenity::gateway::ConnectionStage::Connected {
            self.ready.up();
        } else {
            self.ready.down();
        }
    }

    async fn message(&self, _ctx: Context, message: serenity::model::channel::Message) {
        self.receive(GatewayMessage::from(&message)).await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Some(i) = incoming(interaction) {
            self.on_interaction(i).await;
        }
    }
}

/// Between gateway sessions: from 5 s, doubling, up to 5 minutes (a
/// refused login must not hammer Discord).
const RECONNECT: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));

/// Starts the gateway connection when `discord.token` is set (and
/// `discord.gateway` is not false). It reconnects on its own; a refused
/// login (bad token, intents not enabled) is logged and retried with backoff.
pub fn spawn(
    app: &App,
    config: &Config,
) -> Result<Option<tokio::task::JoinHandle<()>>, super::SetupError> {
    if !config.discord.gateway {
        return Ok(None);
    }
    let Some(api) = super::api(config)? else {
        return Ok(None);
    };
    let guilds = Guilds::new(&config.discord);
    guilds.start(api.clone());
    let gateway = Gateway::new(app, api.clone(), guilds);
    gateway.interactions.start();
    Ok(Some(tokio::spawn(async move {
        let mut delays = RECONNECT.delays();
        loop {
            let client = ClientBuilder::new_with_http(api.serenity_http(), INTENTS)
                .event_handler(gateway.clone())
                .await;
            let outcome = match client {
                Ok(mut client) => client.start().await,
                Err(e) => Err(e),
            };
            gateway.ready.down();
            let backoff = delays.next().unwrap_or(RECONNECT.max);
            match outcome {
                Ok(()) => tracing::warn!("Discord gateway closed; reconnecting"),
                Err(e) => tracing::error!(
                    error = %e,
                    retry_in = ?backoff,
                    "Discord gateway failed (check discord.token, and that the Message Content intent is enabled in the developer portal)"
                ),
            }
            tokio::time::sleep(backoff).await;
        }
    })))
}
