//! `paver chat` in a pipe, as a newcomer would try it: the binary, the
//! example policy, the real GitOps driver and a real database.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use paver::chat::console::os_user;
use paver::domain::RequestState;
use support::SAMPLE_CATALOG;

struct Run {
    stdout: String,
    stderr: String,
    ok: bool,
}

/// A session speaking as `as_user` on a test database, which may be shared:
/// impersonation has to be allowed.
fn chat(db_url: &str, repo: &Path, as_user: &str, script: &str) -> Run {
    chat_with(
        Some(db_url),
        repo,
        Some(as_user),
        script,
        &[("PAVER_CONSOLE__ALLOW_IMPERSONATION", "true")],
        None,
    )
}

/// `paver chat` on `db_url` (the config's default database when None),
/// from `cwd` (the crate when None).
fn chat_with(
    db_url: Option<&str>,
    repo: &Path,
    as_user: Option<&str>,
    script: &str,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> Run {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (config, catalog) = (here.join("config/paver.toml"), here.join(SAMPLE_CATALOG));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver"));
    cmd.arg("chat")
        .arg("--config")
        .arg(&config)
        .arg("--catalog")
        .arg(&catalog)
        .env("PAVER_GITOPS__REPO", repo)
        // These sessions start from an empty repository (the shipped config
        // seeds the demo one from the catalog; tests/readme.rs covers that).
        .env("PAVER_GITOPS__SEED_FROM_CATALOG", "false")
        .env_remove("PAVER_CONFIG")
        .env_remove("PAVER_DATABASE__URL")
        .env_remove("PAVER_CONSOLE__ALLOW_IMPERSONATION")
        .current_dir(cwd.unwrap_or(here))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = as_user {
        cmd.args(["--as", u]);
    }
    if let Some(url) = db_url {
        cmd.env("PAVER_DATABASE__URL", url);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("paver runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

fn git_log(repo: &Path) -> String {
    let out = Command::new("git")
        .args(["log", "--format=%B%n----"])
        .current_dir(repo)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn database() -> (support::TestDb, String) {
    let tdb = support::test_db().await;
    let url = tdb.url.clone();
    (tdb, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_words_to_a_staging_url() {
    let (_tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let script = "create staging for order-service with Postgres\n/press Create\n";
    let run = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || chat(&url, &repo, "alice", script)
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("┌ Create staging for order-service with postgres"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("[1 Create] [2 Cancel]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("https://order-service.staging.example.internal"),
        "{}",
        run.stdout
    );
    assert!(repo.join("services/order-service/staging.yaml").exists());
    let log = git_log(&repo);
    assert!(log.contains("alice"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_staging_waits_for_a_second_pair_of_eyes() {
    let (_tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let script = "create staging for checkout-api\n/press 1\n\
                  tear down staging for checkout-api\n/press Destroy\n/press Approve\n\
                  /as dave\n/press Approve\n";
    let run = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || chat(&url, &repo, "alice", script)
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Approval needed"), "{}", run.stdout);
    // Whispers go to the person at the keyboard: the OS user.
    assert!(
        run.stdout
            .contains(&format!("(only {} sees this)", os_user())),
        "four-eyes refusal: {}",
        run.stdout
    );
    assert!(run.stdout.contains("Approved by: dave"), "{}", run.stdout);
    assert!(
        !repo.join("services/checkout-api/staging.yaml").exists(),
        "{}",
        run.stdout
    );
    let log = git_log(&repo);
    assert!(
        log.contains("Approved-by: dave"),
        "the commit names the approver: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_survive_a_restart() {
    let (_tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    // Propose in one session, confirm in the next: the button still works.
    let first = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || {
            chat(
                &url,
                &repo,
                "erin",
                "create a dev env for analytics-pipeline with kafka\n",
            )
        }
    })
    .await
    .unwrap();
    assert!(first.ok, "{}", first.stderr);
    assert!(!repo.join("services/analytics-pipeline/dev.yaml").exists());
    let second = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || {
            chat(
                &url,
                &repo,
                "erin",
                "/press Create\nstatus of analytics-pipeline\n",
            )
        }
    })
    .await
    .unwrap();
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stdout.contains("open requests from earlier"),
        "{}",
        second.stdout
    );
    assert!(
        repo.join("services/analytics-pipeline/dev.yaml").exists(),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("dev: version"), "{}", second.stdout);
}

/// On a database that is not the default demo file, the console is the OS
/// user: `--as` and `/as` are refused, naming the setting that allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_as_someone_else_needs_allow_impersonation_on_a_shared_database() {
    let (_tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let os = os_user();
    let (refused, slash_as, demo) = tokio::task::spawn_blocking({
        let (url, repo, dir) = (url.clone(), repo.clone(), dir.path().to_owned());
        move || {
            let refused = chat_with(Some(&url), &repo, Some("alice"), "", &[], None);
            let slash_as = chat_with(
                Some(&url),
                &repo,
                None,
                "/as dave\nrestart cart-service in dev\n",
                &[],
                None,
            );
            // The default `sqlite://var/paver.db`, relative to a fresh folder.
            let demo = chat_with(None, &repo, Some("alice"), "/as dave\n", &[], Some(&dir));
            (refused, slash_as, demo)
        }
    })
    .await
    .unwrap();
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("`--as alice` refused")
            && refused.stderr.contains("console.allow_impersonation"),
        "{}",
        refused.stderr
    );
    assert!(slash_as.ok, "{}", slash_as.stderr);
    assert!(
        slash_as.stdout.contains("(refused: you stay")
            && slash_as.stdout.contains("console.allow_impersonation"),
        "{}",
        slash_as.stdout
    );
    // Still the OS user, whom the catalog does not know: no request.
    assert!(
        slash_as.stdout.contains(&format!("I don't know {os}")),
        "{}",
        slash_as.stdout
    );
    assert!(demo.ok, "{}", demo.stderr);
    assert!(
        demo.stdout.contains("(you are now dave)"),
        "{}",
        demo.stdout
    );
    assert!(dir.path().join("var/paver.db").exists());
}

/// With `console.allow_impersonation`, `--as` works, and the audit log
/// still names the OS user behind every console action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_the_os_user_behind_the_console() {
    let (tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let script = "create a dev env for analytics-pipeline with kafka\n/press Create\n";
    let run = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || chat(&url, &repo, "erin", script)
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let done = tdb
        .db
        .requests()
        .in_state(RequestState::Succeeded)
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{}", run.stdout);
    let req = &done[0];
    let label = format!("console:{}", os_user());
    assert_eq!(req.requester, "erin");
    assert_eq!(req.requester_chat_id, os_user());
    let events = tdb.db.requests().events(&req.id).await.unwrap();
    let by_erin: Vec<_> = events.iter().filter(|e| e.actor == "erin").collect();
    assert_eq!(by_erin.len(), 2, "propose and confirm: {events:?}");
    for e in by_erin {
        assert_eq!(e.chat, label, "{e:?}");
    }
}

/// Deny asks why at the console too: `/press Deny` alone asks for the
/// reason on the next line (an empty one does nothing), and words after
/// the label are the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_at_the_console_asks_why() {
    let (tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let script = "tear down staging for checkout-api\n/press Destroy\n\
                  /as dave\n/press Deny\n   \n/press Deny not before the freeze ends\n";
    let run = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || chat(&url, &repo, "alice", script)
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("(Why deny it? Type it on the next line.)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("(Say why, in a few words. Nothing was done.)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Status: Denied by dave: not before the freeze ends"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("dave denied this request: not before the freeze ends"),
        "{}",
        run.stdout
    );
    let denied = tdb
        .db
        .requests()
        .in_state(RequestState::Denied)
        .await
        .unwrap();
    assert_eq!(denied.len(), 1, "{}", run.stdout);
    assert_eq!(
        denied[0].denial_reason.as_deref(),
        Some("not before the freeze ends")
    );
    let events = tdb.db.requests().events(&denied[0].id).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.transition == "deny").count(),
        1,
        "the empty reason did nothing: {events:?}"
    );
}

/// `log.format = "json"` (here `PAVER_LOG__FORMAT`): every log line is one
/// JSON object, the job's lines carry the request id, the search index's
/// chatter is left out of `PAVER_LOG=info`, and no token is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let (_tdb, url) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    let script = "create staging for order-service with Postgres\n/press Create\n";
    let run = tokio::task::spawn_blocking({
        let (url, repo) = (url.clone(), repo.clone());
        move || {
            chat_with(
                Some(&url),
                &repo,
                Some("alice"),
                script,
                &[
                    ("PAVER_CONSOLE__ALLOW_IMPERSONATION", "true"),
                    ("PAVER_LOG", "info"),
                    ("PAVER_LOG__FORMAT", "json"),
                    ("PAVER_SLACK__BOT_TOKEN", "xoxb-json-log-secret"),
                ],
                None,
            )
        }
    })
    .await
    .unwrap();
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let logged: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!logged.is_empty(), "{}", run.stderr);
    // Only the console's own banner and prompts are not JSON.
    for l in run.stderr.lines().filter(|l| !l.starts_with('{')) {
        assert!(
            !l.contains("INFO") && !l.contains("WARN"),
            "a text log line: {l}"
        );
    }
    assert!(
        logged
            .iter()
            .any(|v| v["level"] == "INFO"
                && v["request"].as_str().is_some_and(|r| r.starts_with("r-"))),
        "{}",
        run.stderr
    );
    assert!(logged.iter().all(|v| v["target"]
        .as_str()
        .is_some_and(|t| !t.starts_with("tantivy"))));
    assert!(!run.stderr.contains("xoxb-json-log-secret"));
}
