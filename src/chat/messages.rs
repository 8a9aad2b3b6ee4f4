//! Every message Paver writes, in one place, built from stored state.

use chrono::{TimeZone, Utc};

use super::{Button, ButtonOp, ButtonPayload, ButtonStyle, Message, Tone};
use crate::catalog::Catalog;
use crate::domain::wording::{self, confirm_label, count, lowercase_first};
use crate::domain::{
    Action, ActionKind, Environment, Field, GoldenPath, RequestState, ServiceName,
};
use crate::drivers::{DriverError, EnvStatus, Outcome};
use crate::nlu::chatter::SmallTalk;
use crate::storage::cards::Audience;
use crate::storage::Request;
use crate::util::text::clean;

/// One line saying what an action does: the card's title.
pub use crate::domain::wording::summary as describe;

fn button(req: &Request, op: ButtonOp, label: &str, style: ButtonStyle) -> Button {
    Button {
        label: label.into(),
        style,
        payload: ButtonPayload {
            op,
            request_id: req.id.clone(),
            nonce: req.nonce.clone(),
        }
        .encode(),
        confirm: None,
    }
}

pub fn when(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

fn state_line(req: &Request) -> String {
    match req.state {
        RequestState::Proposed => "Waiting for your confirmation".into(),
        RequestState::Confirmed => "Confirmed".into(),
        RequestState::AwaitingApproval => match &req.approvers {
            Some(a) => format!("Waiting for approval by {}", a.describe()),
            None => "Waiting for approval".into(),
        },
        RequestState::Approved => "Approved, queued".into(),
        RequestState::Executing => "Running…".into(),
        RequestState::Succeeded => "Done".into(),
        RequestState::Failed => format!(
            "Failed: {}",
            req.error.as_deref().unwrap_or("unknown error")
        ),
        RequestState::Cancelled => "Cancelled".into(),
        RequestState::Denied => match (&req.denied_by, &req.denial_reason) {
            (Some(by), Some(why)) => format!("Denied by {by}: {}", clean(why)),
            (Some(by), None) => format!("Denied by {by}"),
            // Denied by policy, or before denials recorded who and why.
            (None, _) => "Denied".into(),
        },
        RequestState::Expired if req.error.is_some() => {
            "Failed, and expired without a retry".into()
        }
        RequestState::Expired => "Expired before anyone acted".into(),
    }
}

/// The request's card, derived from its stored state (so every update of
/// the card in place shows the same thing a restart would).
pub fn card(
    req: &Request,
    catalog: &Catalog,
    golden: &GoldenPath,
    progress: Option<&str>,
) -> Message {
    let action = &req.action;
    let mut fields: Vec<(String, String)> = Vec::new();
    match action {
        Action::ScaffoldService {
            name,
            template,
            owner,
        } => {
            fields.push(("Name".into(), name.to_string()));
            fields.push(("Template".into(), template.to_string()));
            if let Some(o) = owner {
                fields.push(("Owner".into(), o.to_string()));
            }
        }
        _ => {
            if let Some(s) = action.service() {
                fields.push(("Service".into(), s.to_string()));
            }
            match action {
                Action::Promote { from, to, .. } => {
                    fields.push(("From".into(), from.to_string()));
                    fields.push(("To".into(), to.to_string()));
                }
                _ => {
                    if let Some(e) = action.environment() {
                        fields.push(("Environment".into(), e.to_string()));
                    }
                }
            }
        }
    }
    match action {
        Action::CreateEnvironment { resources, .. } | Action::AddResource { resources, .. } => {
            for r in resources {
                let size = golden
                    .size(*r)
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "platform default".into());
                fields.push((format!("Resource: {r}"), size));
            }
        }
        Action::Deploy { version, .. } | Action::Rollback { version, .. } => {
            if let Some(v) = version {
                fields.push(("Version".into(), v.to_string()));
            }
        }
        Action::Scale { replicas, .. } => fields.push(("Replicas".into(), replicas.to_string())),
        _ => {}
    }
    // What it creates costs this a month, as estimated when proposed.
    if let Some(cost) = &req.cost {
        fields.push(("Estimated cost".into(), cost.describe(golden)));
    }
    if let Some(s) = action.service() {
        let owner = catalog
            .component(s.as_str())
            .and_then(|c| c.owner.as_ref())
            .map(|o| o.to_string())
            .unwrap_or_else(|| "no owner in the catalog".into());
        fields.push(("Owner".into(), owner));
    }
    fields.push(("Requested by".into(), req.requester.clone()));
    if let Some(a) = &req.approver {
        fields.push(("Approved by".into(), a.clone()));
    }
    let mut status = state_line(req);
    if let (RequestState::Executing, Some(p)) = (req.state, progress) {
        status = format!("Running: {p}");
    }
    fields.push(("Status".into(), status));
    if let Some(url) = &req.result_url {
        fields.push(("URL".into(), url.clone()));
    }
    // After the run, the line is what the deploy did since (a deploy
    // hook's news: "deployed 2.5.0 to staging — healthy — https://…").
    if let (RequestState::Succeeded, Some(p)) = (req.state, progress) {
        fields.push(("Deploy".into(), p.to_owned()));
    }
    // Policy's notes speak of what is still to happen ("without an
    // approval within 24 h the request expires"): only while it can.
    let mut context: Vec<String> = match req.state {
        RequestState::Proposed | RequestState::Confirmed | RequestState::AwaitingApproval => {
            req.notes.clone()
        }
        _ => Vec::new(),
    };
    if let Some(exp) = req.approval_expires_at {
        if req.state == RequestState::AwaitingApproval {
            context.push(format!("Approval expires {}", when(exp)));
        }
    }
    context.push(format!("Request {} · {}", req.id, when(req.created_at)));
    let kind = action.kind();
    let destructive = kind == ActionKind::DestroyEnvironment;
    let buttons = match req.state {
        // Something must happen first: offer that, not a doomed confirm.
        RequestState::Proposed if req.first.is_some() => vec![
            button(
                req,
                ButtonOp::First,
                "Create it first",
                ButtonStyle::Primary,
            ),
            button(req, ButtonOp::Cancel, "Cancel", ButtonStyle::Default),
        ],
        RequestState::Proposed => {
            let mut confirm = button(
                req,
                ButtonOp::Confirm,
                confirm_label(kind),
                if destructive {
                    ButtonStyle::Danger
                } else {
                    ButtonStyle::Primary
                },
            );
            if destructive {
                confirm.confirm = Some(format!("{}? This cannot be undone.", describe(action)));
            }
            vec![
                confirm,
                button(req, ButtonOp::Cancel, "Cancel", ButtonStyle::Default),
            ]
        }
        RequestState::AwaitingApproval => vec![
            button(req, ButtonOp::Approve, "Approve", ButtonStyle::Primary),
            button(req, ButtonOp::Deny, "Deny", ButtonStyle::Danger),
            button(req, ButtonOp::Cancel, "Cancel", ButtonStyle::Default),
        ],
        RequestState::Failed if req.retryable => {
            vec![button(req, ButtonOp::Retry, "Retry", ButtonStyle::Primary)]
        }
        _ => Vec::new(),
    };
    let tone = match req.state {
        RequestState::Succeeded => Tone::Success,
        RequestState::Failed | RequestState::Denied => Tone::Danger,
        RequestState::AwaitingApproval => Tone::Warning,
        _ if destructive => Tone::Warning,
        _ => Tone::Info,
    };
    Message {
        title: Some(describe(action)),
        text: String::new(),
        fields,
        context: Some(context.join(" · ")),
        buttons,
        tone,
        mentions: Vec::new(),
    }
}

