//! Shared test fixtures: a fresh database per test (SQLite by default, or
//! PostgreSQL when PAVER_TEST_DATABASE_URL names one), a recording chat
//! sink, a scriptable driver, and [`paver::TestPaver`], the one way tests
//! start Paver.
#![allow(dead_code)]

pub mod fake;
pub mod openapi;
pub mod paver;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use ::paver::chat::{ChatSink, Message, SendError};
use ::paver::domain::{Environment, ServiceName};
use ::paver::drivers::{Driver, DriverError, EnvStatus, Job, Outcome, Progress};
use ::paver::storage::Db;

pub const SAMPLE_CATALOG: &str = "../shared/fixtures/catalog.yaml";

/// The number a counting query answers (`SELECT COUNT(*) …`).
pub async fn count(db: &Db, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get::<i64, _>(0)
        .unwrap()
}

/// POSTs `body` to the generic deploy hook of the Paver at `base`, signed
/// now with `secret` as a deploy system would.
pub async fn post_generic_hook(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    body: String,
) -> reqwest::Response {
    let ts = chrono::Utc::now().timestamp();
    let sig = ::paver::drivers::http::sign_callback(
        secret,
        ts,
        "POST",
        "/hooks/generic",
        body.as_bytes(),
    );
    http.post(format!("{base}/hooks/generic"))
        .header("X-Paver-Timestamp", ts.to_string())
        .header("X-Paver-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A database of its own for one test; dropped (PostgreSQL) or deleted
/// (SQLite) when the guard goes.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            // Drop runs outside any runtime we can block on: use a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(db) = Db::connect_without_migrating(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(db.pool())
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub async fn test_db() -> TestDb {
    match std::env::var("PAVER_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let name = format!("paver_test_{:016x}", rand::thread_rng().gen::<u64>());
            let db = Db::connect_without_migrating(&admin)
                .await
                .unwrap_or_else(|e| panic!("PAVER_TEST_DATABASE_URL is set but unreachable: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(db.pool())
                .await
                .expect("create a test database");
            db.pool().close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            let url = format!("{base}/{name}");
            TestDb {
                db: Db::connect(&url).await.expect("migrate the test database"),
                url,
                _dir: None,
                pg_drop: Some((admin, name)),
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/paver.db", dir.path().display());
            TestDb {
                db: Db::connect(&url)
                    .await
                    .expect("create the SQLite test database"),
                url,
                _dir: Some(dir),
                pg_drop: None,
            }
        }
    }
}

/// What a chat sink was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Post {
        channel: String,
        thread: Option<String>,
        message: Message,
        r#ref: String,
    },
    Update {
        channel: String,
        r#ref: String,
        message: Message,
    },
    Ephemeral {
        channel: String,
        user: String,
        message: Message,
    },
}

/// Records every send; can be told to fail the next sends.
#[derive(Clone, Default)]
pub struct RecordingSink {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    pub fail_next: Arc<Mutex<VecDeque<SendError>>>,
    pub attempts: Arc<AtomicUsize>,
}

impl RecordingSink {
    pub fn all(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
    fn failure(&self) -> Option<SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.fail_next.lock().unwrap().pop_front()
    }
    /// Every text a person could read, in order.
    pub fn transcript(&self) -> String {
        self.all()
            .iter()
            .map(|s| match s {
                Sent::Post { message, .. }
                | Sent::Update { message, .. }
                | Sent::Ephemeral { message, .. } => {
                    format!(
                        "{:?} {} {:?}\n",
                        message.title, message.text, message.fields
                    )
                }
            })
            .collect()
    }
}

#[async_trait]
impl ChatSink for RecordingSink {
    async fn post(
        &self,
        channel: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let mut sent = self.sent.lock().unwrap();
        let r = format!("ts-{}", sent.len() + 1);
        sent.push(Sent::Post {
            channel: channel.into(),
            thread: thread.map(str::to_owned),
            message: message.clone(),
            r#ref: r.clone(),
        });
        Ok(r)
    }
    async fn update(
        &self,
        channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), SendError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.sent.lock().unwrap().push(Sent::Update {
            channel: channel.into(),
            r#ref: message_ref.into(),
            message: message.clone(),
        });
        Ok(())
    }
    async fn ephemeral(
        &self,
        channel: &str,
        user: &str,
        _thread: Option<&str>,
        message: &Message,
    ) -> Result<(), SendError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.sent.lock().unwrap().push(Sent::Ephemeral {
            channel: channel.into(),
            user: user.into(),
            message: message.clone(),
        });
        Ok(())
    }
}

/// A driver whose answers the test scripts.
#[derive(Clone)]
pub struct FakeDriver {
    pub jobs: Arc<Mutex<Vec<Job>>>,
    pub script: Arc<Mutex<VecDeque<Result<Outcome, DriverError>>>>,
    pub resumable: bool,
    pub delay: Duration,
    /// Environments no service has (the rest exist, at version 1.0.0).
    pub absent: Vec<Environment>,
}

impl Default for FakeDriver {
    fn default() -> Self {
        FakeDriver {
            jobs: Arc::default(),
            script: Arc::default(),
            resumable: true,
            delay: Duration::ZERO,
            absent: vec![Environment::Preview],
        }
    }
}

impl FakeDriver {
    pub fn calls(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }
    pub fn then(&self, r: Result<Outcome, DriverError>) -> &Self {
        self.script.lock().unwrap().push_back(r);
        self
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn resumable(&self) -> bool {
        self.resumable
    }
    async fn execute(&self, job: &Job, progress: Progress<'_>) -> Result<Outcome, DriverError> {
        self.jobs.lock().unwrap().push(job.clone());
        progress("working");
        tokio::time::sleep(self.delay).await;
        let scripted = self.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| {
            Ok(Outcome {
                summary: format!("did {}", job.action.kind()),
                url: job
                    .action
                    .service()
                    .zip(job.action.environment())
                    .map(|(s, e)| format!("https://{s}.{e}.example.internal")),
                links: vec![],
            })
        })
    }
    async fn status(
        &self,
        _service: &ServiceName,
        env: Option<Environment>,
    ) -> Result<Vec<EnvStatus>, DriverError> {
        let all = [
            Environment::Dev,
            Environment::Staging,
            Environment::Production,
            Environment::Preview,
        ];
        Ok(all
            .into_iter()
            .filter(|e| env.is_none_or(|want| want == *e) && !self.absent.contains(e))
            .map(|environment| EnvStatus {
                environment,
                version: Some("1.0.0".into()),
                replicas: Some(1),
                resources: vec![],
                url: None,
                expires_at: None,
                health: None,
            })
            .collect())
    }
}
