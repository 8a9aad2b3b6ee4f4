//! A new request: policy's first look, what the target lacks, the card.

use crate::catalog::Catalog;
use crate::chat::notices::{self, RequesterOnly};
use crate::chat::send::Placeholder;
use crate::chat::{messages, ChatUser, Conversation, Handled, Inbound};
use crate::domain::{estimate, Action, Actor, Environment, MonthlyCost, Transition};
use crate::nlu::Understanding;
use crate::policy::{self, Decision, PolicyContext, TeamCost};
use crate::storage::{NewRequest, NluRecord, Request, StorageError, Stored};

use super::{Requests, Step};

impl Requests {
    /// Proposes `action` for the sender of `msg`: stored, decided by policy
    /// (a denial is shown at once), and shown on a card to confirm. With a
    /// `placeholder` (posted while the LLM read the message) the request
    /// takes its key as id and the card replaces it in place.
    pub async fn propose(
        &self,
        msg: &Inbound,
        action: Action,
        understood: Option<&Understanding>,
        catalog: &Catalog,
        placeholder: Option<&Placeholder>,
    ) -> Result<Handled, StorageError> {
        let ctx = &self.ctx;
        let user = &msg.user;
        if user.catalog.is_none() && !ctx.settings.unknown_users_may_request {
            ctx.send
                .reply_over(
                    &msg.conversation,
                    placeholder,
                    &messages::unknown_user(&user.id),
                )
                .await?;
            return Ok(Handled::Replied);
        }
        let decision = self.evaluate(user, &action, catalog).await;
        let (notes, first) = self.card_notes(&action, &decision).await;
        let cost = self.estimate(&action);
        // A proposal's card is queued with the request, in its transaction;
        // a denial's goes out with the denial, a placeholder is edited.
        let card = (placeholder.is_none() && !matches!(decision, Decision::Deny { .. }))
            .then(|| ctx.send.card_poster());
        let queues_card = card.is_some();
        let stored = ctx
            .db
            .requests()
            .insert(
                NewRequest {
                    id: placeholder.map(|p| p.key.clone()),
                    action_hash: policy::action_hash(&action),
                    action,
                    requester: user.audit_name(),
                    requester_chat_id: user.id.clone(),
                    platform: msg.conversation.platform,
                    channel: msg.conversation.channel.clone(),
                    thread: msg.conversation.thread.clone(),
                    notes,
                    first,
                    nlu: understood.map(nlu_record),
                    cost,
                },
                &user.audit_name(),
                &user.chat_label(),
                card,
            )
            .await?;
        if queues_card {
            ctx.send.queued();
        }
        let req = match stored {
            Stored::New(req) => req,
            // This event was handled before, up to storing its request (and
            // its card, queued again under the same key: not twice).
            Stored::Found(req) if queues_card => return Ok(Handled::Proposed(req.id)),
            Stored::Found(req) => return self.show_again(req, placeholder.is_some()).await,
        };
        crate::util::metrics::request_state(req.action.kind().as_str(), req.state.as_str());
        if let Decision::Deny { rule, reason } = decision {
            // Denied at once: the card is posted showing the denial.
            self.settle_with(
                &req.id,
                Transition::Deny,
                &Actor::Policy,
                &format!("{rule}: {reason}"),
                Step {
                    post: placeholder.is_none(),
                    say: Some(messages::denied(&reason)),
                    ..Step::default()
                },
            )
            .await?;
            return Ok(Handled::Proposed(req.id));
        }
        if placeholder.is_some() {
            ctx.send.update_card(&req, None).await?;
        }
        Ok(Handled::Proposed(req.id))
    }

    /// The request this chat event stored when it was handled before
    /// (`util::origin`: a crash cut that handling off and the inbox gave
    /// the event again), shown again; `None` when there is none.
    /// `placeholder`: whether the handling posts a placeholder first (asked
    /// only when there is such a request).
    pub async fn stored_before(
        &self,
        placeholder: impl FnOnce() -> bool,
    ) -> Result<Option<Handled>, StorageError> {
        let Some(id) = crate::util::origin::first_id_drawn_before("r-") else {
            return Ok(None);
        };
        match self.ctx.db.requests().find(&id).await? {
            Some(req) => {
                tracing::info!(request = %req.id, "this event was handled before, up to its request; showing its card");
                self.show_again(req, placeholder()).await.map(Some)
            }
            None => Ok(None),
        }
    }

