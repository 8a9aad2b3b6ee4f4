//! The `[policy]` section: who may ask, who approves, the hard limits, and
//! the rules with their action and environment patterns. Parsed and checked
//! here; [`super::evaluate()`] applies them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::domain::{Action, ActionKind, Approvers, Environment, NameError, TeamName};

/// A value in `[policy]` that does not parse; serde puts the text in the
/// config error, next to the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyValueError {
    #[error("approver `{value}` is neither \"owning_team\" nor a catalog group name ({reason})")]
    Approver { value: String, reason: NameError },
    #[error(
        "unknown action `{value}` in a policy rule (expected \"*\" or one of: {})",
        changes().join(", ")
    )]
    Action { value: String },
    #[error("unknown environment `{value}` in a policy rule (expected \"*\", dev, staging, production or preview)")]
    Environment { value: String },
}

/// The actions a rule can be about: those that change something.
fn changes() -> Vec<&'static str> {
    ActionKind::ALL
        .into_iter()
        .filter(|k| k.is_mutating())
        .map(ActionKind::as_str)
        .collect()
}

/// Who may ask for changes to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requesters {
    /// Any user known to the catalog.
    #[default]
    Anyone,
    /// Members of the team that owns the service.
    OwningTeam,
    /// Members of the owning team or of one of the approver teams.
    OwningTeamOrApprovers,
}

impl Requesters {
    pub fn as_str(self) -> &'static str {
        match self {
            Requesters::Anyone => "anyone",
            Requesters::OwningTeam => "owning_team",
            Requesters::OwningTeamOrApprovers => "owning_team_or_approvers",
        }
    }
}

/// One entry of `policy.approvers`: the owning team of the service the
/// action is about, or a named catalog group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ApproverSource {
    OwningTeam,
    Team(TeamName),
}

impl TryFrom<String> for ApproverSource {
    type Error = PolicyValueError;
    fn try_from(value: String) -> Result<Self, PolicyValueError> {
        if value == "owning_team" {
            return Ok(ApproverSource::OwningTeam);
        }
        TeamName::parse(value.clone())
            .map(ApproverSource::Team)
            .map_err(|reason| PolicyValueError::Approver { value, reason })
    }
}

impl From<ApproverSource> for String {
    fn from(value: ApproverSource) -> String {
        value.to_string()
    }
}

impl fmt::Display for ApproverSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApproverSource::OwningTeam => f.write_str("owning_team"),
            ApproverSource::Team(t) => f.write_str(t.as_str()),
        }
    }
}

/// Which actions a rule is about: one action name from the contract, or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ActionPattern {
    Any,
    Kind(ActionKind),
}

impl ActionPattern {
    pub fn matches(self, kind: ActionKind) -> bool {
        match self {
            ActionPattern::Any => true,
            ActionPattern::Kind(k) => k == kind,
        }
    }
}

impl TryFrom<String> for ActionPattern {
    type Error = PolicyValueError;
    fn try_from(value: String) -> Result<Self, PolicyValueError> {
        if value == "*" {
            return Ok(ActionPattern::Any);
        }
        match ActionKind::from_name(&value) {
            Some(kind) => Ok(ActionPattern::Kind(kind)),
            None => Err(PolicyValueError::Action { value }),
        }
    }
}

impl From<ActionPattern> for String {
    fn from(value: ActionPattern) -> String {
        value.to_string()
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionPattern::Any => f.write_str("*"),
            ActionPattern::Kind(k) => f.write_str(k.as_str()),
        }
    }
}

/// Which environments a rule is about: one canonical environment, or `*`.
/// Only `*` matches actions without an environment (`scaffold_service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EnvPattern {
    Any,
    Env(Environment),
}

impl EnvPattern {
    pub fn matches(self, env: Option<Environment>) -> bool {
        match (self, env) {
            (EnvPattern::Any, _) => true,
            (EnvPattern::Env(want), Some(got)) => want == got,
            (EnvPattern::Env(_), None) => false,
        }
    }
}

impl TryFrom<String> for EnvPattern {
    type Error = PolicyValueError;
    fn try_from(value: String) -> Result<Self, PolicyValueError> {
        if value == "*" {
            return Ok(EnvPattern::Any);
        }
        match Environment::ALL.into_iter().find(|e| e.as_str() == value) {
            Some(env) => Ok(EnvPattern::Env(env)),
            None => Err(PolicyValueError::Environment { value }),
        }
    }
}

impl From<EnvPattern> for String {
    fn from(value: EnvPattern) -> String {
        value.to_string()
    }
}

impl fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvPattern::Any => f.write_str("*"),
            EnvPattern::Env(e) => f.write_str(e.as_str()),
        }
    }
}

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDecision {
    /// Runs on the requester's confirmation.
    Allow,
    /// Runs on the requester's confirmation and an approver's approval.
    Approval,
    /// Refused.
    Deny,
}