/// Plain text; anything that reads as text will do (a typed refusal
/// included: its `Display` is what the user sees).
pub fn notice(text: impl std::fmt::Display) -> Message {
    Message {
        text: text.to_string(),
        ..Message::default()
    }
}

pub fn approval_needed(req: &Request, rule: &str) -> Message {
    let who = req
        .approvers
        .as_ref()
        .map(|a| a.describe())
        .unwrap_or_else(|| "an approver".into());
    Message {
        text: format!(
            "Approval needed from {who} (policy: {rule}). {} asked to {}; press Approve or Deny on the card.",
            req.requester,
            lowercase_first(&describe(&req.action))
        ),
        tone: Tone::Warning,
        ..Message::default()
    }
}

/// [`approval_needed`] in the request's thread, mentioning the approvers
/// when no copy of the card is posted where they look (the owning team
/// has no channel on this platform, or it is the request's own channel).
pub fn approval_needed_mentioning(req: &Request, rule: &str, mentions: &[String]) -> Message {
    let mut m = approval_needed(req, rule);
    if !mentions.is_empty() {
        m.text = format!("{}: {}", wording::join_or(mentions), m.text);
        m.mentions = pinged(mentions);
    }
    m
}

/// The chat ids of the `<@id>` mentions among `mentions` (the rest are
/// names of people without a chat id here), to notify them.
fn pinged(mentions: &[String]) -> Vec<String> {
    mentions
        .iter()
        .filter_map(|m| m.strip_prefix("<@")?.strip_suffix('>'))
        .map(str::to_owned)
        .collect()
}

