//! Docs that change while Paver runs: a folder edited on disk and a git
//! repository with new commits are re-read (only what changed) and the
//! answers follow; a source that breaks keeps its last good docs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use paver::docs::config::GitRemote;
use paver::docs::{Answer, Docs, DocsConfig, DocsSource, LiveDocs};

const MKDOCS: &str = "site_name: Platform\nnav:\n  - Home: index.md\n  - Databases:\n      - PostgreSQL: databases/postgres.md\n  - On-call: oncall.md\n";

/// A small platform docs site of our own under `root`.
fn site(root: &Path) {
    write(root, "mkdocs.yml", MKDOCS);
    write(
        root,
        "docs/index.md",
        "# Platform\n\nHow we run services here.\n",
    );
    write(
        root,
        "docs/databases/postgres.md",
        "# PostgreSQL\n\nManaged PostgreSQL for every service.\n\n## Rotating credentials\n\nTo rotate the database credentials of a service, run `plat db rotate --service NAME`. The old password stops working after an hour.\n\n## Backups\n\nBackups run nightly and are kept for seven days.\n",
    );
    write(
        root,
        "docs/oncall.md",
        "# On-call\n\n## Paging the platform team\n\nPage the platform on-call through PagerDuty, service `platform-primary`.\n",
    );
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(sources: Vec<DocsSource>, cache: &Path) -> DocsConfig {
    DocsConfig {
        sources,
        cache_dir: Some(cache.to_owned()),
        ..DocsConfig::default()
    }
}

fn answer(docs: &Docs, question: &str) -> String {
    match docs.best(question) {
        Answer::Answerable(h) => format!("{} › {}: {}", h.path, h.heading, h.text),
        Answer::NotKnown { .. } => "don't know".into(),
    }
}

const ROTATE: &str = "how do I rotate the postgres credentials?";

/// In chat: asked before and after a page is edited on disk, Paver quotes
/// the page as it is now.
#[tokio::test]
async fn an_edited_page_is_answered_from_after_a_refresh() {
    let tmp = tempfile::tempdir().unwrap();
    site(tmp.path());
    let live = LiveDocs::load(&config(vec![DocsSource::at(tmp.path())], tmp.path()));
    let p = support::paver::TestPaver::builder()
        .settings(paver::engine::EngineSettings {
            docs: Some(live.clone()),
            ..Default::default()
        })
        .start()
        .await;
    p.say("alice", ROTATE).await;
    let t = p.transcript();
    assert!(t.contains("plat db rotate"), "{t}");
    assert!(!t.contains("plat vault rotate-db"), "{t}");

    write(
        tmp.path(),
        "docs/databases/postgres.md",
        "# PostgreSQL\n\nManaged PostgreSQL for every service.\n\n## Rotating credentials\n\nTo rotate the database credentials of a service, run `plat vault rotate-db NAME` (the old command is gone).\n\n## Backups\n\nBackups run nightly and are kept for seven days.\n",
    );
    let r = live.refresh_now().await;
    assert_eq!((r.added, r.changed, r.removed), (0, 1, 0), "{r:?}");
    assert!(r.rebuilt && r.failed.is_empty(), "{r:?}");

    p.say("alice", ROTATE).await;
    let t = p.transcript();
    assert!(t.contains("plat vault rotate-db"), "{t}");
}

#[tokio::test]
async fn pages_added_and_removed_come_and_go_and_nothing_changed_rebuilds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    site(tmp.path());
    let live = LiveDocs::load(&config(vec![DocsSource::at(tmp.path())], tmp.path()));
    let before = live.current().expect("loaded at once");
    assert_eq!(before.sections(), 6);

    let r = live.refresh_now().await;
    assert_eq!(
        (r.added, r.changed, r.removed, r.rebuilt),
        (0, 0, 0, false),
        "{r:?}"
    );
    assert!(Arc::ptr_eq(&before, &live.current().unwrap()));

    write(
        tmp.path(),
        "docs/queues.md",
        "# Queues\n\n## Creating a queue\n\nAsk for a RabbitMQ queue with `plat queue create NAME`.\n",
    );
    let r = live.refresh_now().await;
    assert_eq!((r.added, r.changed, r.removed), (1, 0, 0), "{r:?}");
    assert_eq!(r.sections, 8);
    let now = live.current().unwrap();
    assert!(
        answer(&now, "how can I create a rabbitmq queue").starts_with("docs/queues.md"),
        "{}",
        answer(&now, "how can I create a rabbitmq queue")
    );

    std::fs::remove_file(tmp.path().join("docs/oncall.md")).unwrap();
    let r = live.refresh_now().await;
    assert_eq!((r.added, r.changed, r.removed), (0, 0, 1), "{r:?}");
    let now = live.current().unwrap();
    assert!(now
        .search("page the platform on-call pagerduty", 5)
        .iter()
        .all(|h| h.path != "docs/oncall.md"));

    // A question that began on the old docs still reads them whole.
    assert_eq!(before.sections(), 6);
    assert!(answer(&before, "page the platform on-call").starts_with("docs/oncall.md"));
}

