//! Policy's decision on a request that is `confirmed`: just confirmed,
//! retried, or left there by a crash. It is taken on the action exactly as
//! the confirm transaction wrote it, and every step out of `confirmed` is
//! guarded by that action's hash.

use crate::catalog::Catalog;
use crate::chat::{messages, notices};
use crate::domain::{Actor, Transition, UserName};
use crate::policy::{self, Decision};
use crate::storage::requests::Approval;
use crate::storage::{now_ms, ApprovalDecision, Guard, Request, StorageError, Updates};

use super::{Requests, Step};

/// How a request came to be `confirmed` (what policy may take into account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settle {
    Confirm,
    Retry,
    Recovery,
}

impl Requests {
    pub(super) async fn decide(
        &self,
        req: Request,
        requester: Option<UserName>,
        via: Settle,
    ) -> Result<(), StorageError> {
        let hash = req.action_hash.clone();
        let guarded = |say: Option<crate::chat::Message>, updates: Updates| Step {
            guard: Guard::action(&hash),
            updates,
            say,
            ..Step::default()
        };
        // Defence in depth: the stored action must hash to what was stored
        // and confirmed, or nothing about it can be trusted.
        if policy::action_hash(&req.action) != hash || req.confirmed_hash.as_deref() != Some(&hash)
        {
            tracing::error!(request = %req.id, "confirmed action does not match its hash; refusing");
            self.settle_with(
                &req.id,
                Transition::Deny,
                &Actor::Policy,
                "integrity: the action does not match the confirmed action",
                guarded(Some(notices::integrity_denied()), Updates::default()),
            )
            .await?;
            return Ok(());
        }
        // The catalog or policy may have changed since the proposal: decide now.
        let catalog = self.ctx.catalog.current();
        let ctx = self.policy_context(&req.action, &catalog).await;
        let decision = policy::evaluate(
            &self.ctx.policy,
            &catalog,
            requester.as_ref(),
            &req.action,
            &ctx,
        );
        match decision {
            Decision::Deny { rule, reason } => {
                self.settle_with(
                    &req.id,
                    Transition::Deny,
                    &Actor::Policy,
                    &format!("{rule}: {reason}"),
                    guarded(Some(messages::denied(&reason)), Updates::default()),
                )
                .await?;
            }
            Decision::NeedsApproval {
                rule,
                approvers,
                notes,
            } => {
                if via == Settle::Retry {
                    if let Some(prior) = self
                        .valid_prior_approval(&req, &approvers, &catalog)
                        .await?
                    {
                        let detail = format!(
                            "{rule}: the approval by {} for this exact action is still valid",
                            prior.approver
                        );
                        let out = self
                            .settle_with(
                                &req.id,
                                Transition::AutoApprove,
                                &Actor::Policy,
                                &detail,
                                guarded(None, Updates::default()),
                            )
                            .await?;
                        if out.applied() {
                            self.execute(req.id.clone());
                        }
                        return Ok(());
                    }
                }
                let expires = now_ms() + self.ctx.policy.approval_expiry().as_millis() as i64;
                // The card says why as decided now: the amounts of the cost
                // limit, say, may have moved since the proposal.
                let updates = Updates {
                    approvers: Some(approvers),
                    approval_expires_at: Some(expires),
                    notes: Some(notes),
                    ..Updates::default()
                };
                let out = self
                    .settle_with(
                        &req.id,
                        Transition::NeedApproval,
                        &Actor::Policy,
                        &rule,
                        guarded(None, updates),
                    )
                    .await?;
                if out.applied() {
                    // The sweep tells them too if this is cut short: the
                    // round is told once either way.
                    self.tell_approvers(out.request()).await?;
                }
            }
            Decision::Allow { .. } => {
                let out = self
                    .settle_with(
                        &req.id,
                        Transition::AutoApprove,
                        &Actor::Policy,
                        "confirmation is enough",
                        guarded(None, Updates::default()),
                    )
                    .await?;
                if out.applied() {
                    self.execute(req.id.clone());
                }
            }
        }
        Ok(())
    }

    /// For a retry: an approval of exactly this action, younger than the
    /// approval window, by someone who may still approve it, given when the
    /// approvers were who policy names now. Anything else asks again.
    async fn valid_prior_approval(
        &self,
        req: &Request,
        approvers: &crate::domain::Approvers,
        catalog: &Catalog,
    ) -> Result<Option<Approval>, StorageError> {
        if req.approvers.as_ref() != Some(approvers) {
            return Ok(None);
        }
        let window = self.ctx.policy.approval_expiry().as_millis() as i64;
        let now = now_ms();
        let approvals = self.ctx.db.requests().approvals(&req.id).await?;
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
}
