//! Scoring a parser against an example set (`paver nlu eval`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{RulesParser, Understanding};
use crate::domain::ActionKind;

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

/// The fields that say *what* a change acts on: the service (or the new
/// service's name), the environment(s) and the version.
const TARGET_FIELDS: [&str; 6] = ["service", "name", "environment", "from", "to", "version"];

/// A confident wrong change: the answer is a mutating action (not a
/// clarification) and the expected answer is another kind, or the same kind
/// aimed at another service, environment or version. The worst miss: a card
/// that proposes the wrong change, where a clarification would have asked.
pub fn confident_wrong_change(expect: &Value, got: &Value) -> bool {
    let Some(kind) = got
        .get("action")
        .and_then(Value::as_str)
        // The actions that change something on the platform (once confirmed).
        .filter(|k| ActionKind::from_name(k).is_some_and(ActionKind::is_mutating))
    else {
        return false;
    };
    if expect.get("action").and_then(Value::as_str) != Some(kind) {
        return true;
    }
    TARGET_FIELDS.iter().any(|f| expect.get(f) != got.get(f))
}

#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub id: Value,
    pub text: String,
    pub expect: Value,
    pub got: Value,
    /// See [`confident_wrong_change`].
    pub wrong_change: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub total: usize,
    pub correct: usize,
    /// Expected action → (correct, total).
    pub by_action: BTreeMap<String, (usize, usize)>,
    pub misses: Vec<Miss>,
    /// Answers that were confident wrong changes ([`confident_wrong_change`]).
    pub wrong_changes: usize,
    /// Answers that were `clarify`, and examples that expected one.
    pub clarified: usize,
    pub clarify_expected: usize,
    /// How the LLM was used, when one was (`--nlu auto|llm`).
    pub llm: Option<LlmStats>,
}

impl Report {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// Share of answers that were confident wrong changes.
    pub fn wrong_change_rate(&self) -> f64 {
        ratio(self.wrong_changes, self.total)
    }

    /// Share of answers that were `clarify`.
    pub fn clarify_rate(&self) -> f64 {
        ratio(self.clarified, self.total)
    }

    /// The report as one JSON object (`paver nlu eval --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy(),
            "by_action": self.by_action.iter().map(|(a, (ok, total))| {
                (a.clone(), json!({"correct": ok, "total": total}))
            }).collect::<serde_json::Map<_, _>>(),
            "confident_wrong_changes": self.wrong_changes,
            "confident_wrong_change_rate": self.wrong_change_rate(),
            "clarified": self.clarified,
            "clarify_rate": self.clarify_rate(),
            "clarify_expected": self.clarify_expected,
            "llm": self.llm,
            "misses": self.misses,
        })
    }
}

fn ratio(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

/// How often the LLM was asked, what it cost and how long it took, over
/// the understandings of one example set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmStats {
    pub messages: usize,
    /// Messages for which the LLM was asked (at least one call).
    pub asked: usize,
    /// `asked / messages`.
    pub call_rate: f64,
    /// Calls in all (a repair or a retry counts).
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Per message asked.
    pub prompt_tokens_per_asked: f64,
    pub completion_tokens_per_asked: f64,
    /// Latency of the messages asked, in milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_max_ms: f64,
    /// Which path answered: `rules`, `llm`, `rules_fallback` → count.
    pub answered_by: BTreeMap<String, usize>,
    /// Why the LLM's answer was not used (first 80 characters) → count.
    pub failures: BTreeMap<String, usize>,
}

