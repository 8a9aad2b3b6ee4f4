//! Nothing runs that nobody approved: the confirm press races an
//! amendment, retries are decided again, a restart finishes what a crash
//! left half-way, the executor runs only the confirmed action, and a
//! graceful stop hands running work back — on SQLite, and on PostgreSQL
//! when PAVER_TEST_DATABASE_URL is set.

mod support;

use std::sync::Arc;
use std::time::Duration;

use paver::chat::{Conversation, Inbound, Platform};
use paver::domain::RequestState;
use paver::domain::Transition;
use paver::domain::{Action, Environment};
use paver::drivers::DriverError;
use paver::engine::EngineSettings;
use paver::policy::action_hash;
use paver::requests::ExecutorSettings;
use paver::storage::{JobStatus, Updates};
use support::paver::{conv, user, TestPaver};
use support::FakeDriver;

const HOUR: Duration = Duration::from_secs(3600);

fn fast() -> EngineSettings {
    EngineSettings {
        attempts: 1,
        executor: ExecutorSettings {
            workers: 2,
            lease: Duration::from_secs(10),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            poll: Duration::from_millis(50),
        },
        ..EngineSettings::default()
    }
}

async fn sql(h: &TestPaver, statement: &str) {
    sqlx::query(statement)
        .execute(h.db().pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// alice presses Deploy on the staging card at the same moment as she
/// replies "make it production instead" in its thread. Whatever the order,
/// the production deploy never runs without an approval, and whatever runs
/// is exactly what was confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_racing_an_amendment_never_runs_what_was_not_confirmed() {
    let driver = FakeDriver::default();
    let h = Arc::new(
        TestPaver::builder()
            .fake_driver(driver.clone())
            .settings(fast())
            .start()
            .await,
    );
    let rounds = 200;
    let (mut confirmed_first, mut amended_first) = (0, 0);
    for round in 0..rounds {
        let id = h
            .propose("alice", "deploy order-service 1.2.0 to staging")
            .await;
        h.idle().await;
        let confirm = h.latest_card(&id).buttons[0].payload.clone();
        let thread = h.card_ref(&id);
        let press = {
            let h = h.clone();
            tokio::spawn(async move {
                h.engine
                    .handle_button(&user("alice"), &conv(), &confirm)
                    .await
                    .unwrap();
            })
        };
        let amend = {
            let h = h.clone();
            tokio::spawn(async move {
                h.engine
                    .handle_message(Inbound {
                        event_id: Some(format!("race-{round}")),
                        user: user("alice"),
                        conversation: Conversation {
                            platform: Platform::Console,
                            channel: "C1".into(),
                            thread: Some(thread),
                        },
                        text: "make it production instead".into(),
                    })
                    .await
                    .unwrap();
            })
        };
        press.await.unwrap();
        amend.await.unwrap();
        h.idle().await;

        let req = h.db().requests().get(&id).await.unwrap();
        let ran: Vec<Action> = driver
            .jobs
            .lock()
            .unwrap()
            .iter()
            .filter(|j| j.request_id == id)
            .map(|j| j.action.clone())
            .collect();
        for action in &ran {
            assert_eq!(
                action.environment(),
                Some(Environment::Staging),
                "round {round}: ran {action:?}, which nobody confirmed"
            );
        }
        let approvals = h.db().requests().approvals(&id).await.unwrap();
        match req.action.environment() {
            Some(Environment::Production) => {
                amended_first += 1;
                assert!(approvals.is_empty());
                assert_eq!(
                    req.state,
                    RequestState::Proposed,
                    "round {round}: the amended production deploy must wait for its own confirmation"
                );
                assert!(ran.is_empty(), "round {round}");
            }
            _ => {
                confirmed_first += 1;
                assert_eq!(req.state, RequestState::Succeeded, "round {round}");
                assert_eq!(ran.len(), 1, "round {round}");
                assert_eq!(
                    req.confirmed_hash.as_deref(),
                    Some(req.action_hash.as_str())
                );
            }
        }
    }
    eprintln!("{rounds} rounds: confirm first {confirmed_first}, amendment first {amended_first}");
}

async fn setup() -> (FakeDriver, TestPaver) {
    let driver = FakeDriver::default();
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast())
        .start()
        .await;
    (driver, h)
}

