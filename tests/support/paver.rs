//! One Paver for an integration test, driven as a user would drive it.
//!
//! In the manner of bors's `BorsTester` and zero2prod's `spawn_app`: a test
//! asks `TestPaver::builder()` for what it needs to differ (catalog, driver,
//! settings, policy, the real chat sinks of an adapter pointed at a fake)
//! and gets an engine on a fresh database with a dispatcher and a recording
//! console sink. It then says things, presses buttons, and reads what
//! people saw — never how the engine is wired.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paver::app::App;
use paver::catalog::{Catalog, SharedCatalog};
use paver::chat::dispatcher::{Dispatcher, Pace};
use paver::chat::{ChatSink, ChatUser, Conversation, Inbound, Message, Platform};
use paver::domain::{Reason, UserName};
use paver::drivers::Driver;
use paver::engine::{Engine, EngineSettings, Handled};
use paver::policy::PolicyConfig;
use paver::storage::{Db, Request};

use super::{test_db, FakeDriver, RecordingSink, Sent, TestDb, SAMPLE_CATALOG};

/// How long a test waits for the engine to settle before failing.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Event ids are unique across every Paver of a test binary: replicas on
/// one database deduplicate chat events there, and two replicas counting
/// from zero would drop each other's messages as redeliveries.
static EVENTS: AtomicUsize = AtomicUsize::new(0);

/// A console user; "mallory" is one the catalog does not know.
pub fn user(name: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Console,
        id: name.into(),
        catalog: UserName::parse(name).ok().filter(|_| name != "mallory"),
    }
}

/// The console channel every harness conversation happens in.
pub fn conv() -> Conversation {
    Conversation {
        platform: Platform::Console,
        channel: "C1".into(),
        thread: None,
    }
}

/// What a test may change about the Paver it starts; everything else is
/// the sample catalog, a [`FakeDriver`], default settings and policy.
pub struct TestPaverBuilder {
    catalog: Option<SharedCatalog>,
    fake: FakeDriver,
    driver: Option<Arc<dyn Driver>>,
    settings: EngineSettings,
    policy: PolicyConfig,
    sinks: HashMap<String, Arc<dyn ChatSink>>,
    db: Option<Database>,
    pace: Pace,
}

/// The database a Paver runs on: its own (dropped with the last replica)
/// or one the test keeps.
#[derive(Clone)]
enum Database {
    Owned(Arc<TestDb>),
    Borrowed(Db),
}

impl TestPaverBuilder {
    /// The catalog (default: `../shared/fixtures/catalog.yaml`).
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(SharedCatalog::new(catalog));
        self
    }

    /// A catalog another engine already holds (a reload shows in both).
    pub fn shared_catalog(mut self, catalog: SharedCatalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// A catalog file, e.g. the shipped `config/catalog.yaml`.
    pub fn catalog_file(self, path: &str) -> Self {
        self.catalog(Catalog::from_yaml_file(Path::new(path)).unwrap())
    }

    /// A scripted driver the test keeps a clone of (also `paver.driver`).
    pub fn fake_driver(mut self, fake: FakeDriver) -> Self {
        self.fake = fake;
        self.driver = None;
        self
    }

    /// Any other driver; `paver.driver` is then a fake nobody calls.
    pub fn driver(mut self, driver: Arc<dyn Driver>) -> Self {
        self.driver = Some(driver);
        self
    }

    pub fn settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// A chat sink for `platform` besides the recording console one, e.g.
    /// an adapter's real sink pointed at a fake platform API.
    pub fn sink(mut self, platform: &str, sink: Arc<dyn ChatSink>) -> Self {
        self.sinks.insert(platform.into(), sink);
        self
    }

    /// How far apart sends to one channel go (default: unpaced).
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Several sinks, as `paver::server::sinks` builds them from a config.
    pub fn sinks(mut self, sinks: HashMap<String, Arc<dyn ChatSink>>) -> Self {
        self.sinks.extend(sinks);
        self
    }

    /// Another replica (process) on `other`'s database; the database
    /// lives until the last replica is dropped.
    pub fn replica_of(mut self, other: &TestPaver) -> Self {
        self.db = Some(other.db.clone());
        self
    }

    /// A database the test owns and keeps (the Paver only uses it).
    pub fn on_db(mut self, db: Db) -> Self {
        self.db = Some(Database::Borrowed(db));
        self
    }

    /// A database the test made first (to serve something on it before
    /// Paver starts); the Paver owns it from now on.
    pub fn test_db(mut self, tdb: TestDb) -> Self {
        self.db = Some(Database::Owned(Arc::new(tdb)));
        self
    }

    pub async fn start(self) -> TestPaver {
        let database = match self.db {
            Some(database) => database,
            None => Database::Owned(Arc::new(test_db().await)),
        };
        let db = match &database {
            Database::Owned(tdb) => tdb.db.clone(),
            Database::Borrowed(db) => db.clone(),
        };
        let sink = RecordingSink::default();
        let mut sinks = self.sinks;
        // A test's own console sink (a real `ConsoleSink`) replaces the
        // recording one, which then records nothing.
        sinks
            .entry("console".into())
            .or_insert_with(|| Arc::new(sink.clone()));
        let dispatcher = Dispatcher::new(db.clone(), sinks, self.pace);
        dispatcher.spawn();
        let catalog = self.catalog.unwrap_or_else(|| {
            SharedCatalog::new(Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).unwrap())
        });
        let driver = self
            .driver
            .unwrap_or_else(|| Arc::new(self.fake.clone()) as Arc<dyn Driver>);
        let engine = Engine::new(
            db,
            catalog.clone(),
            self.policy,
            driver,
            dispatcher.clone(),
            self.settings,
        );
        TestPaver {
            engine,
            sink,
            driver: self.fake,
            catalog,
            dispatcher,
            db: database,
        }
    }
}

