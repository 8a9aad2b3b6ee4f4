//! Scorecards as people meet them: asked in chat over the sample catalog
//! (which has services without an owner, docs or on-call), fed by CI
//! through `/hooks/checks` and GitHub's workflow runs, and gating
//! production when policy says so.

mod support;

use paver::config::Config;
use paver::domain::RequestState;
use paver::drivers::http::sign_callback;
use paver::policy::PolicyConfig;
use secrecy::SecretString;
use serde_json::{json, Value};
use support::paver::TestPaver;

const CHECKS_SECRET: &str = "checks-secret";
const GITHUB_SECRET: &str = "gh-secret";

fn config() -> Config {
    let mut c = Config::default();
    c.hooks.checks_secret = Some(SecretString::from(CHECKS_SECRET.to_owned()));
    c.hooks.github_secret = Some(SecretString::from(GITHUB_SECRET.to_owned()));
    c
}

async fn push(base: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp();
    let sig = sign_callback(CHECKS_SECRET, ts, "POST", "/hooks/checks", body.as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{base}/hooks/checks"))
        .header("X-Paver-Timestamp", ts.to_string())
        .header("X-Paver-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn last_reply(p: &TestPaver) -> String {
    p.transcript().lines().last().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_scorecard_in_chat_names_the_level_the_failing_checks_and_how_to_fix_them() {
    let p = TestPaver::start().await;
    p.say("alice", "is legacy-reports production ready?").await;
    let t = p.transcript();
    assert!(
        t.contains("Scorecard for legacy-reports: below Bronze"),
        "{t}"
    );
    assert!(
        t.contains("has-owner (critical): it has no spec.owner"),
        "{t}"
    );
    p.say("alice", "scorecard for team-payments").await;
    let t = p.transcript();
    assert!(
        t.contains("Scorecard for team-payments: below Bronze"),
        "{t}"
    );
    assert!(t.contains("billing-api"), "{t}");
    // Nobody the catalog knows: no scorecard.
    p.say("mallory", "scorecard for billing-api").await;
    assert!(
        !last_reply(&p).contains("Scorecard for billing-api"),
        "{}",
        p.transcript()
    );
}

#[tokio::test]
async fn ci_reports_checks_through_the_signed_hook_and_the_level_follows() {
    let p = TestPaver::start().await;
    let base = p.serve(&config()).await;
    let (code, text) = push(
        &base,
        &json!({"service": "checkout-api", "check": "ci-passing", "passed": true, "detail": "run #12 passed"}),
    )
    .await;
    assert_eq!(code, 202, "{text}");
    let (code, _) = push(
        &base,
        &json!({"service": "checkout-api", "check": "has-monitoring", "passed": true}),
    )
    .await;
    assert_eq!(code, 202);
    let score = p.engine.scorecards().service("checkout-api").await.unwrap();
    assert_eq!(score.level.map(|l| l.as_str()), Some("silver"), "{score:?}");

    // Refused: unsigned, unknown check, unknown service, a result from the future.
    let r = reqwest::Client::new()
        .post(format!("{base}/hooks/checks"))
        .body(
            json!({"service": "checkout-api", "check": "ci-passing", "passed": false}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (code, text) = push(
        &base,
        &json!({"service": "checkout-api", "check": "has-unicorns", "passed": true}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("has-unicorns"), "{text}");
    let (code, text) = push(
        &base,
        &json!({"service": "ghost", "check": "ci-passing", "passed": true}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("ghost"), "{text}");
    let (code, text) = push(
        &base,
        &json!({"service": "checkout-api", "check": "ci-passing", "passed": false, "at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    let (code, text) = push(
        &base,
        &json!({"service": "checkout-api", "check": "ci-passing"}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("passed"), "{text}");
    // Still Silver: nothing refused was recorded.
    let score = p.engine.scorecards().service("checkout-api").await.unwrap();
    assert_eq!(score.level.map(|l| l.as_str()), Some("silver"));
}

#[tokio::test]
async fn a_github_ci_run_on_the_default_branch_is_ci_passing() {
    let p = TestPaver::start().await;
    let base = p.serve(&config()).await;
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(
            "../shared/corpus/github/payload-examples/workflow_run/completed.payload.json",
        )
        .unwrap(),
    )
    .unwrap();
    v["repository"]["full_name"] = json!("acme/checkout-api");
    let branch = v["repository"]["default_branch"]
        .as_str()
        .unwrap_or("main")
        .to_owned();
    v["workflow_run"]["head_branch"] = json!(branch);
    v["workflow_run"]["name"] = json!("CI");
    v["workflow_run"]["conclusion"] = json!("failure");
    let send = |v: &Value, delivery: &str| {
        let body = serde_json::to_vec(v).unwrap();
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        reqwest::Client::new()
            .post(format!("{base}/hooks/github"))
            .header("X-GitHub-Event", "workflow_run")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
    };
    assert!(send(&v, "w-1").await.unwrap().status().is_success());
    let score = p.engine.scorecards().service("checkout-api").await.unwrap();
    let ci = score
        .checks
        .iter()
        .find(|c| c.name == "ci-passing")
        .unwrap();
    assert!(ci.reason().unwrap().contains("CI run #"), "{ci:?}");
    v["workflow_run"]["conclusion"] = json!("success");
    assert!(send(&v, "w-2").await.unwrap().status().is_success());
    let score = p.engine.scorecards().service("checkout-api").await.unwrap();
    assert!(score
        .checks
        .iter()
        .find(|c| c.name == "ci-passing")
        .unwrap()
        .passes());
    // Another workflow, or another branch, says nothing about CI.
    v["workflow_run"]["conclusion"] = json!("failure");
    v["workflow_run"]["head_branch"] = json!("feature/x");
    assert!(send(&v, "w-3").await.unwrap().status().is_success());
    let score = p.engine.scorecards().service("checkout-api").await.unwrap();
    assert!(score
        .checks
        .iter()
        .find(|c| c.name == "ci-passing")
        .unwrap()
        .passes());
}

#[tokio::test]
async fn production_needs_bronze_when_policy_says_so_and_the_denial_names_the_checks() {
    let policy = PolicyConfig {
        production_min_level: Some(
            toml::from_str::<toml::Value>("l = \"bronze\"").unwrap()["l"]
                .clone()
                .try_into()
                .unwrap(),
        ),
        ..PolicyConfig::default()
    };
    let p = TestPaver::builder().policy(policy).start().await;
    let id = p
        .propose("alice", "deploy checkout-api 2.0.0 to production")
        .await;
    let req = p.request(&id).await;
    assert_eq!(req.state, RequestState::Denied, "{}", p.transcript());
    let t = p.transcript();
    assert!(t.contains("production needs Bronze at least"), "{t}");
    assert!(t.contains("ci-passing"), "{t}");
    // CI goes green: the same request now goes the usual way (approval).
    p.engine
        .scorecards()
        .push(paver::storage::scorecards::PushedResult {
            service: paver::domain::ServiceName::parse("checkout-api").unwrap(),
            check: "ci-passing".into(),
            passed: true,
            detail: None,
            source: "hook".into(),
            at: paver::storage::now_ms(),
        })
        .await
        .unwrap();
    let id = p
        .propose("alice", "deploy checkout-api 2.0.0 to production")
        .await;
    p.press("alice", &id, "Deploy").await;
    assert_eq!(
        p.request(&id).await.state,
        RequestState::AwaitingApproval,
        "{}",
        p.transcript()
    );
    // Staging is not gated.
    let id = p
        .propose("alice", "deploy billing-api 1.0.0 to staging")
        .await;
    assert_eq!(p.request(&id).await.state, RequestState::Proposed);
}

/// A configured HTTP check: GET a URL templated with the service, expect a
/// status and a value at a JSON pointer; a check limited to some
/// lifecycles does not apply to the others.
#[tokio::test]
async fn configured_http_and_annotation_checks_score_like_the_built_in_ones() {
    use axum::routing::get;
    let slo = axum::Router::new().route(
        "/slos/{service}",
        get(
            |axum::extract::Path(service): axum::extract::Path<String>| async move {
                match service.as_str() {
                    "checkout-api" => (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"objective": "99.9"})),
                    ),
                    "billing-api" => (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"objective": null})),
                    ),
                    _ => (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({}))),
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, slo).await.unwrap() });
    let config: paver::scorecards::ScorecardsConfig = toml::from_str(&format!(
        r#"
[[checks]]
name = "slo-defined"
weight = "medium"
help = "Define an SLO."
rule = {{ kind = "http", url = "http://{addr}/slos/{{{{ service }}}}", pointer = "/objective" }}

[[checks]]
name = "has-runbook"
weight = "low"
help = "Link the runbook."
lifecycles = ["experimental"]
rule = {{ kind = "annotation", key = "acme.example.com/runbook", pattern = "^https://" }}
"#
    ))
    .unwrap();
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let p = TestPaver::builder()
        .settings(paver::engine::EngineSettings {
            scorecards: config,
            ..Default::default()
        })
        .start()
        .await;
    let check = |score: &paver::domain::scorecard::ServiceScore, name: &str| {
        score
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    let s = p.engine.scorecards();
    let checkout = s.service("checkout-api").await.unwrap();
    assert!(check(&checkout, "slo-defined").passes());
    // Not experimental: the runbook check does not apply.
    assert_eq!(
        check(&checkout, "has-runbook").verdict,
        paver::domain::scorecard::Verdict::NotApplicable
    );
    let billing = s.service("billing-api").await.unwrap();
    assert!(check(&billing, "slo-defined")
        .reason()
        .unwrap()
        .contains("nothing at /objective"));
    let cart = s.service("cart-service").await.unwrap();
    assert!(check(&cart, "slo-defined")
        .reason()
        .unwrap()
        .contains("answered 404"));
    // A check named like a built-in one is refused at load.
    let bad: paver::scorecards::ScorecardsConfig = toml::from_str(
        "[[checks]]\nname = \"has-owner\"\nweight = \"low\"\nhelp = \"x\"\nrule = { kind = \"pushed\" }\n",
    )
    .unwrap();
    assert!(bad.problems().iter().any(|p| p.contains("built-in")));
    assert!(toml::from_str::<paver::scorecards::ScorecardsConfig>(
        "[[checks]]\nname = \"x\"\nweight = \"urgent\"\nhelp = \"x\"\nrule = { kind = \"pushed\" }\n"
    )
    .is_err());
}