/// A copy of the request's card where its approvers look: the card itself
/// (same buttons, same ids, so a press on it is a press on the request)
/// with a line saying who is asked and where the request was made. Built
/// from the card every time, so the copy cannot drift from the original.
pub fn approval_copy(
    card: Message,
    req: &Request,
    audience: Audience,
    mentions: &[String],
) -> Message {
    let asking = req.state == RequestState::AwaitingApproval;
    let who = &req.requester;
    let place = format!("<#{}>", req.channel);
    let text = match (audience, asking) {
        (Audience::Channel, true) => format!(
            "Approval needed from {}: {who} asked in {place}. One approval is enough; press Approve or Deny here.",
            wording::join_or(mentions)
        ),
        (Audience::Channel, false) => format!(
            "Approval was asked of {} ({who} asked in {place}).",
            wording::join_or(mentions)
        ),
        (Audience::Direct, true) => format!(
            "{who} asked in {place}, and you are one of the approvers. One approval is enough; press Approve or Deny here."
        ),
        (Audience::Direct, false) => {
            format!("{who} asked in {place} for an approval you could give.")
        }
    };
    // In a channel, the people asked are mentioned (a DM notifies by
    // itself). The updates keep the same mentions, so they still read as
    // names; an edit adds no one and notifies no one again.
    let mentions = match audience {
        Audience::Channel => pinged(mentions),
        Audience::Direct => Vec::new(),
    };
    Message {
        text,
        mentions,
        ..card
    }
}

/// Said under a copy (or in the request's thread) when its approval
/// expires soon and nobody has decided.
pub fn approval_reminder(req: &Request, audience: Audience, mentions: &[String]) -> Message {
    let expires = req
        .approval_expires_at
        .map(|t| format!(" at {}", when(t)))
        .unwrap_or_default();
    let text = match audience {
        Audience::Channel => format!(
            "Reminder for {}: this request still needs an approval, and it expires{expires} without one. Press Approve or Deny on the card.",
            wording::join_or(mentions)
        ),
        Audience::Direct => format!(
            "Reminder: this request still needs an approval, and it expires{expires} without one. Press Approve or Deny on the card."
        ),
    };
    Message {
        text,
        tone: Tone::Warning,
        mentions: match audience {
            Audience::Channel => pinged(mentions),
            Audience::Direct => Vec::new(),
        },
        ..Message::default()
    }
}

