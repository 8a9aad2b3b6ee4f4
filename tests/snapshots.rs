//! Snapshots of everything users see, written against the code as it is
//! before the refactor of issue 12: every message constructor rendered the
//! three ways Paver sends it (Slack Block Kit, a Discord message body,
//! console text), and a few conversations driven through the engine as a
//! user would have them. A change of wording, markup or layout shows as a
//! snapshot diff; accept it only when the change was meant.
//!
//! Inputs come from Paver's example configuration (config/paver.toml,
//! config/catalog.yaml), with fixed ids and times, so the snapshots only
//! move when what users see moves.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use insta::assert_snapshot;
use serde_json::{json, Value};

use paver::catalog::Catalog;
use paver::chat::console::ConsoleSink;
use paver::chat::{
    deploys, messages, scorecards as say_scorecard, ChatSink, ChatUser, Conversation, Inbound,
    Message, Platform,
};
use paver::config::Config;
use paver::discord::render as discord;
use paver::domain::scorecard::ServiceScore;
use paver::domain::RequestState;
use paver::domain::{
    Action, ActionKind, Environment, Field, ResourceKind, ServiceName, TeamName, UserName,
};
use paver::domain::{Cents, Price};
use paver::domain::{DeployNotice, DeployStatus, DeployStep, Version};
use paver::drivers::{DriverError, EnvStatus, Outcome};
use paver::engine::Engine;
use paver::engine::Handled;
use paver::nlu::chatter::SmallTalk;
use paver::policy::{self, Decision, PolicyContext, TeamCost};
use paver::slack::blocks as slack;
use paver::storage::Request;
use support::paver::TestPaver;
use support::FakeDriver;

// ----- the example configuration -----------------------------------------

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn catalog() -> Catalog {
    Catalog::from_yaml_file(&manifest("config/catalog.yaml")).expect("the example catalog loads")
}

/// The example catalog plus one service nobody owns (the example has none).
fn catalog_with_orphan() -> Catalog {
    let text = std::fs::read_to_string(manifest("config/catalog.yaml")).unwrap();
    let orphan = "\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: legacy-reports\n  description: \"Nightly reports nobody owns\"\nspec: {type: service, lifecycle: deprecated}\n";
    Catalog::from_yaml_str(&format!("{text}{orphan}"), "catalog.yaml")
}

/// config/paver.toml as written, without the environment's overrides
/// (`Config::load` would let a developer's PAVER_* variables in).
fn config() -> Config {
    let body = std::fs::read_to_string(manifest("config/paver.toml")).unwrap();
    toml::from_str(&body).expect("the example config parses")
}

fn action(contract: Value) -> Action {
    serde_json::from_value(contract).expect("a valid action")
}

// ----- requests with fixed ids and times ---------------------------------

/// 2025-03-14 09:30 UTC, when every request here was made.
fn t0() -> i64 {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 30, 0)
        .unwrap()
        .timestamp_millis()
}

const HOUR_MS: i64 = 3_600_000;

