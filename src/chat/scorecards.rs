//! What Paver says about scorecards: one service's (its level, what fails
//! and how to fix it) and one team's (a line per service).

use super::{Message, Tone};
use crate::domain::scorecard::{team_level, CheckOutcome, Level, ServiceScore};
use crate::domain::TeamName;

fn level_words(level: Option<Level>) -> String {
    match level {
        Some(l) => l.title().to_owned(),
        None => "below Bronze".to_owned(),
    }
}

fn tone(level: Option<Level>) -> Tone {
    match level {
        Some(Level::Gold) => Tone::Success,
        Some(Level::Silver) => Tone::Info,
        Some(Level::Bronze) => Tone::Warning,
        None => Tone::Danger,
    }
}

/// "has-oncall (medium): no `pagerduty.com/service-id` annotation. Add … — https://…"
pub fn failing_line(c: &CheckOutcome) -> String {
    let mut line = format!(
        "{} ({}): {}. {}",
        c.name,
        c.weight,
        c.reason().unwrap_or("failing"),
        c.help
    );
    if let Some(url) = &c.fix_url {
        line.push_str(&format!(" How to fix: {url}"));
    }
    line
}

/// One service's scorecard.
pub fn service(score: &ServiceScore) -> Message {
    let failing = score.failing();
    let total = score.checks.len();
    let text = if failing.is_empty() {
        format!("All {total} checks pass.")
    } else {
        let mut t = format!("{} of {total} checks fail:", failing.len());
        for c in &failing {
            t.push_str(&format!("\n• {}", failing_line(c)));
        }
        t
    };
    let mut context = match score.level {
        None => "A service below Bronze cannot be promoted to production.".to_owned(),
        Some(Level::Bronze) => "Production services are expected to be at least Silver.".to_owned(),
        Some(_) => String::new(),
    };
    if let Some(o) = &score.owner {
        if !context.is_empty() {
            context.push_str(" · ");
        }
        context.push_str(&format!("owned by {o}"));
    }
    Message {
        title: Some(format!(
            "Scorecard for {}: {}",
            score.service,
            level_words(score.level)
        )),
        text,
        context: (!context.is_empty()).then_some(context),
        tone: tone(score.level),
        ..Message::default()
    }
}

/// A team's scorecard: its level (its weakest service's) and a line per
/// service, weakest first.
pub fn team(team: &TeamName, scores: &[ServiceScore]) -> Message {
    if scores.is_empty() {
        return Message {
            text: format!("{team} owns no service in the catalog, so there is nothing to score."),
            ..Message::default()
        };
    }
    let mut sorted: Vec<&ServiceScore> = scores.iter().collect();
    sorted.sort_by(|a, b| {
        a.level
            .cmp(&b.level)
            .then_with(|| a.service.cmp(&b.service))
    });
    let fields = sorted
        .iter()
        .map(|s| {
            let failing: Vec<&str> = s.failing().iter().map(|c| c.name.as_str()).collect();
            let value = if failing.is_empty() {
                format!("{} · every check passes", level_words(s.level))
            } else {
                format!("{} · failing: {}", level_words(s.level), failing.join(", "))
            };
            (s.service.to_string(), value)
        })
        .collect();
    let level = team_level(scores);
    Message {
        title: Some(format!("Scorecard for {team}: {}", level_words(level))),
        text: format!(
            "{} services; a team is as ready as its weakest service. Ask \"scorecard for <service>\" for how to fix each check.",
            scores.len()
        ),
        fields,
        tone: tone(level),
        ..Message::default()
    }
}

// ----- nags ---------------------------------------------------------------

use super::{Button, ButtonOp, ButtonPayload, ButtonStyle};
use crate::storage::nags::{DigestBody, DigestEntry};

/// How a digest line stands after someone pressed one of its buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineStatus {
    Open,
    /// Hidden from digests until `until` (a date, as said).
    Snoozed {
        by: String,
        until: String,
    },
    WontFix {
        by: String,
        reason: String,
    },
    /// Re-checked: it passes now.
    PassingNow {
        by: String,
    },
    /// Re-checked: it still fails.
    StillFailing {
        by: String,
    },
}

impl LineStatus {
    fn suffix(&self) -> Option<String> {
        match self {
            LineStatus::Open => None,
            LineStatus::Snoozed { by, until } => Some(format!("snoozed by {by} until {until}")),
            LineStatus::WontFix { by, reason } => Some(format!("won't fix ({by}): {reason}")),
            LineStatus::PassingNow { by } => Some(format!("passing now (re-checked by {by})")),
            LineStatus::StillFailing { by } => Some(format!("still failing (re-checked by {by})")),
        }
    }

    /// Whether the line's buttons still make sense.
    fn open(&self) -> bool {
        matches!(self, LineStatus::Open | LineStatus::StillFailing { .. })
    }
}

/// Whose digest it is: a team's, or the one for services nobody owns.
pub fn digest_audience(team: Option<&TeamName>) -> String {
    match team {
        Some(t) => t.to_string(),
        None => "services without an owner".to_owned(),
    }
}

fn key_words(key: &str) -> String {
    match key.split_once('/') {
        Some((service, check)) => format!("{check} on {service}"),
        None => key.to_owned(),
    }
}