/// Said under a copy an earlier approval round left, when the request
/// (retried) needs approval again: the copy is updated in place, and this
/// line is what tells the approvers.
pub fn approval_asked_again(audience: Audience, mentions: &[String]) -> Message {
    let text = match audience {
        Audience::Channel => format!(
            "{}: this request needs an approval again. Press Approve or Deny on the card.",
            wording::join_or(mentions)
        ),
        Audience::Direct => {
            "This request needs an approval again. Press Approve or Deny on the card.".to_owned()
        }
    };
    Message {
        text,
        tone: Tone::Warning,
        mentions: match audience {
            Audience::Channel => pinged(mentions),
            Audience::Direct => Vec::new(),
        },
        ..Message::default()
    }
}

pub fn denied(reason: &str) -> Message {
    Message {
        text: format!("Not allowed: {reason}"),
        tone: Tone::Danger,
        ..Message::default()
    }
}

pub fn succeeded(_req: &Request, outcome: &Outcome) -> Message {
    let mut text = format!("Done: {}.", outcome.summary.trim_end_matches('.'));
    if let Some(url) = &outcome.url {
        text.push_str(&format!("\nURL: {url}"));
    }
    // Connection details are the driver's to report (as links); Paver does
    // not name a secret store that nothing here provisions.
    Message {
        text,
        fields: outcome.links.clone(),
        tone: Tone::Success,
        ..Message::default()
    }
}

pub fn failed(req: &Request, error: &str) -> Message {
    let next = if req.retryable {
        "The request is kept as failed; press Retry on the card to run it again."
    } else {
        "The request is kept as failed. Running it again would fail the same way: ask for what you need differently."
    };
    Message {
        text: format!(
            "Failed to {}: {error}\n{next}",
            lowercase_first(&describe(&req.action))
        ),
        tone: Tone::Danger,
        ..Message::default()
    }
}

/// What a request lacks, for its card: "basket-service has no production
/// environment yet; create it first, then ask again."
pub fn first_note(_action: &Action, first: &Action) -> String {
    match first {
        Action::CreateEnvironment {
            service,
            environment,
            ..
        } => format!(
            "{service} has no {environment} environment yet: press Create it first, then ask again"
        ),
        other => format!("First: {}", lowercase_first(&describe(other))),
    }
}

/// Said in the thread when "Create it first" replaces a request.
pub fn first_proposed(action: &Action, first: &Action) -> Message {
    notice(format!(
        "Cancelled this one; here is what it needs first: {}. Once that is done, ask again to {}.",
        lowercase_first(&describe(first)),
        lowercase_first(&describe(action))
    ))
}

/// Posted at once when a message goes to the LLM (seconds, on a small
/// model), so nobody waits with no sign of life; the card, or the answer,
/// then replaces it in place.
pub fn reading() -> Message {
    notice("_reading that…_")
}

/// What a placeholder becomes when the message turned out to be a docs
/// question: its answer, with its own buttons, follows in a message of its own.
pub fn reading_docs() -> Message {
    notice("_looking that up in the docs…_")
}

/// What a placeholder becomes when the message asked nothing of Paver.
pub fn nothing_asked() -> Message {
    notice("_nothing for me to do there._")
}

pub fn unknown_user(user: &str) -> Message {
    notice(format!(
        "I don't know {user} in the catalog, so I can't take change requests from you. \
         Ask the platform team to add your chat id to your catalog User entity \
         (annotation slack.com/user-id or discord.com/user-id). Say `help` to see what I can do."
    ))
}

/// The answer to an ownership, status or scorecard question from someone
/// the catalog does not know (`policy.unknown_users = "none"`): help and a
/// pointer, no data.
pub fn unknown_user_reads(user: &str, catalog: &Catalog) -> Message {
    let channel = catalog
        .group("team-platform")
        .and_then(|g| g.slack_channel.clone())
        .map(|c| format!(" (in <#{c}>)"))
        .unwrap_or_default();
    let mut answer = help();
    answer.text = format!(
        "I don't know {user} in the catalog, so I can't share ownership, status or scorecards with you. \
         Ask the platform team{channel} to add your chat id to your catalog User entity \
         (annotation slack.com/user-id or discord.com/user-id).\n\n{}",
        answer.text
    );
    answer
}

