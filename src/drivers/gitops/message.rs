//! How the GitOps driver words an action: the commit subject (`deploy
//! order-service 1.2.3 to staging`), the commit message with its trailers,
//! and the summary a thread shows for a commit (`Deployed order-service
//! 1.2.3 to staging`). Every sentence the driver makes out of an action is
//! here. The words it shares with cards (lists, counts, the past tense of
//! a subject) come from [`crate::domain::wording`]; the subjects keep facts
//! only the driver knows (the version it resolved, where it rolled back
//! from), so they are worded here.

use std::fmt;

use crate::domain::wording::{count, list, with_resources};
use crate::domain::{Environment, ResourceKind, ServiceName, TemplateName};
use crate::drivers::Job;

/// The subject line of the commit an action makes.
pub(super) enum Subject<'a> {
    Create {
        service: &'a ServiceName,
        environment: Environment,
        resources: &'a [ResourceKind],
    },
    Destroy {
        service: &'a ServiceName,
        environment: Environment,
    },
    AddResources {
        service: &'a ServiceName,
        environment: Environment,
        resources: &'a [ResourceKind],
    },
    /// A deploy; `redeploy` when no version was named and the current one
    /// is rolled out again.
    Deploy {
        redeploy: bool,
        service: &'a ServiceName,
        version: &'a str,
        environment: Environment,
    },
    RollBack {
        service: &'a ServiceName,
        environment: Environment,
        from: &'a str,
        to: &'a str,
    },
    Promote {
        service: &'a ServiceName,
        version: &'a str,
        from: Environment,
        to: Environment,
    },
    Scale {
        service: &'a ServiceName,
        environment: Environment,
        replicas: u32,
    },
    Restart {
        service: &'a ServiceName,
        environment: Environment,
    },
    Scaffold {
        name: &'a ServiceName,
        template: &'a TemplateName,
        owner: &'a str,
    },
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Create {
                service,
                environment,
                resources,
            } => write!(
                f,
                "create {environment} for {service}{}",
                with_resources(resources)
            ),
            Subject::Destroy {
                service,
                environment,
            } => write!(f, "destroy {environment} for {service}"),
            Subject::AddResources {
                service,
                environment,
                resources,
            } => write!(f, "add {} to {service} {environment}", list(resources)),
            Subject::Deploy {
                redeploy,
                service,
                version,
                environment,
            } => {
                let verb = if *redeploy { "redeploy" } else { "deploy" };
                write!(f, "{verb} {service} {version} to {environment}")
            }
            Subject::RollBack {
                service,
                environment,
                from,
                to,
            } => write!(f, "roll back {service} {environment} from {from} to {to}"),
            Subject::Promote {
                service,
                version,
                from,
                to,
            } => write!(f, "promote {service} {version} from {from} to {to}"),
            Subject::Scale {
                service,
                environment,
                replicas,
            } => write!(
                f,
                "scale {service} {environment} to {}",
                count(u64::from(*replicas), "replica")
            ),
            Subject::Restart {
                service,
                environment,
            } => write!(f, "restart {service} {environment}"),
            Subject::Scaffold {
                name,
                template,
                owner,
            } => write!(f, "scaffold {name} from {template} for {owner}"),
        }
    }
}

/// The commit message: the subject, then trailers naming the request, who
/// asked, who approved, and the idempotency key a retry is recognised by.
pub(super) fn commit_message(subject: &str, job: &Job) -> String {
    let mut m = format!(
        "{subject}\n\nRequest: {}\nRequested-by: {}\n",
        one_line(&job.request_id),
        one_line(&job.requester)
    );
    if let Some(a) = &job.approver {
        m.push_str(&format!("Approved-by: {}\n", one_line(a)));
    }
    let key = if job.idempotency_key.is_empty() {
        &job.request_id
    } else {
        &job.idempotency_key
    };
    m.push_str(&format!("Idempotency-Key: {}\n", one_line(key)));
    m
}

/// Keeps a value on its trailer's line.
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
