//! The Argo CD driver against a fake Argo CD API server on 127.0.0.1
//! (applications with status, history, operations, resource actions,
//! sessions), and a contract check of every request Paver sent against
//! ../shared/corpus/argocd/swagger.json.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use paver::catalog::{Catalog, SharedCatalog};
use paver::domain::{Action, Environment, ResourceKind, ServiceName, Version};
use paver::drivers::argocd::{ArgoCdConfig, ArgoCdDriver};
use paver::drivers::router::{DriversConfig, Router};
use paver::drivers::{Driver, DriverError, DriverKind, Job, JobState, Outcome, Recovery};
use support::fake::{json as reply, serve, FakeServer};
use support::openapi::{assert_conform, Spec};
use support::{FakeDriver, SAMPLE_CATALOG};

const SPEC: &str = "../shared/corpus/argocd/swagger.json";
const TOKEN: &str = "argocd-api-token";

#[derive(Clone)]
struct App {
    revision: String,
    history: Vec<(i64, String)>,
    health: String,
    op: Option<Op>,
    started: Option<String>,
    phase: Option<String>,
    message: Option<String>,
    urls: Vec<String>,
    /// GETs before the external URL shows up.
    urls_after: usize,
    gets: usize,
    /// `metadata.labels`; by default the service and environment its
    /// name says (`order-service-staging`), as the platform team sets them.
    labels: Option<Value>,
}

#[derive(Clone)]
struct Op {
    revision: String,
    polls_left: usize,
    fail: Option<String>,
}

#[derive(Default)]
struct Argo {
    apps: BTreeMap<String, App>,
    sync_failures: Vec<u16>,
    fail_next_op: Option<String>,
    op_polls: usize,
    clock: u32,
    sessions: Vec<String>,
    logins: usize,
    /// Tokens that expire (answer 401) once.
    expire: Vec<String>,
    actions: Vec<Value>,
}

fn app(revision: &str, history: &[(i64, &str)]) -> App {
    App {
        revision: revision.into(),
        history: history.iter().map(|(i, r)| (*i, r.to_string())).collect(),
        health: "Healthy".into(),
        op: None,
        started: Some("2026-11-20T09:00:00Z".into()),
        phase: Some("Succeeded".into()),
        message: Some("successfully synced (all tasks run)".into()),
        urls: vec![],
        urls_after: 0,
        gets: 0,
        labels: None,
    }
}

fn render(name: &str, a: &App, service: &str) -> Value {
    let tag = a.revision.trim_start_matches('v');
    let env = name.rsplit_once('-').map(|(_, e)| e).unwrap_or("");
    let labels = a
        .labels
        .clone()
        .unwrap_or_else(|| json!({"paver.dev/service": service, "paver.dev/environment": env}));
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "labels": labels},
        "spec": {"project": "default", "source": {"repoURL": "https://github.com/example/deploy.git", "path": name, "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
        "status": {
            "sync": {"status": if a.op.is_some() { "OutOfSync" } else { "Synced" }, "revision": a.revision},
            "health": {"status": a.health},
            "history": a.history.iter().map(|(i, r)| json!({"id": i, "revision": r, "deployedAt": "2026-11-20T09:00:00Z"})).collect::<Vec<_>>(),
            "operationState": {"startedAt": a.started, "phase": a.phase, "message": a.message,
                               "operation": {"sync": {"revision": a.op.as_ref().map(|o| o.revision.clone())}}},
            "summary": {"images": [format!("registry.example.internal/{service}:{tag}"), "envoyproxy/envoy:v1.29.0"],
                        "externalURLs": if a.gets >= a.urls_after { a.urls.clone() } else { vec![] }},
            "resources": [
                {"version": "v1", "kind": "Service", "namespace": name, "name": service, "status": "Synced", "health": {"status": "Healthy"}},
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": name, "name": service, "status": "Synced", "health": {"status": "Healthy"}},
                {"group": "batch", "version": "v1", "kind": "Job", "namespace": name, "name": "migrate", "hook": true}
            ]
        }
    })
}

fn not_found(name: &str) -> axum::response::Response {
    let m = format!("applications.argoproj.io \"{name}\" not found");
    reply(404, json!({"error": m, "code": 5, "message": m}))
}

