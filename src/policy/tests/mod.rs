//! Policy, decided for the sample catalog and hand-written policies: the
//! shared fixtures here, the tests by topic below.

mod approving;
mod configuration;
mod cost;
mod evaluation;

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
