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

use paver::domain::RequestState;
use paver::domain::{Action, Environment, ResourceKind, ServiceName};
use paver::drivers::http::{sign_callback, verify, OrchestratorConfig, OrchestratorDriver, SCHEMA};
use paver::drivers::router::{DriversConfig, Router};
use paver::drivers::{Driver, DriverError, DriverKind, Job, Outcome, Recovery};
use paver::engine::EngineSettings;
use paver::requests::ExecutorSettings;
use paver::storage::Db;
use support::fake::{json as reply, serve, FakeServer};
use support::openapi::Recorded;
use support::paver::TestPaver;
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
                                    let now = chrono::Utc::now().timestamp();
                                    let path = url::Url::parse(&url).unwrap().path().to_owned();
                                    let resp = client
                                        .post(&url)
                                        .header("content-type", "application/json")
                                        .header("X-Paver-Timestamp", now.to_string())
                                        .header("X-Paver-Signature", sign_callback(SECRET, now, "POST", &path, raw.as_bytes()))
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
            // The golden path's size of each resource the card showed.
            "sizes": {"postgres": {"version": "16", "cpu": "2", "memory": "4Gi", "backups": "daily"}},
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
        { let e = r.unwrap_err(); (e.recovery(), e.to_string()) },
        (Recovery::RetryButton, "the orchestrator answered 422 Unprocessable Entity: environment quota exceeded for team-commerce".to_owned())
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
        {
            let e = r.unwrap_err();
            (e.recovery(), e.to_string())
        },
        (
            Recovery::RetryButton,
            "the orchestrator failed: terraform apply failed: bucket name taken".to_owned()
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
        create_environment: DriverKind::Orchestrator,
        restart: DriverKind::Orchestrator,
        ..DriversConfig::default()
    };
    let drivers = BTreeMap::from([
        (DriverKind::Orchestrator, Arc::new(d) as Arc<dyn Driver>),
        (
            DriverKind::Gitops,
            Arc::new(support::FakeDriver::default()) as Arc<dyn Driver>,
        ),
    ]);
    Arc::new(Router::new(&config, &drivers).unwrap())
}

/// Paver's callback endpoint on a loopback port, as `paver serve` mounts it.
async fn paver_hooks(db: &Db) -> String {
    paver_hooks_with(
        db,
        OrchestratorConfig {
            signing_secret: Some(SECRET.to_owned().into()),
            ..OrchestratorConfig::default()
        },
    )
    .await
}

