//! The GitOps driver against real `git` repositories in temporary folders.

use std::process::Command as StdCommand;
use std::sync::{Arc, Mutex as StdMutex};

use chrono::DateTime;

use super::message::one_line;
use super::score::split_tag;
use super::*;
use crate::domain::wording::past_tense;
use crate::domain::{ResourceKind, TeamName, TemplateName, Version};

fn svc(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap()
}

/// Runs git synchronously in `dir`, independent of the driver.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@localhost"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn commits(dir: &Path) -> usize {
    git(dir, &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

fn last_message(dir: &Path) -> String {
    git(dir, &["log", "-1", "--format=%B"])
}

fn config(dir: &Path) -> GitOpsConfig {
    GitOpsConfig {
        repo: dir.join("repo"),
        ..GitOpsConfig::default()
    }
}

async fn driver(dir: &Path) -> GitOpsDriver {
    GitOpsDriver::open(config(dir)).await.unwrap()
}

fn job(id: &str, action: Action) -> Job {
    Job {
        approver: Some("carol".into()),
        ..Job::new(id, &format!("{id}/exec"), action, "alice")
    }
}

/// Runs a job and returns its result with the progress it reported.
async fn run(d: &GitOpsDriver, job: &Job) -> (Result<Outcome, DriverError>, Vec<String>) {
    let seen = StdMutex::new(Vec::new());
    let progress = |m: &str| seen.lock().unwrap().push(m.to_owned());
    let r = d.execute(job, &progress).await;
    (r, seen.into_inner().unwrap())
}

async fn ok(d: &GitOpsDriver, job: &Job) -> Outcome {
    match run(d, job).await.0 {
        Ok(o) => o,
        Err(e) => panic!("{:?} failed: {e:?}", job.action),
    }
}

async fn permanent(d: &GitOpsDriver, job: &Job) -> String {
    match run(d, job).await.0 {
        // What fails for good: a broken target or an impossible action.
        Err(e) if !e.is_transient() => e.to_string(),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

fn create(service: &str, environment: Environment, resources: &[ResourceKind]) -> Action {
    Action::CreateEnvironment {
        service: svc(service),
        environment,
        resources: resources.to_vec(),
    }
}

fn deploy(service: &str, environment: Environment, version: Option<&str>) -> Action {
    Action::Deploy {
        service: svc(service),
        environment,
        version: version.map(|v| Version::parse(v).unwrap()),
    }
}

fn workload(d: &GitOpsDriver, service: &str, environment: Environment) -> Workload {
    let rel = GitOpsDriver::env_path(&svc(service), environment);
    let text = std::fs::read_to_string(d.repo().join(&rel)).unwrap();
    Workload::parse(&rel, &text, &svc(service)).unwrap()
}

use Environment::{Dev, Preview, Production, Staging};
use ResourceKind::{Postgres, Redis, S3};

#[tokio::test]
async fn open_creates_the_repository_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    assert!(d.repo().is_absolute());
    assert!(d.repo().join(".git").is_dir());
    assert!(d.repo().join("README.md").is_file());
    assert_eq!(commits(d.repo()), 1);
    assert_eq!(git(d.repo(), &["branch", "--show-current"]).trim(), "main");
    assert_eq!(
        git(d.repo(), &["log", "-1", "--format=%an <%ae>"]).trim(),
        "Paver <paver@localhost>"
    );
    drop(d);
    let d = driver(dir.path()).await;
    assert_eq!(commits(d.repo()), 1, "reopening makes no commit");
}

#[tokio::test]
async fn open_uses_the_configured_branch_of_an_existing_repository() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    drop(d);
    let d = GitOpsDriver::open(GitOpsConfig {
        branch: "gitops".into(),
        ..config(dir.path())
    })
    .await
    .unwrap();
    assert_eq!(
        git(d.repo(), &["branch", "--show-current"]).trim(),
        "gitops"
    );
    ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
    assert_eq!(
        git(d.repo(), &["rev-list", "--count", "gitops"]).trim(),
        "2"
    );
    assert_eq!(git(d.repo(), &["rev-list", "--count", "main"]).trim(), "1");
}

#[tokio::test]
async fn a_missing_git_or_bad_config_is_said_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = GitOpsDriver::open_with_program(config(dir.path()), "paver-no-such-git")
        .await
        .unwrap_err();
    let DriverError::Config(m) = err else {
        panic!("{err:?}")
    };
    assert!(
        m.contains("paver-no-such-git") && m.contains("not found"),
        "{m}"
    );
    assert!(m.contains("install git"), "{m}");

    let err = GitOpsDriver::open(GitOpsConfig {
        branch: "bad branch".into(),
        timeout_secs: 0,
        ..config(dir.path())
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gitops.branch") && err.contains("gitops.timeout_secs"),
        "{err}"
    );
    let c = GitOpsConfig {
        remote: Some("https://paver:hunter2@git.example.internal/gitops.git".into()),
        ..GitOpsConfig::default()
    };
    assert!(c.problems().iter().any(|p| p.contains("password")));
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[tokio::test]
async fn create_environment_writes_a_score_file_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let j = job(
        "r-abc",
        create("order-service", Staging, &[Postgres, Redis]),
    );
    let (out, progress) = run(&d, &j).await;
    let out = out.unwrap();
    assert_eq!(
        out.url.as_deref(),
        Some("https://order-service.staging.example.internal")
    );
    assert!(
        out.summary
            .starts_with("Created staging for order-service with postgres, redis (commit "),
        "{}",
        out.summary
    );
    assert_eq!(
        out.links,
        vec![(
            "manifest".to_owned(),
            "services/order-service/staging.yaml".to_owned()
        )]
    );
    assert!(progress.contains(&"writing services/order-service/staging.yaml".to_owned()));
    let short = git(d.repo(), &["rev-parse", "--short=7", "HEAD"]);
    assert!(
        progress.contains(&format!("committed {}", short.trim())),
        "{progress:?}"
    );
    assert!(out.summary.contains(short.trim()));

    assert_eq!(commits(d.repo()), 2);
    let msg = last_message(d.repo());
    assert!(msg.starts_with("create staging for order-service with postgres, redis\n\n"));
    for line in [
        "Request: r-abc",
        "Requested-by: alice",
        "Approved-by: carol",
        "Idempotency-Key: r-abc/exec",
    ] {
        assert!(
            msg.lines().any(|l| l == line),
            "{line:?} missing from {msg}"
        );
    }

    let text =
        std::fs::read_to_string(d.repo().join("services/order-service/staging.yaml")).unwrap();
    assert!(text.starts_with("# Managed by Paver"), "{text}");
    let raw: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(raw["apiVersion"].as_str(), Some("score.dev/v1b1"));
    assert_eq!(raw["metadata"]["name"].as_str(), Some("order-service"));
    let ann = &raw["metadata"]["annotations"];
    assert_eq!(ann["paver.dev/version"].as_str(), Some("latest"));
    assert_eq!(ann["paver.dev/replicas"].as_str(), Some("1"));
    assert_eq!(ann["paver.dev/requestId"].as_str(), Some("r-abc"));
    assert_eq!(ann["paver.dev/environment"].as_str(), Some("staging"));
    assert!(ann.get("paver.dev/expiresAt").is_none());
    assert_eq!(
        raw["containers"]["main"]["image"].as_str(),
        Some("order-service:latest")
    );
    assert_eq!(
        raw["resources"]["postgres"]["type"].as_str(),
        Some("postgres")
    );
    assert_eq!(raw["resources"]["redis"]["type"].as_str(), Some("redis"));
    assert!(
        git(d.repo(), &["status", "--porcelain"]).is_empty(),
        "the tree is clean"
    );
}

#[tokio::test]
async fn the_same_job_twice_makes_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let jobs = [
        job("r-1", create("order-service", Staging, &[Postgres])),
        job("r-2", deploy("order-service", Staging, None)),
        job(
            "r-3",
            Action::Restart {
                service: svc("order-service"),
                environment: Staging,
            },
        ),
        job(
            "r-4",
            Action::ScaffoldService {
                name: svc("billing-api"),
                template: TemplateName::parse("go-service").unwrap(),
                owner: None,
            },
        ),
    ];
    for (i, j) in jobs.iter().enumerate() {
        let first = ok(&d, j).await;
        assert_eq!(commits(d.repo()), i + 2);
        let (again, progress) = run(&d, j).await;
        assert_eq!(again.unwrap(), first, "a re-run gives the same outcome");
        assert_eq!(commits(d.repo()), i + 2, "{:?} committed twice", j.action);
        assert!(progress
            .iter()
            .any(|p| p.starts_with("already done in commit")));
    }
    // A different job whose key merely starts with the same text is new work.
    let mut similar = jobs[2].clone();
    similar.idempotency_key = "r-3/exec-2".into();
    ok(&d, &similar).await;
    assert_eq!(commits(d.repo()), 6);
}