async fn fake_argocd(state: Arc<Mutex<Argo>>) -> FakeServer {
    serve(move |r| {
        let state = state.clone();
        async move {
            let mut s = state.lock().unwrap();
            if r.method == "POST" && r.path == "/api/v1/session" {
                let b = r.body.clone().unwrap_or_default();
                if b["username"] == "paver" && b["password"] == "hunter2" {
                    s.logins += 1;
                    let t = format!("session-{}", s.logins);
                    s.sessions.push(t.clone());
                    return reply(200, json!({"token": t}));
                }
                return reply(401, json!({"error": "invalid username or password", "code": 16, "message": "invalid username or password"}));
            }
            let auth = r.header("authorization").unwrap_or("").trim_start_matches("Bearer ").to_owned();
            if let Some(pos) = s.expire.iter().position(|t| *t == auth) {
                s.expire.remove(pos);
                s.sessions.retain(|t| *t != auth);
            }
            if auth != TOKEN && !s.sessions.contains(&auth) {
                return reply(401, json!({"error": "invalid session", "code": 16, "message": "invalid session: token is expired"}));
            }
            let segs: Vec<String> = r.path.trim_matches('/').split('/').map(str::to_owned).collect();
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            match (r.method.as_str(), segs.as_slice()) {
                ("GET", ["api", "v1", "applications", name]) => {
                    let Some(a) = s.apps.get_mut(*name) else { return not_found(name) };
                    a.gets += 1;
                    if let Some(op) = a.op.as_mut() {
                        if op.polls_left > 0 {
                            op.polls_left -= 1;
                            a.phase = Some("Running".into());
                            a.health = "Progressing".into();
                            a.message = Some("waiting for healthy state of apps/Deployment".into());
                        } else {
                            let op = a.op.take().unwrap();
                            match op.fail {
                                Some(m) => {
                                    a.phase = Some("Failed".into());
                                    a.message = Some(m);
                                    a.health = "Degraded".into();
                                }
                                None => {
                                    a.phase = Some("Succeeded".into());
                                    a.message = Some("successfully synced (all tasks run)".into());
                                    a.health = "Healthy".into();
                                    let id = a.history.iter().map(|h| h.0).max().unwrap_or(0) + 1;
                                    a.history.push((id, op.revision.clone()));
                                    a.revision = op.revision;
                                }
                            }
                        }
                    }
                    let service = name.rsplit_once('-').map(|(s, _)| s).unwrap_or(name).to_owned();
                    reply(200, render(name, a, &service))
                }
                ("POST", ["api", "v1", "applications", name, op @ ("sync" | "rollback")]) => {
                    if let Some(code) = (!s.sync_failures.is_empty()).then(|| s.sync_failures.remove(0)) {
                        return reply(code, json!({"error": "upstream connect error", "code": 14, "message": "upstream connect error"}));
                    }
                    s.clock += 1;
                    let clock = s.clock;
                    let polls = s.op_polls;
                    let fail = s.fail_next_op.take();
                    let Some(a) = s.apps.get_mut(*name) else { return not_found(name) };
                    if a.op.is_some() {
                        let m = "another operation is already in progress";
                        return reply(400, json!({"error": m, "code": 9, "message": m}));
                    }
                    let body = r.body.clone().unwrap_or_default();
                    let revision = if *op == "sync" {
                        body["revision"].as_str().map(str::to_owned).unwrap_or_else(|| a.revision.clone())
                    } else {
                        let id = body["id"].as_i64().unwrap_or(-1);
                        match a.history.iter().find(|h| h.0 == id) {
                            Some(h) => h.1.clone(),
                            None => return reply(400, json!({"error": "history not found", "code": 3, "message": format!("application {name} does not have deployment with id {id}")})),
                        }
                    };
                    a.op = Some(Op { revision, polls_left: polls, fail });
                    a.started = Some(format!("2026-11-21T10:00:{clock:02}Z"));
                    a.phase = Some("Running".into());
                    let service = name.rsplit_once('-').map(|(s, _)| s).unwrap_or(name).to_owned();
                    reply(200, render(name, a, &service))
                }
                ("POST", ["api", "v1", "applications", _name, "resource", "actions", ..]) => {
                    s.actions.push(json!({"path": r.path, "query": r.query, "body": r.body}));
                    reply(200, json!({}))
                }
                _ => reply(404, json!({"error": "Not Found", "code": 5, "message": "Not Found"})),
            }
        }
    })
    .await
}

