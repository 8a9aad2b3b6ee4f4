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

pub fn parse(text: &str) -> Result<Vec<Case>, CaseError> {
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

pub fn run(docs: &Docs, cases: &[Case]) -> Report {
    let mut r = Report::default();
    for c in cases {
        let hits = docs.search(&c.question, 3);
        let said_dont_know = matches!(docs.best(&c.question), Answer::NotKnown { .. });
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
