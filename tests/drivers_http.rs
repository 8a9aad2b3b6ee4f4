//! The generic HTTP orchestrator driver against a fake orchestrator on
//! 127.0.0.1 that checks Paver's signature and idempotency key, answers
//! at once, through a status URL, or by signed callbacks to Paver's
//! `POST /hooks/orchestrator/{job}`; and the durable executor around it:
//! transient failures without duplicates, a crash resumed once.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use paver::domain::{Action, Environment, ResourceKind, ServiceName};
use paver::drivers::http::{sign, verify, OrchestratorConfig, OrchestratorDriver, SCHEMA};
use paver::drivers::router::{DriversConfig, Router};
use paver::drivers::{Driver, DriverError, Job, Outcome};
use paver::requests::{EngineSettings, ExecutorSettings, RequestState};
use paver::storage::Db;
use support::fake::{json as reply, serve, EngineHarness, FakeServer};
use support::openapi::Recorded;
use support::test_db;

const SECRET: &str = "orchestrator-signing-secret";

#[derive(Clone, Copy, PartialEq, Default)]
enum Mode {
    #[default]
    Sync,
    Poll,
    Callback,
}

#[derive(Default)]
struct Orch {
    mode: Mode,
    /// Answer the next POSTs with these statuses, after creating the job.
    fail_after_create: Vec<u16>,
    /// Refuse with this 4xx message.
    refuse: Option<String>,
    /// Polls answered "running" before the job finishes (Poll mode).
    polls: usize,
    /// Hold jobs running until this is set.
    hold: bool,
    /// Finish as failed with this message.
    fail_with: Option<String>,
    /// idempotency key → (job number, polls so far).
    jobs: BTreeMap<String, (usize, usize)>,
    bad_signatures: usize,
}

fn done_doc(o: &Orch, body: &Value) -> Value {
    let service = body["action"]["service"].as_str().unwrap_or("svc");
    let env = body["action"]["environment"].as_str().unwrap_or("dev");
    match &o.fail_with {
        Some(m) => json!({"status": "failed", "message": m, "retryable": false}),
        None => json!({
            "status": "succeeded",
            "summary": format!("Created {env} for {service} on the platform"),
            "url": format!("https://{service}.{env}.orchestrated.example.internal"),
            "links": [{"label": "Dashboard", "url": format!("https://orch.example.internal/apps/{service}/{env}")}]
        }),
    }
}

async fn fake_orchestrator(state: Arc<Mutex<Orch>>) -> FakeServer {
    let bodies: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();
    serve(move |r: Recorded| {
        let state = state.clone();
        let bodies = bodies.clone();
        async move {
            let sig = r.header("x-paver-signature").unwrap_or("").to_owned();
            if verify(SECRET, &sig, &r.raw_body, chrono::Utc::now().timestamp(), 300).is_err() {
                state.lock().unwrap().bad_signatures += 1;
                return reply(401, json!({"message": "bad signature"}));
            }
            let Some(key) = r.header("idempotency-key").map(str::to_owned) else {
                return reply(400, json!({"message": "Idempotency-Key is required"}));
            };
            let mut o = state.lock().unwrap();
            match (r.method.as_str(), r.path.as_str()) {
                ("POST", "/v1/actions") => {
                    if let Some(m) = &o.refuse {
                        return reply(422, json!({"message": m}));
                    }
                    let body = r.body.clone().unwrap();
                    assert_eq!(body["schema"], SCHEMA);
                    assert_eq!(body["idempotency_key"], key.as_str());
                    let n = o.jobs.len() + 1;
                    let n = o.jobs.entry(key.clone()).or_insert((n, 0)).0;
                    bodies.lock().unwrap().insert(n, body.clone());
                    if !o.fail_after_create.is_empty() {
                        let code = o.fail_after_create.remove(0);
                        return reply(code, json!({"message": "gateway timeout"}));
                    }
                    match o.mode {
                        Mode::Sync => reply(200, done_doc(&o, &body)),
                        Mode::Poll => reply(202, json!({"status": "accepted", "message": "queued", "status_url": format!("/v1/jobs/{n}")})),
                        Mode::Callback => {
                            let url = body["callback_url"].as_str().unwrap().to_owned();
                            let finish = done_doc(&o, &body);
                            drop(o);
                            tokio::spawn(async move {
                                let client = reqwest::Client::new();
                                for doc in [json!({"status": "running", "message": "provisioning postgres"}), finish] {
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    let raw = doc.to_string();
                                    let resp = client
                                        .post(&url)
                                        .header("content-type", "application/json")
                                        .header("X-Paver-Signature", sign(SECRET, chrono::Utc::now().timestamp(), raw.as_bytes()))
                                        .body(raw)
                                        .send()
                                        .await
                                        .unwrap();
                                    assert!(resp.status().is_success(), "callback answered {}", resp.status());
                                }
                            });
                            reply(202, json!({"status": "accepted", "message": "queued"}))
                        }
                    }
                }
                ("GET", p) if p.starts_with("/v1/jobs/") => {
                    let n: usize = p.rsplit('/').next().unwrap().parse().unwrap();
                    let polls_needed = o.polls;
                    let hold = o.hold;
                    let entry = o.jobs.values_mut().find(|(k, _)| *k == n).unwrap();
                    entry.1 += 1;
                    if hold || entry.1 <= polls_needed {
                        let msg = format!("provisioning step {}", entry.1.min(3));
                        return reply(200, json!({"status": "running", "message": msg}));
                    }
                    let body = bodies.lock().unwrap()[&n].clone();
                    reply(200, done_doc(&o, &body))
                }
                _ => reply(404, json!({"message": "not found"})),
            }
        }
    })
    .await
}