fn catalog() -> SharedCatalog {
    SharedCatalog::new(Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).unwrap())
}

fn driver(server: &FakeServer, config: ArgoCdConfig) -> ArgoCdDriver {
    ArgoCdDriver::new(
        ArgoCdConfig {
            token: Some(TOKEN.to_owned().into()),
            poll_interval_ms: 100,
            sync_timeout_secs: 20,
            url_timeout_secs: 10,
            ..config
        },
        url::Url::parse(&server.url).unwrap(),
        Some(catalog()),
    )
    .unwrap()
}

fn svc(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap()
}

fn deploy(version: Option<&str>) -> Job {
    Job::new(
        "r-dep",
        "r-dep:h",
        Action::Deploy {
            service: svc("order-service"),
            environment: Environment::Staging,
            version: version.map(|v| Version::parse(v).unwrap()),
        },
        "alice",
    )
}

async fn run(d: &dyn Driver, job: &Job) -> (Result<Outcome, DriverError>, Vec<String>) {
    let seen = Mutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_owned());
    let r = d.execute(job, &progress).await;
    (r, seen.into_inner().unwrap())
}

fn contract(server: &FakeServer) -> Vec<String> {
    assert_conform(&Spec::load(SPEC, ""), &server.all())
}

fn standard() -> Arc<Mutex<Argo>> {
    let mut a = Argo {
        op_polls: 2,
        ..Argo::default()
    };
    let mut staging = app("v1.4.0", &[(1, "v1.2.0"), (2, "v1.3.0"), (3, "v1.4.0")]);
    staging.urls = vec!["https://order-service.staging.example.internal".into()];
    a.apps.insert("order-service-staging".into(), staging);
    a.apps.insert(
        "order-service-production".into(),
        app("v1.3.0", &[(7, "v1.3.0")]),
    );
    Arc::new(Mutex::new(a))
}

#[tokio::test]
async fn deploys_a_version_by_syncing_and_waits_for_health() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = driver(
        &server,
        ArgoCdConfig {
            revision_template: "v{{ version }}".into(),
            ..ArgoCdConfig::default()
        },
    );
    let (r, progress) = run(&d, &deploy(Some("1.5.0"))).await;
    let out = r.unwrap();
    assert_eq!(
        out.summary,
        "Deployed order-service 1.5.0 to staging (Argo CD order-service-staging at v1.5.0)"
    );
    assert_eq!(
        out.url.as_deref(),
        Some("https://order-service.staging.example.internal")
    );
    assert_eq!(
        out.links[0].1,
        format!("{}/applications/order-service-staging", server.url)
    );
    assert!(
        progress
            .iter()
            .any(|p| p.contains("sync Running, Progressing")),
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|p| p.contains("sync Succeeded, Healthy")),
        "{progress:?}"
    );
    let sync = server
        .all()
        .into_iter()
        .find(|r| r.path.ends_with("/sync"))
        .unwrap();
    assert_eq!(sync.path, "/api/v1/applications/order-service-staging/sync");
    assert_eq!(
        sync.body.clone().unwrap(),
        json!({"name": "order-service-staging", "prune": false, "revision": "v1.5.0"})
    );
    assert_eq!(
        sync.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let ops = contract(&server);
    assert!(ops.contains(&"ApplicationService_Sync".to_owned()));
    assert!(ops.contains(&"ApplicationService_Get".to_owned()));
}

