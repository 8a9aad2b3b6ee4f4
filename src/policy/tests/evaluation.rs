//! What evaluate decides: the golden path, who may ask, rules in order.

use super::*;

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
                ..PolicyContext::default()
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