#[tokio::test]
async fn an_interrupted_job_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    // A crash between writing and committing: a stray file and an edit.
    let stray = d.repo().join("services/ghost-service/dev.yaml");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "junk").unwrap();
    let staging = d.repo().join("services/order-service/staging.yaml");
    std::fs::write(&staging, "half a fi").unwrap();
    ok(
        &d,
        &job(
            "r-2",
            Action::Scale {
                service: svc("order-service"),
                environment: Staging,
                replicas: 3,
            },
        ),
    )
    .await;
    assert!(!stray.exists());
    assert_eq!(
        workload(&d, "order-service", Staging).replicas(),
        Ok(Some(3))
    );
    let changed = git(d.repo(), &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(changed.trim(), "services/order-service/staging.yaml");
}

#[tokio::test]
async fn creating_an_existing_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(
        &d,
        &job("r-1", create("order-service", Staging, &[Postgres, Redis])),
    )
    .await;
    let again = ok(
        &d,
        &job("r-2", create("order-service", Staging, &[Postgres])),
    )
    .await;
    assert!(
        again.summary.contains("already has a staging"),
        "{}",
        again.summary
    );
    assert_eq!(
        again.url.as_deref(),
        Some("https://order-service.staging.example.internal")
    );
    assert_eq!(commits(d.repo()), 2);
    let m = permanent(&d, &job("r-3", create("order-service", Staging, &[S3]))).await;
    assert!(
        m.contains("already has a staging") && m.contains("add_resource"),
        "{m}"
    );
    assert_eq!(commits(d.repo()), 2);
}

