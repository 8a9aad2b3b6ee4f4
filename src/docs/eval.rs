//! Scoring retrieval on a question set: JSON Lines of
//! `{"id", "question", "expect": [{"path", "heading"}]}`, where an empty
//! `expect` says the docs do not answer the question.

use serde::Deserialize;

use super::{Answer, Docs};

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    #[serde(default)]
    pub id: String,
    pub question: String,
    pub expect: Vec<Expected>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Expected {
    pub path: String,
    pub heading: String,
}

/// A line of a question set that is not a case.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct CaseError {
    pub line: usize,
    pub detail: String,
}

/// Reads a question set: one JSON case per non-blank line, of any case
/// type (retrieval's `Case`, the answers' `AnswerCase`).
pub fn parse<C: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<C>, CaseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| CaseError {
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

/// A question answered wrongly: what was expected and what came first.
#[derive(Debug, Clone)]
pub struct Miss {
    pub id: String,
    pub question: String,
    /// The expected sections (empty: "don't know" was expected).
    pub expected: Vec<Expected>,
    /// The top three as "path › heading".
    pub got: Vec<String>,
    /// What `best` decided: true for "don't know".
    pub said_dont_know: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub answerable: usize,
    pub at1: usize,
    pub at3: usize,
    /// Answerable questions `best` said "don't know" to.
    pub answerable_dont_know: usize,
    pub unanswerable: usize,
    /// Unanswerable questions `best` said "don't know" to.
    pub dont_know: usize,
    pub misses: Vec<Miss>,
}

impl Report {
    pub fn recall_at1(&self) -> f64 {
        ratio(self.at1, self.answerable)
    }
    pub fn recall_at3(&self) -> f64 {
        ratio(self.at3, self.answerable)
    }
    /// The share of unanswerable questions answered "don't know".
    pub fn dont_know_share(&self) -> f64 {
        ratio(self.dont_know, self.unanswerable)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Retrieval scored by BM25 alone.
pub fn run(docs: &Docs, cases: &[Case]) -> Report {
    score(docs, cases, &[])
}

/// Retrieval scored as chat runs it: fused with embedding similarity when
/// the docs are embedded (`[docs.embeddings]`).
pub async fn run_near(docs: &Docs, cases: &[Case]) -> Report {
    let mut near = Vec::with_capacity(cases.len());
    for c in cases {
        near.push(docs.near(&c.question).await);
    }
    score(docs, cases, &near)
}

/// `near[i]`: case `i`'s question vector, if any.
fn score(docs: &Docs, cases: &[Case], near: &[Option<super::embed::Vector>]) -> Report {
    let mut r = Report::default();
    for (i, c) in cases.iter().enumerate() {
        let near = near.get(i).and_then(|v| v.as_deref());
        let hits = docs.search_near(&c.question, near, 3);
        let said_dont_know = matches!(docs.best_near(&c.question, near), Answer::NotKnown { .. });
        let got: Vec<String> = hits
            .iter()
            .map(|h| format!("{} › {}", h.path, h.heading))
            .collect();
        let rank = hits.iter().position(|h| {
            c.expect
                .iter()
                .any(|e| e.path == h.path && e.heading == h.heading)
        });
        let wrong = if c.expect.is_empty() {
            r.unanswerable += 1;
            r.dont_know += usize::from(said_dont_know);
            !said_dont_know
        } else {
            r.answerable += 1;
            r.at1 += usize::from(rank == Some(0));
            r.at3 += usize::from(rank.is_some());
            r.answerable_dont_know += usize::from(said_dont_know);
            rank.is_none() || said_dont_know
        };
        if wrong {
            r.misses.push(Miss {
                id: c.id.clone(),
                question: c.question.clone(),
                expected: c.expect.clone(),
                got,
                said_dont_know,
            });
        }
    }
    r
}

// ----- answers ------------------------------------------------------------------

/// A question for scoring answers: a [`Case`] with the words a right
/// answer holds (`answer_contains`, each case-insensitively).
#[derive(Debug, Clone, Deserialize)]
pub struct AnswerCase {
    #[serde(default)]
    pub id: String,
    pub question: String,
    pub expect: Vec<Expected>,
    #[serde(default)]
    pub answer_contains: Vec<String>,
}

pub fn parse_answer_cases(text: &str) -> Result<Vec<AnswerCase>, CaseError> {
    parse(text)
}

/// A question answered wrongly, and what was said.
#[derive(Debug, Clone)]
pub struct AnswerMiss {
    pub id: String,
    pub question: String,
    /// Empty: "don't know" was expected.
    pub expected: Vec<Expected>,
    pub answer_contains: Vec<String>,
    pub reply: super::answer::DocsReply,
}

#[derive(Debug, Clone, Default)]
pub struct AnswersReport {
    pub answerable: usize,
    /// Answerable questions whose answer holds every expected phrase and
    /// names an expected section among its sources.
    pub right: usize,
    /// Answerable questions answered "don't know".
    pub answerable_dont_know: usize,
    pub unanswerable: usize,
    /// Unanswerable questions answered "don't know".
    pub dont_know: usize,
    /// Answers the model wrote (all questions).
    pub written: usize,
    /// Answers the model was asked for and that were quoted instead.
    pub fell_back: usize,
    pub misses: Vec<AnswerMiss>,
}

impl AnswersReport {
    /// The share of answerable questions answered right.
    pub fn right_share(&self) -> f64 {
        ratio(self.right, self.answerable)
    }
    /// The share of unanswerable questions answered "don't know".
    pub fn dont_know_share(&self) -> f64 {
        ratio(self.dont_know, self.unanswerable)
    }
}

/// Whether `reply` answers `case` right: for an answerable question,
/// known, holding every expected phrase and citing an expected section;
/// for an unanswerable one, "don't know".
pub fn answered_right(case: &AnswerCase, reply: &super::answer::DocsReply) -> bool {
    if case.expect.is_empty() {
        return !reply.known;
    }
    let answer = reply.answer.to_lowercase();
    reply.known
        && case
            .answer_contains
            .iter()
            .all(|p| answer.contains(&p.to_lowercase()))
        && reply.sources.iter().any(|s| {
            case.expect
                .iter()
                .any(|e| e.path == s.path && e.heading == s.heading)
        })
}

/// Answers every case, one at a time (a local model is slow enough).
pub async fn run_answers(
    docs: &Docs,
    llm: Option<&super::answer::AnswerLlm>,
    cases: &[AnswerCase],
) -> AnswersReport {
    use super::answer::Via;
    let mut r = AnswersReport::default();
    for c in cases {
        let reply = super::answer::answer(docs, llm, &c.question).await;
        r.written += usize::from(matches!(reply.via, Via::Llm { .. }) && reply.known);
        r.fell_back += usize::from(matches!(reply.via, Via::Fallback { .. }));
        let right = answered_right(c, &reply);
        if c.expect.is_empty() {
            r.unanswerable += 1;
            r.dont_know += usize::from(right);
        } else {
            r.answerable += 1;
            r.right += usize::from(right);
            r.answerable_dont_know += usize::from(!reply.known);
        }
        if !right {
            r.misses.push(AnswerMiss {
                id: c.id.clone(),
                question: c.question.clone(),
                expected: c.expect.clone(),
                answer_contains: c.answer_contains.clone(),
                reply,
            });
        }
    }
    r
}
