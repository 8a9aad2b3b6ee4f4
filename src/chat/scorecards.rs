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
