//! The request lifecycle end to end through the engine: parse, propose,
//! confirm, approve, execute, audit — on SQLite, and on PostgreSQL when
//! PAVER_TEST_DATABASE_URL is set (`.ci/run` does both).

mod support;

use std::time::Duration;

use paver::catalog::{Catalog, SharedCatalog};
use paver::chat::{ButtonPayload, Inbound, SendError};
use paver::domain::RequestState;
use paver::drivers::DriverError;
use paver::engine::Handled;
use paver::storage::Updates;
use support::paver::{conv, user, TestPaver};
use support::{FakeDriver, Sent, SAMPLE_CATALOG};

async fn harness_with(driver: FakeDriver) -> TestPaver {
    TestPaver::builder().fake_driver(driver).start().await
}

async fn harness_on(catalog: Catalog, driver: FakeDriver) -> TestPaver {
    TestPaver::builder()
        .catalog(catalog)
        .fake_driver(driver)
        .start()
        .await
}

async fn harness() -> TestPaver {
    TestPaver::start().await
}

#[tokio::test]
async fn a_staging_request_runs_on_the_requesters_confirmation() {
    let h = harness().await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    let card = h.latest_card(&id);
    assert_eq!(
        card.title.as_deref(),
        Some("Create staging for order-service with postgres")
    );
    assert!(card
        .fields
        .iter()
        .any(|(k, v)| k == "Resource: postgres" && v.contains("PostgreSQL 16")));
    assert!(card
        .fields
        .iter()
        .any(|(k, v)| k == "Owner" && v == "team-commerce"));
    assert_eq!(card.buttons[0].label, "Create");
    assert_eq!(card.buttons[1].label, "Cancel");
    // The button carries the request id and a nonce, nothing of the action.
    let p = ButtonPayload::parse(&card.buttons[0].payload).unwrap();
    assert_eq!(p.request_id, id);
    assert!(!card.buttons[0].payload.contains("order-service"));
    assert_eq!(h.driver.calls(), 0, "nothing runs before a button press");

    h.press("alice", &id, "Create").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Succeeded);
    assert_eq!(
        req.result_url.as_deref(),
        Some("https://order-service.staging.example.internal")
    );
    assert_eq!(h.driver.calls(), 1);
    let job = h.driver.jobs.lock().unwrap()[0].clone();
    assert_eq!(job.requester, "alice");
    assert!(job.idempotency_key.starts_with(&id));

    // The card was updated in place, and the URL went to its thread.
    let sent = h.sink.all();
    let card_ref = sent
        .iter()
        .find_map(|s| match s {
            Sent::Post { message, r#ref, .. } if message.title.is_some() => Some(r#ref.clone()),
            _ => None,
        })
        .unwrap();
    assert!(sent
        .iter()
        .any(|s| matches!(s, Sent::Update { r#ref, .. } if *r#ref == card_ref)));
    assert!(sent.iter().any(|s| matches!(s, Sent::Post { thread: Some(t), message, .. }
        if *t == card_ref && message.text.contains("https://order-service.staging.example.internal"))));
    let done = h.latest_card(&id);
    assert!(done.buttons.is_empty());
    assert!(done
        .fields
        .iter()
        .any(|(k, v)| k == "Status" && v == "Done"));

    // The audit log: who did what, from which chat, in order.
    let events = h.db().requests().events(&id).await.unwrap();
    let trail: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.transition.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("propose", "alice"),
            ("confirm", "alice"),
            ("auto_approve", "policy"),
            ("start", "executor"),
            ("succeed", "executor")
        ]
    );
    assert_eq!(events[1].chat, "console:alice");
}

#[tokio::test]
async fn a_double_click_executes_once() {
    let h = harness_with(FakeDriver {
        delay: Duration::from_millis(100),
        ..FakeDriver::default()
    })
    .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    let payload = h.button(&id, "Restart").unwrap();
    let (alice, c) = (user("alice"), conv());
    let (a, b) = tokio::join!(
        h.engine.handle_button(&alice, &c, &payload),
        h.engine.handle_button(&alice, &c, &payload),
    );
    a.unwrap();
    b.unwrap();
    h.idle().await;
    // And a retried press long after.
    h.engine
        .handle_button(&user("alice"), &conv(), &payload)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert!(h.whispers_to("alice").iter().any(|w| w.contains("already")));
}

#[tokio::test]
async fn production_needs_another_member_of_the_owning_team() {
    let h = harness().await;
    let id = h
        .propose("alice", "deploy checkout-api 2.3.1 to prod")
        .await;
    h.press("alice", &id, "Deploy").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::AwaitingApproval);
    assert!(req.approval_expires_at.is_some());
    let card = h.latest_card(&id);
    assert_eq!(
        card.buttons
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>(),
        ["Approve", "Deny", "Cancel"]
    );
    assert!(h.sink.transcript().contains("Approval needed"));

    // Four-eyes: the requester cannot approve, nor can an outsider.
    h.press("alice", &id, "Approve").await;
    h.press("bob", &id, "Approve").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    assert!(!h.whispers_to("alice").is_empty());
    assert!(!h.whispers_to("bob").is_empty());
    assert_eq!(h.driver.calls(), 0);

    h.press("dave", &id, "Approve").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Succeeded);
    assert_eq!(req.approver.as_deref(), Some("dave"));
    assert_eq!(
        h.driver.jobs.lock().unwrap()[0].approver.as_deref(),
        Some("dave")
    );
    let approvals = h.db().requests().approvals(&id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approver, "dave");
    assert_eq!(approvals[0].action_hash, req.action_hash);
    // Approving again is a no-op.
    h.engine
        .handle_button(&user("carol"), &conv(), &replay(&h, &id, "approve").await)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
}

