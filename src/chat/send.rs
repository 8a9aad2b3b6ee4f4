//! Everything Paver says goes through here into the outbox: replies,
//! private notes, messages in a request's thread, and its card, posted once
//! and then updated in place. The dispatcher sends them, paced, in order.

use super::dispatcher::Dispatcher;
use super::{messages, ChatUser, Conversation, Message};
use crate::catalog::SharedCatalog;
use crate::domain::{GoldenPath, Platform};
use crate::storage::cards::{CardCopy, Notice};
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::{Db, Request, StorageError};

/// One thing approvers are told (see [`Sender::tell_approvers`]).
#[derive(Debug, Clone)]
pub enum Told {
    /// A new copy of the request's card, posted where the copy says.
    Copy(CardCopy),
    /// A message in the thread under a copy already posted.
    UnderCopy(CardCopy, Message),
    /// A message in the request's own thread.
    InThread(Message),
}

/// A "reading that…" message posted while the LLM reads a request, under
/// the key the request's card will have (a request id chosen ahead), so
/// the card, or whatever the answer is, replaces it in place: one message,
/// not two. Until it is sent, a replacement simply takes its place in the
/// outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    /// The card key: the id the request gets if the message proposes one.
    pub key: String,
    pub platform: Platform,
    pub channel: String,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    db: Db,
    dispatcher: Dispatcher,
    catalog: SharedCatalog,
    golden_path: GoldenPath,
}

impl Sender {
    /// Cards show resource sizes from `golden_path` and names from `catalog`.
    pub fn new(
        db: Db,
        dispatcher: Dispatcher,
        catalog: SharedCatalog,
        golden_path: GoldenPath,
    ) -> Self {
        Sender {
            db,
            dispatcher,
            catalog,
            golden_path,
        }
    }

    /// The resource sizes cards show and drivers receive.
    pub fn golden_path(&self) -> &GoldenPath {
        &self.golden_path
    }

    /// Tells the dispatcher that rows were queued outside [`Sender`] (in a
    /// flow's own transaction, such as a digest's record).
    pub fn wake(&self) {
        self.dispatcher.notify();
    }

    async fn enqueue(&self, item: OutboxItem) -> Result<(), StorageError> {
        self.db.outbox().enqueue(&item).await?;
        self.dispatcher.notify();
        Ok(())
    }

