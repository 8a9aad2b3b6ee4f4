//! The request flow: a mutating action proposed on a card, confirmed by its
//! requester, decided by policy (and approvers), run by a driver as a
//! durable job, and kept tidy afterwards. One file per step:
//!
//! - [`propose`]: a new request and its card (what the target lacks first).
//! - [`follow_up`]: replies in a proposal's thread (amend, cancel).
//! - [`buttons`]: presses on a card (confirm, cancel, approve, deny, retry).
//! - [`decide`]: policy's decision once a request is confirmed.
//! - [`approvals`]: approvers told where they look, and reminded.
//! - [`run`]: the job: driver, progress, success or failure.
//! - [`housekeeping`]: recovery after a restart and the periodic sweep.
//!
//! Every move of a request goes through [`Requests::settle`]: the
//! transition, its card updated in place, and what is said in its thread.

pub mod approvals;
pub mod buttons;
pub mod decide;
pub mod executor;
pub mod follow_up;
pub mod housekeeping;
pub mod propose;
pub mod run;

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::SharedCatalog;
use crate::chat::send::Sender;
use crate::chat::Message;
use crate::domain::{Actor, RequestState, Transition};
use crate::drivers::Driver;
use crate::nlu::Understander;
use crate::policy::PolicyConfig;
use crate::storage::{Db, Guard, Request, StorageError, TransitionOutcome, Updates};
use crate::util::metrics;
use crate::util::tasks::Tracker;

pub use executor::{Executor, ExecutorConfig, ExecutorSettings};

/// What the request flow is told by the config.
#[derive(Clone)]
pub struct RequestSettings {
    /// Whether chat users unknown to the catalog may request changes.
    pub unknown_users_may_request: bool,
    /// How long a proposal waits for its requester's confirmation.
    pub proposal_ttl: Duration,
    /// Attempts of a job that fails with a transient error.
    pub attempts: u32,
    /// The LLM side of understanding, for amendments it can read.
    pub understander: Option<Arc<Understander>>,
    /// Where approvers are told, and when they are reminded.
    pub approval_notices: approvals::ApprovalNoticeConfig,
    /// Scorecards, for policy's production gate (`production_min_level`).
    pub scores: Option<Arc<dyn crate::policy::Scores>>,
    /// Monthly prices: the estimate on the card and the cost limit per team.
    pub prices: crate::domain::PriceTable,
}

/// The request flow's context, shared by its handlers. Cheap to clone.
#[derive(Clone)]
pub struct Requests {
    ctx: Arc<Context>,
}

struct Context {
    db: Db,
    catalog: SharedCatalog,
    policy: PolicyConfig,
    driver: Arc<dyn Driver>,
    send: Sender,
    settings: RequestSettings,
    executor: Executor,
    /// Work started by the flow itself (queueing jobs), counted with the
    /// engine's so waiting for idle waits for it too.
    tasks: Tracker,
}

/// Options of one step beyond the transition itself.
#[derive(Default)]
pub struct Step<'a> {
    /// Apply only while the request still carries this nonce/action.
    pub guard: Guard<'a>,
    pub updates: Updates,
    /// Said in the request's thread when the step is applied.
    pub say: Option<Message>,
    /// The card is posted for the first time rather than updated.
    pub post: bool,
}

impl Requests {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        catalog: SharedCatalog,
        policy: PolicyConfig,
        driver: Arc<dyn Driver>,
        send: Sender,
        settings: RequestSettings,
        executor: Executor,
        tasks: Tracker,
    ) -> Self {
        Requests {
            ctx: Arc::new(Context {
                db,
                catalog,
                policy,
                driver,
                send,
                settings,
                executor,
                tasks,
            }),
        }
    }

    /// The executor (for shutdown, and for tests that simulate a crash).
    pub fn executor(&self) -> &Executor {
        &self.ctx.executor
    }

    /// Moves request `id` by `t` on behalf of `by`, then shows it: the card
    /// updated in place and nothing else.
    pub async fn settle(
        &self,
        id: &str,
        t: Transition,
        by: &Actor,
        detail: &str,
    ) -> Result<TransitionOutcome, StorageError> {
        self.settle_with(id, t, by, detail, Step::default()).await
    }

    /// [`Requests::settle`] with a guard, updates and a message for the
    /// thread. The card and the message follow only an applied step: a
    /// step that did not apply was overtaken by one that shows itself.
    pub async fn settle_with(
        &self,
        id: &str,
        t: Transition,
        by: &Actor,
        detail: &str,
        step: Step<'_>,
    ) -> Result<TransitionOutcome, StorageError> {
        let out = self
            .ctx
            .db
            .requests()
            .transition_guarded(
                id,
                t,
                step.guard,
                by.name(),
                by.chat(),
                detail,
                step.updates,
            )
            .await?;
        self.observe(t, &out).await;
        if let TransitionOutcome::Applied(req) = &out {
            if step.post {
                self.ctx.send.post_card(req).await?;
            } else {
                self.ctx.send.update_card(req, None).await?;
            }
            if let Some(message) = &step.say {
                self.ctx.send.in_thread(req, message).await?;
            }
        }
        Ok(out)
    }

    /// Feeds the request metrics from a transition that applied: the state
    /// entered, the time to a URL on success, and on leaving
    /// `awaiting_approval` how long approvers took. Called after each of
    /// the flow's transitions: [`Requests::settle_with`], a press's own
    /// and the executor's start.
    async fn observe(&self, t: Transition, out: &TransitionOutcome) {
        let TransitionOutcome::Applied(req) = out else {
            return;
        };
        let action = req.action.kind().as_str();
        metrics::request_state(action, req.state.as_str());
        if req.state == RequestState::Succeeded && req.result_url.is_some() {
            metrics::request_url(action, req.updated_at - req.created_at);
        }
        if !matches!(
            t,
            Transition::Approve | Transition::Deny | Transition::Cancel | Transition::Expire
        ) {
            return;
        }
        // When approvers were asked is in the audit log (the request row
        // keeps only its latest change); read only for these rare moves.
        let events = match self.ctx.db.requests().events(&req.id).await {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(request = %req.id, error = %e, "approval wait not measured");
                return;
            }
        };
        // This move is the latest out of `awaiting_approval` into the state
        // written; the approvers were asked by the move into it before that.
        let waiting = RequestState::AwaitingApproval.as_str();
        let Some(left) = events.iter().rposition(|e| {
            e.from_state.as_deref() == Some(waiting) && e.to_state == req.state.as_str()
        }) else {
            return;
        };
        if let Some(asked) = events[..left].iter().rev().find(|e| e.to_state == waiting) {
            metrics::approval_wait(action, req.state.as_str(), events[left].at - asked.at);
        }
    }

    /// The requester as the catalog knows them now (`None` when it does
    /// not), for decisions taken after the requester's own press.
    fn requester_identity(&self, req: &Request) -> Option<crate::domain::UserName> {
        let catalog = self.ctx.catalog.current();
        crate::domain::UserName::parse(&req.requester)
            .ok()
            .filter(|u| catalog.user(u.as_str()).is_some())
    }
}
