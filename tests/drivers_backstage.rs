//! The Backstage scaffolder driver against a fake Backstage on 127.0.0.1
//! that speaks the scaffolder's wire format (tasks, task events, the
//! server-sent event stream), and a contract check of every request Paver
//! sent against ../shared/corpus/backstage/scaffolder-openapi.json.

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use paver::domain::RequestState;
use paver::domain::{Action, Environment, ResourceKind, ServiceName, TeamName, TemplateName};
use paver::drivers::backstage::{BackstageConfig, BackstageDriver};
use paver::drivers::router::{DriversConfig, Router};
use paver::drivers::{Driver, DriverError, DriverKind, Job, JobState, Outcome, Recovery};
use paver::engine::EngineSettings;
use paver::requests::ExecutorSettings;
use support::fake::{json as reply, serve, FakeServer};
use support::openapi::{assert_conform, Spec};
use support::paver::TestPaver;

const SPEC: &str = "../shared/corpus/backstage/scaffolder-openapi.json";
const TOKEN: &str = "backstage-test-token";

/// How the fake behaves.
#[derive(Clone, Default)]
struct Script {
    /// Answer the next POSTs with these statuses first.
    post_failures: Vec<u16>,
    /// Answer the next GET …/events with these statuses first.
    events_failures: Vec<u16>,
    /// No event stream (404), as an old or proxied Backstage.
    no_eventstream: bool,
    /// Time between events.
    step: Duration,
    /// End in failure with this message.
    fail_with: Option<String>,
    /// Leave `status` out of the completion event (as Backstage does).
    bare_completion: bool,
}

struct Task {
    created: Instant,
    events: Vec<Value>,
}

#[derive(Clone, Default)]
struct State {
    script: Arc<Mutex<Script>>,
    tasks: Arc<Mutex<BTreeMap<String, Task>>>,
}

impl State {
    fn visible(&self, id: &str) -> Option<(Vec<Value>, bool)> {
        let tasks = self.tasks.lock().unwrap();
        let t = tasks.get(id)?;
        let step = self.script.lock().unwrap().step;
        let n = if step.is_zero() {
            t.events.len()
        } else {
            ((t.created.elapsed().as_millis() / step.as_millis()) as usize + 1).min(t.events.len())
        };
        let evs = t.events[..n].to_vec();
        let done = n == t.events.len();
        Some((evs, done))
    }

    fn status(&self, id: &str) -> Option<&'static str> {
        let (_, done) = self.visible(id)?;
        let failed = self.script.lock().unwrap().fail_with.is_some();
        Some(match (done, failed) {
            (false, _) => "processing",
            (true, false) => "completed",
            (true, true) => "failed",
        })
    }
}

fn event(id: i64, task: &str, kind: &str, body: Value) -> Value {
    json!({"id": id, "taskId": task, "type": kind, "body": body,
           "createdAt": "2026-11-21T10:00:00.000Z", "isTaskRecoverable": false})
}

