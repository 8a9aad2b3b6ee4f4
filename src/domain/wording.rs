//! How Paver words an action for people: the card's title, the policy's
//! reasons, the button that confirms it, a commit subject. One verb table
//! and one phrase per action, so a deploy is called the same thing on the
//! card, in a denial and in the Git history.
//!
//! Pure: actions and their parts in, text out. Nothing here knows about
//! chat, policy or storage.

use super::{Action, ActionKind, ResourceKind};

/// The verb a change is worded with, in each form a message needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Destroy,
    Add,
    Deploy,
    Redeploy,
    RollBack,
    Promote,
    Scale,
    Restart,
    Scaffold,
}

impl Verb {
    const ALL: [Verb; 10] = [
        Verb::Create,
        Verb::Destroy,
        Verb::Add,
        Verb::Deploy,
        Verb::Redeploy,
        Verb::RollBack,
        Verb::Promote,
        Verb::Scale,
        Verb::Restart,
        Verb::Scaffold,
    ];

    /// The verb of a kind of change; `None` for actions that change nothing.
    pub fn of_kind(kind: ActionKind) -> Option<Verb> {
        Some(match kind {
            ActionKind::CreateEnvironment => Verb::Create,
            ActionKind::DestroyEnvironment => Verb::Destroy,
            ActionKind::AddResource => Verb::Add,
            ActionKind::Deploy => Verb::Deploy,
            ActionKind::Rollback => Verb::RollBack,
            ActionKind::Promote => Verb::Promote,
            ActionKind::Scale => Verb::Scale,
            ActionKind::Restart => Verb::Restart,
            ActionKind::ScaffoldService => Verb::Scaffold,
            ActionKind::Status
            | ActionKind::WhoOwns
            | ActionKind::Scorecard
            | ActionKind::Ask
            | ActionKind::Help
            | ActionKind::Nothing
            | ActionKind::Clarify => return None,
        })
    }

    /// "Create", "Roll back": titles and buttons.
    pub fn imperative(self) -> &'static str {
        match self {
            Verb::Create => "Create",
            Verb::Destroy => "Destroy",
            Verb::Add => "Add",
            Verb::Deploy => "Deploy",
            Verb::Redeploy => "Redeploy",
            Verb::RollBack => "Roll back",
            Verb::Promote => "Promote",
            Verb::Scale => "Scale",
            Verb::Restart => "Restart",
            Verb::Scaffold => "Scaffold",
        }
    }

    /// "creating", "rolling back": what policy allows or refuses.
    pub fn gerund(self) -> &'static str {
        match self {
            Verb::Create => "creating",
            Verb::Destroy => "destroying",
            Verb::Add => "adding",
            Verb::Deploy => "deploying",
            Verb::Redeploy => "redeploying",
            Verb::RollBack => "rolling back",
            Verb::Promote => "promoting",
            Verb::Scale => "scaling",
            Verb::Restart => "restarting",
            Verb::Scaffold => "scaffolding",
        }
    }

    /// "Created", "Rolled back": what a driver did.
    pub fn past(self) -> &'static str {
        match self {
            Verb::Create => "Created",
            Verb::Destroy => "Destroyed",
            Verb::Add => "Added",
            Verb::Deploy => "Deployed",
            Verb::Redeploy => "Redeployed",
            Verb::RollBack => "Rolled back",
            Verb::Promote => "Promoted",
            Verb::Scale => "Scaled",
            Verb::Restart => "Restarted",
            Verb::Scaffold => "Scaffolded",
        }
    }
}

/// A verb and what follows it: "Deploy" + "order-service 1.2.3 to staging".
struct Phrase {
    verb: Verb,
    rest: String,
}

impl Phrase {
    fn new(verb: Verb, rest: String) -> Self {
        Phrase { verb, rest }
    }
}

