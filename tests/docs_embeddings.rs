//! `[docs.embeddings]`: sections embedded through an OpenAI-compatible
//! `/embeddings` endpoint (a fake on 127.0.0.1 whose vectors stand for
//! meaning through a small table of related words), fused with BM25 —
//! found what the words alone miss, embedded once per changed section,
//! and BM25 alone whenever the server fails.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use paver::docs::embed::EmbeddingsConfig;
use paver::docs::{Answer, DocsConfig, DocsSource, LiveDocs};
use support::fake::{self, FakeServer};

/// Words of one meaning: the fake model puts them on one axis, as a real
/// model puts "login" near "credentials".
const MEANINGS: &[&[&str]] = &[
    &["login", "credentials", "rotate", "swap"],
    &["wipe", "delete", "remove", "teardown"],
    &["preview", "ephemeral", "temporary"],
];

/// A vector for `text`: one count per meaning (or per word outside the
/// table), hashed into 64 dimensions.
fn vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 64];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let w = w.to_lowercase();
        let key = MEANINGS
            .iter()
            .position(|m| m.iter().any(|x| w.starts_with(x)))
            .map(|i| format!("meaning-{i}"))
            .unwrap_or(w);
        let h = key
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        v[(h % 64) as usize] += 1.0;
    }
    v
}

/// A fake embeddings server; `up` false: it answers 500.
async fn embedder(up: Arc<AtomicBool>) -> FakeServer {
    fake::serve(move |r| {
        let up = up.clone();
        async move {
            if !up.load(Ordering::SeqCst) {
                return fake::json(500, json!({"error": "overloaded"}));
            }
            let body = r.body.unwrap_or(Value::Null);
            let inputs: Vec<String> = match &body["input"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => return fake::json(400, json!({"error": "no input"})),
            };
            // Backwards, with indexes: Paver must order by index.
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(t)}))
                .collect();
            fake::json(
                200,
                json!({"object": "list", "data": data, "model": "fake-embed"}),
            )
        }
    })
    .await
}

/// How many texts the server was asked to embed, all calls together.
fn embedded(server: &FakeServer) -> usize {
    server
        .all()
        .iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .map(|r| match r.body.as_ref().map(|b| &b["input"]) {
            Some(Value::Array(a)) => a.len(),
            Some(Value::String(_)) => 1,
            _ => 0,
        })
        .sum()
}

/// A small docs site: several sections talk about the database, one tells
/// how to rotate its credentials.
fn site(dir: &Path) {
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("mkdocs.yml"),
        "site_name: Platform\nnav:\n  - Databases: databases.md\n  - Environments: environments.md\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/databases.md"),
        "# Databases\n\nEvery service may have a database.\n\n\
         ## Sizes\n\nA database is small, medium or large; the database size is set in the catalog.\n\n\
         ## Backups\n\nThe database is backed up nightly; database backups are kept for 14 days.\n\n\
         ## Rotating credentials\n\nRun `plat pg rotate-credentials order-service`; the new credentials reach the pods within a minute.\n\n\
         ## Connecting\n\nThe database URL is in DATABASE_URL; connect to the database through pgbouncer.\n\n\
         ## Migrations\n\nDatabase migrations run before the new version starts; a failed database migration stops the deploy.\n\n\
         ## Extensions\n\nA database may enable pg_trgm and postgis; ask for other database extensions in #team-platform.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/environments.md"),
        "# Environments\n\n## Preview environments\n\nA preview environment lives 72 hours.\n\n\
         ## Tearing down\n\nRun `plat env teardown NAME` to remove an environment early.\n",
    )
    .unwrap();
}

fn config(root: &Path, server: &FakeServer) -> DocsConfig {
    let embeddings: EmbeddingsConfig = toml::from_str(&format!(
        "base_url = \"{}/v1\"\nmodel = \"fake-embed\"\nbatch = 2\n",
        server.url
    ))
    .unwrap();
    DocsConfig {
        sources: vec![DocsSource::at(root)],
        embeddings: Some(embeddings),
        ..DocsConfig::default()
    }
}

const QUESTION: &str = "how do I swap the pgbouncer login";

fn top3(hits: &[paver::docs::Hit]) -> BTreeSet<String> {
    hits.iter().map(|h| h.heading.clone()).collect()
}