async fn fake_backstage(script: Script) -> (FakeServer, State) {
    let state = State {
        script: Arc::new(Mutex::new(script)),
        ..State::default()
    };
    let st = state.clone();
    let server = serve(move |r| {
        let st = st.clone();
        async move {
            if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return reply(401, json!({"error": {"name": "AuthenticationError", "message": "Missing credentials"}}));
            }
            let path = r.path.strip_prefix("/api/scaffolder").unwrap_or("");
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            match (r.method.as_str(), segs.as_slice()) {
                ("POST", ["v2", "tasks"]) => {
                    let fail = {
                        let mut s = st.script.lock().unwrap();
                        (!s.post_failures.is_empty()).then(|| s.post_failures.remove(0))
                    };
                    if let Some(code) = fail {
                        return reply(code, json!({"error": {"name": "ServiceUnavailable", "message": "scaffolder is restarting"}}));
                    }
                    let body = r.body.clone().unwrap_or(Value::Null);
                    if body["values"]["name"].as_str().is_some_and(|n| n.contains("bad")) {
                        return reply(400, json!({"errors": [{"path": ["name"], "property": "instance.name",
                            "message": "does not match pattern \"^[a-z0-9-]+$\"", "schema": {}, "instance": "bad", "name": "pattern", "argument": "^[a-z0-9-]+$", "stack": ""}]}));
                    }
                    let id = format!("task-{}", st.tasks.lock().unwrap().len() + 1);
                    let s = st.script.lock().unwrap().clone();
                    let name = body["values"]["name"].as_str().unwrap_or("svc").to_owned();
                    let mut events = vec![
                        event(1, &id, "log", json!({"message": "Beginning step Fetch skeleton", "stepId": "fetch", "status": "processing"})),
                        event(2, &id, "log", json!({"message": "Publishing to github.com/example", "stepId": "publish", "status": "processing"})),
                        event(3, &id, "log", json!({"message": "Registering in the catalog", "stepId": "register", "status": "processing"})),
                    ];
                    let completion = match &s.fail_with {
                        Some(m) => json!({"message": "Run completed with status: failed", "error": {"name": "Error", "message": m}}),
                        None => json!({"message": "Run completed with status: completed", "output": {
                            "links": [
                                {"title": "Repository", "url": format!("https://github.com/example/{name}")},
                                {"title": "Open in catalog", "icon": "catalog", "entityRef": format!("component:default/{name}")}
                            ],
                            "remoteUrl": format!("https://github.com/example/{name}"),
                            "entityRef": format!("component:default/{name}"),
                            "url": format!("https://{name}.preview.example.internal")
                        }}),
                    };
                    let mut completion = completion;
                    if !s.bare_completion {
                        completion["status"] = json!(if s.fail_with.is_some() { "failed" } else { "completed" });
                    }
                    events.push(event(4, &id, "completion", completion));
                    st.tasks.lock().unwrap().insert(id.clone(), Task { created: Instant::now(), events });
                    reply(201, json!({"id": id}))
                }
                ("GET", ["v2", "tasks", id]) => match st.status(id) {
                    Some(status) => reply(200, json!({"id": id, "spec": {"templateInfo": {}}, "status": status,
                        "createdAt": "2026-11-21T10:00:00.000Z", "lastHeartbeatAt": "2026-11-21T10:00:01.000Z"})),
                    None => reply(404, json!({"error": {"name": "NotFoundError", "message": format!("no task {id}")}})),
                },
                ("GET", ["v2", "tasks", id, "events"]) => {
                    let fail = {
                        let mut s = st.script.lock().unwrap();
                        (!s.events_failures.is_empty()).then(|| s.events_failures.remove(0))
                    };
                    if let Some(code) = fail {
                        return reply(code, json!({"error": {"name": "Error", "message": "database is busy"}}));
                    }
                    let after: i64 = r.query("after").and_then(|a| a.parse().ok()).unwrap_or(0);
                    let (evs, _) = st.visible(id).unwrap_or_default();
                    reply(200, Value::Array(evs.into_iter().filter(|e| e["id"].as_i64().unwrap() > after).collect()))
                }
                ("GET", ["v2", "tasks", id, "eventstream"]) => {
                    if st.script.lock().unwrap().no_eventstream {
                        return reply(404, json!({"error": {"name": "NotFoundError", "message": "Not Found"}}));
                    }
                    let after: i64 = r.query("after").and_then(|a| a.parse().ok()).unwrap_or(0);
                    let id = id.to_string();
                    let st2 = st.clone();
                    // Sends each event as it becomes visible, then closes.
                    let stream = futures_util::stream::unfold(after, move |sent| {
                        let st = st2.clone();
                        let id = id.clone();
                        async move {
                            loop {
                                let (evs, _) = st.visible(&id)?;
                                if let Some(e) = evs.iter().find(|e| e["id"].as_i64().unwrap() > sent) {
                                    let n = e["id"].as_i64().unwrap();
                                    let chunk = format!("event: {}\ndata: {}\n\n", e["type"].as_str().unwrap(), e);
                                    return Some((Ok::<_, Infallible>(Bytes::from(chunk)), n));
                                }
                                if evs.last().is_some_and(|e| e["type"] == "completion" && e["id"].as_i64().unwrap() <= sent) {
                                    return None;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    });
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .header("cache-control", "no-cache")
                        .body(Body::from_stream(stream))
                        .unwrap()
                        .into_response()
                }
                _ => reply(404, json!({"error": {"name": "NotFoundError", "message": "Not Found"}})),
            }
        }
    })
    .await;
    (server, state)
}

fn driver(server: &FakeServer, config: BackstageConfig) -> BackstageDriver {
    BackstageDriver::new(
        BackstageConfig {
            poll_interval_ms: 100,
            ..config
        },
        url::Url::parse(&server.url).unwrap(),
        Some(TOKEN.to_owned().into()),
    )
    .unwrap()
}

fn scaffold(name: &str) -> Job {
    Job::new(
        "r-test1",
        "r-test1:abc",
        Action::ScaffoldService {
            name: ServiceName::parse(name).unwrap(),
            template: TemplateName::parse("go-service").unwrap(),
            owner: Some(TeamName::parse("team-commerce").unwrap()),
        },
        "alice",
    )
}

async fn run(d: &BackstageDriver, job: &Job) -> (Result<Outcome, DriverError>, Vec<String>) {
    let seen = Mutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_owned());
    let r = d.execute(job, &progress).await;
    (r, seen.into_inner().unwrap())
}

fn check_contract(server: &FakeServer) -> Vec<String> {
    let spec = Spec::load(SPEC, "/api/scaffolder");
    // The event stream is served by the scaffolder's router but is not in
    // its OpenAPI description; it is checked by path here.
    let (stream, rest): (Vec<_>, Vec<_>) = server
        .all()
        .into_iter()
        .partition(|r| r.path.ends_with("/eventstream"));
    for r in &stream {
        assert_eq!(r.method, "GET");
        assert!(
            r.path.starts_with("/api/scaffolder/v2/tasks/"),
            "{}",
            r.path
        );
        assert_eq!(r.header("accept"), Some("text/event-stream"));
    }
    assert_conform(&spec, &rest)
}

#[tokio::test]
async fn scaffolds_a_service_following_the_event_stream() {
    let (server, _) = fake_backstage(Script {
        step: Duration::from_millis(50),
        ..Script::default()
    })
    .await;
    let d = driver(&server, BackstageConfig::default());
    let (r, progress) = run(&d, &scaffold("pricing-service")).await;
    let out = r.unwrap();
    assert_eq!(
        out.summary,
        "Scaffolded pricing-service from template go-service (Backstage task task-1)"
    );
    assert!(out.links.contains(&(
        "Repository".into(),
        "https://github.com/example/pricing-service".into()
    )));
    assert!(out.links.contains(&(
        "Open in catalog".into(),
        format!("{}/catalog/default/component/pricing-service", server.url)
    )));
    assert!(out
        .links
        .iter()
        .any(|(l, u)| l == "Backstage task" && u.ends_with("/create/tasks/task-1")));
    assert_eq!(
        progress,
        [
            "Backstage task task-1 started",
            "Beginning step Fetch skeleton",
            "Publishing to github.com/example",
            "Registering in the catalog",
        ]
    );
    let post = &server.all()[0];
    assert_eq!(post.path, "/api/scaffolder/v2/tasks");
    assert_eq!(
        post.body.as_ref().unwrap(),
        &json!({"templateRef": "template:default/go-service",
                "values": {"name": "pricing-service", "owner": "group:default/team-commerce"}})
    );
    assert!(server.count("GET", "/eventstream") >= 1);
    assert!(
        !server.all().iter().any(|r| r.path.ends_with("/events")),
        "the stream was enough"
    );
    assert_eq!(check_contract(&server)[0], "Scaffold");
}

#[tokio::test]
async fn a_slow_task_is_polled_and_reports_progress() {
    let (server, _) = fake_backstage(Script {
        step: Duration::from_millis(300),
        no_eventstream: true,
        bare_completion: true,
        ..Script::default()
    })
    .await;
    let d = driver(&server, BackstageConfig::default());
    let (r, progress) = run(&d, &scaffold("pricing-service")).await;
    r.unwrap();
    assert_eq!(progress.len(), 4, "{progress:?}");
    assert_eq!(progress[3], "Registering in the catalog");
    // Polled with a moving `after`, never re-reading old events.
    let afters: Vec<i64> = server
        .all()
        .iter()
        .filter(|r| r.path.ends_with("/events"))
        .filter_map(|r| r.query("after").map(|a| a.parse().unwrap()))
        .collect();
    assert!(afters.len() >= 2, "{afters:?}");
    assert!(afters.windows(2).all(|w| w[0] <= w[1]));
    let ops = check_contract(&server);
    assert!(ops.contains(&"StreamLogsPolling".to_owned()));
    assert!(ops.contains(&"GetTask".to_owned()));
}

#[tokio::test]
async fn a_failed_task_is_a_permanent_failure_with_backstages_message() {
    let (server, _) = fake_backstage(Script {
        fail_with: Some("Repository example/pricing-service already exists".into()),
        bare_completion: true,
        ..Script::default()
    })
    .await;
    let d = driver(&server, BackstageConfig::default());
    let (r, _) = run(&d, &scaffold("pricing-service")).await;
    assert_eq!(
        {
            let e = r.unwrap_err();
            (e.recovery(), e.to_string())
        },
        (
            Recovery::RetryButton,
            "the Backstage task task-1 failed: Repository example/pricing-service already exists"
                .to_owned()
        )
    );
    check_contract(&server);
}

#[tokio::test]
async fn validation_errors_and_bad_tokens_are_permanent() {
    let (server, _) = fake_backstage(Script::default()).await;
    let d = driver(&server, BackstageConfig::default());
    let (r, _) = run(&d, &scaffold("bad-name")).await;
    match r.map_err(|e| (e.recovery(), e.to_string())).unwrap_err() {
        (Recovery::RetryButton, m) => {
            assert!(
                m.contains("400") && m.contains("instance.name does not match pattern"),
                "{m}"
            )
        }
        e => panic!("{e:?}"),
    }
    let anonymous = BackstageDriver::new(
        BackstageConfig::default(),
        url::Url::parse(&server.url).unwrap(),
        None,
    )
    .unwrap();
    let (r, _) = run(&anonymous, &scaffold("pricing-service")).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::RetryButton, m)) if m.contains("401") && m.contains("Missing credentials"))
    );
}