/// One entry of `[[policy.rules]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Shown to users whenever this rule decides.
    pub name: String,
    pub actions: Vec<ActionPattern>,
    pub environments: Vec<EnvPattern>,
    pub decision: RuleDecision,
    /// For `deny`: the reason shown to the requester (the rule's name is
    /// always added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PolicyRule {
    pub fn matches(&self, action: &Action) -> bool {
        let kind = action.kind();
        let env = action.environment();
        self.actions.iter().any(|p| p.matches(kind))
            && self.environments.iter().any(|p| p.matches(env))
    }

    fn new(
        name: &str,
        actions: &[ActionPattern],
        environments: &[EnvPattern],
        decision: RuleDecision,
    ) -> Self {
        PolicyRule {
            name: name.to_owned(),
            actions: actions.to_vec(),
            environments: environments.to_vec(),
            decision,
            reason: None,
        }
    }
}

/// The `[policy]` section. Its default is the golden path (see
/// `config/paver.toml`, which spells the same policy out).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub requesters: Requesters,
    pub approvers: Vec<ApproverSource>,
    pub approval_expiry_hours: u64,
    /// How long a failed request can be retried before it expires.
    pub failed_expiry_hours: u64,
    pub max_replicas: u32,
    /// 0 turns preview environments off.
    pub max_preview_envs_per_team: u32,
    pub preview_ttl_hours: u64,
    pub rules: Vec<PolicyRule>,
    /// What chat users unknown to the catalog may read.
    pub unknown_users: UnknownUsers,
    /// A deploy or promotion to production needs the service at this
    /// scorecard level at least (the docs: "a service that is not at least
    /// Bronze cannot be promoted to production"). Unset: no gate.
    pub production_min_level: Option<LevelName>,
    /// A request that would take its owning team's estimated monthly cost
    /// (what its environments and resources cost now, plus this request's
    /// estimate) past this needs approval, whatever the rules say (a rule
    /// that denies still denies). In `[cost]`'s currency. Unset: no limit.
    pub max_monthly_cost_per_team: Option<crate::domain::Price>,
}

/// A scorecard level as configured (`bronze`, `silver`, `gold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LevelName(pub crate::domain::scorecard::Level);

impl TryFrom<String> for LevelName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        crate::domain::scorecard::Level::parse(&value)
            .map(LevelName)
            .ok_or_else(|| format!("`{value}` is not a level (bronze, silver, gold)"))
    }
}

/// `policy.unknown_users`: whether chat users the catalog does not know get
/// ownership, status and scorecard answers (`read`), or only help and a
/// pointer to get added to the catalog (`none`, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownUsers {
    #[default]
    None,
    Read,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            requesters: Requesters::Anyone,
            approvers: vec![
                ApproverSource::OwningTeam,
                ApproverSource::Team(TeamName::parse("team-platform").expect("valid team name")),
            ],
            approval_expiry_hours: 24,
            failed_expiry_hours: 72,
            max_replicas: 20,
            max_preview_envs_per_team: 5,
            preview_ttl_hours: 72,
            unknown_users: UnknownUsers::None,
            production_min_level: None,
            max_monthly_cost_per_team: None,
            rules: vec![
                PolicyRule::new(
                    "production changes",
                    &[ActionPattern::Any],
                    &[EnvPattern::Env(Environment::Production)],
                    RuleDecision::Approval,
                ),
                PolicyRule::new(
                    "destroying shared environments",
                    &[ActionPattern::Kind(ActionKind::DestroyEnvironment)],
                    &[
                        EnvPattern::Env(Environment::Staging),
                        EnvPattern::Env(Environment::Production),
                    ],
                    RuleDecision::Approval,
                ),
            ],
        }
    }
}

const HOUR: u64 = 3600;

impl PolicyConfig {
    /// Whether `action` is gated on the service's scorecard: a deploy or
    /// promotion to production while `production_min_level` is set.
    pub fn gates_on_score(&self, action: &Action) -> bool {
        self.production_min_level.is_some()
            && matches!(
                action,
                Action::Deploy {
                    environment: Environment::Production,
                    ..
                } | Action::Promote {
                    to: Environment::Production,
                    ..
                }
            )
    }

    /// How long a preview environment lives before it is destroyed.
    pub fn preview_ttl(&self) -> Duration {
        Duration::from_secs(self.preview_ttl_hours.saturating_mul(HOUR))
    }

    /// How long a request waits for an approval before it expires.
    pub fn approval_expiry(&self) -> Duration {
        Duration::from_secs(self.approval_expiry_hours.saturating_mul(HOUR))
    }

    /// How long a failed request keeps its Retry button before it expires.
    pub fn failed_expiry(&self) -> Duration {
        Duration::from_secs(self.failed_expiry_hours.saturating_mul(HOUR))
    }

    /// The first rule that matches `action`, if any.
    pub fn matching_rule(&self, action: &Action) -> Option<&PolicyRule> {
        self.rules.iter().find(|r| r.matches(action))
    }

