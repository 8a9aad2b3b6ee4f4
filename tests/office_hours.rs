//! Office hours with humans in the loop, driven as people drive it: a
//! question answered from the docs with feedback buttons, votes, "Ask a
//! human" handing it to the platform team's Slack channel, the platform
//! engineer's reply relayed once, the on-call webhook (a loopback server),
//! gaps, and the agenda with two schedulers racing (SQLite, or PostgreSQL
//! with PAVER_TEST_DATABASE_URL).

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use paver::chat::{ChatUser, Conversation, Handled, Inbound, Message, Platform};
use paver::docs::config::AgendaCron;
use paver::docs::office_hours::{self, AgendaOutcome};
use paver::docs::{Docs, DocsSource, LiveDocs, OfficeHoursConfig};
use paver::domain::{ChannelRef, UserName};
use paver::engine::EngineSettings;
use support::paver::TestPaver;
use support::{RecordingSink, Sent};

const KNOWN: &str = "how do I rotate the database credentials in production?";
const UNKNOWN: &str = "do we have GPU nodes for training ML models?";

static EVENTS: AtomicUsize = AtomicUsize::new(0);

fn docs() -> LiveDocs {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/docs");
    LiveDocs::fixed(Docs::load(&[DocsSource::at(root)]).unwrap())
}

struct Harness {
    paver: TestPaver,
    slack: RecordingSink,
    discord: RecordingSink,
    /// The database's URL (for the CLI).
    url: String,
}

async fn start_with(config: OfficeHoursConfig, replica_of: Option<&TestPaver>) -> Harness {
    let slack = RecordingSink::default();
    let discord = RecordingSink::default();
    let mut b = TestPaver::builder()
        .settings(EngineSettings {
            docs: Some(docs()),
            office_hours: config,
            ..EngineSettings::default()
        })
        .sink("slack", Arc::new(slack.clone()))
        .sink("discord", Arc::new(discord.clone()));
    let url = match replica_of {
        Some(other) => {
            b = b.replica_of(other);
            String::new()
        }
        None => {
            let tdb = support::test_db().await;
            let url = tdb.url.clone();
            b = b.test_db(tdb);
            url
        }
    };
    Harness {
        paver: b.start().await,
        slack,
        discord,
        url,
    }
}

async fn start() -> Harness {
    start_with(OfficeHoursConfig::default(), None).await
}

fn slack_user(id: &str, name: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Slack,
        id: id.into(),
        catalog: UserName::parse(name).ok(),
    }
}

fn posts_in(sink: &RecordingSink, channel: &str) -> Vec<(Message, String)> {
    sink.all()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Post {
                channel: c,
                message,
                r#ref,
                ..
            } if c == channel => Some((message, r#ref)),
            _ => None,
        })
        .collect()
}

impl Harness {
    /// `who` asks `text` on the console; returns the question's id (read
    /// off its answer's buttons).
    async fn ask(&self, who: &str, text: &str) -> String {
        assert_eq!(self.paver.say(who, text).await, Handled::Replied);
        self.latest_question()
    }

    fn latest_question(&self) -> String {
        self.paver
            .sink
            .all()
            .iter()
            .rev()
            .find_map(|s| match s {
                Sent::Post { message, .. } => message
                    .buttons
                    .iter()
                    .find(|b| b.label == "Helpful")
                    .map(|b| b.payload.split(':').nth(1).unwrap().to_owned()),
                _ => None,
            })
            .expect("an answer with buttons")
    }

    /// The latest rendering (post or edit) of question `id`'s answer.
    fn answer(&self, id: &str) -> Message {
        self.paver
            .sink
            .all()
            .into_iter()
            .rev()
            .find_map(|s| match s {
                Sent::Post { message, .. } | Sent::Update { message, .. }
                    if message.buttons.iter().any(|b| b.payload.contains(id)) =>
                {
                    Some(message)
                }
                _ => None,
            })
            .expect("the answer was posted")
    }

    fn labels(&self, id: &str) -> Vec<String> {
        self.answer(id)
            .buttons
            .iter()
            .map(|b| b.label.clone())
            .collect()
    }

    async fn press(&self, who: &str, id: &str, label: &str) {
        self.paver.press(who, id, label).await;
    }

    /// Console posts (not edits) so far.
    fn console_posts(&self) -> usize {
        self.paver
            .sink
            .all()
            .iter()
            .filter(|s| matches!(s, Sent::Post { .. }))
            .count()
    }

