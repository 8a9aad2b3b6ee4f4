//! Requests, their audit log and their approvals.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rand::Rng;
use sqlx::any::AnyRow;
use sqlx::FromRow;

use super::batch::{self, Grouped};
use super::outbox::OutboxItem;
use super::{get_opt_i64, get_opt_str, get_str, now_ms, Db, StorageError};
use crate::domain::Action;
use crate::domain::Approvers;
use crate::domain::MonthlyCost;
use crate::domain::Platform;
use crate::domain::{RequestState, Transition};

/// A stored request. The action is read back from here, never from a button.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub nonce: String,
    pub state: RequestState,
    pub action: Action,
    pub action_hash: String,
    /// Catalog user name of who asked (or their chat id when unknown).
    pub requester: String,
    pub requester_chat_id: String,
    pub platform: Platform,
    pub channel: String,
    /// The chat thread the request came from, if it came from one.
    pub thread: Option<String>,
    pub notes: Vec<String>,
    pub approvers: Option<Approvers>,
    pub approver: Option<String>,
    pub approval_expires_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub result_url: Option<String>,
    pub error: Option<String>,
    /// The action hash the requester's confirm press bound the request to.
    pub confirmed_hash: Option<String>,
    /// For a failed request: whether Retry can help.
    pub retryable: bool,
    /// What must happen before this request can succeed, found when it was
    /// proposed; the card offers it instead of the confirming button.
    pub first: Option<Action>,
    /// For a denied request: who denied it (their catalog name).
    pub denied_by: Option<String>,
    /// For a denied request: why, as its approver said (their own text,
    /// shown through `util::text::clean`). `None` for denials from before
    /// Deny asked why.
    pub denial_reason: Option<String>,
    /// The estimated monthly cost of what the action creates, as the card
    /// showed it when proposed (or amended); `None` when it creates nothing.
    pub cost: Option<MonthlyCost>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a new request is made of.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The id to give it ([`new_request_id`]); a fresh one when `None`.
    pub id: Option<String>,
    pub action: Action,
    pub action_hash: String,
    pub requester: String,
    pub requester_chat_id: String,
    pub platform: Platform,
    pub channel: String,
    pub thread: Option<String>,
    pub notes: Vec<String>,
    /// What must happen first (see [`Request::first`]).
    pub first: Option<Action>,
    /// How the action was understood, recorded in the same transaction.
    pub nlu: Option<NluRecord>,
    /// The estimated monthly cost of what the action creates.
    pub cost: Option<MonthlyCost>,
}

/// Columns a transition may set alongside the state.
#[derive(Debug, Clone, Default)]
pub struct Updates {
    pub approvers: Option<Approvers>,
    pub approver: Option<String>,
    pub approval_expires_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub result_url: Option<String>,
    /// Set on failure; cleared by any other transition.
    pub error: Option<String>,
    /// Set on failure: whether Retry can help.
    pub retryable: Option<bool>,
    /// An approver's decision, recorded in the same transaction as the
    /// transition and bound to the guarded action hash.
    pub decision: Option<NewDecision>,
    /// The card's notes, replaced (policy decided again, with today's facts).
    pub notes: Option<Vec<String>>,
}

/// An approver's decision on a request.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub approver: String,
    pub decision: ApprovalDecision,
    /// Why, when the approver said (a denial always does); a denial's
    /// approver and reason are kept on the request for its card.
    pub reason: Option<String>,
}

/// What an approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalDecision {
    Approved,
    Denied,
}

impl ApprovalDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Approved => "approved",
            ApprovalDecision::Denied => "denied",
        }
    }
}

/// What a transition must still find true when it writes, checked in the
/// same conditional UPDATE as the state: the card the button was on (its
/// nonce) and the action the caller decided on (its hash). A press from an
/// outdated card, or a decision about an action that changed meanwhile,
/// then cannot apply, whatever the timing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard<'a> {
    pub nonce: Option<&'a str>,
    pub action_hash: Option<&'a str>,
}

