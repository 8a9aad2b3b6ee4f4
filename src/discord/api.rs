//! The Discord REST calls Paver makes, through serenity's HTTP layer.
//!
//! Requests are built by serenity (`Route` + `Request::build`: the API v10
//! paths, the `Bot` token, its user agent, and the base URL from
//! `discord.api_url` through the same rewrite `HttpBuilder::proxy` uses) and
//! executed here. Why not `Http`'s own methods: serenity's built-in rate
//! limiter sends every request to discord.com whatever the proxy says, and
//! with it disabled `Http` drops the response headers, including the
//! rate-limit ones. So this module keeps Discord's rate-limit state itself
//! (per serenity rate-limit bucket, plus the global limit) and reports a
//! limit as [`ApiError::RateLimited`] instead of sleeping, so the outbox
//! defers the message and keeps delivering others.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use serenity::builder::CreateAttachment;
use serenity::http::{
    HttpBuilder, LightMethod, Multipart, MultipartUpload, RatelimitingBucket, Request, Route,
};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, InteractionId, MessageId};
use url::Url;

use crate::chat::SendError;
use crate::domain::Platform;
use crate::util::metrics;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("rate limited by Discord; retry after {0:?}")]
    RateLimited(Duration),
    #[error("Discord answered {status} (code {code}): {message}")]
    Discord {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("reaching Discord: {0}")]
    Network(String),
    #[error("{0}")]
    Invalid(String),
}

impl ApiError {
    /// Discord's JSON error code, when Discord answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Discord { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Discord { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How the outbox should treat it: rate limits wait, outages retry,
    /// refusals (bad request, no access) are final.
    pub fn to_send_error(&self) -> SendError {
        match self {
            ApiError::RateLimited(d) => SendError::RateLimited(*d),
            ApiError::Network(_) => SendError::Transient(self.to_string()),
            ApiError::Discord { status, .. } if *status >= 500 => {
                SendError::Transient(self.to_string())
            }
            _ => SendError::Permanent(self.to_string()),
        }
    }
}

impl From<ApiError> for SendError {
    fn from(e: ApiError) -> Self {
        e.to_send_error()
    }
}

/// What a create call answers that Paver needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub id: String,
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// The parts of the application object Paver uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Application {
    pub id: String,
    /// The server associated with the application, if any.
    #[serde(default)]
    pub guild_id: Option<String>,
}

#[derive(Default)]
struct Limits {
    buckets: HashMap<RatelimitingBucket, Instant>,
    global: Option<Instant>,
}

/// Error bodies: `{"code": 50001, "message": "Missing Access"}`, and for a
/// 429 `{"retry_after": 1.5, "global": false, …}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    global: Option<bool>,
}

/// Why the Discord adapter cannot be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    ApiUrl(#[from] crate::config::DiscordUrlError),
    #[error("discord.application_id: `{0}` is not a Discord application id")]
    ApplicationId(String),
    #[error("building the Discord HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    PublicKey(#[from] super::verify::BadPublicKey),
    #[error("discord.public_key is set but discord.token is not: Paver answers interactions with the bot's token (set PAVER_DISCORD__TOKEN or discord.token_file)")]
    PublicKeyWithoutToken,
    #[error("discord.token is not set (PAVER_DISCORD__TOKEN or discord.token_file)")]
    NoToken,
    #[error("discord.application_id is not set (the developer portal's Application ID)")]
    NoApplicationId,
    #[error("registering /{command}: {source}")]
    Register {
        command: &'static str,
        #[source]
        source: ApiError,
    },
}

pub use crate::config::discord_proxy_base as proxy_base;

/// A snowflake id from its string form.
pub fn snowflake<T: From<NonZeroU64>>(s: &str, what: &str) -> Result<T, ApiError> {
    s.trim()
        .parse::<NonZeroU64>()
        .map(T::from)
        .map_err(|_| ApiError::Invalid(format!("`{s}` is not a Discord {what} id")))
}

