//! The engine: chat messages and button presses in, requests moved through
//! their state machine, replies out through the outbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::{Catalog, SharedCatalog};
use crate::chat::dispatcher::Dispatcher;
use crate::chat::{messages, ButtonOp, ButtonPayload, ChatUser, Conversation, Inbound, Message};
use crate::domain::{Action, ActionKind, Environment, Field, GoldenPath, UserName};
use crate::drivers::{Driver, DriverError, Job, JobState};
use crate::nlu::amend::{self as followup, FollowUp};
use crate::nlu::chatter;
use crate::nlu::{NluPath, RulesParser, Understander, Understanding};
use crate::policy::{self, Decision, PolicyConfig, PolicyContext};
use crate::requests::executor::{self, DbJobState, Executor, ExecutorSettings, JobRunner};
use crate::requests::state::{RequestState, Transition};
use crate::storage::jobs::idempotency_key;
use crate::storage::outbox::{OutboxItem, OutboxKind};
use crate::storage::requests::Approval;
use crate::storage::{
    now_ms, ApprovalDecision, Claimed, Db, Guard, JobRow, JobStatus, NewDecision, NewRequest,
    NluRecord, Request, StorageError, TransitionOutcome, Updates,
};

/// Too much work in flight: the caller should not acknowledge the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many events in flight; try again shortly")]
pub struct Overloaded;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Whether chat users unknown to the catalog may request changes.
    pub unknown_users_may_request: bool,
    /// How long a proposal waits for its requester's confirmation.
    pub proposal_ttl: Duration,
    /// Attempts of a job that fails with a transient error (a crashed
    /// run counts as one).
    pub attempts: u32,
    /// The durable executor's workers, leases and backoff.
    pub executor: ExecutorSettings,
    /// The LLM side of understanding (`auto`/`llm`); `None`: rules only.
    pub understander: Option<Arc<Understander>>,
    /// Acknowledged chat events handled at once, at most; past it adapters
    /// answer "busy" so the platform redelivers later, instead of Paver
    /// queueing without bound.
    pub max_in_flight: usize,
    /// Resource sizes: shown on cards as the drivers receive them.
    pub golden_path: GoldenPath,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            unknown_users_may_request: false,
            proposal_ttl: Duration::from_secs(24 * 3600),
            attempts: 6,
            executor: ExecutorSettings::default(),
            understander: None,
            max_in_flight: 1024,
            golden_path: GoldenPath::default(),
        }
    }
}

struct ParserCache {
    catalog: Arc<Catalog>,
    parser: Arc<RulesParser>,
}

struct Inner {
    db: Db,
    catalog: SharedCatalog,
    parser: Mutex<ParserCache>,
    policy: PolicyConfig,
    driver: Arc<dyn Driver>,
    dispatcher: Dispatcher,
    settings: EngineSettings,
    running: AtomicUsize,
    executor: Executor,
}

/// Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// How a request came to be `confirmed` (what policy may take into account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Confirm,
    Retry,
    Recovery,
}

/// What became of a message (for adapters and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// A redelivered event: acknowledged, not processed again.
    Duplicate,
    Replied,
    Ignored,
    Proposed(String),
}

impl Engine {
    pub fn new(
        db: Db,
        catalog: SharedCatalog,
        policy: PolicyConfig,
        driver: Arc<dyn Driver>,
        dispatcher: Dispatcher,
        settings: EngineSettings,
    ) -> Self {
        let current = catalog.current();
        let parser = Arc::new(RulesParser::new(&current));
        let executor = Executor::new(db.clone(), settings.executor.clone());
        Engine {
            inner: Arc::new(Inner {
                db,
                catalog,
                parser: Mutex::new(ParserCache {
                    catalog: current,
                    parser,
                }),
                policy,
                driver,
                dispatcher,
                settings,
                running: AtomicUsize::new(0),
                executor,
            }),
        }
    }

    /// The resource sizes cards show and drivers receive.
    pub fn golden_path(&self) -> &GoldenPath {
        &self.inner.settings.golden_path
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The parser for the current catalog, rebuilt when the catalog changed.
    fn parser(&self) -> (Arc<Catalog>, Arc<RulesParser>) {
        let current = self.inner.catalog.current();
        let mut cache = self.inner.parser.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&cache.catalog, &current) {
            cache.parser = Arc::new(RulesParser::new(&current));
            cache.catalog = current.clone();
        }
        (current, cache.parser.clone())
    }

    // ----- sending ----------------------------------------------------------

    async fn enqueue(&self, item: OutboxItem) -> Result<(), EngineError> {
        self.inner.db.outbox().enqueue(&item).await?;
        self.inner.dispatcher.notify();
        Ok(())
    }

    async fn reply(&self, conv: &Conversation, message: &Message) -> Result<(), EngineError> {
        self.enqueue(OutboxItem {
            platform: conv.platform.as_str().into(),
            channel: conv.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: None,
            thread_ref: conv.thread.clone(),
            body: serde_json::to_string(message).expect("messages serialize"),
        })
        .await
    }

    async fn whisper(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        message: &Message,
    ) -> Result<(), EngineError> {
        self.enqueue(OutboxItem {
            platform: conv.platform.as_str().into(),
            channel: conv.channel.clone(),
            kind: OutboxKind::Ephemeral,
            user_id: Some(user.id.clone()),
            card_key: None,
            thread_key: None,
            thread_ref: conv.thread.clone(),
            body: serde_json::to_string(message).expect("messages serialize"),
        })
        .await
    }

    /// A message in the request's thread (under its card).
    async fn in_thread(&self, req: &Request, message: &Message) -> Result<(), EngineError> {
        self.enqueue(OutboxItem {
            platform: req.platform.clone(),
            channel: req.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: None,
            thread_key: Some(req.id.clone()),
            thread_ref: req.thread.clone(),
            body: serde_json::to_string(message).expect("messages serialize"),
        })
        .await
    }

