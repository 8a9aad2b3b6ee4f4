//! Evaluation: for one requester and one action, what the policy decides
//! (see the order in [`super`]), with the notes and reasons people read.

use super::rules::{owning_team, PolicyConfig, Requesters, RuleDecision};
use super::{
    Decision, PolicyContext, RULE_MAX_COST, RULE_MAX_PREVIEWS, RULE_MAX_REPLICAS, RULE_MIN_LEVEL,
    RULE_REQUESTERS,
};
use crate::catalog::Catalog;
use crate::domain::scorecard::{Level, Weight};
use crate::domain::wording::{activity, capitalize, join_or};
use crate::domain::{Action, Approvers, Cents, Environment, TeamName, UserName};

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

    if let Err(refused) = check_requester(policy, catalog, requester, action, &approvers) {
        return Decision::Deny {
            rule: RULE_REQUESTERS.into(),
            reason: refused.to_string(),
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

    let over_cost = cost_over_limit(policy, ctx);
    let rule = policy.matching_rule(action);
    match (rule, over_cost) {
        (Some(rule), _) if rule.decision == RuleDecision::Deny => {
            let why = match rule.reason.as_deref().map(str::trim) {
                Some(r) if !r.is_empty() => r.trim_end_matches('.').to_owned(),
                _ => format!("{} is not allowed", capitalize(&activity(action))),
            };
            Decision::Deny {
                rule: rule.name.clone(),
                reason: format!("{why} (policy rule {:?}).", rule.name),
            }
        }
        (Some(rule), over_cost) if rule.decision == RuleDecision::Approval => {
            let mut approval_notes = vec![format!(
                "Needs approval by {} (policy rule {:?})",
                approvers.describe(),
                rule.name
            )];
            if let Some(why) = over_cost {
                approval_notes.push(format!("Over the cost limit: {why}"));
            }
            approval_notes.extend(waiting_notes(policy, catalog, requester, &approvers));
            approval_notes.append(&mut notes);
            Decision::NeedsApproval {
                rule: rule.name.clone(),
                approvers,
                notes: approval_notes,
            }
        }
        // Allowed by the rules (or by none): the cost limit may still ask.
        (_, Some(why)) => {
            let mut approval_notes =
                vec![format!("Needs approval by {}: {why}", approvers.describe())];
            approval_notes.extend(waiting_notes(policy, catalog, requester, &approvers));
            approval_notes.append(&mut notes);
            Decision::NeedsApproval {
                rule: RULE_MAX_COST.into(),
                approvers,
                notes: approval_notes,
            }
        }
        (_, None) => Decision::Allow { notes },
    }
}

/// The notes of any request that waits for approval: when it expires, and
/// whether anybody can give it.
fn waiting_notes(
    policy: &PolicyConfig,
    catalog: &Catalog,
    requester: &UserName,
    approvers: &Approvers,
) -> Vec<String> {
    let mut notes = vec![format!(
        "Without an approval within {} the request expires",
        hours(policy.approval_expiry_hours)
    )];
    if approvers.eligible(catalog, requester.as_str()).is_empty() {
        notes.push(if approvers.is_empty() {
            "Nobody can approve this yet: no approver team for it exists in the catalog. Ask the platform team to check policy.approvers.".into()
        } else {
            format!(
                "Nobody can approve this yet: {} has no member other than you, and you cannot approve your own request. Ask the platform team to add an approver.",
                approvers.teams_or()
            )
        });
    }
    notes
}

/// Why a request takes its team past `max_monthly_cost_per_team`, in words
/// naming the limit and the amounts; `None` when it does not (or there is
/// no limit, or the request creates nothing).
pub fn cost_over_limit(policy: &PolicyConfig, ctx: &PolicyContext) -> Option<String> {
    let limit = policy.max_monthly_cost_per_team?.0;
    let cost = ctx.cost.as_ref()?;
    let money = |c: Cents| cost.estimate.currency.format(c);
    let team = &cost.team;
    let this = cost.estimate.known();
    let more = if cost.estimate.is_complete() {
        ""
    } else {
        " (and more: the estimate is incomplete)"
    };
    let Some(current) = cost.current else {
        return Some(format!(
            "{team}'s current monthly cost cannot be read, so this request cannot be checked against the limit of {}/month ({RULE_MAX_COST})",
            money(limit)
        ));
    };
    let total = current.saturating_add(this);
    (total > limit).then(|| {
        format!(
            "{team} would spend ~{}/month, over the limit of {}/month ({RULE_MAX_COST}): ~{} now + ~{}{more} for this request",
            money(total),
            money(limit),
            money(current),
            money(this),
        )
    })
}

/// Why the `requesters` setting refuses someone; the text is the reason
/// shown to them. `subject` is what the action is about, `setting` the
/// setting as written, `owner` the owning team in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RequesterRefused {
    #[error(
        "Only members of {owner}, may request this ({setting}); you are not a member of {team}."
    )]
    NotInOwningTeam {
        owner: String,
        team: TeamName,
        setting: String,
    },
    #[error("Only members of {owner}, or of {others}, may request this ({setting}); you are not a member of any of them.")]
    NotInOwningOrApproverTeams {
        owner: String,
        others: String,
        setting: String,
    },
    #[error("{} has no owning team in the catalog, so nobody may request changes to it ({setting}). Set spec.owner in its catalog entry.", capitalize(.subject))]
    NoOwner { subject: String, setting: String },
    #[error("{} has no owning team in the catalog, so only members of {others} may request changes to it ({setting}); you are not a member of any of them.", capitalize(.subject))]
    NoOwnerNotInApproverTeams {
        subject: String,
        others: String,
        setting: String,
    },
}

