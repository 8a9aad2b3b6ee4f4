//! The audit log as one stream, for `paver audit export`: every
//! `request_events` row (transitions, with who and why) and every
//! `approvals` row (decisions bound to an action hash) in a time range,
//! each with the request it belongs to, oldest first. Read only; retention
//! never prunes these tables.

use sqlx::any::AnyRow;

use super::{get_i64, get_opt_str, get_str, Db, StorageError};

/// The request an audit entry belongs to, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRequest {
    pub id: String,
    pub action_kind: String,
    /// The request's (latest) action as stored; amends are in the log.
    pub action_json: String,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub requester: String,
    /// Its state now.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuditWhat {
    /// A transition of the request.
    Event {
        actor: String,
        chat: String,
        transition: String,
        from_state: Option<String>,
        to_state: String,
        detail: String,
    },
    /// An approver's decision on the action with this hash.
    Approval {
        approver: String,
        decision: String,
        action_hash: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub request: AuditRequest,
    pub what: AuditWhat,
}

pub struct AuditStore<'a> {
    pub(super) db: &'a Db,
}

const REQUEST_COLUMNS: &str = "r.id AS request_id, r.action_kind, r.action_json, r.service, r.environment, r.requester, r.state";

fn request(row: &AnyRow) -> Result<AuditRequest, StorageError> {
    Ok(AuditRequest {
        id: get_str(row, "request_id")?,
        action_kind: get_str(row, "action_kind")?,
        action_json: get_str(row, "action_json")?,
        service: get_opt_str(row, "service")?,
        environment: get_opt_str(row, "environment")?,
        requester: get_str(row, "requester")?,
        state: get_str(row, "state")?,
    })
}

impl AuditStore<'_> {
    /// Entries with `since <= at < until` (Unix ms), oldest first; at one
    /// time, transitions before approvals, each in the order written.
    pub async fn entries(&self, since: i64, until: i64) -> Result<Vec<AuditEntry>, StorageError> {
        let events = sqlx::query(&format!(
            "SELECT e.id, e.at, e.actor, e.chat, e.transition, e.from_state, e.to_state, e.detail, {REQUEST_COLUMNS} \
             FROM request_events AS e JOIN requests AS r ON r.id = e.request_id \
             WHERE e.at >= $1 AND e.at < $2 ORDER BY e.at, e.id"
        ))
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        let approvals = sqlx::query(&format!(
            "SELECT a.id, a.at, a.approver, a.decision, a.action_hash, {REQUEST_COLUMNS} \
             FROM approvals AS a JOIN requests AS r ON r.id = a.request_id \
             WHERE a.at >= $1 AND a.at < $2 ORDER BY a.at, a.id"
        ))
        .bind(since)
        .bind(until)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(events.len() + approvals.len());
        for row in &events {
            out.push((
                (get_i64(row, "at")?, 0, get_i64(row, "id")?),
                AuditEntry {
                    at: get_i64(row, "at")?,
                    request: request(row)?,
                    what: AuditWhat::Event {
                        actor: get_str(row, "actor")?,
                        chat: get_str(row, "chat")?,
                        transition: get_str(row, "transition")?,
                        from_state: get_opt_str(row, "from_state")?,
                        to_state: get_str(row, "to_state")?,
                        detail: get_str(row, "detail")?,
                    },
                },
            ));
        }
        for row in &approvals {
            out.push((
                (get_i64(row, "at")?, 1, get_i64(row, "id")?),
                AuditEntry {
                    at: get_i64(row, "at")?,
                    request: request(row)?,
                    what: AuditWhat::Approval {
                        approver: get_str(row, "approver")?,
                        decision: get_str(row, "decision")?,
                        action_hash: get_str(row, "action_hash")?,
                    },
                },
            ));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }
}