    async fn post_card(&self, req: &Request) -> Result<(), EngineError> {
        let catalog = self.inner.catalog.current();
        self.enqueue(OutboxItem {
            platform: req.platform.clone(),
            channel: req.channel.clone(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: Some(req.id.clone()),
            thread_key: None,
            thread_ref: req.thread.clone(),
            body: serde_json::to_string(&messages::card(
                req,
                &catalog,
                &self.inner.settings.golden_path,
                None,
            ))
            .expect("serializes"),
        })
        .await
    }

    async fn update_card(&self, req: &Request, progress: Option<&str>) -> Result<(), EngineError> {
        let catalog = self.inner.catalog.current();
        self.enqueue(OutboxItem {
            platform: req.platform.clone(),
            channel: req.channel.clone(),
            kind: OutboxKind::Update,
            user_id: None,
            card_key: Some(req.id.clone()),
            thread_key: None,
            thread_ref: None,
            body: serde_json::to_string(&messages::card(
                req,
                &catalog,
                &self.inner.settings.golden_path,
                progress,
            ))
            .expect("serializes"),
        })
        .await
    }

    // ----- messages ---------------------------------------------------------

    pub async fn handle_message(&self, msg: Inbound) -> Result<Handled, EngineError> {
        if let Some(event_id) = &msg.event_id {
            let platform = msg.conversation.platform.as_str();
            if !self.inner.db.first_delivery(platform, event_id).await? {
                tracing::debug!(platform, event_id, "duplicate event ignored");
                return Ok(Handled::Duplicate);
            }
        }
        let (catalog, parser) = self.parser();
        if let Some(thread) = &msg.conversation.thread {
            let conv = &msg.conversation;
            let proposal = self
                .inner
                .db
                .requests()
                .proposal_in_thread(conv.platform.as_str(), &conv.channel, thread)
                .await?;
            if let Some(req) = proposal {
                if let Some(handled) = self.follow_up(&msg, req, &catalog, &parser).await? {
                    return Ok(handled);
                }
            }
        }
        let understood = match &self.inner.settings.understander {
            Some(u) => u.understand(&parser, &catalog, &msg.text).await,
            None => Understanding::by_rules(&parser, &msg.text),
        };
        tracing::debug!(
            path = understood.path.as_str(),
            latency_ms = understood.latency.as_millis() as u64,
            llm_calls = understood.llm_calls,
            action = %understood.action.kind(),
            "understood a message"
        );
        let action = understood.action.clone();
        let conv = &msg.conversation;
        // "what's deployed in staging?": no service, so no `status` in the
        // contract's sense, but a fair question with an answer.
        if matches!(&action, Action::Ask { .. })
            || matches!(&action, Action::Clarify { missing, .. } if missing.contains(&Field::Service))
        {
            if let Some(env) = chatter::environment_overview(&catalog, &msg.text) {
                // Status data, so for people the catalog knows (see below).
                let reply = if !self.may_read(&msg.user) {
                    messages::unknown_user_reads(&msg.user.id, &catalog)
                } else {
                    self.environment_overview(&catalog, env).await
                };
                self.reply(conv, &reply).await?;
                return Ok(Handled::Replied);
            }
        }
        let reply = match &action {
            // Greetings and thanks addressed to Paver get one line; the
            // same words in a request's thread are left alone.
            Action::Nothing => match chatter::small_talk(&msg.text) {
                Some(talk) if conv.thread.is_none() => messages::small_talk(talk, &catalog),
                _ => return Ok(Handled::Ignored),
            },
            Action::Help => messages::help(),
            Action::Ask { question } => messages::ask(question, &catalog),
            Action::Clarify {
                missing,
                candidates,
                intent,
            } if candidates.is_empty() && missing.contains(&Field::Service) => {
                let near = chatter::closest_services(&catalog, &msg.text, 3);
                messages::clarify(missing, &near, *intent)
            }
            Action::Clarify {
                missing,
                candidates,
                intent,
            } => messages::clarify(missing, candidates, *intent),
            // Ownership and status are for people the catalog knows, unless
            // `policy.unknown_users = "read"`.
            Action::WhoOwns { .. } | Action::Scorecard { .. } | Action::Status { .. }
                if !self.may_read(&msg.user) =>
            {
                messages::unknown_user_reads(&msg.user.id, &catalog)
            }
            Action::WhoOwns { service } => messages::who_owns(&catalog, service),
            Action::Scorecard { target } => messages::scorecard(&catalog, target),
            Action::Status {
                service,
                environment,
            } => messages::status(
                service,
                self.inner.driver.status(service, *environment).await,
            ),
            _ => {
                let handled = self.propose(&msg, action, &catalog).await?;
                if let Handled::Proposed(id) = &handled {
                    self.record_nlu(id, &understood).await?;
                }
                return Ok(handled);
            }
        };
        self.reply(conv, &reply).await?;
        Ok(Handled::Replied)
    }

    /// Ownership and status data are for people the catalog knows, unless
    /// `policy.unknown_users = "read"`.
    fn may_read(&self, user: &ChatUser) -> bool {
        user.catalog.is_some() || self.inner.policy.unknown_users == policy::UnknownUsers::Read
    }

    async fn record_nlu(&self, id: &str, u: &Understanding) -> Result<(), EngineError> {
        let asked = u.llm_calls > 0;
        let record = NluRecord {
            path: u.path.as_str().to_owned(),
            latency_ms: u.latency.as_millis() as i64,
            llm_calls: u.llm_calls as i64,
            prompt_tokens: asked.then_some(u.usage.prompt_tokens as i64),
            completion_tokens: asked.then_some(u.usage.completion_tokens as i64),
            model: u.model.clone(),
            prompt_version: u.prompt_version.clone(),
        };
        self.inner.db.requests().record_nlu(id, &record).await?;
        Ok(())
    }

    // ----- follow-ups -------------------------------------------------------

    /// A message in the thread of a proposal: a cancel, an amendment, or
    /// (`None`) an ordinary message after all. Amendments are applied in
    /// place: the stored action, its hash, the policy notes and the nonce are
    /// replaced (an `amend` audit row keeps the old and new), so the card is
    /// updated where it is, its old buttons stop working, and the requester
    /// must confirm again. Only the requester may amend or cancel.
    async fn follow_up(
        &self,
        msg: &Inbound,
        req: Request,
        catalog: &Catalog,
        parser: &RulesParser,
    ) -> Result<Option<Handled>, EngineError> {
        let t0 = std::time::Instant::now();
        let user = &msg.user;
        let conv = &msg.conversation;
        let parsed = parser.parse(&msg.text);
        let mut reading = followup::follow_up(parser, &req.action, &msg.text);
        // A whole request of its own (another service, or a read) is not a
        // follow-up; nor is chit-chat. The same service asked for afresh
        // replaces the proposal.
        let kind = parsed.action.kind();
        if parsed.sure && kind != ActionKind::Ask && reading != FollowUp::Cancel {
            let other_service = parsed
                .action
                .service()
                .is_some_and(|s| Some(s) != req.action.service());
            if !kind.is_mutating() || other_service {
                return Ok(None);
            }
            reading = FollowUp::Amend(parsed.action.clone());
        }
        let (action, understood) = match reading {
            FollowUp::Cancel => {
                if !Self::is_requester(user, &req) {
                    self.only_requester(user, conv, &req, "change").await?;
                    return Ok(Some(Handled::Replied));
                }
                let Some(cancelled) = self
                    .cancel_as(user, conv, &req, "cancelled in the thread")
                    .await?
                else {
                    return Ok(Some(Handled::Replied));
                };
                self.in_thread(
                    &cancelled,
                    &messages::notice("Cancelled: nothing was changed."),
                )
                .await?;
                return Ok(Some(Handled::Replied));
            }
            FollowUp::Amend(a) => (a, Understanding::rules(parsed.action.clone(), t0.elapsed())),
            FollowUp::Unclear => match &self.inner.settings.understander {
                Some(u) if Self::is_requester(user, &req) => {
                    let understood = u.amend(parser, catalog, &req.action, &msg.text).await;
                    if understood.path == NluPath::Llm && understood.action.kind().is_mutating() {
                        (understood.action.clone(), understood)
                    } else if let Action::Clarify {
                        missing,
                        candidates,
                        intent,
                    } = &understood.action
                    {
                        self.in_thread(&req, &messages::clarify(missing, candidates, *intent))
                            .await?;
                        return Ok(Some(Handled::Replied));
                    } else {
                        return self.not_a_change(msg, &req, &parsed).await;
                    }
                }
                _ => return self.not_a_change(msg, &req, &parsed).await,
            },
        };
        if !Self::is_requester(user, &req) {
            self.only_requester(user, conv, &req, "change").await?;
            return Ok(Some(Handled::Replied));
        }
        if action == req.action {
            self.in_thread(
                &req,
                &messages::notice(
                    "That is what the request already says: confirm it on the card to go ahead.",
                ),
            )
            .await?;
            return Ok(Some(Handled::Replied));
        }
        let mut understood = understood;
        understood.action = action.clone();
        understood.latency = t0.elapsed();
        self.amend(msg, &req, action, catalog, &understood)
            .await
            .map(Some)
    }

    /// A reply in a proposal's thread that changes nothing the rules (or the
    /// LLM) could see: a hint, or ordinary handling when it is not a request.
    async fn not_a_change(
        &self,
        msg: &Inbound,
        req: &Request,
        parsed: &crate::nlu::Parsed,
    ) -> Result<Option<Handled>, EngineError> {
        if !Self::is_requester(&msg.user, req) || parsed.action == Action::Nothing {
            return Ok(None);
        }
        self.in_thread(
            req,
            &messages::notice(
                "I could not tell what to change. Say, for example, \"make it production instead\", \"also add redis\", \"use 1.5.0\", \"5 replicas\" or \"cancel\"; or use the buttons on the card.",
            ),
        )
        .await?;
        Ok(Some(Handled::Replied))
    }

    async fn amend(
        &self,
        msg: &Inbound,
        req: &Request,
        action: Action,
        catalog: &Catalog,
        understood: &Understanding,
    ) -> Result<Handled, EngineError> {
        let user = &msg.user;
        let ctx = self.policy_context(&action, catalog).await;
        let decision = policy::evaluate(
            &self.inner.policy,
            catalog,
            user.catalog.as_ref(),
            &action,
            &ctx,
        );
        // The amended action is checked against the target like a new one.
        let (notes, first) = self.card_notes(&action, &decision).await;
        let store = self.inner.db.requests();
        let amended = store
            .amend(
                &req.id,
                &action,
                &policy::action_hash(&action),
                &notes,
                first.as_ref(),
                &user.audit_name(),
                &user.chat_label(),
                &format!("amended in the thread ({})", understood.path.as_str()),
            )
            .await?;
        let Some(amended) = amended else {
            let now = store.get(&req.id).await?;
            self.whisper(
                user,
                &msg.conversation,
                &messages::notice(format!(
                    "Too late to change it: this request is already {}.",
                    now.state.as_str().replace('_', " ")
                )),
            )
            .await?;
            return Ok(Handled::Replied);
        };
        self.record_nlu(&amended.id, understood).await?;
        if let Decision::Deny { rule, reason } = decision {
            let out = store
                .transition(
                    &amended.id,
                    Transition::Deny,
                    "policy",
                    "policy",
                    &format!("{rule}: {reason}"),
                    Updates::default(),
                )
                .await?;
            self.update_card(out.request(), None).await?;
            self.in_thread(out.request(), &messages::denied(&reason))
                .await?;
            return Ok(Handled::Proposed(amended.id));
        }
        self.update_card(&amended, None).await?;
        self.in_thread(
            &amended,
            &messages::notice(format!(
                "Updated: {}. Check the card and confirm again.",
                messages::describe(&amended.action)
            )),
        )
        .await?;
        Ok(Handled::Proposed(amended.id))
    }

    async fn propose(
        &self,
        msg: &Inbound,
        action: Action,
        catalog: &Catalog,
    ) -> Result<Handled, EngineError> {
        let user = &msg.user;
        if user.catalog.is_none() && !self.inner.settings.unknown_users_may_request {
            self.reply(&msg.conversation, &messages::unknown_user(&user.id))
                .await?;
            return Ok(Handled::Replied);
        }
        let ctx = self.policy_context(&action, catalog).await;
        let decision = policy::evaluate(
            &self.inner.policy,
            catalog,
            user.catalog.as_ref(),
            &action,
            &ctx,
        );
        let (notes, first) = self.card_notes(&action, &decision).await;
        let req = self
            .inner
            .db
            .requests()
            .insert(
                NewRequest {
                    action_hash: policy::action_hash(&action),
                    action,
                    requester: user.audit_name(),
                    requester_chat_id: user.id.clone(),
                    platform: msg.conversation.platform.as_str().into(),
                    channel: msg.conversation.channel.clone(),
                    thread: msg.conversation.thread.clone(),
                    notes,
                    first,
                },
                &user.audit_name(),
                &user.chat_label(),
            )
            .await?;
        let req = match decision {
            Decision::Deny { rule, reason } => {
                let out = self
                    .inner
                    .db
                    .requests()
                    .transition(
                        &req.id,
                        Transition::Deny,
                        "policy",
                        "policy",
                        &format!("{rule}: {reason}"),
                        Updates::default(),
                    )
                    .await?;
                self.post_card(out.request()).await?;
                self.in_thread(out.request(), &messages::denied(&reason))
                    .await?;
                return Ok(Handled::Proposed(req.id));
            }
            _ => req,
        };
        self.post_card(&req).await?;
        Ok(Handled::Proposed(req.id))
    }

    /// What runs in one environment, service by service (at most 50, in
    /// catalog order, read concurrently from the driver).
    async fn environment_overview(&self, catalog: &Catalog, env: Environment) -> Message {
        let services: Vec<_> = catalog
            .components()
            .take(50)
            .map(|c| c.name.clone())
            .collect();
        let reads = services
            .iter()
            .map(|s| self.inner.driver.status(s, Some(env)));
        let results = futures_util::future::join_all(reads).await;
        messages::environment_overview(env, services.into_iter().zip(results).collect())
    }

    /// What the target must have before `action` can succeed, when the
    /// driver says it lacks it: an environment that does not exist yet is
    /// created first. `None` when all is there, or the driver cannot tell.
    async fn precondition(&self, action: &Action) -> Option<Action> {
        let resources = match action {
            Action::Deploy { .. }
            | Action::Rollback { .. }
            | Action::Scale { .. }
            | Action::Restart { .. } => Vec::new(),
            // Adding to an environment that does not exist: create it with them.
            Action::AddResource { resources, .. } => resources.clone(),
            _ => return None,
        };
        let (service, environment) = (action.service()?, action.environment()?);
        match self.inner.driver.status(service, Some(environment)).await {
            Ok(envs) if !envs.iter().any(|e| e.environment == environment) => {
                Some(Action::CreateEnvironment {
                    service: service.clone(),
                    environment,
                    resources,
                })
            }
            _ => None,
        }
    }

    /// The card's notes for `action` under policy's `decision`, led by what
    /// the target lacks (checked now, not after an approval), and that
    /// missing action itself.
    async fn card_notes(
        &self,
        action: &Action,
        decision: &Decision,
    ) -> (Vec<String>, Option<Action>) {
        let (mut notes, first) = match decision {
            Decision::Allow { notes } | Decision::NeedsApproval { notes, .. } => {
                (notes.clone(), self.precondition(action).await)
            }
            Decision::Deny { .. } => (Vec::new(), None),
        };
        if let Some(f) = &first {
            notes.insert(0, messages::first_note(action, f));
        }
        (notes, first)
    }

    /// "Create it first": proposes what the request needs first, in the same
    /// thread, and cancels the request it was for (ask again once done).
    async fn create_first(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), EngineError> {
        if !Self::is_requester(user, &req) {
            return self.only_requester(user, conv, &req, "change").await;
        }
        let Some(first) = req.first.clone() else {
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice("Nothing needs to happen first."),
                )
                .await;
        };
        let Some(cancelled) = self
            .cancel_as(user, conv, &req, "replaced by what it needs first")
            .await?
        else {
            return Ok(());
        };
        let catalog = self.inner.catalog.current();
        let msg = Inbound {
            event_id: None,
            user: user.clone(),
            conversation: Conversation {
                platform: conv.platform,
                channel: req.channel.clone(),
                thread: req.thread.clone(),
            },
            text: String::new(),
        };
        self.in_thread(&cancelled, &messages::first_proposed(&req.action, &first))
            .await?;
        self.propose(&msg, first, &catalog).await.map(|_| ())
    }