    /// A message in the conversation (in its thread, if it has one).
    pub async fn reply(&self, conv: &Conversation, message: &Message) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform: conv.platform,
            channel: conv.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: None,
            thread_ref: conv.thread.clone(),
            body: body(message),
        })
        .await
    }

    /// Posts [`messages::reading`] in the conversation (in its thread, if
    /// it has one), where the request's card would go.
    pub async fn placeholder(&self, conv: &Conversation) -> Result<Placeholder, StorageError> {
        let key = crate::storage::requests::new_request_id();
        self.enqueue(OutboxItem {
            platform: conv.platform,
            channel: conv.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: Some(key.clone()),
            thread_key: None,
            thread_ref: conv.thread.clone(),
            body: body(&messages::reading()),
        })
        .await?;
        Ok(Placeholder {
            key,
            platform: conv.platform,
            channel: conv.channel.clone(),
        })
    }

    /// A reply in the conversation, in place of the placeholder when there
    /// is one.
    pub async fn reply_over(
        &self,
        conv: &Conversation,
        placeholder: Option<&Placeholder>,
        message: &Message,
    ) -> Result<(), StorageError> {
        match placeholder {
            Some(p) => {
                self.update_keyed(p.platform, &p.channel, &p.key, message)
                    .await
            }
            None => self.reply(conv, message).await,
        }
    }

    /// A message only `user` sees.
    pub async fn whisper(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        message: &Message,
    ) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform: conv.platform,
            channel: conv.channel.clone(),
            kind: OutboxKind::Ephemeral,
            user_id: Some(user.id.clone()),
            card_key: None,
            thread_key: None,
            thread_ref: conv.thread.clone(),
            body: body(message),
        })
        .await
    }

    /// A message in the request's thread (under its card).
    pub async fn in_thread(&self, req: &Request, message: &Message) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform: req.platform,
            channel: req.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: Some(req.id.clone()),
            thread_ref: req.thread.clone(),
            body: body(message),
        })
        .await
    }

    /// The request's card, posted for the first time.
    pub async fn post_card(&self, req: &Request) -> Result<(), StorageError> {
        self.enqueue(self.card_post(req)).await
    }

    /// How a new request's card is queued, for storage to queue it in the
    /// transaction that stores the request (`RequestStore::insert`); call
    /// [`Sender::queued`] once that committed.
    pub fn card_poster(&self) -> crate::storage::requests::CardOf {
        let me = self.clone();
        std::sync::Arc::new(move |req| me.card_post(req))
    }

    /// Something was queued without this sender: delivery starts now.
    pub fn queued(&self) {
        self.dispatcher.notify();
    }

    fn card_post(&self, req: &Request) -> OutboxItem {
        OutboxItem {
            platform: req.platform,
            channel: req.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: Some(req.id.clone()),
            thread_key: None,
            thread_ref: req.thread.clone(),
            body: body(&self.card(req, None)),
        }
    }

    /// The request's card, edited in place to show `req` as it is now (and
    /// a line of progress while it runs), and every copy of it where
    /// approvers look, so a decision shows (and its buttons go) everywhere.
    /// Progress lines go to the original only: the copies already say the
    /// request runs, and the final state reaches them as it does the card.
    pub async fn update_card(
        &self,
        req: &Request,
        progress: Option<&str>,
    ) -> Result<(), StorageError> {
        let card = self.card(req, progress);
        self.enqueue(OutboxItem {
            platform: req.platform,
            channel: req.channel.clone(),
            kind: OutboxKind::Update,
            user_id: None,
            card_key: Some(req.id.clone()),
            thread_key: None,
            thread_ref: None,
            body: body(&card),
        })
        .await?;
        if progress.is_some() {
            return Ok(());
        }
        for copy in self.db.cards().copies_of(&req.id).await? {
            let message = messages::approval_copy(card.clone(), req, copy.audience, &copy.mentions);
            self.enqueue(OutboxItem {
                platform: copy.platform,
                channel: copy.channel.clone(),
                kind: OutboxKind::Update,
                user_id: None,
                card_key: Some(copy.card_key.clone()),
                thread_key: None,
                thread_ref: None,
                body: body(&message),
            })
            .await?;
        }
        Ok(())
    }

    /// Tells the approvers of `req` about approval round `round`, once per
    /// `notice`: the new copies of its card are recorded and posted, and
    /// the lines said, all queued in the transaction that records the
    /// notice. Returns false, sending nothing, when the notice was given
    /// already (a retry, a recovery, another replica).
    pub async fn tell_approvers(
        &self,
        req: &Request,
        round: i64,
        notice: Notice,
        told: &[Told],
    ) -> Result<bool, StorageError> {
        let card = self.card(req, None);
        let mut copies = Vec::new();
        let mut items = Vec::new();
        for t in told {
            let item = match t {
                Told::Copy(copy) => {
                    copies.push(copy.clone());
                    OutboxItem {
                        platform: copy.platform,
                        channel: copy.channel.clone(),
                        kind: OutboxKind::Post,
                        user_id: None,
                        card_key: Some(copy.card_key.clone()),
                        thread_key: None,
                        thread_ref: None,
                        body: body(&messages::approval_copy(
                            card.clone(),
                            req,
                            copy.audience,
                            &copy.mentions,
                        )),
                    }
                }
                Told::UnderCopy(copy, message) => OutboxItem {
                    platform: copy.platform,
                    channel: copy.channel.clone(),
                    kind: OutboxKind::Post,
                    user_id: None,
                    card_key: None,
                    thread_key: Some(copy.card_key.clone()),
                    thread_ref: None,
                    body: body(message),
                },
                Told::InThread(message) => OutboxItem {
                    platform: req.platform,
                    channel: req.channel.clone(),
                    kind: OutboxKind::Post,
                    user_id: None,
                    card_key: None,
                    thread_key: Some(req.id.clone()),
                    thread_ref: req.thread.clone(),
                    body: body(message),
                },
            };
            items.push(item);
        }
        let told = self
            .db
            .cards()
            .tell_once(&req.id, round, notice, &copies, &items)
            .await?;
        if told {
            self.dispatcher.notify();
        }
        Ok(told)
    }

    /// A message of its own kind kept under `key` (a deploy notice):
    /// posted once in `channel`, in the thread under the card `thread_key`
    /// when given, then edited with [`Sender::update_keyed`].
    pub async fn post_keyed(
        &self,
        platform: Platform,
        channel: &str,
        key: &str,
        thread_key: Option<&str>,
        message: &Message,
    ) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform,
            channel: channel.to_owned(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: Some(key.to_owned()),
            thread_key: thread_key.map(str::to_owned),
            thread_ref: None,
            body: body(message),
        })
        .await
    }

    /// Edits the message posted under `key` (coalesced with an edit, or the
    /// post, still waiting to go out).
    pub async fn update_keyed(
        &self,
        platform: Platform,
        channel: &str,
        key: &str,
        message: &Message,
    ) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform,
            channel: channel.to_owned(),
            kind: OutboxKind::Update,
            user_id: None,
            card_key: Some(key.to_owned()),
            thread_key: None,
            thread_ref: None,
            body: body(message),
        })
        .await
    }

    /// A plain message in a channel (not in any thread).
    pub async fn post_to(
        &self,
        platform: Platform,
        channel: &str,
        message: &Message,
    ) -> Result<(), StorageError> {
        self.enqueue(OutboxItem {
            platform,
            channel: channel.to_owned(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: None,
            thread_ref: None,
            body: body(message),
        })
        .await
    }

    fn card(&self, req: &Request, progress: Option<&str>) -> Message {
        messages::card(req, &self.catalog.current(), &self.golden_path, progress)
    }
}

fn body(message: &Message) -> String {
    serde_json::to_string(message).expect("messages serialize")
}
