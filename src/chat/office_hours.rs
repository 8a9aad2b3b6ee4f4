//! What Paver says around a docs answer, with humans in the loop: the
//! answer's feedback buttons and how it stands, the question handed to the
//! platform team, the platform team's answer relayed to the asker, and the
//! office-hours agenda. The answer's own text is `chat::docs`'s; this
//! wraps it.

use super::{Button, ButtonOp, ButtonPayload, ButtonStyle, Message, Platform, Tone};
use crate::storage::questions::{Handoff, Question, Votes};
use crate::util::text::shorten;

fn button(q: &Question, op: ButtonOp, label: &str, style: ButtonStyle) -> Button {
    Button {
        label: label.into(),
        style,
        payload: ButtonPayload {
            op,
            request_id: q.id.clone(),
            nonce: q.nonce.clone(),
        }
        .encode(),
        confirm: None,
    }
}

/// A channel as people click it: `<#C0123>` on Slack and Discord, plain
/// `#name` on the console.
pub fn channel_mention(platform: Platform, channel: &str) -> String {
    match platform {
        Platform::Console => format!("#{channel}"),
        Platform::Slack | Platform::Discord => format!("<#{channel}>"),
    }
}

/// Where a message is, as a link people can follow: a Slack thread's
/// permalink (slack.com redirects it into the workspace), a Discord
/// channel or thread's mention, the console's channel name.
pub fn thread_link(platform: Platform, channel: &str, message_ref: Option<&str>) -> String {
    match (platform, message_ref) {
        (Platform::Slack, Some(ts)) => format!(
            "https://slack.com/archives/{channel}/p{}",
            ts.replace('.', "")
        ),
        _ => channel_mention(platform, channel),
    }
}

fn votes_line(v: Votes) -> Option<String> {
    (v.helpful + v.not_helpful > 0).then(|| format!("👍 {} · 👎 {}", v.helpful, v.not_helpful))
}

/// The docs answer `answer` as posted and then edited: the feedback
/// buttons (Helpful, Not helpful, Ask a human while nobody was asked,
/// Office hours on a "don't know" not yet tagged), the votes, and how the
/// handoff stands. `platform_channel`: where the question was (or would
/// be) handed off, as [`channel_mention`] writes it.
pub fn answer_card(
    answer: &Message,
    q: &Question,
    votes: Votes,
    platform_channel: Option<&str>,
) -> Message {
    let mut m = answer.clone();
    // Untitled messages are plain lines on the console, without buttons.
    if m.title.is_none() {
        m.title = Some(if q.known {
            "From the docs".into()
        } else {
            "Not in the docs".into()
        });
    }
    let mut context: Vec<String> = m.context.take().into_iter().collect();
    if let Some(v) = votes_line(votes) {
        context.push(v);
    }
    match q.handoff {
        Some(Handoff::Asked) => context.push(match platform_channel {
            Some(c) => format!("Asked the platform team in {c}; the answer will be brought here"),
            None => "Asked the platform team; the answer will be brought here".into(),
        }),
        Some(Handoff::Answered) => context.push("The platform team answered in this thread".into()),
        None => {}
    }
    if q.office_hours_at.is_some() {
        context.push(match q.agenda_period {
            Some(_) => "Discussed at office hours".into(),
            None => "On the next office-hours agenda".into(),
        });
    }
    m.context = (!context.is_empty()).then(|| context.join(" · "));
    m.buttons = vec![
        button(q, ButtonOp::Helpful, "Helpful", ButtonStyle::Default),
        button(q, ButtonOp::NotHelpful, "Not helpful", ButtonStyle::Default),
    ];
    if q.handoff.is_none() {
        // Primary on a "don't know": asking a human is what to do next.
        let style = if q.known {
            ButtonStyle::Default
        } else {
            ButtonStyle::Primary
        };
        m.buttons
            .push(button(q, ButtonOp::AskHuman, "Ask a human", style));
    }
    if !q.known && q.office_hours_at.is_none() {
        m.buttons.push(button(
            q,
            ButtonOp::OfficeHours,
            "Office hours",
            ButtonStyle::Default,
        ));
    }
    // The first button is drawn as the primary one: put it first.
    m.buttons.sort_by_key(|b| {
        if b.style == ButtonStyle::Primary {
            0
        } else {
            1
        }
    });
    m
}

