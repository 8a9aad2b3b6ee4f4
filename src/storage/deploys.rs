//! Deploy events and the notices that tell people about them.
//!
//! A notice follows one service in one environment for a window; at most
//! one is open per pair (a partial unique index), so replicas handling
//! events for the same deploy at once end up editing one notice, never
//! posting two. Every edit is conditional on the revision it read.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::{now_ms, Db, StorageError};
use crate::domain::{
    DeployNotice, DeployStatus, DeployStep, Environment, Platform, ServiceName, Version,
};

/// A notice as stored: its id, the revision an edit must name, when it
/// opened, and where it was posted.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotice {
    pub id: String,
    pub rev: i64,
    pub opened_at: i64,
    pub notice: DeployNotice,
}

/// One place a notice was posted: an outbox card, optionally in a thread
/// under another card (a request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCard {
    pub card_key: String,
    pub platform: Platform,
    pub channel: String,
    pub thread_key: Option<String>,
}

/// An accepted delivery, kept as history.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployEventRow {
    pub source: String,
    pub delivery: String,
    pub service: ServiceName,
    pub environment: Environment,
    pub version: Option<Version>,
    pub status: DeployStatus,
    pub notice_id: Option<String>,
    pub at: i64,
    /// The commit deployed, and when it was made (Unix ms), where the
    /// sender said.
    pub commit: Option<String>,
    pub commit_at: Option<i64>,
}

/// The steps column: a small JSON list (storage's own shape, not the
/// domain's, so the domain types need no serde).
#[derive(Serialize, Deserialize)]
struct StepJson {
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    t: i64,
}

fn steps_to_json(steps: &[DeployStep]) -> String {
    let list: Vec<StepJson> = steps
        .iter()
        .map(|s| StepJson {
            s: s.status.as_str().into(),
            v: s.version.as_ref().map(|v| v.as_str().to_owned()),
            t: s.at,
        })
        .collect();
    serde_json::to_string(&list).expect("steps serialize")
}

fn steps_from_json(id: &str, text: &str) -> Result<Vec<DeployStep>, StorageError> {
    let corrupt = |what: String| StorageError::Corrupt(format!("deploy notice {id}: {what}"));
    let list: Vec<StepJson> = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    list.into_iter()
        .map(|s| {
            Ok(DeployStep {
                status: DeployStatus::parse(&s.s)
                    .ok_or_else(|| corrupt(format!("status {}", s.s)))?,
                version: s
                    .v
                    .map(|v| Version::parse(&v).map_err(|e| corrupt(e.to_string())))
                    .transpose()?,
                at: s.t,
            })
        })
        .collect()
}

#[derive(FromRow)]
struct NoticeRow {
    id: String,
    service: String,
    environment: String,
    opened_at: i64,
    rev: i64,
    steps: String,
    url: Option<String>,
    link: Option<String>,
    message: Option<String>,
    commit_sha: Option<String>,
    request_id: Option<String>,
}

impl TryFrom<NoticeRow> for StoredNotice {
    type Error = StorageError;

    fn try_from(r: NoticeRow) -> Result<Self, StorageError> {
        let corrupt =
            |what: String| StorageError::Corrupt(format!("deploy notice {}: {what}", r.id));
        let service = ServiceName::parse(&r.service).map_err(|e| corrupt(e.to_string()))?;
        let environment = Environment::from_word(&r.environment)
            .ok_or_else(|| corrupt(format!("environment {}", r.environment)))?;
        let steps = steps_from_json(&r.id, &r.steps)?;
        Ok(StoredNotice {
            notice: DeployNotice {
                service,
                environment,
                steps,
                url: r.url,
                link: r.link,
                message: r.message,
                commit: r.commit_sha,
                request: r.request_id,
            },
            id: r.id,
            rev: r.rev,
            opened_at: r.opened_at,
        })
    }
}

#[derive(FromRow)]
struct CardRow {
    card_key: String,
    #[sqlx(try_from = "String")]
    platform: Platform,
    channel: String,
    thread_key: Option<String>,
}

