//! Channel pacing and 429s hold across replicas: the pace lives in the
//! database, so two dispatchers on one database together keep every
//! channel to it, deliver everything once, and in order.
//! On SQLite, and on PostgreSQL when PAVER_TEST_DATABASE_URL is set.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;

use paver::chat::dispatcher::{Dispatcher, Pace};
use paver::chat::{ChatSink, Message, SendError};
use paver::domain::Platform;
use paver::storage::outbox::{OutboxItem, OutboxKind};
use paver::storage::{now_ms, Db, Slot};

use support::{test_db, TestDb};

/// Slack here is the paced platform; the interval is small so tests are quick.
const INTERVAL: Duration = Duration::from_millis(50);

/// Clock reads (wall-clock milliseconds for the pace, `Instant` for the
/// record) and the moment between the dispatcher reading the clock and
/// calling the sink: a gap may fall this much short of the interval. The
/// pace counts from each send's start, so load only makes gaps longer.
const SLACK_MS: u128 = 8;

/// Another replica: its own connection pool on the same database.
async fn replica(tdb: &TestDb) -> Db {
    Db::connect(&tdb.url).await.expect("a second pool")
}

fn post(channel: &str, text: &str) -> OutboxItem {
    OutboxItem {
        platform: Platform::Slack,
        channel: channel.into(),
        kind: OutboxKind::Post,
        user_id: None,
        card_key: None,
        thread_key: None,
        thread_ref: None,
        body: serde_json::to_string(&Message {
            text: text.into(),
            ..Message::default()
        })
        .unwrap(),
    }
}