impl<'a> Guard<'a> {
    /// The button's nonce must still be the request's.
    pub fn nonce(nonce: &'a str) -> Self {
        Guard {
            nonce: Some(nonce),
            action_hash: None,
        }
    }
    /// The stored action must still hash to `hash`.
    pub fn action(hash: &'a str) -> Self {
        Guard {
            nonce: None,
            action_hash: Some(hash),
        }
    }
    pub fn and_action(self, hash: &'a str) -> Self {
        Guard {
            action_hash: Some(hash),
            ..self
        }
    }
    /// Whether `req` no longer carries what the guard expects.
    fn mismatches(&self, req: &Request) -> bool {
        self.nonce.is_some_and(|n| n != req.nonce)
            || self.action_hash.is_some_and(|h| h != req.action_hash)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOutcome {
    Applied(Request),
    /// Not legal from the current state (already done, or too late): a no-op.
    Unchanged(Request),
    /// Legal from the state, but the request changed since the caller read
    /// it (another card, another action): a no-op.
    Stale(Request),
}

impl TransitionOutcome {
    pub fn request(&self) -> &Request {
        match self {
            TransitionOutcome::Applied(r)
            | TransitionOutcome::Unchanged(r)
            | TransitionOutcome::Stale(r) => r,
        }
    }
    pub fn applied(&self) -> bool {
        matches!(self, TransitionOutcome::Applied(_))
    }
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Event {
    pub at: i64,
    pub actor: String,
    pub chat: String,
    pub transition: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Approval {
    pub approver: String,
    pub decision: String,
    pub action_hash: String,
    pub at: i64,
}

/// Which of a request's times a query goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Created,
    Updated,
}

impl Stamp {
    fn column(self) -> &'static str {
        match self {
            Stamp::Created => "created_at",
            Stamp::Updated => "updated_at",
        }
    }
}

pub struct RequestStore<'a> {
    pub(super) db: &'a Db,
}

/// A fresh request id. Chosen before the request exists when its card
/// replaces a placeholder posted under that key
/// ([`crate::chat::send::Sender::placeholder`]).
/// A new request's id: random, or, while an inbound event is handled,
/// derived from it (`util::origin`), so handling the event again after a
/// crash finds the request it stored instead of storing a second one.
pub fn new_request_id() -> String {
    crate::util::origin::next_id("r-").unwrap_or_else(|| format!("r-{}", random_token(8)))
}

/// A new request's card, made from the request as stored: queued in the
/// transaction that stores it (`RequestStore::insert`).
pub type CardOf = Arc<dyn Fn(&Request) -> OutboxItem + Send + Sync>;

/// What [`RequestStore::insert`] did.
#[derive(Debug)]
pub enum Stored {
    /// The request is new.
    New(Request),
    /// A request with its id was stored before (by an earlier handling of
    /// the same event, cut off by a crash): that one, untouched.
    Found(Request),
}

pub(super) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

const COLUMNS: &str = "id, nonce, state, action_json, action_hash, requester, requester_chat_id, platform, channel, thread, notes_json, approvers_json, approver, approval_expires_at, expires_at, result_url, error, confirmed_hash, retryable, first_action_json, denied_by, denial_reason, cost_json, created_at, updated_at";

/// A `requests` row as stored: JSON columns still text, the state and
/// platform still their database spelling.
#[derive(FromRow)]
struct RequestRow {
    id: String,
    nonce: String,
    state: String,
    action_json: String,
    action_hash: String,
    requester: String,
    requester_chat_id: String,
    #[sqlx(try_from = "String")]
    platform: Platform,
    channel: String,
    thread: Option<String>,
    notes_json: String,
    approvers_json: Option<String>,
    approver: Option<String>,
    approval_expires_at: Option<i64>,
    expires_at: Option<i64>,
    result_url: Option<String>,
    error: Option<String>,
    confirmed_hash: Option<String>,
    retryable: Option<i64>,
    first_action_json: Option<String>,
    denied_by: Option<String>,
    denial_reason: Option<String>,
    cost_json: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn decode(row: &AnyRow) -> Result<Request, StorageError> {
    let r = RequestRow::from_row(row)?;
    let id = r.id;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StorageError::Corrupt(format!("request {id}: {what}: {e}"))
    };
    let state = RequestState::parse(&r.state).ok_or_else(|| corrupt("state", &r.state))?;
    let action: Action = serde_json::from_str(&r.action_json).map_err(|e| corrupt("action", &e))?;
    let notes: Vec<String> =
        serde_json::from_str(&r.notes_json).map_err(|e| corrupt("notes", &e))?;
    let approvers = match r.approvers_json {
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| corrupt("approvers", &e))?),
        None => None,
    };
    let first = match r.first_action_json {
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| corrupt("first action", &e))?),
        None => None,
    };
    let cost = match r.cost_json {
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| corrupt("cost", &e))?),
        None => None,
    };
    Ok(Request {
        cost,
        nonce: r.nonce,
        state,
        action,
        action_hash: r.action_hash,
        requester: r.requester,
        requester_chat_id: r.requester_chat_id,
        platform: r.platform,
        channel: r.channel,
        thread: r.thread,
        notes,
        approvers,
        approver: r.approver,
        approval_expires_at: r.approval_expires_at,
        expires_at: r.expires_at,
        result_url: r.result_url,
        error: r.error,
        confirmed_hash: r.confirmed_hash,
        retryable: r.retryable.is_none_or(|r| r != 0),
        first,
        denied_by: r.denied_by,
        denial_reason: r.denial_reason,
        created_at: r.created_at,
        updated_at: r.updated_at,
        id,
    })
}

