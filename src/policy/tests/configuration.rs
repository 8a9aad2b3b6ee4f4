//! The [policy] section: parsing, defaults and problems.

use super::*;

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
