//! Scorecard nags, driven as the scheduler and people drive them: digests
//! at a controllable "now", buttons pressed by Slack, Discord and console
//! users, escalation, and two schedulers racing on one database (SQLite,
//! or PostgreSQL with PAVER_TEST_DATABASE_URL).

mod support;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use paver::catalog::Catalog;
use paver::chat::{ChatUser, Conversation, Message, Platform};
use paver::domain::{ChannelRef, ServiceName, TeamName, UserName};
use paver::engine::EngineSettings;
use paver::scorecards::config::NagsConfig;
use paver::scorecards::nags::{DigestRun, Mode, Outcome};
use paver::scorecards::schedule::{CronSpec, QuietHours};
use paver::scorecards::ScorecardsConfig;
use paver::storage::now_ms;
use paver::storage::scorecards::PushedResult;
use support::paver::TestPaver;
use support::{RecordingSink, Sent};

const DAY: i64 = 24 * 3600 * 1000;

/// Daily digests (so a test can have one per simulated day), no cap to
/// speak of, escalations to #team-platform mentioning alice.
fn nags() -> NagsConfig {
    NagsConfig {
        cron: CronSpec::parse("0 9 * * *").unwrap(),
        max_per_week: 7,
        platform_channels: vec![ChannelRef::parse("slack:C0PLATFORM").unwrap()],
        manager: Some(UserName::parse("alice").unwrap()),
        ..NagsConfig::default()
    }
}

struct Harness {
    paver: TestPaver,
    slack: RecordingSink,
    discord: RecordingSink,
}

async fn start_with(
    nags: NagsConfig,
    catalog: Option<Catalog>,
    replica_of: Option<&TestPaver>,
) -> Harness {
    let slack = RecordingSink::default();
    let discord = RecordingSink::default();
    let mut b = TestPaver::builder()
        .settings(EngineSettings {
            scorecards: ScorecardsConfig {
                nags: Some(nags),
                ..ScorecardsConfig::default()
            },
            ..EngineSettings::default()
        })
        .sink("slack", Arc::new(slack.clone()))
        .sink("discord", Arc::new(discord.clone()));
    if let Some(c) = catalog {
        b = b.catalog(c);
    }
    if let Some(other) = replica_of {
        b = b.replica_of(other);
    }
    Harness {
        paver: b.start().await,
        slack,
        discord,
    }
}

async fn start() -> Harness {
    start_with(nags(), None, None).await
}

/// Monday 30 Nov 2026 at noon UTC, plus `days`.
fn day(days: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
        + chrono::Duration::milliseconds(days * DAY)
}

fn commerce() -> TeamName {
    TeamName::parse("team-commerce").unwrap()
}

fn slack_user(id: &str, name: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Slack,
        id: id.into(),
        catalog: UserName::parse(name).ok(),
    }
}

impl Harness {
    /// team-commerce's digest now (as `paver nags run-once --team` would).
    async fn digest(&self, at: DateTime<Utc>) -> DigestRun {
        let mut runs = self
            .paver
            .engine
            .scorecards()
            .run_nags(at, Some(&commerce()), Mode::Now)
            .await
            .unwrap();
        self.paver.idle().await;
        runs.pop().expect("team-commerce has services")
    }

    fn posts(sink: &RecordingSink, channel: &str) -> Vec<Message> {
        sink.all()
            .into_iter()
            .filter_map(|s| match s {
                Sent::Post {
                    channel: c,
                    message,
                    ..
                } if c == channel => Some(message),
                _ => None,
            })
            .collect()
    }

    fn digests(&self, channel: &str) -> Vec<Message> {
        Self::posts(&self.slack, channel)
            .into_iter()
            .filter(|m| {
                m.title
                    .as_deref()
                    .is_some_and(|t| t.starts_with("Scorecard digest"))
            })
            .collect()
    }