/// A new request to store (`RequestStore::insert`), with everything drawn
/// that must not be drawn again should the write run twice.
struct Proposal {
    id: String,
    nonce: String,
    origin: Option<String>,
    now: i64,
    action_json: String,
    notes_json: String,
    first_json: Option<String>,
    actor: String,
    chat: String,
    new: NewRequest,
    card: Option<CardOf>,
}

/// The columns a proposal inserts, in the order `Proposal::bind` binds them.
const PROPOSAL_COLUMNS: &str = "id, nonce, state, action_kind, action_json, action_hash, service, environment, requester, requester_chat_id, platform, channel, thread, notes_json, created_at, updated_at, first_action_json, monthly_cost_cents, cost_json, \
     nlu_path, nlu_latency_ms, nlu_llm_calls, nlu_prompt_tokens, nlu_completion_tokens, nlu_model, nlu_prompt_version";
const PROPOSAL_PARAMS: usize = 26;

impl Proposal {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let (new, nlu) = (&self.new, self.new.nlu.as_ref());
        q.bind(self.id.as_str())
            .bind(self.nonce.as_str())
            .bind(RequestState::Proposed.as_str())
            .bind(new.action.kind().as_str())
            .bind(self.action_json.as_str())
            .bind(new.action_hash.as_str())
            .bind(new.action.service().map(|s| s.as_str().to_owned()))
            .bind(new.action.environment().map(|e| e.as_str().to_owned()))
            .bind(new.requester.as_str())
            .bind(new.requester_chat_id.as_str())
            .bind(new.platform.as_str())
            .bind(new.channel.as_str())
            .bind(new.thread.as_deref())
            .bind(self.notes_json.as_str())
            .bind(self.now)
            .bind(self.now)
            .bind(self.first_json.as_deref())
            .bind(new.cost.as_ref().map(|c| c.known().get()))
            .bind(new.cost.as_ref().map(cost_json))
            .bind(nlu.map(|n| n.path.as_str()))
            .bind(nlu.map(|n| n.latency_ms))
            .bind(nlu.map(|n| n.llm_calls))
            .bind(nlu.and_then(|n| n.prompt_tokens))
            .bind(nlu.and_then(|n| n.completion_tokens))
            .bind(nlu.and_then(|n| n.model.as_deref()))
            .bind(nlu.and_then(|n| n.prompt_version.as_deref()))
    }
}

impl Grouped for Proposal {
    type Out = Stored;
    type Key = String;
    const ORDER: u8 = 20;

    fn key(&self) -> String {
        self.id.clone()
    }

