//! Follow-ups in a request's thread, read by the rules: "make it production
//! instead", "also add redis", "use 1.5.0", "5 replicas", "actually cancel".
//!
//! An amendment is applied to the proposed action and gives a whole new
//! action; anything the rules cannot place is left to the LLM (when one is
//! configured) or answered with a hint.

use super::rules::Mentions;
use super::RulesParser;
use crate::domain::{Action, ResourceKind};

/// What a reply in a proposal's thread asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// Drop the proposal.
    Cancel,
    /// The proposal with the changes applied.
    Amend(Action),
    /// Nothing the rules can apply.
    Unclear,
}

const CANCEL_WORDS: [&str; 8] = [
    "cancel",
    "cancelled",
    "abort",
    "nevermind",
    "scratch",
    "scrap",
    "forget",
    "drop",
];

/// Words that may stand beside a cancel word ("actually, cancel it please").
fn cancel_filler(w: &str) -> bool {
    matches!(
        w,
        "actually"
            | "please"
            | "pls"
            | "plz"
            | "it"
            | "that"
            | "this"
            | "the"
            | "request"
            | "never"
            | "mind"
            | "about"
            | "ok"
            | "okay"
            | "oh"
            | "no"
            | "wait"
            | "just"
            | "all"
            | "sorry"
            | "i"
            | "we"
            | "want"
            | "to"
            | "lets"
            | "let's"
            | "let"
            | "us"
            | "go"
            | "ahead"
            | "and"
            | "instead"
            | "everything"
            | "thanks"
            | "thank"
            | "you"
    )
}

/// Whether the reply only takes the request back.
pub(crate) fn is_cancel(m: &Mentions) -> bool {
    let has_cancel = m.words.iter().enumerate().any(|(i, w)| {
        CANCEL_WORDS.contains(&w.as_str())
            || (w == "never" && m.words.get(i + 1).is_some_and(|n| n == "mind"))
    });
    has_cancel
        && m.words
            .iter()
            .all(|w| CANCEL_WORDS.contains(&w.as_str()) || cancel_filler(w))
}

/// Reads a reply to the proposal `base` with the rules.
pub fn follow_up(rules: &RulesParser, base: &Action, text: &str) -> FollowUp {
    let m = rules.mentions(text);
    if is_cancel(&m) {
        return FollowUp::Cancel;
    }
    match apply(base, &m) {
        Some(a) if &a != base => FollowUp::Amend(a),
        _ => FollowUp::Unclear,
    }
}

fn merge(resources: &[ResourceKind], m: &Mentions) -> Vec<ResourceKind> {
    let mut out: Vec<ResourceKind> = resources
        .iter()
        .copied()
        .filter(|r| !m.removed.contains(r))
        .collect();
    for r in &m.resources {
        if !out.contains(r) {
            out.push(*r);
        }
    }
    out
}

/// The proposal with what the reply names put in; `None` when the reply
/// names nothing that fits this kind of action.
fn apply(base: &Action, m: &Mentions) -> Option<Action> {
    let mut changed = false;
    let mut action = base.clone();
    // Another service named exactly: the request is for that one.
    if let (Some(s), Some(old)) = (m.exact.first(), base.service()) {
        if s != old {
            changed = true;
            set_service(&mut action, s.clone());
        }
    }
    match &mut action {
        Action::CreateEnvironment {
            environment,
            resources,
            ..
        }
        | Action::AddResource {
            environment,
            resources,
            ..
        } => {
            if let Some(e) = m.environment {
                changed = true;
                *environment = e;
            }
            if !m.resources.is_empty() || !m.removed.is_empty() {
                changed = true;
                *resources = merge(resources, m);
            }
        }
        Action::Deploy {
            environment,
            version,
            ..
        }
        | Action::Rollback {
            environment,
            version,
            ..
        } => {
            if let Some(e) = m.environment {
                changed = true;
                *environment = e;
            }
            if let Some(v) = &m.version {
                changed = true;
                *version = Some(v.clone());
            }
        }
        Action::Scale {
            environment,
            replicas,
            ..
        } => {
            if let Some(e) = m.environment {
                changed = true;
                *environment = e;
            }
            if let Some(n) = m.replicas {
                changed = true;
                *replicas = n;
            }
        }
        Action::DestroyEnvironment { environment, .. } | Action::Restart { environment, .. } => {
            if let Some(e) = m.environment {
                changed = true;
                *environment = e;
            }
        }
        Action::Promote { from, to, .. } => match (m.from, m.to.or(m.environment)) {
            (Some(f), Some(t)) => {
                changed = true;
                (*from, *to) = (f, t);
            }
            (None, Some(t)) => {
                changed = true;
                *from = t.previous()?;
                *to = t;
            }
            (Some(f), None) => {
                changed = true;
                *from = f;
                *to = f.next()?;
            }
            (None, None) => {}
        },
        _ => return None,
    }
    if let Action::AddResource { resources, .. } = &action {
        if resources.is_empty() {
            return None;
        }
    }
    if let Action::Promote { from, to, .. } = &action {
        if from == to {
            return None;
        }
    }
    changed.then_some(action)
}

