//! The Discord adapter.
//!
//! - [`gateway`]: the bot's gateway connection (serenity): messages that
//!   mention Paver, direct messages, replies to Paver and messages in a
//!   request's thread become requests; button presses and `/paver` arrive
//!   there too unless an interactions endpoint URL is set.
//! - [`interactions`]: `POST /discord/interactions` for HTTP interactions,
//!   Ed25519-verified ([`verify`]), stored in the inbox, acknowledged
//!   (deferred) and handled after, from the stored row.
//! - [`Guilds`]: which servers Paver serves (`discord.guild_ids`).
//! - [`sink`]: the outbox's way out, over the REST client in [`api`];
//!   [`render`] turns the chat model into embeds and buttons.
//! - [`commands`]: registering the `/paver` slash command.
//!
//! Conversations are `{ platform: Discord, channel: <channel id>, thread }`;
//! a button press's conversation carries an [`InteractionHandle`] as its
//! thread, so what the engine whispers to the presser can be sent as an
//! ephemeral follow-up by whichever replica delivers it.

pub mod api;
pub mod commands;
pub mod gateway;
pub mod interactions;
pub mod render;
pub mod sink;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;

use crate::app::App;
use crate::catalog::SharedCatalog;
use crate::chat::learned::{Learned, Origin};
use crate::chat::{ChatSink, ChatUser, Platform};
use crate::config::{Config, DiscordConfig};
use crate::storage::now_ms;

pub use api::{DiscordApi, SetupError};
pub use sink::DiscordSink;

/// The REST client for the configured bot, when a token is configured.
pub fn api(config: &Config) -> Result<Option<Arc<DiscordApi>>, SetupError> {
    let Some(token) = &config.discord.token else {
        return Ok(None);
    };
    DiscordApi::new(
        token.expose_secret(),
        &config.discord.api_url,
        config.discord.application_id.as_deref(),
    )
    .map(|a| Some(Arc::new(a)))
}

/// The outbox sink, when `discord.token` is set.
pub fn sink(config: &Config) -> Result<Option<Arc<dyn ChatSink>>, SetupError> {
    Ok(api(config)?.map(|api| Arc::new(DiscordSink::new(api)) as Arc<dyn ChatSink>))
}

/// `POST /discord/interactions`, when `discord.public_key` is set.
pub fn routes(app: &App, config: &Config) -> Result<Option<Router>, SetupError> {
    let Some(key) = &config.discord.public_key else {
        return Ok(None);
    };
    let verifier = verify::Verifier::new(key)?;
    let Some(api) = api(config)? else {
        return Err(SetupError::PublicKeyWithoutToken);
    };
    let guilds = Guilds::new(&config.discord);
    guilds.start(api.clone());
    let handler = interactions::Interactions::new(app, api, guilds);
    handler.start();
    Ok(Some(interactions::router(verifier, handler)))
}

/// How long an event waits for the application lookup at start before it
/// is refused.
const LEARN_WAIT: Duration = Duration::from_secs(5);

/// The server boundary: `discord.guild_ids` (empty: the application's own
/// server), and Paver's application id (`discord.application_id`, else
/// asked of Discord at start). Direct messages belong to no server and
/// pass; whether their author may see anything is the catalog's business.
pub struct Guilds {
    configured: Vec<String>,
    application: Arc<Learned<api::Application>>,
}

impl Guilds {
    pub fn new(config: &DiscordConfig) -> Arc<Self> {
        let application = match (&config.application_id, config.guild_ids.is_empty()) {
            // Everything needed is configured: no need to ask.
            (Some(id), false) => Learned::known(api::Application {
                id: id.clone(),
                guild_id: None,
            }),
            _ => Learned::asking(),
        };
        Arc::new(Guilds {
            configured: config.guild_ids.clone(),
            application,
        })
    }

    /// Asks Discord for the application (retried until it answers) unless
    /// the configuration already said everything.
    pub fn start(self: &Arc<Self>, api: Arc<DiscordApi>) -> Option<tokio::task::JoinHandle<()>> {
        if self.application.is_known() {
            return None;
        }
        let configured = api.application_id();
        Some(
            self.application
                .learn("the Discord application", move || {
                    let api = api.clone();
                    let configured = configured.clone();
                    async move {
                        let app = api.application().await?;
                        if configured.as_ref().is_some_and(|c| *c != app.id) {
                            tracing::error!(configured = ?configured, actual = %app.id, "discord.application_id is not the bot token's application; using the token's");
                        }
                        tracing::info!(application = %app.id, guild = ?app.guild_id, "Discord application known");
                        Ok::<_, api::ApiError>(app)
                    }
                }),
        )
    }