/// Help lists every action; the match is exhaustive, so a new action does
/// not compile until help mentions it.
pub fn help() -> Message {
    let mut lines = vec!["Here is what I can do. Mention me or DM me in plain words:".to_owned()];
    for kind in ActionKind::ALL {
        let line = match kind {
            ActionKind::CreateEnvironment => {
                "• create staging for order-service with postgres and redis"
            }
            ActionKind::DestroyEnvironment => "• tear down the preview env of cart-service",
            ActionKind::AddResource => "• add a redis cache to checkout-api in staging",
            ActionKind::Deploy => "• deploy checkout-api 2.3.1 to prod",
            ActionKind::Rollback => "• roll back billing-api in production",
            ActionKind::Promote => "• promote order-service from staging to production",
            ActionKind::Scale => "• scale order-worker to 5 replicas in production",
            ActionKind::Restart => "• restart auth-service in staging",
            ActionKind::ScaffoldService => {
                "• create a new go service called invoice-api for team-commerce"
            }
            ActionKind::Status => "• what's the status of order-service in staging?",
            ActionKind::WhoOwns => "• who owns payment-gateway?",
            ActionKind::Scorecard => "• scorecard for team-payments",
            ActionKind::Ask => {
                "• how do I rotate my database credentials? (questions for the platform team)"
            }
            ActionKind::Help | ActionKind::Nothing | ActionKind::Clarify => continue,
        };
        lines.push(line.to_owned());
    }
    lines.push(
        "Nothing changes until you press the button on the card I show you; some changes also need an approver."
            .into(),
    );
    notice(lines.join("\n"))
}

pub fn clarify(missing: &[Field], candidates: &[String], intent: Option<ActionKind>) -> Message {
    // Two requests argued for equally ("deploy or roll back?"): the
    // candidates are actions, and the question is which.
    if missing.is_empty() && !candidates.is_empty() {
        let kinds: Vec<&str> = candidates
            .iter()
            .map(|c| ActionKind::from_name(c).map_or(c.as_str(), |k| wording::intent(k)))
            .collect();
        return notice(format!(
            "I'm not sure what you want me to do: {}? Say the whole request again with the one you mean.",
            kinds.join(" or ")
        ));
    }
    let what = intent
        .map(|k| format!(" to {}", wording::intent(k)))
        .unwrap_or_default();
    let mut asks = Vec::new();
    for m in missing {
        asks.push(match m {
            Field::Service if !candidates.is_empty() => format!(
                "Which service did you mean: {}?",
                candidates.join(", ")
            ),
            Field::Service => "Which service? I could not find it in the catalog.".to_owned(),
            Field::Environment => "Which environment: dev, staging, production or preview?".to_owned(),
            Field::Template if !candidates.is_empty() => format!(
                "Which template: {}?",
                candidates.join(", ")
            ),
            Field::Name => "What should the new service be called (lowercase letters, digits and hyphens, not a name already in the catalog)?".to_owned(),
            Field::Replicas => "How many replicas?".to_owned(),
            Field::From => "Promote from which environment?".to_owned(),
            Field::To => "Promote to which environment?".to_owned(),
            other => format!("What {other}?"),
        });
    }
    notice(format!(
        "I need a bit more{what}. {} Say the whole request again with it.",
        asks.join(" ")
    ))
}

pub fn ask(question: &str, catalog: &Catalog) -> Message {
    let channel = catalog
        .group("team-platform")
        .and_then(|g| g.slack_channel.clone())
        .map(|c| format!(" in <#{c}>"))
        .unwrap_or_default();
    notice(format!(
        "That sounds like a question for the platform team (\"{question}\"). I can't answer from the docs yet; ask the platform team{channel}, or say `help` to see what I can do."
    ))
}

