//! The outbox: every message Paver sends is first a row here, so nothing
//! is lost to a crash or a chat outage, and sends are retried from here.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::FromRow;

use super::batch::{self, Grouped};
use super::{get_i64, get_opt_i64, get_str, now_ms, Backend, Backlog, Db, StorageError};
use crate::domain::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    Post,
    Update,
    Ephemeral,
    /// A file (`chat::Upload` as the body) posted to the channel.
    Upload,
}

impl OutboxKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Post => "post",
            OutboxKind::Update => "update",
            OutboxKind::Ephemeral => "ephemeral",
            OutboxKind::Upload => "upload",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "post" => Some(OutboxKind::Post),
            "update" => Some(OutboxKind::Update),
            "ephemeral" => Some(OutboxKind::Ephemeral),
            "upload" => Some(OutboxKind::Upload),
            _ => None,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub platform: Platform,
    pub channel: String,
    pub kind: OutboxKind,
    /// For ephemeral messages: who sees it.
    pub user_id: Option<String>,
    /// For posts: remember the sent message under this key (a card).
    /// For updates: the card to update.
    pub card_key: Option<String>,
    /// Post in the thread under this card.
    pub thread_key: Option<String>,
    /// Post in this platform thread.
    pub thread_ref: Option<String>,
    /// The [`crate::chat::Message`] as JSON (an upload's: the
    /// `chat::Upload`).
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub item: OutboxItem,
    pub attempts: i64,
    /// When it was queued (Unix ms).
    pub created_at: i64,
    /// The claim it was taken with (its `claimed_until`): what
    /// [`OutboxStore::hold_for_send`] checks is still this dispatcher's.
    pub claim: i64,
}

/// An outbox row as claimed: the kind still its database spelling.
#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    #[sqlx(try_from = "String")]
    platform: Platform,
    channel: String,
    kind: String,
    user_id: Option<String>,
    card_key: Option<String>,
    thread_key: Option<String>,
    thread_ref: Option<String>,
    body: String,
    attempts: i64,
    created_at: i64,
    claimed_until: i64,
}

impl TryFrom<ClaimedRow> for OutboxRow {
    type Error = StorageError;

    fn try_from(r: ClaimedRow) -> Result<Self, StorageError> {
        let kind = OutboxKind::parse(&r.kind)
            .ok_or_else(|| StorageError::Corrupt(format!("outbox {}: kind {}", r.id, r.kind)))?;
        Ok(OutboxRow {
            id: r.id,
            attempts: r.attempts,
            created_at: r.created_at,
            claim: r.claimed_until,
            item: OutboxItem {
                platform: r.platform,
                channel: r.channel,
                kind,
                user_id: r.user_id,
                card_key: r.card_key,
                thread_key: r.thread_key,
                thread_ref: r.thread_ref,
                body: r.body,
            },
        })
    }
}

/// Adds `item` as a row due at `now`; returns its id. Storage that records
/// something together with the messages it queues (card copies, digests)
/// goes through [`queue_and_commit`], so both commit or neither does.
///
/// A post queued while an inbound event is handled is keyed by it
/// (`util::origin`): when a crash made the event be handled again, the post
/// its first handling queued is found (its id returned; the no-op update
/// is what makes `RETURNING` answer for it) instead of queued twice. Edits
/// are not keyed: an edit sent again changes nothing.
async fn insert<'e, E>(executor: E, item: &OutboxItem, now: i64) -> Result<i64, StorageError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let origin = match item.kind {
        OutboxKind::Update => None,
        _ => crate::util::origin::next_post_key(),
    };
    let sql = format!(
        "{INSERT_ROWS} {} {ON_ORIGIN} RETURNING id",
        batch::values(1, 11)
    );
    let row = bind_row(sqlx::query(&sql), item, now, origin.as_deref())
        .fetch_one(executor)
        .await?;
    get_i64(&row, "id")
}

/// The outbox's columns as a row is queued (11, in `bind_row`'s order).
const INSERT_ROWS: &str = "INSERT INTO outbox (platform, channel, kind, user_id, card_key, thread_key, thread_ref, body, next_attempt_at, created_at, origin) VALUES";
/// A row of an origin already queued is found, not queued again; the no-op
/// update is what makes `RETURNING` answer for it.
const ON_ORIGIN: &str =
    "ON CONFLICT (origin) WHERE origin IS NOT NULL DO UPDATE SET origin = excluded.origin";

fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    item: &'q OutboxItem,
    now: i64,
    origin: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(item.platform.as_str())
        .bind(item.channel.as_str())
        .bind(item.kind.as_str())
        .bind(item.user_id.as_deref())
        .bind(item.card_key.as_deref())
        .bind(item.thread_key.as_deref())
        .bind(item.thread_ref.as_deref())
        .bind(item.body.as_str())
        .bind(now)
        .bind(now)
        .bind(origin)
}

/// Queues `items`, each keyed by its origin (as `insert`), in
/// a few multi-row statements (`batch`).
pub(super) async fn insert_many(
    conn: &mut sqlx::AnyConnection,
    items: &[(OutboxItem, Option<String>)],
    now: i64,
) -> Result<(), StorageError> {
    // One row an origin per statement: PostgreSQL refuses to touch a row
    // twice in one, and the second of a key is queued already anyway.
    let mut seen = std::collections::HashSet::new();
    let mut items: Vec<&(OutboxItem, Option<String>)> = items
        .iter()
        .filter(|(_, origin)| origin.as_ref().is_none_or(|o| seen.insert(o.clone())))
        .collect();
    // In one order on every replica (see `batch::Grouped`).
    items.sort_by(|a, b| a.1.cmp(&b.1));
    for range in batch::chunks(items.len()) {
        let sql = format!(
            "{INSERT_ROWS} {} {ON_ORIGIN}",
            batch::values(range.len(), 11)
        );
        let mut q = sqlx::query(&sql);
        for (item, origin) in &items[range] {
            q = bind_row(q, item, now, origin.as_deref());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Queues `messages` (due at `at`) in `tx` and commits it: storage that
/// records something with the messages it goes with (a question and its
/// answer, a digest, an agenda) has both commit together or neither.
pub(super) async fn queue_and_commit(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    messages: &[OutboxItem],
    at: i64,
) -> Result<(), StorageError> {
    for m in messages {
        insert(&mut *tx, m, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub struct OutboxStore<'a> {
    pub(super) db: &'a Db,
}

/// How long a claimed row is held before another dispatcher may take it,
/// if it is not sent by then: a replica that dies holding claims stalls
/// their channels this long. It outlasts a send's hold ([`SEND_HOLD_MS`])
/// by a few seconds, so a row whose send starts within them is covered by
/// its claim alone (`covers_send`), with no hold written for it: one write
/// less for nearly every message, since a claim's rows start at once. A
/// row whose turn came later is held right before its send.
const CLAIM_MS: i64 = SEND_HOLD_MS + 5_000;

/// Whether a claim that runs until `claim` (Unix ms) still covers a send
/// starting at `now`, as a hold taken now would.
pub fn covers_send(claim: i64, now: i64) -> bool {
    claim - now >= SEND_HOLD_MS
}

/// How long a row is held from the moment its send starts: longer than a
/// send may take (the dispatcher gives up on a send after less), so no
/// other dispatcher takes it while it is on its way.
pub const SEND_HOLD_MS: i64 = 15_000;

impl OutboxStore<'_> {
    /// Queues a message. A card update replaces the body of the card's
    /// update still waiting to be sent (and not being sent right now), in
    /// one statement, so progress lines coalesce into one row instead of
    /// one row (and one API call) each; only when there is none is a row
    /// added. A card whose first post is still waiting takes the new body
    /// into that post (it goes out as it is now, with no update behind it:
    /// a paced channel would otherwise see the post and then every edit).
    /// A replaced row's lapsed claim is cleared, so a dispatcher that
    /// claimed the old body and has not sent it yet finds its claim gone
    /// ([`OutboxStore::hold_for_send`]) instead of sending a stale body.
    pub async fn enqueue(&self, item: &OutboxItem) -> Result<i64, StorageError> {
        let now = now_ms();
        if let (OutboxKind::Update, Some(key)) = (item.kind, &item.card_key) {
            let replaced = sqlx::query(
                "UPDATE outbox SET body = $1, channel = $2, claimed_until = 0 \
                 WHERE kind IN ('update', 'post') AND card_key = $3 AND platform = $4 AND status = 'pending' AND claimed_until <= $5 \
                 RETURNING id",
            )
            .bind(&item.body)
            .bind(&item.channel)
            .bind(key)
            .bind(item.platform.as_str())
            .bind(now)
            .fetch_all(&self.db.pool)
            .await?;
            if let Some(last) = replaced.last() {
                return get_i64(last, "id");
            }
        }
        insert(&self.db.pool, item, now).await
    }

    /// Claims up to `limit` due rows of the given platforms, oldest first.
    /// The platforms are filtered in SQL, so rows for a platform this
    /// process does not serve never fill the batch and starve the others.
    /// Rows are claimed and read in one conditional update, so two
    /// dispatchers never send the same row, and the body sent is the one
    /// claimed (a coalesced update cannot change it after the claim). A
    /// card's update waits while an older one of the same card is pending:
    /// with several dispatchers (replicas), a newer state could otherwise
    /// reach the card first and be overwritten by an older one in flight.
    ///
    /// Only the oldest pending row of each channel is claimed, so a
    /// channel's messages go out in the order they were queued, across
    /// replicas too (a reply never lands before the message it follows, and
    /// one being retried holds those behind it). It also means a paced
    /// channel costs one row per claim, not a batch claimed only to be
    /// deferred. Channels whose pace (`channel_pace`) has not come yet are
    /// skipped for the same reason.
    pub async fn claim_due(
        &self,
        platforms: &[String],
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StorageError> {
        if platforms.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // $1 comes first; the platforms follow, then the rest, keeping
        // placeholders in ascending order.
        let list = (0..platforms.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let n = platforms.len();
        // On PostgreSQL the chosen rows are locked as they are chosen, and
        // a row another transaction holds (another replica's claim, a
        // batch marking it sent) is passed over, not waited for: claims on
        // several replicas locked their rows in plan order, each waited for
        // the other, and PostgreSQL broke the deadlock after a second.
        let lock = match self.db.backend {
            Backend::Postgres => " FOR UPDATE OF o SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Each channel's oldest pending row is found from the partial index
        // of pending rows (`outbox_pending_heads`), once per channel: not by
        // asking, for every pending row, whether an older one waits (which
        // read the whole backlog on every claim: 8 ms at 8,000 pending).
        let sql = format!(
            "UPDATE outbox SET claimed_until = $1 WHERE id IN (\
               SELECT o.id FROM outbox AS o WHERE o.id IN (\
                 SELECT MIN(id) FROM outbox WHERE status = 'pending' AND platform IN ({list}) GROUP BY platform, channel) \
               AND o.next_attempt_at <= ${due_at} AND o.claimed_until <= ${free_at} \
               AND NOT EXISTS (SELECT 1 FROM channel_pace AS pace \
                 WHERE pace.platform = o.platform AND pace.channel = o.channel \
                 AND pace.next_at > ${pace_at}) \
               AND NOT (o.kind = 'update' AND EXISTS (SELECT 1 FROM outbox AS earlier \
                 WHERE earlier.kind = 'update' AND earlier.card_key = o.card_key \
                 AND earlier.status = 'pending' AND earlier.id < o.id)) \
               ORDER BY o.id LIMIT ${limit_at}{lock}) \
             AND status = 'pending' AND claimed_until <= ${recheck_at} \
             RETURNING id, platform, channel, kind, user_id, card_key, thread_key, thread_ref, body, attempts, created_at, claimed_until",
            due_at = n + 2,
            free_at = n + 3,
            pace_at = n + 4,
            limit_at = n + 5,
            recheck_at = n + 6,
        );
        let mut q = sqlx::query(&sql).bind(now + CLAIM_MS);
        for p in platforms {
            q = q.bind(p);
        }
        let rows = q
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(limit)
            .bind(now)
            .fetch_all(&self.db.pool)
            .await?;
        let mut out = rows
            .iter()
            .map(|r| OutboxRow::try_from(ClaimedRow::from_row(r)?))
            .collect::<Result<Vec<_>, StorageError>>()?;
        // RETURNING promises no order; sends go oldest first.
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Right before a row is sent: holds it for [`SEND_HOLD_MS`] from
    /// `now`, if it is still held under `claim` (the claim it was taken
    /// with). False when the claim ran out and another dispatcher took the
    /// row: that one sends it, this one must not. A batch's rows are sent
    /// one after the other, so a late row's claim may have run out by its
    /// turn; this check is what keeps it from going out twice.
    ///
    /// This and the marks after a send are group-committed (`batch`): the
    /// dispatcher's sends in flight side by side share commits.
    pub async fn hold_for_send(&self, id: i64, claim: i64, now: i64) -> Result<bool, StorageError> {
        self.db
            .batched(move |conn| {
                Box::pin(async move {
                    let held = sqlx::query(
                        "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND status = 'pending' AND claimed_until = $3",
                    )
                    .bind(now + SEND_HOLD_MS)
                    .bind(id)
                    .bind(claim)
                    .execute(conn)
                    .await?;
                    Ok(held.rows_affected() == 1)
                })
            })
            .await
    }

    pub async fn mark_sent(&self, id: i64) -> Result<(), StorageError> {
        let at = now_ms();
        self.db.grouped(Sent { id, at, card: None }).await
    }

    /// A card's first post went out: where it is (for updates and replies
    /// under it) and that the row is sent, in one transaction.
    pub async fn mark_card_sent(
        &self,
        id: i64,
        key: &str,
        platform: Platform,
        channel: &str,
        message_ref: &str,
    ) -> Result<(), StorageError> {
        let at = now_ms();
        let card = Some(PostedCard::new(key, platform, channel, message_ref));
        self.db.grouped(Sent { id, at, card }).await
    }

    /// Gives the row back for another try after `delay_ms`.
    pub async fn retry_later(
        &self,
        id: i64,
        error: &str,
        delay_ms: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, claimed_until = 0 WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms() + delay_ms)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Waits without counting an attempt (a card not yet posted, a 429).
    pub async fn defer(&self, id: i64, delay_ms: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET next_attempt_at = $1, claimed_until = 0 WHERE id = $2")
            .bind(now_ms() + delay_ms)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Waits, without counting an attempt, until `at` (Unix ms): when the
    /// channel's pace, or a 429's hold, lets the next send start.
    pub async fn defer_until(&self, id: i64, at: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET next_attempt_at = $1, claimed_until = 0 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1, attempts = attempts + 1, claimed_until = 0 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Whether a later update of the same card is waiting (this one is stale).
    pub async fn superseded(&self, id: i64, card_key: &str) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'update' AND card_key = $1 AND status = 'pending' AND id > $2",
        )
        .bind(card_key)
        .bind(id)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(get_i64(&row, "n")? > 0)
    }

    pub async fn mark_superseded(&self, id: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET status = 'superseded', claimed_until = 0 WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Rows ever queued to update `card_key` (sent, pending or superseded).
    pub async fn update_rows_for_card(&self, card_key: &str) -> Result<i64, StorageError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'update' AND card_key = $1")
                .bind(card_key)
                .fetch_one(&self.db.pool)
                .await?;
        get_i64(&row, "n")
    }

    /// The bodies of the pending rows updating `card_key`, oldest first.
    pub async fn pending_updates(&self, card_key: &str) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query(
            "SELECT body FROM outbox WHERE kind = 'update' AND card_key = $1 AND status = 'pending' ORDER BY id",
        )
        .bind(card_key)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(|r| get_str(r, "body")).collect()
    }

    /// Rows waiting to be sent, per platform, and the oldest one's age
    /// (`/metrics` reads it at each scrape: one indexed aggregate).
    pub async fn backlog(&self) -> Result<Vec<Backlog<Platform>>, StorageError> {
        let rows = sqlx::query(
            "SELECT platform, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox \
             WHERE status = 'pending' GROUP BY platform",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let platform = get_str(r, "platform")?;
                Ok(Backlog {
                    of: Platform::parse(&platform).ok_or_else(|| {
                        StorageError::Corrupt(format!("outbox platform {platform}"))
                    })?,
                    depth: get_i64(r, "n")?,
                    oldest_at: get_opt_i64(r, "oldest")?,
                })
            })
            .collect()
    }

    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.db.pool)
            .await?;
        get_i64(&row, "n")
    }

    pub async fn save_card(
        &self,
        key: &str,
        platform: Platform,
        channel: &str,
        message_ref: &str,
    ) -> Result<(), StorageError> {
        let card = PostedCard::new(key, platform, channel, message_ref);
        let mut conn = self.db.pool.acquire().await?;
        save_cards(&mut conn, &[&card]).await
    }

    pub async fn card_ref(&self, key: &str) -> Result<Option<String>, StorageError> {
        let row = sqlx::query("SELECT message_ref FROM cards WHERE card_key = $1")
            .bind(key)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|r| get_str(&r, "message_ref")).transpose()
    }
}

/// Where a card's first post went.
struct PostedCard {
    key: String,
    platform: Platform,
    channel: String,
    message_ref: String,
}

impl PostedCard {
    fn new(key: &str, platform: Platform, channel: &str, message_ref: &str) -> Self {
        PostedCard {
            key: key.to_owned(),
            platform,
            channel: channel.to_owned(),
            message_ref: message_ref.to_owned(),
        }
    }
}

/// A row that went out (`mark_sent`, `mark_card_sent`), grouped with a
/// batch's others: one upsert of the cards posted, one update of the rows.
struct Sent {
    id: i64,
    at: i64,
    card: Option<PostedCard>,
}

impl Grouped for Sent {
    type Out = ();
    type Key = i64;
    const ORDER: u8 = 30;

    /// Rows by id; the cards of them are upserted in key order.
    fn key(&self) -> i64 {
        self.id
    }

    fn run_all(
        conn: &mut sqlx::AnyConnection,
        ops: Vec<Arc<Self>>,
    ) -> BoxFuture<'_, Result<Vec<()>, StorageError>> {
        Box::pin(async move {
            // One row a key per statement (PostgreSQL refuses to update a
            // row twice in one), in key order; the last post of a key is
            // where it is.
            let cards: BTreeMap<&str, &PostedCard> = ops
                .iter()
                .filter_map(|o| o.card.as_ref())
                .map(|c| (c.key.as_str(), c))
                .collect();
            save_cards(&mut *conn, &cards.into_values().collect::<Vec<_>>()).await?;
            let at = ops.iter().map(|o| o.at).max().unwrap_or_default();
            let ids: Vec<i64> = ops.iter().map(|o| o.id).collect();
            batch::update_ids(
                conn,
                "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_until = 0",
                at,
                &ids,
            )
            .await?;
            Ok(vec![(); ops.len()])
        })
    }
}

/// Records where `cards` were posted (distinct keys), a chunk at a time.
async fn save_cards(
    conn: &mut sqlx::AnyConnection,
    cards: &[&PostedCard],
) -> Result<(), StorageError> {
    for range in batch::chunks(cards.len()) {
        let sql = format!(
            "INSERT INTO cards (card_key, platform, channel, message_ref) VALUES {} \
             ON CONFLICT (card_key) DO UPDATE SET message_ref = excluded.message_ref",
            batch::values(range.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for card in &cards[range] {
            q = q
                .bind(card.key.as_str())
                .bind(card.platform.as_str())
                .bind(card.channel.as_str())
                .bind(card.message_ref.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    #[test]
    fn a_fresh_claim_covers_its_send_and_a_late_one_does_not() {
        let claimed_at = 1_000_000;
        let claim = claimed_at + CLAIM_MS;
        assert!(covers_send(claim, claimed_at));
        assert!(covers_send(claim, claimed_at + CLAIM_MS - SEND_HOLD_MS));
        // Later, the claim would run out before a send could time out.
        assert!(!covers_send(
            claim,
            claimed_at + CLAIM_MS - SEND_HOLD_MS + 1
        ));
        assert!(!covers_send(claim, claim));
    }

    fn update(card: &str, channel: &str, body: &str) -> OutboxItem {
        OutboxItem {
            platform: Platform::Slack,
            channel: channel.into(),
            kind: OutboxKind::Update,
            user_id: None,
            card_key: Some(card.into()),
            thread_key: None,
            thread_ref: None,
            body: body.into(),
        }
    }

    /// Two dispatchers (replicas): the newer update of a card is not sent
    /// while the older one is in flight, so the card ends on the newest.
    #[tokio::test]
    async fn a_cards_updates_go_out_one_at_a_time_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/o.db", dir.path().display()))
            .await
            .unwrap();
        let outbox = db.outbox();
        let platforms = vec!["slack".to_owned()];
        let older = outbox
            .enqueue(&update("r1", "C1", "running"))
            .await
            .unwrap();
        let first = outbox.claim_due(&platforms, 50).await.unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), [older]);
        // Claimed, so not coalesced: the final state is a row of its own.
        // (Queued for another channel, so only the card's rule holds it
        // back, not the channel's order.)
        let newer = outbox.enqueue(&update("r1", "C2", "done")).await.unwrap();
        let other = outbox.enqueue(&update("r2", "C3", "x")).await.unwrap();
        assert_ne!(older, newer);
        let second = outbox.claim_due(&platforms, 50).await.unwrap();
        assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), [other]);
        outbox.mark_sent(older).await.unwrap();
        let third = outbox.claim_due(&platforms, 50).await.unwrap();
        assert_eq!(third.iter().map(|r| r.id).collect::<Vec<_>>(), [newer]);
    }
}
