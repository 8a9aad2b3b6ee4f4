//! The one Slack Web API client: slack-morphism over a hyper connector that
//! speaks HTTPS and plain HTTP (so tests can run a fake Slack on loopback).
//! It is the Slack adapter's [`ChatSink`].
//!
//! It does not pace: the outbox dispatcher reserves each send's slot in the
//! channel's pace in the database (`slack.min_interval_ms`), which holds
//! across replicas; a limiter here would only pace this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use url::Url;

use super::blocks;
use crate::catalog::{SharedCatalog, UserMatch};
use crate::chat::{ChatSink, Message, SendError, Upload};
use crate::domain::{Platform, UserName};
use crate::util::metrics;

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// How long a users.info answer (or its absence) is trusted.
const IDENTITY_TTL: Duration = Duration::from_secs(600);

pub struct SlackApi {
    client: SlackClient<Connector>,
    token: SlackApiToken,
    identities: Mutex<HashMap<String, (Instant, Option<UserName>)>>,
}

/// Who the bot token is (from `auth.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub team_id: String,
    pub user_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SlackSetupError {
    #[error("cannot load the TLS root certificates: {0}")]
    Tls(std::io::Error),
}

impl SlackApi {
    pub fn new(api_url: &Url, bot_token: &SecretString) -> Result<Self, SlackSetupError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(SlackSetupError::Tls)?
            .https_or_http()
            .enable_http1()
            .build();
        // slack-morphism joins `{base}/{method}` itself.
        let base = api_url.as_str().trim_end_matches('/');
        let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(base);
        Ok(SlackApi {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue(bot_token.expose_secret().to_owned())),
            identities: Mutex::new(HashMap::new()),
        })
    }

    fn content(message: &Message) -> Result<SlackMessageContent, SendError> {
        let blocks: Vec<SlackBlock> =
            serde_json::from_value(serde_json::Value::Array(blocks::render(message)))
                .map_err(|e| SendError::Permanent(format!("Block Kit rendering: {e}")))?;
        Ok(SlackMessageContent::new()
            .with_text(blocks::fallback(message))
            .with_blocks(blocks))
    }

    /// Resolves a Slack user to a catalog user: the `slack.com/user-id`
    /// annotation first, else users.info's email against catalog emails.
    pub async fn identify(&self, catalog: &SharedCatalog, slack_user: &str) -> Option<UserName> {
        let current = catalog.current();
        match current.match_slack_id(slack_user) {
            UserMatch::One(u) => return Some(u.name.clone()),
            // Several users claim this id: the email must not pick one of them.
            UserMatch::Ambiguous(names) => {
                tracing::warn!(slack_user, users = ?names, "several catalog users claim this Slack id; treating the user as unknown");
                return None;
            }
            UserMatch::Nobody => {}
        }
        if let Some((at, known)) = self
            .identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(slack_user)
        {
            if at.elapsed() < IDENTITY_TTL {
                return known.clone();
            }
        }
        let session = self.client.open_session(&self.token);
        let found = match session
            .users_info(&SlackApiUsersInfoRequest::new(SlackUserId(
                slack_user.to_owned(),
            )))
            .await
        {
            Ok(info) => info
                .user
                .profile
                .and_then(|p| p.email)
                .and_then(|email| current.user_by_email(email.value()).map(|u| u.name.clone())),
            Err(e) => {
                let e = classify(e);
                tracing::warn!(slack_user, error = %e, "users.info failed; treating the user as unknown for now");
                return None;
            }
        };
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(slack_user.to_owned(), (Instant::now(), found.clone()));
        found
    }

    /// Opens a modal (views.open) for an interaction's trigger.
    pub async fn open_view(
        &self,
        trigger_id: &str,
        view: serde_json::Value,
    ) -> Result<(), SendError> {
        let view: SlackView =
            serde_json::from_value(view).map_err(|e| SendError::Permanent(e.to_string()))?;
        let session = self.client.open_session(&self.token);
        session
            .views_open(&SlackApiViewsOpenRequest::new(
                SlackTriggerId(trigger_id.to_owned()),
                view,
            ))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// `auth.test`: the workspace the bot token belongs to, and the bot's
    /// own user id.
    pub async fn whoami(&self) -> Result<Identity, SendError> {
        let session = self.client.open_session(&self.token);
        session
            .auth_test()
            .await
            .map(|r| Identity {
                team_id: r.team_id.0,
                user_id: r.user_id.0,
            })
            .map_err(classify)
    }

    /// `apps.connections.open` with the app-level token, for Socket Mode.
    pub async fn open_socket_url(&self, app_token: &SecretString) -> Result<String, SendError> {
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.expose_secret().to_owned()));
        let session = self.client.open_session(&token);
        session
            .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
            .await
            .map(|r| r.url.0.to_string())
            .map_err(classify)
    }
}

