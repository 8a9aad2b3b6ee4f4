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
//!
//! "Allow" still means the requester confirms before anything runs; the
//! request engine does that. "Approval" comes on top of it.
//!
//! When approval is needed but no catalog user other than the requester can
//! give it, the decision is still [`Decision::NeedsApproval`], with a note that
//! says so: the request is recorded and shown, the catalog may gain an approver
//! before the approval expires, and [`may_approve`] is checked against the
//! catalog at the moment someone presses `Approve`. [`Approvers::eligible`]
//! lets the engine show who can approve.
//!
//! An approval binds to [`action_hash`]: if the action changes in any field,
//! the hash changes and it must be approved again.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::domain::{Action, ActionKind, Environment, TeamName, UserName};

/// `Decision::Deny::rule` when the requester may not ask for changes.
pub const RULE_REQUESTERS: &str = "requesters";
/// `Decision::Deny::rule` when a scale goes past `max_replicas`.
pub const RULE_MAX_REPLICAS: &str = "max_replicas";
/// `Decision::Deny::rule` when a team has all the preview environments it may have.
pub const RULE_MAX_PREVIEWS: &str = "max_preview_envs_per_team";

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
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "owning_team" {
            return Ok(ApproverSource::OwningTeam);
        }
        TeamName::parse(value.clone())
            .map(ApproverSource::Team)
            .map_err(|e| {
                format!(
                    "approver `{value}` is neither \"owning_team\" nor a catalog group name ({e})"
                )
            })
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
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "*" {
            return Ok(ActionPattern::Any);
        }
        ActionKind::from_name(&value)
            .map(ActionPattern::Kind)
            .ok_or_else(|| {
                let known: Vec<&str> = ActionKind::ALL
                    .into_iter()
                    .filter(|k| k.is_mutating())
                    .map(ActionKind::as_str)
                    .collect();
                format!(
                    "unknown action `{value}` in a policy rule (expected \"*\" or one of: {})",
                    known.join(", ")
                )
            })
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
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "*" {
            return Ok(EnvPattern::Any);
        }
        Environment::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
            .map(EnvPattern::Env)
            .ok_or_else(|| {
                format!(
                    "unknown environment `{value}` in a policy rule (expected \"*\", dev, staging, production or preview)"
                )
            })
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

/// Facts the policy needs that live outside the action.
#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    /// Preview environments the owning team of the action's service has now.
    pub active_previews_for_team: u32,
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

/// The teams whose members may approve a request, resolved from policy and
/// the catalog when the request was made. Stored with the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    pub teams: Vec<TeamName>,
}

