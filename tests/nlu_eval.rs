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