/// A payload as a replayed (old) click would carry it.
async fn replay(h: &TestPaver, id: &str, op: &str) -> String {
    let req = h.db().requests().get(id).await.unwrap();
    format!("{op}:{id}:{}", req.nonce)
}

#[tokio::test]
async fn platform_team_approves_and_denials_stop_everything() {
    let h = harness().await;
    let id = h
        .propose("bob", "destroy staging for payment-service")
        .await;
    let card = h.latest_card(&id);
    assert!(
        card.buttons[0].confirm.is_some(),
        "destructive buttons ask first"
    );
    h.press("bob", &id, "Destroy").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    // A Deny without a reason (what every chat opens a form for) denies
    // nothing: carol is asked why.
    h.press("carol", &id, "Deny").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    assert!(
        h.whispers_to("carol")
            .iter()
            .any(|w| w.contains("Deny needs a reason")),
        "{:?}",
        h.whispers_to("carol")
    );
    h.press_with_reason("carol", &id, "Deny", "not before the freeze ends")
        .await;
    assert_eq!(h.request(&id).await.state, RequestState::Denied);
    assert_eq!(h.driver.calls(), 0);
    // A replayed approve after the denial does nothing.
    h.engine
        .handle_button(&user("omar"), &conv(), &replay(&h, &id, "approve").await)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Denied);
    assert_eq!(h.driver.calls(), 0);
}

#[tokio::test]
async fn policy_denials_say_why_and_offer_no_buttons() {
    let h = harness().await;
    let id = h
        .propose("alice", "scale order-worker to 50 replicas in staging")
        .await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Denied);
    assert!(h.latest_card(&id).buttons.is_empty());
    assert!(
        h.sink.transcript().contains("Not allowed"),
        "{}",
        h.sink.transcript()
    );
    assert!(
        h.sink.transcript().contains("20"),
        "the limit is named: {}",
        h.sink.transcript()
    );
    assert_eq!(h.driver.calls(), 0);
}

#[tokio::test]
async fn only_the_requester_confirms_and_forged_buttons_fail() {
    let h = harness().await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("dave", &id, "Restart").await;
    assert_eq!(h.request(&id).await.state, RequestState::Proposed);
    assert!(h.whispers_to("dave")[0].contains("Only alice"));
    for forged in [
        format!("confirm:{id}:wrongnonce"),
        "confirm:r-nope:x".into(),
        "rm -rf".into(),
    ] {
        h.engine
            .handle_button(&user("alice"), &conv(), &forged)
            .await
            .unwrap();
    }
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Proposed);
    assert_eq!(h.whispers_to("alice").len(), 3);
    h.press("alice", &id, "Cancel").await;
    assert_eq!(h.request(&id).await.state, RequestState::Cancelled);
    assert_eq!(h.driver.calls(), 0);
}

#[tokio::test]
async fn a_failure_is_kept_and_retried_by_a_button() {
    let h = harness().await;
    h.driver
        .then(Err(DriverError::failed("the cluster said no".into())));
    let id = h
        .propose("alice", "create a dev env for cart-service with redis")
        .await;
    h.press("alice", &id, "Create").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Failed);
    assert_eq!(req.error.as_deref(), Some("the cluster said no"));
    assert!(h.sink.transcript().contains("the cluster said no"));
    assert_eq!(h.latest_card(&id).buttons[0].label, "Retry");
    h.press("alice", &id, "Retry").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Succeeded);
    assert_eq!(req.error, None);
    assert_eq!(h.driver.calls(), 2);
}

