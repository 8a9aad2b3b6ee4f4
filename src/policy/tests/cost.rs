//! The monthly cost limit per team (`max_monthly_cost_per_team`).

use super::*;
use crate::domain::{estimate, Cents, Price, PriceTable};

fn limited(units: i64) -> PolicyConfig {
    PolicyConfig {
        max_monthly_cost_per_team: Some(Price(Cents::new(units * 100).unwrap())),
        ..PolicyConfig::default()
    }
}

/// The context the request flow gives policy: team-commerce (order-service's
/// owner) spends `current` a month now.
fn spending(action: &Action, current: Option<i64>) -> PolicyContext {
    PolicyContext {
        cost: Some(TeamCost {
            team: team("team-commerce"),
            current: current.map(|u| Cents::new(u * 100).unwrap()),
            estimate: estimate(action, &PriceTable::default()).unwrap(),
        }),
        ..PolicyContext::default()
    }
}

fn eval_with(policy: &PolicyConfig, action: &Action, ctx: &PolicyContext) -> Decision {
    evaluate(policy, &catalog(), Some(&user("alice")), action, ctx)
}

#[test]
fn under_the_limit_a_staging_environment_runs_on_confirmation() {
    // staging $150 + PostgreSQL $120 = $270; $1,700 + $270 <= $2,000.
    let a = create("order-service", Environment::Staging);
    let d = eval_with(&limited(2000), &a, &spending(&a, Some(1700)));
    assert!(d.is_allowed(), "{d:?}");
    // Exactly at the limit is not over it.
    let d = eval_with(&limited(2000), &a, &spending(&a, Some(1730)));
    assert!(d.is_allowed(), "{d:?}");
}

#[test]
fn over_the_limit_it_needs_approval_saying_the_limit_and_the_amounts() {
    let a = create("order-service", Environment::Staging);
    let d = eval_with(&limited(2000), &a, &spending(&a, Some(1880)));
    match &d {
        Decision::NeedsApproval {
            rule,
            approvers,
            notes,
        } => {
            assert_eq!(rule, RULE_MAX_COST);
            assert_eq!(
                approvers.teams,
                vec![team("team-commerce"), team("team-platform")]
            );
            assert_eq!(
                notes[0],
                "Needs approval by a member of team-commerce or team-platform: team-commerce would spend ~$2,150/month, over the limit of $2,000/month (max_monthly_cost_per_team): ~$1,880 now + ~$270 for this request"
            );
            assert!(notes.iter().any(|n| n.contains("24 h")), "{notes:?}");
        }
        other => panic!("expected approval, got {other:?}"),
    }
}

#[test]
fn the_limit_adds_to_a_rule_that_asks_and_never_lifts_a_denial() {
    let a = create("order-service", Environment::Production);
    let d = eval_with(&limited(500), &a, &spending(&a, Some(100)));
    let Decision::NeedsApproval { rule, notes, .. } = &d else {
        panic!("{d:?}")
    };
    assert_eq!(rule, "production changes");
    assert!(
        notes[1].starts_with("Over the cost limit: team-commerce would spend ~$820/month"),
        "{notes:?}"
    );
    let deny = with_rules(vec![rule_deny()]);
    let policy = PolicyConfig {
        max_monthly_cost_per_team: limited(500).max_monthly_cost_per_team,
        ..deny
    };
    let a = create("order-service", Environment::Staging);
    let d = eval_with(&policy, &a, &spending(&a, Some(1000)));
    assert!(matches!(d, Decision::Deny { .. }), "{d:?}");
}

fn rule_deny() -> PolicyRule {
    rule("no staging", &["*"], &["staging"], RuleDecision::Deny)
}

#[test]
fn an_unreadable_team_cost_asks_for_approval() {
    let a = create("order-service", Environment::Staging);
    let d = eval_with(&limited(2000), &a, &spending(&a, None));
    assert_eq!(d.rule(), Some(RULE_MAX_COST), "{d:?}");
    assert!(d.notes()[0].contains("cannot be read"), "{d:?}");
}

#[test]
fn without_a_limit_or_a_cost_nothing_changes() {
    let a = create("order-service", Environment::Staging);
    // No limit configured: the cost is not even looked at.
    let d = eval_with(&PolicyConfig::default(), &a, &spending(&a, Some(1_000_000)));
    assert!(d.is_allowed(), "{d:?}");
    // Actions that create nothing carry no cost.
    let deploy = deploy("order-service", Environment::Staging);
    let d = eval_with(&limited(1), &deploy, &PolicyContext::default());
    assert!(d.is_allowed(), "{d:?}");
}

#[test]
fn the_limit_is_read_from_the_policy_section() {
    let p: PolicyConfig = toml::from_str("max_monthly_cost_per_team = \"2000.50\"\n").unwrap();
    assert_eq!(p.max_monthly_cost_per_team.unwrap().0.get(), 200_050);
    assert!(toml::from_str::<PolicyConfig>("max_monthly_cost_per_team = -1\n").is_err());
}