fn driver(server: &FakeServer, callback_base: Option<String>) -> OrchestratorDriver {
    OrchestratorDriver::new(
        OrchestratorConfig {
            poll_interval_ms: 100,
            callback_base_url: callback_base.map(|u| url::Url::parse(&u).unwrap()),
            job_timeout_secs: 30,
            ..OrchestratorConfig::default()
        },
        url::Url::parse(&format!("{}/v1/actions", server.url)).unwrap(),
        SECRET.to_owned().into(),
    )
    .unwrap()
}

fn create_job() -> Job {
    Job {
        approver: Some("dave".into()),
        job_id: "j-test".into(),
        ..Job::new(
            "r-abc",
            "r-abc:1f2e",
            Action::CreateEnvironment {
                service: ServiceName::parse("order-service").unwrap(),
                environment: Environment::Staging,
                resources: vec![ResourceKind::Postgres],
            },
            "alice",
        )
    }
}

async fn run(d: &dyn Driver, job: &Job) -> (Result<Outcome, DriverError>, Vec<String>) {
    let seen = Mutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_owned());
    let r = d.execute(job, &progress).await;
    (r, seen.into_inner().unwrap())
}

#[tokio::test]
async fn posts_the_signed_v1_schema_and_reads_an_immediate_answer() {
    let state = Arc::new(Mutex::new(Orch::default()));
    let server = fake_orchestrator(state.clone()).await;
    let d = driver(&server, Some("https://paver.example.internal".into()));
    let (r, _) = run(&d, &create_job()).await;
    let out = r.unwrap();
    assert_eq!(
        out.summary,
        "Created staging for order-service on the platform"
    );
    assert_eq!(
        out.url.as_deref(),
        Some("https://order-service.staging.orchestrated.example.internal")
    );
    assert_eq!(out.links[0].0, "Dashboard");
    let sent = &server.all()[0];
    assert_eq!(sent.header("idempotency-key"), Some("r-abc:1f2e"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.body.as_ref().unwrap(),
        &json!({
            "schema": "paver.orchestrator/v1",
            "job_id": "j-test",
            "idempotency_key": "r-abc:1f2e",
            "request_id": "r-abc",
            "attempt": 1,
            "action": {"action": "create_environment", "service": "order-service",
                       "environment": "staging", "resources": ["postgres"]},
            "requested_by": "alice",
            "approved_by": "dave",
            "expires_at": null,
            "callback_url": "https://paver.example.internal/hooks/orchestrator/j-test"
        })
    );
    assert_eq!(state.lock().unwrap().bad_signatures, 0);
}

#[tokio::test]
async fn polls_the_status_url_and_reports_progress() {
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Poll,
        polls: 3,
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let d = driver(&server, None);
    let (r, progress) = run(&d, &create_job()).await;
    r.unwrap();
    assert_eq!(
        progress,
        [
            "queued",
            "provisioning step 1",
            "provisioning step 2",
            "provisioning step 3"
        ]
    );
    // Polls are signed and carry the key too (the fake checks both).
    assert_eq!(server.count("GET", "/v1/jobs/1"), 4);
    assert_eq!(state.lock().unwrap().bad_signatures, 0);
}

#[tokio::test]
async fn refusals_and_failures_are_permanent_with_the_orchestrators_message() {
    let state = Arc::new(Mutex::new(Orch {
        refuse: Some("environment quota exceeded for team-commerce".into()),
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let d = driver(&server, None);
    let (r, _) = run(&d, &create_job()).await;
    assert_eq!(
        r.unwrap_err(),
        DriverError::Permanent(
            "the orchestrator answered 422 Unprocessable Entity: environment quota exceeded for team-commerce".into()
        )
    );
    {
        let mut o = state.lock().unwrap();
        o.refuse = None;
        o.mode = Mode::Poll;
        o.fail_with = Some("terraform apply failed: bucket name taken".into());
    }
    let (r, _) = run(
        &d,
        &Job {
            idempotency_key: "other".into(),
            ..create_job()
        },
    )
    .await;
    assert_eq!(
        r.unwrap_err(),
        DriverError::Permanent(
            "the orchestrator failed: terraform apply failed: bucket name taken".into()
        )
    );
}

fn settings() -> EngineSettings {
    EngineSettings {
        attempts: 4,
        executor: ExecutorSettings {
            lease: Duration::from_millis(1500),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            poll: Duration::from_millis(100),
            ..ExecutorSettings::default()
        },
        ..EngineSettings::default()
    }
}

fn routed(d: OrchestratorDriver) -> Arc<dyn Driver> {
    let config = DriversConfig {
        create_environment: "orchestrator".into(),
        restart: "orchestrator".into(),
        ..DriversConfig::default()
    };
    let drivers = BTreeMap::from([
        ("orchestrator".to_owned(), Arc::new(d) as Arc<dyn Driver>),
        (
            "gitops".to_owned(),
            Arc::new(support::FakeDriver::default()) as Arc<dyn Driver>,
        ),
    ]);
    Arc::new(Router::new(&config, &drivers).unwrap())
}

/// Paver's callback endpoint on a loopback port, as `paver serve` mounts it.
async fn paver_hooks(db: &Db) -> String {
    let router = paver::drivers::http::callback_router(
        db.clone(),
        &OrchestratorConfig {
            signing_secret: Some(SECRET.to_owned().into()),
            ..OrchestratorConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[tokio::test]
async fn the_orchestrator_calls_back_and_the_thread_gets_the_url() {
    let tdb = test_db().await;
    let hooks = paver_hooks(&tdb.db).await;
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Callback,
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let h = EngineHarness::new(
        tdb.db.clone(),
        routed(driver(&server, Some(hooks))),
        settings(),
    )
    .await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded, "{:?}", req.error);
    assert_eq!(
        req.result_url.as_deref(),
        Some("https://order-service.staging.orchestrated.example.internal")
    );
    assert!(h
        .thread_texts()
        .iter()
        .any(|t| t.contains("orchestrated.example.internal") && t.contains("Dashboard")));
    assert!(
        h.statuses(&id)
            .await
            .iter()
            .any(|s| s == "Running: provisioning postgres"),
        "{:?}",
        h.statuses(&id).await
    );
    let jobs = tdb.db.jobs().for_request(&id).await.unwrap();
    assert!(jobs[0].callback.as_deref().unwrap().contains("succeeded"));
    let sent = &server.all()[0];
    let cb = sent.body.as_ref().unwrap()["callback_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cb.ends_with(&format!("/hooks/orchestrator/{}", jobs[0].id)),
        "{cb}"
    );
    assert_eq!(sent.body.as_ref().unwrap()["job_id"], jobs[0].id.as_str());
}

#[tokio::test]
async fn the_callback_endpoint_checks_signatures_and_jobs() {
    let tdb = test_db().await;
    let hooks = paver_hooks(&tdb.db).await;
    let h = EngineHarness::new(
        tdb.db.clone(),
        Arc::new(support::FakeDriver::default()),
        settings(),
    )
    .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    let req = tdb.db.requests().get(&id).await.unwrap();
    let job = tdb.db.jobs().enqueue(&id, &req.action_hash).await.unwrap();
    let client = reqwest::Client::new();
    let post = |path: String, body: String, sig: Option<String>| {
        let client = client.clone();
        async move {
            let mut rb = client.post(path).body(body);
            if let Some(s) = sig {
                rb = rb.header("X-Paver-Signature", s);
            }
            rb.send().await.unwrap().status().as_u16()
        }
    };
    let now = chrono::Utc::now().timestamp();
    let doc = json!({"status": "running", "message": "half way"}).to_string();
    let url = format!("{hooks}/hooks/orchestrator/{}", job.id);
    assert_eq!(post(url.clone(), doc.clone(), None).await, 401);
    assert_eq!(
        post(
            url.clone(),
            doc.clone(),
            Some(sign("wrong", now, doc.as_bytes()))
        )
        .await,
        401
    );
    assert_eq!(
        post(
            url.clone(),
            doc.clone(),
            Some(sign(SECRET, now - 3600, doc.as_bytes()))
        )
        .await,
        401
    );
    assert_eq!(
        post(
            url.clone(),
            "{not json".into(),
            Some(sign(SECRET, now, b"{not json"))
        )
        .await,
        400
    );
    assert_eq!(
        post(
            format!("{hooks}/hooks/orchestrator/j-nope"),
            doc.clone(),
            Some(sign(SECRET, now, doc.as_bytes()))
        )
        .await,
        404
    );
    assert_eq!(
        post(
            url.clone(),
            doc.clone(),
            Some(sign(SECRET, now, doc.as_bytes()))
        )
        .await,
        202
    );
    assert_eq!(
        tdb.db.jobs().callback(&job.id).await.unwrap().as_deref(),
        Some(r#"{"status":"running","message":"half way","retryable":false}"#)
    );
}

#[tokio::test]
async fn a_transient_failure_after_the_work_was_accepted_does_not_duplicate_it() {
    let tdb = test_db().await;
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Poll,
        polls: 1,
        fail_after_create: vec![504],
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let h = EngineHarness::new(tdb.db.clone(), routed(driver(&server, None)), settings()).await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded, "{:?}", req.error);
    let posts: Vec<Recorded> = server
        .all()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "the 504 was retried");
    assert_eq!(
        posts[0].header("idempotency-key"),
        posts[1].header("idempotency-key")
    );
    assert_eq!(posts[1].body.as_ref().unwrap()["attempt"], 2);
    assert_eq!(
        state.lock().unwrap().jobs.len(),
        1,
        "one environment, not two"
    );
    assert!(h
        .statuses(&id)
        .await
        .iter()
        .any(|s| s.contains("504 Gateway Timeout") && s.contains("retrying in")));
}

#[tokio::test]
async fn a_permanent_failure_is_posted_with_a_retry_button() {
    let tdb = test_db().await;
    let state = Arc::new(Mutex::new(Orch {
        refuse: Some("environment quota exceeded for team-commerce".into()),
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let h = EngineHarness::new(tdb.db.clone(), routed(driver(&server, None)), settings()).await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Failed);
    assert!(req.error.unwrap().contains("quota exceeded"));
    assert!(h
        .thread_texts()
        .iter()
        .any(|t| t.contains("quota exceeded") && t.contains("Retry")));
    assert_eq!(server.count("POST", "/v1/actions"), 1, "not retried");
    assert_eq!(h.latest_card(&id).buttons[0].label, "Retry");
    // The quota was raised; Retry runs it again.
    state.lock().unwrap().refuse = None;
    h.press("alice", &id, "Retry").await;
    assert_eq!(
        tdb.db.requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
}

/// The worker dies while the orchestrator works; another process resumes
/// the job after the lease, polls the same status URL, and never re-submits.
#[tokio::test]
async fn a_crash_mid_job_resumes_once_without_resubmitting() {
    let tdb = test_db().await;
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Poll,
        hold: true,
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let a = EngineHarness::new(tdb.db.clone(), routed(driver(&server, None)), settings()).await;
    let id = a
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    a.press_now("alice", &id, "Create").await;
    for _ in 0..400 {
        if server.count("GET", "/v1/jobs/") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(server.count("POST", "/v1/actions"), 1);
    a.engine.executor().stop();

    let b = EngineHarness::new(tdb.db.clone(), routed(driver(&server, None)), settings()).await;
    b.engine.recover().await.unwrap();
    // Let B take over (after the lease), then let the orchestrator finish.
    for _ in 0..400 {
        let j = tdb.db.jobs().live_for(&id).await.unwrap().unwrap();
        if j.owner.as_deref() == Some(b.engine.executor().owner()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    state.lock().unwrap().hold = false;
    b.idle().await;
    let req = tdb.db.requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded, "{:?}", req.error);
    assert_eq!(
        server.count("POST", "/v1/actions"),
        1,
        "resumed without re-submitting"
    );
    assert_eq!(state.lock().unwrap().jobs.len(), 1);
    let jobs = tdb.db.jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 2, "claimed once more, after the crash");
}
