//! Policy, decided for the sample catalog and hand-written policies.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::domain::{
    ActionKind, Environment, ResourceKind, ServiceName, TeamName, TemplateName, Version,
};

fn catalog() -> Catalog {
    Catalog::from_yaml_file(Path::new("../shared/fixtures/catalog.yaml")).expect("sample catalog")
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
            reason.contains("team-commerce") && reason.contains("max_preview_envs_per_team = 5"),
            "{reason}"
        );
    }
    // The limit is about previews only.
    assert!(at(50, &p, &create("order-service", Environment::Staging)).is_allowed());
    let Decision::Allow { notes } = at(0, &p, &create("order-service", Environment::Dev)) else {
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
        let err = may_approve(&c, &approvers, &user("alice"), me, "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("four-eyes"), "{err}");
    }
    let err = may_approve(&c, &approvers, &user("bob"), "alice", "")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("team-commerce or team-platform") && err.contains("not a member"),
        "{err}"
    );
    let err = may_approve(&c, &approvers, &user("ghost"), "alice", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a user"), "{err}");
    let err = may_approve(&c, &Approvers::default(), &user("carol"), "alice", "")
        .unwrap_err()
        .to_string();
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
    let err = may_approve(&c, &approvers, &user("alice-admin"), "alice", "U0ALICE")
        .unwrap_err()
        .to_string();
    assert!(err.contains("four-eyes"), "{err}");
    assert_eq!(
        approvers.eligible(&c, "alice"),
        vec![user("bob"), user("bob-ops"), user("pat")]
    );
    // The chat account the request came from is linked to the approver.
    let err = may_approve(&c, &approvers, &user("bob"), "bob-ops", "U0BOB")
        .unwrap_err()
        .to_string();
    assert!(err.contains("four-eyes"), "{err}");
    let err = may_approve(&c, &approvers, &user("bob-ops"), "slack:U0X", "4242")
        .unwrap_err()
        .to_string();
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
    let config = crate::config::Config::load(Some(Path::new("config/paver.toml"))).expect("loads");
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