#[tokio::test]
async fn a_broken_mkdocs_yml_keeps_the_last_good_docs() {
    let tmp = tempfile::tempdir().unwrap();
    site(tmp.path());
    let live = LiveDocs::load(&config(vec![DocsSource::at(tmp.path())], tmp.path()));
    let good = live.current().unwrap();

    write(
        tmp.path(),
        "mkdocs.yml",
        "site_name: Platform\nnav: [unclosed\n",
    );
    write(
        tmp.path(),
        "docs/oncall.md",
        "# On-call\n\nNobody is on call any more.\n",
    );
    let r = live.refresh_now().await;
    assert!(!r.rebuilt, "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(r.failed[0].contains("mkdocs.yml"), "{r:?}");
    assert!(Arc::ptr_eq(&good, &live.current().unwrap()));
    assert!(answer(&good, ROTATE).contains("plat db rotate"));

    // Mended: the page edited meanwhile is read.
    write(tmp.path(), "mkdocs.yml", MKDOCS);
    let r = live.refresh_now().await;
    assert!(r.rebuilt && r.failed.is_empty(), "{r:?}");
    assert_eq!(r.changed, 1, "{r:?}");
}

/// At startup an unreadable source means no docs, as before; once it can
/// be read, a refresh brings them.
#[tokio::test]
async fn a_source_unreadable_at_startup_is_read_once_it_is_mended() {
    let tmp = tempfile::tempdir().unwrap();
    site(tmp.path());
    let other = tempfile::tempdir().unwrap();
    let sources = vec![DocsSource::at(tmp.path()), DocsSource::at(other.path())];
    let live = LiveDocs::load(&config(sources, tmp.path()));
    assert!(live.current().is_none());

    write(
        other.path(),
        "docs/index.md",
        "# Handbook\n\n## Holidays\n\nBook holidays in the HR tool.\n",
    );
    let r = live.refresh_now().await;
    assert!(r.rebuilt && r.failed.is_empty(), "{r:?}");
    // The source read at startup was kept: only the mended one is read.
    assert_eq!(r.added, 1, "{r:?}");
    assert!(live.current().is_some());
}

// ----- git ---------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Docs Writer",
            "-c",
            "user.email=docs@example.com",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding the site under `handbook/`, one commit on `main`.
fn repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet", "--initial-branch", "main"]);
    site(&dir.join("handbook"));
    write(dir, "README.md", "# Not docs\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "--quiet", "-m", "docs"]);
    dir.to_owned()
}

fn git_source(origin: &Path) -> DocsSource {
    let mut s = DocsSource::git(
        GitRemote::parse(&format!("file://{}", origin.display())).unwrap(),
        "main",
    );
    if let paver::docs::config::Origin::Git(g) = &mut s.origin {
        g.subdir = PathBuf::from("handbook");
    }
    s
}

#[tokio::test]
async fn a_git_source_is_cloned_then_pulled_and_re_indexed_when_it_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = repo(&tmp.path().join("origin"));
    let cache = tmp.path().join("cache");
    let live = LiveDocs::load(&config(vec![git_source(&origin)], &cache));
    assert!(live.current().is_none(), "not cloned yet");

    let r = live.refresh_now().await;
    assert!(r.rebuilt && r.failed.is_empty(), "{r:?}");
    assert_eq!(r.added, 3, "{r:?}");
    let first = live.current().unwrap();
    assert!(answer(&first, ROTATE).contains("plat db rotate"));
    // Paths are the docs root's, as for a folder.
    assert!(answer(&first, ROTATE).starts_with("docs/databases/postgres.md"));

    // Nothing pushed: the same commit is not even looked at again.
    let r = live.refresh_now().await;
    assert!(!r.rebuilt && r.failed.is_empty(), "{r:?}");
    assert_eq!((r.added, r.changed, r.removed), (0, 0, 0));

    write(
        &origin,
        "handbook/docs/databases/postgres.md",
        "# PostgreSQL\n\n## Rotating credentials\n\nTo rotate the database credentials, run `plat vault rotate-db NAME`.\n",
    );
    git(&origin, &["rm", "--quiet", "handbook/docs/oncall.md"]);
    git(&origin, &["commit", "--quiet", "-am", "new rotation"]);
    let r = live.refresh_now().await;
    assert!(r.rebuilt && r.failed.is_empty(), "{r:?}");
    assert_eq!((r.added, r.changed, r.removed), (0, 1, 1), "{r:?}");
    assert!(answer(&live.current().unwrap(), ROTATE).contains("plat vault rotate-db"));

    // The remote gone: the last good docs stay.
    let kept = live.current().unwrap();
    std::fs::rename(&origin, tmp.path().join("moved")).unwrap();
    let r = live.refresh_now().await;
    assert!(!r.rebuilt, "{r:?}");
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(r.failed[0].contains("fetch"), "{r:?}");
    assert!(Arc::ptr_eq(&kept, &live.current().unwrap()));

    // A restart reads the earlier clone at once, before any pull.
    let again = LiveDocs::load(&config(vec![git_source(&origin)], &cache));
    assert!(answer(&again.current().unwrap(), ROTATE).contains("plat vault rotate-db"));
}