/// A running Paver on its own database (or sharing one with replicas).
pub struct TestPaver {
    pub engine: Engine,
    /// Everything sent to console users.
    pub sink: RecordingSink,
    /// The scripted driver (unused when the builder was given another).
    pub driver: FakeDriver,
    pub catalog: SharedCatalog,
    pub dispatcher: Dispatcher,
    db: Database,
}

impl TestPaver {
    pub fn builder() -> TestPaverBuilder {
        TestPaverBuilder {
            catalog: None,
            fake: FakeDriver::default(),
            driver: None,
            settings: EngineSettings::default(),
            policy: PolicyConfig::default(),
            sinks: HashMap::new(),
            db: None,
            pace: Pace::none(),
        }
    }

    /// The defaults: sample catalog, a fake driver, default settings.
    pub async fn start() -> TestPaver {
        Self::builder().start().await
    }

    pub fn db(&self) -> &Db {
        match &self.db {
            Database::Owned(tdb) => &tdb.db,
            Database::Borrowed(db) => db,
        }
    }

    /// The application as `paver serve` assembles it, for routers and
    /// adapters that take one.
    pub fn app(&self) -> App {
        App {
            db: self.db().clone(),
            catalog: self.catalog.clone(),
            engine: self.engine.clone(),
            dispatcher: self.dispatcher.clone(),
            holder: "test".into(),
            schedulers: Default::default(),
            process_lock: None,
            readiness: Default::default(),
        }
    }

    /// Waits until nothing runs, is queued or waits to be sent.
    pub async fn idle(&self) {
        assert!(
            self.engine.wait_idle(IDLE_LIMIT).await.unwrap(),
            "engine never went idle"
        );
    }

    // ----- saying things -------------------------------------------------

    /// `who` says `text` in the channel, without waiting for the answer.
    pub async fn say_now(&self, who: &str, text: &str, thread: Option<&str>) -> Handled {
        let n = EVENTS.fetch_add(1, Ordering::SeqCst);
        self.engine
            .handle_message(Inbound {
                event_id: Some(format!("ev-{n}")),
                user: user(who),
                conversation: Conversation {
                    thread: thread.map(str::to_owned),
                    ..conv()
                },
                text: text.into(),
            })
            .await
            .unwrap()
    }

    /// `who` says `text` in the channel; returns once everything it caused
    /// is done and sent.
    pub async fn say(&self, who: &str, text: &str) -> Handled {
        self.say_in(who, text, None).await
    }

    /// As [`TestPaver::say`], in `thread` (a chat message ref) if given.
    pub async fn say_in(&self, who: &str, text: &str, thread: Option<&str>) -> Handled {
        let handled = self.say_now(who, text, thread).await;
        self.idle().await;
        handled
    }

    /// `who` replies in the thread under the request's card.
    pub async fn reply_in_thread(&self, who: &str, id: &str, text: &str) -> Handled {
        let thread = self.card_ref(id);
        self.say_in(who, text, Some(&thread)).await
    }