#[tokio::test]
async fn rolls_back_to_the_previous_or_the_named_version() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = driver(
        &server,
        ArgoCdConfig {
            revision_template: "v{{ version }}".into(),
            app_namespace: Some("argocd".into()),
            project: Some("shop".into()),
            ..ArgoCdConfig::default()
        },
    );
    let job = |version: Option<&str>| {
        Job::new(
            "r-rb",
            "r-rb:h",
            Action::Rollback {
                service: svc("order-service"),
                environment: Environment::Staging,
                version: version.map(|v| Version::parse(v).unwrap()),
            },
            "alice",
        )
    };
    let (r, _) = run(&d, &job(None)).await;
    assert_eq!(
        r.unwrap().summary,
        "Rolled order-service in staging back to v1.3.0 (Argo CD order-service-staging)"
    );
    let (r, _) = run(&d, &job(Some("1.2.0"))).await;
    r.unwrap();
    let bodies: Vec<Value> = server
        .all()
        .into_iter()
        .filter(|r| r.path.ends_with("/rollback"))
        .map(|r| r.body.unwrap())
        .collect();
    assert_eq!(
        bodies[0],
        json!({"name": "order-service-staging", "id": 2, "prune": false, "appNamespace": "argocd", "project": "shop"})
    );
    assert_eq!(bodies[1]["id"], 1);
    let (r, _) = run(&d, &job(Some("0.9.0"))).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::RetryButton, m)) if m.contains("0.9.0 is not in its history"))
    );
    let ops = contract(&server);
    assert!(ops.contains(&"ApplicationService_Rollback".to_owned()));
}

#[tokio::test]
async fn restarts_workloads_through_the_resource_action() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let job = || {
        Job::new(
            "r-rs",
            "r-rs:h",
            Action::Restart {
                service: svc("order-service"),
                environment: Environment::Staging,
            },
            "alice",
        )
    };
    for api in ["v1", "v2"] {
        let d = driver(
            &server,
            ArgoCdConfig {
                resource_actions: api.into(),
                ..ArgoCdConfig::default()
            },
        );
        let (r, _) = run(&d, &job()).await;
        assert_eq!(
            r.unwrap().summary,
            "Restarted order-service in staging (Deployment/order-service-staging/order-service)"
        );
    }
    // The same job again (a resumed run) does not restart twice.
    let once = job();
    let d = driver(&server, ArgoCdConfig::default());
    run(&d, &once).await.0.unwrap();
    let (r, progress) = run(
        &d,
        &Job {
            resumed: true,
            ..once.clone()
        },
    )
    .await;
    r.unwrap();
    assert!(
        progress[0].contains("was already restarted"),
        "{progress:?}"
    );
    assert_eq!(state.lock().unwrap().actions.len(), 3);
    state.lock().unwrap().actions.truncate(2);
    let actions = state.lock().unwrap().actions.clone();
    assert_eq!(
        actions.len(),
        2,
        "one Deployment each time; the Service and the hook Job are left alone"
    );
    assert_eq!(actions[0]["body"], json!("restart"));
    assert_eq!(
        actions[0]["query"],
        json!([
            ["namespace", "order-service-staging"],
            ["resourceName", "order-service"],
            ["version", "v1"],
            ["group", "apps"],
            ["kind", "Deployment"]
        ])
    );
    assert_eq!(
        actions[1]["path"],
        "/api/v1/applications/order-service-staging/resource/actions/v2"
    );
    assert_eq!(actions[1]["body"]["action"], "restart");
    let ops = contract(&server);
    assert!(ops.contains(&"ApplicationService_RunResourceAction".to_owned()));
    assert!(ops.contains(&"ApplicationService_RunResourceActionV2".to_owned()));
}

#[tokio::test]
async fn reads_status_of_every_environment() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = driver(&server, ArgoCdConfig::default());
    let envs = d.status(&svc("order-service"), None).await.unwrap();
    assert_eq!(envs.len(), 2, "dev and preview have no application");
    assert_eq!(envs[0].environment, Environment::Staging);
    assert_eq!(envs[0].version.as_deref(), Some("1.4.0"));
    assert_eq!(envs[0].health.as_deref(), Some("Healthy, Synced"));
    assert_eq!(
        envs[0].url.as_deref(),
        Some("https://order-service.staging.example.internal")
    );
    assert_eq!(envs[1].version.as_deref(), Some("1.3.0"));
    contract(&server);
}

