//! Approvers are told where they look: a copy of the card in the owning
//! team's channel (or their DMs) with the same buttons, every copy showing
//! the decision, one reminder before the approval expires, and nothing
//! extra when it is turned off.

mod support;

use std::time::Duration;

use paver::chat::Message;
use paver::domain::RequestState;
use paver::drivers::DriverError;
use paver::engine::EngineSettings;
use paver::requests::approvals::{ApprovalNoticeConfig, NoticeTo};
use paver::storage::cards::Notice;
use support::paver::TestPaver;
use support::Sent;

const PRODUCTION_DEPLOY: &str = "deploy order-service 1.2.0 to production";
const HOUR: Duration = Duration::from_secs(3600);

fn settings(to: NoticeTo) -> EngineSettings {
    EngineSettings {
        approval_notices: ApprovalNoticeConfig {
            to,
            ..ApprovalNoticeConfig::default()
        },
        ..EngineSettings::default()
    }
}

async fn start(to: NoticeTo) -> TestPaver {
    TestPaver::builder().settings(settings(to)).start().await
}

/// alice (team-commerce) asks for a production deploy and confirms it; it
/// waits for carol or omar (team-platform) or dave (team-commerce).
async fn awaiting_approval(h: &TestPaver) -> String {
    let id = h.propose("alice", PRODUCTION_DEPLOY).await;
    h.press("alice", &id, "Deploy").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    id
}

/// A posted card of the request (the original or a copy).
#[derive(Debug, Clone)]
struct Posted {
    channel: String,
    r#ref: String,
    message: Message,
}

/// Every card of the request posted (not threaded), oldest first.
fn card_posts(sent: &[Sent], id: &str) -> Vec<Posted> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::Post {
                channel,
                thread: None,
                message,
                r#ref,
            } if message.context.as_deref().is_some_and(|c| c.contains(id)) => Some(Posted {
                channel: channel.clone(),
                r#ref: r#ref.clone(),
                message: message.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Every update of the card posted as `r`, oldest first.
fn updates_of(sent: &[Sent], r: &str) -> Vec<Message> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::Update { r#ref, message, .. } if r#ref == r => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The texts said in the thread under the message `r`.
fn said_under(sent: &[Sent], r: &str) -> Vec<String> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::Post {
                thread: Some(t),
                message,
                ..
            } if t == r => Some(message.text.clone()),
            _ => None,
        })
        .collect()
}

fn payload(m: &Message, label: &str) -> String {
    m.buttons
        .iter()
        .find(|b| b.label == label)
        .unwrap_or_else(|| panic!("no {label} button on {m:?}"))
        .payload
        .clone()
}