impl LlmStats {
    pub fn measure(all: &[Understanding]) -> LlmStats {
        let asked: Vec<&Understanding> = all.iter().filter(|u| u.llm_calls > 0).collect();
        let mut latencies: Vec<f64> = asked
            .iter()
            .map(|u| u.latency.as_secs_f64() * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let prompt_tokens: u64 = all.iter().map(|u| u.usage.prompt_tokens).sum();
        let completion_tokens: u64 = all.iter().map(|u| u.usage.completion_tokens).sum();
        let per_asked = |n: u64| {
            if asked.is_empty() {
                0.0
            } else {
                n as f64 / asked.len() as f64
            }
        };
        let mut answered_by = BTreeMap::new();
        let mut failures = BTreeMap::new();
        for u in all {
            *answered_by.entry(u.path.as_str().to_owned()).or_default() += 1;
            if let Some(e) = &u.error {
                *failures.entry(e.chars().take(80).collect()).or_default() += 1;
            }
        }
        LlmStats {
            messages: all.len(),
            asked: asked.len(),
            call_rate: ratio(asked.len(), all.len()),
            calls: all.iter().map(|u| u64::from(u.llm_calls)).sum(),
            prompt_tokens,
            completion_tokens,
            prompt_tokens_per_asked: per_asked(prompt_tokens),
            completion_tokens_per_asked: per_asked(completion_tokens),
            latency_p50_ms: pct(0.5),
            latency_p95_ms: pct(0.95),
            latency_max_ms: pct(1.0),
            answered_by,
            failures,
        }
    }
}

impl fmt::Display for LlmStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "llm asked         {}/{} messages ({:.1}%), {} calls",
            self.asked,
            self.messages,
            100.0 * self.call_rate,
            self.calls
        )?;
        writeln!(
            f,
            "answered by       {}",
            self.answered_by
                .iter()
                .map(|(p, c)| format!("{p} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "tokens            {} prompt + {} completion ({:.0} + {:.0} per message asked)",
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens_per_asked,
            self.completion_tokens_per_asked
        )?;
        if self.asked > 0 {
            writeln!(
                f,
                "latency (asked)   p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
                self.latency_p50_ms, self.latency_p95_ms, self.latency_max_ms
            )?;
        }
        for (e, c) in &self.failures {
            writeln!(f, "llm failure       {c} × {e}")?;
        }
        Ok(())
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
        if action == "clarify" {
            self.clarify_expected += 1;
        }
        if got.get("action").and_then(Value::as_str) == Some("clarify") {
            self.clarified += 1;
        }
        let slot = self.by_action.entry(action).or_default();
        slot.1 += 1;
        self.total += 1;
        if ok {
            slot.0 += 1;
            self.correct += 1;
        } else {
            let wrong_change = confident_wrong_change(&ex.expect, &got);
            self.wrong_changes += usize::from(wrong_change);
            self.misses.push(Miss {
                id: ex.id.clone(),
                text: ex.text.clone(),
                expect: ex.expect.clone(),
                got,
                wrong_change,
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(llm) = &self.llm {
            writeln!(f, "{llm}")?;
        }
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
        writeln!(
            f,
            "{:<22} {:>8} {:>8.1}%   (a mutating action, wrong kind or target)",
            "confident wrong",
            format!("{}/{}", self.wrong_changes, self.total),
            100.0 * self.wrong_change_rate()
        )?;
        writeln!(
            f,
            "{:<22} {:>8} {:>8.1}%   ({} expected)",
            "clarify rate",
            format!("{}/{}", self.clarified, self.total),
            100.0 * self.clarify_rate(),
            self.clarify_expected
        )?;
        if !self.misses.is_empty() {
            writeln!(f, "\nmisses: (! a confident wrong change)")?;
            for m in &self.misses {
                let mark = if m.wrong_change { "!" } else { " " };
                writeln!(f, "{mark} {} {:?}", m.id, m.text)?;
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

    fn ex(expect: Value) -> Example {
        Example {
            id: json!(1),
            text: "t".into(),
            expect,
        }
    }

    #[test]
    fn confident_wrong_changes_are_mutating_answers_with_another_kind_or_target() {
        let deploy = json!({"action": "deploy", "service": "a", "environment": "staging"});
        // Another kind, expected read-only or a clarification: wrong.
        assert!(confident_wrong_change(
            &json!({"action": "status", "service": "a"}),
            &deploy
        ));
        assert!(confident_wrong_change(
            &json!({"action": "clarify", "missing": ["environment"]}),
            &deploy
        ));
        assert!(confident_wrong_change(
            &json!({"action": "rollback", "service": "a", "environment": "staging"}),
            &deploy
        ));
        // Same kind, another target: service, environment or version.
        for other in [
            json!({"action": "deploy", "service": "b", "environment": "staging"}),
            json!({"action": "deploy", "service": "a", "environment": "production"}),
            json!({"action": "deploy", "service": "a", "environment": "staging", "version": "1.2"}),
        ] {
            assert!(confident_wrong_change(&other, &deploy), "{other}");
        }
        assert!(confident_wrong_change(
            &json!({"action": "promote", "service": "a", "from": "dev", "to": "staging"}),
            &json!({"action": "promote", "service": "a", "from": "staging", "to": "production"})
        ));
        // Same kind and target, other details (resources, replicas): a
        // miss, not a wrong change.
        assert!(!confident_wrong_change(
            &json!({"action": "create_environment", "service": "a", "environment": "dev", "resources": ["redis"]}),
            &json!({"action": "create_environment", "service": "a", "environment": "dev", "resources": []})
        ));
        // Not mutating: never a wrong change.
        for got in [
            json!({"action": "clarify", "missing": ["service"]}),
            json!({"action": "status", "service": "b"}),
            json!({"action": "none"}),
        ] {
            assert!(!confident_wrong_change(&deploy, &got), "{got}");
        }
    }

    #[test]
    fn the_report_counts_wrong_changes_and_clarifications() {
        let mut r = Report::default();
        let deploy = json!({"action": "deploy", "service": "a", "environment": "dev"});
        let clarify = json!({"action": "clarify", "missing": ["environment"]});
        r.score(&ex(deploy.clone()), deploy.clone());
        r.score(&ex(clarify.clone()), deploy.clone());
        r.score(&ex(deploy.clone()), clarify.clone());
        r.score(&ex(clarify.clone()), clarify.clone());
        assert_eq!((r.total, r.correct, r.wrong_changes), (4, 2, 1));
        assert_eq!((r.clarified, r.clarify_expected), (2, 2));
        assert!((r.clarify_rate() - 0.5).abs() < 1e-9);
        assert!(r.misses[0].wrong_change && !r.misses[1].wrong_change);
        let j = r.to_json();
        assert_eq!(j["confident_wrong_changes"], 1);
        assert_eq!(j["clarify_rate"], 0.5);
        assert_eq!(j["by_action"]["deploy"], json!({"correct": 1, "total": 2}));
        assert_eq!(j["misses"][0]["wrong_change"], true);
        assert!(j["llm"].is_null());
        let text = r.to_string();
        assert!(text.contains("confident wrong"), "{text}");
        assert!(text.contains("clarify rate"), "{text}");
    }

    #[test]
    fn llm_stats_count_only_the_messages_asked() {
        use crate::domain::Action;
        use crate::nlu::NluPath;
        use std::time::Duration;
        let rules = Understanding::rules(Action::Help, Duration::from_micros(5));
        let asked = |ms: u64, prompt: u64, path: NluPath| {
            let mut u = Understanding::rules(Action::Help, Duration::from_millis(ms));
            u.llm_calls = 1;
            u.usage.prompt_tokens = prompt;
            u.usage.completion_tokens = 10;
            u.path = path;
            u
        };
        let mut failed = asked(300, 0, NluPath::Fallback);
        failed.error = Some("timed out".into());
        let all = vec![
            rules.clone(),
            rules,
            asked(100, 800, NluPath::Llm),
            asked(200, 1000, NluPath::Rules),
            failed,
        ];
        let s = LlmStats::measure(&all);
        assert_eq!((s.messages, s.asked, s.calls), (5, 3, 3));
        assert!((s.call_rate - 0.6).abs() < 1e-9);
        assert_eq!(s.prompt_tokens, 1800);
        assert!((s.prompt_tokens_per_asked - 600.0).abs() < 1e-9);
        assert!((s.completion_tokens_per_asked - 10.0).abs() < 1e-9);
        assert_eq!((s.latency_p50_ms, s.latency_max_ms), (200.0, 300.0));
        assert_eq!(s.answered_by["rules"], 3);
        assert_eq!(s.failures["timed out"], 1);
        assert_eq!(LlmStats::measure(&[]), LlmStats::default());
    }
}
