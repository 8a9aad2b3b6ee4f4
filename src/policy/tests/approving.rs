//! Who may approve, and what an approval binds to.

use super::*;

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