pub fn who_owns(catalog: &Catalog, service: &ServiceName) -> Message {
    let Some(component) = catalog.component(service.as_str()) else {
        return notice(format!("{service} is not in the catalog."));
    };
    let Some(team) = component
        .owner
        .as_ref()
        .and_then(|o| catalog.group(o.as_str()))
    else {
        return notice(format!("{service} has no owning team in the catalog. That is worth fixing: add spec.owner to its catalog-info.yaml."));
    };
    let mut fields = vec![("Team".to_owned(), team.name.to_string())];
    if let Some(c) = &team.slack_channel {
        fields.push(("Slack".into(), format!("<#{c}>")));
    }
    if let Some(c) = &team.discord_channel {
        fields.push(("Discord".into(), format!("<#{c}>")));
    }
    if !team.members.is_empty() {
        let mut m: Vec<String> = team.members.iter().map(|u| u.to_string()).collect();
        m.sort();
        fields.push(("Members".into(), m.join(", ")));
    }
    Message {
        title: Some(format!(
            "{service} is owned by {}",
            team.title.clone().unwrap_or_else(|| team.name.to_string())
        )),
        fields,
        ..Message::default()
    }
}

pub fn status(service: &ServiceName, envs: Result<Vec<EnvStatus>, DriverError>) -> Message {
    match envs {
        Err(e) => notice(format!("I couldn't read the state of {service}: {e}")),
        Ok(envs) if envs.is_empty() => {
            notice(format!("{service} has no environments that I manage yet."))
        }
        Ok(envs) => Message {
            title: Some(format!("Status of {service}")),
            fields: envs
                .iter()
                .map(|e| (e.environment.to_string(), env_line(e)))
                .collect(),
            ..Message::default()
        },
    }
}

/// One environment in a line: "version 1.4.0 · 2 replicas · postgres · healthy · URL".
fn env_line(e: &EnvStatus) -> String {
    let mut parts = vec![format!("version {}", e.version.as_deref().unwrap_or("?"))];
    if let Some(r) = e.replicas {
        parts.push(count(u64::from(r), "replica"));
    }
    if !e.resources.is_empty() {
        parts.push(
            e.resources
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        );
    }
    if let Some(h) = &e.health {
        parts.push(h.clone());
    }
    if let Some(u) = &e.url {
        parts.push(u.clone());
    }
    if let Some(x) = e.expires_at {
        parts.push(format!("expires {}", when(x * 1000)));
    }
    parts.join(" · ")
}

/// What runs in one environment, a line per service that has it; services
/// whose state could not be read are named, not hidden.
pub fn environment_overview(
    env: Environment,
    results: Vec<(ServiceName, Result<Vec<EnvStatus>, DriverError>)>,
) -> Message {
    let mut fields = Vec::new();
    let mut unreadable = Vec::new();
    for (service, result) in results {
        match result {
            Ok(envs) => {
                for e in envs.iter().filter(|e| e.environment == env) {
                    fields.push((service.to_string(), env_line(e)));
                }
            }
            Err(_) => unreadable.push(service.to_string()),
        }
    }
    if fields.is_empty() && unreadable.is_empty() {
        return notice(format!("Nothing that I manage runs in {env} yet."));
    }
    let text = if unreadable.is_empty() {
        String::new()
    } else {
        format!("I couldn't read the state of {}.", unreadable.join(", "))
    };
    Message {
        title: Some(format!("What runs in {env}")),
        text,
        fields,
        ..Message::default()
    }
}

/// A one-line answer to "hi" or "thanks".
pub fn small_talk(talk: SmallTalk, catalog: &Catalog) -> Message {
    match talk {
        SmallTalk::Thanks => notice("You're welcome!"),
        SmallTalk::Greeting => {
            let example = catalog
                .components()
                .next()
                .map(|c| format!("\"create staging for {} with postgres\"", c.name))
                .unwrap_or_else(|| "\"who owns <service>?\"".into());
            notice(format!(
                "Hi! Tell me what you need in plain words, for example {example}, or say `help` to see what I can do."
            ))
        }
    }
}