/// A team's weekly digest: failing checks grouped by service, most
/// critical first, each with how to fix it; what changed since the
/// previous digest; what the team won't fix, and why. `status` says how
/// each line stands (by its item id) once someone pressed a button.
pub fn digest(
    audience: &str,
    body: &DigestBody,
    status: &dyn Fn(&DigestEntry) -> LineStatus,
) -> Message {
    let listed: Vec<&DigestEntry> = body
        .entries
        .iter()
        .filter(|e| e.wont_fix.is_none())
        .collect();
    // One line per service, its failing checks most critical first; how
    // to fix each is in its own line in the thread (with its buttons),
    // which keeps the digest within a chat message's limits.
    let mut text = String::new();
    let mut i = 0;
    while i < listed.len() {
        let service = &listed[i].service;
        let mut checks = Vec::new();
        while i < listed.len() && &listed[i].service == service {
            let e = listed[i];
            checks.push(match status(e).suffix() {
                Some(s) => format!("{} ({}) — {s}", e.check, e.weight),
                None => format!("{} ({})", e.check, e.weight),
            });
            i += 1;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "• *{service}* · {}: {}",
            listed[i - 1].level,
            checks.join(", ")
        ));
    }
    if listed.is_empty() {
        text.push_str("Nothing new fails; only checks the team won't fix are left.");
    }
    let mut fields = Vec::new();
    let changed = if body.first {
        "First digest: every failing check is listed.".to_owned()
    } else {
        let mut parts = Vec::new();
        if !body.newly_failing.is_empty() {
            let keys: Vec<String> = body.newly_failing.iter().map(|k| key_words(k)).collect();
            parts.push(format!("newly failing: {}", keys.join(", ")));
        }
        if !body.fixed.is_empty() {
            let keys: Vec<String> = body.fixed.iter().map(|k| key_words(k)).collect();
            parts.push(format!("fixed: {}", keys.join(", ")));
        }
        if parts.is_empty() {
            "Nothing since the previous digest.".to_owned()
        } else {
            let mut s = parts.join("; ");
            s.replace_range(0..1, &s[0..1].to_uppercase());
            s.push('.');
            s
        }
    };
    fields.push(("What changed".to_owned(), changed));
    let wont: Vec<String> = body
        .entries
        .iter()
        .filter_map(|e| {
            e.wont_fix
                .as_ref()
                .map(|(reason, by)| format!("{} on {}: \"{reason}\" ({by})", e.check, e.service))
        })
        .collect();
    if !wont.is_empty() {
        fields.push(("Won't fix".to_owned(), wont.join("\n")));
    }
    let mut context = vec![
        "How to fix each, with Snooze 1 week, Won't fix and Re-check now, is in the thread"
            .to_owned(),
    ];
    if body.snoozed > 0 {
        context.insert(
            0,
            match body.snoozed {
                1 => "1 snoozed check left out".to_owned(),
                n => format!("{n} snoozed checks left out"),
            },
        );
    }
    let critical = listed.iter().any(|e| e.weight == "critical");
    Message {
        title: Some(match listed.len() {
            1 => format!("Scorecard digest for {audience}: 1 failing check"),
            n => format!("Scorecard digest for {audience}: {n} failing checks"),
        }),
        text,
        fields,
        context: Some(context.join(" · ")),
        tone: if critical {
            Tone::Danger
        } else {
            Tone::Warning
        },
        ..Message::default()
    }
}

/// One failing check of a digest, in its thread, with its buttons (while
/// it is open).
pub fn digest_line(entry: &DigestEntry, nonce: &str, status: &LineStatus) -> Message {
    let mut text = entry.line.clone();
    if let Some(s) = status.suffix() {
        text.push_str(&format!("\n_{s}_"));
    }
    let buttons = match (&entry.item, status.open()) {
        (Some(id), true) => {
            let button = |op: ButtonOp, label: &str| Button {
                label: label.to_owned(),
                style: ButtonStyle::Default,
                payload: ButtonPayload {
                    op,
                    request_id: id.clone(),
                    nonce: nonce.to_owned(),
                }
                .encode(),
                confirm: None,
            };
            vec![
                button(ButtonOp::Snooze, "Snooze 1 week"),
                button(ButtonOp::WontFix, "Won't fix"),
                button(ButtonOp::Recheck, "Re-check now"),
            ]
        }
        _ => Vec::new(),
    };
    Message {
        // A title makes it a card the console can press buttons on too.
        title: Some(format!("{} · {}", entry.service, entry.check)),
        text,
        buttons,
        tone: match status {
            LineStatus::PassingNow { .. } => Tone::Success,
            LineStatus::Open | LineStatus::StillFailing { .. } if entry.weight == "critical" => {
                Tone::Danger
            }
            _ => Tone::Warning,
        },
        ..Message::default()
    }
}

/// A critical check that failed in `streak` digests in a row, told to the
/// platform channels; `manager` is the chat id to mention.
pub fn escalation(
    audience: &str,
    entry: &DigestEntry,
    streak: u32,
    manager: Option<&str>,
) -> Message {
    let mut text = format!(
        "{} ({}) on {} has failed in {streak} digests of {audience} in a row.\n• {}",
        entry.check, entry.weight, entry.service, entry.line
    );
    if let Some(id) = manager {
        text.push_str(&format!("\n<@{id}>, can you help the team get it fixed?"));
    }
    Message {
        title: Some(format!("Escalation: {} on {}", entry.check, entry.service)),
        text,
        tone: Tone::Danger,
        mentions: manager.map(|m| vec![m.to_owned()]).unwrap_or_default(),
        ..Message::default()
    }
}

/// The answer to `Won't fix` pressed without a reason.
pub fn wont_fix_needs_reason(entry_words: &str) -> Message {
    super::messages::notice(format!(
        "Won't fix {entry_words} needs a reason, shown in every later digest: press Won't fix again and give one."
    ))
}

/// The answer to a nag button whose item is gone or whose nonce differs.
pub fn nag_button_stale() -> Message {
    super::messages::notice("That digest button is not one of mine (or it is too old).")
}
