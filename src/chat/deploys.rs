//! What Paver says about deploys it hears of: the notice that follows one
//! service's deploy in one environment (edited in place as events arrive),
//! the line a request's card gains, and the platform team's note about a
//! deploy of a service the catalog does not know.
//!
//! Everything here that came from a hook (messages, URLs, commits) was
//! checked at the edge; it is still shortened and neutralised, because a
//! hook's text is someone else's words in our channel.

use super::{Message, Tone};
use crate::domain::{DeployNotice, DeployStatus, DeployStep};
use crate::util::text::shorten;

/// What every deploy notice's card key starts with (`deploy:{notice}:…`):
/// the outbox knows a notice's posts and edits by it.
pub const NOTICE_KEY_PREFIX: &str = "deploy:";

/// Whether an outbox card key is a deploy notice's.
pub fn is_notice_key(card_key: &str) -> bool {
    card_key.starts_with(NOTICE_KEY_PREFIX)
}

/// The most steps a notice lists; older ones are summarised as "…".
const MAX_STEPS: usize = 8;

fn tone(status: DeployStatus) -> Tone {
    match status {
        DeployStatus::Healthy | DeployStatus::Deployed => Tone::Success,
        DeployStatus::Failed | DeployStatus::Degraded => Tone::Danger,
        DeployStatus::Cancelled => Tone::Warning,
        DeployStatus::Queued | DeployStatus::InProgress => Tone::Info,
    }
}

/// "deploying → healthy", naming a version where it changes:
/// "2.4.0 healthy → 2.5.0 deploying → healthy".
fn timeline(steps: &[DeployStep]) -> String {
    let mut parts = Vec::new();
    let mut last_version = None;
    let mut last_status = None;
    for s in steps {
        let version_changed = s.version.is_some() && s.version.as_ref() != last_version;
        if !version_changed && last_status == Some(s.status) {
            continue;
        }
        let part = match (&s.version, version_changed) {
            (Some(v), true) => format!("{v} {}", s.status.word()),
            _ => s.status.word().to_owned(),
        };
        parts.push(part);
        if s.version.is_some() {
            last_version = s.version.as_ref();
        }
        last_status = Some(s.status);
    }
    if parts.len() > MAX_STEPS {
        let keep = parts.split_off(parts.len() - MAX_STEPS);
        parts = std::iter::once("…".to_owned()).chain(keep).collect();
    }
    parts.join(" → ")
}

/// The headline: "order-service staging: 2.5.0 healthy".
pub fn headline(notice: &DeployNotice) -> String {
    let status = notice.latest().map(|s| s.status.word()).unwrap_or("seen");
    match notice.version() {
        Some(v) => format!("{} {}: {v} {status}", notice.service, notice.environment),
        None => format!("{} {}: {status}", notice.service, notice.environment),
    }
}

/// The notice, as posted and as edited after each event.
pub fn notice(notice: &DeployNotice, source: &str) -> Message {
    let status = notice
        .latest()
        .map(|s| s.status)
        .unwrap_or(DeployStatus::Queued);
    let mut text = timeline(&notice.steps);
    if let Some(m) = notice.message.as_deref().filter(|m| !m.trim().is_empty()) {
        text.push_str(&format!("\n{}", shorten(m)));
    }
    let mut fields = Vec::new();
    if let Some(url) = &notice.url {
        fields.push(("URL".to_owned(), url.clone()));
    }
    if let Some(link) = &notice.link {
        fields.push(("Details".to_owned(), link.clone()));
    }
    if let Some(c) = &notice.commit {
        fields.push(("Commit".to_owned(), c.chars().take(12).collect()));
    }
    let mut context = format!("via {source}");
    if let Some(r) = &notice.request {
        context.push_str(&format!(" · request {r}"));
    }
    Message {
        title: Some(headline(notice)),
        text,
        fields,
        context: Some(context),
        tone: tone(status),
        ..Message::default()
    }
}

/// The line a request's card gains when the deploy it asked for is seen:
/// "deployed 2.5.0 to staging — healthy — https://…".
pub fn request_line(notice: &DeployNotice) -> String {
    let status = notice
        .latest()
        .map(|s| s.status)
        .unwrap_or(DeployStatus::Queued);
    let what = match notice.version() {
        Some(v) => format!("{v} to {}", notice.environment),
        None => format!("to {}", notice.environment),
    };
    let mut line = match status {
        DeployStatus::Queued | DeployStatus::InProgress => format!("deploying {what}"),
        DeployStatus::Deployed => format!("deployed {what}"),
        DeployStatus::Healthy | DeployStatus::Degraded => {
            format!("deployed {what} — {}", status.word())
        }
        DeployStatus::Failed => format!("deploying {what} failed"),
        DeployStatus::Cancelled => format!("deploying {what} was cancelled"),
    };
    if matches!(
        status,
        DeployStatus::Deployed | DeployStatus::Healthy | DeployStatus::Degraded
    ) {
        if let Some(url) = &notice.url {
            line.push_str(&format!(" — {url}"));
        }
    }
    line
}

/// For the platform team, once a day per name: a deploy of something the
/// catalog does not know.
pub fn unknown_service(source: &str, name: &str, candidates: &[String]) -> Message {
    let name = shorten(name);
    let mut text = format!(
        "{source} reported a deploy of `{name}`, which matches no service in the catalog, so nobody was told. \
         Add the catalog annotation that names it (github.com/project-slug, argocd/app-name) or fix the sender."
    );
    if !candidates.is_empty() {
        text.push_str(&format!(
            "\nIt could be any of: {} (the environment name should say which).",
            candidates.join(", ")
        ));
    }
    Message {
        title: Some("Deploy of an unknown service".into()),
        text,
        context: Some("told once a day per name".into()),
        tone: Tone::Warning,
        ..Message::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, ServiceName, Version};

    fn step(status: DeployStatus, v: Option<&str>) -> DeployStep {
        DeployStep {
            status,
            version: v.map(|v| Version::parse(v).unwrap()),
            at: 0,
        }
    }

    #[test]
    fn the_timeline_names_versions_where_they_change_and_skips_repeats() {
        use DeployStatus::*;
        let steps = [
            step(InProgress, Some("2.4.0")),
            step(Healthy, Some("2.4.0")),
            step(InProgress, Some("2.5.0")),
            step(InProgress, Some("2.5.0")),
            step(Healthy, None),
        ];
        assert_eq!(
            timeline(&steps),
            "2.4.0 deploying → healthy → 2.5.0 deploying → healthy"
        );
        let many: Vec<_> = (0..20)
            .map(|i| step(InProgress, Some(&format!("1.0.{i}"))))
            .collect();
        let t = timeline(&many);
        assert!(
            t.starts_with("… → 1.0.12 deploying") && t.ends_with("1.0.19 deploying"),
            "{t}"
        );
        let n = DeployNotice {
            service: ServiceName::parse("order-service").unwrap(),
            environment: Environment::Staging,
            steps: steps.to_vec(),
            url: Some("https://order-service.staging.example".into()),
            link: None,
            message: None,
            commit: None,
            request: None,
        };
        assert_eq!(headline(&n), "order-service staging: 2.5.0 healthy");
        assert_eq!(
            request_line(&n),
            "deployed 2.5.0 to staging — healthy — https://order-service.staging.example"
        );
    }
}
