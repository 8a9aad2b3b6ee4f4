//! Policy: who may ask for which platform change, which changes need an
//! approval and by whom, and the hard limits of the golden path.
//!
//! [`evaluate`] decides, for one requester and one typed [`Action`], in this
//! order (the first step that decides wins):
//!
//! 1. Actions that change nothing (`status`, `who_owns`, `ask`, …) are always
//!    allowed: policy governs changes only.
//! 2. A requester unknown to the catalog may not ask for changes.
//! 3. `requesters`: the requester must be allowed to ask at all (anyone, the
//!    owning team, or the owning team and the approver teams).
//! 4. Hard limits: `max_replicas`, `max_preview_envs_per_team`. Rules cannot
//!    lift them.
//! 5. `rules`, in order: the first rule whose actions and environments match
//!    decides `allow`, `approval` or `deny`. No match: allow.
//! 6. `max_monthly_cost_per_team`: a request that creates something and
//!    takes its owning team's estimated monthly cost past the limit needs
//!    approval even where step 5 allowed it (a denial stays a denial); the
//!    note on the card names the limit and the amounts.
//!
//! "Allow" still means the requester confirms before anything runs; the
//! request engine does that. "Approval" comes on top of it.
//!
//! When approval is needed but no catalog user other than the requester can
//! give it, the decision is still [`Decision::NeedsApproval`], with a note that
//! says so: the request is recorded and shown, the catalog may gain an approver
//! before the approval expires, and [`may_approve`] is checked against the
//! catalog at the moment someone presses `Approve`. [`Approvers::eligible`]
//! lets the engine show who can approve. The approvers model and the
//! four-eyes rule themselves are domain facts ([`crate::domain::approvers`]).
//!
//! An approval binds to [`action_hash`]: if the action changes in any field,
//! the hash changes and it must be approved again.
//!
//! `rules` holds the configuration and its patterns, `evaluate` the
//! decision.

mod evaluate;
mod rules;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::domain::{Action, UserName};

pub use crate::domain::{ApprovalRefused, Approvers};
pub use evaluate::cost_over_limit;
pub use evaluate::evaluate;
pub use rules::{
    owning_team, ActionPattern, ApproverSource, EnvPattern, LevelName, PolicyConfig, PolicyRule,
    PolicyValueError, Requesters, RuleDecision, UnknownUsers,
};

/// `Decision::Deny::rule` when the requester may not ask for changes.
pub const RULE_REQUESTERS: &str = "requesters";
/// `Decision::Deny::rule` when a scale goes past `max_replicas`.
pub const RULE_MAX_REPLICAS: &str = "max_replicas";
/// `Decision::Deny::rule` when a team has all the preview environments it may have.
pub const RULE_MAX_PREVIEWS: &str = "max_preview_envs_per_team";
/// The gate on production: `production_min_level`.
pub const RULE_MIN_LEVEL: &str = "production_min_level";
/// `Decision::NeedsApproval::rule` when a request takes its team past
/// `max_monthly_cost_per_team`.
pub const RULE_MAX_COST: &str = "max_monthly_cost_per_team";

/// A service's scorecard, for the production gate. The scorecard flow
/// implements it; policy only reads what it says.
#[async_trait::async_trait]
pub trait Scores: Send + Sync {
    /// `None` when it cannot be read now.
    async fn score(
        &self,
        service: &crate::domain::ServiceName,
    ) -> Option<crate::domain::scorecard::ServiceScore>;
}

/// Facts the policy needs that live outside the action.
#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    /// Preview environments the owning team of the action's service has now.
    pub active_previews_for_team: u32,
    /// For a deploy or promotion to production under
    /// `production_min_level`: the service's scorecard (`None`: unreadable,
    /// and the gate stays shut).
    pub score: Option<crate::domain::scorecard::ServiceScore>,
    /// For a request that creates something while
    /// `max_monthly_cost_per_team` is set: its cost and its team's.
    pub cost: Option<TeamCost>,
}

/// What the monthly cost limit per team is checked on.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamCost {
    /// The team that owns the request's service.
    pub team: crate::domain::TeamName,
    /// What the team's environments and resources cost a month now;
    /// `None` when it could not be read (and the limit asks for approval).
    pub current: Option<crate::domain::Cents>,
    /// This request's estimate.
    pub estimate: crate::domain::MonthlyCost,
}

/// What policy says about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Runs on the requester's confirmation. `notes` go on the card.
    Allow { notes: Vec<String> },
    /// Runs on confirmation plus an approval by `approvers`. `rule` is the
    /// rule that asked for it; `notes` (for the card) say so in words.
    NeedsApproval {
        rule: String,
        approvers: Approvers,
        notes: Vec<String>,
    },
    /// Refused. `rule` is the rule or limit that said no; `reason` says why
    /// in words a developer understands, naming it.
    Deny { rule: String, reason: String },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The rule or limit that decided, when one did.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Decision::Allow { .. } => None,
            Decision::NeedsApproval { rule, .. } | Decision::Deny { rule, .. } => Some(rule),
        }
    }

    /// What to show on the card.
    pub fn notes(&self) -> Vec<String> {
        match self {
            Decision::Allow { notes } | Decision::NeedsApproval { notes, .. } => notes.clone(),
            Decision::Deny { reason, .. } => vec![reason.clone()],
        }
    }
}

/// May `approver` approve (or deny) a request by `requester` under
/// `approvers`, as the catalog knows them now? See
/// [`Approvers::may_approve`]; the error is the reason shown to the user.
pub fn may_approve(
    catalog: &Catalog,
    approvers: &Approvers,
    approver: &UserName,
    requester: &str,
    requester_chat_id: &str,
) -> Result<(), ApprovalRefused> {
    approvers.may_approve(catalog, approver, requester, requester_chat_id)
}

/// Whether the catalog user `user` is the person who made a request (see
/// [`crate::domain::approvers::same_person`]).
pub fn same_person(
    catalog: &Catalog,
    user: &UserName,
    requester: &str,
    requester_chat_id: &str,
) -> bool {
    crate::domain::approvers::same_person(catalog, user, requester, requester_chat_id)
}

/// A stable hash of an action: sha256 (hex) of its contract JSON with object
/// keys sorted and no whitespace. An approval binds to it.
pub fn action_hash(action: &Action) -> String {
    let value = serde_json::to_value(action).expect("an action always serializes to JSON");
    let canonical = serde_json::to_string(&sorted(value)).expect("JSON values serialize");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
