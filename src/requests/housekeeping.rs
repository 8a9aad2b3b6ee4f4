//! What keeps requests honest over time: recovery after a restart (nothing
//! left half-way is dropped) and the periodic sweep (nothing waits for
//! ever).

use std::time::Duration;

use crate::chat::notices;
use crate::domain::{Actor, RequestState, Transition};
use crate::storage::requests::Stamp;
use crate::storage::{now_ms, StorageError, Updates};
use crate::util::scheduler::{Lease, Scheduler, Timing};

use super::decide::Settle;
use super::{Requests, Step};

/// The sweeper's lease name.
const SWEEPER_LEASE: &str = "sweeper";

impl Requests {
    /// At start: nothing left `executing` or `approved` is dropped. Queued
    /// and interrupted jobs are in the job table and the workers take them
    /// (an interrupted one once its lease runs out); an approved request
    /// without a job (a crash between approval and queueing) is queued.
    pub async fn recover(&self) -> Result<(), StorageError> {
        self.start_workers();
        let ctx = &self.ctx;
        let store = ctx.db.requests();
        let jobs = ctx.db.jobs();
        for req in store.in_state(RequestState::Executing).await? {
            if jobs.live_for(&req.id).await?.is_some() {
                continue;
            }
            if ctx.driver.resumable() {
                tracing::info!(request = %req.id, "resuming a request interrupted by a restart");
                self.enqueue_job(&req.id).await?;
            } else {
                let reason = "Paver restarted while this was running; check the target system, then press Retry";
                self.settle_with(
                    &req.id,
                    Transition::Fail,
                    &Actor::Housekeeping,
                    reason,
                    Step {
                        updates: Updates {
                            error: Some(reason.into()),
                            ..Updates::default()
                        },
                        ..Step::default()
                    },
                )
                .await?;
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
        self.decide_left_confirmed(0).await?;
        ctx.executor.wake();
        self.sweep().await
    }

    /// Expires approvals, proposals and failures nobody acted on.
    pub async fn sweep(&self) -> Result<(), StorageError> {
        let ctx = &self.ctx;
        let store = ctx.db.requests();
        let now = now_ms();
        let by = Actor::Housekeeping;
        for req in store.in_state(RequestState::AwaitingApproval).await? {
            if req.approval_expires_at.is_none_or(|t| t >= now) {
                // Approvers told even if a crash cut the asking short (a
                // no-op for a round already told), and reminded in time.
                self.tell_approvers(&req).await?;
                self.remind_approvers(&req).await?;
                continue;
            }
            let step = Step {
                say: Some(notices::approval_expired()),
                ..Step::default()
            };
            self.settle_with(
                &req.id,
                Transition::Expire,
                &by,
                "approval window passed",
                step,
            )
            .await?;
        }
        // Left `confirmed` by an error between the press and policy's
        // decision (the process lived on): decide now.
        self.decide_left_confirmed(60_000).await?;
        // A failed request can be retried for a while, not for ever: its
        // Retry button would otherwise outlive everything it was decided on.
        let failed_ttl = ctx.policy.failed_expiry().as_millis() as i64;
        for req in store
            .in_state_before(RequestState::Failed, Stamp::Updated, now - failed_ttl)
            .await?
        {
            let step = Step {
                // Kept: the card still says what went wrong.
                updates: Updates {
                    error: req.error.clone(),
                    ..Updates::default()
                },
                ..Step::default()
            };
            self.settle_with(
                &req.id,
                Transition::Expire,
                &by,
                "failed and not retried in time",
                step,
            )
            .await?;
        }
        let ttl = ctx.settings.proposal_ttl.as_millis() as i64;
        for req in store
            .in_state_before(RequestState::Proposed, Stamp::Created, now - ttl)
            .await?
        {
            self.settle(&req.id, Transition::Expire, &by, "never confirmed")
                .await?;
        }
        Ok(())
    }

    /// Decides requests that have been `confirmed` for longer than
    /// `older_than_ms` without a decision. Guarded transitions make a race
    /// with a live confirmation (or another replica) harmless.
    async fn decide_left_confirmed(&self, older_than_ms: i64) -> Result<(), StorageError> {
        // updated_at + older_than <= now, i.e. updated_at < now - older_than + 1.
        let before = now_ms() - older_than_ms + 1;
        for req in self
            .ctx
            .db
            .requests()
            .in_state_before(RequestState::Confirmed, Stamp::Updated, before)
            .await?
        {
            tracing::info!(request = %req.id, "deciding a request left confirmed");
            let requester = self.requester_identity(&req);
            self.decide(req, requester, Settle::Recovery).await?;
        }
        Ok(())
    }

    /// Sweeps every `every` on the replica holding the `sweeper` lease
    /// (`holder`: this replica's id). Every sweep's change is a guarded
    /// transition, so two sweeps could not do anything twice; the lease
    /// saves the other replicas reading every open request for nothing.
    pub fn spawn_sweeper(&self, holder: &str, every: Duration) -> Scheduler {
        let lease = Lease::new(self.ctx.db.clone(), SWEEPER_LEASE, holder, every * 2);
        let me = self.clone();
        Scheduler::spawn(lease, Timing::every(every), move || {
            let me = me.clone();
            async move { me.sweep().await }
        })
    }
}