/// The `requesters` setting.
fn check_requester(
    policy: &PolicyConfig,
    catalog: &Catalog,
    requester: &UserName,
    action: &Action,
    approvers: &Approvers,
) -> Result<(), RequesterRefused> {
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
    Err(match (owner, others.is_empty()) {
        (Some(team), others_empty) => {
            let owner = match action {
                Action::ScaffoldService { .. } => {
                    format!("{team}, the team that would own {subject}")
                }
                _ => format!("{team}, the team that owns {subject}"),
            };
            if others_empty {
                RequesterRefused::NotInOwningTeam {
                    owner,
                    team,
                    setting,
                }
            } else {
                RequesterRefused::NotInOwningOrApproverTeams {
                    owner,
                    others: join_or(&others),
                    setting,
                }
            }
        }
        (None, true) => RequesterRefused::NoOwner { subject, setting },
        (None, false) => RequesterRefused::NoOwnerNotInApproverTeams {
            subject,
            others: join_or(&others),
            setting,
        },
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
        _ if policy.gates_on_score(action) => {
            let min = policy.production_min_level?.0;
            let service = action.service()?;
            let reason = match &ctx.score {
                None => format!(
                    "{service}'s scorecard cannot be read right now, and production needs it at {min} at least ({RULE_MIN_LEVEL}); try again in a minute."
                ),
                Some(s) if s.level.is_some_and(|l| l >= min) => return None,
                Some(s) => {
                    let blocking: Vec<String> = s
                        .failing()
                        .iter()
                        .filter(|c| match min {
                            Level::Bronze => c.weight == Weight::Critical,
                            Level::Silver => c.weight >= Weight::High,
                            Level::Gold => true,
                        })
                        .map(|c| format!("{} ({})", c.name, c.reason().unwrap_or("failing")))
                        .collect();
                    format!(
                        "{service} is {} on its scorecard; production needs {min} at least ({RULE_MIN_LEVEL}). Fix first: {}. Ask \"scorecard for {service}\" for how.",
                        s.level.map(|l| l.title().to_owned()).unwrap_or_else(|| "below Bronze".into()),
                        blocking.join("; ")
                    )
                }
            };
            Some(Decision::Deny {
                rule: RULE_MIN_LEVEL.into(),
                reason,
            })
        }
        _ => None,
    }
}