#[tokio::test]
async fn transient_failures_never_start_a_second_task() {
    let (server, state) = fake_backstage(Script {
        post_failures: vec![503],
        events_failures: vec![502],
        no_eventstream: true,
        step: Duration::from_millis(50),
        ..Script::default()
    })
    .await;
    let d = driver(&server, BackstageConfig::default());
    // One job, its state kept across attempts as the executor keeps it.
    let (state_handle, memory) = JobState::memory();
    let job = Job {
        state: state_handle,
        ..scaffold("pricing-service")
    };
    let (r1, _) = run(&d, &job).await;
    assert!(
        matches!(r1.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.contains("503"))
    );
    assert_eq!(state.tasks.lock().unwrap().len(), 0);
    let (r2, _) = run(&d, &job).await;
    assert!(
        matches!(r2.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.contains("502")),
        "the task was started, then polling failed"
    );
    assert_eq!(state.tasks.lock().unwrap().len(), 1);
    assert!(memory
        .checkpoint
        .lock()
        .unwrap()
        .as_deref()
        .unwrap()
        .contains("task-1"));
    let retry = Job {
        attempt: 3,
        ..job.clone()
    };
    let (r3, progress) = run(&d, &retry).await;
    r3.unwrap();
    assert_eq!(progress[0], "following Backstage task task-1");
    assert_eq!(state.tasks.lock().unwrap().len(), 1, "no second task");
    assert_eq!(server.count("POST", "/v2/tasks"), 2);
    check_contract(&server);
}

