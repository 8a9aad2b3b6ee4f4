//! The platform report's weekly digest as people read it in the platform
//! channel: the headline figures as a small table, the top unanswered
//! topics, and what the attached chart's colours are.

use super::Message;

/// The digest's figures, already worded (`report::digest` words them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DigestFigures {
    /// "3 Nov – 30 Nov".
    pub window: String,
    /// Label and value, in order.
    pub figures: Vec<(String, String)>,
    /// The most asked questions the docs did not answer, with counts.
    pub topics: Vec<(String, u64)>,
    /// A chart follows the message.
    pub chart: bool,
    /// How many weeks the digest covers (the whole report's `--since`).
    pub weeks: u32,
}

pub fn digest(d: &DigestFigures) -> Message {
    let mut text = String::from(
        "How the platform did: self-service through Paver, the docs' questions, and DORA for production.",
    );
    if !d.topics.is_empty() {
        text.push_str("\nMost asked and unanswered:");
        for (topic, n) in &d.topics {
            text.push_str(&format!("\n• {} ({n}×)", crate::util::text::shorten(topic)));
        }
    }
    let mut context = format!(
        "`paver report --since {}w` prints the whole report (per team and service; md, json or csv).",
        d.weeks.max(1)
    );
    if d.chart {
        context.push_str(" Chart, per week: blue requests, green deploys, red failed deploys.");
    }
    Message {
        title: Some(format!("Platform report — {}", d.window)),
        text,
        fields: d.figures.clone(),
        context: Some(context),
        ..Message::default()
    }
}