#[tokio::test]
async fn a_failed_sync_is_permanent_and_a_5xx_is_transient_without_a_second_sync() {
    let state = standard();
    state.lock().unwrap().sync_failures = vec![503];
    let server = fake_argocd(state.clone()).await;
    let d = driver(&server, ArgoCdConfig::default());
    let (state_handle, _) = JobState::memory();
    let job = Job {
        state: state_handle,
        ..deploy(Some("1.5.0"))
    };
    let (r, _) = run(&d, &job).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.contains("503") && m.contains("upstream connect error"))
    );
    let (r, _) = run(&d, &job).await;
    r.unwrap();
    let history = state.lock().unwrap().apps["order-service-staging"]
        .history
        .clone();
    assert_eq!(history.len(), 4, "one deploy, not two: {history:?}");

    state.lock().unwrap().fail_next_op = Some(
        "one or more objects failed to apply: Deployment.apps \"order-service\" is invalid".into(),
    );
    let (r, _) = run(&d, &deploy(Some("1.6.0"))).await;
    assert_eq!(
        { let e = r.unwrap_err(); (e.recovery(), e.to_string()) },
        (Recovery::RetryButton, "Argo CD sync of order-service-staging failed: one or more objects failed to apply: Deployment.apps \"order-service\" is invalid".to_owned())
    );
    let (r, _) = run(
        &d,
        &Job::new(
            "r-x",
            "r-x:h",
            Action::Deploy {
                service: svc("cart-service"),
                environment: Environment::Staging,
                version: None,
            },
            "alice",
        ),
    )
    .await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::RetryButton, m)) if m.contains("has no application cart-service-staging"))
    );
    contract(&server);
}

#[tokio::test]
async fn a_resumed_deploy_follows_its_sync_instead_of_starting_another() {
    let state = standard();
    state.lock().unwrap().op_polls = 6;
    let server = fake_argocd(state.clone()).await;
    let d = driver(&server, ArgoCdConfig::default());
    let (state_handle, _) = JobState::memory();
    let job = Job {
        state: state_handle,
        ..deploy(Some("1.5.0"))
    };
    // The process dies while waiting for the sync.
    let crashed = tokio::time::timeout(Duration::from_millis(250), run(&d, &job)).await;
    assert!(crashed.is_err());
    assert_eq!(server.count("POST", "/sync"), 1);
    let resumed = Job {
        resumed: true,
        attempt: 2,
        ..job.clone()
    };
    let (r, progress) = run(&d, &resumed).await;
    r.unwrap();
    assert_eq!(
        progress[0],
        "Argo CD: following the sync of order-service-staging"
    );
    assert_eq!(server.count("POST", "/sync"), 1, "no second sync");
    assert_eq!(
        state.lock().unwrap().apps["order-service-staging"]
            .history
            .len(),
        4
    );
}

#[tokio::test]
async fn logs_in_for_a_session_and_again_when_it_expires() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = ArgoCdDriver::new(
        ArgoCdConfig {
            username: Some("paver".into()),
            password: Some("hunter2".to_owned().into()),
            poll_interval_ms: 100,
            ..ArgoCdConfig::default()
        },
        url::Url::parse(&server.url).unwrap(),
        Some(catalog()),
    )
    .unwrap();
    d.status(&svc("order-service"), Some(Environment::Staging))
        .await
        .unwrap();
    state.lock().unwrap().expire.push("session-1".into());
    d.status(&svc("order-service"), Some(Environment::Staging))
        .await
        .unwrap();
    assert_eq!(state.lock().unwrap().sessions, ["session-2"]);
    let logins: Vec<_> = server
        .all()
        .into_iter()
        .filter(|r| r.path == "/api/v1/session")
        .collect();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].body.as_ref().unwrap()["username"], "paver");
    let ops = contract(&server);
    assert!(ops.contains(&"SessionService_Create".to_owned()));
}

#[tokio::test]
async fn application_names_come_from_the_catalog_or_the_template() {
    let server = fake_argocd(standard()).await;
    let d = driver(&server, ArgoCdConfig::default());
    // The sample catalog annotates order-service with argocd/app-name.
    assert_eq!(
        d.app_name(&svc("order-service"), Environment::Production)
            .unwrap(),
        "order-service-production"
    );
    assert_eq!(
        d.app_name(&svc("legacy-reports"), Environment::Dev)
            .unwrap(),
        "legacy-reports-dev"
    );
    let mut cat = Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).unwrap();
    let _ = &mut cat;
    let yaml = r#"
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pay-api
  annotations:
    argocd/app-name: "staging=pay-stg,production=pay-prod"
spec: {type: service, lifecycle: production, owner: team-payments}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pay-worker
  annotations:
    argocd/app-name: "payments-{environment}-worker"
