//! Retention, on SQLite (and on PostgreSQL when PAVER_TEST_DATABASE_URL is
//! set): rows of every kind seeded with old and new timestamps, and exactly
//! the old delivery and dedupe rows pruned (pending rows, the latest job of
//! each request and the audit log never); a redelivery inside the window
//! still deduplicated; Retry generations and idempotency keys still fresh
//! after pruning; two schedulers on one database, one pruning.

mod support;

use paver::domain::Platform;
use paver::engine::retention::{Retention, RetentionConfig};
use paver::storage::jobs::{idempotency_key, JobStatus};
use paver::storage::retention::{Cutoffs, Pruned, BATCH};
use paver::storage::{now_ms, Db};
use sqlx::Row;

const DAY: i64 = 24 * 3600 * 1000;

async fn exec(db: &Db, sql: &str, binds: &[Bind<'_>]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Bind::S(s) => q.bind(s.to_string()),
            Bind::I(i) => q.bind(*i),
            Bind::N => q.bind(None::<i64>),
        };
    }
    q.execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

enum Bind<'a> {
    S(&'a str),
    I(i64),
    N,
}
use Bind::{I, N, S};

async fn strings(db: &Db, sql: &str) -> Vec<String> {
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect()
}

async fn count(db: &Db, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap()
}

