//! Office hours' retrieval measured on question sets over the sample
//! platform docs (`../shared/fixtures/docs`), and Paver's own docs loaded
//! from the default config.

use std::path::Path;

use paver::docs::{eval, Answer, Docs, DocsSource};

fn sample() -> Docs {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/docs");
    Docs::load(&[DocsSource::at(root)]).unwrap()
}

fn report(file: &str) -> eval::Report {
    report_on(&sample(), file)
}

fn report_on(docs: &Docs, file: &str) -> eval::Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let cases = eval::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    eval::run(docs, &cases)
}

/// The public set: recall@3 0.971 (33 of 34) when the ranking was last
/// changed, 0.853 for plain BM25; the target is 0.95. Its misses
/// pointed at classes of phrasing (irregular verbs, the asker's service
/// names, "how long", "%"), each read generally and checked on the
/// held-out set, never a phrase of its own. Every unanswerable question
/// gets "don't know".
#[test]
fn public_questions_are_found_and_unanswerable_ones_get_dont_know() {
    let r = report("../shared/eval/qa-public.jsonl");
    assert_eq!(r.dont_know, r.unanswerable, "misses: {:#?}", r.misses);
    assert_eq!(r.unanswerable, 6);
    assert!(r.recall_at3() >= 0.95, "recall@3 {:.3}", r.recall_at3());
}

#[test]
fn chat_phrased_questions_are_found() {
    let r = report("tests/data/docs_questions.jsonl");
    assert!(r.answerable >= 30);
    assert!(
        r.recall_at3() >= 0.9,
        "recall@3 {:.3}: {:#?}",
        r.recall_at3(),
        r.misses
    );
    assert_eq!(r.dont_know, r.unanswerable, "misses: {:#?}", r.misses);
}

/// The questions the ranking and the "don't know" line were tuned on:
/// measured recall@1 0.800, recall@3 0.953, "don't know" to 4 of 85.
#[test]
fn chat_tuning_questions_are_found() {
    let r = report("tests/data/docs_chat_tune.jsonl");
    assert!(r.answerable >= 80 && r.unanswerable >= 12);
    assert!(
        r.recall_at3() >= 0.93,
        "recall@3 {:.3}: {:#?}",
        r.recall_at3(),
        r.misses
    );
    assert_eq!(r.dont_know, r.unanswerable, "misses: {:#?}", r.misses);
    assert!(r.answerable_dont_know <= 6, "misses: {:#?}", r.misses);
}

/// Chat-phrased questions written before any tuning and never tuned to:
/// what ranking generalizes to. Measured recall@1 0.819, recall@3 0.916,
/// "don't know" to 15 of 83 answerable and 14 of 14 unanswerable; the
/// floors sit a little under, so a regression fails here.
#[test]
fn held_out_chat_questions_are_found_and_the_rest_not_known() {
    let r = report("tests/data/docs_chat_holdout.jsonl");
    assert!(r.answerable >= 80 && r.unanswerable >= 12);
    assert!(r.recall_at1() >= 0.78, "recall@1 {:.3}", r.recall_at1());
    assert!(
        r.recall_at3() >= 0.89,
        "recall@3 {:.3}: {:#?}",
        r.recall_at3(),
        r.misses
    );
    assert_eq!(r.dont_know, r.unanswerable, "misses: {:#?}", r.misses);
    assert!(r.answerable_dont_know <= 18, "misses: {:#?}", r.misses);
}

/// Questions about Paver itself, over its own guide (`config/docs`).
#[test]
fn questions_about_paver_are_found_in_its_own_docs() {
    let docs = Docs::load(&[DocsSource::at(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/docs"),
    )])
    .unwrap();
    let r = report_on(&docs, "tests/data/docs_paver_questions.jsonl");
    assert!(
        r.recall_at3() >= 0.93,
        "recall@3 {:.3}: {:#?}",
        r.recall_at3(),
        r.misses
    );
    assert_eq!(r.dont_know, r.unanswerable, "misses: {:#?}", r.misses);
}

#[test]
fn synonyms_and_typos_find_the_section_with_its_link() {
    let docs = sample();
    let hits = docs.search("rotate pg creds", 3);
    assert_eq!(hits[0].heading, "Rotating credentials");
    assert_eq!(hits[0].url, "databases/postgres/#rotating-credentials");
    assert_eq!(hits[0].heading_path, ["PostgreSQL", "Rotating credentials"]);
    let hits = docs.search("postmortm deadlne", 3);
    assert_eq!(hits[0].heading, "Postmortems");
    // Two edits away, in a long word.
    let hits = docs.search("autoscalling defualts", 3);
    assert_eq!(hits[0].heading, "Default autoscaling");
    // Joined, split and camelCase forms of the docs' words.
    let hits = docs.search("tear down staging", 3);
    assert_eq!(hits[0].heading, "Destroying an environment");
    let hits = docs.search("max replicas per deployment", 3);
    assert!(
        hits.iter().any(|h| h.heading == "Replica limits"),
        "{hits:#?}"
    );
}

#[test]
fn chat_around_the_subject_does_not_make_a_question_unknown() {
    let docs = sample();
    // "yesterday", "3pm", "hey", "pls": chat, weighing little.
    assert!(matches!(
        docs.best("hey can i restore my pg db to yesterday 3pm pls"),
        Answer::Answerable(h) if h.heading == "Restoring to a point in time"
    ));
    // The subject is a database engine the docs never name.
    let Answer::NotKnown { nearest } = docs.best("how do i restore a cassandra keyspace") else {
        panic!("answered");
    };
    assert!(nearest.unwrap().missing.contains(&"cassandra".to_owned()));
}

#[test]
fn a_question_the_docs_do_not_answer_is_not_known() {
    let docs = sample();
    assert!(matches!(
        docs.best("do we have GPU nodes for training ML models?"),
        Answer::NotKnown { .. }
    ));
    assert!(matches!(
        docs.best("how do I rotate the database credentials in production?"),
        Answer::Answerable(_)
    ));
}

#[test]
fn the_default_config_loads_pavers_own_docs() {
    let config = paver::config::Config::load(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/paver.toml"),
    ))
    .unwrap();
    let docs = Docs::load(&config.docs.sources).unwrap();
    let hits = docs.search("how do I deny a request with a reason", 3);
    assert_eq!(hits[0].path, "docs/approvals.md");
}

mod support;

/// In chat, without an LLM: a how-to question gets the sections that
/// answer it, quoted with links; one the docs do not answer gets "I don't
/// know" and where to ask, never a guess.
#[tokio::test]
async fn questions_in_chat_are_answered_from_the_docs_or_not_at_all() {
    let p = support::paver::TestPaver::builder()
        .settings(paver::engine::EngineSettings {
            docs: Some(paver::docs::LiveDocs::fixed(sample())),
            ..Default::default()
        })
        .start()
        .await;
    p.say(
        "alice",
        "how do I rotate the database credentials for order-service?",
    )
    .await;
    let t = p.transcript();
    assert!(t.contains("From the docs"), "{t}");
    assert!(t.contains("Rotating credentials"), "{t}");
    assert!(t.contains("rotate-credentials"), "{t}");
    p.say("alice", "what is the wifi password in the berlin office?")
        .await;
    let t = p.transcript();
    assert!(t.contains("I don't know"), "{t}");
}
