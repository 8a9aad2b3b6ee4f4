//! The durable executor: jobs in the database, claimed with a lease,
//! retried with backoff on transient errors, failed on permanent ones,
//! resumed once after a crash, executed exactly once across replicas — on
//! SQLite, and on PostgreSQL when PAVER_TEST_DATABASE_URL is set.

mod support;

use std::time::Duration;

use paver::domain::RequestState;
use paver::drivers::{DriverError, Outcome};
use paver::engine::EngineSettings;
use paver::requests::ExecutorSettings;
use paver::storage::JobStatus;
use support::paver::TestPaver;
use support::FakeDriver;

fn fast(lease: Duration) -> EngineSettings {
    EngineSettings {
        attempts: 3,
        executor: ExecutorSettings {
            workers: 2,
            lease,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            poll: Duration::from_millis(100),
        },
        ..EngineSettings::default()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn an_approved_request_becomes_a_job_that_runs_once() {
    // Card updates waiting to be sent are coalesced (the latest wins): the
    // run lasts long enough for its progress line to be sent on its own.
    let driver = FakeDriver {
        delay: Duration::from_millis(300),
        ..FakeDriver::default()
    };
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("alice", &id, "Restart").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded);
    let jobs = h.db().jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    assert_eq!(jobs[0].attempts, 1);
    assert_eq!(jobs[0].idempotency_key, format!("{id}:{}", req.action_hash));
    let job = driver.jobs.lock().unwrap()[0].clone();
    assert_eq!(job.job_id, jobs[0].id);
    assert_eq!(job.attempt, 1);
    assert!(!job.resumed);
    // The driver's progress reached the card.
    assert!(
        h.statuses(&id)
            .await
            .iter()
            .any(|s| s == "Running: working"),
        "{:?}",
        h.statuses(&id).await
    );
    assert_eq!(
        h.statuses(&id).await.last().map(String::as_str),
        Some("Done")
    );
}

#[tokio::test]
async fn transient_failures_back_off_and_retry_without_duplicates() {
    let driver = FakeDriver::default();
    driver
        .then(Err(DriverError::Unreachable(
            "503 from the orchestrator".into(),
        )))
        .then(Err(DriverError::Unreachable("timed out".into())));
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h
        .propose("alice", "create a dev env for cart-service with redis")
        .await;
    h.press("alice", &id, "Create").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    let jobs = driver.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 3);
    assert!(jobs
        .iter()
        .all(|j| j.idempotency_key == jobs[0].idempotency_key));
    assert!(jobs.iter().all(|j| j.job_id == jobs[0].job_id));
    assert_eq!(
        jobs.iter().map(|j| j.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The card said it would retry, and when.
    let statuses = h.statuses(&id).await;
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("attempt 1 of 3 failed (503 from the orchestrator); retrying in")),
        "{statuses:?}"
    );
    // One success message, no failure message.
    let thread = h.thread_texts().join("\n");
    assert_eq!(thread.matches("Done:").count(), 1, "{thread}");
    assert!(!thread.contains("Failed"), "{thread}");
}

#[tokio::test]
async fn exhausted_retries_fail_with_the_message_and_a_retry_button() {
    let driver = FakeDriver::default();
    for _ in 0..3 {
        driver.then(Err(DriverError::Unreachable(
            "429 Too Many Requests".into(),
        )));
    }
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("alice", &id, "Restart").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert_eq!(
        req.error.as_deref(),
        Some("429 Too Many Requests (gave up after 3 attempts)")
    );
    assert_eq!(driver.calls(), 3);
    assert!(h
        .thread_texts()
        .iter()
        .any(|t| t.contains("429 Too Many Requests") && t.contains("Retry")));
    assert_eq!(h.latest_card(&id).buttons[0].label, "Retry");
    let jobs = h.db().jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs[0].status, JobStatus::Failed);
}

#[tokio::test]
async fn permanent_errors_fail_at_once_and_retry_makes_a_new_job() {
    let driver = FakeDriver::default();
    driver.then(Err(DriverError::failed(
        "422: values.name must match ^[a-z-]+$".into(),
    )));
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("alice", &id, "Restart").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert_eq!(
        req.error.as_deref(),
        Some("422: values.name must match ^[a-z-]+$")
    );
    assert_eq!(driver.calls(), 1, "a permanent error is not retried");
    assert!(h
        .thread_texts()
        .iter()
        .any(|t| t.contains("values.name must match")));

    h.press("alice", &id, "Retry").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    let jobs = h.db().jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].status, JobStatus::Failed);
    assert_eq!(jobs[1].status, JobStatus::Succeeded);
    assert_eq!(jobs[1].generation, 2);
    // A human retry is new work: a key of its own.
    let seen = driver.jobs.lock().unwrap().clone();
    assert_ne!(seen[0].idempotency_key, seen[1].idempotency_key);
    assert!(seen[1].idempotency_key.ends_with(":2"));
}