/// A request by ada (team-commerce) from Slack, as the engine stores it
/// when proposed: policy's notes and approvers decided on the action.
fn request(action: Action, state: RequestState) -> Request {
    let catalog = catalog();
    let config = config();
    let ada = UserName::parse("ada").unwrap();
    let decision = policy::evaluate(
        &config.policy,
        &catalog,
        Some(&ada),
        &action,
        &PolicyContext::default(),
    );
    let approvers = match &decision {
        Decision::NeedsApproval { approvers, .. } => Some(approvers.clone()),
        _ => None,
    };
    let awaiting = state == RequestState::AwaitingApproval;
    let cost = paver::domain::estimate(&action, &config.cost);
    Request {
        id: "r-7kq2m9".into(),
        nonce: "n4x8vz3p".into(),
        state,
        action_hash: policy::action_hash(&action),
        action,
        requester: "ada".into(),
        requester_chat_id: "U0ADA".into(),
        platform: paver::chat::Platform::Slack,
        channel: "C0COMMERCE".into(),
        thread: None,
        notes: decision.notes(),
        approvers,
        approver: None,
        approval_expires_at: awaiting.then(|| t0() + 24 * HOUR_MS),
        expires_at: None,
        result_url: None,
        error: None,
        confirmed_hash: None,
        retryable: false,
        first: None,
        denied_by: None,
        denial_reason: None,
        cost,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn create_staging() -> Action {
    action(json!({
        "action": "create_environment",
        "service": "order-service",
        "environment": "staging",
        "resources": ["postgres"],
    }))
}

fn deploy_production() -> Action {
    action(json!({
        "action": "deploy",
        "service": "order-service",
        "environment": "production",
        "version": "1.4.0",
    }))
}

fn card(req: &Request, progress: Option<&str>) -> Message {
    messages::card(req, &catalog(), &config().golden_path(), progress)
}

// ----- the three renderings ------------------------------------------------

/// What chat.postMessage receives: the notification text and the blocks.
fn slack_json(m: &Message) -> String {
    let body = json!({ "text": slack::fallback(m), "blocks": slack::render(m) });
    serde_json::to_string_pretty(&body).unwrap()
}

fn discord_json(m: &Message) -> String {
    serde_json::to_string_pretty(&discord::message_body(m)).unwrap()
}

/// What `paver chat` prints when the message is posted: the console
/// adapter's rendering with channel and user references resolved.
fn console_text(m: &Message) -> String {
    let screen = Screen::default();
    let sink = ConsoleSink::new(Box::new(screen.clone()));
    sink.learn_names(&catalog());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(sink.post("console", None, m))
        .expect("the console prints");
    let printed = screen.0.lock().unwrap().clone();
    String::from_utf8(printed).unwrap()
}

/// Snapshots `m` as Slack, Discord and console would show it:
/// `NAME__slack`, `NAME__discord`, `NAME__console`.
fn three_ways(name: &str, m: &Message) {
    assert_snapshot!(format!("{name}__slack"), slack_json(m));
    assert_snapshot!(format!("{name}__discord"), discord_json(m));
    assert_snapshot!(format!("{name}__console"), console_text(m));
}

// ----- cards ---------------------------------------------------------------

#[test]
fn cards_in_every_state() {
    let staging = request(create_staging(), RequestState::Proposed);
    three_ways("card_proposed", &card(&staging, None));

    let mut confirmed = staging.clone();
    confirmed.state = RequestState::Confirmed;
    confirmed.confirmed_hash = Some(confirmed.action_hash.clone());
    three_ways("card_confirmed", &card(&confirmed, None));

    let production = request(deploy_production(), RequestState::Proposed);
    three_ways("card_proposed_needs_approval", &card(&production, None));

    let mut awaiting = request(deploy_production(), RequestState::AwaitingApproval);
    awaiting.confirmed_hash = Some(awaiting.action_hash.clone());
    three_ways("card_awaiting_approval", &card(&awaiting, None));

    let mut approved = awaiting.clone();
    approved.state = RequestState::Approved;
    approved.approver = Some("grace".into());
    three_ways("card_approved", &card(&approved, None));

    let mut running = approved.clone();
    running.state = RequestState::Executing;
    three_ways("card_running", &card(&running, None));
    three_ways(
        "card_running_with_progress",
        &card(&running, Some("pushing to origin")),
    );
    three_ways(
        "card_running_retrying",
        &card(
            &running,
            Some("attempt 1 of 6 failed (git push timed out); retrying in 2 s"),
        ),
    );

    let mut succeeded = confirmed.clone();
    succeeded.state = RequestState::Succeeded;
    succeeded.result_url = Some("https://order-service.staging.example.internal".into());
    three_ways("card_succeeded_with_url", &card(&succeeded, None));

    let mut failed = confirmed.clone();
    failed.state = RequestState::Failed;
    failed.error = Some("git push failed: remote rejected (gave up after 6 attempts)".into());
    failed.retryable = true;
    three_ways("card_failed_with_retry", &card(&failed, None));

    let mut invalid = request(
        action(json!({
            "action": "rollback",
            "service": "order-service",
            "environment": "staging",
        })),
        RequestState::Failed,
    );
    invalid.error = Some("order-service has no earlier version in staging to roll back to".into());
    three_ways("card_failed_without_retry", &card(&invalid, None));

    let mut denied = awaiting.clone();
    denied.state = RequestState::Denied;
    three_ways("card_denied", &card(&denied, None));

    let mut cancelled = staging.clone();
    cancelled.state = RequestState::Cancelled;
    three_ways("card_cancelled", &card(&cancelled, None));

    let mut expired = awaiting.clone();
    expired.state = RequestState::Expired;
    three_ways("card_expired", &card(&expired, None));

    let mut expired_failed = failed.clone();
    expired_failed.state = RequestState::Expired;
    three_ways("card_expired_after_failure", &card(&expired_failed, None));
}

/// A staging environment that takes team-commerce past the monthly cost
/// limit: its card waits for approval, with the estimate and the reason.
#[test]
fn a_card_over_the_cost_limit() {
    let config = config();
    let action = create_staging();
    let mut policy = config.policy.clone();
    policy.max_monthly_cost_per_team = Some(Price(Cents::new(200_000).unwrap()));
    let ctx = PolicyContext {
        cost: Some(TeamCost {
            team: TeamName::parse("team-commerce").unwrap(),
            current: Cents::new(188_000),
            estimate: paver::domain::estimate(&action, &config.cost).unwrap(),
        }),
        ..PolicyContext::default()
    };
    let ada = UserName::parse("ada").unwrap();
    let decision = policy::evaluate(&policy, &catalog(), Some(&ada), &action, &ctx);
    let Decision::NeedsApproval { approvers, .. } = &decision else {
        panic!("{decision:?}")
    };
    let mut req = request(action, RequestState::AwaitingApproval);
    req.notes = decision.notes();
    req.approvers = Some(approvers.clone());
    req.confirmed_hash = Some(req.action_hash.clone());
    three_ways("card_awaiting_approval_over_cost_limit", &card(&req, None));
}

#[test]
fn the_create_it_first_card() {
    let deploy = action(json!({
        "action": "deploy",
        "service": "order-worker",
        "environment": "preview",
        "version": "2.1.0",
    }));
    let first = action(json!({
        "action": "create_environment",
        "service": "order-worker",
        "environment": "preview",
        "resources": [],
    }));
    let mut req = request(deploy.clone(), RequestState::Proposed);
    req.notes.insert(0, messages::first_note(&deploy, &first));
    req.first = Some(first);
    three_ways("card_create_it_first", &card(&req, None));
}

#[test]
fn cards_for_every_kind_of_change() {
    let cases = [
        (
            "card_create_preview_with_note",
            json!({"action": "create_environment", "service": "checkout-api", "environment": "preview", "resources": ["postgres", "redis"]}),
        ),
        (
            "card_create_without_resources",
            json!({"action": "create_environment", "service": "cart-service", "environment": "dev", "resources": []}),
        ),
        (
            "card_destroy_staging",
            json!({"action": "destroy_environment", "service": "cart-service", "environment": "staging"}),
        ),
        (
            "card_add_resource",
            json!({"action": "add_resource", "service": "checkout-api", "environment": "staging", "resources": ["redis", "kafka"]}),
        ),
        (
            "card_redeploy",
            json!({"action": "deploy", "service": "storefront", "environment": "staging"}),
        ),
        (
            "card_rollback_to_previous",
            json!({"action": "rollback", "service": "billing-api", "environment": "production"}),
        ),
        (
            "card_rollback_to_version",
            json!({"action": "rollback", "service": "billing-api", "environment": "staging", "version": "3.2.0"}),
        ),
        (
            "card_promote",
            json!({"action": "promote", "service": "order-service", "from": "staging", "to": "production"}),
        ),
        (
            "card_scale",
            json!({"action": "scale", "service": "order-worker", "environment": "production", "replicas": 5}),
        ),
        (
            "card_scale_one_replica",
            json!({"action": "scale", "service": "order-worker", "environment": "dev", "replicas": 1}),
        ),
        (
            "card_restart",
            json!({"action": "restart", "service": "auth-service", "environment": "staging"}),
        ),
        (
            "card_scaffold_service",
            json!({"action": "scaffold_service", "name": "invoice-api", "template": "go-service", "owner": "team-commerce"}),
        ),
        (
            "card_scaffold_service_without_owner",
            json!({"action": "scaffold_service", "name": "invoice-api", "template": "python-service"}),
        ),
    ];
    for (name, contract) in cases {
        let req = request(action(contract), RequestState::Proposed);
        three_ways(name, &card(&req, None));
    }
}

#[test]
fn a_card_for_a_service_nobody_owns() {
    let req = request(
        action(json!({"action": "restart", "service": "legacy-reports", "environment": "dev"})),
        RequestState::Proposed,
    );
    let m = messages::card(&req, &catalog_with_orphan(), &config().golden_path(), None);
    three_ways("card_service_without_owner", &m);
}

// ----- what goes in a request's thread ------------------------------------

#[test]
fn thread_messages() {
    let awaiting = request(deploy_production(), RequestState::AwaitingApproval);
    three_ways(
        "approval_needed",
        &messages::approval_needed(&awaiting, "production changes"),
    );

    let mut no_approvers = awaiting.clone();
    no_approvers.approvers = None;
    three_ways(
        "approval_needed_no_approvers",
        &messages::approval_needed(&no_approvers, "production changes"),
    );

    let outcome = Outcome {
        summary: "Created staging for order-service (commit 1a2b3c4).".into(),
        url: Some("https://order-service.staging.example.internal".into()),
        links: vec![
            (
                "Commit".into(),
                "https://git.example.internal/platform-gitops/commit/1a2b3c4".into(),
            ),
            (
                "Database".into(),
                "postgres://order-service-staging.db.example.internal:5432/orders".into(),
            ),
        ],
    };
    let staging = request(create_staging(), RequestState::Succeeded);
    three_ways(
        "succeeded_with_url_and_links",
        &messages::succeeded(&staging, &outcome),
    );
    let restart = request(
        action(json!({"action": "restart", "service": "auth-service", "environment": "staging"})),
        RequestState::Succeeded,
    );
    three_ways(
        "succeeded_without_url",
        &messages::succeeded(
            &restart,
            &Outcome {
                summary: "Restarted auth-service in staging".into(),
                url: None,
                links: vec![],
            },
        ),
    );

    let mut failed = request(create_staging(), RequestState::Failed);
    failed.retryable = true;
    three_ways(
        "failed_with_retry",
        &messages::failed(
            &failed,
            "git push failed: remote rejected (gave up after 6 attempts)",
        ),
    );
    failed.retryable = false;
    three_ways(
        "failed_without_retry",
        &messages::failed(&failed, "order-service has no staging environment"),
    );

    let deploy = action(json!({
        "action": "deploy",
        "service": "order-worker",
        "environment": "preview",
        "version": "2.1.0",
    }));
    let first = action(json!({
        "action": "create_environment",
        "service": "order-worker",
        "environment": "preview",
        "resources": [],
    }));
    three_ways(
        "first_note",
        &messages::notice(messages::first_note(&deploy, &first)),
    );
    let restart_first =
        action(json!({"action": "restart", "service": "order-worker", "environment": "preview"}));
    three_ways(
        "first_note_other_action",
        &messages::notice(messages::first_note(&deploy, &restart_first)),
    );
    three_ways("first_proposed", &messages::first_proposed(&deploy, &first));
}

// ----- refusals -------------------------------------------------------------

#[test]
fn refusals() {
    let catalog = catalog();
    let config = config();
    let ada = UserName::parse("ada").unwrap();
    let deny =
        |requester: Option<&UserName>, a: &Action, ctx: &PolicyContext| match policy::evaluate(
            &config.policy,
            &catalog,
            requester,
            a,
            ctx,
        ) {
            Decision::Deny { reason, .. } => reason,
            other => panic!("expected a denial, got {other:?}"),
        };
    let scale = action(
        json!({"action": "scale", "service": "order-worker", "environment": "production", "replicas": 50}),
    );
    three_ways(
        "denied_max_replicas",
        &messages::denied(&deny(Some(&ada), &scale, &PolicyContext::default())),
    );
    three_ways(
        "denied_unknown_requester",
        &messages::denied(&deny(None, &create_staging(), &PolicyContext::default())),
    );
    let preview = action(
        json!({"action": "create_environment", "service": "checkout-api", "environment": "preview", "resources": []}),
    );
    three_ways(
        "denied_too_many_previews",
        &messages::denied(&deny(
            Some(&ada),
            &preview,
            &PolicyContext {
                active_previews_for_team: 5,
                ..PolicyContext::default()
            },
        )),
    );
    three_ways(
        "denied_stored_action_mismatch",
        &messages::denied("the stored action does not match what was confirmed; ask again"),
    );

    three_ways("unknown_user", &messages::unknown_user("U0MALLORY"));
    // While the LLM reads a message, and what that becomes when no card does.
    three_ways("reading", &messages::reading());
    three_ways("reading_docs", &messages::reading_docs());
    three_ways("nothing_asked", &messages::nothing_asked());
    three_ways(
        "unknown_user_reads",
        &messages::unknown_user_reads("U0MALLORY", &catalog),
    );
}

// ----- answers ----------------------------------------------------------------

#[test]
fn help_and_small_talk() {
    let catalog = catalog();
    three_ways("help", &messages::help());
    three_ways(
        "small_talk_greeting",
        &messages::small_talk(SmallTalk::Greeting, &catalog),
    );
    three_ways(
        "small_talk_thanks",
        &messages::small_talk(SmallTalk::Thanks, &catalog),
    );
    three_ways(
        "ask",
        &messages::ask("how do I rotate my database credentials?", &catalog),
    );
}

/// A question back: what is missing, the names it could be, and what
/// the user seemed to want.
fn clarify(name: &str, missing: &[Field], candidates: &[&str], intent: Option<ActionKind>) {
    let candidates: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
    three_ways(name, &messages::clarify(missing, &candidates, intent));
}

#[test]
fn questions_back() {
    clarify(
        "clarify_service_with_candidates",
        &[Field::Service],
        &["order-service", "order-worker"],
        Some(ActionKind::Restart),
    );
    clarify(
        "clarify_service_unknown",
        &[Field::Service],
        &[],
        Some(ActionKind::Deploy),
    );
    clarify(
        "clarify_environment",
        &[Field::Environment],
        &[],
        Some(ActionKind::CreateEnvironment),
    );
    clarify(
        "clarify_service_and_environment",
        &[Field::Service, Field::Environment],
        &[],
        None,
    );
    clarify(
        "clarify_template",
        &[Field::Template],
        &[
            "go-service",
            "python-service",
            "node-service",
            "react-frontend",
        ],
        Some(ActionKind::ScaffoldService),
    );
    clarify(
        "clarify_name",
        &[Field::Name],
        &[],
        Some(ActionKind::ScaffoldService),
    );
    clarify(
        "clarify_replicas",
        &[Field::Replicas],
        &[],
        Some(ActionKind::Scale),
    );
    clarify(
        "clarify_promote_from_to",
        &[Field::From, Field::To],
        &[],
        Some(ActionKind::Promote),
    );
    clarify(
        "clarify_version",
        &[Field::Version],
        &[],
        Some(ActionKind::Deploy),
    );
}

#[test]
fn who_owns_answers() {
    let catalog = catalog_with_orphan();
    let svc = |s: &str| ServiceName::parse(s).unwrap();
    three_ways(
        "who_owns",
        &messages::who_owns(&catalog, &svc("order-service")),
    );
    three_ways(
        "who_owns_team_without_discord",
        &messages::who_owns(&catalog, &svc("signup-service")),
    );
    three_ways(
        "who_owns_no_owner",
        &messages::who_owns(&catalog, &svc("legacy-reports")),
    );
    three_ways(
        "who_owns_not_in_catalog",
        &messages::who_owns(&catalog, &svc("basket-service")),
    );
}

fn env_status(environment: Environment) -> EnvStatus {
    EnvStatus {
        environment,
        version: None,
        replicas: None,
        resources: vec![],
        url: None,
        expires_at: None,
        health: None,
    }
}

/// order-service as a driver might report it.
fn order_service_status() -> Vec<EnvStatus> {
    vec![
        EnvStatus {
            version: Some("1.4.2".into()),
            replicas: Some(1),
            resources: vec![ResourceKind::Postgres],
            health: Some("Healthy".into()),
            url: Some("https://order-service.dev.example.internal".into()),
            ..env_status(Environment::Dev)
        },
        EnvStatus {
            version: Some("1.5.0-rc.1".into()),
            replicas: Some(2),
            resources: vec![ResourceKind::Postgres, ResourceKind::Redis],
            health: Some("Progressing".into()),
            url: Some("https://order-service.staging.example.internal".into()),
            ..env_status(Environment::Staging)
        },
        EnvStatus {
            version: Some("1.4.1".into()),
            replicas: Some(3),
            resources: vec![ResourceKind::Postgres],
            health: Some("Healthy".into()),
            url: Some("https://order-service.production.example.internal".into()),
            ..env_status(Environment::Production)
        },
        EnvStatus {
            version: None,
            expires_at: Some(t0() / 1000 + 72 * 3600),
            ..env_status(Environment::Preview)
        },
    ]
}

#[test]
fn status_answers() {
    let svc = |s: &str| ServiceName::parse(s).unwrap();
    three_ways(
        "status",
        &messages::status(&svc("order-service"), Ok(order_service_status())),
    );
    three_ways(
        "status_no_environments",
        &messages::status(&svc("signup-service"), Ok(vec![])),
    );
    three_ways(
        "status_unreadable",
        &messages::status(
            &svc("order-service"),
            Err(DriverError::Unreachable(
                "argocd answered 503 Service Unavailable".into(),
            )),
        ),
    );

    let staging = |s: &str, v: &str, n: u32| EnvStatus {
        version: Some(v.into()),
        replicas: Some(n),
        health: Some("Healthy".into()),
        url: Some(format!("https://{s}.staging.example.internal")),
        ..env_status(Environment::Staging)
    };
    three_ways(
        "environment_overview",
        &messages::environment_overview(
            Environment::Staging,
            vec![
                (svc("order-service"), Ok(order_service_status())),
                (
                    svc("checkout-api"),
                    Ok(vec![staging("checkout-api", "2.3.1", 2)]),
                ),
                (
                    svc("cart-service"),
                    Err(DriverError::Unreachable("timed out".into())),
                ),
                (svc("storefront"), Ok(vec![])),
            ],
        ),
    );
    three_ways(
        "environment_overview_all_read",
        &messages::environment_overview(
            Environment::Staging,
            vec![(
                svc("checkout-api"),
                Ok(vec![staging("checkout-api", "2.3.1", 2)]),
            )],
        ),
    );
    three_ways(
        "environment_overview_empty",
        &messages::environment_overview(
            Environment::Preview,
            vec![(svc("order-service"), Ok(vec![]))],
        ),
    );
}

#[test]
fn scorecards() {
    let catalog = catalog_with_orphan();
    let config = paver::scorecards::ScorecardsConfig::default();
    let http = reqwest::Client::new();
    // CI reported green for order-service a day ago.
    let pushed = vec![paver::storage::scorecards::PushedResult {
        service: ServiceName::parse("order-service").unwrap(),
        check: "ci-passing".into(),
        passed: true,
        detail: None,
        source: "hook".into(),
        at: t0() - 24 * HOUR_MS,
    }];
    let score = |name: &str| {
        let ctx = paver::scorecards::checks::Context {
            config: &config,
            catalog: &catalog,
            http: &http,
            pushed: &pushed,
            now: t0(),
        };
        let c = catalog.component(name).unwrap();
        ServiceScore::new(
            c.name.clone(),
            c.owner.clone(),
            paver::scorecards::checks::builtin(&ctx, c),
        )
    };
    let team = |t: &str| {
        let team = TeamName::parse(t).unwrap();
        let scores: Vec<ServiceScore> = catalog
            .components()
            .filter(|c| c.owner.as_ref() == Some(&team))
            .map(|c| score(c.name.as_str()))
            .collect();
        say_scorecard::team(&team, &scores)
    };
    three_ways("scorecard_team", &team("team-commerce"));
    three_ways(
        "scorecard_service",
        &say_scorecard::service(&score("order-service")),
    );
    three_ways(
        "scorecard_service_failing",
        &say_scorecard::service(&score("legacy-reports")),
    );
    three_ways("scorecard_nothing_to_score", &team("team-data"));
}

// ----- conversations through the engine -----------------------------------

/// What `paver chat` prints, captured.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The engine on the example catalog and policy, a fake driver, and the
/// console adapter printing to a [`Screen`]: a `paver chat` session.
struct Session {
    paver: TestPaver,
    engine: Engine,
    sink: ConsoleSink,
    screen: Screen,
    events: std::sync::atomic::AtomicUsize,
}

fn deploy_notice(steps: &[(&str, Option<&str>)]) -> DeployNotice {
    DeployNotice {
        service: ServiceName::parse("order-service").unwrap(),
        environment: Environment::Staging,
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, (status, version))| DeployStep {
                status: DeployStatus::parse(status).unwrap(),
                version: version.map(|v| Version::parse(v).unwrap()),
                at: t0() + i as i64 * 60_000,
            })
            .collect(),
        url: None,
        link: None,
        message: None,
        commit: None,
        request: None,
    }
}