    /// A batch's requests in a few statements each: the requests, the
    /// ones already stored (read back), their audit rows, their cards.
    fn run_all(
        conn: &mut sqlx::AnyConnection,
        ops: Vec<Arc<Self>>,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StorageError>> {
        Box::pin(async move {
            let mut inserted = HashMap::new();
            for range in batch::chunks(ops.len()) {
                let sql = format!(
                    "INSERT INTO requests ({PROPOSAL_COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}",
                    batch::values(range.len(), PROPOSAL_PARAMS)
                );
                let mut q = sqlx::query(&sql);
                for op in &ops[range] {
                    q = op.bind(q);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let request = decode(&row)?;
                    inserted.insert(request.id.clone(), request);
                }
            }
            // The first proposal of an id is the new one; any other was
            // stored before (by an earlier handling of the same event).
            let mut outcomes: Vec<Option<Stored>> = ops
                .iter()
                .map(|op| inserted.remove(&op.id).map(Stored::New))
                .collect();
            let found_ids: Vec<&str> = ops
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .map(|(op, _)| op.id.as_str())
                .collect();
            let mut found = HashMap::new();
            for range in batch::chunks(found_ids.len()) {
                let sql = format!(
                    "SELECT {COLUMNS} FROM requests WHERE id IN ({})",
                    batch::params(1, range.len())
                );
                let mut q = sqlx::query(&sql);
                for id in &found_ids[range] {
                    q = q.bind(*id);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let request = decode(&row)?;
                    found.insert(request.id.clone(), request);
                }
            }
            for (op, outcome) in ops.iter().zip(&mut outcomes) {
                if outcome.is_none() {
                    let request = found.get(&op.id).cloned().ok_or_else(|| {
                        StorageError::Corrupt(format!("request {} neither stored nor found", op.id))
                    })?;
                    *outcome = Some(Stored::Found(request));
                }
            }
            let outcomes: Vec<Stored> = outcomes.into_iter().flatten().collect();
            let audits: Vec<(&Proposal, &Request)> = ops
                .iter()
                .zip(&outcomes)
                .filter_map(|(op, o)| match o {
                    Stored::New(r) => Some((&**op, r)),
                    Stored::Found(_) => None,
                })
                .collect();
            for range in batch::chunks(audits.len()) {
                let sql = format!("{INSERT_EVENTS} {}", batch::values(range.len(), 8));
                let mut q = sqlx::query(&sql);
                for (op, request) in &audits[range] {
                    q = q
                        .bind(request.id.as_str())
                        .bind(op.now)
                        .bind(op.actor.as_str())
                        .bind(op.chat.as_str())
                        .bind("propose")
                        .bind(None::<String>)
                        .bind(RequestState::Proposed.as_str())
                        .bind(op.action_json.as_str());
                }
                q.execute(&mut *conn).await?;
            }
            // A re-taken event's card is queued again under the same
            // origin key, and so is not posted twice.
            let cards: Vec<(OutboxItem, Option<String>)> = ops
                .iter()
                .zip(&outcomes)
                .filter_map(|(op, o)| {
                    let (Stored::New(r) | Stored::Found(r)) = o;
                    op.card.as_ref().map(|card| (card(r), op.origin.clone()))
                })
                .collect();
            let now = ops.iter().map(|o| o.now).max().unwrap_or_default();
            super::outbox::insert_many(&mut *conn, &cards, now).await?;
            Ok(outcomes)
        })
    }
}

impl RequestStore<'_> {
    /// Stores a new proposed request with its first audit row.
    pub async fn insert(
        &self,
        new: NewRequest,
        actor: &str,
        chat: &str,
        card: Option<CardOf>,
    ) -> Result<Stored, StorageError> {
        // Drawn here, not in the write: it may run more than once (`batch`),
        // and the origin of this handling is not where the write runs.
        let id = new.id.clone().unwrap_or_else(new_request_id);
        let nonce = random_token(12);
        let origin = card
            .as_ref()
            .and_then(|_| crate::util::origin::next_post_key());
        let now = now_ms();
        let action_json = serde_json::to_string(&new.action).expect("actions serialize");
        let notes_json = serde_json::to_string(&new.notes).expect("strings serialize");
        let first_json = new
            .first
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("actions serialize"));
        self.db
            .grouped(Proposal {
                id,
                nonce,
                origin,
                now,
                action_json,
                notes_json,
                first_json,
                actor: actor.to_owned(),
                chat: chat.to_owned(),
                new,
                card,
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Request, StorageError> {
        self.find(id)
            .await?
            .ok_or_else(|| StorageError::NotFound(id.to_owned()))
    }

    pub async fn find(&self, id: &str) -> Result<Option<Request>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Requests for `service` in `environment` that are running or ran
    /// since `since` (Unix ms), newest first: the ones a deploy Paver hears
    /// about may be carrying out.
    pub async fn running_or_done_since(
        &self,
        service: &str,
        environment: &str,
        since: i64,
    ) -> Result<Vec<Request>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests WHERE service = $1 AND environment = $2 \
             AND state IN ('approved', 'executing', 'succeeded') AND updated_at >= $3 \
             ORDER BY updated_at DESC, id"
        ))
        .bind(service)
        .bind(environment)
        .bind(since)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Requests in `state` whose `stamp` is before `before` (Unix ms),
    /// oldest first: what the sweeper expires. Only those are read, not
    /// every request in the state (at 500 requests a second a sweep read
    /// 15,000 open proposals to expire none).
    pub async fn in_state_before(
        &self,
        state: RequestState,
        stamp: Stamp,
        before: i64,
    ) -> Result<Vec<Request>, StorageError> {
        let column = stamp.column();
        // The state is written into the statement, not bound: a generic
        // plan then knows it, and PostgreSQL's partial index of states a
        // request can leave (`requests_open`) serves it; with `$1` it
        // could not, and a cached generic plan read the whole table. (The
        // text is one of the enum's own names, never input.)
        let state = state.as_str();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests WHERE state = '{state}' AND {column} < $1 ORDER BY {column}, id"
        ))
        .bind(before)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every request in `state`, oldest first.
    pub async fn in_state(&self, state: RequestState) -> Result<Vec<Request>, StorageError> {
        self.in_state_before(state, Stamp::Created, i64::MAX).await
    }

    /// Applies one transition atomically with its audit row. Only one of
    /// several concurrent callers can win (the update is conditional on the
    /// state it read); the others, and any illegal transition, get
    /// `Unchanged` with the current request.
    pub async fn transition(
        &self,
        id: &str,
        t: Transition,
        actor: &str,
        chat: &str,
        detail: &str,
        updates: Updates,
    ) -> Result<TransitionOutcome, StorageError> {
        self.transition_guarded(id, t, Guard::default(), actor, chat, detail, updates)
            .await
    }

    /// [`Self::transition`], conditional also on `guard`: when the request
    /// no longer carries the guarded nonce or action hash, nothing is
    /// written and the outcome is `Stale`. The returned request is the row
    /// as this transaction wrote it, so a caller deciding on it decides on
    /// exactly what was confirmed. `Confirm` binds the request to its
    /// current action hash (`confirmed_hash`) in the same statement.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_guarded(
        &self,
        id: &str,
        t: Transition,
        guard: Guard<'_>,
        actor: &str,
        chat: &str,
        detail: &str,
        updates: Updates,
    ) -> Result<TransitionOutcome, StorageError> {
        for _ in 0..3 {
            let current = self.get(id).await?;
            let Some(next) = current.state.apply(t) else {
                return Ok(TransitionOutcome::Unchanged(current));
            };
            if guard.mismatches(&current) {
                return Ok(TransitionOutcome::Stale(current));
            }
            let now = now_ms();
            let approvers_json = updates
                .approvers
                .as_ref()
                .map(|a| serde_json::to_string(a).expect("approvers serialize"));
            let mut sql = String::from(
                "UPDATE requests SET state = $1, updated_at = $2, version = version + 1, \
                 approvers_json = COALESCE($3, approvers_json), approver = COALESCE($4, approver), \
                 approval_expires_at = COALESCE($5, approval_expires_at), expires_at = COALESCE($6, expires_at), \
                 result_url = COALESCE($7, result_url), error = $8, retryable = $13, \
                 denied_by = COALESCE($14, denied_by), denial_reason = COALESCE($15, denial_reason), \
                 notes_json = COALESCE($16, notes_json)",
            );
            if t == Transition::Confirm {
                sql.push_str(", confirmed_hash = action_hash");
            }
            // The guard is re-checked by the statement itself: the read above
            // is only for the error path.
            sql.push_str(" WHERE id = $9 AND state = $10 AND nonce = $11 AND action_hash = $12");
            let denial = updates
                .decision
                .as_ref()
                .filter(|d| d.decision == ApprovalDecision::Denied);
            let mut tx = self.db.pool.begin().await?;
            let done = sqlx::query(&sql)
                .bind(next.as_str())
                .bind(now)
                .bind(approvers_json)
                .bind(updates.approver.clone())
                .bind(updates.approval_expires_at)
                .bind(updates.expires_at)
                .bind(updates.result_url.clone())
                .bind(updates.error.clone())
                .bind(id)
                .bind(current.state.as_str())
                .bind(guard.nonce.unwrap_or(&current.nonce))
                .bind(guard.action_hash.unwrap_or(&current.action_hash))
                .bind(updates.retryable.map(i64::from))
                .bind(denial.map(|d| d.approver.clone()))
                .bind(denial.and_then(|d| d.reason.clone()))
                .bind(
                    updates
                        .notes
                        .as_ref()
                        .map(|n| serde_json::to_string(n).expect("strings serialize")),
                )
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                // Someone else moved or amended it between our read and our
                // write: read again and decide again.
                tx.rollback().await?;
                continue;
            }
            insert_event(
                &mut tx,
                id,
                now,
                actor,
                chat,
                t.as_str(),
                Some(current.state),
                next,
                detail,
            )
            .await?;
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let written = decode(&row)?;
            if let Some(d) = &updates.decision {
                sqlx::query(
                    "INSERT INTO approvals (request_id, approver, decision, action_hash, at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&d.approver)
                .bind(d.decision.as_str())
                .bind(&written.action_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(TransitionOutcome::Applied(written));
        }
        let current = self.get(id).await?;
        let stale = current.state.apply(t).is_some() && guard.mismatches(&current);
        Ok(if stale {
            TransitionOutcome::Stale(current)
        } else {
            TransitionOutcome::Unchanged(current)
        })
    }

    pub async fn events(&self, id: &str) -> Result<Vec<Event>, StorageError> {
        let rows = sqlx::query(
            "SELECT at, actor, chat, transition, from_state, to_state, detail FROM request_events WHERE request_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(Event::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn record_approval(
        &self,
        id: &str,
        approver: &str,
        decision: &str,
        action_hash: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO approvals (request_id, approver, decision, action_hash, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(approver)
        .bind(decision)
        .bind(action_hash)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn approvals(&self, id: &str) -> Result<Vec<Approval>, StorageError> {
        let rows = sqlx::query(
            "SELECT approver, decision, action_hash, at FROM approvals WHERE request_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .iter()
            .map(Approval::from_row)
            .collect::<Result<_, _>>()?)
    }
}

/// Of `requests`, the newest still proposed.
fn newest_proposed(requests: Vec<Request>) -> Option<Request> {
    requests
        .into_iter()
        .filter(|r| r.state == RequestState::Proposed)
        .max_by_key(|r| r.created_at)
}

/// The audit log's columns as a row is added (8).
const INSERT_EVENTS: &str = "INSERT INTO request_events (request_id, at, actor, chat, transition, from_state, to_state, detail) VALUES";

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    at: i64,
    actor: &str,
    chat: &str,
    transition: &str,
    from: Option<RequestState>,
    to: RequestState,
    detail: &str,
) -> Result<(), StorageError> {
    sqlx::query(&format!("{INSERT_EVENTS} {}", batch::values(1, 8)))
        .bind(id)
        .bind(at)
        .bind(actor)
        .bind(chat)
        .bind(transition)
        .bind(from.map(|s| s.as_str().to_owned()))
        .bind(to.as_str())
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// How a request was understood (the `nlu_*` columns).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NluRecord {
    /// `rules`, `llm` or `rules_fallback`.
    pub path: String,
    pub latency_ms: i64,
    pub llm_calls: i64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
}

/// Writes how a request's action was understood (on a transaction of the
/// insert, or alone).
async fn record_nlu(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    nlu: &NluRecord,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE requests SET nlu_path = $1, nlu_latency_ms = $2, nlu_llm_calls = $3, nlu_prompt_tokens = $4, \
         nlu_completion_tokens = $5, nlu_model = $6, nlu_prompt_version = $7 WHERE id = $8",
    )
    .bind(&nlu.path)
    .bind(nlu.latency_ms)
    .bind(nlu.llm_calls)
    .bind(nlu.prompt_tokens)
    .bind(nlu.completion_tokens)
    .bind(nlu.model.clone())
    .bind(nlu.prompt_version.clone())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

impl RequestStore<'_> {
    /// Records how the request's current action was understood.
    pub async fn record_nlu(&self, id: &str, nlu: &NluRecord) -> Result<(), StorageError> {
        let mut conn = self.db.pool.acquire().await?;
        record_nlu(&mut conn, id, nlu).await
    }

    /// How the request was understood; `None` when nothing was recorded.
    pub async fn nlu(&self, id: &str) -> Result<Option<NluRecord>, StorageError> {
        let row = sqlx::query(
            "SELECT nlu_path, nlu_latency_ms, nlu_llm_calls, nlu_prompt_tokens, nlu_completion_tokens, nlu_model, nlu_prompt_version \
             FROM requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let Some(path) = get_opt_str(&r, "nlu_path")? else {
            return Ok(None);
        };
        Ok(Some(NluRecord {
            path,
            latency_ms: get_opt_i64(&r, "nlu_latency_ms")?.unwrap_or(0),
            llm_calls: get_opt_i64(&r, "nlu_llm_calls")?.unwrap_or(0),
            prompt_tokens: get_opt_i64(&r, "nlu_prompt_tokens")?,
            completion_tokens: get_opt_i64(&r, "nlu_completion_tokens")?,
            model: get_opt_str(&r, "nlu_model")?,
            prompt_version: get_opt_str(&r, "nlu_prompt_version")?,
        }))
    }

    /// The proposal a reply in `thread` is about: the request whose card is
    /// the thread's message, else the latest request proposed in that thread.
    /// Only requests still `proposed` count.
    pub async fn proposal_in_thread(
        &self,
        platform: Platform,
        channel: &str,
        thread: &str,
    ) -> Result<Option<Request>, StorageError> {
        // Two lookups by index, not a join: PostgreSQL keeps a prepared
        // statement's generic plan, and the one it made for the join on
        // near-empty tables walked every proposed request (`requests_state`)
        // and probed `cards` for each: under load it grew with the table
        // until the handlings, then the whole replica, fell behind.
        let keys = sqlx::query(
            "SELECT card_key FROM cards WHERE platform = $1 AND channel = $2 AND message_ref = $3",
        )
        .bind(platform.as_str())
        .bind(channel)
        .bind(thread)
        .fetch_all(&self.db.pool)
        .await?;
        // By id alone, the state checked here: with `state = $2` too, the
        // generic plan made on an empty table took the state index over
        // the primary key.
        let mut under_card = Vec::new();
        for key in &keys {
            under_card.extend(self.find(&get_str(key, "card_key")?).await?);
        }
        if let Some(r) = newest_proposed(under_card) {
            return Ok(Some(r));
        }
        // Every request of the thread (a handful: people type them), the
        // newest proposed one picked here. With the state and the order in
        // SQL, the generic plan PostgreSQL made on a near-empty table walked
        // the state index backwards by time, filtering every proposed
        // request: 30 ms a handling at 15,000 requests, and growing.
        let in_thread = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests WHERE platform = $1 AND channel = $2 AND thread = $3"
        ))
        .bind(platform.as_str())
        .bind(channel)
        .bind(thread)
        .fetch_all(&self.db.pool)
        .await?;
        let in_thread = in_thread
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(newest_proposed(in_thread))
    }

    /// Replaces the action of a request that is still `proposed` (a
    /// follow-up amended it): new hash and notes, and a new nonce so the
    /// old card's buttons stop working; the old and new action go in the
    /// audit log. `None` when the request is no longer a proposal.
    #[allow(clippy::too_many_arguments)]
    pub async fn amend(
        &self,
        id: &str,
        action: &Action,
        action_hash: &str,
        notes: &[String],
        first: Option<&Action>,
        cost: Option<&MonthlyCost>,
        actor: &str,
        chat: &str,
        detail: &str,
    ) -> Result<Option<Request>, StorageError> {
        let now = now_ms();
        let first_json = first.map(|a| serde_json::to_string(a).expect("actions serialize"));
        let action_json = serde_json::to_string(action).expect("actions serialize");
        let notes_json = serde_json::to_string(notes).expect("strings serialize");
        let mut tx = self.db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE requests SET action_kind = $1, action_json = $2, action_hash = $3, service = $4, environment = $5, \
             notes_json = $6, nonce = $7, updated_at = $8, version = version + 1, first_action_json = $11, \
             monthly_cost_cents = $12, cost_json = $13 \
             WHERE id = $9 AND state = $10",
        )
        .bind(action.kind().as_str())
        .bind(&action_json)
        .bind(action_hash)
        .bind(action.service().map(|s| s.as_str().to_owned()))
        .bind(action.environment().map(|e| e.as_str().to_owned()))
        .bind(&notes_json)
        .bind(random_token(12))
        .bind(now)
        .bind(id)
        .bind(RequestState::Proposed.as_str())
        .bind(first_json)
        .bind(cost.map(|c| c.known().get()))
        .bind(cost.map(cost_json))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        insert_event(
            &mut tx,
            id,
            now,
            actor,
            chat,
            "amend",
            Some(RequestState::Proposed),
            RequestState::Proposed,
            &format!("{detail}: {action_json}"),
        )
        .await?;
        tx.commit().await?;
        self.get(id).await.map(Some)
    }
}