async fn request(db: &Db, id: &str, at: i64) {
    exec(
        db,
        "INSERT INTO requests (id, nonce, state, action_kind, action_json, action_hash, service, environment, \
         requester, requester_chat_id, platform, channel, created_at, updated_at) \
         VALUES ($1, 'n', 'failed', 'restart', $2, 'h', 'cart-service', 'staging', 'ada', 'U1', 'slack', 'C1', $3, $4)",
        &[
            S(id),
            S(r#"{"action":"restart","service":"cart-service","environment":"staging"}"#),
            I(at),
            I(at),
        ],
    )
    .await;
    exec(
        db,
        "INSERT INTO request_events (request_id, at, actor, chat, transition, from_state, to_state, detail) \
         VALUES ($1, $2, 'ada', 'slack:U1', 'fail', 'running', 'failed', 'boom')",
        &[S(id), I(at)],
    )
    .await;
    exec(
        db,
        "INSERT INTO approvals (request_id, approver, decision, action_hash, at) VALUES ($1, 'bob', 'approve', 'h', $2)",
        &[S(id), I(at)],
    )
    .await;
}

async fn job(db: &Db, request: &str, generation: i64, state: &str, at: i64) {
    exec(
        db,
        "INSERT INTO jobs (id, request_id, generation, idempotency_key, state, attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
        &[
            S(&format!("j-{request}-{generation}")),
            S(request),
            I(generation),
            S(&idempotency_key(request, "h", generation)),
            S(state),
            I(at),
            I(at),
            I(at),
        ],
    )
    .await;
}

async fn inbox(db: &Db, event: &str, status: &str, received: i64, done: Option<i64>) {
    exec(
        db,
        "INSERT INTO inbox (platform, event_id, payload, status, attempts, lease_until, received_at, done_at) \
         VALUES ('slack', $1, '{}', $2, 1, $3, $4, $5)",
        &[
            S(event),
            S(status),
            I(if status == "pending" { now_ms() + 60_000 } else { 0 }),
            I(received),
            done.map(I).unwrap_or(N),
        ],
    )
    .await;
}

async fn outbox(db: &Db, channel: &str, status: &str, created: i64, sent: Option<i64>) {
    exec(
        db,
        "INSERT INTO outbox (platform, channel, kind, body, status, next_attempt_at, created_at, sent_at) \
         VALUES ('slack', $1, 'post', '{}', $2, $3, $4, $5)",
        &[
            S(channel),
            S(status),
            I(created),
            I(created),
            sent.map(I).unwrap_or(N),
        ],
    )
    .await;
}

async fn processed(db: &Db, event: &str, at: i64) {
    exec(
        db,
        "INSERT INTO processed_events (platform, event_id, at) VALUES ('slack', $1, $2)",
        &[S(event), I(at)],
    )
    .await;
}

async fn replay(db: &Db, signature: &str, at: i64) {
    exec(
        db,
        "INSERT INTO callback_replay (signature, seen_at) VALUES ($1, $2)",
        &[S(signature), I(at)],
    )
    .await;
}

/// The tables retention must never touch, seeded old.
async fn never_pruned(db: &Db, old: i64) {
    exec(
        db,
        "INSERT INTO deploy_events (source, delivery, service, environment, status, at) \
         VALUES ('github', 'd1', 'cart-service', 'staging', 'succeeded', $1)",
        &[I(old)],
    )
    .await;
    exec(
        db,
        "INSERT INTO questions (id, nonce, platform, channel, asker_id, asker_name, question, known, sources_json, answer_json, created_at) \
         VALUES ('q-1', 'n', 'slack', 'C1', 'U1', 'ada', 'how?', 0, '[]', '{}', $1)",
        &[I(old)],
    )
    .await;
    exec(
        db,
        "INSERT INTO score_history (service, level, failing, at) VALUES ('cart-service', 'bronze', '[]', $1)",
        &[I(old)],
    )
    .await;
    // The platform report reads votes and records its digests.
    exec(
        db,
        "INSERT INTO question_votes (question_id, voter, helpful, at) VALUES ('q-1', 'U1', 1, $1)",
        &[I(old)],
    )
    .await;
    exec(
        db,
        "INSERT INTO report_digests (period, platform, channel, at) VALUES ($1, 'slack', 'C1', $2)",
        &[I(old), I(old)],
    )
    .await;
}

const KEPT_TABLES: [&str; 8] = [
    "requests",
    "request_events",
    "approvals",
    "deploy_events",
    "questions",
    "question_votes",
    "score_history",
    "report_digests",
];

#[tokio::test]
async fn exactly_the_old_delivery_and_dedupe_rows_go() {
    let t = support::test_db().await;
    let db = &t.db;
    let now = now_ms();
    let config = RetentionConfig::default();
    let (ded, out, jobs) = (
        i64::from(config.dedupe_days) * DAY,
        i64::from(config.outbox_days) * DAY,
        i64::from(config.jobs_days) * DAY,
    );

    // inbox: handled and old goes; pending never; a late finish counts.
    inbox(
        db,
        "in-old-done",
        "done",
        now - ded - DAY,
        Some(now - ded - DAY),
    )
    .await;
    inbox(db, "in-old-failed", "failed", now - ded - DAY, None).await;
    inbox(db, "in-old-pending", "pending", now - ded - 5 * DAY, None).await;
    inbox(
        db,
        "in-new-done",
        "done",
        now - ded + DAY,
        Some(now - ded + DAY),
    )
    .await;
    inbox(db, "in-late-done", "done", now - ded - DAY, Some(now - DAY)).await;
    // processed_events: more old rows than one batch of the run below.
    for i in 0..5 {
        processed(db, &format!("pe-old-{i}"), now - ded - DAY - i).await;
    }
    processed(db, "pe-new", now - ded + DAY).await;
    // outbox: finished and old goes; pending never, however old.
    outbox(
        db,
        "o-old-sent",
        "sent",
        now - out - DAY,
        Some(now - out - DAY),
    )
    .await;
    outbox(db, "o-old-failed", "failed", now - out - DAY, None).await;
    outbox(db, "o-old-superseded", "superseded", now - out - DAY, None).await;
    outbox(db, "o-old-pending", "pending", now - out - 9 * DAY, None).await;
    outbox(
        db,
        "o-new-sent",
        "sent",
        now - out + DAY,
        Some(now - out + DAY),
    )
    .await;
    outbox(db, "o-late-sent", "sent", now - out - DAY, Some(now - DAY)).await;
    // jobs: superseded and finished and old goes; the latest of each
    // request stays, however old; live ones stay.
    let old_job = now - jobs - DAY;
    for r in ["r-a", "r-b", "r-c", "r-d"] {
        request(db, r, now - 400 * DAY).await;
    }
    job(db, "r-a", 1, "failed", old_job).await;
    job(db, "r-a", 2, "failed", old_job).await;
    job(db, "r-a", 3, "succeeded", old_job).await;
    job(db, "r-b", 1, "failed", old_job).await;
    job(db, "r-b", 2, "running", old_job).await;
    job(db, "r-c", 1, "failed", old_job).await;
    job(db, "r-d", 1, "failed", now - jobs + DAY).await;
    job(db, "r-d", 2, "succeeded", now - jobs + DAY).await;
    // callback_replay: past the tolerance goes.
    let keep = paver::storage::replay::keep_ms(300);
    replay(db, "sig-old", now - keep - 1000).await;
    replay(db, "sig-new", now - keep + 60_000).await;
    never_pruned(db, now - 400 * DAY).await;
    let mut kept_before = Vec::new();
    for table in KEPT_TABLES {
        kept_before.push(count(db, table).await);
    }

    // Batches of two: each table needs several statements.
    let pruned = db
        .retention()
        .prune(&config.cutoffs(now, keep), 2)
        .await
        .unwrap();
    assert_eq!(
        pruned,
        Pruned {
            inbox: 2,
            processed_events: 5,
            outbox: 3,
            jobs: 3,
            callback_replay: 1,
        }
    );
    assert_eq!(
        strings(db, "SELECT event_id FROM inbox ORDER BY event_id").await,
        ["in-late-done", "in-new-done", "in-old-pending"]
    );
    assert_eq!(
        strings(
            db,
            "SELECT event_id FROM processed_events ORDER BY event_id"
        )
        .await,
        ["pe-new"]
    );
    assert_eq!(
        strings(db, "SELECT channel FROM outbox ORDER BY channel").await,
        ["o-late-sent", "o-new-sent", "o-old-pending"]
    );
    assert_eq!(
        strings(db, "SELECT id FROM jobs ORDER BY id").await,
        ["j-r-a-3", "j-r-b-2", "j-r-c-1", "j-r-d-1", "j-r-d-2"]
    );
    assert_eq!(
        strings(db, "SELECT signature FROM callback_replay").await,
        ["sig-new"]
    );
    for (table, before) in KEPT_TABLES.iter().zip(kept_before) {
        assert_eq!(count(db, table).await, before, "{table} is never pruned");
    }

    // A Retry after pruning gets the next generation and a key no driver
    // has seen: the kept latest job still numbers it.
    let retry = db.jobs().enqueue("r-a", "h").await.unwrap();
    assert_eq!(retry.generation, 4);
    assert_eq!(retry.idempotency_key, idempotency_key("r-a", "h", 4));
    assert_eq!(retry.status, JobStatus::Queued);
    let retry = db.jobs().enqueue("r-c", "h").await.unwrap();
    assert_eq!(retry.generation, 2);

    // Again: only what the Retries superseded is old enough now; the
    // Retries' own jobs (live, the latest) stay.
    assert_eq!(
        db.retention()
            .prune(&config.cutoffs(now, keep), BATCH)
            .await
            .unwrap(),
        Pruned {
            jobs: 2,
            ..Pruned::default()
        }
    );
    assert_eq!(
        strings(
            db,
            "SELECT idempotency_key FROM jobs WHERE request_id = 'r-a'"
        )
        .await,
        [idempotency_key("r-a", "h", 4)]
    );
    assert_eq!(
        db.retention()
            .prune(&config.cutoffs(now, keep), BATCH)
            .await
            .unwrap()
            .total(),
        0
    );
    // 0 days keeps a table forever (only replay signatures have no say).
    inbox(db, "in-ancient", "done", 1, Some(1)).await;
    processed(db, "pe-ancient", 1).await;
    outbox(db, "o-ancient", "sent", 1, Some(1)).await;
    let forever = RetentionConfig {
        dedupe_days: 0,
        outbox_days: 0,
        jobs_days: 0,
        ..RetentionConfig::default()
    };
    assert_eq!(
        forever.cutoffs(now, keep),
        Cutoffs {
            callback_replay: Some(now - keep),
            ..Cutoffs::default()
        }
    );
    assert_eq!(
        db.retention()
            .prune(&forever.cutoffs(now, keep), BATCH)
            .await
            .unwrap(),
        Pruned::default()
    );
}

/// A chat event redelivered within `dedupe_days` is recognised after a
/// retention run (inbox row and processed_events row both kept); one older
/// than the window is forgotten.
#[tokio::test]
async fn a_redelivery_inside_the_window_is_still_deduplicated() {
    let t = support::test_db().await;
    let db = &t.db;
    let store = db.inbox();
    let row = store
        .insert(Platform::Slack, "Ev6Days", "{}", 10_000)
        .await
        .unwrap()
        .expect("stored the first time");
    store.mark_done(row.id).await.unwrap();
    let row = store
        .insert(Platform::Slack, "Ev8Days", "{}", 10_000)
        .await
        .unwrap()
        .unwrap();
    store.mark_done(row.id).await.unwrap();
    let now = now_ms();
    for (event, age) in [("Ev6Days", 6 * DAY), ("Ev8Days", 8 * DAY)] {
        exec(
            db,
            "UPDATE inbox SET received_at = $1, done_at = $2 WHERE event_id = $3",
            &[I(now - age), I(now - age), S(event)],
        )
        .await;
        assert!(db.first_delivery("slack", event).await.unwrap());
        exec(
            db,
            "UPDATE processed_events SET at = $1 WHERE event_id = $2",
            &[I(now - age), S(event)],
        )
        .await;
    }
    let r = Retention::new(
        db.clone(),
        RetentionConfig::default(),
        60_000,
        "replica-a".into(),
    );
    let pruned = r.tick(now).await.unwrap().expect("the only scheduler");
    assert_eq!((pruned.inbox, pruned.processed_events), (1, 1));
    // Six days on, Slack's (or anyone's) redelivery is still a duplicate.
    assert_eq!(
        store
            .insert(Platform::Slack, "Ev6Days", "{}", 10_000)
            .await
            .unwrap(),
        None
    );
    assert!(!db.first_delivery("slack", "Ev6Days").await.unwrap());
    // Past the window it is forgotten, as configured.
    assert!(store
        .insert(Platform::Slack, "Ev8Days", "{}", 10_000)
        .await
        .unwrap()
        .is_some());
    assert!(db.first_delivery("slack", "Ev8Days").await.unwrap());
}

/// Two replicas' schedulers on one database: in one interval only the
/// lease holder prunes, at once or one after the other; it keeps the lease
/// while it runs, and hands it on when it stops.
#[tokio::test]
async fn two_schedulers_do_not_both_prune_in_one_interval() {
    let t = support::test_db().await;
    let db = &t.db;
    let now = now_ms();
    for i in 0..3 {
        processed(db, &format!("old-{i}"), now - 30 * DAY).await;
    }
    let config = RetentionConfig::default();
    let a = Retention::new(db.clone(), config.clone(), 60_000, "replica-a".into());
    let b = Retention::new(db.clone(), config.clone(), 60_000, "replica-b".into());
    let (ra, rb) = tokio::join!(a.tick(now), b.tick(now));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.is_some() != rb.is_some(),
        "exactly one prunes: {ra:?} {rb:?}"
    );
    let (holder, other) = if ra.is_some() { (&a, &b) } else { (&b, &a) };
    let won = ra.or(rb).unwrap();
    assert_eq!(won.processed_events, 3);
    // Later in the interval, and at the next one: still the holder's.
    let interval = config.interval().as_millis() as i64;
    assert_eq!(other.tick(now + interval / 2).await.unwrap(), None);
    assert!(holder.tick(now + interval).await.unwrap().is_some());
    assert_eq!(other.tick(now + interval + 1).await.unwrap(), None);
    // The holder stops: the other takes over at its next run.
    holder.stop().await;
    assert!(other.tick(now + interval + 2).await.unwrap().is_some());
    // A holder that died without letting go is replaced after two intervals.
    assert_eq!(holder.tick(now + 2 * interval).await.unwrap(), None);
    assert!(holder.tick(now + 4 * interval).await.unwrap().is_some());
}