#[tokio::test]
async fn transient_failures_are_retried_within_the_job() {
    let h = harness().await;
    h.driver.then(Err(DriverError::Unreachable(
        "503 from the orchestrator".into(),
    )));
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("alice", &id, "Restart").await;
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    let jobs = h.driver.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].idempotency_key, jobs[1].idempotency_key);
}

#[tokio::test]
async fn redelivered_events_are_not_processed_twice() {
    let h = harness().await;
    let msg = Inbound {
        event_id: Some("Ev123".into()),
        user: user("alice"),
        conversation: conv(),
        text: "restart cart-service in dev".into(),
    };
    assert!(matches!(
        h.engine.handle_message(msg.clone()).await.unwrap(),
        Handled::Proposed(_)
    ));
    assert_eq!(
        h.engine.handle_message(msg).await.unwrap(),
        Handled::Duplicate
    );
}

#[tokio::test]
async fn unknown_users_read_but_do_not_request() {
    let h = harness().await;
    assert_eq!(
        h.say("mallory", "deploy checkout-api to prod").await,
        Handled::Replied
    );
    assert!(h.sink.transcript().contains("don't know mallory"));
    assert_eq!(
        h.say("mallory", "who owns checkout?").await,
        Handled::Replied
    );
    // By default (`policy.unknown_users = "none"`) no ownership data.
    assert!(!h.sink.transcript().contains("owned by"));
    assert!(h.sink.transcript().contains("can't share ownership"));
    // Thanks get a one-line answer; chatter gets none.
    assert_eq!(h.say("mallory", "thanks!").await, Handled::Replied);
    assert_eq!(h.say("mallory", "lol").await, Handled::Ignored);
}

#[tokio::test]
async fn questions_get_answers_without_a_request() {
    let h = harness().await;
    for (text, expect) in [
        ("help", "what I can do"),
        (
            "deploy payment to staging",
            "payment-gateway, payment-service",
        ),
        ("scorecard for team-data", "recommendation-engine"),
        ("status of order-service", "Status of order-service"),
    ] {
        assert_eq!(h.say("alice", text).await, Handled::Replied, "{text}");
        assert!(
            h.sink.transcript().contains(expect),
            "{text}: {}",
            h.sink.transcript()
        );
    }
}

#[tokio::test]
async fn a_restart_resumes_what_was_executing() {
    let h = harness().await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    // Simulate a crash after the executor took the job.
    let store = h.db().requests();
    for t in [
        paver::domain::Transition::Confirm,
        paver::domain::Transition::AutoApprove,
        paver::domain::Transition::Start,
    ] {
        assert!(store
            .transition(&id, t, "test", "test", "", Updates::default())
            .await
            .unwrap()
            .applied());
    }
    h.engine.recover().await.unwrap();
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert_eq!(h.driver.calls(), 1);
    // Recovering again finds nothing to do.
    h.engine.recover().await.unwrap();
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
}

#[tokio::test]
async fn a_restart_fails_what_cannot_be_resumed_safely() {
    let h = harness_with(FakeDriver {
        resumable: false,
        ..FakeDriver::default()
    })
    .await;
    let id = h.propose("alice", "restart cart-service in dev").await;
    let store = h.db().requests();
    for t in [
        paver::domain::Transition::Confirm,
        paver::domain::Transition::AutoApprove,
        paver::domain::Transition::Start,
    ] {
        store
            .transition(&id, t, "test", "test", "", Updates::default())
            .await
            .unwrap();
    }
    h.engine.recover().await.unwrap();
    h.idle().await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Failed);
    assert!(req.error.unwrap().contains("restarted"));
    assert_eq!(h.driver.calls(), 0);
}

#[tokio::test]
async fn unanswered_approvals_expire() {
    let h = harness().await;
    let id = h
        .propose("alice", "restart checkout-api in production")
        .await;
    h.press("alice", &id, "Restart").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    h.clock().approval_window_closed(&id).await;
    h.sweep().await;
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Expired);
    assert!(h.button(&id, "Approve").is_none() || h.latest_card(&id).buttons.is_empty());
    h.engine
        .handle_button(&user("dave"), &conv(), &replay(&h, &id, "approve").await)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Expired);
    assert_eq!(h.driver.calls(), 0);
}

