//! Presses on a card. The payload names only the request and the card's
//! nonce; the action is read back from storage, and every transition is
//! conditional on what the pressed card showed.

use crate::chat::notices::{self, RequesterOnly};
use crate::chat::{messages, ButtonOp, ButtonPayload, ChatUser, Conversation};
use crate::domain::{Actor, Reason, RequestState, Transition};
use crate::policy;
use crate::storage::{
    now_ms, ApprovalDecision, Guard, NewDecision, Request, StorageError, TransitionOutcome, Updates,
};

use super::decide::Settle;
use super::{Requests, Step};

/// What an approver decided, with the reason a denial always carries.
enum Verdict {
    Approve,
    Deny(Reason),
}

impl Requests {
    /// A button press by `user` in `conv`.
    pub async fn handle_button(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &str,
    ) -> Result<(), StorageError> {
        self.press(user, Some(conv), payload, None).await
    }

    /// A press that comes with its reason: the submission of the form a
    /// press of a button that needs one opened (see
    /// [`ButtonOp::reason_ask`]). It is checked exactly as a press is.
    /// `conv` is where it was made, when the platform says; a Slack
    /// modal's submission does not, and the request's own conversation
    /// is used.
    pub async fn handle_reasoned(
        &self,
        user: &ChatUser,
        conv: Option<&Conversation>,
        payload: &str,
        reason: Reason,
    ) -> Result<(), StorageError> {
        self.press(user, conv, payload, Some(reason)).await
    }