#[test]
fn deploy_notices() {
    let n = deploy_notice(&[("queued", Some("2.5.0")), ("in_progress", None)]);
    three_ways("deploy_in_progress", &deploys::notice(&n, "GitHub"));
    let mut n = deploy_notice(&[
        ("in_progress", Some("2.5.0")),
        ("deployed", Some("2.5.0")),
        ("healthy", Some("2.5.0")),
    ]);
    n.url = Some("https://order-service.staging.example".into());
    n.link = Some("https://argocd.example/applications/order-service-staging".into());
    n.commit = Some("4a1b2c3d5e6f7a8b9c0d".into());
    n.request = Some("r-7f3k2m9q".into());
    three_ways(
        "deploy_healthy_for_a_request",
        &deploys::notice(&n, "Argo CD"),
    );
    let mut n = deploy_notice(&[
        ("healthy", Some("2.4.0")),
        ("in_progress", Some("2.5.0")),
        ("failed", Some("2.5.0")),
    ]);
    n.message = Some(paver::util::text::shorten(
        "<!channel> readiness probe failed: `GET /healthz` returned 503",
    ));
    three_ways(
        "deploy_failed_after_a_healthy_one",
        &deploys::notice(&n, "the deploy hook"),
    );
    three_ways(
        "deploy_of_an_unknown_service",
        &deploys::unknown_service(
            "GitHub",
            "acme/monorepo",
            &["order-service".into(), "order-worker".into()],
        ),
    );
    let mut req = request(
        action(
            json!({"action": "deploy", "service": "order-service", "environment": "staging", "version": "2.5.0"}),
        ),
        RequestState::Succeeded,
    );
    req.result_url = Some("https://order-service.staging.example.internal".into());
    let line = deploys::request_line(&n);
    three_ways("card_with_the_deploy_it_started", &card(&req, Some(&line)));
}

