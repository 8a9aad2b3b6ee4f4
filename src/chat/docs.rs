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
pub const QUOTE: usize = 280;

/// `text` as one line, cut at a word to at most `max` characters (plain:
/// not yet made safe for chat).
pub fn brief(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        return one;
    }
    let cut: String = one.chars().take(max).collect();
    // End on a word, not inside one.
    match cut.rfind(' ') {
        Some(i) => format!("{}…", &cut[..i]),
        None => format!("{cut}…"),
    }
}

fn excerpt(text: &str) -> String {
    // The docs are ours, but a quote must not ping or break markup.
    crate::util::text::clean(&brief(text, QUOTE))
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

/// A section an answer cites.
#[derive(Debug, Clone, PartialEq)]
pub struct Cited {
    /// "PostgreSQL › Rotating credentials".
    pub heading_path: String,
    pub url: String,
}

/// The longest line of a written answer shown, in characters.
const ANSWER_LINE: usize = 1000;

/// A model's text made safe for chat, line by line: what could ping or
/// break markup is neutralised, but a line's code spans are kept when its
/// backticks pair up (an unpaired one would swallow the rest).
fn safe(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            // One blank line between paragraphs at most.
            if lines.last().is_some_and(|l| !l.is_empty()) {
                lines.push(String::new());
            }
            continue;
        }
        let line: String = line.chars().take(ANSWER_LINE).collect();
        let parts: Vec<&str> = line.split('`').collect();
        lines.push(if parts.len() % 2 == 1 {
            parts
                .iter()
                .map(|p| crate::util::text::clean(p))
                .collect::<Vec<_>>()
                .join("`")
        } else {
            crate::util::text::clean(&line)
        });
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// An answer a model wrote from the docs, its citations `[n]` numbering
/// `sources`, listed under it with their links.
pub fn written(question: &str, answer: &str, sources: &[Cited]) -> Message {
    let mut text = safe(answer);
    text.push_str("\n\nSources:");
    for (i, s) in sources.iter().enumerate() {
        text.push_str(&format!("\n[{}] {} — {}", i + 1, s.heading_path, s.url));
    }
    Message {
        title: Some(format!("From the docs: {}", shorten(question))),
        text,
        context: Some(
            "Written by a model from the sections listed, and only from them: check them before you act on it."
                .into(),
        ),
        tone: Tone::Info,
        ..Message::default()
    }
}