/// The audit log read for `paver audit export`, on this backend: events
/// and approvals in the range, oldest first (at one time, the transition
/// before the approval), each with its request.
#[tokio::test]
async fn the_audit_log_reads_in_time_order_within_the_range() {
    use paver::storage::audit::AuditWhat;
    let t = support::test_db().await;
    let db = &t.db;
    let now = now_ms();
    request(db, "r-1", now - 3 * DAY).await;
    request(db, "r-2", now - DAY).await;
    request(db, "r-3", now - 10 * DAY).await;
    let entries = db.audit().entries(now - 5 * DAY, now).await.unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| {
            let kind = match &e.what {
                AuditWhat::Event { to_state, .. } => to_state.as_str(),
                AuditWhat::Approval { decision, .. } => decision.as_str(),
            };
            (e.request.id.as_str(), kind, e.at)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("r-1", "failed", now - 3 * DAY),
            ("r-1", "approve", now - 3 * DAY),
            ("r-2", "failed", now - DAY),
            ("r-2", "approve", now - DAY),
        ]
    );
    assert_eq!(entries[0].request.service.as_deref(), Some("cart-service"));
    assert_eq!(entries[0].request.state, "failed");
    // `until` is not included.
    assert_eq!(
        db.audit()
            .entries(now - 5 * DAY, now - DAY)
            .await
            .unwrap()
            .len(),
        2
    );
}