/// `paver serve`'s watcher clones a git source at once, without waiting
/// for the first interval.
#[tokio::test]
async fn the_watcher_clones_at_once_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = repo(&tmp.path().join("origin"));
    let live = LiveDocs::load(&config(
        vec![git_source(&origin)],
        &tmp.path().join("cache"),
    ));
    live.spawn_watcher(Some(Duration::from_secs(3600)));
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while live.current().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    live.stop();
    assert!(ready.is_ok(), "the watcher never cloned");
}

// ----- cost --------------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The cost of a refresh on the sample docs (copied to a temp folder, as
/// the test edits them): `cargo test --release --test docs_live cost --
/// --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn cost_of_a_refresh_on_the_sample_docs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docs-site");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/docs"),
        &root,
    );
    let started = std::time::Instant::now();
    let live = LiveDocs::load(&config(vec![DocsSource::at(&root)], tmp.path()));
    let first = started.elapsed();
    let docs = live.current().unwrap();
    const N: u32 = 50;
    let mut idle = Duration::ZERO;
    for _ in 0..N {
        let r = live.refresh_now().await;
        assert!(!r.rebuilt);
        idle += r.took;
    }
    let page = root.join("docs/databases/postgres.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let mut one = Duration::ZERO;
    for i in 0..N {
        std::fs::write(&page, format!("{text}\nEdit {i}.\n")).unwrap();
        let r = live.refresh_now().await;
        assert_eq!((r.changed, r.rebuilt), (1, true));
        one += r.took;
    }
    println!(
        "{} sections; first load {:?}; refresh with nothing changed {:?}; one page changed {:?}",
        docs.sections(),
        first,
        idle / N,
        one / N
    );
}
