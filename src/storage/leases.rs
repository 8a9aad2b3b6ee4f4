//! Named leases for the schedulers (`util::scheduler`): one row per name
//! in `nag_lease` (named after its first user, the nag scheduler; every
//! scheduler's lease lives there), with its holder and expiry.

use async_trait::async_trait;

use super::{get_i64, get_str, Db, StorageError};

pub struct LeaseStore<'a> {
    pub(super) db: &'a Db,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    /// Unix ms.
    pub until: i64,
}

impl LeaseStore<'_> {
    /// Takes (or renews) lease `name` for `holder` until `until`; true when
    /// `holder` has it. One conditional upsert: a lease whose time ran out
    /// before `now` is anyone's, so a replica that died hands it on by
    /// itself, and of two replicas racing for a free one exactly one wins.
    pub async fn take(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO nag_lease (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE nag_lease.holder = excluded.holder OR nag_lease.until < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lets the lease go (at shutdown), so another replica need not wait.
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM nag_lease WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Who holds lease `name`, and until when (expired or not).
    pub async fn get(&self, name: &str) -> Result<Option<LeaseRow>, StorageError> {
        let row = sqlx::query("SELECT name, holder, until FROM nag_lease WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| {
            Ok(LeaseRow {
                name: get_str(&r, "name")?,
                holder: get_str(&r, "holder")?,
                until: get_i64(&r, "until")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl crate::util::scheduler::Leases for Db {
    type Error = StorageError;

    async fn take(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StorageError> {
        self.leases().take(name, holder, now, until).await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StorageError> {
        self.leases().release(name, holder).await
    }
}