#[tokio::test]
async fn a_section_the_words_miss_is_found_by_its_meaning() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let server = embedder(Arc::new(AtomicBool::new(true))).await;
    let live = LiveDocs::new(&config(dir.path(), &server));
    live.refresh_now().await;
    let docs = live.current().unwrap();
    assert!(docs.embedded());

    // BM25 alone: "pgbouncer" is in one section (how to connect), "login"
    // and "swap" nowhere; the section that answers is not found.
    let lexical = docs.search(QUESTION, 3);
    assert!(
        !top3(&lexical).contains("Rotating credentials"),
        "{:?}",
        top3(&lexical)
    );

    let near = docs.near(QUESTION).await.expect("the question is embedded");
    let fused = docs.search_near(QUESTION, Some(&near), 3);
    // Reciprocal rank fusion: the section both rankings hold first, then
    // the one nearest in meaning.
    assert_eq!(fused[0].heading, "Connecting", "{fused:#?}");
    assert_eq!(fused[1].heading, "Rotating credentials", "{fused:#?}");
    // The fused score is the reciprocal-rank one, best first.
    assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));

    // "Don't know" stays with the words: a question about something the
    // docs never name is not answered because some section is near it.
    let q = "how do I rotate the cassandra login";
    let near = docs.near(q).await.unwrap();
    assert!(matches!(
        docs.best_near(q, Some(&near)),
        Answer::NotKnown { .. }
    ));
}

#[tokio::test]
async fn sections_are_embedded_once_and_a_changed_page_alone_again() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let server = embedder(Arc::new(AtomicBool::new(true))).await;
    let live = LiveDocs::new(&config(dir.path(), &server));
    live.refresh_now().await;
    let sections = live.current().unwrap().sections();
    assert_eq!(embedded(&server), sections);
    // batch = 2: calls of at most two sections.
    assert!(server.count("POST", "/v1/embeddings") >= sections.div_ceil(2));

    // Nothing changed: nothing embedded.
    live.refresh_now().await;
    assert_eq!(embedded(&server), sections);

    // One section of one page changed: that section alone.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let page = dir.path().join("docs/environments.md");
    let text = std::fs::read_to_string(&page)
        .unwrap()
        .replace("72 hours", "96 hours");
    std::fs::write(&page, text).unwrap();
    let r = live.refresh_now().await;
    assert!(r.rebuilt, "{r:?}");
    assert!(live.current().unwrap().embedded());
    assert_eq!(embedded(&server), sections + 1);
}

#[tokio::test]
async fn a_failing_server_leaves_bm25_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let up = Arc::new(AtomicBool::new(false));
    let server = embedder(up.clone()).await;
    let live = LiveDocs::new(&config(dir.path(), &server));
    let r = live.refresh_now().await;
    assert!(r.failed.is_empty(), "the docs themselves are fine: {r:?}");
    let docs = live.current().expect("docs without vectors");
    assert!(!docs.embedded());
    // Questions are answered by BM25 alone, no call made for them.
    let calls = server.all().len();
    assert!(docs.near(QUESTION).await.is_none());
    assert_eq!(server.all().len(), calls);
    assert!(matches!(
        docs.best("how do I rotate the database credentials"),
        Answer::Answerable(h) if h.heading == "Rotating credentials"
    ));

    // Back: the next refresh embeds, though no page changed.
    up.store(true, Ordering::SeqCst);
    live.refresh_now().await;
    assert!(live.current().unwrap().embedded());

    // Down again while a question is asked: BM25 alone for it.
    up.store(false, Ordering::SeqCst);
    let docs = live.current().unwrap();
    assert!(docs.near(QUESTION).await.is_none());
    assert!(!docs.search_near(QUESTION, None, 3).is_empty());
}

#[tokio::test]
async fn garbage_from_the_server_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    // One vector fewer than asked, then NaN: neither is used.
    let server = fake::serve(|r| async move {
        let n = match r.body.as_ref().map(|b| &b["input"]) {
            Some(Value::Array(a)) => a.len(),
            _ => 1,
        };
        let data: Vec<Value> = (0..n.saturating_sub(1))
            .map(|i| json!({"index": i, "embedding": [1.0, 0.0]}))
            .collect();
        fake::json(200, json!({"data": data}))
    })
    .await;
    let live = LiveDocs::new(&config(dir.path(), &server));
    live.refresh_now().await;
    let docs = live.current().unwrap();
    assert!(!docs.embedded());
    assert!(!docs.search(QUESTION, 3).is_empty());
}

#[tokio::test]
async fn the_cli_fuses_when_the_config_names_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path());
    let server = embedder(Arc::new(AtomicBool::new(true))).await;
    let root = dir.path().to_str().unwrap().to_owned();
    let url = format!("{}/v1", server.url);
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_paver"));
        cmd.args([
            "docs", "search", "--docs", &root, "--json", "--k", "3", QUESTION,
        ])
        .env_remove("PAVER_CONFIG")
        .env("PAVER_DOCS__EMBEDDINGS__BASE_URL", url)
        .env("PAVER_DOCS__EMBEDDINGS__MODEL", "fake-embed");
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fused with embedding"));
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[1]["heading"], "Rotating credentials", "{hits:#}");
}
