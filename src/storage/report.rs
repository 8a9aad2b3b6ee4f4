//! What the platform report reads (requests, their audit log, deploy
//! events, questions and votes, all kept for good by retention) and the
//! record of each weekly digest. Rows as stored; the report module
//! computes the figures.

use sqlx::any::AnyRow;

use super::outbox::OutboxItem;
use super::{get_i64, get_opt_i64, get_opt_str, get_str, Db, StorageError};
use crate::domain::Platform;

/// A request created in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: String,
    pub action_kind: String,
    pub service: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub result_url: Option<String>,
    pub llm_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// One audit-log entry of a request created in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub request_id: String,
    pub at: i64,
    pub transition: String,
    pub from_state: Option<String>,
    pub to_state: String,
}

/// A deploy event in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRow {
    pub service: String,
    pub environment: String,
    pub status: String,
    pub version: Option<String>,
    pub commit: Option<String>,
    pub commit_at: Option<i64>,
    pub at: i64,
}

/// A Paver rollback that succeeded in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackRow {
    pub service: String,
    pub environment: String,
    pub created_at: i64,
    pub succeeded_at: i64,
}

/// A docs question asked in the window, with its votes.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionRow {
    pub question: String,
    pub known: bool,
    /// Someone pressed "Ask a human".
    pub escalated: bool,
    /// A human's answer was relayed.
    pub human_answered: bool,
    pub helpful: i64,
    pub not_helpful: i64,
    pub created_at: i64,
}

pub struct ReportStore<'a> {
    pub(super) db: &'a Db,
}

fn request_row(r: &AnyRow) -> Result<RequestRow, StorageError> {
    Ok(RequestRow {
        id: get_str(r, "id")?,
        action_kind: get_str(r, "action_kind")?,
        service: get_opt_str(r, "service")?,
        state: get_str(r, "state")?,
        created_at: get_i64(r, "created_at")?,
        result_url: get_opt_str(r, "result_url")?,
        llm_calls: get_opt_i64(r, "nlu_llm_calls")?.unwrap_or(0),
        prompt_tokens: get_opt_i64(r, "nlu_prompt_tokens")?.unwrap_or(0),
        completion_tokens: get_opt_i64(r, "nlu_completion_tokens")?.unwrap_or(0),
    })
}

impl ReportStore<'_> {
    /// Requests created in `[since, until)`, oldest first.
    pub async fn requests(&self, since: i64, until: i64) -> Result<Vec<RequestRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, action_kind, service, state, created_at, result_url, \
             nlu_llm_calls, nlu_prompt_tokens, nlu_completion_tokens \
             FROM requests WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(request_row).collect()
    }

    /// The audit log of the requests created in `[since, until)`, each
    /// request's entries in the order they were written.
    pub async fn request_events(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<EventRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT e.request_id, e.at, e.transition, e.from_state, e.to_state \
             FROM request_events e JOIN requests r ON r.id = e.request_id \
             WHERE r.created_at >= $1 AND r.created_at < $2 ORDER BY e.request_id, e.id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    request_id: get_str(r, "request_id")?,
                    at: get_i64(r, "at")?,
                    transition: get_str(r, "transition")?,
                    from_state: get_opt_str(r, "from_state")?,
                    to_state: get_str(r, "to_state")?,
                })
            })
            .collect()
    }

    /// Deploy events in `[since, until)` of `environment`, oldest first.
    pub async fn deploy_events(
        &self,
        environment: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<DeployRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT service, environment, status, version, commit_sha, commit_at, at \
             FROM deploy_events WHERE environment = $1 AND at >= $2 AND at < $3 ORDER BY at, id",
        )
        .bind(environment)
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeployRow {
                    service: get_str(r, "service")?,
                    environment: get_str(r, "environment")?,
                    status: get_str(r, "status")?,
                    version: get_opt_str(r, "version")?,
                    commit: get_opt_str(r, "commit_sha")?,
                    commit_at: get_opt_i64(r, "commit_at")?,
                    at: get_i64(r, "at")?,
                })
            })
            .collect()
    }

    /// Paver rollbacks of `environment` that succeeded in `[since, until)`.
    pub async fn rollbacks(
        &self,
        environment: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<RollbackRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT r.service, r.environment, r.created_at, MIN(e.at) AS succeeded_at \
             FROM requests r JOIN request_events e ON e.request_id = r.id \
             WHERE r.action_kind = 'rollback' AND r.environment = $1 AND r.service IS NOT NULL \
             AND e.to_state = 'succeeded' AND e.at >= $2 AND e.at < $3 \
             GROUP BY r.id, r.service, r.environment, r.created_at ORDER BY succeeded_at",
        )
        .bind(environment)
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RollbackRow {
                    service: get_str(r, "service")?,
                    environment: get_str(r, "environment")?,
                    created_at: get_i64(r, "created_at")?,
                    succeeded_at: get_i64(r, "succeeded_at")?,
                })
            })
            .collect()
    }

    /// Docs questions asked in `[since, until)`, oldest first, with their
    /// votes counted.
    pub async fn questions(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<QuestionRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT q.question, q.known, q.handoff_state, q.answered_at, q.created_at, \
             (SELECT COUNT(*) FROM question_votes v WHERE v.question_id = q.id AND v.helpful = 1) AS helpful, \
             (SELECT COUNT(*) FROM question_votes v WHERE v.question_id = q.id AND v.helpful = 0) AS not_helpful \
             FROM questions q WHERE q.created_at >= $1 AND q.created_at < $2 ORDER BY q.created_at, q.id",
        )
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuestionRow {
                    question: get_str(r, "question")?,
                    known: get_i64(r, "known")? != 0,
                    escalated: get_opt_str(r, "handoff_state")?.is_some(),
                    human_answered: get_opt_i64(r, "answered_at")?.is_some(),
                    helpful: get_i64(r, "helpful")?,
                    not_helpful: get_i64(r, "not_helpful")?,
                    created_at: get_i64(r, "created_at")?,
                })
            })
            .collect()
    }

    /// Records the digest of `period` (the start of the week it covers)
    /// and queues `messages`, in one transaction; false, queueing nothing,
    /// when that period's digest was recorded already.
    pub async fn record_digest(
        &self,
        period: i64,
        platform: Platform,
        channel: &str,
        at: i64,
        messages: &[OutboxItem],
    ) -> Result<bool, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let first = sqlx::query(
            "INSERT INTO report_digests (period, platform, channel, at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (period) DO NOTHING",
        )
        .bind(period)
        .bind(platform.as_str())
        .bind(channel)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        super::outbox::queue_and_commit(tx, messages, at).await?;
        Ok(true)
    }

    /// Whether the digest of `period` was recorded.
    pub async fn digest_recorded(&self, period: i64) -> Result<bool, StorageError> {
        let r = sqlx::query("SELECT period FROM report_digests WHERE period = $1")
            .bind(period)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(r.is_some())
    }
}