fn set_service(action: &mut Action, new: crate::domain::ServiceName) {
    match action {
        Action::CreateEnvironment { service, .. }
        | Action::DestroyEnvironment { service, .. }
        | Action::AddResource { service, .. }
        | Action::Deploy { service, .. }
        | Action::Rollback { service, .. }
        | Action::Promote { service, .. }
        | Action::Scale { service, .. }
        | Action::Restart { service, .. } => *service = new,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::domain::{Environment, ServiceName, Version};

    fn rules() -> RulesParser {
        let catalog =
            Catalog::from_yaml_file(std::path::Path::new("../shared/fixtures/catalog.yaml"))
                .unwrap();
        RulesParser::new(&catalog)
    }

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    #[test]
    fn simple_amendments() {
        let r = rules();
        let create = Action::CreateEnvironment {
            service: svc("order-service"),
            environment: Environment::Staging,
            resources: vec![ResourceKind::Postgres],
        };
        assert_eq!(
            follow_up(&r, &create, "make it production instead"),
            FollowUp::Amend(Action::CreateEnvironment {
                service: svc("order-service"),
                environment: Environment::Production,
                resources: vec![ResourceKind::Postgres],
            })
        );
        assert_eq!(
            follow_up(&r, &create, "also add redis"),
            FollowUp::Amend(Action::CreateEnvironment {
                service: svc("order-service"),
                environment: Environment::Staging,
                resources: vec![ResourceKind::Postgres, ResourceKind::Redis],
            })
        );
        assert_eq!(
            follow_up(&r, &create, "without postgres, with kafka"),
            FollowUp::Amend(Action::CreateEnvironment {
                service: svc("order-service"),
                environment: Environment::Staging,
                resources: vec![ResourceKind::Kafka],
            })
        );
        let deploy = Action::Deploy {
            service: svc("order-service"),
            environment: Environment::Staging,
            version: Some(Version::parse("1.4.0").unwrap()),
        };
        assert_eq!(
            follow_up(&r, &deploy, "use v1.5.0 please"),
            FollowUp::Amend(Action::Deploy {
                service: svc("order-service"),
                environment: Environment::Staging,
                version: Some(Version::parse("1.5.0").unwrap()),
            })
        );
        let scale = Action::Scale {
            service: svc("order-service"),
            environment: Environment::Production,
            replicas: 3,
        };
        assert_eq!(
            follow_up(&r, &scale, "make that 5 replicas"),
            FollowUp::Amend(Action::Scale {
                service: svc("order-service"),
                environment: Environment::Production,
                replicas: 5,
            })
        );
        for c in [
            "actually cancel",
            "cancel it please",
            "never mind",
            "forget it",
        ] {
            assert_eq!(follow_up(&r, &scale, c), FollowUp::Cancel, "{c}");
        }
        assert_eq!(
            follow_up(&r, &scale, "hmm, is that wise?"),
            FollowUp::Unclear
        );
        assert_eq!(
            follow_up(&r, &deploy, "cancel the redis part and use 2.0.0"),
            FollowUp::Amend(Action::Deploy {
                service: svc("order-service"),
                environment: Environment::Staging,
                version: Some(Version::parse("2.0.0").unwrap()),
            })
        );
    }
}