/// Slack's answers, sorted into what the outbox should do; each is counted
/// as a Slack API error of its kind. Every Web API call's error passes here.
fn classify(e: SlackClientError) -> SendError {
    let (kind, error) = match e {
        SlackClientError::RateLimitError(r) => (
            "rate_limited",
            SendError::RateLimited(r.retry_after.unwrap_or(Duration::from_secs(1))),
        ),
        SlackClientError::ApiError(a) if a.code == "ratelimited" => (
            "rate_limited",
            SendError::RateLimited(Duration::from_secs(1)),
        ),
        SlackClientError::ApiError(a)
            if matches!(
                a.code.as_str(),
                "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            ) =>
        {
            (
                "server_error",
                SendError::Transient(format!("Slack error {}", a.code)),
            )
        }
        SlackClientError::ApiError(a) => (
            "refused",
            SendError::Permanent(format!("Slack error {}", a.code)),
        ),
        SlackClientError::HttpError(h) if h.status_code.is_server_error() => (
            "server_error",
            SendError::Transient(format!("Slack answered {}", h.status_code)),
        ),
        SlackClientError::HttpError(h) => (
            "refused",
            SendError::Permanent(format!("Slack answered {}", h.status_code)),
        ),
        other => ("unreachable", SendError::Transient(other.to_string())),
    };
    metrics::chat_api_error(Platform::Slack.as_str(), kind);
    error
}

/// Where a message Paver sent is: a plain `ts` is in `channel`; a
/// `D…/ts` (a DM opened by posting to a user id) names its conversation.
/// Slack's timestamps never hold a `/`.
fn locate<'a>(channel: &'a str, message_ref: &'a str) -> (&'a str, &'a str) {
    message_ref
        .split_once('/')
        .unwrap_or((channel, message_ref))
}

#[async_trait]
impl ChatSink for SlackApi {
    /// Slack's external upload: `files.getUploadURLExternal` (name and
    /// length), the bytes POSTed to the URL it gives, then
    /// `files.completeUploadExternal` shares the file in the channel
    /// (`channel_id`, and `thread_ts` under a message).
    async fn upload(
        &self,
        channel: &str,
        thread: Option<&str>,
        file: &Upload,
    ) -> Result<(), SendError> {
        let bytes = file.bytes()?;
        let (channel, thread) = match thread {
            Some(t) => {
                let (c, ts) = locate(channel, t);
                (c, Some(ts))
            }
            None => (channel, None),
        };
        let session = self.client.open_session(&self.token);
        let target = session
            .get_upload_url_external(
                &SlackApiFilesGetUploadUrlExternalRequest::new(file.file_name.clone(), bytes.len())
                    .with_alt_txt(file.title.clone()),
            )
            .await
            .map_err(classify)?;
        session
            .files_upload_via_url(&SlackApiFilesUploadViaUrlRequest::new(
                target.upload_url,
                bytes,
                file.content_type.clone(),
            ))
            .await
            .map_err(classify)?;
        let mut req =
            SlackApiFilesCompleteUploadExternalRequest::new(vec![SlackApiFilesComplete::new(
                target.file_id,
            )
            .with_title(file.title.clone())])
            .with_channel_id(SlackChannelId(channel.to_owned()));
        if let Some(t) = thread {
            req = req.with_thread_ts(SlackTs(t.to_owned()));
        }
        session
            .files_complete_upload_external(&req)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn post(
        &self,
        channel: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError> {
        // Under a message in a DM, the DM is where to post.
        let (channel, thread) = match thread {
            Some(t) => {
                let (c, ts) = locate(channel, t);
                (c, Some(ts))
            }
            None => (channel, None),
        };
        let mut req = SlackApiChatPostMessageRequest::new(
            SlackChannelId(channel.to_owned()),
            Self::content(message)?,
        );
        if let Some(t) = thread {
            req = req.with_thread_ts(SlackTs(t.to_owned()));
        }
        req = req.with_unfurl_links(false);
        let session = self.client.open_session(&self.token);
        let resp = session.chat_post_message(&req).await.map_err(classify)?;
        // Posted to a user id, the message lands in the DM Slack opens
        // (D…), and only that id edits it: the reference carries it.
        if resp.channel.0 != channel {
            return Ok(format!("{}/{}", resp.channel.0, resp.ts.0));
        }
        Ok(resp.ts.0)
    }

    async fn update(
        &self,
        channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), SendError> {
        let (channel, ts) = locate(channel, message_ref);
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_owned()),
            Self::content(message)?,
            SlackTs(ts.to_owned()),
        );
        let session = self.client.open_session(&self.token);
        session
            .chat_update(&req)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<(), SendError> {
        let (channel, thread) = match thread {
            Some(t) => {
                let (c, ts) = locate(channel, t);
                (c, Some(ts))
            }
            None => (channel, None),
        };
        let mut req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_owned()),
            SlackUserId(user.to_owned()),
            Self::content(message)?,
        );
        if let Some(t) = thread {
            req = req.with_thread_ts(SlackTs(t.to_owned()));
        }
        let session = self.client.open_session(&self.token);
        session
            .chat_post_ephemeral(&req)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// A shared handle, so the sink and the inbound handlers use one client.
pub type SharedSlackApi = Arc<SlackApi>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A Slack id two catalog users claim is nobody, and users.info's email
    /// does not get to pick one of them.
    #[tokio::test]
    async fn an_ambiguous_slack_id_identifies_nobody() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let fake = axum::Router::new().route(
            "/api/users.info",
            axum::routing::any(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"ok": true, "user": {"id": "U0TWIN",
                        "name": "twin", "profile": {"email": "one@example.com"}}}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, fake).await });
        let api = SlackApi::new(
            &Url::parse(&format!("http://{addr}/api/")).unwrap(),
            &SecretString::from("xoxb-test".to_owned()),
        )
        .unwrap();
        let twins = "
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: one
  annotations: {slack.com/user-id: U0TWIN}
spec: {profile: {email: one@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: two
  annotations: {slack.com/user-id: U0TWIN}
";
        let catalog = SharedCatalog::new(Catalog::from_yaml_str(twins, "twins"));
        assert_eq!(api.identify(&catalog, "U0TWIN").await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no email fallback");
        // An id nobody claims still falls back to the email.
        assert_eq!(
            api.identify(&catalog, "U0NEW").await.map(|u| u.to_string()),
            Some("one".to_owned())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
