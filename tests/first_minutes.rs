//! What a new user meets first: small talk, "did you mean", a whole
//! environment at a glance, a card that says what is missing before anyone
//! approves it, Retry only where a retry can help — on SQLite, and on
//! PostgreSQL when PAVER_TEST_DATABASE_URL is set.

mod support;

use std::path::Path;
use std::sync::Arc;

use paver::catalog::Catalog;
use paver::domain::RequestState;
use paver::domain::{Action, Environment};
use paver::drivers::DriverError;
use paver::engine::EngineSettings;
use paver::engine::Handled;
use support::paver::TestPaver;
use support::FakeDriver;

fn last_text(h: &TestPaver) -> String {
    h.sink
        .transcript()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Paver with the catalog it ships with.
async fn shipped(driver: FakeDriver) -> TestPaver {
    TestPaver::builder()
        .catalog_file("config/catalog.yaml")
        .fake_driver(driver)
        .start()
        .await
}

#[tokio::test]
async fn greetings_and_thanks_get_one_line_and_thread_chatter_none() {
    let h = shipped(FakeDriver::default()).await;
    assert_eq!(h.say("ada", "hi").await, Handled::Replied);
    assert!(last_text(&h).contains("say `help`"), "{}", last_text(&h));
    assert_eq!(h.say("ada", "thanks!").await, Handled::Replied);
    assert!(last_text(&h).contains("You're welcome"));
    let before = h.sink.all().len();
    assert_eq!(
        h.say_in("ada", "thanks!", Some("ts-9")).await,
        Handled::Ignored
    );
    assert_eq!(h.say("ada", "👍").await, Handled::Ignored);
    assert_eq!(h.sink.all().len(), before);
}

#[tokio::test]
async fn an_unknown_service_gets_the_closest_names() {
    let h = shipped(FakeDriver::default()).await;
    h.say("ada", "deploy ordr-api 1.0 to staging").await;
    let text = last_text(&h);
    assert!(
        text.contains("order-service") && text.contains("order-worker"),
        "{text}"
    );
}

#[tokio::test]
async fn what_runs_in_an_environment_lists_every_service() {
    let h = shipped(FakeDriver::default()).await;
    assert_eq!(
        h.say("ada", "what's deployed in staging?").await,
        Handled::Replied
    );
    let t = h.sink.transcript();
    assert!(t.contains("What runs in staging"), "{t}");
    for s in ["order-service", "checkout-api", "payment-gateway"] {
        assert!(t.contains(s), "{s} missing from {t}");
    }
}

#[tokio::test]
async fn a_missing_environment_is_on_the_card_with_its_fix() {
    let driver = FakeDriver {
        absent: vec![Environment::Production, Environment::Preview],
        ..FakeDriver::default()
    };
    let h = shipped(driver.clone()).await;
    let id = h.propose("ada", "deploy order-service 1.4.0 to prod").await;
    h.idle().await;
    let card = h.latest_card(&id);
    let labels: Vec<&str> = card.buttons.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["Create it first", "Cancel"]);
    assert!(card
        .context
        .as_deref()
        .unwrap_or("")
        .contains("order-service has no production environment yet"));

    h.press("ada", &id, "Create it first").await;
    assert_eq!(
        h.db().requests().get(&id).await.unwrap().state,
        RequestState::Cancelled
    );
    // The fix is proposed in its place, for ada to confirm (and an approver to approve).
    let proposed = h
        .db()
        .requests()
        .in_state(RequestState::Proposed)
        .await
        .unwrap();
    assert_eq!(proposed.len(), 1);
    assert_eq!(
        proposed[0].action,
        Action::CreateEnvironment {
            service: paver::domain::ServiceName::parse("order-service").unwrap(),
            environment: Environment::Production,
            resources: vec![],
        }
    );
    assert_eq!(driver.calls(), 0, "nothing ran");
}

