//! The replay cache of signed callbacks: each signature is accepted once,
//! across every replica sharing the database.

use super::{now_ms, Db, StorageError};

/// How long a signature checked with `tolerance_secs` must be remembered:
/// its timestamp may be up to the tolerance ahead of or behind the clock,
/// so twice that, and a minute's margin.
pub fn keep_ms(tolerance_secs: u64) -> i64 {
    (tolerance_secs.min(i64::MAX as u64 / 4000) as i64) * 2 * 1000 + 60_000
}

pub struct ReplayStore<'a> {
    pub(crate) db: &'a Db,
}

impl ReplayStore<'_> {
    /// Records `signature`; false when it was recorded before (a replay).
    /// Old entries are pruned by the retention scheduler
    /// ([`super::retention`]) past the longest tolerance of any signer
    /// sharing this table: pruning here with one signer's tolerance would
    /// drop another's signatures while they could still be replayed.
    pub async fn first_use(&self, signature: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO callback_replay (signature, seen_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(signature)
        .bind(now_ms())
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