impl Approvers {
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
    }

    /// "a member of team-commerce or team-platform"; "nobody" when no
    /// approver team is known.
    pub fn describe(&self) -> String {
        if self.teams.is_empty() {
            "nobody (no approver team is known in the catalog)".into()
        } else {
            format!("a member of {}", self.teams_or())
        }
    }

    /// "team-a", "team-a or team-b", "team-a, team-b or team-c".
    fn teams_or(&self) -> String {
        join_or(&self.teams)
    }

    /// Whether `user` is a member of one of the teams.
    pub fn includes(&self, catalog: &Catalog, user: &UserName) -> bool {
        self.teams.iter().any(|t| catalog.is_member(user, t))
    }

    /// The catalog users who could approve a request by `requester` (a
    /// catalog user name): every member of the teams except the requester
    /// (or anyone sharing an identity with them), sorted.
    pub fn eligible(&self, catalog: &Catalog, requester: &str) -> Vec<UserName> {
        let mut out = BTreeSet::new();
        for team in &self.teams {
            if let Some(group) = catalog.group(team.as_str()) {
                for m in &group.members {
                    if catalog.is_member(m, team) && !same_person(catalog, m, requester, "") {
                        out.insert(m.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

fn join_or<T: fmt::Display>(items: &[T]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(ToString::to_string).collect();
            format!("{} or {last}", init.join(", "))
        }
    }
}

/// Every identity a person is known by: the catalog user name, chat ids
/// and email of `user` when the catalog knows them.
fn identities<'a>(catalog: &'a Catalog, user: &'a str) -> Vec<&'a str> {
    let mut out = vec![user];
    if let Some(u) = catalog.user(user.trim()) {
        out.extend(
            [&u.slack_user_id, &u.discord_user_id, &u.email]
                .into_iter()
                .filter_map(|v| v.as_deref()),
        );
    }
    out.retain(|v| !v.trim().is_empty());
    out
}

/// Whether the catalog user `user` is the person who made a request, known
/// as `requester` (their catalog user name; an audit name such as
/// `slack:U0X` or a chat id or email when the catalog did not know them) and
/// `requester_chat_id` (the chat account they wrote from). Four-eyes is about
/// people, not names: any identity of one (catalog name, Slack id, Discord
/// id, email) matching any of the other's is the same person, so two
/// catalog users sharing an email or chat id cannot approve each other.
pub fn same_person(
    catalog: &Catalog,
    user: &UserName,
    requester: &str,
    requester_chat_id: &str,
) -> bool {
    let mut theirs = identities(catalog, requester);
    // An unknown requester is recorded as `platform:id`; the id is what a
    // catalog annotation would name.
    if let Some((_, id)) = requester.split_once(':') {
        theirs.push(id);
    }
    if !requester_chat_id.trim().is_empty() {
        theirs.push(requester_chat_id);
    }
    let mine = identities(catalog, user.as_str());
    mine.iter()
        .any(|m| theirs.iter().any(|t| crate::catalog::same_identity(m, t)))
}

/// The team that owns what the action changes: the service's owner in the
/// catalog, or for `scaffold_service` the team that will own the new service.
fn owning_team(catalog: &Catalog, action: &Action) -> Option<TeamName> {
    match action {
        Action::ScaffoldService { owner, .. } => owner.clone(),
        _ => action
            .service()
            .and_then(|s| catalog.component(s.as_str()))
            .and_then(|c| c.owner.clone()),
    }
}

/// The action in a few words, for reasons: "deploying order-service to production".
fn describe_action(action: &Action) -> String {
    match action {
        Action::CreateEnvironment {
            service,
            environment,
            ..
        } => format!("creating the {environment} environment of {service}"),
        Action::DestroyEnvironment {
            service,
            environment,
        } => format!("destroying the {environment} environment of {service}"),
        Action::AddResource {
            service,
            environment,
            ..
        } => format!("adding resources to {service} in {environment}"),
        Action::Deploy {
            service,
            environment,
            ..
        } => format!("deploying {service} to {environment}"),
        Action::Rollback {
            service,
            environment,
            ..
        } => format!("rolling back {service} in {environment}"),
        Action::Promote { service, to, .. } => format!("promoting {service} to {to}"),
        Action::Scale {
            service,
            environment,
            ..
        } => format!("scaling {service} in {environment}"),
        Action::Restart {
            service,
            environment,
        } => format!("restarting {service} in {environment}"),
        Action::ScaffoldService { name, .. } => format!("creating the new service {name}"),
        other => format!("`{}`", other.kind()),
    }
}

/// What the action is about, for reasons: "order-service" or "the new service x".
fn subject(action: &Action) -> String {
    match action {
        Action::ScaffoldService { name, .. } => format!("the new service {name}"),
        _ => action
            .service()
            .map(ToString::to_string)
            .unwrap_or_else(|| "this".into()),
    }
}

fn hours(h: u64) -> String {
    format!("{h} h")
}

/// May `requester` (a catalog user, None when the chat user is unknown to the
/// catalog) ask for `action` at all, and what does it need?
pub fn evaluate(
    policy: &PolicyConfig,
    catalog: &Catalog,
    requester: Option<&UserName>,
    action: &Action,
    ctx: &PolicyContext,
) -> Decision {
    if !action.kind().is_mutating() {
        return Decision::Allow { notes: Vec::new() };
    }
    let requester = match requester {
        None => {
            return Decision::Deny {
                rule: RULE_REQUESTERS.into(),
                reason: "Paver does not know who you are: your chat account is not linked to a user in the software catalog, so you cannot request changes. Ask the platform team to add your chat user id to your User entity in the catalog (annotation slack.com/user-id or discord.com/user-id).".into(),
            };
        }
        Some(r) if catalog.user(r.as_str()).is_none() => {
            return Decision::Deny {
                rule: RULE_REQUESTERS.into(),
                reason: format!(
                    "`{r}` is not a user in the software catalog, so you cannot request changes. Ask the platform team to add you to the catalog."
                ),
            };
        }
        Some(r) => r,
    };
    let approvers = policy.resolve_approvers(catalog, action);

    if let Err(reason) = check_requester(policy, catalog, requester, action, &approvers) {
        return Decision::Deny {
            rule: RULE_REQUESTERS.into(),
            reason,
        };
    }
    if let Some(deny) = check_limits(policy, catalog, action, ctx) {
        return deny;
    }

    let mut notes = Vec::new();
    if let Action::CreateEnvironment {
        environment: Environment::Preview,
        ..
    } = action
    {
        notes.push(format!(
            "Preview environment: expires after {} and is then destroyed",
            hours(policy.preview_ttl_hours)
        ));
    }

    let Some(rule) = policy.matching_rule(action) else {
        return Decision::Allow { notes };
    };
    match rule.decision {
        RuleDecision::Allow => Decision::Allow { notes },
        RuleDecision::Deny => {
            let why = match rule.reason.as_deref().map(str::trim) {
                Some(r) if !r.is_empty() => r.trim_end_matches('.').to_owned(),
                _ => format!("{} is not allowed", capitalize(&describe_action(action))),
            };
            Decision::Deny {
                rule: rule.name.clone(),
                reason: format!("{why} (policy rule {:?}).", rule.name),
            }
        }
        RuleDecision::Approval => {
            let mut approval_notes = vec![
                format!(
                    "Needs approval by {} (policy rule {:?})",
                    approvers.describe(),
                    rule.name
                ),
                format!(
                    "Without an approval within {} the request expires",
                    hours(policy.approval_expiry_hours)
                ),
            ];
            if approvers.eligible(catalog, requester.as_str()).is_empty() {
                approval_notes.push(if approvers.is_empty() {
                    "Nobody can approve this yet: no approver team for it exists in the catalog. Ask the platform team to check policy.approvers.".into()
                } else {
                    format!(
                        "Nobody can approve this yet: {} has no member other than you, and you cannot approve your own request. Ask the platform team to add an approver.",
                        approvers.teams_or()
                    )
                });
            }
            approval_notes.append(&mut notes);
            Decision::NeedsApproval {
                rule: rule.name.clone(),
                approvers,
                notes: approval_notes,
            }
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The `requesters` setting: Err is the reason shown to the requester.
fn check_requester(
    policy: &PolicyConfig,
    catalog: &Catalog,
    requester: &UserName,
    action: &Action,
    approvers: &Approvers,
) -> Result<(), String> {
    let mode = policy.requesters;
    if mode == Requesters::Anyone {
        return Ok(());
    }
    // A new service without a named owner belongs to nobody yet.
    if matches!(action, Action::ScaffoldService { owner: None, .. }) {
        return Ok(());
    }
    let owner = owning_team(catalog, action);
    if owner
        .as_ref()
        .is_some_and(|t| catalog.is_member(requester, t))
    {
        return Ok(());
    }
    let others: Vec<&TeamName> = if mode == Requesters::OwningTeamOrApprovers {
        approvers
            .teams
            .iter()
            .filter(|t| Some(*t) != owner.as_ref())
            .collect()
    } else {
        Vec::new()
    };
    if others.iter().any(|t| catalog.is_member(requester, t)) {
        return Ok(());
    }
    let setting = format!("policy.requesters = {:?}", mode.as_str());
    let subject = subject(action);
    let owner_words = match (&owner, action) {
        (Some(t), Action::ScaffoldService { .. }) => {
            format!("{t}, the team that would own {subject}")
        }
        (Some(t), _) => format!("{t}, the team that owns {subject}"),
        (None, _) => String::new(),
    };
    Err(match (owner_words.is_empty(), others.is_empty()) {
        (false, true) => format!(
            "Only members of {owner_words}, may request this ({setting}); you are not a member of {}.",
            owner.as_ref().map(TeamName::as_str).unwrap_or_default()
        ),
        (false, false) => format!(
            "Only members of {owner_words}, or of {}, may request this ({setting}); you are not a member of any of them.",
            join_or(&others)
        ),
        (true, true) => format!(
            "{} has no owning team in the catalog, so nobody may request changes to it ({setting}). Set spec.owner in its catalog entry.",
            capitalize(&subject)
        ),
        (true, false) => format!(
            "{} has no owning team in the catalog, so only members of {} may request changes to it ({setting}); you are not a member of any of them.",
            capitalize(&subject),
            join_or(&others)
        ),
    })
}

/// The hard limits, which no rule can lift.
fn check_limits(
    policy: &PolicyConfig,
    catalog: &Catalog,
    action: &Action,
    ctx: &PolicyContext,
) -> Option<Decision> {
    match action {
        Action::Scale {
            service, replicas, ..
        } if *replicas > policy.max_replicas => Some(Decision::Deny {
            rule: RULE_MAX_REPLICAS.into(),
            reason: format!(
                "Scaling is limited to {max} replicas (policy limit max_replicas = {max}), and {replicas} were asked for. Ask the platform team if {service} really needs more.",
                max = policy.max_replicas
            ),
        }),
        Action::CreateEnvironment {
            environment: Environment::Preview,
            ..
        } if ctx.active_previews_for_team >= policy.max_preview_envs_per_team => {
            let max = policy.max_preview_envs_per_team;
            let reason = if max == 0 {
                format!("Preview environments are turned off (policy limit {RULE_MAX_PREVIEWS} = 0).")
            } else {
                let team = owning_team(catalog, action)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "The owning team".into());
                format!(
                    "{team} already has {} preview environments, the most allowed (policy limit {RULE_MAX_PREVIEWS} = {max}). Destroy one that is no longer needed, or wait for one to expire.",
                    ctx.active_previews_for_team
                )
            };
            Some(Decision::Deny {
                rule: RULE_MAX_PREVIEWS.into(),
                reason,
            })
        }
        _ => None,
    }
}

/// May `approver` approve (or deny) a request by `requester` under
/// `approvers`? Four-eyes: the requester never approves their own request,
/// even when a member. `requester` and `requester_chat_id` are the stored
/// request's: the requester's catalog user name (or audit name when
/// unknown) and the chat account they wrote from. The approver is the same
/// person when any of their identities (catalog name, Slack id, Discord id,
/// email) matches one of the requester's. Err carries the reason shown to
/// the user.
pub fn may_approve(
    catalog: &Catalog,
    approvers: &Approvers,
    approver: &UserName,
    requester: &str,
    requester_chat_id: &str,
) -> Result<(), String> {
    if same_person(catalog, approver, requester, requester_chat_id) {
        return Err(if approvers.is_empty() {
            "You asked for this change yourself, so you cannot approve it (four-eyes rule).".into()
        } else {
            format!(
                "You asked for this change yourself, so you cannot approve it (four-eyes rule): another member of {} has to.",
                approvers.teams_or()
            )
        });
    }
    if catalog.user(approver.as_str()).is_none() {
        return Err(format!(
            "`{approver}` is not a user in the software catalog, so Paver cannot check that you may approve this. Ask the platform team to add you to the catalog."
        ));
    }
    if approvers.is_empty() {
        return Err("Nobody can approve this request: policy names no approver team for it that exists in the catalog. Ask the platform team to check policy.approvers.".into());
    }
    if approvers.includes(catalog, approver) {
        Ok(())
    } else {
        Err(format!(
            "Only {} can approve this, and you are not {}.",
            approvers.describe(),
            if approvers.teams.len() == 1 {
                format!("a member of {}", approvers.teams[0])
            } else {
                "a member of any of them".into()
            }
        ))
    }
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
mod tests {
    use super::*;
    use crate::domain::{ResourceKind, ServiceName, TemplateName, Version};
    use std::path::Path;

    fn catalog() -> Catalog {
        Catalog::from_yaml_file(Path::new("../shared/fixtures/catalog.yaml"))
            .expect("sample catalog")
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn team(name: &str) -> TeamName {
        TeamName::parse(name).unwrap()
    }

    fn svc(name: &str) -> ServiceName {
        ServiceName::parse(name).unwrap()
    }

    fn deploy(service: &str, env: Environment) -> Action {
        Action::Deploy {
            service: svc(service),
            environment: env,
            version: None,
        }
    }

    fn create(service: &str, env: Environment) -> Action {
        Action::CreateEnvironment {
            service: svc(service),
            environment: env,
            resources: vec![ResourceKind::Postgres],
        }
    }

    fn destroy(service: &str, env: Environment) -> Action {
        Action::DestroyEnvironment {
            service: svc(service),
            environment: env,
        }
    }

    fn scale(service: &str, env: Environment, replicas: u32) -> Action {
        Action::Scale {
            service: svc(service),
            environment: env,
            replicas,
        }
    }

    fn scaffold(name: &str, owner: Option<&str>) -> Action {
        Action::ScaffoldService {
            name: svc(name),
            template: TemplateName::parse("go-service").unwrap(),
            owner: owner.map(team),
        }
    }

    /// One of every mutating action for `service` in `env`.
    fn changes_in(service: &str, env: Environment) -> Vec<Action> {
        let s = svc(service);
        let mut out = vec![
            create(service, env),
            destroy(service, env),
            Action::AddResource {
                service: s.clone(),
                environment: env,
                resources: vec![ResourceKind::Redis],
            },
            Action::Deploy {
                service: s.clone(),
                environment: env,
                version: Some(Version::parse("1.2.3").unwrap()),
            },
            Action::Rollback {
                service: s.clone(),
                environment: env,
                version: None,
            },
            scale(service, env, 3),
            Action::Restart {
                service: s.clone(),
                environment: env,
            },
        ];
        if let Some(from) = env.previous() {
            out.push(Action::Promote {
                service: s,
                from,
                to: env,
            });
        }
        out
    }

    fn eval(policy: &PolicyConfig, who: &str, action: &Action) -> Decision {
        evaluate(
            policy,
            &catalog(),
            Some(&user(who)),
            action,
            &PolicyContext::default(),
        )
    }

    fn deny_reason(d: &Decision) -> &str {
        match d {
            Decision::Deny { reason, .. } => reason,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn rule(name: &str, actions: &[&str], envs: &[&str], decision: RuleDecision) -> PolicyRule {
        PolicyRule {
            name: name.into(),
            actions: actions
                .iter()
                .map(|a| ActionPattern::try_from(a.to_string()).unwrap())
                .collect(),
            environments: envs
                .iter()
                .map(|e| EnvPattern::try_from(e.to_string()).unwrap())
                .collect(),
            decision,
            reason: None,
        }
    }

    fn with_rules(rules: Vec<PolicyRule>) -> PolicyConfig {
        PolicyConfig {
            rules,
            ..PolicyConfig::default()
        }
    }

    // ---- the golden path (the default policy) ----

    #[test]
    fn dev_staging_and_preview_changes_need_only_confirmation() {
        let p = PolicyConfig::default();
        for env in [Environment::Dev, Environment::Staging, Environment::Preview] {
            for action in changes_in("order-service", env) {
                if action.kind() == ActionKind::DestroyEnvironment && env == Environment::Staging {
                    continue;
                }
                let d = eval(&p, "alice", &action);
                assert!(d.is_allowed(), "{action:?}: {d:?}");
            }
        }
    }

    #[test]
    fn production_changes_need_owning_team_or_platform_approval() {
        let p = PolicyConfig::default();
        for action in changes_in("order-service", Environment::Production) {
            match eval(&p, "alice", &action) {
                Decision::NeedsApproval {
                    rule,
                    approvers,
                    notes,
                } => {
                    assert_eq!(rule, "production changes", "{action:?}");
                    assert_eq!(
                        approvers.teams,
                        vec![team("team-commerce"), team("team-platform")]
                    );
                    assert!(
                        notes[0].contains("team-commerce or team-platform")
                            && notes[0].contains("\"production changes\""),
                        "{notes:?}"
                    );
                    assert!(notes.iter().any(|n| n.contains("24 h")), "{notes:?}");
                    assert!(
                        !notes.iter().any(|n| n.contains("Nobody")),
                        "dave can approve: {notes:?}"
                    );
                }
                other => panic!("{action:?}: expected approval, got {other:?}"),
            }
        }
        // promote: the target decides.
        let to_staging = Action::Promote {
            service: svc("order-service"),
            from: Environment::Dev,
            to: Environment::Staging,
        };
        assert!(eval(&p, "alice", &to_staging).is_allowed());
    }

    #[test]
    fn destroying_staging_needs_approval_but_dev_and_preview_do_not() {
        let p = PolicyConfig::default();
        let d = eval(&p, "alice", &destroy("order-service", Environment::Staging));
        assert_eq!(d.rule(), Some("destroying shared environments"), "{d:?}");
        assert!(matches!(d, Decision::NeedsApproval { .. }));
        // production is caught by the earlier rule: order decides.
        let d = eval(
            &p,
            "alice",
            &destroy("order-service", Environment::Production),
        );
        assert_eq!(d.rule(), Some("production changes"));
        for env in [Environment::Dev, Environment::Preview] {
            assert!(eval(&p, "alice", &destroy("order-service", env)).is_allowed());
        }
    }

    #[test]
    fn scaffolding_is_allowed_and_only_matched_by_wildcard_environments() {
        let p = PolicyConfig::default();
        assert!(eval(&p, "alice", &scaffold("new-thing", Some("team-commerce"))).is_allowed());
        let p = with_rules(vec![rule(
            "no scaffolding in production",
            &["scaffold_service"],
            &["production"],
            RuleDecision::Deny,
        )]);
        assert!(eval(&p, "alice", &scaffold("new-thing", None)).is_allowed());
        let p = with_rules(vec![rule(
            "no scaffolding",
            &["scaffold_service"],
            &["*"],
            RuleDecision::Deny,
        )]);
        let d = eval(&p, "alice", &scaffold("new-thing", None));
        assert_eq!(d.rule(), Some("no scaffolding"));
        // An approval for a new service goes to the team that will own it.
        let p = with_rules(vec![rule(
            "new services",
            &["scaffold_service"],
            &["*"],
            RuleDecision::Approval,
        )]);
        match eval(&p, "alice", &scaffold("new-thing", Some("team-payments"))) {
            Decision::NeedsApproval { approvers, .. } => assert_eq!(
                approvers.teams,
                vec![team("team-payments"), team("team-platform")]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn more_than_max_replicas_is_denied_naming_the_limit() {
        let p = PolicyConfig::default();
        assert!(eval(&p, "alice", &scale("order-service", Environment::Dev, 20)).is_allowed());
        for env in [Environment::Dev, Environment::Production] {
            let d = eval(&p, "alice", &scale("order-service", env, 21));
            assert_eq!(d.rule(), Some(RULE_MAX_REPLICAS), "{d:?}");
            let reason = deny_reason(&d);
            assert!(
                reason.contains("max_replicas = 20") && reason.contains("21"),
                "{reason}"
            );
        }
        // Rules cannot lift the limit.
        let p = with_rules(vec![rule("all fine", &["*"], &["*"], RuleDecision::Allow)]);
        let d = eval(&p, "alice", &scale("order-service", Environment::Dev, 500));
        assert_eq!(d.rule(), Some(RULE_MAX_REPLICAS));
        let p = PolicyConfig {
            max_replicas: 600,
            ..PolicyConfig::default()
        };
        assert!(eval(&p, "alice", &scale("order-service", Environment::Dev, 500)).is_allowed());
    }

    #[test]
    fn previews_have_a_ttl_note_and_a_per_team_limit() {
        let p = PolicyConfig::default();
        assert_eq!(p.preview_ttl(), Duration::from_secs(72 * 3600));
        assert_eq!(p.approval_expiry(), Duration::from_secs(24 * 3600));
        let c = catalog();
        let alice = user("alice");
        let preview = create("order-service", Environment::Preview);
        let at = |n: u32, p: &PolicyConfig, a: &Action| {
            evaluate(
                p,
                &c,
                Some(&alice),
                a,
                &PolicyContext {
                    active_previews_for_team: n,
                },
            )
        };
        match at(4, &p, &preview) {
            Decision::Allow { notes } => {
                assert!(
                    notes.iter().any(|n| n.contains("expires after 72 h")),
                    "{notes:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        for n in [5, 9] {
            let d = at(n, &p, &preview);
            assert_eq!(d.rule(), Some(RULE_MAX_PREVIEWS));
            let reason = deny_reason(&d);
            assert!(
                reason.contains("team-commerce")
                    && reason.contains("max_preview_envs_per_team = 5"),
                "{reason}"
            );
        }
        // The limit is about previews only.
        assert!(at(50, &p, &create("order-service", Environment::Staging)).is_allowed());
        let Decision::Allow { notes } = at(0, &p, &create("order-service", Environment::Dev))
        else {
            panic!()
        };
        assert!(notes.is_empty(), "{notes:?}");
        // 0 turns previews off.
        let off = PolicyConfig {
            max_preview_envs_per_team: 0,
            ..PolicyConfig::default()
        };
        assert!(deny_reason(&at(0, &off, &preview)).contains("turned off"));
        // A preview that needs approval still carries its TTL.
        let strict = PolicyConfig {
            preview_ttl_hours: 8,
            ..with_rules(vec![rule(
                "previews",
                &["*"],
                &["preview"],
                RuleDecision::Approval,
            )])
        };
        match at(0, &strict, &preview) {
            Decision::NeedsApproval { notes, .. } => {
                assert!(
                    notes.iter().any(|n| n.contains("expires after 8 h")),
                    "{notes:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    // ---- who may ask ----

    #[test]
    fn read_only_actions_are_always_allowed() {
        let p = with_rules(vec![rule("nothing", &["*"], &["*"], RuleDecision::Deny)]);
        let c = catalog();
        let reads = [
            Action::Status {
                service: svc("order-service"),
                environment: Some(Environment::Production),
            },
            Action::WhoOwns {
                service: svc("order-service"),
            },
            Action::Ask {
                question: "how do I get a database?".into(),
            },
            Action::Help,
            Action::Nothing,
        ];
        for a in &reads {
            for who in [None, Some(user("bob")), Some(user("nobody-known"))] {
                let d = evaluate(&p, &c, who.as_ref(), a, &PolicyContext::default());
                assert_eq!(d, Decision::Allow { notes: vec![] }, "{a:?}");
            }
        }
        // ...while the same policy does refuse changes.
        assert_eq!(
            eval(&p, "alice", &deploy("order-service", Environment::Dev)).rule(),
            Some("nothing")
        );
    }

    #[test]
    fn unknown_requesters_may_not_request_changes() {
        let p = PolicyConfig::default();
        let c = catalog();
        let a = deploy("order-service", Environment::Dev);
        let d = evaluate(&p, &c, None, &a, &PolicyContext::default());
        assert_eq!(d.rule(), Some(RULE_REQUESTERS));
        assert!(deny_reason(&d).contains("not linked"), "{d:?}");
        let ghost = user("ghost");
        let d = evaluate(&p, &c, Some(&ghost), &a, &PolicyContext::default());
        assert_eq!(d.rule(), Some(RULE_REQUESTERS));
        assert!(deny_reason(&d).contains("ghost"), "{d:?}");
    }

    #[test]
    fn requesters_anyone_owning_team_and_approvers() {
        let a = deploy("order-service", Environment::Dev);
        let anyone = PolicyConfig::default();
        for who in ["alice", "bob", "carol"] {
            assert!(eval(&anyone, who, &a).is_allowed(), "{who}");
        }

        let owning = PolicyConfig {
            requesters: Requesters::OwningTeam,
            ..PolicyConfig::default()
        };
        assert!(eval(&owning, "alice", &a).is_allowed());
        assert!(eval(&owning, "dave", &a).is_allowed());
        for who in ["bob", "carol"] {
            let d = eval(&owning, who, &a);
            assert_eq!(d.rule(), Some(RULE_REQUESTERS), "{who}");
            let reason = deny_reason(&d);
            assert!(
                reason.contains("team-commerce")
                    && reason.contains("order-service")
                    && reason.contains("owning_team"),
                "{reason}"
            );
        }

        let or_approvers = PolicyConfig {
            requesters: Requesters::OwningTeamOrApprovers,
            ..PolicyConfig::default()
        };
        assert!(eval(&or_approvers, "alice", &a).is_allowed());
        assert!(eval(&or_approvers, "carol", &a).is_allowed());
        let reason = deny_reason(&eval(&or_approvers, "bob", &a)).to_owned();
        assert!(
            reason.contains("team-commerce") && reason.contains("team-platform"),
            "{reason}"
        );

        // New services: the owner named decides; no owner named, anyone.
        assert!(eval(
            &owning,
            "bob",
            &scaffold("x-service", Some("team-payments"))
        )
        .is_allowed());
        let d = eval(
            &owning,
            "alice",
            &scaffold("x-service", Some("team-payments")),
        );
        assert!(deny_reason(&d).contains("would own"), "{d:?}");
        assert!(eval(&owning, "alice", &scaffold("x-service", None)).is_allowed());
    }

    const TINY: &str = "
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-solo}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-platform}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: sol}
spec: {memberOf: [team-solo]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: pat}
spec: {memberOf: [team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: solo-service}
spec: {type: service, lifecycle: production, owner: team-solo}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: orphan-service}
spec: {type: service, lifecycle: production}
";

    #[test]
    fn services_without_an_owner() {
        let c = Catalog::from_yaml_str(TINY, "tiny");
        assert!(c.component("orphan-service").unwrap().owner.is_none());
        let sol = user("sol");
        let a = deploy("orphan-service", Environment::Production);
        let ctx = PolicyContext::default();
        // Approval goes to the named groups only.
        match evaluate(&PolicyConfig::default(), &c, Some(&sol), &a, &ctx) {
            Decision::NeedsApproval { approvers, .. } => {
                assert_eq!(approvers.teams, vec![team("team-platform")])
            }
            other => panic!("{other:?}"),
        }
        let owning = PolicyConfig {
            requesters: Requesters::OwningTeam,
            ..PolicyConfig::default()
        };
        let d = evaluate(&owning, &c, Some(&sol), &a, &ctx);
        assert!(
            deny_reason(&d).contains("no owning team") && deny_reason(&d).contains("nobody"),
            "{d:?}"
        );
        let or_approvers = PolicyConfig {
            requesters: Requesters::OwningTeamOrApprovers,
            ..PolicyConfig::default()
        };
        let pat = user("pat");
        assert!(matches!(
            evaluate(&or_approvers, &c, Some(&pat), &a, &ctx),
            Decision::NeedsApproval { .. }
        ));
        let d = evaluate(&or_approvers, &c, Some(&sol), &a, &ctx);
        assert!(
            deny_reason(&d).contains("only members of team-platform"),
            "{d:?}"
        );
    }

    #[test]
    fn approval_nobody_else_can_give_is_still_needs_approval_with_a_note() {
        let c = Catalog::from_yaml_str(TINY, "tiny");
        let sol = user("sol");
        let a = deploy("solo-service", Environment::Production);
        let p = PolicyConfig {
            approvers: vec![ApproverSource::OwningTeam],
            ..PolicyConfig::default()
        };
        match evaluate(&p, &c, Some(&sol), &a, &PolicyContext::default()) {
            Decision::NeedsApproval {
                rule,
                approvers,
                notes,
            } => {
                assert_eq!(rule, "production changes");
                assert_eq!(approvers.teams, vec![team("team-solo")]);
                assert!(approvers.eligible(&c, "sol").is_empty());
                assert!(
                    notes
                        .iter()
                        .any(|n| n.contains("Nobody can approve") && n.contains("team-solo")),
                    "{notes:?}"
                );
                assert!(may_approve(&c, &approvers, &sol, "sol", "").is_err());
            }
            other => panic!("{other:?}"),
        }
        // With the default approvers, pat (team-platform) can: no such note.
        match evaluate(
            &PolicyConfig::default(),
            &c,
            Some(&sol),
            &a,
            &PolicyContext::default(),
        ) {
            Decision::NeedsApproval {
                approvers, notes, ..
            } => {
                assert_eq!(approvers.eligible(&c, "sol"), vec![user("pat")]);
                assert!(!notes.iter().any(|n| n.contains("Nobody")), "{notes:?}");
            }
            other => panic!("{other:?}"),
        }
        // No approver team at all.
        let none = PolicyConfig {
            approvers: vec![ApproverSource::Team(team("team-ghosts"))],
            ..PolicyConfig::default()
        };
        match evaluate(&none, &c, Some(&sol), &a, &PolicyContext::default()) {
            Decision::NeedsApproval {
                approvers, notes, ..
            } => {
                assert!(approvers.is_empty());
                assert!(
                    notes.iter().any(|n| n.contains("Nobody can approve")),
                    "{notes:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn approvers_are_resolved_known_and_deduplicated() {
        let c = catalog();
        let p = PolicyConfig {
            approvers: vec![
                ApproverSource::Team(team("team-platform")),
                ApproverSource::OwningTeam,
                ApproverSource::Team(team("team-ghosts")),
                ApproverSource::Team(team("team-platform")),
            ],
            ..PolicyConfig::default()
        };
        // notification-worker is owned by team-platform itself.
        let r = p.resolve_approvers(&c, &deploy("notification-worker", Environment::Production));
        assert_eq!(r.teams, vec![team("team-platform")]);
        let r = p.resolve_approvers(&c, &deploy("order-service", Environment::Production));
        assert_eq!(r.teams, vec![team("team-platform"), team("team-commerce")]);
        // A service the catalog does not know: named groups only.
        let r = p.resolve_approvers(&c, &deploy("unknown-service", Environment::Production));
        assert_eq!(r.teams, vec![team("team-platform")]);
        assert_eq!(
            p.catalog_problems(&c),
            vec!["policy.approvers: `team-ghosts` is not a group in the catalog, so its members cannot approve anything".to_string()]
        );
        assert!(PolicyConfig::default().catalog_problems(&c).is_empty());
    }

    #[test]
    fn rules_apply_in_order_first_match_wins() {
        let hotfix = rule(
            "hotfix lane",
            &["deploy"],
            &["production"],
            RuleDecision::Allow,
        );
        let prod = rule("prod", &["*"], &["production"], RuleDecision::Approval);
        let p = with_rules(vec![hotfix.clone(), prod.clone()]);
        assert!(eval(
            &p,
            "alice",
            &deploy("order-service", Environment::Production)
        )
        .is_allowed());
        let restart = Action::Restart {
            service: svc("order-service"),
            environment: Environment::Production,
        };
        assert_eq!(eval(&p, "alice", &restart).rule(), Some("prod"));
        let p = with_rules(vec![prod, hotfix]);
        assert_eq!(
            eval(
                &p,
                "alice",
                &deploy("order-service", Environment::Production)
            )
            .rule(),
            Some("prod")
        );
        // No rule at all: everything runs on confirmation.
        let p = with_rules(vec![]);
        assert!(eval(
            &p,
            "alice",
            &destroy("order-service", Environment::Production)
        )
        .is_allowed());
    }

    #[test]
    fn deny_rules_name_the_rule_and_give_the_reason() {
        let mut freeze = rule(
            "holiday freeze",
            &["deploy", "promote"],
            &["production"],
            RuleDecision::Deny,
        );
        let p = with_rules(vec![freeze.clone()]);
        let d = eval(
            &p,
            "alice",
            &deploy("order-service", Environment::Production),
        );
        assert_eq!(d.rule(), Some("holiday freeze"));
        let reason = deny_reason(&d);
        assert!(
            reason.contains("\"holiday freeze\"")
                && reason.contains("Deploying order-service to production"),
            "{reason}"
        );
        freeze.reason = Some("Deploys are frozen until 2 January.".into());
        let p = with_rules(vec![freeze]);
        let promote = Action::Promote {
            service: svc("order-service"),
            from: Environment::Staging,
            to: Environment::Production,
        };
        assert_eq!(
            deny_reason(&eval(&p, "alice", &promote)),
            "Deploys are frozen until 2 January (policy rule \"holiday freeze\")."
        );
        assert!(eval(&p, "alice", &deploy("order-service", Environment::Staging)).is_allowed());
    }

    // ---- approving ----

    #[test]
    fn four_eyes_and_membership_decide_who_may_approve() {
        let c = catalog();
        let approvers = Approvers {
            teams: vec![team("team-commerce"), team("team-platform")],
        };
        assert_eq!(
            may_approve(&c, &approvers, &user("dave"), "alice", ""),
            Ok(())
        );
        assert_eq!(
            may_approve(&c, &approvers, &user("carol"), "alice", ""),
            Ok(())
        );
        // The requester, although a member, never approves their own request,
        // however the requester is written.
        for me in ["alice", "ALICE", "U0ALICE", "alice@example.com"] {
            let err = may_approve(&c, &approvers, &user("alice"), me, "").unwrap_err();
            assert!(err.contains("four-eyes"), "{err}");
        }
        let err = may_approve(&c, &approvers, &user("bob"), "alice", "").unwrap_err();
        assert!(
            err.contains("team-commerce or team-platform") && err.contains("not a member"),
            "{err}"
        );
        let err = may_approve(&c, &approvers, &user("ghost"), "alice", "").unwrap_err();
        assert!(err.contains("not a user"), "{err}");
        let err = may_approve(&c, &Approvers::default(), &user("carol"), "alice", "").unwrap_err();
        assert!(err.contains("Nobody can approve"), "{err}");
        let only_platform = Approvers {
            teams: vec![team("team-platform")],
        };
        assert!(may_approve(&c, &only_platform, &user("dave"), "alice", "").is_err());
        assert_eq!(
            only_platform.eligible(&c, "carol"),
            vec![user("omar")],
            "the requester is never an eligible approver"
        );
        assert_eq!(
            approvers.eligible(&c, "alice"),
            vec![user("carol"), user("dave"), user("omar")]
        );
    }

    /// Two catalog users who are one person (a shared email or chat id):
    /// neither approves the other's request, nor is offered as an approver.
    #[test]
    fn four_eyes_compares_people_not_names() {
        let c = Catalog::from_yaml_str(
            "
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-platform}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice-admin}
spec: {profile: {email: Alice@Example.com}, memberOf: [team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
  annotations: {slack.com/user-id: U0BOB}
spec: {memberOf: [team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob-ops
  annotations: {discord.com/user-id: '4242'}
spec: {memberOf: [team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: pat}
spec: {memberOf: [team-platform]}
",
            "inline",
        );
        let approvers = Approvers {
            teams: vec![team("team-platform")],
        };
        // A shared email, whatever its case.
        let err =
            may_approve(&c, &approvers, &user("alice-admin"), "alice", "U0ALICE").unwrap_err();
        assert!(err.contains("four-eyes"), "{err}");
        assert_eq!(
            approvers.eligible(&c, "alice"),
            vec![user("bob"), user("bob-ops"), user("pat")]
        );
        // The chat account the request came from is linked to the approver.
        let err = may_approve(&c, &approvers, &user("bob"), "bob-ops", "U0BOB").unwrap_err();
        assert!(err.contains("four-eyes"), "{err}");
        let err = may_approve(&c, &approvers, &user("bob-ops"), "slack:U0X", "4242").unwrap_err();
        assert!(err.contains("four-eyes"), "{err}");
        // Someone else entirely may.
        assert_eq!(
            may_approve(&c, &approvers, &user("pat"), "alice", "U0ALICE"),
            Ok(())
        );
        assert_eq!(
            may_approve(&c, &approvers, &user("bob"), "alice", "U0ALICE"),
            Ok(())
        );
    }

    #[test]
    fn approvers_describe_themselves_and_serialize() {
        let mut a = Approvers::default();
        assert!(a.describe().starts_with("nobody"));
        a.teams.push(team("team-commerce"));
        assert_eq!(a.describe(), "a member of team-commerce");
        a.teams.push(team("team-platform"));
        assert_eq!(a.describe(), "a member of team-commerce or team-platform");
        a.teams.push(team("team-data"));
        assert_eq!(
            a.describe(),
            "a member of team-commerce, team-platform or team-data"
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"teams": ["team-commerce", "team-platform", "team-data"]})
        );
        assert_eq!(serde_json::from_value::<Approvers>(json).unwrap(), a);
    }

    // ---- binding approvals to the action ----

    #[test]
    fn action_hash_is_stable_and_changes_with_the_action() {
        let a = Action::Deploy {
            service: svc("order-service"),
            environment: Environment::Production,
            version: Some(Version::parse("1.4.2").unwrap()),
        };
        // sha256 of {"action":"deploy","environment":"production","service":"order-service","version":"1.4.2"}
        assert_eq!(
            action_hash(&a),
            "cf0d5c3764b2d58bc82ac77df18f369abacafeb67d73979f0577f25d4082c2fa"
        );
        assert_eq!(
            action_hash(&Action::CreateEnvironment {
                service: svc("order-service"),
                environment: Environment::Staging,
                resources: vec![ResourceKind::Postgres, ResourceKind::Redis],
            }),
            "5d46a2658de04aa12c790fbd1935f16530d6b97214a76f7d57fd742c7fc5c3cc"
        );
        // Read back from storage, in any key order: the same hash.
        let stored: Action = serde_json::from_str(
            r#"{"version":"1.4.2","service":"order-service","environment":"production","action":"deploy"}"#,
        )
        .unwrap();
        assert_eq!(action_hash(&stored), action_hash(&a));

        let changed = [
            deploy("order-service", Environment::Production),
            Action::Deploy {
                service: svc("order-service"),
                environment: Environment::Production,
                version: Some(Version::parse("1.4.3").unwrap()),
            },
            Action::Deploy {
                service: svc("order-service"),
                environment: Environment::Staging,
                version: Some(Version::parse("1.4.2").unwrap()),
            },
            Action::Deploy {
                service: svc("checkout-api"),
                environment: Environment::Production,
                version: Some(Version::parse("1.4.2").unwrap()),
            },
            Action::Rollback {
                service: svc("order-service"),
                environment: Environment::Production,
                version: Some(Version::parse("1.4.2").unwrap()),
            },
        ];
        let mut seen = BTreeSet::from([action_hash(&a)]);
        for c in &changed {
            let h = action_hash(c);
            assert_eq!(h.len(), 64);
            assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(seen.insert(h), "{c:?} hashes like another action");
        }
        assert_ne!(
            action_hash(&scale("order-service", Environment::Production, 4)),
            action_hash(&scale("order-service", Environment::Production, 5))
        );
    }

    // ---- configuration ----

    #[test]
    fn example_config_spells_out_the_default_policy() {
        let config =
            crate::config::Config::load(Some(Path::new("config/paver.toml"))).expect("loads");
        assert_eq!(config.policy, PolicyConfig::default());
        assert!(
            config.policy.problems().is_empty(),
            "{:?}",
            config.policy.problems()
        );
        // And a config without [policy] gets the same.
        assert_eq!(
            crate::config::Config::default().policy,
            PolicyConfig::default()
        );
    }

    fn load(body: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(body.as_bytes()).unwrap();
        crate::config::Config::load(Some(f.path()))
    }

    #[test]
    fn policy_config_parses_and_refuses_bad_values() {
        let c = load(
            r#"
[policy]
requesters = "owning_team_or_approvers"
approvers = ["team-sre"]
max_replicas = 50

[[policy.rules]]
name = "freeze"
actions = ["deploy", "promote"]
environments = ["*"]
decision = "deny"
reason = "Frozen"
"#,
        )
        .unwrap();
        let p = &c.policy;
        assert_eq!(p.requesters, Requesters::OwningTeamOrApprovers);
        assert_eq!(p.approvers, vec![ApproverSource::Team(team("team-sre"))]);
        assert_eq!(p.max_replicas, 50);
        assert_eq!(p.preview_ttl_hours, 72, "unset keys keep their default");
        assert_eq!(
            p.rules,
            vec![PolicyRule {
                reason: Some("Frozen".into()),
                ..rule("freeze", &["deploy", "promote"], &["*"], RuleDecision::Deny)
            }]
        );

        for (bad, needle) in [
            ("[policy]\nrequesters = \"everyone\"\n", "everyone"),
            ("[policy]\napprovers = [\"Team Platform\"]\n", "Team Platform"),
            ("[policy]\nmax_replicas = -1\n", "max_replicas"),
            ("[policy]\nmax_replica = 3\n", "max_replica"),
            (
                "[[policy.rules]]\nname = \"x\"\nactions = [\"deplyo\"]\nenvironments = [\"*\"]\ndecision = \"deny\"\n",
                "deplyo",
            ),
            (
                "[[policy.rules]]\nname = \"x\"\nactions = [\"*\"]\nenvironments = [\"prod\"]\ndecision = \"deny\"\n",
                "prod",
            ),
            (
                "[[policy.rules]]\nname = \"x\"\nactions = [\"*\"]\nenvironments = [\"*\"]\ndecision = \"maybe\"\n",
                "maybe",
            ),
            (
                "[[policy.rules]]\nname = \"x\"\nactions = [\"*\"]\ndecision = \"deny\"\n",
                "environments",
            ),
        ] {
            let err = load(bad).expect_err(bad).to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn problems_name_values_that_cannot_work() {
        assert!(PolicyConfig::default().problems().is_empty());
        let p = PolicyConfig {
            approval_expiry_hours: 0,
            preview_ttl_hours: 0,
            max_replicas: 0,
            approvers: vec![],
            rules: vec![
                rule("prod", &["*"], &["production"], RuleDecision::Approval),
                rule("prod", &["deploy"], &["production"], RuleDecision::Deny),
                rule("", &["status"], &["*"], RuleDecision::Allow),
                rule(
                    "scaffold",
                    &["scaffold_service"],
                    &["dev"],
                    RuleDecision::Deny,
                ),
                rule("empty", &[], &["dev"], RuleDecision::Deny),
                PolicyRule {
                    reason: Some("why".into()),
                    ..rule(
                        "allow with reason",
                        &["restart"],
                        &["dev"],
                        RuleDecision::Allow,
                    )
                },
            ],
            ..PolicyConfig::default()
        };
        let problems = p.problems();
        let has = |needle: &str| {
            assert!(
                problems.iter().any(|x| x.contains(needle)),
                "no problem mentions {needle:?}: {problems:#?}"
            )
        };
        has("policy.approval_expiry_hours");
        has("policy.preview_ttl_hours");
        has("policy.max_replicas");
        has("nobody could approve");
        has("same name");
        has("never decides, because the earlier rule \"prod\"");
        has("give the rule a name");
        has("`status` changes nothing");
        has("scaffold_service has no environment");
        has("`actions` is empty");
        has("`reason` is only shown");
        // The destroy rule of the golden path is not shadowed by the
        // production rule, since it also covers staging.
        let config = crate::config::Config {
            policy: p,
            ..crate::config::Config::default()
        };
        assert!(config
            .problems()
            .iter()
            .any(|x| x.starts_with("policy.approval_expiry_hours")));
    }
}
