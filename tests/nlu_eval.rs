//! The rules parser against the public example set and our own.

use std::path::Path;

use serde_json::Value;

use paver::catalog::Catalog;
use paver::domain::ActionKind;
use paver::nlu::eval::{evaluate, load_examples, matches, Example};
use paver::nlu::RulesParser;

const SAMPLE_CATALOG: &str = "../shared/fixtures/catalog.yaml";

fn parser() -> RulesParser {
    let catalog = Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).expect("sample catalog");
    RulesParser::new(&catalog)
}

#[test]
fn public_set_is_at_least_98_percent_exact() {
    let examples = load_examples(Path::new("../shared/eval/public.jsonl")).expect("public set");
    assert!(
        examples.len() >= 90,
        "the public set shrank to {}",
        examples.len()
    );
    let report = evaluate(&parser(), &examples);
    assert!(report.accuracy() >= 0.98, "below 98%:\n{report}");
}

/// Our own phrasings (written by us, not copied from the public set): other
/// verbs, markup, typos, number words, questions and requests in one text.
#[test]
fn own_examples_all_parse_exactly() {
    let examples = load_examples(Path::new("tests/data/nlu_examples.jsonl")).expect("own set");
    let report = evaluate(&parser(), &examples);
    assert!(report.misses.is_empty(), "{report}");
}

/// The fields that say what a change acts on: a change with another value
/// in one of them acts on something else.
const TARGET_FIELDS: [&str; 6] = ["service", "environment", "version", "from", "to", "name"];

fn is_mutating(action: &Value) -> bool {
    action["action"]
        .as_str()
        .and_then(ActionKind::from_name)
        .is_some_and(ActionKind::is_mutating)
}

/// A confident wrong change: the parser returned a change, and the example
/// did not ask for that change on that target (another kind, or the same
/// kind with another service, environment, version, from/to or name).
fn wrong_change(expect: &Value, got: &Value) -> bool {
    if !is_mutating(got) {
        return false;
    }
    if expect["action"] != got["action"] {
        return true;
    }
    TARGET_FIELDS.iter().any(|f| expect.get(*f) != got.get(*f))
}

struct Score {
    exact: usize,
    total: usize,
    wrong_changes: Vec<String>,
    misses: Vec<String>,
}

fn score(examples: &[Example]) -> Score {
    let p = parser();
    let mut s = Score {
        exact: 0,
        total: examples.len(),
        wrong_changes: Vec::new(),
        misses: Vec::new(),
    };
    for ex in examples {
        let got = serde_json::to_value(p.parse(&ex.text).action).expect("actions serialize");
        if matches(&ex.expect, &got) {
            s.exact += 1;
        } else {
            s.misses.push(format!(
                "{}: {} => {got} (expected {})",
                ex.id, ex.text, ex.expect
            ));
        }
        if wrong_change(&ex.expect, &got) {
            s.wrong_changes.push(format!(
                "{}: {} => {got} (expected {})",
                ex.id, ex.text, ex.expect
            ));
        }
    }
    s
}

/// Chat-style requests (issue 16): the tune set the parser was worked on
/// and the holdout set it never was. Floors sit a little under what the
/// parser reaches, so a change that loses ground fails; and no message in
/// either set may come out as the wrong change.
#[test]
fn chat_sets_meet_their_floors_with_no_wrong_changes() {
    for (file, floor) in [
        ("tests/data/nlu_chat_tune.jsonl", TUNE_FLOOR),
        ("tests/data/nlu_chat_holdout.jsonl", HOLDOUT_FLOOR),
    ] {
        let examples = load_examples(Path::new(file)).expect("chat set");
        let s = score(&examples);
        let accuracy = s.exact as f64 / s.total as f64;
        assert!(
            accuracy >= floor,
            "{file}: {}/{} = {:.1}% is below the floor {:.1}%; misses:\n{}",
            s.exact,
            s.total,
            100.0 * accuracy,
            100.0 * floor,
            s.misses.join("\n")
        );
        assert!(
            s.wrong_changes.is_empty(),
            "{file}: confident wrong changes:\n{}",
            s.wrong_changes.join("\n")
        );
    }
}

/// Reached: tune 260/260, holdout 120/123 (measured once, not tuned on).
const TUNE_FLOOR: f64 = 0.97;
const HOLDOUT_FLOOR: f64 = 0.95;