    /// The handoff posts in #team-platform (Slack).
    fn handoffs(&self) -> Vec<(Message, String)> {
        posts_in(&self.slack, "C0PLATFORM")
            .into_iter()
            .filter(|(m, _)| m.title.as_deref() == Some("A question for the platform team"))
            .collect()
    }

    /// `who` writes `text` in the Slack thread `thread` of #team-platform.
    async fn slack_reply(&self, who: &ChatUser, thread: &str, text: &str) -> Handled {
        let n = EVENTS.fetch_add(1, Ordering::SeqCst);
        let handled = self
            .paver
            .engine
            .handle_message(Inbound {
                event_id: Some(format!("oh-{n}")),
                user: who.clone(),
                conversation: Conversation {
                    platform: Platform::Slack,
                    channel: "C0PLATFORM".into(),
                    thread: Some(thread.into()),
                },
                text: text.into(),
            })
            .await
            .unwrap();
        self.paver.idle().await;
        handled
    }
}

#[tokio::test]
async fn an_answer_has_feedback_buttons_and_votes_count_once_per_person() {
    let h = start().await;
    let id = h.ask("bob", KNOWN).await;
    let answer = h.answer(&id);
    assert!(
        answer
            .title
            .as_deref()
            .unwrap()
            .starts_with("From the docs"),
        "{answer:?}"
    );
    assert_eq!(h.labels(&id), ["Helpful", "Not helpful", "Ask a human"]);
    let q = h.paver.db().questions().get(&id).await.unwrap().unwrap();
    assert!(q.known);
    assert_eq!(q.asker_name, "bob");
    assert!(!q.sources.is_empty(), "the cited sections are recorded");
    assert!(q.sources[0].url.contains("#"), "{:?}", q.sources);

    h.press("bob", &id, "Helpful").await;
    h.press("bob", &id, "Helpful").await;
    let context = h.answer(&id).context.unwrap();
    assert!(context.ends_with("👍 1 · 👎 0"), "{context}");
    h.press("carol", &id, "Not helpful").await;
    assert!(h.answer(&id).context.unwrap().ends_with("👍 1 · 👎 1"));
    // A vote can be changed; it is still one per person.
    h.press("bob", &id, "Not helpful").await;
    assert!(h.answer(&id).context.unwrap().ends_with("👍 0 · 👎 2"));
    // Votes edit the answer: nothing new was posted.
    assert_eq!(h.console_posts(), 1);
}

#[tokio::test]
async fn not_known_and_not_helpful_questions_are_the_docs_gaps() {
    let h = start().await;
    let known = h.ask("bob", KNOWN).await;
    h.press("carol", &known, "Not helpful").await;
    let unknown = h.ask("bob", UNKNOWN).await;
    assert_eq!(
        h.labels(&unknown),
        ["Ask a human", "Helpful", "Not helpful", "Office hours"],
        "a don't-know offers a human first"
    );
    h.ask("carol", "Do we have any GPU node for training ML models")
        .await;

    let gaps = office_hours::gaps(h.paver.db(), 30, paver::storage::now_ms())
        .await
        .unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:#?}");
    assert_eq!(gaps[0].count, 2, "two wordings of one question: {gaps:#?}");
    assert_eq!(gaps[0].unanswered, 2);
    assert_eq!(
        gaps[0].question,
        "Do we have any GPU node for training ML models"
    );
    assert_eq!(gaps[1].question, KNOWN);
    assert_eq!((gaps[1].count, gaps[1].not_helpful), (1, 1));

    // And from the terminal, on the same database.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paver.toml");
    let url = &h.url;
    std::fs::write(&config, format!("[database]\nurl = \"{url}\"\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paver"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "docs",
            "gaps",
            "--json",
        ])
        .env_remove("PAVER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["count"], 2, "{listed:#}");
    assert_eq!(listed[1]["not_helpful"], 1, "{listed:#}");
    assert!(listed[1]["nearest"]["url"].is_string(), "{listed:#}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paver"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "docs",
            "gaps",
            "--days",
            "7",
        ])
        .env_remove("PAVER_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GPU node"), "{text}");
}