    async fn press(
        &self,
        user: &ChatUser,
        conv: Option<&Conversation>,
        payload: &str,
        reason: Option<Reason>,
    ) -> Result<(), StorageError> {
        let send = &self.ctx.send;
        // Before the request is found, only the conversation the press
        // names is known; without one the refusal is only logged.
        let refuse = |notice| async move {
            match conv {
                Some(c) => send.whisper(user, c, &notice).await,
                None => Ok(()),
            }
        };
        let payload = match ButtonPayload::parse(payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(user = %user.chat_label(), error = %e, "unknown button payload");
                return refuse(notices::unknown_button()).await;
            }
        };
        let Some(req) = self.ctx.db.requests().find(&payload.request_id).await? else {
            return refuse(notices::no_such_request(&payload.request_id)).await;
        };
        let conv = match conv {
            Some(c) => Conversation {
                thread: c.thread.clone().or(req.thread.clone()),
                ..c.clone()
            },
            None => Conversation {
                platform: req.platform,
                channel: req.channel.clone(),
                thread: req.thread.clone(),
            },
        };
        if req.nonce != payload.nonce {
            tracing::warn!(user = %user.chat_label(), request = %req.id, "button with a wrong nonce");
            return send.whisper(user, &conv, &notices::button_mismatch()).await;
        }
        let op = payload.op;
        match op {
            ButtonOp::Confirm => self.confirm(user, &conv, req).await,
            ButtonOp::Cancel => self.cancel(user, &conv, req).await,
            ButtonOp::Approve => {
                self.approve_or_deny(user, &conv, req, Verdict::Approve)
                    .await
            }
            ButtonOp::Deny => match reason {
                Some(why) => {
                    self.approve_or_deny(user, &conv, req, Verdict::Deny(why))
                        .await
                }
                None => send.whisper(user, &conv, &notices::reason_needed(op)).await,
            },
            ButtonOp::Retry => self.retry(user, &conv, req).await,
            ButtonOp::First => self.create_first(user, &conv, req).await,
            // A digest's buttons carry a nag item's id and a docs answer's a
            // question's, never a request's: the engine sends them to the
            // scorecards and docs flows.
            ButtonOp::Snooze
            | ButtonOp::WontFix
            | ButtonOp::Recheck
            | ButtonOp::Helpful
            | ButtonOp::NotHelpful
            | ButtonOp::AskHuman
            | ButtonOp::OfficeHours => send.whisper(user, &conv, &notices::unknown_button()).await,
        }
    }

    pub(super) fn is_requester(user: &ChatUser, req: &Request) -> bool {
        user.audit_name() == req.requester
    }

    /// Whether `user` may `what` the request as its requester; if not, they
    /// are told privately who may.
    pub(super) async fn requester_may(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: &Request,
        what: RequesterOnly,
    ) -> Result<bool, StorageError> {
        if Self::is_requester(user, req) {
            return Ok(true);
        }
        let notice = notices::only_requester(&req.requester, what);
        self.ctx.send.whisper(user, conv, &notice).await?;
        Ok(false)
    }

    /// The press's own transition, conditional on the card it was made on
    /// (its nonce and action).
    async fn pressed(
        &self,
        user: &ChatUser,
        req: &Request,
        t: Transition,
    ) -> Result<TransitionOutcome, StorageError> {
        let out = self
            .ctx
            .db
            .requests()
            .transition_guarded(
                &req.id,
                t,
                Guard::nonce(&req.nonce).and_action(&req.action_hash),
                &user.audit_name(),
                &user.chat_label(),
                "",
                Updates::default(),
            )
            .await?;
        self.observe(t, &out).await;
        Ok(out)
    }

    /// Tells `user` privately what became of a press that did not apply.
    async fn not_applied(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        out: &TransitionOutcome,
    ) -> Result<(), StorageError> {
        let notice = match out {
            TransitionOutcome::Stale(_) => notices::stale_card(),
            other => notices::already(other.request().state),
        };
        self.ctx.send.whisper(user, conv, &notice).await
    }

    async fn confirm(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), StorageError> {
        if !self
            .requester_may(user, conv, &req, RequesterOnly::Confirm)
            .await?
        {
            return Ok(());
        }
        if let Some(first) = &req.first {
            let notice = messages::notice(messages::first_note(&req.action, first));
            return self.ctx.send.whisper(user, conv, &notice).await;
        }
        // Conditional on the nonce the pressed card carried: an amendment
        // that lands first changes the nonce, and this press is then stale
        // however close the two are.
        let out = self.pressed(user, &req, Transition::Confirm).await?;
        match out {
            TransitionOutcome::Applied(confirmed) => {
                self.decide(confirmed, user.catalog.clone(), Settle::Confirm)
                    .await
            }
            other => self.not_applied(user, conv, &other).await,
        }
    }

    async fn cancel(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
    ) -> Result<(), StorageError> {
        if !self
            .requester_may(user, conv, &req, RequesterOnly::Cancel)
            .await?
        {
            return Ok(());
        }
        self.cancel_as(user, conv, &req, "").await.map(|_| ())
    }

    /// Cancels on the requester's word (the caller checked who it is):
    /// the transition, its card update, or "already …" when it no longer
    /// applies. Returns the cancelled request when it was cancelled now.
    pub(super) async fn cancel_as(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: &Request,
        detail: &str,
    ) -> Result<Option<Request>, StorageError> {
        let out = self
            .settle(&req.id, Transition::Cancel, &user.actor(), detail)
            .await?;
        match out {
            TransitionOutcome::Applied(r) => Ok(Some(r)),
            other => {
                self.not_applied(user, conv, &other).await?;
                Ok(None)
            }
        }
    }

    /// An approver's press: the approval (or denial) binds to the action
    /// the card showed, and is recorded in the same transaction.
    async fn approve_or_deny(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        req: Request,
        verdict: Verdict,
    ) -> Result<(), StorageError> {
        let send = &self.ctx.send;
        if req.state != RequestState::AwaitingApproval {
            return send
                .whisper(user, conv, &notices::not_awaiting_approval(req.state))
                .await;
        }
        if req.approval_expires_at.is_some_and(|t| t < now_ms()) {
            self.settle(
                &req.id,
                Transition::Expire,
                &Actor::Policy,
                "approval window passed",
            )
            .await?;
            return send
                .whisper(user, conv, &notices::approval_window_passed())
                .await;
        }
        let Some(approver) = user.catalog.clone() else {
            return send
                .whisper(user, conv, &messages::unknown_user(&user.id))
                .await;
        };
        let catalog = self.ctx.catalog.current();
        let approvers = req.approvers.clone().unwrap_or_default();
        if let Err(why) = policy::may_approve(
            &catalog,
            &approvers,
            &approver,
            &req.requester,
            &req.requester_chat_id,
        ) {
            tracing::info!(request = %req.id, approver = %approver, "approval refused: {why}");
            return send.whisper(user, conv, &messages::notice(why)).await;
        }
        // The approval binds to the action as stored and confirmed; a
        // different action is a different request.
        if policy::action_hash(&req.action) != req.action_hash
            || req.confirmed_hash.as_deref() != Some(req.action_hash.as_str())
        {
            return send
                .whisper(user, conv, &notices::changed_since_confirmed())
                .await;
        }
        let (t, decision, reason) = match &verdict {
            Verdict::Approve => (Transition::Approve, ApprovalDecision::Approved, None),
            Verdict::Deny(why) => (Transition::Deny, ApprovalDecision::Denied, Some(why)),
        };
        let approve = matches!(verdict, Verdict::Approve);
        // The audit log keeps the reason as the approver wrote it.
        let detail = match reason {
            Some(why) => format!("{}: {why}", decision.as_str()),
            None => decision.as_str().to_owned(),
        };
        // Conditional on the card's nonce and the action the approver saw;
        // the approval row is written in the same transaction.
        let by = crate::domain::Actor::Person {
            name: approver.to_string(),
            chat: user.chat_label(),
        };
        let out = self
            .settle_with(
                &req.id,
                t,
                &by,
                &detail,
                Step {
                    guard: Guard::nonce(&req.nonce).and_action(&req.action_hash),
                    updates: Updates {
                        approver: approve.then(|| approver.to_string()),
                        decision: Some(NewDecision {
                            approver: approver.to_string(),
                            decision,
                            reason: reason.map(|r| r.as_str().to_owned()),
                        }),
                        ..Updates::default()
                    },
                    say: reason.map(|why| notices::denied_by(&approver, why)),
                    ..Step::default()
                },
            )
            .await?;
        if !out.applied() {
            return self.not_applied(user, conv, &out).await;
        }
        if approve {
            self.execute(req.id.clone());
        }
        Ok(())
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
    ) -> Result<(), StorageError> {
        let allowed = Self::is_requester(user, &req)
            || req.approver.as_deref() == Some(user.audit_name().as_str());
        if !allowed {
            let notice = notices::only_requester(&req.requester, RequesterOnly::Retry);
            return self.ctx.send.whisper(user, conv, &notice).await;
        }
        let out = self.pressed(user, &req, Transition::Retry).await?;
        match out {
            TransitionOutcome::Applied(again) => {
                let requester = self.requester_identity(&again);
                self.decide(again, requester, Settle::Retry).await
            }
            other => self.not_applied(user, conv, &other).await,
        }
    }
}