/// A proposal nobody confirmed expires a day after it was made (the
/// sweeper reads only those due); a younger one, and one made long ago but
/// confirmed, are left alone.
#[tokio::test]
async fn proposals_nobody_confirms_expire_after_a_day() {
    let h = harness().await;
    let stale = h.propose("alice", "restart cart-service in dev").await;
    let fresh = h.propose("alice", "restart checkout-api in dev").await;
    let pressed = h.propose("alice", "restart payment-service in dev").await;
    h.press("alice", &pressed, "Restart").await;
    h.idle().await;
    let pressed_state = h.request(&pressed).await.state;
    assert_ne!(pressed_state, RequestState::Proposed);
    h.clock()
        .made_ago(&stale, Duration::from_secs(25 * 3600))
        .await;
    h.clock()
        .made_ago(&fresh, Duration::from_secs(23 * 3600))
        .await;
    h.clock()
        .made_ago(&pressed, Duration::from_secs(25 * 3600))
        .await;
    h.sweep().await;
    h.idle().await;
    assert_eq!(h.request(&stale).await.state, RequestState::Expired);
    assert_eq!(h.request(&fresh).await.state, RequestState::Proposed);
    assert_eq!(h.request(&pressed).await.state, pressed_state);
}

/// The outbox delivers through a flaky chat platform without losing or
/// duplicating anything, and keeps updates behind their card.
#[tokio::test]
async fn the_outbox_survives_a_flaky_chat_platform() {
    let h = harness().await;
    {
        let mut f = h.sink.fail_next.lock().unwrap();
        f.push_back(SendError::Transient("500".into()));
        f.push_back(SendError::RateLimited(Duration::from_millis(50)));
    }
    let id = h.propose("alice", "restart cart-service in dev").await;
    h.press("alice", &id, "Restart").await;
    let posts = h
        .sink
        .all()
        .iter()
        .filter(|s| matches!(s, Sent::Post { message, .. } if message.title.is_some()))
        .count();
    assert_eq!(posts, 1, "the card was posted exactly once");
    assert!(h.sink.attempts.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert_eq!(h.db().outbox().pending_count().await.unwrap(), 0);
}

/// Four-eyes is about people: a second catalog user sharing the requester's
/// email is the requester, and a chat account two catalog users claim is
/// nobody Paver knows (it can neither request nor approve).
#[tokio::test]
async fn catalog_users_sharing_an_identity_are_one_person_or_nobody() {
    let extra = r#"
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice-admin}
spec:
  profile: {email: Alice@Example.com}
  memberOf: [team-commerce, team-platform]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: dup-one
  annotations: {discord.com/user-id: "4242"}
spec: {memberOf: [team-commerce, team-platform]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: dup-two
  annotations: {discord.com/user-id: "4242"}
spec: {memberOf: [team-commerce, team-platform]}
"#;
    let text = std::fs::read_to_string(SAMPLE_CATALOG).unwrap() + extra;
    let catalog = Catalog::from_yaml_str(&text, "test");
    assert_eq!(catalog.identity_conflicts().len(), 2);
    let h = harness_on(catalog.clone(), FakeDriver::default()).await;
    let id = h
        .propose("alice", "deploy checkout-api 2.3.1 to prod")
        .await;
    h.press("alice", &id, "Deploy").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);

    h.press("alice-admin", &id, "Approve").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    assert!(
        h.whispers_to("alice-admin")
            .iter()
            .any(|w| w.contains("four-eyes")),
        "{:?}",
        h.whispers_to("alice-admin")
    );

    // Discord id 4242 belongs to two catalog users: the adapter knows nobody.
    let shared = SharedCatalog::new(catalog);
    let ambiguous = paver::discord::chat_user(&shared, "4242");
    assert_eq!(ambiguous.catalog, None);
    let payload = h.button(&id, "Approve").unwrap();
    h.engine
        .handle_button(&ambiguous, &conv(), &payload)
        .await
        .unwrap();
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    assert!(
        h.whispers_to("4242")
            .iter()
            .any(|w| w.contains("don't know")),
        "{:?}",
        h.whispers_to("4242")
    );
    let handled = h
        .engine
        .handle_message(Inbound {
            event_id: Some("ev-ambiguous".into()),
            user: ambiguous,
            conversation: conv(),
            text: "restart cart-service in dev".into(),
        })
        .await
        .unwrap();
    h.idle().await;
    assert!(!matches!(handled, Handled::Proposed(_)), "{handled:?}");
    assert_eq!(h.driver.calls(), 0);

    // Someone else entirely still can.
    h.press("carol", &id, "Approve").await;
    assert_ne!(h.request(&id).await.state, RequestState::AwaitingApproval);
}