/// The question as handed to the platform team, in their channel: who
/// asked and where, what Paver answered, the sources. Edited when it is
/// answered or tagged for office hours.
pub fn handoff(
    q: &Question,
    asked_in: &str,
    answered: &str,
    sources: &[(String, String)],
) -> Message {
    let mut text = format!(
        "{} asked in {asked_in}:\n> {}\n\n{answered}",
        shorten(&q.asker_name),
        shorten(&q.question)
    );
    for (heading, url) in sources {
        text.push_str(&format!("\n• {heading}: {url}"));
    }
    let mut context = Vec::new();
    match (&q.handoff, &q.answered_by) {
        (Some(Handoff::Answered), Some(by)) => {
            context.push(format!("Answered by {}; relayed to the asker", shorten(by)))
        }
        _ => context.push("Reply in this thread: the first answer goes back to the asker".into()),
    }
    if q.office_hours_at.is_some() {
        context.push("On the office-hours agenda".into());
    }
    context.push(format!("Question {}", q.id));
    let mut buttons = Vec::new();
    if q.office_hours_at.is_none() {
        buttons.push(button(
            q,
            ButtonOp::OfficeHours,
            "Office hours",
            ButtonStyle::Default,
        ));
    }
    Message {
        title: Some("A question for the platform team".into()),
        text,
        context: Some(context.join(" · ")),
        buttons,
        tone: if q.handoff == Some(Handoff::Answered) {
            Tone::Success
        } else {
            Tone::Info
        },
        ..Message::default()
    }
}

/// What the handoff post says Paver answered.
pub fn what_paver_answered(known: bool) -> String {
    if known {
        "Paver answered from the docs; the asker wants a human:".into()
    } else {
        "The docs don't answer it.".into()
    }
}

/// In the asker's thread, once the question is handed off.
pub fn handed_off(platform_channel: &str) -> Message {
    Message {
        text: format!(
            "Asked the platform team in {platform_channel} — I'll bring the answer here."
        ),
        ..Message::default()
    }
}

/// In the asker's thread: the platform team's first answer.
pub fn relayed(asker_id: &str, by: &str, answer: &str, link: &str) -> Message {
    Message {
        text: format!(
            "<@{asker_id}> {} answered: {}\n{link}",
            shorten(by),
            shorten(answer)
        ),
        mentions: vec![asker_id.to_owned()],
        tone: Tone::Success,
        ..Message::default()
    }
}

/// In the asker's thread: the on-call page did not go out.
pub fn page_failed(platform_channel: &str, error: &str) -> Message {
    Message {
        text: format!(
            "Paging the platform on-call failed ({}); the question is in {platform_channel} all the same.",
            shorten(error)
        ),
        tone: Tone::Warning,
        ..Message::default()
    }
}

/// To the presser: the button is not (or no longer) one of Paver's.
pub fn stale_button() -> Message {
    Message {
        text: "That button doesn't belong to a question Paver knows (an old or copied message?); nothing was done.".into(),
        tone: Tone::Warning,
        ..Message::default()
    }
}

/// To the presser: only the asker may hand the question off.
pub fn not_the_asker(asker: &str) -> Message {
    Message {
        text: format!(
            "Only {}, who asked, can hand this question to the platform team. Ask it yourself to get your own button.",
            shorten(asker)
        ),
        tone: Tone::Warning,
        ..Message::default()
    }
}

/// To the presser: there is nowhere to hand the question to.
pub fn no_platform_channel() -> Message {
    Message {
        text: "There is no platform team channel to ask in: the catalog's platform team has no channel here and docs.office_hours.channels is not set.".into(),
        tone: Tone::Warning,
        ..Message::default()
    }
}

/// One question on an office-hours agenda.
#[derive(Debug, Clone, PartialEq)]
pub struct AgendaItem {
    pub question: String,
    pub asker: String,
    /// "28 Nov".
    pub asked: String,
    pub known: bool,
    pub not_helpful: i64,
    pub handoff: Option<Handoff>,
}

/// The office-hours agenda: the questions tagged since the last one.
pub fn agenda(date: &str, items: &[AgendaItem]) -> Message {
    let mut text = String::new();
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let mut notes = vec![format!("{}, {}", shorten(&it.asker), it.asked)];
        if !it.known {
            notes.push("not in the docs".into());
        }
        if it.not_helpful > 0 {
            notes.push(format!("👎 {}", it.not_helpful));
        }
        match it.handoff {
            Some(Handoff::Asked) => notes.push("asked the team, unanswered".into()),
            Some(Handoff::Answered) => notes.push("answered in chat".into()),
            None => {}
        }
        text.push_str(&format!(
            "{}. “{}” — {}",
            i + 1,
            shorten(&it.question),
            notes.join(" · ")
        ));
    }
    Message {
        title: Some(format!("Office hours agenda — {date}")),
        text,
        context: Some(format!(
            "{} tagged since the last agenda. Tag one with the Office hours button or by starting a question with \"office hours:\".",
            crate::domain::wording::count(items.len() as u64, "question")
        )),
        ..Message::default()
    }
}