spec: {type: service, lifecycle: production, owner: team-payments}
"#;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, yaml).unwrap();
    let d = ArgoCdDriver::new(
        ArgoCdConfig::default(),
        url::Url::parse(&server.url).unwrap(),
        Some(SharedCatalog::new(Catalog::from_yaml_file(&f).unwrap())),
    )
    .unwrap();
    assert_eq!(
        d.app_name(&svc("pay-api"), Environment::Production)
            .unwrap(),
        "pay-prod"
    );
    assert_eq!(
        d.app_name(&svc("pay-api"), Environment::Dev).unwrap(),
        "pay-api-dev"
    );
    assert_eq!(
        d.app_name(&svc("pay-worker"), Environment::Staging)
            .unwrap(),
        "payments-staging-worker"
    );
}

/// GitOps creates the environment; Argo CD reports its URL once it has one.
#[tokio::test]
async fn the_url_of_a_new_environment_comes_from_argo_cd() {
    let state = standard();
    {
        let mut s = state.lock().unwrap();
        let mut preview = app("v1.0.0", &[(1, "v1.0.0")]);
        preview.urls = vec!["https://order-service-pr-7.preview.example.internal".into()];
        preview.urls_after = 3;
        s.apps.insert("order-service-preview".into(), preview);
    }
    let server = fake_argocd(state.clone()).await;
    let argocd: Arc<dyn Driver> = Arc::new(driver(&server, ArgoCdConfig::default()));
    let gitops = FakeDriver::default();
    let config = DriversConfig {
        deploy: DriverKind::Argocd,
        environment_url: Some(DriverKind::Argocd),
        status: paver::drivers::router::OneOrMany::Many(vec![
            DriverKind::Gitops,
            DriverKind::Argocd,
        ]),
        ..DriversConfig::default()
    };
    let drivers = BTreeMap::from([
        (DriverKind::Argocd, argocd),
        (
            DriverKind::Gitops,
            Arc::new(gitops.clone()) as Arc<dyn Driver>,
        ),
    ]);
    let router = Router::new(&config, &drivers).unwrap();
    let job = Job::new(
        "r-new",
        "r-new:h",
        Action::CreateEnvironment {
            service: svc("order-service"),
            environment: Environment::Preview,
            resources: vec![ResourceKind::Postgres],
        },
        "alice",
    );
    let (r, progress) = run(&router, &job).await;
    let out = r.unwrap();
    assert_eq!(gitops.calls(), 1, "GitOps did the work");
    assert_eq!(
        out.url.as_deref(),
        Some("https://order-service-pr-7.preview.example.internal")
    );
    assert!(progress
        .iter()
        .any(|p| p.contains("waiting for the URL of order-service-preview")));
    // The first read asks Argo CD to refresh the application.
    let first = server
        .all()
        .into_iter()
        .find(|r| r.path.ends_with("order-service-preview"))
        .unwrap();
    assert_eq!(first.query("refresh"), Some("normal"));
    // Status merges both: Argo CD adds health and URLs.
    let envs = router.status(&svc("order-service"), None).await.unwrap();
    assert!(envs
        .iter()
        .any(|e| e.environment == Environment::Staging && e.health.is_some()));
    contract(&server);
}

/// A catalog whose components point `argocd/app-name` wherever they like.
fn annotated(components: &[(&str, &str)]) -> SharedCatalog {
    let yaml: Vec<String> = components
        .iter()
        .map(|(name, annotation)| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n    argocd/app-name: {annotation:?}\nspec: {{type: service, lifecycle: production, owner: team-growth}}\n"
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, yaml.join("---\n")).unwrap();
    SharedCatalog::new(Catalog::from_yaml_file(&f).unwrap())
}

fn annotated_driver(server: &FakeServer, catalog: SharedCatalog) -> ArgoCdDriver {
    ArgoCdDriver::new(
        ArgoCdConfig {
            token: Some(TOKEN.to_owned().into()),
            poll_interval_ms: 100,
            sync_timeout_secs: 20,
            ..ArgoCdConfig::default()
        },
        url::Url::parse(&server.url).unwrap(),
        Some(catalog),
    )
    .unwrap()
}

