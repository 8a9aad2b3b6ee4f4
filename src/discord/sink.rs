//! The Discord sending side: the outbox calls these, so there is no retry
//! loop here; errors say whether to wait, retry or give up.
//!
//! Message references: a message posted in the outbox row's channel is
//! referred to by its id; one posted elsewhere (in a thread, which is a
//! channel of its own, or a DM: the row's channel `@user_id`) as
//! `channel_id/message_id`. A "thread" to post in
//! is such a reference: Paver starts a thread on that message (a thread
//! started from a message has the message's id) where the channel allows
//! threads, and otherwise answers the message with a reply.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::api::{ApiError, DiscordApi};
use super::render;
use super::InteractionHandle;
use crate::chat::{ChatSink, Message, SendError, Upload};

/// Discord error codes the sink reacts to.
mod codes {
    /// A thread has already been created for this message.
    pub const THREAD_EXISTS: i64 = 160004;
    /// Unknown message.
    pub const UNKNOWN_MESSAGE: i64 = 10008;
    /// Unknown webhook (an interaction token that expired).
    pub const UNKNOWN_WEBHOOK: i64 = 10015;
    /// Invalid webhook token.
    pub const INVALID_WEBHOOK_TOKEN: i64 = 50027;
}

/// What the sink learned about channels, to spare calls.
#[derive(Default)]
struct Known {
    /// Messages that have a thread (its id is theirs).
    threads: HashSet<String>,
    /// Channels where threads cannot be started (DMs, threads, no permission).
    no_threads: HashSet<String>,
    /// Card titles by message id, to name their threads.
    titles: HashMap<String, String>,
    /// DM channels by user id.
    dms: HashMap<String, String>,
}

impl Known {
    fn trim(&mut self) {
        const MAX: usize = 10_000;
        if self.threads.len() > MAX {
            self.threads.clear();
        }
        if self.no_threads.len() > MAX {
            self.no_threads.clear();
        }
        if self.titles.len() > MAX {
            self.titles.clear();
        }
        if self.dms.len() > MAX {
            self.dms.clear();
        }
    }
}

/// Splits a message reference into (the channel it is in, when not the
/// row's channel; the message id).
pub fn split_ref(r: &str) -> (Option<&str>, &str) {
    match r.split_once('/') {
        Some((channel, message)) => (Some(channel), message),
        None => (None, r),
    }
}

pub struct DiscordSink {
    api: Arc<DiscordApi>,
    known: Mutex<Known>,
}