#[tokio::test]
async fn environments_run_the_configured_template() {
    let (server, _) = fake_backstage(Script::default()).await;
    let d = driver(
        &server,
        BackstageConfig {
            environment_template: Some("template:default/create-environment".into()),
            ..BackstageConfig::default()
        },
    );
    let job = Job {
        expires_at: Some(1_800_000_000),
        ..Job::new(
            "r-env",
            "r-env:1",
            Action::CreateEnvironment {
                service: ServiceName::parse("order-service").unwrap(),
                environment: Environment::Preview,
                resources: vec![ResourceKind::Postgres, ResourceKind::Redis],
            },
            "alice",
        )
    };
    let (r, _) = run(&d, &job).await;
    let out = r.unwrap();
    assert_eq!(
        out.url.as_deref(),
        Some("https://svc.preview.example.internal")
    );
    assert_eq!(
        server.all()[0].body.as_ref().unwrap(),
        &json!({"templateRef": "template:default/create-environment",
                "values": {"environment": "preview", "resources": ["postgres", "redis"], "service": "order-service",
                           // The sizes the card showed, as the GitOps driver writes them.
                           "sizes": {"postgres": {"version": "16", "cpu": "2", "memory": "4Gi", "backups": "daily"},
                                     "redis": {"version": "7", "memory": "1Gi"}}}})
    );
    check_contract(&server);
    // Without a template it is a configuration error, not a retry.
    let plain = driver(&server, BackstageConfig::default());
    let fresh = Job {
        state: JobState::default(),
        ..job
    };
    let r = run(&plain, &fresh).await.0;
    assert!(
        matches!(
            r.as_ref().map_err(|e| (e.recovery(), e.to_string())),
            Err((Recovery::RetryButton, _))
        ),
        "{r:?}"
    );
}