/// The action exactly, every detail the card shows.
fn exact(action: &Action) -> Option<Phrase> {
    Some(match action {
        Action::CreateEnvironment {
            service,
            environment,
            resources,
        } => Phrase::new(
            Verb::Create,
            format!("{environment} for {service}{}", with_resources(resources)),
        ),
        Action::DestroyEnvironment {
            service,
            environment,
        } => Phrase::new(Verb::Destroy, format!("{environment} of {service}")),
        Action::AddResource {
            service,
            environment,
            resources,
        } => Phrase::new(
            Verb::Add,
            format!("{} to {service} in {environment}", list(resources)),
        ),
        Action::Deploy {
            service,
            environment,
            version,
        } => match version {
            Some(v) => Phrase::new(Verb::Deploy, format!("{service} {v} to {environment}")),
            None => Phrase::new(Verb::Redeploy, format!("{service} in {environment}")),
        },
        Action::Rollback {
            service,
            environment,
            version,
        } => match version {
            Some(v) => Phrase::new(Verb::RollBack, format!("{service} in {environment} to {v}")),
            None => Phrase::new(
                Verb::RollBack,
                format!("{service} in {environment} to the previous version"),
            ),
        },
        Action::Promote { service, from, to } => {
            Phrase::new(Verb::Promote, format!("{service} from {from} to {to}"))
        }
        Action::Scale {
            service,
            environment,
            replicas,
        } => Phrase::new(
            Verb::Scale,
            format!(
                "{service} in {environment} to {}",
                count(u64::from(*replicas), "replica")
            ),
        ),
        Action::Restart {
            service,
            environment,
        } => Phrase::new(Verb::Restart, format!("{service} in {environment}")),
        Action::ScaffoldService { name, template, .. } => Phrase::new(
            Verb::Scaffold,
            format!("a new service {name} from {template}"),
        ),
        Action::Status { .. }
        | Action::WhoOwns { .. }
        | Action::Scorecard { .. }
        | Action::Ask { .. }
        | Action::Help
        | Action::Nothing
        | Action::Clarify { .. } => return None,
    })
}

/// The kind of change and where, without the details a rule does not look
/// at (versions, resources, replica counts): what policy speaks of.
fn general(action: &Action) -> Option<Phrase> {
    Some(match action {
        Action::CreateEnvironment {
            service,
            environment,
            ..
        } => Phrase::new(Verb::Create, format!("{environment} for {service}")),
        Action::DestroyEnvironment {
            service,
            environment,
        } => Phrase::new(Verb::Destroy, format!("{environment} of {service}")),
        Action::AddResource {
            service,
            environment,
            ..
        } => Phrase::new(
            Verb::Add,
            format!("resources to {service} in {environment}"),
        ),
        Action::Deploy {
            service,
            environment,
            ..
        } => Phrase::new(Verb::Deploy, format!("{service} to {environment}")),
        Action::Rollback {
            service,
            environment,
            ..
        } => Phrase::new(Verb::RollBack, format!("{service} in {environment}")),
        Action::Promote { service, to, .. } => {
            Phrase::new(Verb::Promote, format!("{service} to {to}"))
        }
        Action::Scale {
            service,
            environment,
            ..
        } => Phrase::new(Verb::Scale, format!("{service} in {environment}")),
        Action::Restart {
            service,
            environment,
        } => Phrase::new(Verb::Restart, format!("{service} in {environment}")),
        Action::ScaffoldService { name, .. } => {
            Phrase::new(Verb::Scaffold, format!("a new service {name}"))
        }
        _ => return None,
    })
}

/// One line saying what an action does, as the card's title: "Deploy
/// order-service 1.2.3 to production", "Status of order-service".
pub fn summary(action: &Action) -> String {
    if let Some(p) = exact(action) {
        return format!("{} {}", p.verb.imperative(), p.rest);
    }
    match action {
        Action::Status { service, .. } => format!("Status of {service}"),
        Action::WhoOwns { service } => format!("Owner of {service}"),
        Action::Scorecard { .. } => "Scorecard".into(),
        Action::Ask { .. } => "Question".into(),
        Action::Help => "Help".into(),
        Action::Clarify { .. } => "Clarification".into(),
        _ => "Nothing".into(),
    }
}

/// The action as something being done, for policy's reasons: "deploying
/// order-service to production".
pub fn activity(action: &Action) -> String {
    match general(action) {
        Some(p) => format!("{} {}", p.verb.gerund(), p.rest),
        None => format!("`{}`", action.kind()),
    }
}

/// What was done, for a driver's outcome: "Deployed order-service 1.2.3 to
/// staging". Actions that change nothing are named as on the card.
pub fn done(action: &Action) -> String {
    match exact(action) {
        Some(p) => format!("{} {}", p.verb.past(), p.rest),
        None => summary(action),
    }
}

/// A Git commit subject for the action as applied: the card's line, lower
/// case first ("deploy order-service 1.2.3 to staging"), so the history
/// reads like the cards that asked for it. [`past_tense`] turns it back
/// into what was done.
pub fn commit_subject(action: &Action) -> String {
    lowercase_first(&summary(action))
}

/// "deploy order-service 1.2.3 to staging" → "Deployed order-service 1.2.3
/// to staging", for subjects read back from history. A subject that starts
/// with no known verb is only capitalized.
pub fn past_tense(subject: &str) -> String {
    for verb in Verb::ALL {
        let imperative = verb.imperative();
        let Some(head) = subject.get(..imperative.len()) else {
            continue;
        };
        let rest = &subject[imperative.len()..];
        if head.eq_ignore_ascii_case(imperative) && (rest.is_empty() || rest.starts_with(' ')) {
            return format!("{}{rest}", verb.past());
        }
    }
    capitalize(subject)
}