#[tokio::test]
async fn preview_environments_carry_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let mut j = job("r-1", create("cart-service", Preview, &[Redis]));
    j.expires_at = Some(1_767_225_600); // 2026-01-01T00:00:00Z
    ok(&d, &j).await;
    let w = workload(&d, "cart-service", Preview);
    assert_eq!(
        w.annotation(ANNOTATION_EXPIRES_AT),
        Some("2026-01-01T00:00:00Z")
    );
    let status = d.status(&svc("cart-service"), Some(Preview)).await.unwrap();
    assert_eq!(status[0].expires_at, Some(1_767_225_600));
}

#[tokio::test]
async fn destroy_removes_the_file_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
    let destroy = |id| {
        job(
            id,
            Action::DestroyEnvironment {
                service: svc("order-service"),
                environment: Dev,
            },
        )
    };
    let out = ok(&d, &destroy("r-2")).await;
    assert!(
        out.summary
            .starts_with("Destroyed dev for order-service (commit "),
        "{}",
        out.summary
    );
    assert_eq!(out.url, None);
    assert!(!d.repo().join("services/order-service/dev.yaml").exists());
    assert_eq!(commits(d.repo()), 3);
    assert!(last_message(d.repo()).starts_with("destroy dev for order-service\n"));
    let git_files = git(d.repo(), &["ls-files", "services"]);
    assert!(git_files.is_empty(), "{git_files}");

    let again = ok(&d, &destroy("r-3")).await;
    assert!(
        again.summary.contains("nothing to destroy"),
        "{}",
        again.summary
    );
    assert_eq!(commits(d.repo()), 3);
}

#[tokio::test]
async fn add_resource_adds_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let add = |id, env, resources: &[ResourceKind]| {
        job(
            id,
            Action::AddResource {
                service: svc("order-service"),
                environment: env,
                resources: resources.to_vec(),
            },
        )
    };
    let m = permanent(&d, &add("r-0", Staging, &[Redis])).await;
    assert_eq!(
        m,
        "order-service has no staging environment; create it first"
    );
    assert_eq!(commits(d.repo()), 1);

    ok(
        &d,
        &job("r-1", create("order-service", Staging, &[Postgres])),
    )
    .await;
    let out = ok(&d, &add("r-2", Staging, &[Postgres, Redis])).await;
    assert!(
        out.summary
            .starts_with("Added redis to order-service staging"),
        "{}",
        out.summary
    );
    assert_eq!(
        workload(&d, "order-service", Staging).resource_kinds(),
        vec![Postgres, Redis]
    );
    assert_eq!(commits(d.repo()), 3);
    let same = ok(&d, &add("r-3", Staging, &[Redis])).await;
    assert!(same.summary.contains("no change"), "{}", same.summary);
    assert_eq!(commits(d.repo()), 3);
}

