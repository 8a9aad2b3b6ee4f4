//! Thread ownership: whether a chat place belongs to a request or to an
//! office-hours handoff (the platform team's thread under a question Paver
//! posted there), so a plain message there is for Paver. The one place
//! that decides it; adapters may cache the answer.

use super::{Db, StorageError};
use crate::domain::Platform;

pub struct ThreadStore<'a> {
    pub(super) db: &'a Db,
}

impl ThreadStore<'_> {
    /// Whether `(platform, channel, thread)` belongs to a request:
    ///
    /// - with a `thread` (Slack's `thread_ts`): a request was made in that
    ///   thread of that channel;
    /// - without one (Discord, where a thread is a channel of its own):
    ///   `channel` is a thread started under a card (its id is the card's
    ///   message id) or the thread a card was posted in (the card's
    ///   reference is `<thread>/<message>`).
    pub async fn belongs_to_request(
        &self,
        platform: Platform,
        channel: &str,
        thread: Option<&str>,
    ) -> Result<bool, StorageError> {
        let found = match thread {
            Some(thread) => {
                sqlx::query(
                    "SELECT id FROM requests WHERE platform = $1 AND channel = $2 AND thread = $3 LIMIT 1",
                )
                .bind(platform.as_str())
                .bind(channel)
                .bind(thread)
                .fetch_optional(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT card_key FROM cards WHERE platform = $1 AND (message_ref = $2 OR message_ref LIKE $3) LIMIT 1",
                )
                .bind(platform.as_str())
                .bind(channel)
                .bind(format!("{channel}/%"))
                .fetch_optional(self.db.pool())
                .await?
            }
        };
        Ok(found.is_some())
    }

    /// The question whose handoff thread `(platform, channel, thread)` is:
    /// with a `thread` (Slack), the thread under the handoff post in that
    /// channel; without one (Discord), a thread started under it.
    pub async fn handoff_of(
        &self,
        platform: Platform,
        channel: &str,
        thread: Option<&str>,
    ) -> Result<Option<String>, StorageError> {
        self.db
            .questions()
            .handoff_at(platform, channel, thread)
            .await
    }

    /// Whether a plain message at `(platform, channel, thread)` is for
    /// Paver: a request's thread or a handoff's. What the edges ask.
    pub async fn hears(
        &self,
        platform: Platform,
        channel: &str,
        thread: Option<&str>,
    ) -> Result<bool, StorageError> {
        Ok(self.belongs_to_request(platform, channel, thread).await?
            || self.handoff_of(platform, channel, thread).await?.is_some())
    }
}