const NOTICE_COLUMNS: &str =
    "id, service, environment, opened_at, rev, steps, url, link, message, commit_sha, request_id";

/// A fresh notice id (random, so replicas never pick the same one).
pub fn new_id() -> String {
    super::requests::random_token(10)
}

pub struct DeployStore<'a> {
    pub(super) db: &'a Db,
}

impl DeployStore<'_> {
    /// Keeps an accepted delivery as history.
    pub async fn record_event(&self, e: &DeployEventRow) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO deploy_events (source, delivery, service, environment, version, status, notice_id, at, commit_sha, commit_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.source)
        .bind(&e.delivery)
        .bind(e.service.as_str())
        .bind(e.environment.as_str())
        .bind(e.version.as_ref().map(|v| v.as_str().to_owned()))
        .bind(e.status.as_str())
        .bind(&e.notice_id)
        .bind(e.at)
        .bind(&e.commit)
        .bind(e.commit_at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The history of one service (every environment), oldest first.
    pub async fn events(&self, service: &ServiceName) -> Result<Vec<DeployEventRow>, StorageError> {
        #[derive(FromRow)]
        struct Row {
            source: String,
            delivery: String,
            service: String,
            environment: String,
            version: Option<String>,
            status: String,
            notice_id: Option<String>,
            at: i64,
            commit_sha: Option<String>,
            commit_at: Option<i64>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT source, delivery, service, environment, version, status, notice_id, at, commit_sha, commit_at \
             FROM deploy_events WHERE service = $1 ORDER BY at, id",
        )
        .bind(service.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let corrupt = |what: String| StorageError::Corrupt(format!("deploy event: {what}"));
                Ok(DeployEventRow {
                    service: ServiceName::parse(&r.service).map_err(|e| corrupt(e.to_string()))?,
                    environment: Environment::from_word(&r.environment)
                        .ok_or_else(|| corrupt(r.environment.clone()))?,
                    version: r
                        .version
                        .map(|v| Version::parse(&v).map_err(|e| corrupt(e.to_string())))
                        .transpose()?,
                    status: DeployStatus::parse(&r.status)
                        .ok_or_else(|| corrupt(r.status.clone()))?,
                    source: r.source,
                    delivery: r.delivery,
                    notice_id: r.notice_id,
                    at: r.at,
                    commit: r.commit_sha,
                    commit_at: r.commit_at,
                })
            })
            .collect()
    }

    /// The open notice of a service in an environment, if any.
    pub async fn open_notice(
        &self,
        service: &ServiceName,
        environment: Environment,
    ) -> Result<Option<StoredNotice>, StorageError> {
        let row: Option<NoticeRow> = sqlx::query_as(&format!(
            "SELECT {NOTICE_COLUMNS} FROM deploy_notices WHERE service = $1 AND environment = $2 AND is_open = 1"
        ))
        .bind(service.as_str())
        .bind(environment.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(StoredNotice::try_from).transpose()
    }

    pub async fn notice(&self, id: &str) -> Result<Option<StoredNotice>, StorageError> {
        let row: Option<NoticeRow> = sqlx::query_as(&format!(
            "SELECT {NOTICE_COLUMNS} FROM deploy_notices WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(StoredNotice::try_from).transpose()
    }

    /// Closes a notice whose window is over (a later event opens a new
    /// one). False when it was no longer open or was edited since `rev`.
    pub async fn close(&self, id: &str, rev: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE deploy_notices SET is_open = 0, rev = rev + 1 WHERE id = $1 AND rev = $2 AND is_open = 1",
        )
        .bind(id)
        .bind(rev)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens a notice with the places it is posted to, in one transaction.
    /// False when another one is already open for the pair (a replica won
    /// the race): the caller joins that one instead.
    pub async fn open(
        &self,
        id: &str,
        notice: &DeployNotice,
        cards: &[NoticeCard],
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO deploy_notices (id, service, environment, is_open, opened_at, updated_at, rev, steps, url, link, message, commit_sha, request_id) \
             VALUES ($1, $2, $3, 1, $4, $5, 0, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(notice.service.as_str())
        .bind(notice.environment.as_str())
        .bind(now)
        .bind(now)
        .bind(steps_to_json(&notice.steps))
        .bind(&notice.url)
        .bind(&notice.link)
        .bind(&notice.message)
        .bind(&notice.commit)
        .bind(&notice.request)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for c in cards {
            sqlx::query(
                "INSERT INTO deploy_notice_cards (card_key, notice_id, platform, channel, thread_key) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&c.card_key)
            .bind(id)
            .bind(c.platform.as_str())
            .bind(&c.channel)
            .bind(&c.thread_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Writes `notice` over the stored one if nobody edited it since `rev`.
    pub async fn update(
        &self,
        id: &str,
        rev: i64,
        notice: &DeployNotice,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE deploy_notices SET steps = $1, url = $2, link = $3, message = $4, commit_sha = $5, request_id = $6, \
             updated_at = $7, rev = rev + 1 WHERE id = $8 AND rev = $9",
        )
        .bind(steps_to_json(&notice.steps))
        .bind(&notice.url)
        .bind(&notice.link)
        .bind(&notice.message)
        .bind(&notice.commit)
        .bind(&notice.request)
        .bind(now_ms())
        .bind(id)
        .bind(rev)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records more places a notice was posted (a failure reaching a team
    /// the earlier steps did not). A place already recorded is kept.
    pub async fn add_cards(
        &self,
        notice_id: &str,
        cards: &[NoticeCard],
    ) -> Result<(), StorageError> {
        for c in cards {
            sqlx::query(
                "INSERT INTO deploy_notice_cards (card_key, notice_id, platform, channel, thread_key) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&c.card_key)
            .bind(notice_id)
            .bind(c.platform.as_str())
            .bind(&c.channel)
            .bind(&c.thread_key)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }

    /// Where a notice was posted.
    pub async fn cards(&self, notice_id: &str) -> Result<Vec<NoticeCard>, StorageError> {
        let rows: Vec<CardRow> = sqlx::query_as(
            "SELECT card_key, platform, channel, thread_key FROM deploy_notice_cards WHERE notice_id = $1 ORDER BY card_key",
        )
        .bind(notice_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| NoticeCard {
                card_key: r.card_key,
                platform: r.platform,
                channel: r.channel,
                thread_key: r.thread_key,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(status: DeployStatus) -> DeployNotice {
        DeployNotice {
            service: ServiceName::parse("order-service").unwrap(),
            environment: Environment::Staging,
            steps: vec![DeployStep {
                status,
                version: Some(Version::parse("2.5.0").unwrap()),
                at: 1,
            }],
            url: None,
            link: None,
            message: None,
            commit: None,
            request: None,
        }
    }

    #[tokio::test]
    async fn one_notice_is_open_per_service_and_environment_and_edits_name_their_revision() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/d.db", dir.path().display()))
            .await
            .unwrap();
        let store = db.deploys();
        let n = notice(DeployStatus::InProgress);
        assert!(store.open("d-1", &n, &[]).await.unwrap());
        // A second replica opening one for the same pair loses.
        assert!(!store.open("d-2", &n, &[]).await.unwrap());
        let open = store
            .open_notice(&n.service, n.environment)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((open.id.as_str(), open.rev), ("d-1", 0));
        assert_eq!(open.notice, n);
        let healthy = notice(DeployStatus::Healthy);
        assert!(store.update("d-1", 0, &healthy).await.unwrap());
        // An edit from a stale read is refused.
        assert!(!store.update("d-1", 0, &n).await.unwrap());
        assert!(store.close("d-1", 1).await.unwrap());
        assert!(store.open("d-2", &n, &[]).await.unwrap());
        assert_eq!(
            store.notice("d-1").await.unwrap().unwrap().notice.steps[0].status,
            DeployStatus::Healthy
        );
    }
}