/// The confirm button of a card: "Deploy", "Roll back"; "OK" for actions
/// that change nothing.
pub fn confirm_label(kind: ActionKind) -> &'static str {
    Verb::of_kind(kind).map_or("OK", Verb::imperative)
}

/// "create an environment", "roll back": what a clarification is for, in
/// the words people use asking for it (as `help` shows them), which is why
/// it says "tear down" and "create a new service" where a card says
/// "Destroy" and "Scaffold".
pub fn intent(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::CreateEnvironment => "create an environment",
        ActionKind::DestroyEnvironment => "tear down an environment",
        ActionKind::AddResource => "add a resource",
        ActionKind::Deploy => "deploy",
        ActionKind::Rollback => "roll back",
        ActionKind::Promote => "promote",
        ActionKind::Scale => "scale",
        ActionKind::Restart => "restart",
        ActionKind::ScaffoldService => "create a new service",
        ActionKind::Status => "show the status",
        ActionKind::WhoOwns => "find the owner",
        ActionKind::Scorecard => "show the scorecard",
        ActionKind::Ask | ActionKind::Help | ActionKind::Nothing | ActionKind::Clarify => "help",
    }
}

/// "postgres, redis".
pub fn list(resources: &[ResourceKind]) -> String {
    resources
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// " with postgres, redis", or nothing.
pub fn with_resources(resources: &[ResourceKind]) -> String {
    if resources.is_empty() {
        String::new()
    } else {
        format!(" with {}", list(resources))
    }
}

/// "1 replica", "3 replicas".
pub fn count(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "a", "a or b", "a, b or c".
pub fn join_or<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(ToString::to_string).collect();
            format!("{} or {last}", init.join(", "))
        }
    }
}

/// "Deploy x" → "deploy x", to put a title inside a sentence.
pub fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// "deploying x" → "Deploying x", to start a sentence with a phrase.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, ServiceName, TemplateName, Version};

    fn svc(name: &str) -> ServiceName {
        ServiceName::parse(name).unwrap()
    }

    #[test]
    fn one_phrase_in_every_form() {
        let deploy = Action::Deploy {
            service: svc("order-service"),
            environment: Environment::Staging,
            version: Some(Version::parse("1.2.3").unwrap()),
        };
        assert_eq!(summary(&deploy), "Deploy order-service 1.2.3 to staging");
        assert_eq!(activity(&deploy), "deploying order-service to staging");
        assert_eq!(done(&deploy), "Deployed order-service 1.2.3 to staging");
        assert_eq!(
            commit_subject(&deploy),
            "deploy order-service 1.2.3 to staging"
        );
        assert_eq!(past_tense(&commit_subject(&deploy)), done(&deploy));

        let destroy = Action::DestroyEnvironment {
            service: svc("order-service"),
            environment: Environment::Preview,
        };
        assert_eq!(summary(&destroy), "Destroy preview of order-service");
        assert_eq!(activity(&destroy), "destroying preview of order-service");

        let rollback = Action::Rollback {
            service: svc("billing-api"),
            environment: Environment::Production,
            version: None,
        };
        assert_eq!(
            past_tense(&commit_subject(&rollback)),
            "Rolled back billing-api in production to the previous version"
        );
        let scaffold = Action::ScaffoldService {
            name: svc("invoice-api"),
            template: TemplateName::parse("go-service").unwrap(),
            owner: None,
        };
        assert_eq!(
            summary(&scaffold),
            "Scaffold a new service invoice-api from go-service"
        );
        assert_eq!(activity(&scaffold), "scaffolding a new service invoice-api");
        assert_eq!(activity(&Action::Help), "`help`");
        assert_eq!(summary(&Action::Nothing), "Nothing");
    }

    #[test]
    fn labels_and_helpers() {
        assert_eq!(confirm_label(ActionKind::Rollback), "Roll back");
        assert_eq!(confirm_label(ActionKind::Status), "OK");
        assert_eq!(past_tense("rollout x"), "Rollout x");
        assert_eq!(
            past_tense("redeploy x 1.0 to dev"),
            "Redeployed x 1.0 to dev"
        );
        assert_eq!(count(1, "replica"), "1 replica");
        assert_eq!(count(3, "replica"), "3 replicas");
        assert_eq!(join_or(&["a", "b", "c"]), "a, b or c");
        assert_eq!(join_or::<&str>(&[]), "");
    }
}