fn every_action(service: &str, env: Environment) -> Vec<Action> {
    vec![
        Action::Deploy {
            service: svc(service),
            environment: env,
            version: Some(Version::parse("9.9.9").unwrap()),
        },
        Action::Rollback {
            service: svc(service),
            environment: env,
            version: None,
        },
        Action::Restart {
            service: svc(service),
            environment: env,
        },
        Action::Promote {
            service: svc(service),
            from: Environment::Staging,
            to: env,
        },
    ]
}

fn mutations(server: &FakeServer) -> usize {
    server.all().iter().filter(|r| r.method == "POST").count()
}

/// team-growth's `growth-api` names order-service's production app in its
/// annotation: every action is refused on the labels, before any change.
#[tokio::test]
async fn an_annotation_naming_another_teams_application_is_refused() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = annotated_driver(
        &server,
        annotated(&[
            ("growth-api", "order-service"),
            (
                "growth-web",
                "staging=order-service-staging,production=order-service-production",
            ),
        ]),
    );
    for service in ["growth-api", "growth-web"] {
        for action in every_action(service, Environment::Production) {
            let kind = action.kind();
            let (r, _) = run(&d, &Job::new("r-x", "r-x:h", action, "mallory")).await;
            let Err((Recovery::RetryButton, m)) =
                r.as_ref().map_err(|e| (e.recovery(), e.to_string()))
            else {
                panic!("{service} {kind}: {r:?}")
            };
            assert!(
                m.contains("refusing to change Argo CD application order-service-")
                    && m.contains(&format!("does not belong to {service}"))
                    && m.contains(&format!(
                        "paver.dev/service=order-service (expected {service})"
                    )),
                "{service} {kind}: {m}"
            );
        }
    }
    assert_eq!(
        mutations(&server),
        0,
        "no sync, rollback or action reached Argo CD"
    );
    assert_eq!(
        state.lock().unwrap().apps["order-service-production"]
            .history
            .len(),
        1
    );
}

/// An application without the platform's labels is not changed either, and
/// the label keys are configurable.
#[tokio::test]
async fn an_application_without_ownership_labels_is_refused() {
    let state = standard();
    state
        .lock()
        .unwrap()
        .apps
        .get_mut("order-service-staging")
        .unwrap()
        .labels = Some(json!({"team": "commerce"}));
    let server = fake_argocd(state.clone()).await;
    let d = driver(&server, ArgoCdConfig::default());
    let (r, _) = run(&d, &deploy(Some("1.5.0"))).await;
    assert_eq!(
        { let e = r.unwrap_err(); (e.recovery(), e.to_string()) },
        (Recovery::RetryButton, "refusing to change Argo CD application order-service-staging: it does not belong to order-service in staging: no label paver.dev/service (expected order-service), no label paver.dev/environment (expected staging). The platform team sets these labels on the application".to_owned())
    );
    assert_eq!(mutations(&server), 0);

    // The same application labelled with the platform's own keys.
    state
        .lock()
        .unwrap()
        .apps
        .get_mut("order-service-staging")
        .unwrap()
        .labels =
        Some(json!({"platform.acme/svc": "order-service", "platform.acme/env": "staging"}));
    let d = driver(
        &server,
        ArgoCdConfig {
            service_label: "platform.acme/svc".into(),
            environment_label: "platform.acme/env".into(),
            ..ArgoCdConfig::default()
        },
    );
    run(&d, &deploy(Some("1.5.0"))).await.0.unwrap();
    assert_eq!(server.count("POST", "/sync"), 1);
}

/// A label naming the right service but another environment is refused:
/// "deploy to staging" may not reach production through the annotation.
#[tokio::test]
async fn an_application_of_another_environment_is_refused() {
    let state = standard();
    let server = fake_argocd(state.clone()).await;
    let d = annotated_driver(
        &server,
        annotated(&[("order-service", "staging=order-service-production")]),
    );
    let (r, _) = run(&d, &deploy(Some("1.5.0"))).await;
    let m = r.unwrap_err().to_string();
    assert!(
        m.contains("order-service-production")
            && m.contains("paver.dev/environment=production (expected staging)"),
        "{m}"
    );
    assert_eq!(mutations(&server), 0);
}