fn bot_token(token: &str) -> String {
    let token = token.trim();
    if token.starts_with("Bot ") || token.starts_with("Bearer ") {
        token.to_owned()
    } else {
        format!("Bot {token}")
    }
}

fn header_f64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 3600.0))
}

/// Discord's REST API for one bot.
pub struct DiscordApi {
    client: reqwest::Client,
    token: String,
    base: String,
    application_id: Option<ApplicationId>,
    limits: Mutex<Limits>,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("base", &self.base)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl DiscordApi {
    /// `token`: the bot token; `api_url`: `discord.api_url`.
    pub fn new(
        token: &str,
        api_url: &Url,
        application_id: Option<&str>,
    ) -> Result<Self, SetupError> {
        let base = proxy_base(api_url)?;
        let application_id = application_id
            .map(|a| {
                snowflake::<ApplicationId>(a, "application")
                    .map_err(|_| SetupError::ApplicationId(a.to_owned()))
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(SetupError::Client)?;
        Ok(DiscordApi {
            client,
            token: bot_token(token),
            base,
            application_id,
            limits: Mutex::new(Limits::default()),
        })
    }

    /// A serenity `Http` for the gateway client, on the same base URL.
    pub fn serenity_http(&self) -> serenity::http::Http {
        let mut b = HttpBuilder::new(&self.token)
            .proxy(self.base.clone())
            .ratelimiter_disabled(true);
        if let Some(a) = self.application_id {
            b = b.application_id(a);
        }
        b.build()
    }

    pub fn application_id(&self) -> Option<String> {
        self.application_id.map(|a| a.to_string())
    }

    fn app(&self, given: Option<&str>) -> Result<ApplicationId, ApiError> {
        match given {
            Some(a) => snowflake(a, "application"),
            None => self
                .application_id
                .ok_or_else(|| ApiError::Invalid("discord.application_id is not set".to_owned())),
        }
    }

    /// How long `bucket` must still wait, if at all.
    fn wait_for(&self, bucket: &RatelimitingBucket) -> Option<Duration> {
        let limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        [limits.global, limits.buckets.get(bucket).copied()]
            .into_iter()
            .flatten()
            .filter(|until| *until > now)
            .max()
            .map(|until| until - now)
    }

    fn block(&self, bucket: RatelimitingBucket, global: bool, wait: Duration) {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        if global {
            limits.global = Some(until);
        } else {
            if limits.buckets.len() > 10_000 {
                let now = Instant::now();
                limits.buckets.retain(|_, u| *u > now);
            }
            limits.buckets.insert(bucket, until);
        }
    }

    /// One call: waits for nothing, reports a rate limit instead. What
    /// Discord (or the way to it) refused is counted as a Discord API
    /// error; a bucket this process already knows is spent is not, as no
    /// call was made.
    async fn call(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ApiError> {
        self.call_with(route, method, body, Vec::new()).await
    }

    /// [`Self::call`] with files attached: the body goes as the form's
    /// `payload_json`, each file as `files[n]`.
    async fn call_with(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&Value>,
        files: Vec<CreateAttachment>,
    ) -> Result<Vec<u8>, ApiError> {
        let bucket = route.ratelimiting_bucket();
        if let Some(wait) = self.wait_for(&bucket) {
            return Err(ApiError::RateLimited(wait));
        }
        let result = self.send(route, method, body, files).await;
        if let Err(e) = &result {
            let kind = match e {
                ApiError::RateLimited(_) => "rate_limited",
                ApiError::Discord { status, .. } if *status >= 500 => "server_error",
                ApiError::Discord { .. } => "refused",
                ApiError::Invalid(_) => "invalid",
                ApiError::Network(_) => "unreachable",
            };
            metrics::chat_api_error(Platform::Discord.as_str(), kind);
        }
        result
    }

    /// The request itself, and what its answer says about the bucket.
    async fn send(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&Value>,
        files: Vec<CreateAttachment>,
    ) -> Result<Vec<u8>, ApiError> {
        let bucket = route.ratelimiting_bucket();
        let request = if files.is_empty() {
            let body = body.map(|b| serde_json::to_vec(b).expect("JSON values serialize"));
            Request::new(route, method).body(body)
        } else {
            Request::new(route, method).multipart(Some(Multipart {
                upload: MultipartUpload::Attachments(files),
                fields: Vec::new(),
                payload_json: body.map(Value::to_string),
            }))
        };
        let request = request
            .build(&self.client, &self.token, Some(&self.base))
            .map_err(|e| ApiError::Invalid(format!("building a Discord request: {e}")))?;
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if let (Some(remaining), Some(reset_after)) = (
            header_f64(&headers, "x-ratelimit-remaining"),
            header_f64(&headers, "x-ratelimit-reset-after"),
        ) {
            if remaining < 1.0 && status.as_u16() != 429 {
                self.block(bucket, false, secs(reset_after));
            }
        }
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.as_u16() == 429 {
            let wait = header_f64(&headers, "retry-after")
                .or(err.retry_after)
                .map(secs)
                .unwrap_or(Duration::from_secs(1));
            let global = headers.contains_key("x-ratelimit-global") || err.global == Some(true);
            tracing::warn!(?wait, global, "Discord rate limit hit");
            self.block(bucket, global, wait);
            return Err(ApiError::RateLimited(wait));
        }
        Err(ApiError::Discord {
            status: status.as_u16(),
            code: err.code,
            message: if err.message.is_empty() {
                String::from_utf8_lossy(&bytes).chars().take(200).collect()
            } else {
                err.message
            },
        })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&Value>,
    ) -> Result<T, ApiError> {
        let bytes = self.call(route, method, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Invalid(format!("unexpected answer from Discord: {e}")))
    }

    /// `POST /channels/{channel}/messages`
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<Created, ApiError> {
        let channel_id: ChannelId = snowflake(channel, "channel")?;
        self.call_json(
            Route::ChannelMessages { channel_id },
            LightMethod::Post,
            Some(body),
        )
        .await
    }

    /// `POST /channels/{channel}/messages` with one file attached
    /// (multipart: `payload_json` and `files[0]`).
    pub async fn create_message_with_file(
        &self,
        channel: &str,
        body: &Value,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<Created, ApiError> {
        let channel_id: ChannelId = snowflake(channel, "channel")?;
        let bytes = self
            .call_with(
                Route::ChannelMessages { channel_id },
                LightMethod::Post,
                Some(body),
                vec![CreateAttachment::bytes(bytes, file_name)],
            )
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Invalid(format!("unexpected answer from Discord: {e}")))
    }

    /// `PATCH /channels/{channel}/messages/{message}`
    pub async fn edit_message(
        &self,
        channel: &str,
        message: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let channel_id: ChannelId = snowflake(channel, "channel")?;
        let message_id: MessageId = snowflake(message, "message")?;
        self.call(
            Route::ChannelMessage {
                channel_id,
                message_id,
            },
            LightMethod::Patch,
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `POST /channels/{channel}/messages/{message}/threads`: the thread's
    /// id is the message's.
    pub async fn start_thread(
        &self,
        channel: &str,
        message: &str,
        name: &str,
    ) -> Result<Created, ApiError> {
        let channel_id: ChannelId = snowflake(channel, "channel")?;
        let message_id: MessageId = snowflake(message, "message")?;
        let body = serde_json::json!({ "name": name, "auto_archive_duration": 1440 });
        self.call_json(
            Route::ChannelMessageThreads {
                channel_id,
                message_id,
            },
            LightMethod::Post,
            Some(&body),
        )
        .await
    }

    /// `POST /users/@me/channels`: the DM channel with `user`.
    pub async fn open_dm(&self, user: &str) -> Result<Created, ApiError> {
        snowflake::<serenity::model::id::UserId>(user, "user")?;
        let body = serde_json::json!({ "recipient_id": user });
        self.call_json(Route::UserMeDmChannels, LightMethod::Post, Some(&body))
            .await
    }

    /// `POST /interactions/{id}/{token}/callback` (gateway interactions;
    /// HTTP interactions answer in the response body instead).
    pub async fn interaction_callback(
        &self,
        interaction: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let interaction_id: InteractionId = snowflake(interaction, "interaction")?;
        self.call(
            Route::InteractionResponse {
                interaction_id,
                token,
            },
            LightMethod::Post,
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original`
    pub async fn edit_original(
        &self,
        application: Option<&str>,
        token: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let application_id = self.app(application)?;
        self.call(
            Route::WebhookOriginalInteractionResponse {
                application_id,
                token,
            },
            LightMethod::Patch,
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `POST /webhooks/{application}/{token}`: a follow-up message.
    pub async fn followup(
        &self,
        application: Option<&str>,
        token: &str,
        body: &Value,
    ) -> Result<Created, ApiError> {
        let application_id = self.app(application)?;
        self.call_json(
            Route::WebhookFollowupMessages {
                application_id,
                token,
            },
            LightMethod::Post,
            Some(body),
        )
        .await
    }

    /// `GET /oauth2/applications/@me`: the bot's application (its id, and
    /// the server it is associated with, if any).
    pub async fn application(&self) -> Result<Application, ApiError> {
        self.call_json(Route::Oauth2ApplicationCurrent, LightMethod::Get, None)
            .await
    }

    /// `POST /applications/{id}/commands` (or the guild's): creates or
    /// replaces the command of that name.
    pub async fn create_command(
        &self,
        guild: Option<&str>,
        body: &Value,
    ) -> Result<Created, ApiError> {
        let application_id = self.app(None)?;
        match guild {
            Some(g) => {
                let guild_id: GuildId = snowflake(g, "guild")?;
                self.call_json(
                    Route::GuildCommands {
                        application_id,
                        guild_id,
                    },
                    LightMethod::Post,
                    Some(body),
                )
                .await
            }
            None => {
                self.call_json(
                    Route::Commands { application_id },
                    LightMethod::Post,
                    Some(body),
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_becomes_serenitys_proxy_base() {
        let base = |s: &str| proxy_base(&Url::parse(s).unwrap());
        assert_eq!(
            base("https://discord.com/api/v10").unwrap(),
            "https://discord.com"
        );
        assert_eq!(
            base("http://127.0.0.1:4000/api/v10/").unwrap(),
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            base("http://proxy:3000/discord/api/v10").unwrap(),
            "http://proxy:3000/discord"
        );
        assert_eq!(base("http://proxy:3000").unwrap(), "http://proxy:3000");
        assert!(base("https://discord.com/api/v9").is_err());
    }

    #[test]
    fn ids_and_tokens() {
        assert!(snowflake::<ChannelId>("0", "channel").is_err());
        assert!(snowflake::<ChannelId>("C0PLATFORM", "channel").is_err());
        assert_eq!(
            snowflake::<ChannelId>("645027906669510667", "channel")
                .unwrap()
                .get(),
            645027906669510667
        );
        assert_eq!(bot_token("abc"), "Bot abc");
        assert_eq!(bot_token("Bot abc"), "Bot abc");
    }

    #[test]
    fn errors_map_to_outbox_treatment() {
        assert_eq!(
            ApiError::RateLimited(Duration::from_secs(2)).to_send_error(),
            SendError::RateLimited(Duration::from_secs(2))
        );
        assert!(matches!(
            ApiError::Network("reset".into()).to_send_error(),
            SendError::Transient(_)
        ));
        let discord = |status| ApiError::Discord {
            status,
            code: 0,
            message: String::new(),
        };
        assert!(matches!(
            discord(502).to_send_error(),
            SendError::Transient(_)
        ));
        assert!(matches!(
            discord(403).to_send_error(),
            SendError::Permanent(_)
        ));
    }
}