    /// The latest rendering (post or edit) of a digest line.
    fn line(&self, service: &str, check: &str) -> Message {
        let title = format!("{service} · {check}");
        self.slack
            .all()
            .into_iter()
            .rev()
            .find_map(|s| match s {
                Sent::Post { message, .. } | Sent::Update { message, .. }
                    if message.title.as_deref() == Some(title.as_str()) =>
                {
                    Some(message)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no line for {check} on {service}"))
    }

    /// The latest rendering of team-commerce's latest digest.
    fn latest_digest(&self) -> Message {
        self.slack
            .all()
            .into_iter()
            .rev()
            .find_map(|s| match s {
                Sent::Post { message, .. } | Sent::Update { message, .. }
                    if message
                        .title
                        .as_deref()
                        .is_some_and(|t| t.starts_with("Scorecard digest for team-commerce")) =>
                {
                    Some(message)
                }
                _ => None,
            })
            .expect("a digest")
    }

    async fn press(
        &self,
        who: &ChatUser,
        service: &str,
        check: &str,
        label: &str,
        reason: Option<&str>,
    ) {
        let line = self.line(service, check);
        let payload = line
            .buttons
            .iter()
            .find(|b| b.label == label)
            .unwrap_or_else(|| panic!("no {label} on {check} of {service}: {line:?}"))
            .payload
            .clone();
        let conv = Conversation {
            platform: who.platform,
            channel: "C0COMMERCE".into(),
            thread: None,
        };
        self.paver
            .engine
            .handle_button_with(who, &conv, &payload, reason)
            .await
            .unwrap();
        self.paver.idle().await;
    }

    async fn push(&self, service: &str, check: &str, passed: bool) {
        self.paver
            .engine
            .scorecards()
            .push(PushedResult {
                service: ServiceName::parse(service).unwrap(),
                check: check.into(),
                passed,
                detail: None,
                source: "hook".into(),
                at: now_ms(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn team_commerce_gets_one_digest_grouped_by_service_with_a_line_per_check() {
    let h = start().await;
    let run = h.digest(day(0)).await;
    assert_eq!(run.outcome, Outcome::Sent);
    let digests = h.digests("C0COMMERCE");
    assert_eq!(digests.len(), 1, "one digest in the team's channel");
    let d = &digests[0];
    assert!(
        d.title.as_deref().unwrap().contains("28 failing checks"),
        "{d:?}"
    );
    // Grouped by service, most critical first within each.
    assert!(d.text.contains(
        "• *order-service* · below Bronze: ci-passing (critical), has-monitoring (high), has-backups (medium), has-cost-tags (low)"
    ), "{}", d.text);
    assert_eq!(
        d.fields[0].1,
        "First digest: every failing check is listed."
    );
    // Each failing check has its line in the thread, with how to fix it
    // and the three buttons.
    let line = h.line("order-service", "has-backups");
    assert!(
        line.text.contains("orders-db has no backups configured"),
        "{}",
        line.text
    );
    assert!(line.text.contains("How to fix: https://"), "{}", line.text);
    let labels: Vec<&str> = line.buttons.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["Snooze 1 week", "Won't fix", "Re-check now"]);
    // Again for the same period: recorded already, nothing sent.
    assert_eq!(h.digest(day(0)).await.outcome, Outcome::AlreadySent);
    assert_eq!(h.digests("C0COMMERCE").len(), 1);
    // The next day (a new period): what changed since the last one.
    h.push("cart-service", "has-monitoring", true).await;
    h.digest(day(1)).await;
    let d = h.latest_digest();
    assert_eq!(
        d.fields[0].1, "Fixed: has-monitoring on cart-service.",
        "{d:?}"
    );
    // legacy-reports has no owner: its digest goes to the platform channel.
    let runs = h
        .paver
        .engine
        .scorecards()
        .run_nags(day(0), None, Mode::Now)
        .await
        .unwrap();
    h.paver.idle().await;
    assert!(runs
        .iter()
        .any(|r| r.team.is_none() && r.outcome == Outcome::Sent));
    // (team-platform's own digest goes to the same channel.)
    let platform: Vec<Message> = h
        .digests("C0PLATFORM")
        .into_iter()
        .filter(|m| m.title.as_deref().unwrap().contains("without an owner"))
        .collect();
    assert_eq!(platform.len(), 1);
    assert!(
        platform[0].text.contains("legacy-reports"),
        "{:?}",
        platform[0]
    );
    assert!(platform[0]
        .title
        .as_deref()
        .unwrap()
        .contains("services without an owner"));
}

#[tokio::test]
async fn snooze_hides_a_check_until_a_week_has_passed_and_says_who_snoozed_it() {
    let h = start().await;
    h.digest(day(0)).await;
    h.press(
        &slack_user("U0ALICE", "alice"),
        "order-service",
        "has-backups",
        "Snooze 1 week",
        None,
    )
    .await;
    // The line and the digest are edited in place.
    let line = h.line("order-service", "has-backups");
    assert!(
        line.text.contains("snoozed by alice until"),
        "{}",
        line.text
    );
    assert!(line.buttons.is_empty());
    assert!(h
        .latest_digest()
        .text
        .contains("has-backups (medium) — snoozed by alice until"));
    // The next digest leaves it out and says so.
    h.digest(day(1)).await;
    let d = h.latest_digest();
    assert!(!d.text.contains("order-service* · below Bronze: ci-passing (critical), has-monitoring (high), has-backups"), "{}", d.text);
    assert!(
        d.context
            .as_deref()
            .unwrap()
            .contains("1 snoozed check left out"),
        "{d:?}"
    );
    // After the week it is back.
    h.digest(day(8)).await;
    assert!(h.latest_digest().text.contains("has-backups (medium)"));
}

#[tokio::test]
async fn wont_fix_needs_a_reason_and_the_reason_shows_in_every_later_digest() {
    let h = start().await;
    h.digest(day(0)).await;
    // A Discord user presses Won't fix without a reason: asked for one,
    // nothing changes.
    let dave = ChatUser {
        platform: Platform::Discord,
        id: "222".into(),
        catalog: UserName::parse("bob").ok(),
    };
    h.press(&dave, "order-service", "has-cost-tags", "Won't fix", None)
        .await;
    let asked = h.discord.all().into_iter().any(|s| matches!(s, Sent::Ephemeral { user, message, .. } if user == "222" && message.text.contains("needs a reason")));
    assert!(asked, "{:?}", h.discord.all());
    assert_eq!(h.line("order-service", "has-cost-tags").buttons.len(), 3);
    // With a reason (as the modal, or the console's /press, gives it).
    h.press(
        &dave,
        "order-service",
        "has-cost-tags",
        "Won't fix",
        Some("charged to the platform budget"),
    )
    .await;
    let line = h.line("order-service", "has-cost-tags");
    assert!(
        line.text
            .contains("won't fix (bob): charged to the platform budget"),
        "{}",
        line.text
    );
    // Every later digest lists it apart, with the reason.
    for d in [1, 2] {
        h.digest(day(d)).await;
        let digest = h.latest_digest();
        let wont = digest
            .fields
            .iter()
            .find(|(k, _)| k == "Won't fix")
            .expect("a won't fix field");
        assert_eq!(
            wont.1,
            "has-cost-tags on order-service: \"charged to the platform budget\" (bob)"
        );
    }
}

#[tokio::test]
async fn recheck_evaluates_the_service_again_and_updates_the_line() {
    let h = start().await;
    h.digest(day(0)).await;
    let console_user = ChatUser {
        platform: Platform::Console,
        id: "alice".into(),
        catalog: UserName::parse("alice").ok(),
    };
    // Still failing.
    h.press(
        &console_user,
        "checkout-api",
        "ci-passing",
        "Re-check now",
        None,
    )
    .await;
    let line = h.line("checkout-api", "ci-passing");
    assert!(
        line.text.contains("still failing (re-checked by alice)"),
        "{}",
        line.text
    );
    assert_eq!(line.buttons.len(), 3, "still failing: the buttons stay");
    // CI went green; re-checked: passing now, no buttons.
    h.push("checkout-api", "ci-passing", true).await;
    h.press(
        &console_user,
        "checkout-api",
        "ci-passing",
        "Re-check now",
        None,
    )
    .await;
    let line = h.line("checkout-api", "ci-passing");
    assert!(
        line.text.contains("passing now (re-checked by alice)"),
        "{}",
        line.text
    );
    assert!(line.buttons.is_empty());
    // A forged press changes nothing.
    let forged = line_payload_forged();
    h.paver
        .engine
        .handle_button(&console_user, &support::paver::conv(), &forged)
        .await
        .unwrap();
    h.paver.idle().await;
    assert!(h
        .paver
        .whispers_to("alice")
        .iter()
        .any(|w| w.contains("not one of mine")));
}

fn line_payload_forged() -> String {
    "recheck:n-doesnotexist:nonce".into()
}

#[tokio::test]
async fn a_critical_check_failing_in_three_digests_in_a_row_is_escalated_once() {
    let h = start().await;
    for d in 0..2 {
        h.digest(day(d)).await;
    }
    assert!(Harness::posts(&h.slack, "C0PLATFORM").iter().all(|m| !m
        .title
        .as_deref()
        .unwrap_or("")
        .starts_with("Escalation")));
    h.digest(day(2)).await;
    let escalations: Vec<Message> = Harness::posts(&h.slack, "C0PLATFORM")
        .into_iter()
        .filter(|m| m.title.as_deref().unwrap_or("").starts_with("Escalation"))
        .collect();
    // ci-passing fails on each of team-commerce's seven services.
    assert_eq!(escalations.len(), 7, "{escalations:?}");
    let e = escalations
        .iter()
        .find(|m| m.text.contains("order-service"))
        .unwrap();
    assert!(
        e.text
            .contains("has failed in 3 digests of team-commerce in a row"),
        "{}",
        e.text
    );
    assert!(
        e.text.contains("<@U0ALICE>"),
        "the manager is mentioned: {}",
        e.text
    );
    assert_eq!(e.mentions, ["U0ALICE"]);
    // The fourth digest in a row does not escalate again.
    h.digest(day(3)).await;
    let again = Harness::posts(&h.slack, "C0PLATFORM")
        .into_iter()
        .filter(|m| m.title.as_deref().unwrap_or("").starts_with("Escalation"))
        .count();
    assert_eq!(again, 7);
}

const PASSING_TEAM: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-good
  annotations:
    slack.com/channel-id: C0GOOD
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-discord
  annotations:
    discord.com/channel-id: "900"
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: tidy-service
  annotations:
    backstage.io/techdocs-ref: dir:.
    pagerduty.com/service-id: PTIDY
    acme.example.com/cost-center: CC-1
spec:
  type: service
  lifecycle: production
  owner: team-good
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: messy-service
spec:
  type: service
  lifecycle: production
  owner: team-discord
"#;

#[tokio::test]
async fn a_team_with_everything_passing_gets_nothing_and_a_discord_team_gets_its_digest_there() {
    let catalog = Catalog::from_yaml_str(PASSING_TEAM, "test");
    let h = start_with(nags(), Some(catalog), None).await;
    h.push("tidy-service", "ci-passing", true).await;
    h.push("tidy-service", "has-monitoring", true).await;
    let runs = h
        .paver
        .engine
        .scorecards()
        .run_nags(day(0), None, Mode::Now)
        .await
        .unwrap();
    h.paver.idle().await;
    let good = runs
        .iter()
        .find(|r| r.team.as_ref().map(|t| t.as_str()) == Some("team-good"))
        .unwrap();
    assert_eq!(good.outcome, Outcome::AllPassing);
    assert!(Harness::posts(&h.slack, "C0GOOD").is_empty());
    let discord = Harness::posts(&h.discord, "900");
    assert!(
        discord[0]
            .title
            .as_deref()
            .unwrap()
            .starts_with("Scorecard digest for team-discord"),
        "{discord:?}"
    );
    assert!(discord.len() > 1, "its lines follow in the thread");
}

#[tokio::test]
async fn the_scheduler_waits_for_the_cron_and_quiet_hours_and_sends_each_period_once() {
    let mut config = nags();
    // Mondays 09:00 Berlin, quiet 08:00-10:00 there: held until 10:00.
    config.cron = CronSpec::parse("0 9 * * Mon").unwrap();
    config.quiet_hours = Some(QuietHours::parse("08:00-10:00").unwrap());
    config.max_per_week = 1;
    let h = start_with(config, None, None).await;
    let s = h.paver.engine.scorecards();
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0).unwrap();
    let commerce_sent = |runs: &[DigestRun]| {
        runs.iter()
            .find(|r| r.team.as_ref() == Some(&commerce()))
            .map(|r| r.outcome.clone())
    };
    // 08:30 UTC is 09:30 in Berlin: due, but quiet.
    let runs = s.nag_tick("a", at(8, 30)).await.unwrap().unwrap();
    assert!(matches!(
        commerce_sent(&runs),
        Some(Outcome::NotDue(paver::scorecards::schedule::Due::Quiet))
    ));
    // 09:00 UTC, 10:00 in Berlin: sent.
    let runs = s.nag_tick("a", at(9, 0)).await.unwrap().unwrap();
    assert_eq!(commerce_sent(&runs), Some(Outcome::Sent));
    // A minute later: this period's is out.
    let runs = s.nag_tick("a", at(9, 1)).await.unwrap().unwrap();
    assert!(matches!(
        commerce_sent(&runs),
        Some(Outcome::NotDue(paver::scorecards::schedule::Due::NotYet))
    ));
    h.paver.idle().await;
    assert_eq!(h.digests("C0COMMERCE").len(), 1);
}

#[tokio::test]
async fn two_schedulers_racing_send_one_digest_per_team() {
    let a = start().await;
    let b = start_with(nags(), None, Some(&a.paver)).await;
    let now = day(0);
    // Both tick at once: one holds the lease.
    let (ra, rb) = tokio::join!(
        a.paver.engine.scorecards().nag_tick("replica-a", now),
        b.paver.engine.scorecards().nag_tick("replica-b", now),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.is_some() != rb.is_some(),
        "exactly one replica holds the lease"
    );
    // Even without the lease (one expired mid-run), the record decides.
    let (ra, rb) = tokio::join!(
        a.paver.engine.scorecards().run_nags(
            now + chrono::Duration::days(1),
            None,
            Mode::Scheduled
        ),
        b.paver.engine.scorecards().run_nags(
            now + chrono::Duration::days(1),
            None,
            Mode::Scheduled
        ),
    );
    let sent = |runs: &[DigestRun]| runs.iter().filter(|r| r.outcome == Outcome::Sent).count();
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let teams = ra.len();
    assert_eq!(sent(&ra) + sent(&rb), teams, "{ra:?} {rb:?}");
    a.paver.idle().await;
    b.paver.idle().await;
    let all: Vec<Message> = [&a.slack, &b.slack]
        .iter()
        .flat_map(|s| Harness::posts(s, "C0COMMERCE"))
        .filter(|m| {
            m.title
                .as_deref()
                .is_some_and(|t| t.starts_with("Scorecard digest"))
        })
        .collect();
    assert_eq!(
        all.len(),
        2,
        "one digest per period (two periods), never twice"
    );
}