async fn paver_hooks_with(db: &Db, config: OrchestratorConfig) -> String {
    let router = paver::drivers::http::callback_router(db.clone(), &config);
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
    let h = TestPaver::builder()
        .test_db(tdb)
        .driver(routed(driver(&server, Some(hooks))))
        .settings(settings())
        .start()
        .await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = h.db().requests().get(&id).await.unwrap();
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
    let jobs = h.db().jobs().for_request(&id).await.unwrap();
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
    let h = TestPaver::builder()
        .test_db(tdb)
        .settings(settings())
        .start()
        .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    let req = h.db().requests().get(&id).await.unwrap();
    let job = h.db().jobs().enqueue(&id, &req.action_hash).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let doc = json!({"status": "running", "message": "half way"}).to_string();
    let path = format!("/hooks/orchestrator/{}", job.id);
    let url = format!("{hooks}{path}");
    let signed = |secret: &str, t: i64, method: &str, p: &str, body: &str| {
        Some((t, sign_callback(secret, t, method, p, body.as_bytes())))
    };
    assert_eq!(post_callback(&url, &doc, None).await, 401);
    assert_eq!(
        post_callback(&url, &doc, signed("wrong", now, "POST", &path, &doc)).await,
        401
    );
    assert_eq!(
        post_callback(&url, &doc, signed(SECRET, now - 3600, "POST", &path, &doc)).await,
        401
    );
    // The old scheme (timestamp and body only) no longer passes.
    let old = paver::drivers::http::sign(SECRET, now, doc.as_bytes());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("X-Paver-Signature", old)
        .body(doc.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        post_callback(
            &url,
            "{not json",
            signed(SECRET, now, "POST", &path, "{not json")
        )
        .await,
        400
    );
    assert_eq!(
        post_callback(
            &format!("{hooks}/hooks/orchestrator/j-nope"),
            &doc,
            signed(SECRET, now, "POST", "/hooks/orchestrator/j-nope", &doc)
        )
        .await,
        404
    );
    assert_eq!(
        post_callback(&url, &doc, signed(SECRET, now, "POST", &path, &doc)).await,
        202
    );
    assert_eq!(
        h.db().jobs().callback(&job.id).await.unwrap().as_deref(),
        Some(r#"{"status":"running","message":"half way","retryable":false}"#)
    );
}

/// POSTs a callback with `signature` = (timestamp, X-Paver-Signature).
async fn post_callback(url: &str, body: &str, signature: Option<(i64, String)>) -> u16 {
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some((t, sig)) = signature {
        rb = rb
            .header("X-Paver-Timestamp", t.to_string())
            .header("X-Paver-Signature", sig);
    }
    rb.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_transient_failure_after_the_work_was_accepted_does_not_duplicate_it() {
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Poll,
        polls: 1,
        fail_after_create: vec![504],
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let h = TestPaver::builder()
        .driver(routed(driver(&server, None)))
        .settings(settings())
        .start()
        .await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = h.db().requests().get(&id).await.unwrap();
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
    let state = Arc::new(Mutex::new(Orch {
        refuse: Some("environment quota exceeded for team-commerce".into()),
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let h = TestPaver::builder()
        .driver(routed(driver(&server, None)))
        .settings(settings())
        .start()
        .await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    h.press("alice", &id, "Create").await;
    let req = h.db().requests().get(&id).await.unwrap();
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
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Succeeded
    );
}

/// The worker dies while the orchestrator works; another process resumes
/// the job after the lease, polls the same status URL, and never re-submits.
#[tokio::test]
async fn a_crash_mid_job_resumes_once_without_resubmitting() {
    let state = Arc::new(Mutex::new(Orch {
        mode: Mode::Poll,
        hold: true,
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let a = TestPaver::builder()
        .driver(routed(driver(&server, None)))
        .settings(settings())
        .start()
        .await;
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

    let b = TestPaver::builder()
        .replica_of(&a)
        .driver(routed(driver(&server, None)))
        .settings(settings())
        .start()
        .await;
    b.engine.recover().await.unwrap();
    // Let B take over (after the lease), then let the orchestrator finish.
    for _ in 0..400 {
        let j = a.db().jobs().live_for(&id).await.unwrap().unwrap();
        if j.owner.as_deref() == Some(b.engine.executor().owner()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    state.lock().unwrap().hold = false;
    b.idle().await;
    let req = a.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded, "{:?}", req.error);
    assert_eq!(
        server.count("POST", "/v1/actions"),
        1,
        "resumed without re-submitting"
    );
    assert_eq!(state.lock().unwrap().jobs.len(), 1);
    let jobs = a.db().jobs().for_request(&id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 2, "claimed once more, after the crash");
}

/// A Paver with jobs waiting for callbacks, one per service named.
async fn waiting_jobs(services: &[&str]) -> (TestPaver, Vec<String>) {
    let h = TestPaver::builder().settings(settings()).start().await;
    let mut out = Vec::new();
    for s in services {
        // Not waiting for idle: the jobs queued before wait forever.
        let id = h.propose_now("alice", &format!("restart {s} in dev")).await;
        let req = h.db().requests().get(&id).await.unwrap();
        let job = h.db().jobs().enqueue(&id, &req.action_hash).await.unwrap();
        out.push(job.id);
    }
    (h, out)
}

async fn waiting_job() -> (TestPaver, String) {
    let (h, mut jobs) = waiting_jobs(&["cart-service"]).await;
    (h, jobs.remove(0))
}

/// A callback accepted once is refused the second time, on this replica
/// and on another one sharing the database.
#[tokio::test]
async fn a_replayed_callback_is_refused_on_every_replica() {
    let (h, job) = waiting_job().await;
    let a = paver_hooks(h.db()).await;
    let b = paver_hooks(h.db()).await;
    let path = format!("/hooks/orchestrator/{job}");
    let doc = json!({"status": "running", "message": "step 1"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let sig = || {
        Some((
            now,
            sign_callback(SECRET, now, "POST", &path, doc.as_bytes()),
        ))
    };
    assert_eq!(post_callback(&format!("{a}{path}"), &doc, sig()).await, 202);
    assert_eq!(post_callback(&format!("{a}{path}"), &doc, sig()).await, 409);
    assert_eq!(post_callback(&format!("{b}{path}"), &doc, sig()).await, 409);
    // A new delivery (another timestamp) of the same document is fine.
    let later = Some((
        now + 1,
        sign_callback(SECRET, now + 1, "POST", &path, doc.as_bytes()),
    ));
    assert_eq!(post_callback(&format!("{b}{path}"), &doc, later).await, 202);
}

/// The signature binds the job (the path) and the method: a callback for
/// one job cannot be pointed at another.
#[tokio::test]
async fn a_callback_signed_for_another_job_or_method_is_refused() {
    let (h, jobs) = waiting_jobs(&["cart-service", "order-service"]).await;
    let (job, other) = (&jobs[0], &jobs[1]);
    let hooks = paver_hooks(h.db()).await;
    let doc = json!({"status": "succeeded", "summary": "done"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let for_other = sign_callback(
        SECRET,
        now,
        "POST",
        &format!("/hooks/orchestrator/{other}"),
        doc.as_bytes(),
    );
    let url = format!("{hooks}/hooks/orchestrator/{job}");
    assert_eq!(post_callback(&url, &doc, Some((now, for_other))).await, 401);
    let as_put = sign_callback(
        SECRET,
        now,
        "PUT",
        &format!("/hooks/orchestrator/{job}"),
        doc.as_bytes(),
    );
    assert_eq!(post_callback(&url, &doc, Some((now, as_put))).await, 401);
    // Signed with the timestamp of another header value.
    let right = sign_callback(
        SECRET,
        now,
        "POST",
        &format!("/hooks/orchestrator/{job}"),
        doc.as_bytes(),
    );
    assert_eq!(
        post_callback(&url, &doc, Some((now - 1, right.clone()))).await,
        401
    );
    assert_eq!(h.db().jobs().callback(job).await.unwrap(), None);
    assert_eq!(post_callback(&url, &doc, Some((now, right))).await, 202);
}

/// Callbacks may be verified with a key of their own; requests Paver sends
/// keep the shared one.
#[tokio::test]
async fn callbacks_use_the_inbound_key_when_one_is_set() {
    let (h, job) = waiting_job().await;
    let hooks = paver_hooks_with(
        h.db(),
        OrchestratorConfig {
            signing_secret: Some(SECRET.to_owned().into()),
            inbound_signing_secret: Some("inbound-only".to_owned().into()),
            callback_base_url: Some(
                url::Url::parse("https://paver.example.internal/paver/").unwrap(),
            ),
            ..OrchestratorConfig::default()
        },
    )
    .await;
    let path = format!("/hooks/orchestrator/{job}");
    let url = format!("{hooks}{path}");
    let doc = json!({"status": "running"}).to_string();
    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, p: &str| Some((now, sign_callback(key, now, "POST", p, doc.as_bytes())));
    assert_eq!(post_callback(&url, &doc, with(SECRET, &path)).await, 401);
    assert_eq!(
        post_callback(&url, &doc, with("inbound-only", &path)).await,
        202
    );
    // Behind a proxy that strips /paver, the full path of callback_url verifies.
    assert_eq!(
        post_callback(
            &url,
            &doc,
            Some((
                now + 1,
                sign_callback(
                    "inbound-only",
                    now + 1,
                    "POST",
                    &format!("/paver{path}"),
                    doc.as_bytes()
                )
            ))
        )
        .await,
        202
    );
}

/// A status URL (or Location) on another origin is never fetched.
#[tokio::test]
async fn a_status_url_on_another_origin_is_not_fetched() {
    let elsewhere = serve(|_| async { reply(200, json!({"status": "succeeded"})) }).await;
    for how in ["body", "location"] {
        let target = format!("{}/latest/meta-data/iam", elsewhere.url);
        let server = serve(move |_| {
            let target = target.clone();
            async move {
                if how == "body" {
                    reply(202, json!({"status": "accepted", "status_url": target}))
                } else {
                    use axum::response::IntoResponse;
                    (
                        axum::http::StatusCode::ACCEPTED,
                        [
                            ("location", target.as_str()),
                            ("content-type", "application/json"),
                        ],
                        r#"{"status": "accepted"}"#,
                    )
                        .into_response()
                }
            }
        })
        .await;
        let (r, _) = run(&driver(&server, None), &create_job()).await;
        let Err((Recovery::RetryButton, m)) = r.as_ref().map_err(|e| (e.recovery(), e.to_string()))
        else {
            panic!("{how}: {r:?}")
        };
        assert!(m.contains("status_url on another origin"), "{how}: {m}");
        assert_eq!(server.all().len(), 1, "{how}: only the POST");
    }
    assert!(elsewhere.all().is_empty(), "{:?}", elsewhere.all());
}

/// A redirect to another origin is not followed either (it would carry the
/// signed request there).
#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere = serve(|_| async { reply(200, json!({"status": "succeeded"})) }).await;
    let to = format!("{}/collect", elsewhere.url);
    let server = serve(move |_| {
        let to = to.clone();
        async move {
            use axum::response::IntoResponse;
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", to.as_str())],
                "",
            )
                .into_response()
        }
    })
    .await;
    let (r, _) = run(&driver(&server, None), &create_job()).await;
    assert!(r.is_err());
    assert!(elsewhere.all().is_empty(), "{:?}", elsewhere.all());
}

/// A 5 MiB answer (streamed, no Content-Length) is cut off at the cap;
/// a slow orchestrator times out.
#[tokio::test]
async fn huge_and_slow_answers_are_clean_errors() {
    let server = serve(|r| async move {
        use axum::response::IntoResponse;
        if r.header("idempotency-key") == Some("slow") {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return reply(200, json!({"status": "succeeded"}));
        }
        let chunks = futures_util::stream::iter((0..80).map(|_| {
            Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(vec![b' '; 64 * 1024]))
        }));
        (
            [("content-type", "application/json")],
            axum::body::Body::from_stream(chunks),
        )
            .into_response()
    })
    .await;
    let d = OrchestratorDriver::new(
        OrchestratorConfig {
            timeout_secs: 1,
            ..OrchestratorConfig::default()
        },
        url::Url::parse(&format!("{}/v1/actions", server.url)).unwrap(),
        SECRET.to_owned().into(),
    )
    .unwrap();
    // The huge answer is streamed: the cap stops reading it, whatever the
    // time limit.
    let big = driver(&server, None);
    let (r, _) = run(&big, &create_job()).await;
    assert_eq!(
        {
            let e = r.unwrap_err();
            (e.recovery(), e.to_string())
        },
        (
            Recovery::RetryButton,
            "the orchestrator answered with a body larger than 1048576 bytes; refused".to_owned()
        )
    );
    let started = std::time::Instant::now();
    let (r, _) = run(
        &d,
        &Job {
            idempotency_key: "slow".into(),
            ..create_job()
        },
    )
    .await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.starts_with("the orchestrator timed out")),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// The orchestrator's error text reaches chat as one short line, with no
/// markup or mentions passing through.
#[tokio::test]
async fn remote_error_text_is_trimmed_and_escaped() {
    let message = format!(
        "<!here> quota hit @everyone, see `kubectl` & <https://evil.example|this>\nsecond line {}",
        "padding ".repeat(100)
    );
    let state = Arc::new(Mutex::new(Orch {
        refuse: Some(message.clone()),
        ..Orch::default()
    }));
    let server = fake_orchestrator(state.clone()).await;
    let (r, _) = run(&driver(&server, None), &create_job()).await;
    let m = r.unwrap_err().to_string();
    for bad in ["<", ">", "&", "`", "\n", "@everyone"] {
        assert!(!m.contains(bad), "{bad:?} in {m}");
    }
    assert!(
        m.starts_with("the orchestrator answered 422 Unprocessable Entity: ‹!here› quota hit @"),
        "{m}"
    );
    assert!(m.chars().count() < 400, "{}", m.chars().count());
    // A failure reported in a status document is cleaned the same way.
    {
        let mut o = state.lock().unwrap();
        o.refuse = None;
        o.fail_with = Some(message);
    }
    let (r, _) = run(
        &driver(&server, None),
        &Job {
            idempotency_key: "k2".into(),
            ..create_job()
        },
    )
    .await;
    let m = r.unwrap_err().to_string();
    assert!(m.starts_with("the orchestrator failed: ‹!here›"), "{m}");
    assert!(!m.contains('<') && !m.contains("@everyone"), "{m}");
}
