//! The pace of each chat channel, kept in the database so every replica
//! keeps it: a send may start only at or after the channel's `next_at`.
//! A per-process limiter would let N replicas send N times the pace.
//!
//! Times are the callers' Unix milliseconds, as for leases elsewhere, so
//! replicas' clocks are assumed to agree to within a few milliseconds.

use super::{get_i64, Db, StorageError};
use crate::domain::Platform;

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The send may start now; the next one waits until `now + interval`.
    Granted,
    /// Another send (or a 429) holds the channel until this time (Unix ms).
    Wait { until: i64 },
}

pub struct PaceStore<'a> {
    pub(super) db: &'a Db,
}

impl PaceStore<'_> {
    /// Reserves the slot to send to `channel` at `now`: granted when the
    /// channel's `next_at` has come (or it has none yet), and then
    /// `next_at` moves to `now + interval_ms`. Grant and move are one
    /// conditional upsert, so of replicas reserving at once exactly one
    /// gets the slot (PostgreSQL locks the row and re-checks the condition
    /// on the latest version; SQLite has one writer).
    pub async fn reserve(
        &self,
        platform: Platform,
        channel: &str,
        now: i64,
        interval_ms: i64,
    ) -> Result<Slot, StorageError> {
        let granted = sqlx::query(
            "INSERT INTO channel_pace (platform, channel, next_at) VALUES ($1, $2, $3) \
             ON CONFLICT (platform, channel) DO UPDATE SET next_at = excluded.next_at \
             WHERE channel_pace.next_at <= $4 \
             RETURNING next_at",
        )
        .bind(platform.as_str())
        .bind(channel)
        .bind(now + interval_ms.max(0))
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        if granted.is_some() {
            return Ok(Slot::Granted);
        }
        // Only advice for how long to wait: read after the refusal, it may
        // already have passed, and then the caller simply tries again.
        let until = self.next_at(platform, channel).await?.unwrap_or(now);
        Ok(Slot::Wait {
            until: until.max(now),
        })
    }

    /// Holds the channel until `until` (Unix ms) for every replica, after
    /// the platform answered 429. Never pulls a later `next_at` earlier.
    pub async fn hold(
        &self,
        platform: Platform,
        channel: &str,
        until: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO channel_pace (platform, channel, next_at) VALUES ($1, $2, $3) \
             ON CONFLICT (platform, channel) DO UPDATE SET next_at = excluded.next_at \
             WHERE channel_pace.next_at < excluded.next_at",
        )
        .bind(platform.as_str())
        .bind(channel)
        .bind(until)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// When the next send to `channel` may start; `None` before the first.
    pub async fn next_at(
        &self,
        platform: Platform,
        channel: &str,
    ) -> Result<Option<i64>, StorageError> {
        let row =
            sqlx::query("SELECT next_at FROM channel_pace WHERE platform = $1 AND channel = $2")
                .bind(platform.as_str())
                .bind(channel)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|r| get_i64(&r, "next_at")).transpose()
    }
}