/// How an estimate is stored.
fn cost_json(cost: &MonthlyCost) -> String {
    serde_json::to_string(cost).expect("estimates serialize")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::outbox::{OutboxItem, OutboxKind};
    use super::super::Db;
    use super::{CardOf, NewRequest, Stamp, Stored, Updates};
    use crate::domain::{
        Action, Environment, Platform, RequestState, ResourceKind, ServiceName, Transition,
    };

    fn proposal(id: &str) -> NewRequest {
        let action = Action::CreateEnvironment {
            service: ServiceName::parse("order-service").unwrap(),
            environment: Environment::Staging,
            resources: vec![ResourceKind::Postgres],
        };
        NewRequest {
            id: Some(id.to_owned()),
            action_hash: crate::policy::action_hash(&action),
            action,
            requester: "jane".into(),
            requester_chat_id: "U1".into(),
            platform: Platform::Slack,
            channel: "C1".into(),
            thread: None,
            notes: vec!["a note".into()],
            first: None,
            nlu: None,
            cost: None,
        }
    }

    fn card() -> CardOf {
        Arc::new(|r| OutboxItem {
            platform: Platform::Slack,
            channel: "C1".into(),
            kind: OutboxKind::Post,
            user_id: None,
            card_key: Some(r.id.clone()),
            thread_key: None,
            thread_ref: None,
            body: format!("card of {}", r.id),
        })
    }

    /// Two handlings of one event at once (a lease that ran out under a
    /// slow first one) store one request, one audit row and one card, and
    /// the others of the batch are stored as if alone.
    #[tokio::test]
    async fn a_batch_stores_each_request_once_with_its_audit_row_and_card() {
        let (_dir, db) = scratch_db().await;
        // More than a batch holds (256), so chunks of every size run.
        let handlings: Vec<_> = (0..600)
            .map(|i| {
                let db = db.clone();
                let event = format!("slack:Ev{}", i % 300);
                crate::util::origin::within(event, false, async move {
                    let id = format!("r-{}", i % 300);
                    db.requests()
                        .insert(proposal(&id), "jane", "@jane", Some(card()))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let stored = futures_util::future::join_all(handlings).await;
        let new: Vec<_> = stored
            .iter()
            .filter_map(|s| match s {
                Stored::New(r) => Some(r.id.clone()),
                Stored::Found(_) => None,
            })
            .collect();
        assert_eq!(new.len(), 300, "{new:?}");
        for s in &stored {
            let (Stored::New(r) | Stored::Found(r)) = s;
            assert_eq!(r.notes, ["a note"]);
            assert_eq!(r.requester, "jane");
        }
        let count = |sql: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM requests").await, 300);
        assert_eq!(
            count("SELECT COUNT(*) FROM request_events WHERE transition = 'propose'").await,
            300
        );
        assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 300);
        assert_eq!(
            count("SELECT COUNT(DISTINCT card_key) FROM outbox").await,
            300
        );
    }

    async fn scratch_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap();
        (dir, db)
    }

    async fn made_ago(db: &Db, id: &str, ms: i64) {
        sqlx::query("UPDATE requests SET created_at = created_at - $1, updated_at = updated_at - $1 WHERE id = $2")
            .bind(ms)
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
    }

    async fn cancel(db: &Db, id: &str) {
        db.requests()
            .transition(
                id,
                Transition::Cancel,
                "jane",
                "@jane",
                "",
                Updates::default(),
            )
            .await
            .unwrap();
    }

    /// A reply in a thread is about the newest request still proposed
    /// there, or about the request whose card the thread is under; a
    /// settled one, or one in another thread, does not count.
    #[tokio::test]
    async fn the_proposal_in_a_thread_is_its_newest_still_proposed() {
        let (_dir, db) = scratch_db().await;
        let store = db.requests();
        for (id, thread) in [
            ("r-old", "T1"),
            ("r-new", "T1"),
            ("r-gone", "T1"),
            ("r-else", "T2"),
        ] {
            let mut new = proposal(id);
            new.thread = Some(thread.into());
            store.insert(new, "jane", "@jane", None).await.unwrap();
        }
        made_ago(&db, "r-old", 60_000).await;
        made_ago(&db, "r-new", 30_000).await;
        cancel(&db, "r-gone").await;
        let found = |thread: &'static str| {
            let db = db.clone();
            async move {
                db.requests()
                    .proposal_in_thread(Platform::Slack, "C1", thread)
                    .await
                    .unwrap()
                    .map(|r| r.id)
            }
        };
        assert_eq!(found("T1").await.as_deref(), Some("r-new"));
        assert_eq!(found("T2").await.as_deref(), Some("r-else"));
        assert_eq!(found("T3").await, None);
        // Under a card: the card's request, even in another thread.
        db.outbox()
            .save_card("r-old", Platform::Slack, "C1", "M1")
            .await
            .unwrap();
        assert_eq!(found("M1").await.as_deref(), Some("r-old"));
        db.outbox()
            .save_card("r-gone", Platform::Slack, "C1", "M2")
            .await
            .unwrap();
        assert_eq!(found("M2").await, None, "a cancelled request's card");
    }

    /// The sweeper reads only requests in the state made (or last
    /// changed) before the cut-off, oldest first.
    #[tokio::test]
    async fn in_state_before_reads_only_what_is_due() {
        let (_dir, db) = scratch_db().await;
        let store = db.requests();
        for id in ["r-1", "r-2", "r-3", "r-4"] {
            store
                .insert(proposal(id), "jane", "@jane", None)
                .await
                .unwrap();
        }
        made_ago(&db, "r-1", 90_000).await;
        made_ago(&db, "r-2", 120_000).await;
        made_ago(&db, "r-4", 100_000).await;
        cancel(&db, "r-4").await;
        let cut = super::now_ms() - 60_000;
        let ids = |rs: Vec<super::Request>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store
                .in_state_before(RequestState::Proposed, Stamp::Created, cut)
                .await
                .unwrap()),
            ["r-2", "r-1"]
        );
        // r-4 was changed just now (cancelled): not before the cut by
        // updated_at, though made before it.
        assert!(store
            .in_state_before(RequestState::Cancelled, Stamp::Updated, cut)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            ids(store
                .in_state_before(RequestState::Cancelled, Stamp::Created, cut)
                .await
                .unwrap()),
            ["r-4"]
        );
    }
}