#[tokio::test]
async fn application_names_with_path_characters_are_rejected_before_any_request() {
    let server = fake_argocd(standard()).await;
    let bad = [
        ("svc-slash", "team-a/order-service-production"),
        ("svc-dots", ".."),
        ("svc-dots-2", "staging=..,production=.."),
        ("svc-query", "order-service-production?refresh"),
        ("svc-percent", "order-service%2fproduction"),
        ("svc-upper", "Order-Service"),
    ];
    let d = annotated_driver(&server, annotated(&bad));
    for (service, annotation) in bad {
        for action in every_action(service, Environment::Staging) {
            let kind = action.kind();
            let (r, _) = run(&d, &Job::new("r-x", "r-x:h", action, "mallory")).await;
            let Err((Recovery::RetryButton, m)) =
                r.as_ref().map_err(|e| (e.recovery(), e.to_string()))
            else {
                panic!("{annotation} {kind}: {r:?}")
            };
            assert!(
                m.contains("is not valid") && m.contains(service),
                "{annotation} {kind}: {m}"
            );
        }
        let status = d.status(&svc(service), Some(Environment::Staging)).await;
        let Err((Recovery::RetryButton, m)) =
            status.as_ref().map_err(|e| (e.recovery(), e.to_string()))
        else {
            panic!("status of {annotation}")
        };
        assert!(m.contains("argocd/app-name"), "{m}");
    }
    assert!(server.all().is_empty(), "{:?}", server.all());
}

/// A slow Argo CD is a timeout, not a hang; a huge answer is refused
/// without reading it all.
#[tokio::test]
async fn slow_and_oversized_answers_are_clean_errors() {
    let server = serve(|r| async move {
        if r.path.ends_with("slow-staging") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let big = "x".repeat(5 * 1024 * 1024);
        reply(200, json!({"metadata": {"name": "big"}, "padding": big}))
    })
    .await;
    let d = ArgoCdDriver::new(
        ArgoCdConfig {
            token: Some(TOKEN.to_owned().into()),
            timeout_secs: 1,
            app_name_template: "{{ service }}-{{ environment }}".into(),
            ..ArgoCdConfig::default()
        },
        url::Url::parse(&server.url).unwrap(),
        None,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = d.status(&svc("slow"), Some(Environment::Staging)).await;
    assert!(
        matches!(r.as_ref().map_err(|e| (e.recovery(), e.to_string())), Err((Recovery::Backoff, m)) if m.contains("timed out")),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // Building 5 MiB takes the fake a while on a busy machine: not a timeout.
    let d = ArgoCdDriver::new(
        ArgoCdConfig {
            token: Some(TOKEN.to_owned().into()),
            app_name_template: "{{ service }}-{{ environment }}".into(),
            ..ArgoCdConfig::default()
        },
        url::Url::parse(&server.url).unwrap(),
        None,
    )
    .unwrap();
    let r = d.status(&svc("big"), Some(Environment::Staging)).await;
    assert_eq!(
        {
            let e = r.unwrap_err();
            (e.recovery(), e.to_string())
        },
        (
            Recovery::RetryButton,
            "Argo CD answered with a body larger than 1048576 bytes; refused".to_owned()
        )
    );
}

/// Argo CD's error text reaches the thread as one short line with chat
/// markup neutralised.
#[tokio::test]
async fn remote_error_text_is_trimmed_and_escaped() {
    let server = serve(|_| async move {
        let m = format!(
            "<!channel> @everyone `boom` & <https://evil.example|click>\n{}",
            "very long ".repeat(200)
        );
        reply(400, json!({"error": m, "code": 3, "message": m}))
    })
    .await;
    let d = ArgoCdDriver::new(
        ArgoCdConfig {
            token: Some(TOKEN.to_owned().into()),
            app_name_template: "{{ service }}-{{ environment }}".into(),
            ..ArgoCdConfig::default()
        },
        url::Url::parse(&server.url).unwrap(),
        None,
    )
    .unwrap();
    let m = d
        .status(&svc("x"), Some(Environment::Staging))
        .await
        .unwrap_err()
        .to_string();
    for bad in ["<", ">", "&", "`", "\n", "@everyone"] {
        assert!(!m.contains(bad), "{bad:?} in {m}");
    }
    assert!(
        m.starts_with("Argo CD answered 400 Bad Request: ‹!channel› @"),
        "{m}"
    );
    assert!(m.chars().count() < 400, "{} chars", m.chars().count());
}