#[tokio::test]
async fn deploy_sets_or_keeps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let m = permanent(
        &d,
        &job("r-0", deploy("order-service", Staging, Some("1.2.3"))),
    )
    .await;
    assert!(
        m.contains("has no staging environment; create it first"),
        "{m}"
    );

    ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    let out = ok(
        &d,
        &job("r-2", deploy("order-service", Staging, Some("1.2.3"))),
    )
    .await;
    assert!(out
        .summary
        .starts_with("Deployed order-service 1.2.3 to staging (commit "));
    assert!(last_message(d.repo()).starts_with("deploy order-service 1.2.3 to staging\n"));
    let w = workload(&d, "order-service", Staging);
    assert_eq!(w.version(), Some("1.2.3"));
    assert_eq!(w.containers["main"].image, "order-service:1.2.3");
    let first = w.annotation(ANNOTATION_DEPLOYED_AT).unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(5)).await;
    let out = ok(&d, &job("r-3", deploy("order-service", Staging, None))).await;
    assert!(out
        .summary
        .starts_with("Redeployed order-service 1.2.3 to staging"));
    let w = workload(&d, "order-service", Staging);
    assert_eq!(w.version(), Some("1.2.3"));
    assert_ne!(w.annotation(ANNOTATION_DEPLOYED_AT), Some(first.as_str()));
    assert_eq!(w.annotation(ANNOTATION_REQUEST_ID), Some("r-3"));
    assert_eq!(commits(d.repo()), 4);
}

#[tokio::test]
async fn hand_edits_are_kept_and_the_registry_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(
        &d,
        &job("r-1", create("order-service", Staging, &[Postgres])),
    )
    .await;
    let path = d.repo().join("services/order-service/staging.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("image: order-service:latest", "image: registry.example:5000/shop/order-service:latest\n    variables:\n      LOG_LEVEL: debug")
        + "service:\n  ports:\n    www:\n      port: 8080\n";
    std::fs::write(&path, text).unwrap();
    git(d.repo(), &["commit", "-qam", "hand edit"]);
    ok(
        &d,
        &job("r-2", deploy("order-service", Staging, Some("2.0.0"))),
    )
    .await;
    let w = workload(&d, "order-service", Staging);
    assert_eq!(
        w.containers["main"].image,
        "registry.example:5000/shop/order-service:2.0.0"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("LOG_LEVEL: debug") && text.contains("port: 8080"),
        "{text}"
    );
}

#[tokio::test]
async fn rollback_uses_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let rollback = |id, version: Option<&str>| {
        job(
            id,
            Action::Rollback {
                service: svc("order-service"),
                environment: Production,
                version: version.map(|v| Version::parse(v).unwrap()),
            },
        )
    };
    ok(&d, &job("r-1", create("order-service", Production, &[]))).await;
    let m = permanent(&d, &rollback("r-2", None)).await;
    assert!(m.contains("no earlier version"), "{m}");
    ok(
        &d,
        &job("r-3", deploy("order-service", Production, Some("1.0.0"))),
    )
    .await;
    let m = permanent(&d, &rollback("r-4", None)).await;
    assert!(m.contains("no earlier version than 1.0.0"), "{m}");

    ok(
        &d,
        &job("r-5", deploy("order-service", Production, Some("1.1.0"))),
    )
    .await;
    // Changes that keep the version do not count as versions.
    ok(
        &d,
        &job(
            "r-6",
            Action::Scale {
                service: svc("order-service"),
                environment: Production,
                replicas: 4,
            },
        ),
    )
    .await;
    ok(&d, &job("r-7", deploy("order-service", Production, None))).await;
    let before = commits(d.repo());
    let out = ok(&d, &rollback("r-8", None)).await;
    assert!(
        out.summary
            .starts_with("Rolled back order-service production from 1.1.0 to 1.0.0"),
        "{}",
        out.summary
    );
    assert_eq!(commits(d.repo()), before + 1);
    let w = workload(&d, "order-service", Production);
    assert_eq!(w.version(), Some("1.0.0"));
    assert_eq!(w.replicas(), Ok(Some(4)), "only the version goes back");

    // Explicit versions, and one that is already running.
    ok(&d, &rollback("r-9", Some("v0.9.0"))).await;
    assert_eq!(
        workload(&d, "order-service", Production).version(),
        Some("0.9.0")
    );
    let same = ok(&d, &rollback("r-10", Some("0.9.0"))).await;
    assert!(
        same.summary.contains("already runs 0.9.0"),
        "{}",
        same.summary
    );
    assert_eq!(commits(d.repo()), before + 2);
}