/// A production deploy approved by dave fails; alice retries it.
async fn failed_production_deploy(h: &TestPaver, driver: &FakeDriver) -> String {
    driver.then(Err(DriverError::failed("argo said no".into())));
    let id = h
        .propose("alice", "deploy order-service 1.2.0 to production")
        .await;
    h.press("alice", &id, "Deploy").await;
    h.press("dave", &id, "Approve").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert_eq!(driver.calls(), 1);
    id
}

#[tokio::test]
async fn a_retry_within_the_approval_window_runs_on_the_same_approval() {
    let (driver, h) = setup().await;
    let id = failed_production_deploy(&h, &driver).await;
    h.press("alice", &id, "Retry").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(driver.calls(), 2);
    let events = h.db().requests().events(&id).await.unwrap();
    assert!(events.iter().any(|e| e.transition == "auto_approve"
        && e.detail.contains("by dave")
        && e.detail.contains("still valid")));
}

#[tokio::test]
async fn a_retry_after_the_approval_expired_asks_the_approvers_again() {
    let (driver, h) = setup().await;
    let id = failed_production_deploy(&h, &driver).await;
    // dave approved 25 hours ago (the window is 24 h).
    h.clock().approvals_given(&id, 25 * HOUR).await;
    h.press("alice", &id, "Retry").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::AwaitingApproval);
    assert_eq!(driver.calls(), 1, "nothing ran on the stale approval");
    // A fresh approval runs it.
    h.press("dave", &id, "Approve").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(driver.calls(), 2);
}

#[tokio::test]
async fn a_retry_asks_again_when_the_approvers_changed() {
    let (driver, h) = setup().await;
    let id = failed_production_deploy(&h, &driver).await;
    // When it was approved, only the platform team could approve it; policy
    // now names the owning team too.
    sql(
        &h,
        &format!(
            "UPDATE requests SET approvers_json = '{{\"teams\":[\"team-platform\"]}}' WHERE id = '{id}'"
        ),
    )
    .await;
    h.press("alice", &id, "Retry").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::AwaitingApproval
    );
    assert_eq!(driver.calls(), 1);
}

#[tokio::test]
async fn a_denial_after_an_approval_is_not_outweighed_on_retry() {
    let (driver, h) = setup().await;
    let id = failed_production_deploy(&h, &driver).await;
    let hash = h.db().requests().get(&id).await.unwrap().action_hash;
    h.db()
        .requests()
        .record_approval(&id, "bob", "denied", &hash)
        .await
        .unwrap();
    h.press("alice", &id, "Retry").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::AwaitingApproval
    );
    assert_eq!(driver.calls(), 1);
}

#[tokio::test]
async fn failed_requests_expire_and_their_retry_button_stops_working() {
    let (driver, h) = setup().await;
    let id = failed_production_deploy(&h, &driver).await;
    h.clock().untouched_for(&id, 73 * HOUR).await;
    h.sweep().await;
    h.idle().await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Expired
    );
    // An old card's Retry does nothing now.
    let retry = h
        .cards(&id)
        .iter()
        .flat_map(|c| c.buttons.clone())
        .find(|b| b.label == "Retry")
        .expect("the failed card had a Retry button")
        .payload;
    h.engine
        .handle_button(&user("alice"), &conv(), &retry)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Expired
    );
    assert_eq!(driver.calls(), 1);
}

/// A crash right after the confirm press (before policy decided) left the
/// request `confirmed`; the next start decides it.
#[tokio::test]
async fn a_restart_decides_requests_a_crash_left_confirmed() {
    let driver = FakeDriver::default();
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast())
        .start()
        .await;
    let staging = h
        .propose("alice", "deploy order-service 1.2.0 to staging")
        .await;
    let production = h
        .propose("alice", "deploy order-service 1.2.0 to production")
        .await;
    for id in [&staging, &production] {
        let out = h
            .db()
            .requests()
            .transition(
                id,
                Transition::Confirm,
                "alice",
                "console:alice",
                "",
                Updates::default(),
            )
            .await
            .unwrap();
        assert!(out.applied());
    }
    h.idle().await;
    assert_eq!(driver.calls(), 0);

    let fresh = FakeDriver::default();
    let b = TestPaver::builder()
        .replica_of(&h)
        .fake_driver(fresh.clone())
        .settings(fast())
        .start()
        .await;
    b.engine.recover().await.unwrap();
    b.idle().await;
    let store = h.db().requests();
    assert_eq!(
        store.get(&staging).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(
        store.get(&production).await.unwrap().state,
        RequestState::AwaitingApproval,
        "policy still asks for an approval"
    );
    assert_eq!(fresh.calls(), 1);
}

