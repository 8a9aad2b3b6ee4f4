//! The replay cache of signed callbacks: each signature is accepted once,
//! across every replica sharing the database.

use super::{now_ms, Db, StorageError};

pub struct ReplayStore<'a> {
    pub(crate) db: &'a Db,
}

impl ReplayStore<'_> {
    /// Records `signature`; false when it was recorded before (a replay).
    /// Entries older than `keep_ms` are dropped first: by then the
    /// signature's timestamp is stale and refuses it on its own.
    pub async fn first_use(&self, signature: &str, keep_ms: i64) -> Result<bool, StorageError> {
        let now = now_ms();
        sqlx::query("DELETE FROM callback_replay WHERE seen_at < $1")
            .bind(now - keep_ms)
            .execute(self.db.pool())
            .await?;
        let done = sqlx::query(
            "INSERT INTO callback_replay (signature, seen_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(signature)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a signature whose callback could not be stored, so that
    /// the orchestrator's retry of it is not taken for a replay.
    pub async fn forget(&self, signature: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM callback_replay WHERE signature = $1")
            .bind(signature)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
