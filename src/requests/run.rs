//! The job: an approved request queued durably, claimed by a worker, run by
//! the driver with progress on the card, then succeeded, retried after a
//! backoff (transient), or failed with the driver's words.

use std::sync::Arc;

use crate::chat::{messages, notices};
use crate::domain::{Action, Actor, Environment, RequestState, Transition};
use crate::drivers::{DriverError, Job, JobState};
use crate::policy;
use crate::storage::jobs::idempotency_key;
use crate::storage::{
    ApprovalDecision, Claimed, JobRow, JobStatus, Request, StorageError, Updates,
};

use super::executor::{DbJobState, JobRunner};
use super::{Requests, Step};

impl Requests {
    /// Queues an approved request as a durable job and wakes a worker.
    pub fn execute(&self, id: String) {
        self.start_workers();
        let me = self.clone();
        self.ctx.tasks.spawn("job queueing", async move {
            if let Err(e) = me.enqueue_job(&id).await {
                tracing::error!(request = %id, error = %e, "queueing the job failed");
            }
            Ok::<(), StorageError>(())
        });
    }

    /// Starts this process's executor workers (once).
    pub fn start_workers(&self) {
        let me = self.clone();
        self.ctx
            .executor
            .start(move || Arc::new(me) as Arc<dyn JobRunner>);
    }

    pub(super) async fn enqueue_job(&self, id: &str) -> Result<(), StorageError> {
        let req = self.ctx.db.requests().get(id).await?;
        let job = self
            .ctx
            .db
            .jobs()
            .enqueue(&req.id, &req.action_hash)
            .await?;
        tracing::debug!(request = %id, job = %job.id, "job queued");
        self.ctx.executor.wake();
        Ok(())
    }

    /// One claimed job: start the request, run the driver with progress on
    /// the card, then succeed, reschedule (transient) or fail it.
    async fn run_job(&self, claimed: Claimed) -> Result<(), StorageError> {
        let ctx = &self.ctx;
        let Claimed { job: row, resumed } = claimed;
        let owner = ctx.executor.owner().to_owned();
        let jobs = ctx.db.jobs();
        let store = ctx.db.requests();
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
                    Actor::Executor.name(),
                    Actor::Executor.chat(),
                    ctx.driver.name(),
                    Updates::default(),
                )
                .await?;
            self.observe(Transition::Start, &out).await;
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
        let max = ctx.settings.attempts.max(1);
        // Why not to run at all; a retry helps with the first two (the
        // target was checked, the trouble passed), never with the others.
        let give_up = if resumed && !ctx.driver.resumable() {
            Some(DriverError::Abandoned(
                "Paver restarted while this was running; check the target system, then press Retry"
                    .to_owned(),
            ))
        } else if attempt > max {
            Some(DriverError::Abandoned(format!(
                "gave up after {max} attempts: {}",
                row.last_error.as_deref().unwrap_or("interrupted")
            )))
        } else if let Some(why) = action_mismatch(&req, &row) {
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
        ctx.send.update_card(&req, None).await?;
        let expires_at = match &req.action {
            Action::CreateEnvironment {
                environment: Environment::Preview,
                ..
            } => Some(row.created_at / 1000 + ctx.policy.preview_ttl().as_secs() as i64),
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
                db: ctx.db.clone(),
                job_id: row.id.clone(),
            })),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let progress = move |line: &str| {
            let _ = tx.send(line.to_owned());
        };
        let card_updates = {
            let send = ctx.send.clone();
            let req = req.clone();
            tokio::spawn(async move {
                while let Some(mut line) = rx.recv().await {
                    // Lines that came while the last one was being stored
                    // are superseded: only the newest is worth a write.
                    while let Ok(newer) = rx.try_recv() {
                        line = newer;
                    }
                    if let Err(e) = send.update_card(&req, Some(&line)).await {
                        tracing::warn!(error = %e, "progress update lost");
                    }
                }
            })
        };
        let result = ctx.driver.execute(&job, &progress).await;
        drop(progress);
        let _ = card_updates.await;
        match result {
            Ok(outcome) => {
                let out = self
                    .settle_with(
                        &req.id,
                        Transition::Succeed,
                        &Actor::Executor,
                        &outcome.summary,
                        Step {
                            updates: Updates {
                                result_url: outcome.url.clone(),
                                expires_at,
                                ..Updates::default()
                            },
                            ..Step::default()
                        },
                    )
                    .await?;
                if out.applied() {
                    ctx.send
                        .in_thread(out.request(), &messages::succeeded(out.request(), &outcome))
                        .await?;
                }
                jobs.finish(&row.id, &owner, JobStatus::Succeeded, None)
                    .await?;
                Ok(())
            }
            Err(e) if e.is_transient() && attempt < max => {
                let delay = ctx.executor.backoff(attempt);
                tracing::warn!(request = %req.id, job = %row.id, attempt, error = %e, ?delay, "transient driver failure; retrying");
                let line = notices::retrying(attempt, max, &e.to_string(), delay);
                ctx.send.update_card(&req, Some(&line)).await?;
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

    /// Fails the request (message in the thread, Retry on the card where a
    /// retry can help) and its job.
    async fn fail_job(
        &self,
        req: &Request,
        job_id: &str,
        e: &DriverError,
        exhausted: bool,
    ) -> Result<(), StorageError> {
        let text = if exhausted {
            format!(
                "{e} (gave up after {} attempts)",
                self.ctx.settings.attempts.max(1)
            )
        } else {
            e.to_string()
        };
        let out = self
            .settle_with(
                &req.id,
                Transition::Fail,
                &Actor::Executor,
                &text,
                Step {
                    updates: Updates {
                        error: Some(text.clone()),
                        retryable: Some(e.retryable()),
                        ..Updates::default()
                    },
                    ..Step::default()
                },
            )
            .await?;
        if out.applied() {
            self.ctx
                .send
                .in_thread(out.request(), &messages::failed(out.request(), &text))
                .await?;
        }
        self.ctx
            .db
            .jobs()
            .finish(
                job_id,
                self.ctx.executor.owner(),
                JobStatus::Failed,
                Some(&text),
            )
            .await?;
        Ok(())
    }

    /// Defence in depth: a request that policy sent to approvers runs only
    /// with an approval recorded for exactly this action.
    async fn approval_missing(&self, req: &Request) -> Result<Option<String>, StorageError> {
        if req.approvers.is_none() {
            return Ok(None);
        }
        let approvals = self.ctx.db.requests().approvals(&req.id).await?;
        // The latest decision counts (a denial after an approval stands),
        // and it is never the requester's own, under any of their identities.
        let catalog = self.ctx.catalog.current();
        let ok = approvals.last().is_some_and(|a| {
            a.decision == ApprovalDecision::Approved.as_str()
                && a.action_hash == req.action_hash
                && crate::domain::UserName::parse(&a.approver).is_ok_and(|approver| {
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

#[async_trait::async_trait]
impl JobRunner for Requests {
    async fn run(&self, claimed: Claimed) {
        use tracing::Instrument;
        let (job, request) = (claimed.job.id.clone(), claimed.job.request_id.clone());
        // Every line logged while the job runs (the driver's, the store's)
        // carries the request and job ids.
        let span = tracing::info_span!("job", request = %request, job = %job);
        if let Err(e) = self.run_job(claimed).instrument(span).await {
            // The job keeps its lease until it runs out, then runs again.
            tracing::error!(%job, %request, error = %e, "job bookkeeping failed");
        }
    }
}