#[tokio::test]
async fn rollback_does_not_reach_past_a_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(&d, &job("r-1", create("order-service", Dev, &[]))).await;
    ok(&d, &job("r-2", deploy("order-service", Dev, Some("1.0.0")))).await;
    let destroy = Action::DestroyEnvironment {
        service: svc("order-service"),
        environment: Dev,
    };
    ok(&d, &job("r-3", destroy)).await;
    ok(&d, &job("r-4", create("order-service", Dev, &[]))).await;
    ok(&d, &job("r-5", deploy("order-service", Dev, Some("2.0.0")))).await;
    let rollback = Action::Rollback {
        service: svc("order-service"),
        environment: Dev,
        version: None,
    };
    let m = permanent(&d, &job("r-6", rollback)).await;
    assert!(m.contains("no earlier version than 2.0.0"), "{m}");
}

#[tokio::test]
async fn scale_restart_and_promote() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let scale = |id, replicas| {
        job(
            id,
            Action::Scale {
                service: svc("order-service"),
                environment: Staging,
                replicas,
            },
        )
    };
    let promote = |id| {
        job(
            id,
            Action::Promote {
                service: svc("order-service"),
                from: Staging,
                to: Production,
            },
        )
    };
    let m = permanent(&d, &scale("r-0", 3)).await;
    assert!(m.contains("create it first"), "{m}");
    ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    let out = ok(&d, &scale("r-2", 3)).await;
    assert!(out
        .summary
        .starts_with("Scaled order-service staging to 3 replicas"));
    assert_eq!(
        workload(&d, "order-service", Staging).replicas(),
        Ok(Some(3))
    );
    assert!(ok(&d, &scale("r-3", 3)).await.summary.contains("no change"));
    assert_eq!(commits(d.repo()), 3);

    let restart = Action::Restart {
        service: svc("order-service"),
        environment: Staging,
    };
    let out = ok(&d, &job("r-4", restart)).await;
    assert!(out.summary.starts_with("Restarted order-service staging"));
    assert!(workload(&d, "order-service", Staging)
        .annotation(ANNOTATION_RESTARTED_AT)
        .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok()));
    assert_eq!(commits(d.repo()), 4);

    // Promotion needs both environments and a real version.
    let m = permanent(&d, &promote("r-5")).await;
    assert!(m.contains("no production environment"), "{m}");
    ok(&d, &job("r-6", create("order-service", Production, &[]))).await;
    let m = permanent(&d, &promote("r-7")).await;
    assert!(m.contains("no deployed version"), "{m}");
    ok(
        &d,
        &job("r-8", deploy("order-service", Staging, Some("3.1.4"))),
    )
    .await;
    let before = commits(d.repo());
    let out = ok(&d, &promote("r-9")).await;
    assert!(
        out.summary
            .starts_with("Promoted order-service 3.1.4 from staging to production"),
        "{}",
        out.summary
    );
    assert_eq!(
        out.url.as_deref(),
        Some("https://order-service.production.example.internal")
    );
    assert_eq!(
        workload(&d, "order-service", Production).version(),
        Some("3.1.4")
    );
    assert_eq!(
        workload(&d, "order-service", Staging).replicas(),
        Ok(Some(3))
    );
    assert_eq!(
        workload(&d, "order-service", Production).replicas(),
        Ok(Some(1))
    );
    assert_eq!(commits(d.repo()), before + 1);
    assert!(ok(&d, &promote("r-10"))
        .await
        .summary
        .contains("already runs 3.1.4"));
    assert_eq!(commits(d.repo()), before + 1);
}

