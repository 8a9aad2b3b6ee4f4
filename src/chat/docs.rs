//! What Paver says when it answers from the docs: the sections that
//! answer a question, quoted briefly with links, or that it does not know
//! (and who does).

use super::{Message, Tone};
use crate::util::text::shorten;

/// A section quoted in an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Quoted {
    /// "Databases › PostgreSQL › Rotating credentials".
    pub heading_path: String,
    pub url: String,
    /// The section's text (shortened here).
    pub text: String,
}

/// The most of a section quoted, in characters; the link has the rest.
const QUOTE: usize = 280;

fn excerpt(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one.chars().take(QUOTE).collect();
    let cut = if one.chars().count() > QUOTE {
        // End on a word, not inside one.
        match cut.rfind(' ') {
            Some(i) => format!("{}…", &cut[..i]),
            None => format!("{cut}…"),
        }
    } else {
        cut
    };
    // The docs are ours, but a quote must not ping or break markup.
    crate::util::text::clean(&cut)
}

/// The sections that answer `question`, best first.
pub fn answer(question: &str, sections: &[Quoted]) -> Message {
    let mut text = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            text.push_str("\n\n");
        }
        text.push_str(&format!(
            "*{}*\n{}\n{}",
            s.heading_path,
            excerpt(&s.text),
            s.url
        ));
    }
    Message {
        title: Some(format!("From the docs: {}", shorten(question))),
        text,
        context: Some("Quoted from the platform docs; the links have the whole section.".into()),
        tone: Tone::Info,
        ..Message::default()
    }
}

/// The docs do not answer `question`: say so, point at the nearest page
/// when there is one, and at the people who know.
pub fn dont_know(
    question: &str,
    nearest: Option<&Quoted>,
    platform_channel: Option<&str>,
) -> Message {
    let mut text = format!(
        "I don't know: the docs don't answer \"{}\".",
        shorten(question)
    );
    if let Some(n) = nearest {
        text.push_str(&format!(
            "\nThe closest section is *{}*: {}",
            n.heading_path, n.url
        ));
    }
    match platform_channel {
        Some(c) => text.push_str(&format!("\nAsk the platform team in <#{c}>.")),
        None => text.push_str("\nAsk the platform team."),
    }
    Message {
        text,
        tone: Tone::Warning,
        ..Message::default()
    }
}