    /// Facts for policy that live outside the action.
    async fn policy_context(&self, action: &Action, catalog: &Catalog) -> PolicyContext {
        let mut ctx = PolicyContext::default();
        if let Action::CreateEnvironment {
            service,
            environment: Environment::Preview,
            ..
        } = action
        {
            if let Some(team) = catalog
                .component(service.as_str())
                .and_then(|c| c.owner.clone())
            {
                for c in catalog
                    .components()
                    .filter(|c| c.owner.as_ref() == Some(&team))
                {
                    if let Ok(envs) = self
                        .inner
                        .driver
                        .status(&c.name, Some(Environment::Preview))
                        .await
                    {
                        ctx.active_previews_for_team += envs.len() as u32;
                    }
                }
            }
        }
        ctx
    }

    // ----- buttons ----------------------------------------------------------

    /// A button press. The payload names only the request; the action is
    /// read back from storage.
    pub async fn handle_button(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &str,
    ) -> Result<(), EngineError> {
        let payload = match ButtonPayload::parse(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(user = %user.chat_label(), error = %e, "unknown button payload");
                return self
                    .whisper(
                        user,
                        conv,
                        &messages::notice("That button is not one of mine."),
                    )
                    .await;
            }
        };
        let Some(req) = self.inner.db.requests().find(&payload.request_id).await? else {
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice(format!("I have no request {}.", payload.request_id)),
                )
                .await;
        };
        if req.nonce != payload.nonce {
            tracing::warn!(user = %user.chat_label(), request = %req.id, "button with a wrong nonce");
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice(
                        "That button does not match the request; use the buttons on its card.",
                    ),
                )
                .await;
        }
        let conv = Conversation {
            thread: conv.thread.clone().or(req.thread.clone()),
            ..conv.clone()
        };
        match payload.op {
            ButtonOp::Confirm => self.confirm(user, &conv, req).await,
            ButtonOp::Cancel => self.cancel(user, &conv, req).await,
            ButtonOp::Approve => self.decide(user, &conv, req, true).await,
            ButtonOp::Deny => self.decide(user, &conv, req, false).await,
            ButtonOp::Retry => self.retry(user, &conv, req).await,
            ButtonOp::First => self.create_first(user, &conv, req).await,
        }
    }

    fn is_requester(user: &ChatUser, req: &Request) -> bool {
        user.audit_name() == req.requester
    }

    /// Tells `user`, privately, that only the requester may `verb` it.
    async fn only_requester(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: &Request,
        verb: &str,
    ) -> Result<(), EngineError> {
        self.whisper(
            user,
            conv,
            &messages::notice(format!("Only {} can {verb} this request.", req.requester)),
        )
        .await
    }

    async fn already(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        outcome: &TransitionOutcome,
    ) -> Result<(), EngineError> {
        let state = outcome.request().state;
        self.whisper(
            user,
            conv,
            &messages::notice(format!(
                "Nothing to do: this request is already {}.",
                state.as_str().replace('_', " ")
            )),
        )
        .await
    }

    async fn confirm(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), EngineError> {
        if !Self::is_requester(user, &req) {
            return self.only_requester(user, conv, &req, "confirm").await;
        }
        if let Some(first) = &req.first {
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice(messages::first_note(&req.action, first)),
                )
                .await;
        }
        let store = self.inner.db.requests();
        let (actor, chat) = (user.audit_name(), user.chat_label());
        // Conditional on the nonce the pressed card carried: an amendment
        // that lands first changes the nonce, and this press is then stale
        // however close the two are.
        let out = store
            .transition_guarded(
                &req.id,
                Transition::Confirm,
                Guard::nonce(&req.nonce).and_action(&req.action_hash),
                &actor,
                &chat,
                "",
                Updates::default(),
            )
            .await?;
        match out {
            TransitionOutcome::Applied(confirmed) => {
                self.settle_confirmed(confirmed, user.catalog.clone(), Settle::Confirm)
                    .await
            }
            TransitionOutcome::Stale(_) => self.stale_card(user, conv).await,
            unchanged => self.already(user, conv, &unchanged).await,
        }
    }

    async fn stale_card(&self, user: &ChatUser, conv: &Conversation) -> Result<(), EngineError> {
        self.whisper(
            user,
            conv,
            &messages::notice(
                "That card is out of date: the request changed after it was shown. Check the updated card and use its buttons.",
            ),
        )
        .await
    }

    /// Policy's decision for a request that is `confirmed` (just confirmed,
    /// retried, or left there by a crash), taken on the action exactly as
    /// the confirm transaction wrote it; every transition out of here is
    /// guarded by that action's hash.
    async fn settle_confirmed(
        &self,
        req: Request,
        requester: Option<UserName>,
        via: Settle,
    ) -> Result<(), EngineError> {
        let store = self.inner.db.requests();
        let hash = req.action_hash.clone();
        // Defence in depth: the stored action must hash to what was stored
        // and confirmed, or nothing about it can be trusted.
        if policy::action_hash(&req.action) != hash || req.confirmed_hash.as_deref() != Some(&hash)
        {
            tracing::error!(request = %req.id, "confirmed action does not match its hash; refusing");
            let out = store
                .transition_guarded(
                    &req.id,
                    Transition::Deny,
                    Guard::action(&hash),
                    "policy",
                    "policy",
                    "integrity: the action does not match the confirmed action",
                    Updates::default(),
                )
                .await?;
            self.update_card(out.request(), None).await?;
            return self
                .in_thread(
                    out.request(),
                    &messages::denied(
                        "the stored action does not match what was confirmed; ask again",
                    ),
                )
                .await;
        }
        // The catalog or policy may have changed since the proposal: decide now.
        let catalog = self.inner.catalog.current();
        let ctx = self.policy_context(&req.action, &catalog).await;
        let decision = policy::evaluate(
            &self.inner.policy,
            &catalog,
            requester.as_ref(),
            &req.action,
            &ctx,
        );
        let guard = Guard::action(&hash);
        match decision {
            Decision::Deny { rule, reason } => {
                let out = store
                    .transition_guarded(
                        &req.id,
                        Transition::Deny,
                        guard,
                        "policy",
                        "policy",
                        &format!("{rule}: {reason}"),
                        Updates::default(),
                    )
                    .await?;
                self.update_card(out.request(), None).await?;
                if !out.applied() {
                    return Ok(());
                }
                self.in_thread(out.request(), &messages::denied(&reason))
                    .await
            }
            Decision::NeedsApproval {
                rule, approvers, ..
            } => {
                if via == Settle::Retry {
                    if let Some(prior) = self
                        .valid_prior_approval(&req, &approvers, &catalog)
                        .await?
                    {
                        let out = store
                            .transition_guarded(
                                &req.id,
                                Transition::AutoApprove,
                                guard,
                                "policy",
                                "policy",
                                &format!(
                                    "{rule}: the approval by {} for this exact action is still valid",
                                    prior.approver
                                ),
                                Updates::default(),
                            )
                            .await?;
                        self.update_card(out.request(), None).await?;
                        if out.applied() {
                            self.execute(req.id.clone());
                        }
                        return Ok(());
                    }
                }
                let expires = now_ms() + self.inner.policy.approval_expiry().as_millis() as i64;
                let out = store
                    .transition_guarded(
                        &req.id,
                        Transition::NeedApproval,
                        guard,
                        "policy",
                        "policy",
                        &rule,
                        Updates {
                            approvers: Some(approvers),
                            approval_expires_at: Some(expires),
                            ..Updates::default()
                        },
                    )
                    .await?;
                self.update_card(out.request(), None).await?;
                if !out.applied() {
                    return Ok(());
                }
                self.in_thread(
                    out.request(),
                    &messages::approval_needed(out.request(), &rule),
                )
                .await
            }
            Decision::Allow { .. } => {
                let out = store
                    .transition_guarded(
                        &req.id,
                        Transition::AutoApprove,
                        guard,
                        "policy",
                        "policy",
                        "confirmation is enough",
                        Updates::default(),
                    )
                    .await?;
                self.update_card(out.request(), None).await?;
                if out.applied() {
                    self.execute(req.id.clone());
                }
                Ok(())
            }
        }
    }

    /// For a retry: an approval of exactly this action, younger than the
    /// approval window, by someone who may still approve it, given when the
    /// approvers were who policy names now. Anything else asks again.
    async fn valid_prior_approval(
        &self,
        req: &Request,
        approvers: &policy::Approvers,
        catalog: &Catalog,
    ) -> Result<Option<Approval>, EngineError> {
        if req.approvers.as_ref() != Some(approvers) {
            return Ok(None);
        }
        let window = self.inner.policy.approval_expiry().as_millis() as i64;
        let now = now_ms();
        let approvals = self.inner.db.requests().approvals(&req.id).await?;
        // Only the latest decision counts: a later denial is not outweighed
        // by an earlier approval.
        let Some(last) = approvals.into_iter().last() else {
            return Ok(None);
        };
        let valid = last.decision == ApprovalDecision::Approved.as_str()
            && last.action_hash == req.action_hash
            && last.at + window >= now
            && UserName::parse(&last.approver).is_ok_and(|a| {
                policy::may_approve(
                    catalog,
                    approvers,
                    &a,
                    &req.requester,
                    &req.requester_chat_id,
                )
                .is_ok()
            });
        Ok(valid.then_some(last))
    }

    async fn cancel(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), EngineError> {
        if !Self::is_requester(user, &req) {
            return self.only_requester(user, conv, &req, "cancel").await;
        }
        self.cancel_as(user, conv, &req, "").await.map(|_| ())
    }

    /// Cancels on the requester's word (the caller checked who it is):
    /// the transition, its card update, or "already …" when it no longer
    /// applies. Returns the cancelled request when it was cancelled now.
    async fn cancel_as(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: &Request,
        detail: &str,
    ) -> Result<Option<Request>, EngineError> {
        let out = self
            .inner
            .db
            .requests()
            .transition(
                &req.id,
                Transition::Cancel,
                &user.audit_name(),
                &user.chat_label(),
                detail,
                Updates::default(),
            )
            .await?;
        match out {
            TransitionOutcome::Applied(r) => {
                self.update_card(&r, None).await?;
                Ok(Some(r))
            }
            unchanged => {
                self.already(user, conv, &unchanged).await?;
                Ok(None)
            }
        }
    }

    async fn decide(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
        approve: bool,
    ) -> Result<(), EngineError> {
        if req.state != RequestState::AwaitingApproval {
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice(format!(
                        "Nothing to do: this request is {}.",
                        req.state.as_str().replace('_', " ")
                    )),
                )
                .await;
        }
        let store = self.inner.db.requests();
        if req.approval_expires_at.is_some_and(|t| t < now_ms()) {
            let out = store
                .transition(
                    &req.id,
                    Transition::Expire,
                    "policy",
                    "policy",
                    "approval window passed",
                    Updates::default(),
                )
                .await?;
            self.update_card(out.request(), None).await?;
            return self
                .whisper(
                    user,
                    conv,
                    &messages::notice(
                        "Too late: the approval window of this request has passed. Ask again.",
                    ),
                )
                .await;
        }
        let Some(approver) = user.catalog.clone() else {
            return self
                .whisper(user, conv, &messages::unknown_user(&user.id))
                .await;
        };
        let catalog = self.inner.catalog.current();
        let approvers = req.approvers.clone().unwrap_or_default();
        if let Err(why) = policy::may_approve(
            &catalog,
            &approvers,
            &approver,
            &req.requester,
            &req.requester_chat_id,
        ) {
            tracing::info!(request = %req.id, approver = %approver, "approval refused: {why}");
            return self.whisper(user, conv, &messages::notice(why)).await;
        }
        // The approval binds to the action as stored and confirmed; a
        // different action is a different request.
        if policy::action_hash(&req.action) != req.action_hash
            || req.confirmed_hash.as_deref() != Some(req.action_hash.as_str())
        {
            return self.whisper(user, conv, &messages::notice("This request's action changed since it was confirmed; it must be proposed and approved again.")).await;
        }
        let (t, decision) = if approve {
            (Transition::Approve, ApprovalDecision::Approved)
        } else {
            (Transition::Deny, ApprovalDecision::Denied)
        };
        // Conditional on the card's nonce and the action the approver saw;
        // the approval row is written in the same transaction.
        let out = store
            .transition_guarded(
                &req.id,
                t,
                Guard::nonce(&req.nonce).and_action(&req.action_hash),
                approver.as_str(),
                &user.chat_label(),
                decision.as_str(),
                Updates {
                    approver: approve.then(|| approver.to_string()),
                    decision: Some(NewDecision {
                        approver: approver.to_string(),
                        decision,
                    }),
                    ..Updates::default()
                },
            )
            .await?;
        match &out {
            TransitionOutcome::Applied(_) => {}
            TransitionOutcome::Stale(_) => return self.stale_card(user, conv).await,
            TransitionOutcome::Unchanged(_) => return self.already(user, conv, &out).await,
        }
        self.update_card(out.request(), None).await?;
        if approve {
            self.execute(req.id.clone());
            Ok(())
        } else {
            self.in_thread(
                out.request(),
                &messages::notice(format!("{approver} denied this request.")),
            )
            .await
        }
    }

    /// A failed request run again on a human's press. It goes back to
    /// `confirmed` and policy decides again, as on a first confirmation: a
    /// run that needs an approval reuses one only while it is valid for
    /// exactly this action and these approvers.
    async fn retry(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), EngineError> {
        let allowed = Self::is_requester(user, &req)
            || req.approver.as_deref() == Some(user.audit_name().as_str());
        if !allowed {
            return self.only_requester(user, conv, &req, "retry").await;
        }
        let out = self
            .inner
            .db
            .requests()
            .transition_guarded(
                &req.id,
                Transition::Retry,
                Guard::nonce(&req.nonce).and_action(&req.action_hash),
                &user.audit_name(),
                &user.chat_label(),
                "",
                Updates::default(),
            )
            .await?;
        match out {
            TransitionOutcome::Applied(again) => {
                let requester = self.requester_identity(&again);
                self.settle_confirmed(again, requester, Settle::Retry).await
            }
            TransitionOutcome::Stale(_) => self.stale_card(user, conv).await,
            unchanged => self.already(user, conv, &unchanged).await,
        }
    }

    /// The requester as the catalog knows them now (`None` when it does
    /// not), for decisions taken after the requester's own press.
    fn requester_identity(&self, req: &Request) -> Option<UserName> {
        let catalog = self.inner.catalog.current();
        UserName::parse(&req.requester)
            .ok()
            .filter(|u| catalog.user(u.as_str()).is_some())
    }

    // ----- execution --------------------------------------------------------

    /// Queues an approved request as a durable job and wakes a worker.
    pub fn execute(&self, id: String) {
        self.start_workers();
        let me = self.clone();
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Err(e) = me.enqueue_job(&id).await {
                tracing::error!(request = %id, error = %e, "queueing the job failed");
            }
            me.inner.running.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Starts this process's executor workers (once). `App::start` calls it;
    /// `execute` and `recover` do too, so an engine always has workers.
    pub fn start_workers(&self) {
        let me = self.clone();
        self.inner
            .executor
            .start(move || Arc::new(me) as Arc<dyn JobRunner>);
    }

    /// The executor (for shutdown, and for tests that simulate a crash).
    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    async fn enqueue_job(&self, id: &str) -> Result<(), EngineError> {
        let req = self.inner.db.requests().get(id).await?;
        let job = self
            .inner
            .db
            .jobs()
            .enqueue(&req.id, &req.action_hash)
            .await?;
        tracing::debug!(request = %id, job = %job.id, "job queued");
        self.inner.executor.wake();
        Ok(())
    }

    /// One claimed job: start the request, run the driver with progress on
    /// the card, then succeed, reschedule (transient) or fail it.
    async fn run_job(&self, claimed: Claimed) -> Result<(), EngineError> {
        let Claimed { job: row, resumed } = claimed;
        let owner = self.inner.executor.owner().to_owned();
        let jobs = self.inner.db.jobs();
        let store = self.inner.db.requests();
        let Some(mut req) = store.find(&row.request_id).await? else {
            jobs.finish(
                &row.id,
                &owner,
                JobStatus::Failed,
                Some("request not found"),
            )
            .await?;
            return Ok(());
        };
        if req.state == RequestState::Approved {
            let out = store
                .transition(
                    &req.id,
                    Transition::Start,
                    "executor",
                    "paver",
                    self.inner.driver.name(),
                    Updates::default(),
                )
                .await?;
            req = out.request().clone();
        }
        match req.state {
            RequestState::Executing => {}
            // Finished before a crash could finish the job.
            RequestState::Succeeded => {
                jobs.finish(&row.id, &owner, JobStatus::Succeeded, None)
                    .await?;
                return Ok(());
            }
            other => {
                let why = format!("the request is {other}");
                jobs.finish(&row.id, &owner, JobStatus::Failed, Some(&why))
                    .await?;
                return Ok(());
            }
        }
        let attempt = row.attempts.max(1) as u32;
        let max = self.inner.settings.attempts.max(1);
        // Why not to run at all; a retry helps with the first two (the
        // target was checked, the trouble passed), never with the others.
        let give_up = if resumed && !self.inner.driver.resumable() {
            Some(DriverError::Abandoned(
                "Paver restarted while this was running; check the target system, then press Retry"
                    .to_owned(),
            ))
        } else if attempt > max {
            Some(DriverError::Abandoned(format!(
                "gave up after {max} attempts: {}",
                row.last_error.as_deref().unwrap_or("interrupted")
            )))
        } else if let Some(why) = Self::action_mismatch(&req, &row) {
            tracing::error!(request = %req.id, job = %row.id, "{why}; refusing to run");
            Some(DriverError::InvalidRequest(why))
        } else {
            self.approval_missing(&req)
                .await?
                .map(DriverError::InvalidRequest)
        };
        if let Some(e) = give_up {
            return self.fail_job(&req, &row.id, &e, false).await;
        }
        self.update_card(&req, None).await?;
        let expires_at = match &req.action {
            Action::CreateEnvironment {
                environment: Environment::Preview,
                ..
            } => Some(row.created_at / 1000 + self.inner.policy.preview_ttl().as_secs() as i64),
            _ => None,
        };
        let job = Job {
            request_id: req.id.clone(),
            idempotency_key: row.idempotency_key.clone(),
            action: req.action.clone(),
            requester: req.requester.clone(),
            approver: req.approver.clone(),
            expires_at,
            job_id: row.id.clone(),
            attempt,
            resumed,
            state: JobState::new(Arc::new(DbJobState {
                db: self.inner.db.clone(),
                job_id: row.id.clone(),
            })),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let progress = move |line: &str| {
            let _ = tx.send(line.to_owned());
        };
        let card_updates = {
            let me = self.clone();
            let req = req.clone();
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    if let Err(e) = me.update_card(&req, Some(&line)).await {
                        tracing::warn!(error = %e, "progress update lost");
                    }
                }
            })
        };
        let result = self.inner.driver.execute(&job, &progress).await;
        drop(progress);
        let _ = card_updates.await;
        match result {
            Ok(outcome) => {
                let out = store
                    .transition(
                        &req.id,
                        Transition::Succeed,
                        "executor",
                        "paver",
                        &outcome.summary,
                        Updates {
                            result_url: outcome.url.clone(),
                            expires_at,
                            ..Updates::default()
                        },
                    )
                    .await?;
                self.update_card(out.request(), None).await?;
                self.in_thread(out.request(), &messages::succeeded(out.request(), &outcome))
                    .await?;
                jobs.finish(&row.id, &owner, JobStatus::Succeeded, None)
                    .await?;
                Ok(())
            }
            Err(e) if e.is_transient() && attempt < max => {
                let delay = self.inner.executor.backoff(attempt);
                tracing::warn!(request = %req.id, job = %row.id, attempt, error = %e, ?delay, "transient driver failure; retrying");
                self.update_card(
                    &req,
                    Some(&format!(
                        "attempt {attempt} of {max} failed ({e}); retrying in {}",
                        executor::human(delay)
                    )),
                )
                .await?;
                jobs.reschedule(&row.id, &owner, delay.as_millis() as i64, &e.to_string())
                    .await?;
                Ok(())
            }
            Err(e) => {
                let exhausted = e.is_transient();
                self.fail_job(&req, &row.id, &e, exhausted).await
            }
        }
    }

    /// Fails the request (message in the thread, Retry on the card) and its job.
    async fn fail_job(
        &self,
        req: &Request,
        job_id: &str,
        e: &DriverError,
        exhausted: bool,
    ) -> Result<(), EngineError> {
        let text = if exhausted {
            format!(
                "{e} (gave up after {} attempts)",
                self.inner.settings.attempts.max(1)
            )
        } else {
            e.to_string()
        };
        let out = self
            .inner
            .db
            .requests()
            .transition(
                &req.id,
                Transition::Fail,
                "executor",
                "paver",
                &text,
                Updates {
                    error: Some(text.clone()),
                    retryable: Some(e.retryable()),
                    ..Updates::default()
                },
            )
            .await?;
        self.update_card(out.request(), None).await?;
        if out.applied() {
            self.in_thread(out.request(), &messages::failed(out.request(), &text))
                .await?;
        }
        self.inner
            .db
            .jobs()
            .finish(
                job_id,
                self.inner.executor.owner(),
                JobStatus::Failed,
                Some(&text),
            )
            .await?;
        Ok(())
    }

    /// The executor runs only the action that was confirmed (and queued):
    /// the stored action must hash to the stored hash, which must be the
    /// hash the confirm press bound and the one the job was queued with.
    fn action_mismatch(req: &Request, row: &JobRow) -> Option<String> {
        let hash = policy::action_hash(&req.action);
        if hash != req.action_hash {
            return Some("the stored action does not match its recorded hash".into());
        }
        if req.confirmed_hash.as_deref() != Some(hash.as_str()) {
            return Some("the action differs from the one that was confirmed".into());
        }
        if idempotency_key(&req.id, &hash, row.generation) != row.idempotency_key {
            return Some("the action differs from the one that was queued".into());
        }
        None
    }

    /// Defence in depth: a request that policy sent to approvers runs only
    /// with an approval recorded for exactly this action.
    async fn approval_missing(&self, req: &Request) -> Result<Option<String>, EngineError> {
        if req.approvers.is_none() {
            return Ok(None);
        }
        let approvals = self.inner.db.requests().approvals(&req.id).await?;
        // The latest decision counts (a denial after an approval stands),
        // and it is never the requester's own, under any of their identities.
        let catalog = self.inner.catalog.current();
        let ok = approvals.last().is_some_and(|a| {
            a.decision == ApprovalDecision::Approved.as_str()
                && a.action_hash == req.action_hash
                && UserName::parse(&a.approver).is_ok_and(|approver| {
                    !policy::same_person(
                        &catalog,
                        &approver,
                        &req.requester,
                        &req.requester_chat_id,
                    )
                })
        });
        Ok((!ok).then(|| "no valid approval is recorded for this exact action".to_owned()))
    }

    // ----- housekeeping -----------------------------------------------------

    /// At start: nothing left `executing` or `approved` is dropped. Queued
    /// and interrupted jobs are in the job table and the workers take them
    /// (an interrupted one once its lease runs out); an approved request
    /// without a job (a crash between approval and queueing) is queued.
    pub async fn recover(&self) -> Result<(), EngineError> {
        self.start_workers();
        let store = self.inner.db.requests();
        let jobs = self.inner.db.jobs();
        for req in store.in_state(RequestState::Executing).await? {
            if jobs.live_for(&req.id).await?.is_some() {
                continue;
            }
            if self.inner.driver.resumable() {
                tracing::info!(request = %req.id, "resuming a request interrupted by a restart");
                self.enqueue_job(&req.id).await?;
            } else {
                let reason = "Paver restarted while this was running; check the target system, then press Retry";
                let out = store
                    .transition(
                        &req.id,
                        Transition::Fail,
                        "paver",
                        "paver",
                        reason,
                        Updates {
                            error: Some(reason.into()),
                            ..Updates::default()
                        },
                    )
                    .await?;
                self.update_card(out.request(), None).await?;
            }
        }
        for req in store.in_state(RequestState::Approved).await? {
            if jobs.live_for(&req.id).await?.is_none() {
                self.enqueue_job(&req.id).await?;
            }
        }
        // A crash between the confirm press and policy's decision left these
        // half-way: the press was recorded, so decide now (never run them
        // without policy).
        self.settle_left_confirmed(0).await?;
        self.inner.executor.wake();
        self.sweep().await
    }

    /// Expires approvals and proposals nobody acted on.
    pub async fn sweep(&self) -> Result<(), EngineError> {
        let store = self.inner.db.requests();
        let now = now_ms();
        for req in store.in_state(RequestState::AwaitingApproval).await? {
            if req.approval_expires_at.is_some_and(|t| t < now) {
                let out = store
                    .transition(
                        &req.id,
                        Transition::Expire,
                        "paver",
                        "paver",
                        "approval window passed",
                        Updates::default(),
                    )
                    .await?;
                if out.applied() {
                    self.update_card(out.request(), None).await?;
                    self.in_thread(out.request(), &messages::notice("Nobody approved this in time, so it expired. Ask again if it is still needed.")).await?;
                }
            }
        }
        // Left `confirmed` by an error between the press and policy's
        // decision (the process lived on): decide now.
        self.settle_left_confirmed(60_000).await?;
        // A failed request can be retried for a while, not for ever: its
        // Retry button would otherwise outlive everything it was decided on.
        let failed_ttl = self.inner.policy.failed_expiry().as_millis() as i64;
        for req in store.in_state(RequestState::Failed).await? {
            if req.updated_at + failed_ttl < now {
                let out = store
                    .transition(
                        &req.id,
                        Transition::Expire,
                        "paver",
                        "paver",
                        "failed and not retried in time",
                        Updates {
                            // Kept: the card still says what went wrong.
                            error: req.error.clone(),
                            ..Updates::default()
                        },
                    )
                    .await?;
                if out.applied() {
                    self.update_card(out.request(), None).await?;
                }
            }
        }
        let ttl = self.inner.settings.proposal_ttl.as_millis() as i64;
        for req in store.in_state(RequestState::Proposed).await? {
            if req.created_at + ttl < now {
                let out = store
                    .transition(
                        &req.id,
                        Transition::Expire,
                        "paver",
                        "paver",
                        "never confirmed",
                        Updates::default(),
                    )
                    .await?;
                if out.applied() {
                    self.update_card(out.request(), None).await?;
                }
            }
        }
        Ok(())
    }

    /// Decides requests that have been `confirmed` for longer than
    /// `older_than_ms` without a decision. Guarded transitions make a race
    /// with a live confirmation (or another replica) harmless.
    async fn settle_left_confirmed(&self, older_than_ms: i64) -> Result<(), EngineError> {
        let now = now_ms();
        for req in self
            .inner
            .db
            .requests()
            .in_state(RequestState::Confirmed)
            .await?
        {
            if req.updated_at + older_than_ms <= now {
                tracing::info!(request = %req.id, "deciding a request left confirmed");
                let requester = self.requester_identity(&req);
                self.settle_confirmed(req, requester, Settle::Recovery)
                    .await?;
            }
        }
        Ok(())
    }

    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = me.sweep().await {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        })
    }

    /// Runs work an adapter acknowledged before doing it, counted as running
    /// so [`Engine::wait_idle`] waits for it too. Refuses (before the adapter
    /// acknowledges) when `max_in_flight` events are already being handled.
    pub fn track<F>(&self, work: F) -> Result<(), Overloaded>
    where
        F: std::future::Future<Output = Result<(), EngineError>> + Send + 'static,
    {
        let previous = self.inner.running.fetch_add(1, Ordering::SeqCst);
        if previous >= self.inner.settings.max_in_flight {
            self.inner.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                in_flight = previous,
                "too many chat events in flight; asking for redelivery"
            );
            return Err(Overloaded);
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(error = %e, "handling a chat event failed");
            }
            me.inner.running.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }

    /// Acknowledged events (and queueing work) being handled right now.
    pub fn in_flight(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Whether nothing is running, no job is queued or running (a retry
    /// waiting for its backoff counts), and nothing waits to be sent.
    pub async fn is_idle(&self) -> Result<bool, EngineError> {
        Ok(self.inner.running.load(Ordering::SeqCst) == 0
            && self.inner.db.jobs().live_count().await? == 0
            && self.inner.db.outbox().pending_count().await? == 0)
    }

    /// Waits until idle, at most `limit`; true when it got there.
    pub async fn wait_idle(&self, limit: Duration) -> Result<bool, EngineError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.is_idle().await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait::async_trait]
impl JobRunner for Engine {
    async fn run(&self, claimed: Claimed) {
        let (job, request) = (claimed.job.id.clone(), claimed.job.request_id.clone());
        if let Err(e) = self.run_job(claimed).await {
            // The job keeps its lease until it runs out, then runs again.
            tracing::error!(%job, %request, error = %e, "job bookkeeping failed");
        }
    }
}

/// Whether an action is answered at once (no request, no confirmation).
pub fn is_read_only(kind: ActionKind) -> bool {
    !kind.is_mutating()
}
