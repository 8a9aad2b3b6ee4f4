//! The rules parser against the public example set and our own.

use std::path::Path;

use paver::catalog::Catalog;
use paver::nlu::eval::{evaluate, load_examples};
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

/// Chat-style requests (issue 16): the tune set the parser was worked on
/// and the holdout set it never was. Floors sit a little under what the
/// parser reaches, so a change that loses ground fails; and no message in
/// either set may come out as the wrong change.
#[test]
fn chat_sets_meet_their_floors_with_no_wrong_changes() {
    for (file, floor) in [
        ("tests/data/nlu_chat_tune.jsonl", TUNE_FLOOR),
        ("tests/data/nlu_chat_holdout.jsonl", HOLDOUT_FLOOR),
        ("tests/data/nlu_chat_fresh.jsonl", HOLDOUT_FLOOR),
        ("tests/data/nlu_chat_fresh2.jsonl", HOLDOUT_FLOOR),
    ] {
        let examples = load_examples(Path::new(file)).expect("chat set");
        // `paver nlu eval`'s own scoring: exact matches and confident wrong
        // changes (`paver::nlu::eval::confident_wrong_change`).
        let report = evaluate(&parser(), &examples);
        assert!(
            report.accuracy() >= floor,
            "{file}: below the floor {:.1}%:\n{report}",
            100.0 * floor,
        );
        let wrong: Vec<String> = report
            .misses
            .iter()
            .filter(|m| m.wrong_change)
            .map(|m| format!("{}: {} => {} (expected {})", m.id, m.text, m.got, m.expect))
            .collect();
        assert!(
            wrong.is_empty(),
            "{file}: confident wrong changes:\n{}",
            wrong.join("\n")
        );
    }
}

/// Reached: tune 260/260; holdout 120/123 when first measured (121/123
/// since); fresh 38/40 and fresh2 44/44 when first measured, both written
/// blind after the parser's rework.
const TUNE_FLOOR: f64 = 0.97;
const HOLDOUT_FLOOR: f64 = 0.95;