/// A worker dies mid-job: its lease runs out, another process claims the
/// job, and the driver runs once more with the same idempotency key.
#[tokio::test]
async fn a_crashed_executor_is_resumed_once_after_its_lease() {
    let lease = Duration::from_millis(1500);
    let stuck = FakeDriver {
        delay: Duration::from_secs(600),
        ..FakeDriver::default()
    };
    let a = TestPaver::builder()
        .fake_driver(stuck.clone())
        .settings(fast(lease))
        .start()
        .await;
    let id = a.propose("alice", "restart cart-service in dev").await;
    a.press_now("alice", &id, "Restart").await;
    until("the first run to start", || stuck.calls() == 1).await;
    let job = a.db().jobs().live_for(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.owner.as_deref(), Some(a.engine.executor().owner()));

    // The process dies: its workers stop, its lease is never renewed.
    a.engine.executor().stop();

    let fresh = FakeDriver::default();
    let b = TestPaver::builder()
        .replica_of(&a)
        .fake_driver(fresh.clone())
        .settings(fast(lease))
        .start()
        .await;
    b.engine.recover().await.unwrap();
    b.idle().await;
    assert_eq!(
        a.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(fresh.calls(), 1, "resumed exactly once");
    assert_eq!(stuck.calls(), 1);
    let first = stuck.jobs.lock().unwrap()[0].clone();
    let second = fresh.jobs.lock().unwrap()[0].clone();
    assert_eq!(first.idempotency_key, second.idempotency_key);
    assert_eq!(first.job_id, second.job_id);
    assert!(second.resumed);
    assert_eq!(second.attempt, 2);
    let jobs = a.db().jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    assert_eq!(jobs[0].owner.as_deref(), Some(b.engine.executor().owner()));
    // Nothing is left to recover.
    b.engine.recover().await.unwrap();
    b.idle().await;
    assert_eq!(fresh.calls(), 1);
}

#[tokio::test]
async fn a_crash_fails_what_cannot_be_resumed_safely() {
    let lease = Duration::from_millis(1500);
    let stuck = FakeDriver {
        delay: Duration::from_secs(600),
        resumable: false,
        ..FakeDriver::default()
    };
    let a = TestPaver::builder()
        .fake_driver(stuck.clone())
        .settings(fast(lease))
        .start()
        .await;
    let id = a.propose("alice", "restart cart-service in dev").await;
    a.press_now("alice", &id, "Restart").await;
    until("the first run to start", || stuck.calls() == 1).await;
    a.engine.executor().stop();
    let other = FakeDriver {
        resumable: false,
        ..FakeDriver::default()
    };
    let b = TestPaver::builder()
        .replica_of(&a)
        .fake_driver(other.clone())
        .settings(fast(lease))
        .start()
        .await;
    b.engine.recover().await.unwrap();
    b.idle().await;
    let req = a.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert!(req.error.unwrap().contains("restarted"));
    assert_eq!(other.calls(), 0);
}

/// Two replicas on one database: every request runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_queue_without_running_anything_twice() {
    let driver = FakeDriver {
        delay: Duration::from_millis(150),
        ..FakeDriver::default()
    };
    let a = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let b = TestPaver::builder()
        .replica_of(&a)
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    b.engine.start_workers();
    let services = [
        "cart-service",
        "order-service",
        "checkout-api",
        "inventory-api",
        "user-service",
        "search-api",
    ];
    let mut ids = Vec::new();
    for s in services {
        let id = a.propose("alice", &format!("restart {s} in dev")).await;
        ids.push(id);
    }
    for id in &ids {
        a.press_now("alice", id, "Restart").await;
    }
    a.idle().await;
    b.idle().await;
    for id in &ids {
        assert_eq!(
            a.db().requests().get(id).await.unwrap().state,
            RequestState::Succeeded
        );
    }
    let jobs = driver.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), ids.len(), "each request ran exactly once");
    for id in &ids {
        assert_eq!(jobs.iter().filter(|j| &j.request_id == id).count(), 1);
    }
}

#[tokio::test]
async fn recovery_queues_approved_requests_that_never_got_a_job() {
    let driver = FakeDriver::default();
    let h = TestPaver::builder()
        .fake_driver(driver.clone())
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    // A crash between the approval and the queueing.
    let store = h.db().requests();
    for t in [
        paver::domain::Transition::Confirm,
        paver::domain::Transition::AutoApprove,
    ] {
        store
            .transition(
                &id,
                t,
                "test",
                "test",
                "",
                paver::storage::Updates::default(),
            )
            .await
            .unwrap();
    }
    assert!(h.db().jobs().live_for(&id).await.unwrap().is_none());
    h.engine.recover().await.unwrap();
    h.idle().await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
    assert_eq!(driver.calls(), 1);
    let _ = Outcome::default();
}

/// Claims are exclusive even when many workers race for one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_claimed_by_exactly_one_worker() {
    let h = TestPaver::builder()
        .settings(fast(Duration::from_secs(10)))
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    let req = h.db().requests().get(&id).await.unwrap();
    let job = h.db().jobs().enqueue(&id, &req.action_hash).await.unwrap();
    // Queueing again is a no-op while the job is live.
    assert_eq!(
        h.db()
            .jobs()
            .enqueue(&id, &req.action_hash)
            .await
            .unwrap()
            .id,
        job.id
    );
    let mut tasks = Vec::new();
    for n in 0..8 {
        let db = h.db().clone();
        tasks.push(tokio::spawn(async move {
            db.jobs().claim(&format!("w{n}"), 10_000).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // An expired lease makes it claimable again, as a resumed job.
    h.clock().lease_ran_out(&job.id).await;
    let again = h.db().jobs().claim("w9", 10_000).await.unwrap().unwrap();
    assert!(again.resumed);
    assert_eq!(again.job.attempts, 2);
    assert!(!h.db().jobs().renew(&job.id, "w0", 10_000).await.unwrap());
    assert!(h.db().jobs().renew(&job.id, "w9", 10_000).await.unwrap());
}