async fn session(driver: FakeDriver) -> Session {
    let catalog = catalog();
    let config = config();
    let screen = Screen::default();
    let sink = ConsoleSink::new(Box::new(screen.clone()));
    sink.learn_names(&catalog);
    let paver = TestPaver::builder()
        .catalog(catalog)
        .policy(config.policy.clone())
        .settings(paver::app::engine_settings(&config))
        .fake_driver(driver)
        .sink("console", Arc::new(sink.clone()))
        .start()
        .await;
    Session {
        engine: paver.engine.clone(),
        paver,
        sink,
        screen,
        events: Default::default(),
    }
}

fn person(name: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Console,
        id: name.into(),
        catalog: UserName::parse(name).ok().filter(|_| name != "mallory"),
    }
}

fn console_conv() -> Conversation {
    Conversation {
        platform: Platform::Console,
        channel: "console".into(),
        thread: None,
    }
}

impl Session {
    fn echo(&self, line: &str) {
        self.screen
            .clone()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    async fn idle(&self) {
        assert!(
            self.engine
                .wait_idle(Duration::from_secs(20))
                .await
                .unwrap(),
            "engine never went idle"
        );
    }

    async fn say(&self, who: &str, text: &str) -> Handled {
        self.echo(&format!("{who}> {text}"));
        let n = self
            .events
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let handled = self
            .engine
            .handle_message(Inbound {
                event_id: Some(format!("ev-{n}")),
                user: person(who),
                conversation: console_conv(),
                text: text.into(),
            })
            .await
            .unwrap();
        self.idle().await;
        handled
    }

    /// `/press LABEL` as `who`, on the latest card that has the button.
    async fn press(&self, who: &str, label: &str) {
        self.echo(&format!("{who}> /press {label}"));
        let payload = self
            .sink
            .find_button(label)
            .unwrap_or_else(|| panic!("no {label} button on screen"));
        self.press_payload(who, &payload).await;
    }

    /// `/press LABEL REASON` as `who`: a button that needs a reason, with it.
    async fn press_with_reason(&self, who: &str, label: &str, reason: &str) {
        self.echo(&format!("{who}> /press {label} {reason}"));
        let payload = self
            .sink
            .find_button(label)
            .unwrap_or_else(|| panic!("no {label} button on screen"));
        let reason = paver::domain::Reason::parse(reason).unwrap();
        self.engine
            .handle_reasoned(&person(who), Some(&console_conv()), &payload, reason)
            .await
            .unwrap();
        self.idle().await;
    }

    async fn press_payload(&self, who: &str, payload: &str) {
        self.engine
            .handle_button(&person(who), &console_conv(), payload)
            .await
            .unwrap();
        self.idle().await;
    }

    /// The screen, request ids and times redacted, and without the card
    /// updates of a request in flight (see [`in_flight_update`]).
    fn transcript(&self) -> String {
        let text = String::from_utf8(self.screen.0.lock().unwrap().clone()).unwrap();
        let mut kept: Vec<String> = entries(&text)
            .into_iter()
            .filter(|e| !in_flight_update(e))
            .collect();
        settle_concurrent_updates(&mut kept);
        let kept: String = kept.concat();
        redact_times(&redact_request_ids(&kept))
    }
}

/// The screen cut into what each side said: a user's line, or one thing
/// Paver printed (with its continuation lines).
fn entries(text: &str) -> Vec<String> {
    let starts_entry = |line: &str| {
        line.starts_with("paver>")
            || line.starts_with("paver (")
            || line.split_once("> ").is_some_and(|(who, _)| {
                who.split(' ')
                    .next()
                    .is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
            })
    };
    let mut out: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        match out.last_mut() {
            Some(last) if !starts_entry(line) => last.push_str(line),
            _ => out.push(line.to_owned()),
        }
    }
    out
}