fn status(m: &Message) -> &str {
    m.fields
        .iter()
        .find(|(k, _)| k == "Status")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Every post of `sent` whose text reads as a reminder.
fn reminders(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::Post { message, .. } if message.text.starts_with("Reminder") => {
                Some(message.text.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_owning_teams_channel_gets_a_copy_and_every_copy_shows_the_decision() {
    let h = start(NoticeTo::Channel).await;
    let id = awaiting_approval(&h).await;
    let posts = card_posts(&h.sink.all(), &id);
    assert_eq!(posts.len(), 2, "the card and one copy: {posts:#?}");
    let (original, copy) = (&posts[0], &posts[1]);
    assert_eq!(original.channel, "C1");
    assert_eq!(copy.channel, "team-commerce", "the owning team's channel");
    for approver in ["<@carol>", "<@dave>", "<@omar>"] {
        assert!(
            copy.message.text.contains(approver),
            "{}",
            copy.message.text
        );
    }
    assert_eq!(
        copy.message.text.matches("<@").count(),
        3,
        "exactly the eligible approvers, not the requester: {}",
        copy.message.text
    );
    // The card as the original shows it now (it was posted as a proposal).
    let shown = updates_of(&h.sink.all(), &original.r#ref).pop().unwrap();
    assert_eq!(
        copy.message.buttons, shown.buttons,
        "the same buttons, ids and nonce"
    );
    assert_eq!(copy.message.fields, shown.fields);

    // A sweep (as after a crash) tells nobody twice.
    h.sweep().await;
    h.idle().await;
    assert_eq!(card_posts(&h.sink.all(), &id).len(), 2);

    // dave approves on the copy: it runs, once.
    h.click("dave", &payload(&copy.message, "Approve")).await;
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert_eq!(h.request(&id).await.approver.as_deref(), Some("dave"));
    assert_eq!(h.driver.calls(), 1);
    let sent = h.sink.all();
    for card in [original, copy] {
        let last = updates_of(&sent, &card.r#ref)
            .pop()
            .unwrap_or_else(|| panic!("{} was never updated", card.channel));
        assert!(last.buttons.is_empty(), "{}: {last:?}", card.channel);
        assert_eq!(status(&last), "Done", "{}", card.channel);
    }

    // carol, late, presses the original's Approve, omar the copy's Deny:
    // both refused, nothing runs twice.
    h.click("carol", &payload(&shown, "Approve")).await;
    h.click_with_reason("omar", &payload(&copy.message, "Deny"), "too late")
        .await;
    h.idle().await;
    assert_eq!(h.driver.calls(), 1);
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    for late in ["carol", "omar"] {
        assert!(
            h.whispers_to(late)
                .iter()
                .any(|w| w.contains("Nothing to do")),
            "{late}: {:?}",
            h.whispers_to(late)
        );
    }

    // Decided: no reminder, however close the old expiry; and storage
    // records no notice for a request that no longer waits (one racing a
    // decision would otherwise post a copy nobody updates).
    h.clock()
        .approval_expires_in(&id, Duration::from_secs(60))
        .await;
    h.sweep().await;
    h.idle().await;
    assert!(reminders(&h.sink.all()).is_empty());
    let cards = h.db().cards();
    let round = cards.approval_round(&id).await.unwrap().unwrap();
    assert_eq!(round.rule, "production changes");
    assert!(!cards
        .tell_once(&id, round.id, Notice::Reminded, &[], &[])
        .await
        .unwrap());
    assert_eq!(cards.notices(&id, Notice::Reminded).await.unwrap(), 0);
    assert_eq!(cards.notices(&id, Notice::Asked).await.unwrap(), 1);
}

#[tokio::test]
async fn dm_mode_sends_each_eligible_approver_a_copy() {
    let h = start(NoticeTo::Dm).await;
    let id = awaiting_approval(&h).await;
    let posts = card_posts(&h.sink.all(), &id);
    let mut dms: Vec<&str> = posts[1..].iter().map(|p| p.channel.as_str()).collect();
    dms.sort();
    assert_eq!(dms, ["@carol", "@dave", "@omar"], "{posts:#?}");
    assert_eq!(posts[0].channel, "C1");

    // omar denies on his own copy; every copy shows it.
    let omar = posts.iter().find(|p| p.channel == "@omar").unwrap();
    h.click_with_reason("omar", &payload(&omar.message, "Deny"), "no rollback plan")
        .await;
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Denied);
    assert_eq!(h.driver.calls(), 0);
    let sent = h.sink.all();
    for card in &posts {
        let last = updates_of(&sent, &card.r#ref).pop().unwrap();
        assert!(last.buttons.is_empty(), "{}", card.channel);
        assert_eq!(
            status(&last),
            "Denied by omar: no rollback plan",
            "{}",
            card.channel
        );
    }
}

#[tokio::test]
async fn one_reminder_before_the_approval_expires_whichever_replica_sweeps() {
    let h = start(NoticeTo::Channel).await;
    let replica = TestPaver::builder()
        .settings(settings(NoticeTo::Channel))
        .replica_of(&h)
        .start()
        .await;
    let id = awaiting_approval(&h).await;
    let copy = card_posts(&h.sink.all(), &id)[1].clone();

    // A day to go: not yet.
    h.sweep().await;
    h.idle().await;
    assert!(reminders(&h.sink.all()).is_empty());

    h.clock()
        .approval_expires_in(&id, Duration::from_secs(10 * 60))
        .await;
    for p in [&h, &replica, &h, &replica] {
        p.sweep().await;
    }
    h.idle().await;
    replica.idle().await;
    let sent: Vec<Sent> = h.sink.all().into_iter().chain(replica.sink.all()).collect();
    let all = reminders(&sent);
    assert_eq!(all.len(), 1, "{all:?}");
    let under_copy = said_under(&sent, &copy.r#ref);
    assert_eq!(under_copy.len(), 1, "under the copy: {under_copy:?}");
    for approver in ["<@carol>", "<@dave>", "<@omar>"] {
        assert!(all[0].contains(approver), "{}", all[0]);
    }
    // The request is still open: the reminder did not decide anything.
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
}

#[tokio::test]
async fn off_posts_nothing_but_the_thread_line() {
    let h = start(NoticeTo::Off).await;
    let id = awaiting_approval(&h).await;
    let sent = h.sink.all();
    assert_eq!(card_posts(&sent, &id).len(), 1, "the card only");
    assert!(sent.iter().all(|s| match s {
        Sent::Post { channel, .. } => channel == "C1",
        _ => true,
    }));
    let thread = h.thread_texts();
    assert!(
        thread.iter().any(|t| t.starts_with("Approval needed")),
        "{thread:?}"
    );
    assert!(!thread.iter().any(|t| t.contains("<@")), "{thread:?}");

    h.clock()
        .approval_expires_in(&id, Duration::from_secs(10 * 60))
        .await;
    h.sweep().await;
    h.idle().await;
    assert!(reminders(&h.sink.all()).is_empty());
}

#[tokio::test]
async fn a_retry_that_needs_approval_again_asks_under_the_same_copy() {
    let h = start(NoticeTo::Channel).await;
    h.driver
        .then(Err(DriverError::failed("argo said no".into())));
    let id = awaiting_approval(&h).await;
    h.press("dave", &id, "Approve").await;
    assert_eq!(h.request(&id).await.state, RequestState::Failed);
    // dave's approval is too old to run the retry on.
    h.clock().approvals_given(&id, 25 * HOUR).await;
    h.press("alice", &id, "Retry").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);

    let sent = h.sink.all();
    let posts = card_posts(&sent, &id);
    assert_eq!(posts.len(), 2, "no second copy: {posts:#?}");
    let copy = &posts[1];
    let asked = said_under(&sent, &copy.r#ref);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains("again") && asked[0].contains("<@carol>"));
    let shown = updates_of(&sent, &copy.r#ref).pop().unwrap();
    assert!(
        status(&shown).starts_with("Waiting for approval"),
        "{shown:?}"
    );

    h.click("carol", &payload(&shown, "Approve")).await;
    h.idle().await;
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    assert_eq!(h.driver.calls(), 2);
}