    /// Where an interaction or message from `guild` (for `application`)
    /// came from.
    pub async fn check(&self, application: Option<&str>, guild: Option<&str>) -> Origin {
        let Some(app) = self.application.get(LEARN_WAIT).await else {
            return Origin::Unknown;
        };
        if let Some(a) = application.filter(|a| *a != app.id) {
            return Origin::Elsewhere(format!("application {a} is not Paver's ({})", app.id));
        }
        let Some(guild) = guild else {
            return Origin::Ours;
        };
        let allowed = if self.configured.is_empty() {
            app.guild_id.iter().any(|g| g == guild)
        } else {
            self.configured.iter().any(|g| g == guild)
        };
        if allowed {
            Origin::Ours
        } else if self.configured.is_empty() {
            Origin::Elsewhere(format!(
                "server {guild} is not the application's own server; list the servers Paver serves in discord.guild_ids"
            ))
        } else {
            Origin::Elsewhere(format!("server {guild} is not in discord.guild_ids"))
        }
    }
}

/// A Discord user as a chat user: linked to the catalog User whose
/// `discord.com/user-id` annotation names them, if any. Unknown users get
/// help (and, with `policy.unknown_users = "read"`, read-only answers); the
/// engine keeps them from requesting changes.
pub fn chat_user(catalog: &SharedCatalog, discord_id: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Discord,
        id: discord_id.to_owned(),
        catalog: catalog
            .current()
            .user_by_discord_id(discord_id)
            .map(|u| u.name.clone()),
    }
}

/// How long an interaction token may be used for follow-ups (Discord
/// allows 15 minutes; a margin for clocks and queues).
pub const INTERACTION_TOKEN_TTL_MS: i64 = 14 * 60 * 1000;

/// Where the reply to a button press goes: the interaction's follow-up
/// webhook. Carried as the press's conversation thread, so it survives
/// the trip through the outbox (to any replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionHandle {
    pub application_id: Option<String>,
    pub issued_ms: i64,
    pub token: String,
}

const HANDLE_PREFIX: &str = "interaction:";

impl InteractionHandle {
    pub fn new(application_id: Option<String>, token: String) -> Self {
        InteractionHandle {
            application_id,
            issued_ms: now_ms(),
            token,
        }
    }

    pub fn encode(&self) -> String {
        format!(
            "{HANDLE_PREFIX}{}:{}:{}",
            self.application_id.as_deref().unwrap_or_default(),
            self.issued_ms,
            self.token
        )
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.strip_prefix(HANDLE_PREFIX)?.splitn(3, ':');
        let application_id = it.next()?;
        let issued_ms = it.next()?.parse().ok()?;
        let token = it.next().filter(|t| !t.is_empty())?;
        Some(InteractionHandle {
            application_id: (!application_id.is_empty()).then(|| application_id.to_owned()),
            issued_ms,
            token: token.to_owned(),
        })
    }

    /// Whether the token can still be used.
    pub fn fresh(&self) -> bool {
        now_ms() - self.issued_ms < INTERACTION_TOKEN_TTL_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_handles_round_trip() {
        let h = InteractionHandle::new(Some("42".into()), "tok:en".into());
        assert_eq!(InteractionHandle::parse(&h.encode()), Some(h.clone()));
        assert!(h.fresh());
        let old = InteractionHandle {
            issued_ms: now_ms() - INTERACTION_TOKEN_TTL_MS - 1,
            ..h
        };
        assert!(!old.fresh());
        let none = InteractionHandle::new(None, "t".into());
        assert_eq!(InteractionHandle::parse(&none.encode()), Some(none));
        for bad in [
            "123",
            "interaction:",
            "interaction:1:x:t",
            "interaction:1:5:",
        ] {
            assert_eq!(InteractionHandle::parse(bad), None, "{bad}");
        }
    }
}