/// What Paver prints between two things a user does goes to several
/// conversations at once (the requester's thread, the approver's copy of
/// the card, the card itself), sent concurrently: which lands first is
/// timing. Each such run is put in one order; what it holds is the test.
fn settle_concurrent_updates(entries: &mut [String]) {
    let is_update = |e: &String| e.starts_with("paver>") || e.starts_with("paver (");
    let mut i = 0;
    while i < entries.len() {
        let mut j = i;
        while j < entries.len() && is_update(&entries[j]) {
            j += 1;
        }
        if j > i + 1 {
            entries[i..j].sort();
        }
        i = j.max(i + 1);
    }
}

/// A card update showing a request between its approval and its end
/// ("Approved, queued", "Running…", "Running: working"). The outbox sends
/// only the latest update of a card that is still waiting, so how many of
/// these a user sees depends on timing; the card snapshots above show each.
fn in_flight_update(entry: &str) -> bool {
    entry.starts_with("paver (updated)>")
        && ["Approved, queued", "Running…", "Running:"]
            .iter()
            .any(|s| entry.contains(&format!("Status: {s}")) || entry.contains(&format!(": {s}")))
}

/// Request ids (`r-` and 8 random characters, see storage) become
/// `[request-1]`, `[request-2]`… in the order they first appear.
fn redact_request_ids(text: &str) -> String {
    let token = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("r-") {
        let before = rest[..i].chars().last().or_else(|| out.chars().last());
        let id: String = rest[i + 2..].chars().take(9).collect();
        let is_id = id.chars().take(8).filter(|c| token(*c)).count() == 8
            && !id.chars().nth(8).is_some_and(|c| token(c) || c == '-')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        if is_id {
            let id = format!("r-{}", &id[..8]);
            let n = match seen.iter().position(|s| *s == id) {
                Some(n) => n + 1,
                None => {
                    seen.push(id);
                    seen.len()
                }
            };
            out.push_str(&rest[..i]);
            out.push_str(&format!("[request-{n}]"));
            rest = &rest[i + 10..];
        } else {
            out.push_str(&rest[..i + 2]);
            rest = &rest[i + 2..];
        }
    }
    out.push_str(rest);
    out
}

