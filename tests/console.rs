//! `paver chat` in a pipe, as a newcomer would try it: the binary, the
//! example policy, the real GitOps driver and a real database.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::SAMPLE_CATALOG;

struct Run {
    stdout: String,
    stderr: String,
    ok: bool,
}

fn chat(db_url: &str, repo: &Path, as_user: &str, script: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paver"))
        .args([
            "chat",
            "--config",
            "config/paver.toml",
            "--catalog",
            SAMPLE_CATALOG,
            "--as",
            as_user,
        ])
        .env("PAVER_DATABASE__URL", db_url)
        .env("PAVER_GITOPS__REPO", repo)
        .env_remove("PAVER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paver runs");
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
    assert!(
        run.stdout.contains("(only alice sees this)"),
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