/// End to end: chat words → card → Create → the scaffolder → links in the thread.
#[tokio::test]
async fn a_scaffold_request_posts_the_repository_and_catalog_links() {
    let (server, _) = fake_backstage(Script {
        step: Duration::from_millis(30),
        ..Script::default()
    })
    .await;
    let backstage: Arc<dyn Driver> = Arc::new(driver(&server, BackstageConfig::default()));
    let gitops: Arc<dyn Driver> = Arc::new(support::FakeDriver::default());
    let config = DriversConfig {
        scaffold_service: DriverKind::Backstage,
        ..DriversConfig::default()
    };
    let drivers = BTreeMap::from([
        (DriverKind::Backstage, backstage),
        (DriverKind::Gitops, gitops),
    ]);
    let router = Router::new(&config, &drivers).unwrap();
    let settings = EngineSettings {
        executor: ExecutorSettings {
            poll: Duration::from_millis(100),
            ..ExecutorSettings::default()
        },
        ..EngineSettings::default()
    };
    let h = TestPaver::builder()
        .driver(Arc::new(router))
        .settings(settings)
        .start()
        .await;
    let id = h
        .propose(
            "alice",
            "scaffold a go service named pricing-service for team-commerce",
        )
        .await;
    h.press("alice", &id, "Scaffold").await;
    let req = h.db().requests().get(&id).await.unwrap();
    assert_eq!(req.state, RequestState::Succeeded, "{:?}", req.error);
    let thread = h.thread_texts().join("\n");
    assert!(
        thread.contains("https://github.com/example/pricing-service"),
        "{thread}"
    );
    assert!(
        thread.contains("/catalog/default/component/pricing-service"),
        "{thread}"
    );
    // The scaffolder's steps reach the card as progress. Which ones show
    // depends on timing: an update still waiting to be sent is replaced by
    // the next (coalescing, by design), so only some step is asserted.
    let statuses = h.statuses(&id).await;
    let steps = [
        "Running: Beginning step Fetch skeleton",
        "Running: Publishing to github.com/example",
        "Running: Registering in the catalog",
    ];
    assert!(
        statuses.iter().any(|s| steps.contains(&s.as_str())),
        "{statuses:?}"
    );
}