    /// The teams whose members may approve `action`: the owning team (when
    /// `owning_team` is configured and the catalog knows that group), then
    /// the named groups the catalog knows, in configured order, without
    /// duplicates.
    pub fn resolve_approvers(&self, catalog: &Catalog, action: &Action) -> Approvers {
        let mut teams: Vec<TeamName> = Vec::new();
        for source in &self.approvers {
            let team = match source {
                ApproverSource::OwningTeam => owning_team(catalog, action),
                ApproverSource::Team(t) => Some(t.clone()),
            };
            if let Some(t) = team {
                if catalog.group(t.as_str()).is_some() && !teams.contains(&t) {
                    teams.push(t);
                }
            }
        }
        Approvers { teams }
    }

    /// Values that parse but cannot work, or rules that can never decide.
    /// Each line names the key it is about.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.approval_expiry_hours == 0 {
            out.push(
                "policy.approval_expiry_hours: must be at least 1 (with 0 every approval request expires at once)"
                    .into(),
            );
        }
        if self.failed_expiry_hours == 0 {
            out.push(
                "policy.failed_expiry_hours: must be at least 1 (with 0 a failed request expires before anyone can retry it)"
                    .into(),
            );
        }
        if self.preview_ttl_hours == 0 {
            out.push(
                "policy.preview_ttl_hours: must be at least 1 (with 0 preview environments expire at once)"
                    .into(),
            );
        }
        if self.max_replicas == 0 {
            out.push("policy.max_replicas: must be at least 1 (0 refuses every scale)".into());
        }
        if self.max_monthly_cost_per_team.is_some() && self.approvers.is_empty() {
            out.push(
                "policy.max_monthly_cost_per_team: a request over it needs approval, but policy.approvers is empty, so nobody could approve"
                    .into(),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("policy.rules[{i}] ({:?})", rule.name);
            if rule.name.trim().is_empty() {
                out.push(format!(
                    "{at}: give the rule a name; it is shown to users whenever the rule decides"
                ));
            } else if !seen.insert(rule.name.trim()) {
                out.push(format!(
                    "{at}: another rule has the same name; users could not tell which one decided"
                ));
            }
            if rule.actions.is_empty() {
                out.push(format!(
                    "{at}: `actions` is empty, so the rule never matches"
                ));
            }
            if rule.environments.is_empty() {
                out.push(format!(
                    "{at}: `environments` is empty, so the rule never matches"
                ));
            }
            for p in &rule.actions {
                if let ActionPattern::Kind(k) = p {
                    if !k.is_mutating() {
                        out.push(format!(
                            "{at}: `{k}` changes nothing and is always allowed; policy rules only apply to changes"
                        ));
                    }
                    if *k == ActionKind::ScaffoldService
                        && !rule.environments.contains(&EnvPattern::Any)
                    {
                        out.push(format!(
                            "{at}: scaffold_service has no environment, so it is only matched by environments = [\"*\"]"
                        ));
                    }
                }
            }
            if rule.decision == RuleDecision::Approval && self.approvers.is_empty() {
                out.push(format!(
                    "{at}: needs approval, but policy.approvers is empty, so nobody could approve"
                ));
            }
            if rule.decision != RuleDecision::Deny && rule.reason.is_some() {
                out.push(format!(
                    "{at}: `reason` is only shown for decision = \"deny\""
                ));
            }
            if let Some(earlier) = self.rules[..i].iter().find(|e| covers(e, rule)) {
                out.push(format!(
                    "{at}: never decides, because the earlier rule {:?} matches everything it matches",
                    earlier.name
                ));
            }
        }
        out
    }

    /// Problems only visible with the catalog at hand: approver groups the
    /// catalog does not know (they are left out when approvers are resolved).
    pub fn catalog_problems(&self, catalog: &Catalog) -> Vec<String> {
        self.approvers
            .iter()
            .filter_map(|s| match s {
                ApproverSource::Team(t) if catalog.group(t.as_str()).is_none() => Some(format!(
                    "policy.approvers: `{t}` is not a group in the catalog, so its members cannot approve anything"
                )),
                _ => None,
            })
            .collect()
    }
}

/// Whether `earlier` matches every action `later` matches.
fn covers(earlier: &PolicyRule, later: &PolicyRule) -> bool {
    let actions = earlier.actions.contains(&ActionPattern::Any)
        || (!later.actions.contains(&ActionPattern::Any)
            && later.actions.iter().all(|a| earlier.actions.contains(a)));
    let envs = earlier.environments.contains(&EnvPattern::Any)
        || (!later.environments.contains(&EnvPattern::Any)
            && later
                .environments
                .iter()
                .all(|e| earlier.environments.contains(e)));
    actions && envs && !later.actions.is_empty() && !later.environments.is_empty()
}

/// The team that owns what the action changes: the service's owner in the
/// catalog, or for `scaffold_service` the team that will own the new service.
pub fn owning_team(catalog: &Catalog, action: &Action) -> Option<TeamName> {
    match action {
        Action::ScaffoldService { owner, .. } => owner.clone(),
        _ => action
            .service()
            .and_then(|s| catalog.component(s.as_str()))
            .and_then(|c| c.owner.clone()),
    }
}
