//! SQLite is one process on one file: a second Paver started on a file
//! another one serves fails at once with an error naming the file, in the
//! library (`App::start`) and through the binary (`paver serve`); commands
//! that only read keep working, and once the first stops the file is free.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use paver::app::{App, AppError};
use paver::config::Config;
use paver::storage::StorageError;

fn config_for(dir: &Path, url: &str) -> Config {
    let file = dir.join("paver.toml");
    std::fs::write(
        &file,
        format!(
            "[database]\nurl = \"{url}\"\n\n[gitops]\nrepo = \"{}\"\n",
            dir.join("repo").display()
        ),
    )
    .unwrap();
    Config::load(Some(&file)).unwrap()
}

#[tokio::test]
async fn a_second_app_on_one_sqlite_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("paver.db");
    let config = config_for(dir.path(), &format!("sqlite://{}", db_file.display()));
    let first = App::start(&config, None, HashMap::new()).await.unwrap();
    let err = match App::start(&config, None, HashMap::new()).await {
        Err(e) => e,
        Ok(_) => panic!("a second Paver started on {}", db_file.display()),
    };
    assert!(
        matches!(
            err,
            AppError::Database {
                error: StorageError::InUse { .. },
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&db_file.display().to_string()), "{text}");
    assert!(text.contains("another Paver process"), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    // The first stops: the file is free again.
    first.shutdown(Duration::from_secs(1)).await.unwrap();
    drop(first);
    let again = App::start(&config, None, HashMap::new()).await.unwrap();
    assert!(again.process_lock.is_some());
}

fn paver(dir: &Path, db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PAVER_CONFIG")
        .env("PAVER_DATABASE__URL", db)
        .env("PAVER_SERVER__LISTEN", "127.0.0.1:0")
        .env("PAVER_SERVER__SHUTDOWN_GRACE_SECS", "2")
        .env("PAVER_GITOPS__REPO", dir.join("repo").display().to_string())
        .env("PAVER_LOG", "warn");
    cmd
}

/// Starts `paver serve` and waits until it says it listens.
fn serve(dir: &Path, db: &str) -> Child {
    let mut child = paver(dir, db)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let listening = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| {
            seen.push_str(&line);
            seen.push('\n');
            line.contains("paver listening on")
        });
    if !listening {
        let _ = child.kill();
        let _ = child.wait();
        panic!("paver serve did not start: {seen}");
    }
    child
}

/// Runs `paver serve` expecting it to exit by itself within 60 s.
fn serve_to_exit(dir: &Path, db: &str) -> Output {
    let mut child = paver(dir, db)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second paver serve kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("paver serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_paver_serve_on_one_sqlite_file_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("paver.db");
    let db = format!("sqlite://{}", db_file.display());
    let first = serve(dir.path(), &db);

    let second = serve_to_exit(dir.path(), &db);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&db_file.display().to_string()), "{err}");
    assert!(err.contains("in use by another Paver process"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");

    // Reading the audit log needs no lock.
    let export = paver(dir.path(), &db)
        .args(["audit", "export", "--since", "1d"])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    // Once the first has stopped, the file is anyone's.
    stop(first);
    let next = serve(dir.path(), &db);
    stop(next);
}
