//! Fake HTTP servers on 127.0.0.1 that record every request and answer
//! through a test's handler, and an engine harness for driver tests.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use paver::catalog::{Catalog, SharedCatalog};
use paver::chat::dispatcher::Dispatcher;
use paver::chat::{ChatSink, ChatUser, Conversation, Inbound, Message, Platform};
use paver::domain::UserName;
use paver::drivers::Driver;
use paver::engine::Handled;
use paver::engine::{Engine, EngineSettings};
use paver::policy::PolicyConfig;
use paver::storage::Db;

use super::openapi::Recorded;
use super::{RecordingSink, Sent, SAMPLE_CATALOG};

pub struct FakeServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    pub fn all(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.all()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .count()
    }
}

/// Serves `handler` on a free loopback port until the test ends.
pub async fn serve<F, Fut>(handler: F) -> FakeServer
where
    F: Fn(Recorded) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let log = requests.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            let log = log.clone();
            async move {
                let query = uri
                    .query()
                    .map(|q| {
                        url::form_urlencoded::parse(q.as_bytes())
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let r = Recorded {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    query,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: serde_json::from_slice(&body).ok(),
                    raw_body: body.to_vec(),
                };
                log.lock().unwrap().push(r.clone());
                handler(r).await
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeServer { url, requests }
}

pub fn json(status: u16, v: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// An engine on `db` with the sample catalog, the default policy and a
/// recording console sink.
pub struct EngineHarness {
    pub engine: Engine,
    pub sink: RecordingSink,
    pub db: Db,
    n: std::sync::atomic::AtomicUsize,
}

pub fn user(name: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Console,
        id: name.into(),
        catalog: UserName::parse(name).ok(),
    }
}

pub fn conv() -> Conversation {
    Conversation {
        platform: Platform::Console,
        channel: "C1".into(),
        thread: None,
    }
}

impl EngineHarness {
    pub async fn new(db: Db, driver: Arc<dyn Driver>, settings: EngineSettings) -> Self {
        Self::with_catalog(
            db,
            driver,
            settings,
            Catalog::from_yaml_file(Path::new(SAMPLE_CATALOG)).unwrap(),
        )
        .await
    }

    pub async fn with_catalog(
        db: Db,
        driver: Arc<dyn Driver>,
        settings: EngineSettings,
        catalog: Catalog,
    ) -> Self {
        let sink = RecordingSink::default();
        let mut sinks: HashMap<String, Arc<dyn ChatSink>> = HashMap::new();
        sinks.insert("console".into(), Arc::new(sink.clone()));
        let dispatcher = Dispatcher::new(db.clone(), sinks);
        dispatcher.spawn();
        let engine = Engine::new(
            db.clone(),
            SharedCatalog::new(catalog),
            PolicyConfig::default(),
            driver,
            dispatcher,
            settings,
        );
        EngineHarness {
            engine,
            sink,
            db,
            n: Default::default(),
        }
    }

    pub async fn idle(&self) {
        assert!(
            self.engine
                .wait_idle(Duration::from_secs(30))
                .await
                .unwrap(),
            "engine never went idle"
        );
    }

    /// Proposes `text` as `who` and returns the request id.
    pub async fn propose(&self, who: &str, text: &str) -> String {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let h = self
            .engine
            .handle_message(Inbound {
                event_id: Some(format!("ev-{n}")),
                user: user(who),
                conversation: conv(),
                text: text.into(),
            })
            .await
            .unwrap();
        match h {
            Handled::Proposed(id) => id,
            other => panic!("{text:?} was not proposed: {other:?}"),
        }
    }

    /// Presses the button `label` of the request's card, without waiting.
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
        self.engine
            .handle_button(&user(who), &conv(), &payload)
            .await
            .unwrap();
    }

    pub async fn press(&self, who: &str, id: &str, label: &str) {
        self.press_now(who, id, label).await;
        self.idle().await;
    }

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
        self.sink
            .all()
            .iter()
            .filter_map(|s| match s {
                Sent::Post { message, .. } | Sent::Update { message, .. }
                    if message.context.as_deref().is_some_and(|c| c.contains(id)) =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The status lines the card was given, in order: read from the
    /// outbox, since the dispatcher skips an update a later one supersedes.
    pub async fn statuses(&self, id: &str) -> Vec<String> {
        use sqlx::Row;
        let rows = sqlx::query("SELECT body FROM outbox WHERE card_key = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.db.pool())
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

    pub fn latest_card(&self, id: &str) -> Message {
        self.cards(id).pop().expect("a card for the request")
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
}
