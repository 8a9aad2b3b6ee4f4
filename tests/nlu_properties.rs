//! Properties of the rules parser, checked on generated requests: it never
//! panics, it is deterministic, Slack markup and letter case do not change
//! its answer, and a struck-out word never counts.
//!
//! Requests are built from the sample catalog's services, the contract's
//! environment, resource and verb words, versions and numbers, fillers and
//! random junk (any Unicode). `PAVER_FUZZ_CASES` sets the cases per
//! property (64 by default, so `cargo test` stays fast); a bench run for
//! minutes:
//!
//! ```bash
//! PAVER_FUZZ_CASES=200000 cargo test --release --test nlu_properties
//! ```
//!
//! A failure prints the minimal input proptest shrank it to.

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::Value;

use paver::catalog::Catalog;
use paver::nlu::RulesParser;

const SAMPLE_CATALOG: &str = "../shared/fixtures/catalog.yaml";

struct World {
    parser: RulesParser,
    catalog: Catalog,
    services: Vec<String>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let catalog = Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).expect("sample catalog");
    let services = catalog
        .components()
        .map(|c| c.name.as_str().to_owned())
        .collect();
    World {
        parser: RulesParser::new(&catalog),
        catalog,
        services,
    }
});

fn cases() -> u32 {
    std::env::var("PAVER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // Shrinking a failure of a long run can take a while; keep it bounded.
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..Config::default()
    }
}

const VERBS: &[&str] = &[
    "deploy",
    "ship",
    "release",
    "roll back",
    "rollback",
    "revert",
    "promote",
    "scale",
    "restart",
    "bounce",
    "create",
    "spin up",
    "set up",
    "destroy",
    "tear down",
    "delete",
    "add",
    "provision",
    "status of",
    "is",
    "who owns",
    "owner of",
    "scorecard for",
    "new",
    "scaffold",
    "help",
    "how do I",
];

const ENVIRONMENTS: &[&str] = &[
    "dev",
    "development",
    "staging",
    "stg",
    "stage",
    "qa",
    "uat",
    "test",
    "production",
    "prod",
    "prd",
    "live",
    "preview",
    "ephemeral",
    "review app",
];

const RESOURCES: &[&str] = &[
    "postgres",
    "postgresql",
    "pg",
    "mysql",
    "mariadb",
    "redis",
    "cache",
    "kafka",
    "rabbitmq",
    "amqp",
    "s3",
    "bucket",
    "mongodb",
    "mongo",
    "opensearch",
    "elasticsearch",
];

const FILLERS: &[&str] = &[
    "please",
    "pls",
    "can you",
    "could you",
    "hey",
    "to",
    "in",
    "on",
    "for",
    "with",
    "and",
    "without",
    "the",
    "a",
    "env",
    "environment",
    "replicas",
    "instances",
    "to",
    "from",
    "thanks",
    "asap",
    "now",
    "go",
    "node",
    "python",
    "rust",
    "team-payments",
    "team-commerce",
    "?",
    "!",
];

/// One word a request could hold.
fn word() -> impl Strategy<Value = String> {
    let services = WORLD.services.clone();
    prop_oneof![
        4 => select(services),
        3 => select(VERBS).prop_map(str::to_owned),
        3 => select(ENVIRONMENTS).prop_map(str::to_owned),
        2 => select(RESOURCES).prop_map(str::to_owned),
        3 => select(FILLERS).prop_map(str::to_owned),
        1 => (0u8..10, 0u8..20, 0u8..20).prop_map(|(a, b, c)| format!("v{a}.{b}.{c}")),
        1 => (1u8..30).prop_map(|n| n.to_string()),
        1 => "[a-z]{1,9}(-[a-z]{1,6})?",
    ]
}

/// A request in realistic shape: a verb, a service, an environment, maybe
/// resources or a version, with fillers between.
fn shaped() -> impl Strategy<Value = Vec<String>> {
    let services = WORLD.services.clone();
    (
        prop::option::of(select(FILLERS)),
        select(VERBS),
        select(services),
        prop::option::of(select(ENVIRONMENTS)),
        prop::collection::vec(select(RESOURCES), 0..3),
        prop::option::of((0u8..5, 0u8..20).prop_map(|(a, b)| format!("{a}.{b}.0"))),
    )
        .prop_map(|(filler, verb, service, env, resources, version)| {
            let mut w: Vec<String> = Vec::new();
            w.extend(filler.map(str::to_owned));
            w.extend(verb.split(' ').map(str::to_owned));
            w.push(service);
            w.extend(version);
            if let Some(env) = env {
                w.push("to".into());
                w.extend(env.split(' ').map(str::to_owned));
            }
            if !resources.is_empty() {
                w.push("with".into());
                w.extend(resources.iter().map(|r| r.to_string()));
            }
            w
        })
}