/// A task id from Backstage goes into the path as one encoded segment:
/// `/`, `..`, `?` and `%` in it cannot reach another endpoint.
#[tokio::test]
async fn task_ids_are_percent_encoded_in_paths() {
    let server = serve(|r| async move {
        if r.method == "POST" {
            return reply(201, json!({"id": "t/../../admin?x=1%2F#frag"}));
        }
        reply(
            404,
            json!({"error": {"name": "NotFoundError", "message": "no such task"}}),
        )
    })
    .await;
    let d = driver(&server, BackstageConfig::default());
    let (r, progress) = run(&d, &scaffold("pricing-service")).await;
    assert!(
        matches!(
            r.as_ref().map_err(|e| (e.recovery(), e.to_string())),
            Err((Recovery::RetryButton, _))
        ),
        "{r:?}"
    );
    assert_eq!(
        progress[0],
        "Backstage task t/../../admin?x=1%2F#frag started"
    );
    let paths: Vec<String> = server
        .all()
        .iter()
        .skip(1)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths[0],
        "/api/scaffolder/v2/tasks/t%2F..%2F..%2Fadmin%3Fx=1%252F%23frag/eventstream"
    );
    assert!(
        paths.iter().all(
            |p| p.starts_with("/api/scaffolder/v2/tasks/t%2F..%2F..%2Fadmin%3Fx=1%252F%23frag")
        ),
        "{paths:?}"
    );
    // A task id that cannot be a path segment at all is refused.
    let server = serve(|_| async move { reply(201, json!({"id": ".."})) }).await;
    let d = driver(&server, BackstageConfig::default());
    let (r, _) = run(&d, &scaffold("pricing-service")).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::RetryButton, m)) if m.contains("unusable task id")),
        "{r:?}"
    );
    assert_eq!(server.all().len(), 1);
}

/// A huge answer is refused, a slow Backstage times out, and its error
/// text reaches chat trimmed and without markup.
#[tokio::test]
async fn huge_slow_and_marked_up_answers_are_clean_errors() {
    let server = serve(|r| async move {
        let name = r
            .body
            .as_ref()
            .and_then(|b| b["values"]["name"].as_str().map(str::to_owned));
        match name.as_deref() {
            Some("huge-service") => reply(201, json!({"id": "x".repeat(5 * 1024 * 1024)})),
            Some("slow-service") => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                reply(201, json!({"id": "t1"}))
            }
            _ => reply(
                400,
                json!({"error": {"name": "InputError", "message": "<!channel> `x` & @here\nbad"}}),
            ),
        }
    })
    .await;
    // Building 5 MiB takes the fake a while on a busy machine: not a timeout.
    let d = driver(&server, BackstageConfig::default());
    let (r, _) = run(&d, &scaffold("huge-service")).await;
    assert_eq!(
        {
            let e = r.unwrap_err();
            (e.recovery(), e.to_string())
        },
        (
            Recovery::RetryButton,
            "Backstage answered with a body larger than 1048576 bytes; refused".to_owned()
        )
    );
    let d = driver(
        &server,
        BackstageConfig {
            timeout_secs: 1,
            ..BackstageConfig::default()
        },
    );
    let (r, _) = run(&d, &scaffold("slow-service")).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.contains("timed out")),
        "{r:?}"
    );
    let (r, _) = run(&d, &scaffold("other-service")).await;
    let m = r.unwrap_err().to_string();
    assert!(
        !m.contains('<')
            && !m.contains('`')
            && !m.contains('&')
            && !m.contains("@here")
            && !m.contains('\n'),
        "{m}"
    );
    assert!(m.contains("‹!channel›"), "{m}");
}
