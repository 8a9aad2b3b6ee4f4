//! Answering a chat question from the docs, without an LLM: the best one
//! to three sections that answer it, quoted with links, or "I don't know"
//! (never a guess).

use super::{Answer, Docs, Hit};
use crate::catalog::Catalog;
use crate::chat::docs::{self as say, Quoted};
use crate::chat::Message;

fn quoted(h: &Hit) -> Quoted {
    let mut path = vec![h.title.clone()];
    path.extend(h.heading_path.iter().filter(|p| **p != h.title).cloned());
    if path.last() != Some(&h.heading) {
        path.push(h.heading.clone());
    }
    path.dedup();
    Quoted {
        heading_path: path.join(" › "),
        url: h.url.clone(),
        text: h.text.clone(),
    }
}

/// The answer to `question` from `docs`.
pub fn answer(docs: &Docs, question: &str, catalog: &Catalog) -> Message {
    match docs.best(question) {
        Answer::Answerable(best) => {
            // The best section first, then up to two more that answer it
            // too (a question often spans a section and its neighbour).
            let mut sections = vec![quoted(&best)];
            for h in docs.search(question, 3) {
                // A heading with nothing under it quotes nothing.
                let has_text = !h.text.trim().is_empty();
                if h.answerable && has_text && (&h.path, &h.heading) != (&best.path, &best.heading)
                {
                    sections.push(quoted(&h));
                }
                if sections.len() == 3 {
                    break;
                }
            }
            say::answer(question, &sections)
        }
        Answer::NotKnown { nearest } => {
            let channel = catalog
                .group("team-platform")
                .and_then(|g| g.slack_channel.clone());
            say::dont_know(
                question,
                nearest.as_ref().map(quoted).as_ref(),
                channel.as_deref(),
            )
        }
    }
}