#[tokio::test]
async fn ask_a_human_hands_off_and_the_first_platform_reply_is_relayed_once() {
    let h = start().await;
    let id = h.ask("bob", UNKNOWN).await;
    // Only the asker hands their question off.
    h.press("carol", &id, "Ask a human").await;
    assert!(h.paver.whispers_to("carol")[0].starts_with("Only bob"));
    assert!(h.handoffs().is_empty());

    let old_button = h.paver.button(&id, "Ask a human").unwrap();
    h.press("bob", &id, "Ask a human").await;
    let handoffs = h.handoffs();
    assert_eq!(handoffs.len(), 1);
    let (post, handoff_ref) = &handoffs[0];
    assert!(post.text.starts_with("bob asked in #C1:"), "{}", post.text);
    assert!(post.text.contains("GPU nodes"), "{}", post.text);
    assert!(post.text.contains("The docs don't answer it."));
    let told = h.paver.thread_texts();
    assert!(
        told.iter().any(|t| t
            .starts_with("Asked the platform team in <#C0PLATFORM> — I'll bring the answer here.")),
        "{told:?}"
    );
    let answer = h.answer(&id);
    assert!(!h.labels(&id).contains(&"Ask a human".to_owned()));
    assert!(answer
        .context
        .unwrap()
        .contains("Asked the platform team in <#C0PLATFORM>"));

    // A second press (an old rendering) posts nothing new.
    let posts = h.console_posts();
    h.paver.click("bob", &old_button).await;
    h.paver.idle().await;
    assert_eq!(h.handoffs().len(), 1);
    assert_eq!(h.console_posts(), posts);

    // The asker chatting in the platform thread is not an answer.
    let bob = ChatUser {
        platform: Platform::Slack,
        id: "U0BOB".into(),
        catalog: UserName::parse("bob").ok(),
    };
    assert_eq!(
        h.slack_reply(&bob, handoff_ref, "any news?").await,
        Handled::Ignored
    );
    let omar = slack_user("U0OMAR", "omar");
    assert_eq!(
        h.slack_reply(
            &omar,
            handoff_ref,
            "Not yet <!channel> — GPU nodes land next quarter, see `#infra-gpu`."
        )
        .await,
        Handled::Replied
    );
    let relayed: Vec<String> = h
        .paver
        .thread_texts()
        .into_iter()
        .filter(|t| t.contains("answered:"))
        .collect();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert!(relayed[0].starts_with("<@bob> omar answered: Not yet ‹!channel› — GPU nodes land next quarter, see '#infra-gpu'."), "{}", relayed[0]);
    assert!(relayed[0].contains(&format!(
        "https://slack.com/archives/C0PLATFORM/p{}",
        handoff_ref.replace('.', "")
    )));
    let q = h.paver.db().questions().get(&id).await.unwrap().unwrap();
    assert_eq!(q.answered_by.as_deref(), Some("omar"));

    // A later reply stays in the platform thread.
    let grace = slack_user("U0GRACE", "grace");
    assert_eq!(
        h.slack_reply(&grace, handoff_ref, "+1, also want this")
            .await,
        Handled::Ignored
    );
    assert_eq!(
        h.paver
            .thread_texts()
            .iter()
            .filter(|t| t.contains("answered:"))
            .count(),
        1
    );
    // Both ends show it was answered.
    assert!(h
        .answer(&id)
        .context
        .unwrap()
        .contains("The platform team answered"));
    let edited = h
        .slack
        .all()
        .into_iter()
        .rev()
        .find_map(|s| match s {
            Sent::Update { message, .. } => Some(message),
            _ => None,
        })
        .unwrap();
    assert!(edited.context.unwrap().starts_with("Answered by omar"));
    // Slack hears that thread: storage says it is Paver's.
    assert!(h
        .paver
        .db()
        .threads()
        .hears(Platform::Slack, "C0PLATFORM", Some(handoff_ref))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_discord_platform_team_answers_in_the_thread_under_the_handoff() {
    let h = start_with(
        OfficeHoursConfig {
            channels: vec![ChannelRef::parse("discord:900").unwrap()],
            ..OfficeHoursConfig::default()
        },
        None,
    )
    .await;
    let id = h.ask("bob", UNKNOWN).await;
    h.press("bob", &id, "Ask a human").await;
    let posts = posts_in(&h.discord, "900");
    assert_eq!(posts.len(), 1);
    // On Discord a thread is a channel, its id the message it started under.
    let thread = posts[0].1.clone();
    let n = EVENTS.fetch_add(1, Ordering::SeqCst);
    let handled = h
        .paver
        .engine
        .handle_message(Inbound {
            event_id: Some(format!("oh-{n}")),
            user: ChatUser {
                platform: Platform::Discord,
                id: "4242".into(),
                catalog: None,
            },
            conversation: Conversation {
                platform: Platform::Discord,
                channel: thread.clone(),
                thread: None,
            },
            text: "No GPUs yet.".into(),
        })
        .await
        .unwrap();
    h.paver.idle().await;
    assert_eq!(handled, Handled::Replied);
    assert!(h
        .paver
        .thread_texts()
        .iter()
        .any(|t| t.starts_with(&format!("<@bob> 4242 answered: No GPUs yet.\n<#{thread}>"))));
}

#[tokio::test]
async fn two_presses_at_once_on_two_replicas_hand_off_once() {
    let a = start().await;
    let id = a.ask("bob", UNKNOWN).await;
    let payload = a.paver.button(&id, "Ask a human").unwrap();
    // Started now, so the answer went out through the first one.
    let b = start_with(OfficeHoursConfig::default(), Some(&a.paver)).await;
    tokio::join!(
        a.paver.click("bob", &payload),
        b.paver.click("bob", &payload)
    );
    a.paver.idle().await;
    b.paver.idle().await;
    assert_eq!(a.handoffs().len() + b.handoffs().len(), 1);
    let told = |h: &Harness| {
        h.paver
            .thread_texts()
            .iter()
            .filter(|t| t.starts_with("Asked the platform team"))
            .count()
    };
    assert_eq!(told(&a) + told(&b), 1);
}

#[tokio::test]
async fn a_button_with_another_questions_nonce_is_refused() {
    let h = start().await;
    let first = h.ask("bob", UNKNOWN).await;
    let second = h.ask("bob", KNOWN).await;
    let nonce_of_second = h
        .paver
        .button(&second, "Ask a human")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    h.paver
        .click("bob", &format!("askhuman:{first}:{nonce_of_second}"))
        .await;
    h.paver.idle().await;
    assert!(h.handoffs().is_empty());
    assert!(h.paver.whispers_to("bob")[0].starts_with("That button doesn't belong"));
    // An unknown question id likewise.
    h.paver.click("bob", "helpful:q-nosuchthing:abc").await;
    h.paver.idle().await;
    assert_eq!(h.paver.whispers_to("bob").len(), 2);
    let votes = h.paver.db().questions().votes(&first).await.unwrap();
    assert_eq!(votes.helpful + votes.not_helpful, 0);
}

fn agenda_config() -> OfficeHoursConfig {
    OfficeHoursConfig {
        agenda_schedule: Some(AgendaCron::parse("0 16 * * Thu").unwrap()),
        zone: paver::docs::config::AgendaZone("Europe/Berlin".parse().unwrap()),
        ..OfficeHoursConfig::default()
    }
}

#[tokio::test]
async fn the_agenda_is_posted_once_when_two_schedulers_race() {
    let a = start_with(agenda_config(), None).await;
    // Tagged by writing it, and by the button.
    let written = a
        .ask(
            "bob",
            "office hours: do we have GPU nodes for training ML models?",
        )
        .await;
    assert!(!a.labels(&written).contains(&"Office hours".to_owned()));
    assert!(a
        .answer(&written)
        .context
        .unwrap()
        .contains("On the next office-hours agenda"));
    let pressed = a
        .ask("carol", "is there a budget for conference travel?")
        .await;
    a.press("carol", &pressed, "Office hours").await;
    let untagged = a.ask("dave", UNKNOWN).await;
    let b = start_with(agenda_config(), Some(&a.paver)).await;

    // Thursday 3 Dec 2026, 16:05 in Berlin.
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 15, 5, 0).unwrap();
    let preview = a
        .paver
        .engine
        .office_hours()
        .run_agenda(now, true)
        .await
        .unwrap();
    let preview = preview.preview.unwrap();
    assert!(preview.contains("do we have GPU nodes"), "{preview}");
    assert!(!preview.contains("office hours: do we"), "{preview}");

    let (ra, rb) = tokio::join!(
        a.paver.engine.office_hours().run_agenda(now, false),
        b.paver.engine.office_hours().run_agenda(now, false),
    );
    let outcomes = [ra.unwrap().outcome, rb.unwrap().outcome];
    assert!(
        outcomes.contains(&AgendaOutcome::Posted { questions: 2 }),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&AgendaOutcome::AlreadyPosted),
        "{outcomes:?}"
    );
    a.paver.idle().await;
    b.paver.idle().await;
    let agendas: Vec<Message> = posts_in(&a.slack, "C0PLATFORM")
        .into_iter()
        .chain(posts_in(&b.slack, "C0PLATFORM"))
        .map(|(m, _)| m)
        .filter(|m| {
            m.title
                .as_deref()
                .is_some_and(|t| t.starts_with("Office hours agenda"))
        })
        .collect();
    assert_eq!(agendas.len(), 1);
    assert_eq!(
        agendas[0].title.as_deref(),
        Some("Office hours agenda — 3 Dec")
    );
    assert!(
        agendas[0].text.starts_with("1. “do we have GPU nodes"),
        "{}",
        agendas[0].text
    );
    assert_eq!(agendas[0].text.lines().count(), 2, "{}", agendas[0].text);
    let dave = a
        .paver
        .db()
        .questions()
        .get(&untagged)
        .await
        .unwrap()
        .unwrap();
    assert!(dave.agenda_period.is_none());

    // The schedulers' ticks: one holds the lease, and the period is done.
    let ta = a
        .paver
        .engine
        .office_hours()
        .agenda_tick("a", now)
        .await
        .unwrap();
    let tb = b
        .paver
        .engine
        .office_hours()
        .agenda_tick("b", now)
        .await
        .unwrap();
    assert_eq!(ta.unwrap().outcome, AgendaOutcome::AlreadyPosted);
    assert!(tb.is_none(), "the other replica waits for the lease");
    // A week later nothing is left untreated: an empty period posts nothing.
    let later = now + chrono::Duration::days(7);
    let run = a
        .paver
        .engine
        .office_hours()
        .run_agenda(later, false)
        .await
        .unwrap();
    assert_eq!(run.outcome, AgendaOutcome::Empty);
    let q = a
        .paver
        .db()
        .questions()
        .get(&written)
        .await
        .unwrap()
        .unwrap();
    assert!(q.agenda_period.is_some());
}