/// A request's words: shaped, or a bag of request words.
fn words() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        shaped(),
        prop::collection::vec(word(), 1..12).prop_map(|ws| ws
            .iter()
            .flat_map(|w| w.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect()),
    ]
}

/// Anything at all: request words with junk and any Unicode between.
fn anything() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => words().prop_map(|w| w.join(" ")),
        1 => any::<String>(),
        2 => prop::collection::vec(
            prop_oneof![word(), any::<String>(), "[~*_`<>@#!:|&;>\\n -]{1,6}"],
            0..12,
        )
        .prop_map(|w| w.concat()),
    ]
}

fn parse(text: &str) -> Value {
    let p = WORLD.parser.parse(text);
    serde_json::json!({"action": p.action, "sure": p.sure})
}

/// An answer with the words it echoes (an `ask`'s question) in lower case,
/// for comparing answers to texts that differ in case.
fn folded(v: Value) -> Value {
    let mut v = v;
    if let Some(q) = v.pointer_mut("/action/question") {
        if let Some(s) = q.as_str() {
            *q = Value::String(s.to_lowercase());
        }
    }
    v
}

#[derive(Debug, Clone, Copy)]
enum Mark {
    Plain,
    Bold,
    Italic,
    Code,
}

fn marked(words: &[String], marks: &[Mark]) -> String {
    words
        .iter()
        .zip(marks.iter().cycle())
        .map(|(w, m)| match m {
            Mark::Plain => w.clone(),
            Mark::Bold => format!("*{w}*"),
            Mark::Italic => format!("_{w}_"),
            Mark::Code => format!("`{w}`"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mark() -> impl Strategy<Value = Mark> {
    prop_oneof![
        Just(Mark::Plain),
        Just(Mark::Bold),
        Just(Mark::Italic),
        Just(Mark::Code)
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Nothing makes the parser panic.
    #[test]
    fn never_panics(text in anything()) {
        let _ = WORLD.parser.parse(&text);
    }

    /// The same text gives the same answer, from this parser and from a
    /// new one built from the same catalog.
    #[test]
    fn is_deterministic(text in anything()) {
        let first = parse(&text);
        prop_assert_eq!(&first, &parse(&text));
        let again = RulesParser::new(&WORLD.catalog).parse(&text);
        prop_assert_eq!(first, serde_json::json!({"action": again.action, "sure": again.sure}));
    }

    /// `*bold*`, `_italic_` and `` `code` `` around words change nothing.
    #[test]
    fn markup_does_not_change_the_answer(
        words in words(),
        marks in prop::collection::vec(mark(), 1..6),
    ) {
        let plain = words.join(" ");
        let text = marked(&words, &marks);
        prop_assert_eq!(parse(&plain), parse(&text), "{:?} vs {:?}", plain, text);
    }

    /// Upper or mixed case changes nothing (but the echo of an `ask`).
    #[test]
    fn case_does_not_change_the_answer(
        words in words(),
        flips in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        let plain = words.join(" ");
        let text: String = plain
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(folded(parse(&plain)), folded(parse(&text)), "{:?} vs {:?}", plain, text);
    }

    /// A struck-out word (`~word~`, Discord's `~~word~~`) never counts: the
    /// answer is the one without it.
    #[test]
    fn a_struck_out_word_never_counts(
        words in words(),
        struck in word(),
        at in any::<prop::sample::Index>(),
        discord in any::<bool>(),
    ) {
        let plain = words.join(" ");
        let mut with = words.clone();
        let tilde = if discord { "~~" } else { "~" };
        with.insert(at.index(words.len() + 1), format!("{tilde}{struck}{tilde}"));
        let text = with.join(" ");
        prop_assert_eq!(parse(&plain), parse(&text), "{:?} vs {:?}", plain, text);
    }
}