/// "2025-03-14 09:30 UTC" (from [`messages::when`]) becomes "[time]".
fn redact_times(text: &str) -> String {
    let shape = "dddd-dd-dd dd:dd UTC";
    let fits = |s: &[u8]| {
        s.len() >= shape.len()
            && shape.bytes().zip(s).all(|(p, c)| match p {
                b'd' => c.is_ascii_digit(),
                _ => p == *c,
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if fits(&bytes[i..]) {
            out.push_str(&text[start..i]);
            out.push_str("[time]");
            i += shape.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[start..]);
    out
}

#[tokio::test]
async fn scenario_staging_with_postgres() {
    let s = session(FakeDriver::default()).await;
    s.say("ada", "create staging for order-service with Postgres")
        .await;
    s.press("ada", "Create").await;
    assert_snapshot!("scenario_staging_with_postgres__console", s.transcript());
}

#[tokio::test]
async fn scenario_production_deploy_with_approval() {
    let s = session(FakeDriver::default()).await;
    s.say("ada", "deploy order-service 1.4.0 to production")
        .await;
    s.press("ada", "Deploy").await;
    // Four-eyes, then someone outside the approver teams, then a teammate.
    s.press("ada", "Approve").await;
    s.press("ken", "Approve").await;
    s.press("grace", "Approve").await;
    assert_snapshot!(
        "scenario_production_deploy_with_approval__console",
        s.transcript()
    );
}

#[tokio::test]
async fn scenario_denied_by_an_approver() {
    let s = session(FakeDriver::default()).await;
    s.say("ada", "scale order-worker to 5 replicas in production")
        .await;
    s.press("ada", "Scale").await;
    s.press_with_reason("linus", "Deny", "not during the <!here> freeze")
        .await;
    assert_snapshot!("scenario_denied_by_an_approver__console", s.transcript());
}

#[tokio::test]
async fn scenario_amended_then_a_stale_press() {
    let s = session(FakeDriver::default()).await;
    let Handled::Proposed(id) = s.say("grace", "create staging for checkout-api").await else {
        panic!("not proposed");
    };
    let stale = s.sink.find_button("Create").unwrap();
    // A follow-up in the request's thread amends it in place.
    s.echo("grace (in the thread)> also add redis");
    let n = s.events.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let thread = s
        .paver
        .db()
        .outbox()
        .card_ref(&id)
        .await
        .unwrap()
        .expect("the card was posted");
    s.engine
        .handle_message(Inbound {
            event_id: Some(format!("ev-{n}")),
            user: person("grace"),
            conversation: Conversation {
                thread: Some(thread),
                ..console_conv()
            },
            text: "also add redis".into(),
        })
        .await
        .unwrap();
    s.idle().await;
    s.echo("grace> /press Create   (on the card as first shown)");
    s.press_payload("grace", &stale).await;
    s.press("ada", "Cancel").await;
    s.press("grace", "Cancel").await;
    assert_snapshot!(
        "scenario_amended_then_a_stale_press__console",
        s.transcript()
    );
}

#[tokio::test]
async fn scenario_failure_then_retry() {
    let driver = FakeDriver::default();
    driver.then(Err(DriverError::failed(
        "the GitOps remote rejected the push: protected branch".into(),
    )));
    let s = session(driver).await;
    s.say("ada", "restart cart-service in dev").await;
    s.press("ada", "Restart").await;
    s.press("ada", "Retry").await;
    assert_snapshot!("scenario_failure_then_retry__console", s.transcript());
}

#[tokio::test]
async fn scenario_create_it_first() {
    let s = session(FakeDriver::default()).await;
    s.say("ada", "deploy order-worker 2.1.0 to preview").await;
    s.press("ada", "Create it first").await;
    s.press("ada", "Create").await;
    assert_snapshot!("scenario_create_it_first__console", s.transcript());
}

#[tokio::test]
async fn scenario_questions_and_answers() {
    let s = session(FakeDriver::default()).await;
    for (who, text) in [
        ("ada", "hi"),
        ("ada", "help"),
        ("ada", "who owns payment-gateway?"),
        ("ada", "what's the status of order-service?"),
        ("ada", "what's deployed in staging?"),
        ("ada", "scorecard for team-commerce"),
        ("ada", "restart ordr-service in dev"),
        ("ada", "deploy checkout-api to production"),
        ("ada", "scale order-worker to 50 replicas in production"),
        ("ada", "how do I rotate my database credentials?"),
        ("ada", "thanks!"),
        ("mallory", "who owns order-service?"),
        ("mallory", "create staging for order-service"),
    ] {
        s.say(who, text).await;
    }
    assert_snapshot!("scenario_questions_and_answers__console", s.transcript());
}

/// What approvers are told where they look: the copy of the card in the
/// owning team's channel and in a DM (while it waits, and once decided),
/// the thread line mentioning them when no copy is posted, the reminder and
/// the line asking again after a retry.
#[test]
fn approvers_told_where_they_look() {
    use paver::storage::cards::Audience;
    let mut awaiting = request(deploy_production(), RequestState::AwaitingApproval);
    awaiting.confirmed_hash = Some(awaiting.action_hash.clone());
    let mentions = ["<@U0GRACE>".to_owned(), "<@U0LINUS>".to_owned()];
    let copy = |req: &Request, audience, mentions: &[String]| {
        messages::approval_copy(card(req, None), req, audience, mentions)
    };
    three_ways(
        "approval_copy_in_channel",
        &copy(&awaiting, Audience::Channel, &mentions),
    );
    three_ways(
        "approval_copy_direct",
        &copy(&awaiting, Audience::Direct, &mentions[..1]),
    );
    let mut approved = awaiting.clone();
    approved.state = RequestState::Approved;
    approved.approver = Some("grace".into());
    three_ways(
        "approval_copy_after_the_decision",
        &copy(&approved, Audience::Channel, &mentions),
    );
    three_ways(
        "approval_needed_mentioning",
        &messages::approval_needed_mentioning(&awaiting, "production changes", &mentions),
    );
    three_ways(
        "approval_reminder",
        &messages::approval_reminder(&awaiting, Audience::Channel, &mentions),
    );
    three_ways(
        "approval_reminder_direct",
        &messages::approval_reminder(&awaiting, Audience::Direct, &mentions[..1]),
    );
    three_ways(
        "approval_asked_again",
        &messages::approval_asked_again(Audience::Channel, &mentions),
    );
}

/// Deny asks why: the card once denied (who, and why in their words, with
/// markup neutralised so a reason cannot ping a channel), the line in the
/// thread, and the refusal of a Deny that came without a reason.
#[test]
fn denied_with_a_reason() {
    let mut denied = request(deploy_production(), RequestState::Denied);
    denied.confirmed_hash = Some(denied.action_hash.clone());
    denied.denied_by = Some("linus".into());
    denied.denial_reason = Some("not during the freeze; <!channel> see `RFC-12`\nthanks".into());
    three_ways("card_denied_with_a_reason", &card(&denied, None));
    let reason = paver::domain::Reason::parse("not during the freeze <@U0ADA>").unwrap();
    three_ways(
        "denied_by_with_a_reason",
        &paver::chat::notices::denied_by(&UserName::parse("linus").unwrap(), &reason),
    );
    three_ways(
        "reason_needed",
        &paver::chat::notices::reason_needed(paver::chat::ButtonOp::Deny),
    );
}

// ----- scorecard nags ------------------------------------------------------

/// Button payloads carry random ids and nonces: fixed ones for snapshots.
fn fixed_payloads(mut m: Message) -> Message {
    for b in &mut m.buttons {
        let op = b.payload.split(':').next().unwrap_or("").to_owned();
        b.payload = format!("{op}:n-item:nonce");
    }
    m
}

#[test]
fn scorecard_digests() {
    use paver::chat::scorecards::LineStatus;
    use paver::scorecards::config::NagsConfig;
    use paver::scorecards::nags::Mode;
    use paver::storage::nags::{DigestBody, DigestEntry};
    // team-commerce's first digest over the sample catalog, and the first
    // line in its thread, as the flow posts them.
    let slack = support::RecordingSink::default();
    // One thread: the scenario tests beside this one are timing-sensitive.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (digest, line) = rt.block_on(async {
        let paver = TestPaver::builder()
            .settings(paver::engine::EngineSettings {
                scorecards: paver::scorecards::ScorecardsConfig {
                    nags: Some(NagsConfig::default()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .sink("slack", std::sync::Arc::new(slack.clone()))
            .start()
            .await;
        let team = TeamName::parse("team-commerce").unwrap();
        paver
            .engine
            .scorecards()
            .run_nags(chrono::Utc::now(), Some(&team), Mode::Now)
            .await
            .unwrap();
        paver.idle().await;
        let posts: Vec<Message> = slack
            .all()
            .into_iter()
            .filter_map(|s| match s {
                support::Sent::Post { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        (posts[0].clone(), fixed_payloads(posts[1].clone()))
    });
    drop(rt);
    three_ways("nag_digest_team_commerce", &digest);
    three_ways("nag_digest_line", &line);
    // A later digest: what changed, a won't-fix listed apart, a snoozed
    // check left out, and lines as people pressed their buttons.
    let entry = |service: &str, check: &str, weight: &str, item: Option<&str>| DigestEntry {
        service: service.into(),
        check: check.into(),
        weight: weight.into(),
        line: format!("{check} ({weight}): failing. Fix it."),
        level: "below Bronze".into(),
        item: item.map(str::to_owned),
        wont_fix: None,
    };
    let mut wont = entry("order-service", "has-cost-tags", "low", None);
    wont.wont_fix = Some(("charged to the platform budget".into(), "bob".into()));
    let body = DigestBody {
        entries: vec![
            entry("cart-service", "ci-passing", "critical", Some("n-1")),
            entry("cart-service", "has-techdocs", "high", Some("n-2")),
            entry("order-service", "ci-passing", "critical", Some("n-3")),
            wont,
        ],
        newly_failing: vec!["cart-service/has-techdocs".into()],
        fixed: vec!["cart-service/has-monitoring".into()],
        first: false,
        snoozed: 1,
    };
    let status = |e: &DigestEntry| match e.item.as_deref() {
        Some("n-1") => LineStatus::PassingNow { by: "alice".into() },
        Some("n-2") => LineStatus::Snoozed {
            by: "alice".into(),
            until: "7 Dec".into(),
        },
        _ => LineStatus::Open,
    };
    three_ways(
        "nag_digest_later",
        &say_scorecard::digest("team-commerce", &body, &status),
    );
    three_ways(
        "nag_digest_line_still_failing",
        &say_scorecard::digest_line(
            &body.entries[2],
            "nonce",
            &LineStatus::StillFailing { by: "grace".into() },
        ),
    );
    three_ways(
        "nag_escalation",
        &say_scorecard::escalation("team-commerce", &body.entries[2], 3, Some("U0ALICE")),
    );
    three_ways(
        "nag_wont_fix_needs_a_reason",
        &say_scorecard::wont_fix_needs_reason("has-cost-tags on order-service"),
    );
}

/// Office hours without an LLM: sections quoted with links, and "I don't
/// know" with the nearest section and where to ask.
#[test]
fn docs_answers() {
    use paver::chat::docs::{answer, dont_know, Quoted};
    let rotate = Quoted {
        heading_path: "PostgreSQL › Rotating credentials".into(),
        url: "https://docs.example.internal/databases/postgres/#rotating-credentials".into(),
        text: "Run `plat db rotate-credentials order-service --env production`. The new password is written to Vault and services pick it up on their next restart; the old one stays valid for 24 hours so nothing breaks mid-deploy. <!channel> never paste credentials in chat.".into(),
    };
    three_ways(
        "docs_answer",
        &answer(
            "how do I rotate the db creds for order-service?",
            std::slice::from_ref(&rotate),
        ),
    );
    three_ways(
        "docs_dont_know",
        &dont_know(
            "what is the wifi password?",
            Some(&rotate),
            Some("C0PLATFORM"),
        ),
    );
}

/// Office hours with humans in the loop: the answer with its feedback
/// buttons as it stands, the handoff to the platform team, the relay, the
/// agenda, and the refusals.
#[test]
fn office_hours_messages() {
    use paver::chat::docs::{answer, dont_know, Quoted};
    use paver::chat::office_hours as say;
    use paver::storage::questions::{Cited, Handoff, Question, Votes};
    let rotate = Quoted {
        heading_path: "PostgreSQL › Rotating credentials".into(),
        url: "https://docs.example.internal/databases/postgres/#rotating-credentials".into(),
        text: "Run `plat db rotate-credentials order-service --env production`.".into(),
    };
    let known = Question {
        id: "q-abc123".into(),
        nonce: "n0nce".into(),
        platform: Platform::Slack,
        channel: "C0CHECKOUT".into(),
        thread: Some("1700000000.000100".into()),
        asker_id: "U0BOB".into(),
        asker_name: "bob".into(),
        question: "how do I rotate the db creds for order-service?".into(),
        known: true,
        sources: vec![Cited {
            path: "docs/databases/postgres.md".into(),
            heading: rotate.heading_path.clone(),
            url: rotate.url.clone(),
        }],
        answer_json: String::new(),
        office_hours_at: None,
        agenda_period: None,
        handoff: None,
        handoff_by: None,
        handoff_at: None,
        handoff_platform: None,
        handoff_channel: None,
        answered_by: None,
        answer_text: None,
        answered_at: None,
        created_at: 1_764_300_000_000,
    };
    let answered = answer(&known.question, std::slice::from_ref(&rotate));
    three_ways(
        "office_hours_answer",
        &say::answer_card(&answered, &known, Votes::default(), None),
    );
    let asked = Question {
        handoff: Some(Handoff::Asked),
        handoff_platform: Some(Platform::Slack),
        handoff_channel: Some("C0PLATFORM".into()),
        ..known.clone()
    };
    three_ways(
        "office_hours_answer_voted_and_asked",
        &say::answer_card(
            &answered,
            &asked,
            Votes {
                helpful: 2,
                not_helpful: 1,
            },
            Some("<#C0PLATFORM>"),
        ),
    );
    let unknown = Question {
        question: "do we have GPU nodes for training ML models?".into(),
        known: false,
        sources: Vec::new(),
        ..known.clone()
    };
    let not_known = dont_know(&unknown.question, None, Some("C0PLATFORM"));
    three_ways(
        "office_hours_dont_know",
        &say::answer_card(&not_known, &unknown, Votes::default(), None),
    );
    let tagged_answered = Question {
        office_hours_at: Some(1),
        handoff: Some(Handoff::Answered),
        ..unknown.clone()
    };
    three_ways(
        "office_hours_dont_know_answered_and_tagged",
        &say::answer_card(&not_known, &tagged_answered, Votes::default(), None),
    );
    let link = say::thread_link(Platform::Slack, "C0CHECKOUT", Some("1700000000.000100"));
    three_ways(
        "office_hours_handoff",
        &say::handoff(
            &asked,
            &link,
            &say::what_paver_answered(true),
            &[(rotate.heading_path.clone(), rotate.url.clone())],
        ),
    );
    let relayed = Question {
        handoff: Some(Handoff::Answered),
        answered_by: Some("omar".into()),
        office_hours_at: Some(1),
        ..unknown.clone()
    };
    three_ways(
        "office_hours_handoff_answered",
        &say::handoff(&relayed, &link, &say::what_paver_answered(false), &[]),
    );
    three_ways("office_hours_handed_off", &say::handed_off("<#C0PLATFORM>"));
    three_ways(
        "office_hours_relayed",
        &say::relayed(
            "U0BOB",
            "omar",
            "Not yet <!channel> — GPU nodes land next quarter, see `#infra-gpu`.",
            "https://slack.com/archives/C0PLATFORM/p1700000001000200",
        ),
    );
    three_ways(
        "office_hours_page_failed",
        &say::page_failed(
            "<#C0PLATFORM>",
            "the on-call webhook answered 500 Internal Server Error",
        ),
    );
    three_ways("office_hours_stale_button", &say::stale_button());
    three_ways("office_hours_not_the_asker", &say::not_the_asker("bob"));
    three_ways(
        "office_hours_no_platform_channel",
        &say::no_platform_channel(),
    );
    three_ways(
        "office_hours_agenda",
        &say::agenda(
            "3 Dec",
            &[
                say::AgendaItem {
                    question: "do we have GPU nodes for training ML models?".into(),
                    asker: "bob".into(),
                    asked: "28 Nov".into(),
                    known: false,
                    not_helpful: 0,
                    handoff: Some(Handoff::Asked),
                },
                say::AgendaItem {
                    question: "how do I rotate the db creds for order-service?".into(),
                    asker: "carol".into(),
                    asked: "1 Dec".into(),
                    known: true,
                    not_helpful: 2,
                    handoff: Some(Handoff::Answered),
                },
            ],
        ),
    );
}

/// Office hours with an LLM: the model's short answer, its citations
/// numbering the sources listed under it with their links; a mention or
/// markup in it cannot ping or break the message.
#[test]
fn docs_written_answers() {
    use paver::chat::docs::{written, Cited};
    let sources = [
        Cited {
            heading_path: "PostgreSQL › Rotating credentials".into(),
            url: "https://docs.example.internal/databases/postgres/#rotating-credentials".into(),
        },
        Cited {
            heading_path: "Secrets and Vault › Where secrets live".into(),
            url: "https://docs.example.internal/secrets/#where-secrets-live".into(),
        },
    ];
    three_ways(
        "docs_written_answer",
        &written(
            "how do I rotate the db creds for order-service?",
            "Run `plat db rotate-credentials orders-db --env production` [1]. The new password is written to Vault under `secret/order-service/production` [2]; the old one stays valid for 24 hours [1]. <!channel> @here",
            &sources,
        ),
    );
}

/// The platform report's weekly digest: headline figures, the top
/// unanswered topics, and the chart's legend.
#[test]
fn report_digest() {
    use paver::chat::report::{digest, DigestFigures};
    let d = DigestFigures {
        window: "2026-10-26 to 2026-11-22".into(),
        figures: vec![
            ("Requests".into(), "212".into()),
            (
                "Request to URL".into(),
                "p50 6m 10s · p90 1h 2m (n=58)".into(),
            ),
            ("Change failure".into(), "12.5% (6/48)".into()),
            ("Time to restore".into(), "n/a (n=0)".into()),
        ],
        topics: vec![
            ("db password rotate".into(), 9),
            ("dashboard grafana".into(), 4),
        ],
        chart: true,
        weeks: 4,
    };
    three_ways("report_digest", &digest(&d));
    three_ways(
        "report_digest_quiet_weeks",
        &digest(&DigestFigures {
            topics: Vec::new(),
            chart: false,
            ..d
        }),
    );
}