/// The pages a webhook received: the Authorization header and the body.
type Pages = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

/// A loopback on-call webhook: what it received, and what it answers.
async fn webhook(status: u16) -> (String, Pages) {
    use axum::http::{HeaderMap, StatusCode};
    let got: Pages = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(
            move |headers: HeaderMap, body: axum::Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    seen.lock().unwrap().push((auth, body.0));
                    StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/page"), got)
}

#[tokio::test]
async fn the_on_call_webhook_is_paged_with_the_question_and_its_failure_is_said() {
    let (url, got) = webhook(202).await;
    let h = start_with(
        OfficeHoursConfig {
            oncall_webhook: Some(url.parse().unwrap()),
            oncall_token: Some("s3cret".to_owned().into()),
            ..OfficeHoursConfig::default()
        },
        None,
    )
    .await;
    let id = h.ask("bob", UNKNOWN).await;
    h.press("bob", &id, "Ask a human").await;
    let pages = got.lock().unwrap().clone();
    assert_eq!(pages.len(), 1);
    let (auth, page) = &pages[0];
    assert_eq!(auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(page["event"], "paver.office_hours.ask_a_human");
    assert_eq!(page["question_id"], id.as_str());
    assert_eq!(page["question"], UNKNOWN);
    assert_eq!(page["asked_by"], "bob");
    assert_eq!(page["known"], false);
    assert_eq!(page["platform_channel"], "slack:C0PLATFORM");
    assert!(!h.paver.thread_texts().iter().any(|t| t.contains("failed")));

    let (url, got) = webhook(500).await;
    let h = start_with(
        OfficeHoursConfig {
            oncall_webhook: Some(url.parse().unwrap()),
            ..OfficeHoursConfig::default()
        },
        None,
    )
    .await;
    let id = h.ask("bob", UNKNOWN).await;
    h.press("bob", &id, "Ask a human").await;
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(h.handoffs().len(), 1, "the handoff stands without the page");
    let texts = h.paver.thread_texts();
    assert!(
        texts.iter().any(|t| t.starts_with(
            "Paging the platform on-call failed (the on-call webhook answered 500 Internal Server Error); the question is in <#C0PLATFORM> all the same."
        )),
        "{texts:?}"
    );
}

#[test]
fn questions_are_tagged_and_redacted_and_grouped_by_their_words() {
    assert_eq!(
        office_hours::read_tag("Office hours: can we get GPUs?"),
        (true, "can we get GPUs?".to_owned())
    );
    assert_eq!(
        office_hours::read_tag("#officehours can we get GPUs?"),
        (true, "can we get GPUs?".to_owned())
    );
    assert!(!office_hours::read_tag("when are office hours held?").0);
    assert_eq!(
        office_hours::redact("why does postgres://app:hunter2@db/x fail with password=hunter2"),
        "why does postgres://app:***@db/x fail with password=***"
    );
    assert_eq!(office_hours::gap_key("How do I get GPU nodes?"), "gpu node");
    assert_eq!(
        office_hours::gap_key("gpu node: how can we get"),
        office_hours::gap_key("How do I get GPU nodes?")
    );
}