    /// Proposes `text` as `who`, waits until the card is out, and returns
    /// the request id.
    pub async fn propose(&self, who: &str, text: &str) -> String {
        let id = self.propose_now(who, text).await;
        self.idle().await;
        id
    }

    /// Proposes without waiting for anything to settle (another replica
    /// may hold work that never finishes).
    pub async fn propose_now(&self, who: &str, text: &str) -> String {
        match self.say_now(who, text, None).await {
            Handled::Proposed(id) => id,
            other => panic!("{text:?} was not proposed: {other:?}"),
        }
    }

    // ----- pressing buttons ----------------------------------------------

    /// Presses the button `label` of the request's card, without waiting;
    /// waits (a while) for the card to show the button first.
    pub async fn press_now(&self, who: &str, id: &str, label: &str) {
        let mut payload = None;
        for _ in 0..200 {
            payload = self.button(id, label);
            if payload.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let payload = payload.unwrap_or_else(|| panic!("no {label} button for {id}"));
        self.click(who, &payload).await;
    }

    /// Presses the button and waits until what it caused is done.
    pub async fn press(&self, who: &str, id: &str, label: &str) {
        self.press_now(who, id, label).await;
        self.idle().await;
    }

    /// Sends a button payload as `who` clicked it (forged, replayed or
    /// old ones included), without waiting.
    pub async fn click(&self, who: &str, payload: &str) {
        self.engine
            .handle_button(&user(who), &conv(), payload)
            .await
            .unwrap();
    }

    /// Presses a button that needs a reason (Deny), giving it: what
    /// submitting the form a chat platform opens for the press does. Waits
    /// until what it caused is done.
    pub async fn press_with_reason(&self, who: &str, id: &str, label: &str, reason: &str) {
        let payload = self
            .button(id, label)
            .unwrap_or_else(|| panic!("no {label} button for {id}"));
        self.click_with_reason(who, &payload, reason).await;
        self.idle().await;
    }

    /// Submits a reason form for a button payload as `who` (forged,
    /// replayed or old ones included), without waiting.
    pub async fn click_with_reason(&self, who: &str, payload: &str, reason: &str) {
        let reason = Reason::parse(reason).expect("a test reason is a valid one");
        self.engine
            .handle_reasoned(&user(who), Some(&conv()), payload, reason)
            .await
            .unwrap();
    }

    // ----- what people saw -----------------------------------------------

    /// The payload of `label` on the latest rendering of the request's card.
    pub fn button(&self, id: &str, label: &str) -> Option<String> {
        self.sink.all().iter().rev().find_map(|s| match s {
            Sent::Post { message, .. } | Sent::Update { message, .. } => message
                .buttons
                .iter()
                .find(|b| b.label == label && b.payload.contains(id))
                .map(|b| b.payload.clone()),
            _ => None,
        })
    }

    /// Every rendering of the request's card, oldest first.
    pub fn cards(&self, id: &str) -> Vec<Message> {
        // The card's context says "Request <id> · <when>"; a deploy notice
        // in its thread names the request too ("… · request <id>"), and
        // must not be taken for the card when it lands last.
        let marker = format!("Request {id}");
        self.sink
            .all()
            .iter()
            .filter_map(|s| match s {
                Sent::Post { message, .. } | Sent::Update { message, .. }
                    if message
                        .context
                        .as_deref()
                        .is_some_and(|c| c.contains(&marker)) =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .collect()
    }

    pub fn latest_card(&self, id: &str) -> Message {
        self.cards(id).pop().expect("a card for the request")
    }

    /// The chat message of the request's card (where replies form its
    /// thread): the post that was the card, or the one an update turned
    /// into the card (a "reading that…" placeholder).
    pub fn card_ref(&self, id: &str) -> String {
        self.sink
            .all()
            .iter()
            .find_map(|s| match s {
                Sent::Post { message, r#ref, .. } | Sent::Update { message, r#ref, .. }
                    if message.context.as_deref().is_some_and(|c| c.contains(id)) =>
                {
                    Some(r#ref.clone())
                }
                _ => None,
            })
            .expect("the request's card was posted")
    }

    /// The status lines the card was given, in order: read from the
    /// outbox, since the dispatcher skips an update a later one supersedes.
    pub async fn statuses(&self, id: &str) -> Vec<String> {
        use sqlx::Row;
        let rows = sqlx::query("SELECT body FROM outbox WHERE card_key = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.db().pool())
            .await
            .unwrap();
        rows.iter()
            .filter_map(|r| {
                let body: String = r.try_get("body").unwrap();
                let m: Message = serde_json::from_str(&body).unwrap();
                m.fields
                    .iter()
                    .find(|(k, _)| k == "Status")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    /// Messages posted in threads (not cards), as text with their fields.
    pub fn thread_texts(&self) -> Vec<String> {
        self.sink
            .all()
            .iter()
            .filter_map(|s| match s {
                Sent::Post {
                    thread: Some(_),
                    message,
                    ..
                } => Some(format!("{} {:?}", message.text, message.fields)),
                _ => None,
            })
            .collect()
    }

    /// What only `who` was shown.
    pub fn whispers_to(&self, who: &str) -> Vec<String> {
        self.sink
            .all()
            .iter()
            .filter_map(|s| match s {
                Sent::Ephemeral { user, message, .. } if user == who => Some(message.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every text a console user could read, in order.
    pub fn transcript(&self) -> String {
        self.sink.transcript()
    }

    /// The request as stored.
    pub async fn request(&self, id: &str) -> Request {
        self.db().requests().get(id).await.unwrap()
    }

    // ----- deploy hooks --------------------------------------------------

    /// Serves Paver's HTTP routes as `paver serve` would, with `config`'s
    /// `[hooks]` and `[notify]`, on a loopback port; returns the base URL.
    pub async fn serve(&self, config: &paver::config::Config) -> String {
        let router = paver::server::router(&self.app(), config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    // ----- time ----------------------------------------------------------

    /// Expires what nobody acted on, as the periodic sweeper would.
    pub async fn sweep(&self) {
        self.engine.sweep().await.unwrap();
    }

    /// Makes time pass for one request without sleeping: its rows are
    /// backdated, then [`TestPaver::sweep`] sees what a later sweep would.
    pub fn clock(&self) -> Clock<'_> {
        Clock { db: self.db() }
    }
}

/// Time passing for a request, by backdating its rows (Paver stores epoch
/// milliseconds and compares them with now).
pub struct Clock<'a> {
    db: &'a Db,
}

impl Clock<'_> {
    async fn run(&self, statement: &str, id: &str) {
        sqlx::query(statement)
            .bind(id)
            .execute(self.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// The request's approvals were given `ago`.
    pub async fn approvals_given(&self, id: &str, ago: Duration) {
        let ms = ago.as_millis() as i64;
        self.run(
            &format!("UPDATE approvals SET at = at - {ms} WHERE request_id = $1"),
            id,
        )
        .await;
    }

    /// The request was made `ago` (and nothing happened to it since).
    pub async fn made_ago(&self, id: &str, ago: Duration) {
        let ms = ago.as_millis() as i64;
        self.run(
            &format!(
                "UPDATE requests SET created_at = created_at - {ms}, updated_at = updated_at - {ms} WHERE id = $1"
            ),
            id,
        )
        .await;
    }

    /// Nothing happened to the request for `ago`.
    pub async fn untouched_for(&self, id: &str, ago: Duration) {
        let ms = ago.as_millis() as i64;
        self.run(
            &format!("UPDATE requests SET updated_at = updated_at - {ms} WHERE id = $1"),
            id,
        )
        .await;
    }

    /// The lease on job `job_id` ran out (its worker stopped renewing it).
    pub async fn lease_ran_out(&self, job_id: &str) {
        self.run("UPDATE jobs SET lease_until = 1 WHERE id = $1", job_id)
            .await;
    }

    /// The request's approval window closes `left` from now.
    pub async fn approval_expires_in(&self, id: &str, left: Duration) {
        let at = paver::storage::now_ms() + left.as_millis() as i64;
        self.run(
            &format!("UPDATE requests SET approval_expires_at = {at} WHERE id = $1"),
            id,
        )
        .await;
    }

    /// The environment the request created (a preview) expired long ago.
    pub async fn environment_expired(&self, id: &str) {
        self.run("UPDATE requests SET expires_at = 1 WHERE id = $1", id)
            .await;
    }

    /// The request's approval window closed long ago.
    pub async fn approval_window_closed(&self, id: &str) {
        self.run(
            "UPDATE requests SET approval_expires_at = 1 WHERE id = $1",
            id,
        )
        .await;
    }
}