#[tokio::test]
async fn scaffold_writes_a_backstage_component() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    let scaffold = |id, owner: Option<&str>| {
        job(
            id,
            Action::ScaffoldService {
                name: svc("payment-api"),
                template: TemplateName::parse("go-service").unwrap(),
                owner: owner.map(|o| TeamName::parse(o).unwrap()),
            },
        )
    };
    let out = ok(&d, &scaffold("r-1", Some("team-payments"))).await;
    assert!(
        out.summary
            .starts_with("Scaffolded payment-api from go-service for team-payments (commit "),
        "{}",
        out.summary
    );
    assert_eq!(out.url, None);
    let text =
        std::fs::read_to_string(d.repo().join("services/payment-api/catalog-info.yaml")).unwrap();
    let info: CatalogInfo = serde_norway::from_str(&text).unwrap();
    assert_eq!(info.kind, "Component");
    assert_eq!(info.api_version, "backstage.io/v1alpha1");
    assert_eq!(info.metadata.name, "payment-api");
    assert_eq!(info.spec.owner, "team-payments");
    assert_eq!(
        info.metadata.annotations["backstage.io/source-template"],
        "template:default/go-service"
    );
    // The catalog reads it like any other entity.
    let catalog = crate::catalog::Catalog::from_yaml_str(&text, "catalog-info.yaml");
    assert!(catalog.warnings().is_empty(), "{:?}", catalog.warnings());
    assert_eq!(
        catalog.owner_of("payment-api").map(|g| g.name.as_str()),
        None, // the group itself lives in the real catalog
    );
    assert!(catalog.component("payment-api").is_some());
    let files = git(d.repo(), &["ls-files", "services/payment-api"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [
            "services/payment-api/README.md",
            "services/payment-api/catalog-info.yaml",
            "services/payment-api/docs/index.md",
            "services/payment-api/mkdocs.yml",
        ]
    );
    assert_eq!(commits(d.repo()), 2);
    let m = permanent(&d, &scaffold("r-2", Some("team-payments"))).await;
    assert!(m.contains("already exists"), "{m}");
    assert_eq!(commits(d.repo()), 2);

    let mut by_chat_id = job(
        "r-3",
        Action::ScaffoldService {
            name: svc("ledger"),
            template: TemplateName::parse("go-service").unwrap(),
            owner: None,
        },
    );
    by_chat_id.requester = "U024BE7LH".into();
    let m = permanent(&d, &by_chat_id).await;
    assert!(m.contains("needs an owner"), "{m}");
    by_chat_id.requester = "alice".into();
    ok(&d, &by_chat_id).await;
    let text = std::fs::read_to_string(d.repo().join("services/ledger/catalog-info.yaml")).unwrap();
    assert!(text.contains("owner: user:alice"), "{text}");
}

#[tokio::test]
async fn questions_are_not_executed() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    for action in [
        Action::Status {
            service: svc("order-service"),
            environment: None,
        },
        Action::WhoOwns {
            service: svc("order-service"),
        },
        Action::Help,
    ] {
        let m = permanent(&d, &job("r-1", action)).await;
        assert!(m.contains("changes nothing"), "{m}");
    }
    assert_eq!(commits(d.repo()), 1);
}

#[tokio::test]
async fn malformed_files_are_named_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path()).await;
    ok(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    ok(&d, &job("r-2", create("order-service", Dev, &[]))).await;
    let path = d.repo().join("services/order-service/staging.yaml");
    for broken in [
        "apiVersion: [unclosed\n",
        "",
        "apiVersion: score.dev/v1b1\nmetadata:\n  name: other-service\ncontainers: {}\n",
        "apiVersion: score.dev/v1b1\nmetadata:\n  name: order-service\n  annotations:\n    paver.dev/replicas: many\n",
    ] {
        std::fs::write(&path, broken).unwrap();
        git(d.repo(), &["commit", "-qam", "break it"]);
        let m = permanent(&d, &job("r-3", deploy("order-service", Staging, Some("1.0.0")))).await;
        assert!(m.contains("services/order-service/staging.yaml is malformed"), "{m}");
        let err = d.status(&svc("order-service"), None).await.unwrap_err();
        assert!(err.to_string().contains("staging.yaml"), "{err}");
        // The healthy environment still answers on its own.
        let dev = d.status(&svc("order-service"), Some(Dev)).await.unwrap();
        assert_eq!(dev.len(), 1);
    }
}