impl DiscordSink {
    pub fn new(api: Arc<DiscordApi>) -> Self {
        DiscordSink {
            api,
            known: Mutex::new(Known::default()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_title(&self, message_id: &str, message: &Message) {
        if let Some(t) = &message.title {
            let mut k = self.known();
            k.trim();
            k.titles.insert(message_id.to_owned(), t.clone());
        }
    }

    /// The thread on `anchor` (a message in `channel`), started if need be;
    /// `None` where the channel has no threads.
    async fn thread_on(&self, channel: &str, anchor: &str) -> Result<Option<String>, ApiError> {
        let name = {
            let k = self.known();
            if k.threads.contains(anchor) {
                return Ok(Some(anchor.to_owned()));
            }
            if k.no_threads.contains(channel) {
                return Ok(None);
            }
            render::thread_name(k.titles.get(anchor).map_or("", String::as_str))
        };
        let thread = match self.api.start_thread(channel, anchor, &name).await {
            Ok(created) => Some(created.id),
            Err(e) if e.code() == Some(codes::THREAD_EXISTS) => Some(anchor.to_owned()),
            Err(e) if e.code() == Some(codes::UNKNOWN_MESSAGE) => {
                tracing::info!(
                    channel,
                    anchor,
                    "the message to thread under is gone; posting in the channel"
                );
                return Ok(None);
            }
            Err(e @ ApiError::Discord { status, .. }) if status < 500 => {
                tracing::info!(channel, error = %e, "no threads in this channel; replying instead");
                let mut k = self.known();
                k.trim();
                k.no_threads.insert(channel.to_owned());
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(t) = &thread {
            let mut k = self.known();
            k.trim();
            k.threads.insert(t.clone());
        }
        Ok(thread)
    }

    async fn dm(&self, user: &str) -> Result<String, ApiError> {
        if let Some(c) = self.known().dms.get(user) {
            return Ok(c.clone());
        }
        let channel = self.api.open_dm(user).await?.id;
        let mut k = self.known();
        k.trim();
        k.dms.insert(user.to_owned(), channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl ChatSink for DiscordSink {
    /// A message with the file attached: in the channel, or in the thread
    /// a reference names (a file never starts a thread of its own).
    async fn upload(
        &self,
        channel: &str,
        thread: Option<&str>,
        file: &Upload,
    ) -> Result<(), SendError> {
        let target = match thread.map(split_ref) {
            Some((Some(elsewhere), _)) => elsewhere,
            _ => channel,
        };
        let body = json!({
            "content": file.title,
            "attachments": [{"id": 0, "filename": file.file_name, "description": file.title}],
            "allowed_mentions": {"parse": []},
        });
        self.api
            .create_message_with_file(target, &body, &file.file_name, file.bytes()?)
            .await?;
        Ok(())
    }

    async fn post(
        &self,
        channel: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError> {
        let mut body = render::message_body(message);
        // `@user`: to that user directly (a copy of a card for an
        // approver). The reference names the DM channel, so updates and
        // messages under it find it again.
        if let Some(user) = channel.strip_prefix('@') {
            let dm = self.dm(user).await?;
            let created = self.api.create_message(&dm, &body).await?;
            self.remember_title(&created.id, message);
            return Ok(format!("{dm}/{}", created.id));
        }
        // An interaction handle only routes replies to the presser; posts
        // go to the channel.
        let thread = thread.filter(|t| InteractionHandle::parse(t).is_none());
        let (target, anchor) = match thread.map(split_ref) {
            None => (channel.to_owned(), None),
            // Under a message that is itself in a thread: post in that thread.
            Some((Some(elsewhere), _)) => (elsewhere.to_owned(), None),
            Some((None, anchor)) => match self.thread_on(channel, anchor).await? {
                Some(t) => (t, None),
                None => (channel.to_owned(), Some(anchor)),
            },
        };
        if let (Some(anchor), Some(obj)) = (anchor, body.as_object_mut()) {
            obj.insert(
                "message_reference".into(),
                json!({ "message_id": anchor, "channel_id": channel, "fail_if_not_exists": false }),
            );
        }
        let created = self.api.create_message(&target, &body).await?;
        self.remember_title(&created.id, message);
        Ok(if target == channel {
            created.id
        } else {
            format!("{target}/{}", created.id)
        })
    }

    async fn update(
        &self,
        channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), SendError> {
        let (elsewhere, id) = split_ref(message_ref);
        let body = render::message_body(message);
        self.api
            .edit_message(elsewhere.unwrap_or(channel), id, &body)
            .await?;
        self.remember_title(id, message);
        Ok(())
    }

    /// Within 15 minutes of the press that caused it, an ephemeral
    /// follow-up to that interaction; otherwise a direct message.
    async fn ephemeral(
        &self,
        _channel: &str,
        user: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<(), SendError> {
        let body: Value = render::message_body(message);
        if let Some(h) = thread
            .and_then(InteractionHandle::parse)
            .filter(|h| h.fresh())
        {
            let mut eph = body.clone();
            eph["flags"] = json!(render::EPHEMERAL);
            match self
                .api
                .followup(h.application_id.as_deref(), &h.token, &eph)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(
                        e.code(),
                        Some(codes::UNKNOWN_WEBHOOK | codes::INVALID_WEBHOOK_TOKEN)
                    ) || matches!(e.status(), Some(401 | 404)) =>
                {
                    tracing::info!(error = %e, "interaction token no longer valid; sending a DM instead");
                }
                Err(e @ ApiError::Invalid(_)) => {
                    tracing::info!(error = %e, "cannot follow up the interaction; sending a DM instead");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let dm = self.dm(user).await?;
        self.api.create_message(&dm, &body).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        assert_eq!(split_ref("123"), (None, "123"));
        assert_eq!(split_ref("9/123"), (Some("9"), "123"));
    }
}
