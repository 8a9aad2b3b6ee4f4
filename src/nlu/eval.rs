//! Scoring a parser against an example set (`paver nlu eval`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::RulesParser;

#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub id: Value,
    pub text: String,
    pub expect: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an example ({{\"id\", \"text\", \"expect\"}}): {source}")]
    Line {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

pub fn load_examples(path: &Path) -> Result<Vec<Example>, EvalError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: shown.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| EvalError::Line {
                path: shown.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Fields a parse may add beyond what an example spells out: the contract
/// lets `ask` carry the question and `clarify` its candidates.
const INFORMATIONAL: [&str; 2] = ["question", "candidates"];

/// Exact match: every expected field equal, and nothing else but the
/// informational fields.
pub fn matches(expect: &Value, got: &Value) -> bool {
    let (Some(e), Some(g)) = (expect.as_object(), got.as_object()) else {
        return expect == got;
    };
    e.iter().all(|(k, v)| g.get(k) == Some(v))
        && g.keys()
            .all(|k| e.contains_key(k) || INFORMATIONAL.contains(&k.as_str()))
}

#[derive(Debug, Clone)]
pub struct Miss {
    pub id: Value,
    pub text: String,
    pub expect: Value,
    pub got: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub total: usize,
    pub correct: usize,
    /// Expected action → (correct, total).
    pub by_action: BTreeMap<String, (usize, usize)>,
    pub misses: Vec<Miss>,
}

impl Report {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

pub fn evaluate(parser: &RulesParser, examples: &[Example]) -> Report {
    let mut report = Report::default();
    for ex in examples {
        let got =
            serde_json::to_value(parser.parse(&ex.text).action).expect("actions always serialize");
        report.score(ex, got);
    }
    report
}

impl Report {
    /// Scores one answer to one example.
    pub fn score(&mut self, ex: &Example, got: Value) {
        let ok = matches(&ex.expect, &got);
        let action = ex
            .expect
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let slot = self.by_action.entry(action).or_default();
        slot.1 += 1;
        self.total += 1;
        if ok {
            slot.0 += 1;
            self.correct += 1;
        } else {
            self.misses.push(Miss {
                id: ex.id.clone(),
                text: ex.text.clone(),
                expect: ex.expect.clone(),
                got,
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<22} {:>8} {:>9}", "action", "correct", "accuracy")?;
        for (action, (ok, total)) in &self.by_action {
            writeln!(
                f,
                "{:<22} {:>8} {:>8.1}%",
                action,
                format!("{ok}/{total}"),
                100.0 * *ok as f64 / *total as f64
            )?;
        }
        writeln!(
            f,
            "{:<22} {:>8} {:>8.1}%",
            "overall",
            format!("{}/{}", self.correct, self.total),
            100.0 * self.accuracy()
        )?;
        if !self.misses.is_empty() {
            writeln!(f, "\nmisses:")?;
            for m in &self.misses {
                writeln!(f, "  {} {:?}", m.id, m.text)?;
                writeln!(f, "    expected {}", m.expect)?;
                writeln!(f, "    got      {}", m.got)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_match_rules() {
        let e = json!({"action": "ask"});
        assert!(matches(&e, &json!({"action": "ask", "question": "how?"})));
        let e = json!({"action": "deploy", "service": "a", "environment": "dev"});
        assert!(!matches(
            &e,
            &json!({"action": "deploy", "service": "a", "environment": "dev", "version": "1.0"})
        ));
        assert!(!matches(&e, &json!({"action": "deploy", "service": "a"})));
        let e = json!({"action": "clarify", "missing": ["service"]});
        assert!(matches(
            &e,
            &json!({"action": "clarify", "missing": ["service"], "candidates": ["a", "b"]})
        ));
        assert!(!matches(
            &e,
            &json!({"action": "clarify", "missing": ["service", "environment"]})
        ));
    }
}