#[tokio::test]
async fn retry_is_offered_only_where_a_retry_can_help() {
    let driver = FakeDriver::default();
    driver.then(Err(DriverError::InvalidRequest(
        "order-service staging has no earlier version than 1.0.0 to roll back to".into(),
    )));
    driver.then(Err(DriverError::failed("quota exceeded".into())));
    let h = shipped(driver.clone()).await;
    let id = h.propose("ada", "roll back order-service in staging").await;
    h.press("ada", &id, "Roll back").await;
    assert!(h.latest_card(&id).buttons.is_empty());
    assert!(h.sink.transcript().contains("would fail the same way"));

    let id = h.propose("ada", "restart order-service in staging").await;
    h.press("ada", &id, "Restart").await;
    assert_eq!(h.latest_card(&id).buttons[0].label, "Retry");
}

/// Every example `help` gives names what the shipped catalog has.
#[test]
fn every_help_example_works_on_the_shipped_catalog() {
    let catalog = Catalog::from_yaml_file(Path::new("config/catalog.yaml")).unwrap();
    let parser = paver::nlu::RulesParser::new(&catalog);
    let help = paver::chat::messages::help();
    let examples: Vec<&str> = help
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("• "))
        .collect();
    assert!(examples.len() >= 10);
    for e in examples {
        let parsed = parser.parse(e);
        assert!(
            !matches!(parsed.action, Action::Clarify { .. } | Action::Nothing),
            "{e:?} → {:?}",
            parsed.action
        );
    }
}

/// The size on the card is the size the driver writes.
#[tokio::test]
async fn the_golden_path_on_the_card_is_what_the_driver_receives() {
    use paver::domain::{GoldenPath, ResourceKind, ResourceSize};
    use paver::drivers::gitops::{GitOpsConfig, GitOpsDriver};
    let configured: std::collections::BTreeMap<ResourceKind, ResourceSize> =
        toml::from_str("[postgres]\ntitle = \"PostgreSQL\"\nversion = \"17\"\nmemory = \"8Gi\"\n")
            .unwrap();
    let golden = GoldenPath::merged(configured);
    let repo = tempfile::tempdir().unwrap();
    let gitops = GitOpsDriver::open(GitOpsConfig {
        repo: repo.path().to_path_buf(),
        ..GitOpsConfig::default()
    })
    .await
    .unwrap()
    .with_golden_path(golden.clone());
    let h = TestPaver::builder()
        .catalog_file("config/catalog.yaml")
        .driver(Arc::new(gitops))
        .settings(EngineSettings {
            golden_path: golden,
            ..EngineSettings::default()
        })
        .start()
        .await;
    let id = h
        .propose("ada", "create staging for order-service with Postgres")
        .await;
    h.idle().await;
    let card = h.latest_card(&id);
    assert!(card
        .fields
        .iter()
        .any(|(k, v)| k == "Resource: postgres" && v == "PostgreSQL 17 · 8Gi memory"));
    h.press("ada", &id, "Create").await;
    let yaml =
        std::fs::read_to_string(repo.path().join("services/order-service/staging.yaml")).unwrap();
    assert!(
        yaml.contains("version: '17'") || yaml.contains("version: \"17\""),
        "{yaml}"
    );
    assert!(yaml.contains("memory: 8Gi"), "{yaml}");
    assert!(!yaml.contains("title"), "{yaml}");
}

/// An amendment to an environment that does not exist is checked too.
#[tokio::test]
async fn an_amendment_to_a_missing_environment_offers_the_fix() {
    let driver = FakeDriver {
        absent: vec![Environment::Production, Environment::Preview],
        ..FakeDriver::default()
    };
    let h = shipped(driver.clone()).await;
    let id = h
        .propose("ada", "deploy order-service 1.4.0 to staging")
        .await;
    h.idle().await;
    assert_eq!(h.latest_card(&id).buttons[0].label, "Deploy");
    h.reply_in_thread("ada", &id, "make it production instead")
        .await;
    let labels: Vec<String> = h
        .latest_card(&id)
        .buttons
        .iter()
        .map(|b| b.label.clone())
        .collect();
    assert_eq!(labels, ["Create it first", "Cancel"]);
    assert_eq!(driver.calls(), 0);
}