#[tokio::test]
async fn status_reads_every_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = GitOpsDriver::open(GitOpsConfig {
        url_template: "https://{{ environment }}.example.test/{{ service }}".into(),
        ..config(dir.path())
    })
    .await
    .unwrap();
    let s = svc("order-service");
    assert_eq!(d.status(&s, None).await.unwrap(), vec![]);
    ok(
        &d,
        &job("r-1", create("order-service", Production, &[Postgres])),
    )
    .await;
    ok(&d, &job("r-2", create("order-service", Dev, &[Redis, S3]))).await;
    ok(&d, &job("r-3", deploy("order-service", Dev, Some("0.4.0")))).await;
    let all = d.status(&s, None).await.unwrap();
    assert_eq!(
        all,
        vec![
            EnvStatus {
                environment: Dev,
                version: Some("0.4.0".into()),
                replicas: Some(1),
                resources: vec![Redis, S3],
                url: Some("https://dev.example.test/order-service".into()),
                expires_at: None,
                health: None,
            },
            EnvStatus {
                environment: Production,
                version: Some("latest".into()),
                replicas: Some(1),
                resources: vec![Postgres],
                url: Some("https://production.example.test/order-service".into()),
                expires_at: None,
                health: None,
            },
        ]
    );
    let one = d.status(&s, Some(Production)).await.unwrap();
    assert_eq!(one, all[1..]);
    assert!(d.status(&s, Some(Staging)).await.unwrap().is_empty());
    assert!(d
        .status(&svc("cart-service"), None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn concurrent_jobs_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(driver(dir.path()).await);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let d = Arc::clone(&d);
        tasks.push(tokio::spawn(async move {
            let j = job(
                &format!("r-{i}"),
                create(&format!("svc-{i}"), Staging, &[Redis]),
            );
            let noop = |_: &str| {};
            d.execute(&j, &noop).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(commits(d.repo()), 7);
    assert!(git(d.repo(), &["status", "--porcelain"]).is_empty());
}

fn bare_remote(dir: &Path) -> PathBuf {
    let remote = dir.join("remote.git");
    let out = StdCommand::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success());
    remote
}

fn remote_log(remote: &Path) -> Vec<String> {
    git(remote, &["log", "--format=%s", "main"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn with_remote(dir: &Path, name: &str, remote: &Path) -> GitOpsConfig {
    GitOpsConfig {
        repo: dir.join(name),
        remote: Some(remote.display().to_string()),
        ..GitOpsConfig::default()
    }
}

#[tokio::test]
async fn commits_are_pushed_to_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path());
    let d = GitOpsDriver::open(with_remote(dir.path(), "clone", &remote))
        .await
        .unwrap();
    let (out, progress) = run(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    out.unwrap();
    assert!(
        progress.contains(&"pushed to origin".to_owned()),
        "{progress:?}"
    );
    assert_eq!(
        remote_log(&remote),
        [
            "create staging for order-service",
            "initialize Paver GitOps repository"
        ]
    );
    // Nothing to push: no push.
    let (_, progress) = run(&d, &job("r-1", create("order-service", Staging, &[]))).await;
    assert!(
        !progress.iter().any(|p| p.starts_with("push")),
        "{progress:?}"
    );
}

#[tokio::test]
async fn a_rejected_push_is_transient_and_the_retry_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path());
    let d = GitOpsDriver::open(with_remote(dir.path(), "clone", &remote))
        .await
        .unwrap();
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'protected branch: denied' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let j = job("r-1", deploy("order-service", Staging, None));
    let m = permanent(&d, &j).await;
    assert!(m.contains("create it first"), "{m}");
    let j = job("r-2", create("order-service", Staging, &[Postgres]));
    match run(&d, &j).await.0 {
        Err(DriverError::Unreachable(m)) => {
            assert!(m.starts_with("git push failed:"), "{m}");
            assert!(m.contains("protected branch: denied"), "git's stderr: {m}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(commits(d.repo()), 2, "the commit stays local");
    assert!(git(&remote, &["branch", "--list", "main"]).is_empty());

    std::fs::remove_file(&hook).unwrap();
    let (out, progress) = run(&d, &j).await;
    out.unwrap();
    assert!(
        progress.contains(&"pushed to origin".to_owned()),
        "{progress:?}"
    );
    assert_eq!(commits(d.repo()), 2, "the retry made no second commit");
    assert_eq!(remote_log(&remote).len(), 2);
}

#[tokio::test]
async fn an_unreachable_remote_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    // A new clone cannot start without its remote.
    let gone = dir.path().join("gone.git");
    let err = GitOpsDriver::open(with_remote(dir.path(), "clone", &gone))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DriverError::Unreachable(ref m) if m.starts_with("git fetch failed")),
        "{err:?}"
    );
    // An existing one opens, and each job says what failed.
    drop(driver(dir.path()).await);
    let d = GitOpsDriver::open(with_remote(dir.path(), "repo", &gone))
        .await
        .unwrap();
    match run(&d, &job("r-1", create("order-service", Dev, &[])))
        .await
        .0
    {
        Err(DriverError::Unreachable(m)) => {
            assert!(
                m.starts_with("git fetch failed:") && m.contains("gone.git"),
                "{m}"
            )
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(commits(d.repo()), 1);
}

#[tokio::test]
async fn replicas_sharing_a_remote_build_on_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare_remote(dir.path());
    let a = GitOpsDriver::open(with_remote(dir.path(), "a", &remote))
        .await
        .unwrap();
    ok(&a, &job("r-1", create("order-service", Staging, &[]))).await;
    // A second clone starts from the remote's history.
    let b = GitOpsDriver::open(with_remote(dir.path(), "b", &remote))
        .await
        .unwrap();
    assert_eq!(commits(b.repo()), 2);
    ok(
        &b,
        &job("r-2", deploy("order-service", Staging, Some("1.0.0"))),
    )
    .await;
    // The first catches up before it writes.
    ok(
        &a,
        &job("r-3", deploy("order-service", Staging, Some("1.1.0"))),
    )
    .await;
    assert_eq!(remote_log(&remote).len(), 4);
    // And both see the same job as done, whichever clone did it.
    let (_, progress) = run(
        &b,
        &job("r-3", deploy("order-service", Staging, Some("1.1.0"))),
    )
    .await;
    assert!(
        progress.iter().any(|p| p.starts_with("already done")),
        "{progress:?}"
    );
    let rollback = Action::Rollback {
        service: svc("order-service"),
        environment: Staging,
        version: None,
    };
    ok(&b, &job("r-4", rollback)).await;
    assert_eq!(
        workload(&b, "order-service", Staging).version(),
        Some("1.0.0")
    );

    // Unpushed local commits that conflict with a moved remote are dropped,
    // and their job, retried, is done again on top.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\n[ -e \"$GIT_DIR/deny\" ] && exit 1\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(remote.join("deny"), "").unwrap();
    let scale = job(
        "r-5",
        Action::Scale {
            service: svc("order-service"),
            environment: Staging,
            replicas: 2,
        },
    );
    assert!(matches!(
        run(&a, &scale).await.0,
        Err(DriverError::Unreachable(_))
    ));
    std::fs::remove_file(remote.join("deny")).unwrap();
    ok(&b, &job("r-6", create("order-service", Dev, &[]))).await;
    let (out, progress) = run(&a, &scale).await;
    out.unwrap();
    assert!(
        progress.iter().any(|p| p.contains("dropped local commits")),
        "{progress:?}"
    );
    let log = remote_log(&remote);
    assert_eq!(log[0], "scale order-service staging to 2 replicas");
    assert_eq!(log[1], "create dev for order-service");
    assert_eq!(log.len(), 7);
}

#[test]
fn image_tags_and_summaries() {
    assert_eq!(split_tag("app:1.0"), ("app", Some("1.0")));
    assert_eq!(split_tag("reg:5000/team/app"), ("reg:5000/team/app", None));
    assert_eq!(
        split_tag("reg:5000/team/app:2"),
        ("reg:5000/team/app", Some("2"))
    );
    assert_eq!(
        past_tense("roll back x dev from 2 to 1"),
        "Rolled back x dev from 2 to 1"
    );
    assert_eq!(past_tense("hand edit"), "Hand edit");
    assert_eq!(one_line("a\nb  c"), "a b c");
}

#[test]
fn the_documented_example_is_what_is_written() {
    let mut w = Workload::new(&svc("order-service"), Staging);
    w.set_version("1.2.3");
    w.annotate(ANNOTATION_REPLICAS, "2");
    w.annotate(ANNOTATION_DEPLOYED_AT, "2025-03-01T09:30:00.000Z");
    w.annotate(ANNOTATION_RESTARTED_AT, "2025-03-02T14:00:00.000Z");
    w.annotate(ANNOTATION_REQUEST_ID, "r-abc");
    w.add_resource(Postgres, None);
    w.add_resource(Redis, None);
    let rendered = w.render().unwrap();
    let doc = include_str!("mod.rs");
    let example: String = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("//! ```").next())
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("//! ").unwrap_or("").to_owned() + "\n")
        .collect();
    assert_eq!(rendered, example);
}