fn ids(rows: &[paver::storage::OutboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

// ----- storage ---------------------------------------------------------------

#[tokio::test]
async fn a_slot_is_granted_once_per_interval_per_channel() {
    let tdb = test_db().await;
    let pace = tdb.db.pace();
    let (s, c) = (Platform::Slack, "C1");
    assert_eq!(pace.reserve(s, c, 1_000, 100).await.unwrap(), Slot::Granted);
    assert_eq!(
        pace.reserve(s, c, 1_050, 100).await.unwrap(),
        Slot::Wait { until: 1_100 }
    );
    // A refusal does not move the slot.
    assert_eq!(pace.next_at(s, c).await.unwrap(), Some(1_100));
    assert_eq!(pace.reserve(s, c, 1_100, 100).await.unwrap(), Slot::Granted);
    assert_eq!(pace.next_at(s, c).await.unwrap(), Some(1_200));
    // Other channels, and the same channel name on another platform, have
    // paces of their own.
    assert_eq!(
        pace.reserve(s, "C2", 1_100, 100).await.unwrap(),
        Slot::Granted
    );
    assert_eq!(
        pace.reserve(Platform::Discord, c, 1_100, 100)
            .await
            .unwrap(),
        Slot::Granted
    );
}

/// Many senders (on two replicas) reserve one channel at the same moment:
/// exactly one gets each interval's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_grant_exactly_one_slot() {
    let tdb = test_db().await;
    let dbs = [tdb.db.clone(), replica(&tdb).await];
    for round in 0..4i64 {
        let now = 10_000 + round * 1_000;
        let tries = (0..24).map(|i| {
            let db = dbs[i % 2].clone();
            tokio::spawn(async move {
                db.pace()
                    .reserve(Platform::Slack, "C1", now, 1_000)
                    .await
                    .unwrap()
            })
        });
        let slots: Vec<Slot> = join_all(tries)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let granted = slots.iter().filter(|s| **s == Slot::Granted).count();
        assert_eq!(granted, 1, "round {round}: {slots:?}");
        let refused = Slot::Wait { until: now + 1_000 };
        assert!(
            slots.iter().all(|s| *s == Slot::Granted || *s == refused),
            "round {round}: {slots:?}"
        );
    }
}

/// A 429 seen by one replica holds the channel for the others, and a
/// shorter hold never pulls a longer one in.
#[tokio::test]
async fn a_hold_pushes_out_every_replica() {
    let tdb = test_db().await;
    let (a, b) = (tdb.db.clone(), replica(&tdb).await);
    let now = now_ms();
    assert_eq!(
        b.pace()
            .reserve(Platform::Slack, "C1", now, 50)
            .await
            .unwrap(),
        Slot::Granted
    );
    a.pace()
        .hold(Platform::Slack, "C1", now + 5_000)
        .await
        .unwrap();
    a.pace()
        .hold(Platform::Slack, "C1", now + 1_000)
        .await
        .unwrap();
    assert_eq!(
        b.pace()
            .reserve(Platform::Slack, "C1", now + 100, 50)
            .await
            .unwrap(),
        Slot::Wait { until: now + 5_000 }
    );
    // A hold on a channel never paced before.
    a.pace()
        .hold(Platform::Slack, "C9", now + 5_000)
        .await
        .unwrap();
    assert_eq!(
        b.pace()
            .reserve(Platform::Slack, "C9", now, 50)
            .await
            .unwrap(),
        Slot::Wait { until: now + 5_000 }
    );
    // Claims on the other replica skip the held channels, not the others.
    a.outbox().enqueue(&post("C1", "held")).await.unwrap();
    let free = a.outbox().enqueue(&post("C2", "free")).await.unwrap();
    let claimed = b.outbox().claim_due(&["slack".into()], 50).await.unwrap();
    assert_eq!(ids(&claimed), [free]);
}

/// Only the oldest pending row of a channel is claimed, so nothing
/// overtakes a message that is in flight or waiting.
#[tokio::test]
async fn a_channels_messages_are_claimed_one_at_a_time_in_order() {
    let tdb = test_db().await;
    let outbox = tdb.db.outbox();
    let slack = ["slack".to_owned()];
    let first = outbox.enqueue(&post("C1", "1")).await.unwrap();
    let second = outbox.enqueue(&post("C1", "2")).await.unwrap();
    let third = outbox.enqueue(&post("C1", "3")).await.unwrap();
    let other = outbox.enqueue(&post("C2", "x")).await.unwrap();
    assert_eq!(
        ids(&outbox.claim_due(&slack, 50).await.unwrap()),
        [first, other]
    );
    // In flight: the rest of C1 waits.
    assert!(outbox.claim_due(&slack, 50).await.unwrap().is_empty());
    outbox.mark_sent(first).await.unwrap();
    assert_eq!(ids(&outbox.claim_due(&slack, 50).await.unwrap()), [second]);
    // Waiting (a 429, a retry): still nothing overtakes it.
    outbox.defer_until(second, now_ms() + 60_000).await.unwrap();
    assert!(outbox.claim_due(&slack, 50).await.unwrap().is_empty());
    outbox.defer_until(second, 0).await.unwrap();
    assert_eq!(ids(&outbox.claim_due(&slack, 50).await.unwrap()), [second]);
    outbox.mark_sent(second).await.unwrap();
    assert_eq!(ids(&outbox.claim_due(&slack, 50).await.unwrap()), [third]);
}

/// Sets a row's claim to `until` (in the past: it ran out).
async fn lapse_row(db: &Db, id: i64, until: i64) {
    sqlx::query("UPDATE outbox SET claimed_until = $1 WHERE id = $2")
        .bind(until)
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
}

/// A claim is only a lease: a row whose claim ran out before its turn in
/// the batch came may be claimed by another replica, and then only that
/// one sends it. The check is made right before the send, and holds the
/// row for the send.
#[tokio::test]
async fn a_row_whose_claim_ran_out_and_was_taken_over_is_sent_by_the_new_holder_only() {
    let tdb = test_db().await;
    let (a, b) = (tdb.db.clone(), replica(&tdb).await);
    let slack = ["slack".to_owned()];
    let id = a.outbox().enqueue(&post("C1", "once")).await.unwrap();
    let mine = a.outbox().claim_due(&slack, 50).await.unwrap().remove(0);
    assert_eq!(mine.id, id);
    // Nobody else can take it while the claim lasts.
    assert!(b.outbox().claim_due(&slack, 50).await.unwrap().is_empty());
    // The claim runs out (a slow batch) and the other replica takes it.
    lapse_row(&a, id, now_ms() - 1).await;
    let theirs = b.outbox().claim_due(&slack, 50).await.unwrap().remove(0);
    assert_eq!(theirs.id, id);
    assert!(!a
        .outbox()
        .hold_for_send(id, mine.claim, now_ms())
        .await
        .unwrap());
    assert!(b
        .outbox()
        .hold_for_send(id, theirs.claim, now_ms())
        .await
        .unwrap());
    // Held for the send: not claimable until it is over.
    assert!(a.outbox().claim_due(&slack, 50).await.unwrap().is_empty());

    // A card's post whose claim ran out takes a newer body: the stale
    // claim is void, so the old body is not sent.
    let card = OutboxItem {
        card_key: Some("card-1".into()),
        ..post("C2", "v1")
    };
    let posted = a.outbox().enqueue(&card).await.unwrap();
    let claimed = a.outbox().claim_due(&slack, 50).await.unwrap();
    assert!(claimed.iter().any(|r| r.id == posted));
    // Its claim, as it stands once it has run out.
    let past = now_ms() - 1;
    lapse_row(&a, posted, past).await;
    let newer = OutboxItem {
        kind: OutboxKind::Update,
        card_key: Some("card-1".into()),
        ..post("C2", "v2")
    };
    assert_eq!(b.outbox().enqueue(&newer).await.unwrap(), posted);
    assert!(!a
        .outbox()
        .hold_for_send(posted, past, now_ms())
        .await
        .unwrap());
    let fresh = b.outbox().claim_due(&slack, 50).await.unwrap();
    let fresh = fresh.iter().find(|r| r.id == posted).unwrap();
    assert!(fresh.item.body.contains("v2"));
}

// ----- two dispatchers -------------------------------------------------------

/// One send as the fake platform saw it.
#[derive(Debug, Clone)]
struct Seen {
    replica: &'static str,
    channel: String,
    text: String,
    at: Instant,
    /// The same moment in wall-clock Unix ms (the pace's clock).
    wall: i64,
    /// When its slot was granted (Unix ms); `None`: sent unreserved.
    granted: Option<i64>,
    /// Answered with a 429 (not delivered).
    limited: bool,
}

/// A chat platform shared by the replicas: records every call with its
/// time; can answer one call to a channel with a 429.
#[derive(Clone, Default)]
struct Platform429 {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// (channel, wait): the next call to that channel gets a 429.
    limit_next: Arc<Mutex<Option<(String, Duration)>>>,
}

/// One replica's sink onto the shared platform.
struct ReplicaSink {
    name: &'static str,
    platform: Platform429,
    /// The replica's database, to read the slot each send was granted.
    db: Db,
    interval_ms: i64,
}

#[async_trait]
impl ChatSink for ReplicaSink {
    async fn post(
        &self,
        channel: &str,
        _thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError> {
        let (at, wall) = (Instant::now(), now_ms());
        // The send's slot was granted at next_at - interval, and nobody can
        // reserve the channel again before this row is marked sent (only a
        // channel's oldest pending row is claimed).
        let next_at = self
            .db
            .pace()
            .next_at(Platform::Slack, channel)
            .await
            .unwrap();
        let limited = {
            let mut next = self.platform.limit_next.lock().unwrap();
            match next.take() {
                Some((c, wait)) if c == channel => Some(wait),
                other => {
                    *next = other;
                    None
                }
            }
        };
        let mut seen = self.platform.seen.lock().unwrap();
        seen.push(Seen {
            replica: self.name,
            channel: channel.into(),
            text: message.text.clone(),
            at,
            wall,
            granted: next_at.map(|n| n - self.interval_ms),
            limited: limited.is_some(),
        });
        match limited {
            Some(wait) => Err(SendError::RateLimited(wait)),
            None => Ok(format!("ts-{}", seen.len())),
        }
    }
    async fn update(&self, _: &str, _: &str, _: &Message) -> Result<(), SendError> {
        unreachable!("these tests only post")
    }
    async fn ephemeral(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &Message,
    ) -> Result<(), SendError> {
        unreachable!("these tests only post")
    }
}

/// Starts a dispatcher on `db` pacing Slack channels at `interval`.
fn start(db: Db, name: &'static str, platform: &Platform429, interval: Duration) -> Dispatcher {
    let sink: Arc<dyn ChatSink> = Arc::new(ReplicaSink {
        name,
        platform: platform.clone(),
        db: db.clone(),
        interval_ms: interval.as_millis() as i64,
    });
    let dispatcher = Dispatcher::new(
        db,
        HashMap::from([("slack".to_owned(), sink)]),
        Pace::none().every(Platform::Slack, interval),
    );
    dispatcher.spawn();
    dispatcher
}

async fn drained(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.outbox().pending_count().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the outbox never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sends to each channel, in the order the platform saw them.
fn by_channel(seen: &[Seen]) -> BTreeMap<String, Vec<Seen>> {
    let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for s in seen {
        out.entry(s.channel.clone()).or_default().push(s.clone());
    }
    for sends in out.values_mut() {
        sends.sort_by_key(|s| s.at);
    }
    out
}

/// No two calls to one channel started less than `interval` apart, and
/// no two of their slots were granted less than `interval` apart.
fn assert_paced(seen: &[Seen], interval: Duration) {
    let interval_ms = interval.as_millis() as i64;
    for (channel, sends) in by_channel(seen) {
        for pair in sends.windows(2) {
            let (one, two) = (&pair[0], &pair[1]);
            let gap = two.at - one.at;
            assert!(
                gap.as_millis() + SLACK_MS >= interval.as_millis(),
                "{channel}: {} ({}) then {} ({}) only {gap:?} apart",
                one.text,
                one.replica,
                two.text,
                two.replica
            );
            let (Some(first), Some(second)) = (one.granted, two.granted) else {
                panic!(
                    "{channel}: {} or {} sent without a slot",
                    one.text, two.text
                );
            };
            assert!(
                second - first >= interval_ms,
                "{channel}: slots for {} and {} granted {} ms apart",
                one.text,
                two.text,
                second - first
            );
        }
    }
}

/// Every message delivered exactly once, and each channel's in the order
/// queued (`m<n>` with n ascending).
fn assert_all_once_in_order(seen: &[Seen], expected: usize) {
    let delivered: Vec<&Seen> = seen.iter().filter(|s| !s.limited).collect();
    let unique: BTreeSet<&str> = delivered.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(delivered.len(), expected, "deliveries");
    assert_eq!(unique.len(), expected, "each message once");
    for (channel, sends) in by_channel(seen) {
        let order: Vec<usize> = sends
            .iter()
            .filter(|s| !s.limited)
            .map(|s| s.text[1..].parse().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{channel} out of order: {order:?}"
        );
    }
}

/// The burst, scaled: 200 messages for 10 channels, two replicas
/// on one database. Everything arrives once and in order, both replicas
/// take part, and no channel gets two sends closer than its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_together_keep_every_channel_to_its_pace() {
    let tdb = test_db().await;
    let platform = Platform429::default();
    for i in 0..200 {
        tdb.db
            .outbox()
            .enqueue(&post(&format!("C{}", i % 10), &format!("m{i}")))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let a = start(tdb.db.clone(), "a", &platform, INTERVAL);
    let b = start(replica(&tdb).await, "b", &platform, INTERVAL);
    a.notify();
    b.notify();
    drained(&tdb.db).await;
    let took = started.elapsed();
    let seen = platform.seen.lock().unwrap().clone();
    assert_all_once_in_order(&seen, 200);
    assert_paced(&seen, INTERVAL);
    let replicas: BTreeSet<&str> = seen.iter().map(|s| s.replica).collect();
    assert_eq!(replicas.len(), 2, "both replicas sent: {replicas:?}");
    // 20 a channel at 50 ms: at least 19 intervals, however fast the rest.
    assert!(took >= INTERVAL * 19, "{took:?}");
    eprintln!("200 messages, 10 channels, 2 replicas, {INTERVAL:?} pace: drained in {took:?}");
}

/// One replica is told 429 (wait 1.5 s) for a channel: no replica sends
/// to that channel until the wait is over, the others go on at their pace,
/// and the limited message is delivered first when it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_one_replica_holds_the_channel_for_both() {
    let wait = Duration::from_millis(1_500);
    let interval = Duration::from_millis(100);
    let tdb = test_db().await;
    let platform = Platform429::default();
    *platform.limit_next.lock().unwrap() = Some(("C0".into(), wait));
    for i in 0..20 {
        tdb.db
            .outbox()
            .enqueue(&post(&format!("C{}", i % 2), &format!("m{i}")))
            .await
            .unwrap();
    }
    let other = replica(&tdb).await;
    let a = start(tdb.db.clone(), "a", &platform, interval);
    let b = start(other.clone(), "b", &platform, interval);
    a.notify();
    b.notify();
    // The hold is in the database, for every replica to see, while it lasts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let limited_wall = loop {
        let seen = platform.seen.lock().unwrap().clone();
        if let Some(s) = seen.iter().find(|s| s.limited) {
            break s.wall;
        }
        assert!(Instant::now() < deadline, "no 429 was answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let hold_until = limited_wall + wait.as_millis() as i64;
    let mut held = None;
    for _ in 0..100 {
        held = other.pace().next_at(Platform::Slack, "C0").await.unwrap();
        if held.is_some_and(|h| h + SLACK_MS as i64 >= hold_until) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        held.is_some_and(|h| h + SLACK_MS as i64 >= hold_until),
        "C0's pace {held:?} does not hold it until {hold_until}"
    );
    drained(&tdb.db).await;
    let seen = platform.seen.lock().unwrap().clone();
    assert_all_once_in_order(&seen, 20);
    assert_paced(&seen, interval);
    let limited = seen.iter().find(|s| s.limited).expect("a 429 was answered");
    let after: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.channel == "C0" && s.at > limited.at)
        .collect();
    let first_after = after.iter().map(|s| s.at).min().unwrap();
    assert!(
        (first_after - limited.at).as_millis() + SLACK_MS >= wait.as_millis(),
        "C0 was sent to {:?} after its 429",
        first_after - limited.at
    );
    // The limited message went out first when the hold ended.
    let next = after.iter().min_by_key(|s| s.at).unwrap();
    assert_eq!(next.text, limited.text);
    // The other channel did not wait for C0.
    let c1_during = seen
        .iter()
        .filter(|s| s.channel == "C1" && s.at > limited.at && s.at < first_after)
        .count();
    assert!(c1_during > 0, "C1 went on during C0's hold");
}