/// The stored action is changed behind Paver's back after the confirmation
/// (a bug, or someone with database access): the executor refuses it.
#[tokio::test]
async fn the_executor_runs_only_the_action_that_was_confirmed() {
    let driver = FakeDriver::default();
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast())
        .start()
        .await;
    let id = h
        .propose("alice", "deploy order-service 1.2.0 to staging")
        .await;
    let store = h.db().requests();
    store
        .transition(
            &id,
            Transition::Confirm,
            "alice",
            "console:alice",
            "",
            Updates::default(),
        )
        .await
        .unwrap();
    let mut tampered = store.get(&id).await.unwrap().action;
    if let Action::Deploy { environment, .. } = &mut tampered {
        *environment = Environment::Production;
    }
    let json = serde_json::to_string(&tampered).unwrap();
    sql(
        &h,
        &format!(
            "UPDATE requests SET action_json = '{json}', action_hash = '{}' WHERE id = '{id}'",
            action_hash(&tampered)
        ),
    )
    .await;
    store
        .transition(
            &id,
            Transition::AutoApprove,
            "policy",
            "policy",
            "",
            Updates::default(),
        )
        .await
        .unwrap();
    h.engine.execute(id.clone());
    h.idle().await;
    let req = store.get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert!(
        req.error.as_deref().unwrap_or("").contains("confirmed"),
        "{:?}",
        req.error
    );
    assert_eq!(driver.calls(), 0, "nothing reached the driver");
}

/// SIGTERM mid-job: the running job gets the grace period, then its lease
/// is handed back, and the next process resumes it at once, once.
#[tokio::test]
async fn a_graceful_stop_hands_running_jobs_back() {
    let stuck = FakeDriver {
        delay: Duration::from_secs(600),
        ..FakeDriver::default()
    };
    let mut settings = fast();
    // Long enough that only a hand-back (not an expiry) can explain a resume.
    settings.executor.lease = Duration::from_secs(300);
    // The resumed run is the job's second attempt.
    settings.attempts = 3;
    let a = TestPaver::builder()
        .fake_driver(stuck.clone())
        .settings(settings.clone())
        .start()
        .await;
    let id = a.propose("alice", "restart cart-service in dev").await;
    a.press_now("alice", &id, "Restart").await;
    for _ in 0..400 {
        if stuck.calls() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stuck.calls(), 1);
    let t0 = std::time::Instant::now();
    let handed_back = a
        .engine
        .executor()
        .drain(Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(handed_back, 1);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let job = a.db().jobs().live_for(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);

    let fresh = FakeDriver::default();
    let b = TestPaver::builder()
        .replica_of(&a)
        .fake_driver(fresh.clone())
        .settings(settings)
        .start()
        .await;
    b.engine.recover().await.unwrap();
    b.idle().await;
    assert_eq!(
        a.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(fresh.calls(), 1);
    let resumed = fresh.jobs.lock().unwrap()[0].clone();
    assert!(resumed.resumed);
    assert_eq!(
        resumed.idempotency_key,
        stuck.jobs.lock().unwrap()[0].idempotency_key
    );
}

/// `paver serve` exits 0 on SIGTERM.
#[test]
fn serve_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paver"))
        .arg("serve")
        .env(
            "PAVER_DATABASE__URL",
            format!("sqlite://{}/p.db", dir.path().display()),
        )
        .env("PAVER_SERVER__LISTEN", "127.0.0.1:0")
        .env("PAVER_SERVER__SHUTDOWN_GRACE_SECS", "2")
        .env(
            "PAVER_GITOPS__REPO",
            dir.path().join("repo").display().to_string(),
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("paver listening on") {
            break;
        }
    }
    assert!(seen.contains("paver listening on"), "{seen}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("paver serve did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}