    /// A stored request's card, shown as the request is now and nothing
    /// decided again: a post its first handling queued is not queued twice
    /// (the outbox keeps one per key), and an edit brings the placeholder it
    /// replaces up to date.
    async fn show_again(&self, req: Request, placeholder: bool) -> Result<Handled, StorageError> {
        if placeholder {
            self.ctx.send.update_card(&req, None).await?;
        } else {
            self.ctx.send.post_card(&req).await?;
        }
        Ok(Handled::Proposed(req.id))
    }

    /// Policy's decision on `action` asked by `user`, with the facts it
    /// needs from the target.
    pub(super) async fn evaluate(
        &self,
        user: &ChatUser,
        action: &Action,
        catalog: &Catalog,
    ) -> Decision {
        let ctx = self.policy_context(action, catalog).await;
        policy::evaluate(
            &self.ctx.policy,
            catalog,
            user.catalog.as_ref(),
            action,
            &ctx,
        )
    }

    /// The estimated monthly cost of what `action` creates, from `[cost]`.
    pub(super) fn estimate(&self, action: &Action) -> Option<MonthlyCost> {
        estimate(action, &self.ctx.settings.prices)
    }

    /// Records how a request's action was understood.
    pub async fn record_nlu(&self, id: &str, u: &Understanding) -> Result<(), StorageError> {
        self.ctx.db.requests().record_nlu(id, &nlu_record(u)).await
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
        match self.ctx.driver.status(service, Some(environment)).await {
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
    pub(super) async fn card_notes(
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
    pub(super) async fn create_first(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), StorageError> {
        let send = &self.ctx.send;
        if !Self::is_requester(user, &req) {
            return send
                .whisper(
                    user,
                    conv,
                    &notices::only_requester(&req.requester, RequesterOnly::Change),
                )
                .await;
        }
        let Some(first) = req.first.clone() else {
            return send.whisper(user, conv, &notices::nothing_first()).await;
        };
        let Some(cancelled) = self
            .cancel_as(user, conv, &req, "replaced by what it needs first")
            .await?
        else {
            return Ok(());
        };
        let catalog = self.ctx.catalog.current();
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
        send.in_thread(&cancelled, &messages::first_proposed(&req.action, &first))
            .await?;
        self.propose(&msg, first, None, &catalog, None)
            .await
            .map(|_| ())
    }

    /// Facts for policy that live outside the action.
    pub(super) async fn policy_context(&self, action: &Action, catalog: &Catalog) -> PolicyContext {
        let mut ctx = PolicyContext::default();
        if self.ctx.policy.gates_on_score(action) {
            if let (Some(scores), Some(service)) = (&self.ctx.settings.scores, action.service()) {
                ctx.score = scores.score(service).await;
            }
        }
        if self.ctx.policy.max_monthly_cost_per_team.is_some() {
            ctx.cost = self.team_cost(action, catalog).await;
        }
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
                        .ctx
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
}

impl Requests {
    /// For the cost limit: what `action` would cost a month and what its
    /// owning team's environments and resources cost now. `None` when the
    /// action creates nothing or its service has no owner.
    async fn team_cost(&self, action: &Action, catalog: &Catalog) -> Option<TeamCost> {
        let estimate = self.estimate(action)?;
        let team = policy::owning_team(catalog, action)?;
        let owner = |service: &str| catalog.component(service).and_then(|c| c.owner.clone());
        let current = match self.ctx.db.requests().cost_by_team(&owner).await {
            Ok(by_team) => Some(by_team.get(&team).copied().unwrap_or_default()),
            Err(e) => {
                tracing::warn!(error = %e, %team, "cannot read the team's monthly cost");
                None
            }
        };
        Some(TeamCost {
            team,
            current,
            estimate,
        })
    }
}

/// What is recorded of an understanding.
fn nlu_record(u: &Understanding) -> NluRecord {
    let asked = u.llm_calls > 0;
    NluRecord {
        path: u.path.as_str().to_owned(),
        latency_ms: u.latency.as_millis() as i64,
        llm_calls: u.llm_calls as i64,
        prompt_tokens: asked.then_some(u.usage.prompt_tokens as i64),
        completion_tokens: asked.then_some(u.usage.completion_tokens as i64),
        model: u.model.clone(),
        prompt_version: u.prompt_version.clone(),
    }
}
