//! Scorecard data: check results pushed from outside (CI), and each
//! service's level history.

use sqlx::FromRow;

use super::{now_ms, Db, StorageError};
use crate::domain::scorecard::Level;
use crate::domain::ServiceName;

/// A check result something outside Paver reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedResult {
    pub service: ServiceName,
    pub check: String,
    pub passed: bool,
    pub detail: Option<String>,
    /// Who said so: `hook`, `github`.
    pub source: String,
    /// Unix ms.
    pub at: i64,
}

/// A service's level and failing checks, as of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRecord {
    pub service: ServiceName,
    pub level: Option<Level>,
    pub failing: Vec<String>,
    pub at: i64,
}

#[derive(FromRow)]
struct ResultRow {
    service: String,
    check_name: String,
    passed: i64,
    detail: Option<String>,
    source: String,
    at: i64,
}

#[derive(FromRow)]
struct HistoryRow {
    service: String,
    level: String,
    failing: String,
    at: i64,
}

fn corrupt(what: String) -> StorageError {
    StorageError::Corrupt(format!("scorecards: {what}"))
}

impl TryFrom<HistoryRow> for ScoreRecord {
    type Error = StorageError;
    fn try_from(r: HistoryRow) -> Result<Self, StorageError> {
        Ok(ScoreRecord {
            service: ServiceName::parse(&r.service).map_err(|e| corrupt(e.to_string()))?,
            level: match r.level.as_str() {
                "none" => None,
                l => Some(Level::parse(l).ok_or_else(|| corrupt(format!("level {l}")))?),
            },
            failing: r
                .failing
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            at: r.at,
        })
    }
}

pub struct ScorecardStore<'a> {
    pub(super) db: &'a Db,
}

impl ScorecardStore<'_> {
    /// Keeps a pushed result; an older one than what is stored is ignored
    /// (hooks may arrive out of order).
    pub async fn push(&self, r: &PushedResult) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO check_results (service, check_name, passed, detail, source, at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (service, check_name) DO UPDATE SET passed = excluded.passed, detail = excluded.detail, \
             source = excluded.source, at = excluded.at WHERE check_results.at <= excluded.at",
        )
        .bind(r.service.as_str())
        .bind(&r.check)
        .bind(i64::from(r.passed))
        .bind(&r.detail)
        .bind(&r.source)
        .bind(r.at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The latest pushed results of one service.
    pub async fn pushed(&self, service: &ServiceName) -> Result<Vec<PushedResult>, StorageError> {
        let rows: Vec<ResultRow> = sqlx::query_as(
            "SELECT service, check_name, passed, detail, source, at FROM check_results WHERE service = $1 ORDER BY check_name",
        )
        .bind(service.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PushedResult {
                    service: ServiceName::parse(&r.service).map_err(|e| corrupt(e.to_string()))?,
                    check: r.check_name,
                    passed: r.passed != 0,
                    detail: r.detail,
                    source: r.source,
                    at: r.at,
                })
            })
            .collect()
    }

    /// Records a service's level and failing checks if they differ from
    /// the last record; true when they did.
    pub async fn record(
        &self,
        service: &ServiceName,
        level: Option<Level>,
        failing: &[String],
    ) -> Result<bool, StorageError> {
        let mut failing: Vec<String> = failing.to_vec();
        failing.sort();
        if let Some(last) = self.latest(service).await? {
            if last.level == level && last.failing == failing {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO score_history (service, level, failing, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(service.as_str())
        .bind(level.map(|l| l.as_str()).unwrap_or("none"))
        .bind(failing.join(","))
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        Ok(true)
    }

    /// The latest record of a service.
    pub async fn latest(&self, service: &ServiceName) -> Result<Option<ScoreRecord>, StorageError> {
        let row: Option<HistoryRow> = sqlx::query_as(
            "SELECT service, level, failing, at FROM score_history WHERE service = $1 ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(service.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(ScoreRecord::try_from).transpose()
    }

    /// The record that was current at `at` (the latest not after it).
    pub async fn as_of(
        &self,
        service: &ServiceName,
        at: i64,
    ) -> Result<Option<ScoreRecord>, StorageError> {
        let row: Option<HistoryRow> = sqlx::query_as(
            "SELECT service, level, failing, at FROM score_history WHERE service = $1 AND at <= $2 ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(service.as_str())
        .bind(at)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(ScoreRecord::try_from).transpose()
    }
}
