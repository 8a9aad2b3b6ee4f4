//! Answering a chat question from the docs: the [`DocsReply`] (written by
//! the LLM from the sections it cites, or the best one to three sections
//! quoted with links, or "I don't know" — never a guess) as a message.

use super::answer::{self, AnswerLlm, DocsReply, Source};
use super::Docs;
use crate::catalog::Catalog;
use crate::chat::docs::{self as say, Cited, Quoted};
use crate::chat::Message;

fn cited(s: &Source) -> Cited {
    Cited {
        heading_path: s.breadcrumb(),
        url: s.url.clone(),
    }
}

/// The chat message saying `reply`.
pub fn message(reply: &DocsReply, catalog: &Catalog) -> Message {
    if !reply.known {
        let channel = catalog
            .group("team-platform")
            .and_then(|g| g.slack_channel.clone());
        let nearest = reply.nearest.as_ref().map(|n| Quoted {
            heading_path: n.breadcrumb(),
            url: n.url.clone(),
            text: String::new(),
        });
        return say::dont_know(&reply.question, nearest.as_ref(), channel.as_deref());
    }
    if reply.written() {
        let sources: Vec<Cited> = reply.sources.iter().map(cited).collect();
        return say::written(&reply.question, &reply.answer, &sources);
    }
    let sections: Vec<Quoted> = reply
        .quoted
        .iter()
        .map(|q| Quoted {
            heading_path: q.source.breadcrumb(),
            url: q.source.url.clone(),
            text: q.text.clone(),
        })
        .collect();
    say::answer(&reply.question, &sections)
}

/// The answer to `question` from `docs`, quoted (no LLM).
pub fn answer(docs: &Docs, question: &str, catalog: &Catalog) -> Message {
    message(&answer::quoted(docs, question), catalog)
}

/// The answer to `question` from `docs`, written by `llm` when there is one.
pub async fn answer_with(
    docs: &Docs,
    llm: Option<&AnswerLlm>,
    question: &str,
    catalog: &Catalog,
) -> Message {
    message(&answer::answer(docs, llm, question).await, catalog)
}
