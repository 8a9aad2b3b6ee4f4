//! Replies in the thread of a proposal: a cancel, an amendment, or (not
//! ours) an ordinary message after all.

use crate::catalog::Catalog;
use crate::chat::notices::{self, RequesterOnly};
use crate::chat::{messages, Handled, Inbound};
use crate::domain::{Action, ActionKind, Actor, Transition};
use crate::nlu::amend::{self as followup, FollowUp};
use crate::nlu::{NluPath, Parsed, RulesParser, Understanding};
use crate::policy::{self, Decision};
use crate::storage::{Request, StorageError};

use super::{Requests, Step};

impl Requests {
    /// A message in a thread: handled here when the thread holds a
    /// proposal and the message is about it; `None` otherwise.
    pub async fn follow_up_in_thread(
        &self,
        msg: &Inbound,
        catalog: &Catalog,
        parser: &RulesParser,
    ) -> Result<Option<Handled>, StorageError> {
        let conv = &msg.conversation;
        let Some(thread) = &conv.thread else {
            return Ok(None);
        };
        let proposal = self
            .ctx
            .db
            .requests()
            .proposal_in_thread(conv.platform, &conv.channel, thread)
            .await?;
        match proposal {
            Some(req) => self.follow_up(msg, req, catalog, parser).await,
            None => Ok(None),
        }
    }

    /// Amendments are applied in place: the stored action, its hash, the
    /// policy notes and the nonce are replaced (an `amend` audit row keeps
    /// the old and new), so the card is updated where it is, its old
    /// buttons stop working, and the requester must confirm again. Only the
    /// requester may amend or cancel.
    async fn follow_up(
        &self,
        msg: &Inbound,
        req: Request,
        catalog: &Catalog,
        parser: &RulesParser,
    ) -> Result<Option<Handled>, StorageError> {
        let t0 = std::time::Instant::now();
        let send = &self.ctx.send;
        let user = &msg.user;
        let conv = &msg.conversation;
        let parsed = parser.parse(&msg.text);
        let mut reading = followup::follow_up(parser, &req.action, &msg.text);
        // A whole request of its own (another service, or a read) is not a
        // follow-up; nor is chit-chat. The same service asked for afresh
        // replaces the proposal.
        let kind = parsed.action.kind();
        // A message that plainly lacks a field ("also add redis": no
        // service) is sure as a request alone, but in a thread it leans on
        // the proposal: that is what a follow-up is.
        let leans_on_thread =
            matches!(&parsed.action, Action::Clarify { candidates, .. } if candidates.is_empty());
        if parsed.sure && !leans_on_thread && kind != ActionKind::Ask && reading != FollowUp::Cancel
        {
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
                if !self
                    .requester_may(user, conv, &req, RequesterOnly::Change)
                    .await?
                {
                    return Ok(Some(Handled::Replied));
                }
                if let Some(cancelled) = self
                    .cancel_as(user, conv, &req, "cancelled in the thread")
                    .await?
                {
                    send.in_thread(&cancelled, &notices::cancelled()).await?;
                }
                return Ok(Some(Handled::Replied));
            }
            FollowUp::Amend(a) => (a, Understanding::rules(parsed.action.clone(), t0.elapsed())),
            FollowUp::Unclear => match &self.ctx.settings.understander {
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
                        send.in_thread(&req, &messages::clarify(missing, candidates, *intent))
                            .await?;
                        return Ok(Some(Handled::Replied));
                    } else {
                        return self.not_a_change(msg, &req, &parsed).await;
                    }
                }
                _ => return self.not_a_change(msg, &req, &parsed).await,
            },
        };
        if !self
            .requester_may(user, conv, &req, RequesterOnly::Change)
            .await?
        {
            return Ok(Some(Handled::Replied));
        }
        if action == req.action {
            send.in_thread(&req, &notices::unchanged_amendment())
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
        parsed: &Parsed,
    ) -> Result<Option<Handled>, StorageError> {
        if !Self::is_requester(&msg.user, req) || parsed.action == Action::Nothing {
            return Ok(None);
        }
        self.ctx
            .send
            .in_thread(req, &notices::unclear_amendment())
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
    ) -> Result<Handled, StorageError> {
        let user = &msg.user;
        let send = &self.ctx.send;
        let decision = self.evaluate(user, &action, catalog).await;
        // The amended action is checked against the target like a new one.
        let (notes, first) = self.card_notes(&action, &decision).await;
        let cost = self.estimate(&action);
        let store = self.ctx.db.requests();
        let amended = store
            .amend(
                &req.id,
                &action,
                &policy::action_hash(&action),
                &notes,
                first.as_ref(),
                cost.as_ref(),
                &user.audit_name(),
                &user.chat_label(),
                &format!("amended in the thread ({})", understood.path.as_str()),
            )
            .await?;
        let Some(amended) = amended else {
            let now = store.get(&req.id).await?;
            send.whisper(
                user,
                &msg.conversation,
                &notices::too_late_to_change(now.state),
            )
            .await?;
            return Ok(Handled::Replied);
        };
        self.record_nlu(&amended.id, understood).await?;
        if let Decision::Deny { rule, reason } = decision {
            self.settle_with(
                &amended.id,
                Transition::Deny,
                &Actor::Policy,
                &format!("{rule}: {reason}"),
                Step {
                    say: Some(messages::denied(&reason)),
                    ..Step::default()
                },
            )
            .await?;
            return Ok(Handled::Proposed(amended.id));
        }
        send.update_card(&amended, None).await?;
        send.in_thread(&amended, &notices::amended(&amended.action))
            .await?;
        Ok(Handled::Proposed(amended.id))
    }
}
