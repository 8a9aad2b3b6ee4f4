//! The leased scheduler (`util::scheduler`) on one database shared by two
//! replicas' schedulers (SQLite, or PostgreSQL with
//! PAVER_TEST_DATABASE_URL): one runs at a time, never two ticks at once,
//! and the other takes over when the holder stops or its lease runs out.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paver::storage::{now_ms, Db, StorageError};
use paver::util::scheduler::{Lease, Scheduler, Timing};

/// What the jobs of several schedulers did: who ran when, and whether
/// two runs ever overlapped.
#[derive(Default)]
struct Probe {
    running: AtomicUsize,
    overlaps: AtomicUsize,
    /// (holder, Unix ms at start) of every run begun.
    started: Mutex<Vec<(String, i64)>>,
    finished: Mutex<Vec<String>>,
}

/// Counts a run as running until dropped (a run cut short too).
struct Running<'a>(&'a Probe);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Probe {
    async fn run(&self, holder: &str, takes: Duration) -> Result<(), StorageError> {
        if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let _running = Running(self);
        self.started
            .lock()
            .unwrap()
            .push((holder.to_owned(), now_ms()));
        tokio::time::sleep(takes).await;
        self.finished.lock().unwrap().push(holder.to_owned());
        Ok(())
    }
    fn runs_by(&self, holder: &str) -> usize {
        self.started
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, _)| h == holder)
            .count()
    }
    fn first_run_of(&self, holder: &str) -> Option<i64> {
        self.started
            .lock()
            .unwrap()
            .iter()
            .find(|(h, _)| h == holder)
            .map(|(_, at)| *at)
    }
    fn finished_by(&self, holder: &str) -> usize {
        self.finished
            .lock()
            .unwrap()
            .iter()
            .filter(|h| *h == holder)
            .count()
    }
    fn overlaps(&self) -> usize {
        self.overlaps.load(Ordering::SeqCst)
    }
}

fn spawn(db: &Db, probe: &Arc<Probe>, holder: &str, timing: Timing, takes: Duration) -> Scheduler {
    let lease = Lease::new(db.clone(), "test-lease", holder, timing.ttl);
    let (probe, me) = (probe.clone(), holder.to_owned());
    Scheduler::spawn(lease, timing, move || {
        let (probe, me) = (probe.clone(), me.clone());
        async move { probe.run(&me, takes).await }
    })
}

/// Polls `cond` every 20 ms for up to `limit`.
async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test]
async fn two_schedulers_take_turns_never_at_once_and_the_other_takes_over_at_stop() {
    let t = support::test_db().await;
    let probe = Arc::new(Probe::default());
    // Ticks far shorter than the lease: the holder keeps it tick after tick.
    let timing = Timing::every(Duration::from_millis(30))
        .first_after(Duration::ZERO)
        .ttl(Duration::from_secs(5));
    let work = Duration::from_millis(15);
    let a = spawn(&t.db, &probe, "replica-a", timing, work);
    let b = spawn(&t.db, &probe, "replica-b", timing, work);
    assert!(
        until(Duration::from_secs(30), || probe.runs_by("replica-a")
            + probe.runs_by("replica-b")
            >= 10)
        .await
    );
    let (holder, other, holder_name, other_name) = if probe.runs_by("replica-a") > 0 {
        (&a, &b, "replica-a", "replica-b")
    } else {
        (&b, &a, "replica-b", "replica-a")
    };
    assert_eq!(probe.runs_by(other_name), 0, "the holder kept the lease");
    assert_eq!(
        t.db.leases()
            .get("test-lease")
            .await
            .unwrap()
            .unwrap()
            .holder,
        holder_name
    );
    // The holder stops: its lease is let go at once, and the other's next
    // tick takes it (long before the five seconds it would have lasted).
    let stopped_at = now_ms();
    holder.stop().await;
    assert_eq!(t.db.leases().get("test-lease").await.unwrap(), None);
    let runs_before = probe.runs_by(holder_name);
    assert!(until(Duration::from_secs(4), || probe.runs_by(other_name) >= 3).await);
    assert!(probe.first_run_of(other_name).unwrap() >= stopped_at);
    assert_eq!(
        probe.runs_by(holder_name),
        runs_before,
        "stopped is stopped"
    );
    other.stop().await;
    assert_eq!(probe.overlaps(), 0, "two runs overlapped");
}

#[tokio::test]
async fn a_run_longer_than_the_lease_keeps_it_renewed_and_the_other_waits() {
    let t = support::test_db().await;
    let probe = Arc::new(Probe::default());
    // Each run takes 2.5 leases; ticks come every 50 ms.
    let timing = Timing::every(Duration::from_millis(50))
        .first_after(Duration::ZERO)
        .ttl(Duration::from_secs(1));
    let a = spawn(
        &t.db,
        &probe,
        "replica-a",
        timing,
        Duration::from_millis(2500),
    );
    assert!(until(Duration::from_secs(10), || probe.runs_by("replica-a") == 1).await);
    let b = spawn(
        &t.db,
        &probe,
        "replica-b",
        timing,
        Duration::from_millis(2500),
    );
    // a's first run outlives its lease twice over and still finishes:
    // renewed while it ran, so b never got the lease.
    assert!(
        until(Duration::from_secs(20), || probe.finished_by("replica-a")
            >= 1)
        .await
    );
    assert_eq!(probe.runs_by("replica-b"), 0);
    a.stop().await;
    assert!(until(Duration::from_secs(10), || probe.runs_by("replica-b") >= 1).await);
    b.stop().await;
    assert_eq!(probe.overlaps(), 0, "two runs overlapped");
}

#[tokio::test]
async fn a_lease_left_by_a_dead_replica_is_taken_once_it_runs_out() {
    let t = support::test_db().await;
    let probe = Arc::new(Probe::default());
    // A replica that died holding the lease (it never lets go).
    let until_ms = now_ms() + 1500;
    assert!(t
        .db
        .leases()
        .take("test-lease", "replica-dead", now_ms(), until_ms)
        .await
        .unwrap());
    let timing = Timing::every(Duration::from_millis(30))
        .first_after(Duration::ZERO)
        .ttl(Duration::from_secs(5));
    let b = spawn(&t.db, &probe, "replica-b", timing, Duration::from_millis(5));
    assert!(until(Duration::from_secs(15), || probe.runs_by("replica-b") >= 1).await);
    assert!(
        probe.first_run_of("replica-b").unwrap() > until_ms,
        "b ran before the dead replica's lease ran out"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_run_whose_lease_is_taken_away_is_cut_short() {
    let t = support::test_db().await;
    let probe = Probe::default();
    let a = Lease::new(
        t.db.clone(),
        "test-lease",
        "replica-a",
        Duration::from_millis(800),
    );
    let b = Lease::new(
        t.db.clone(),
        "test-lease",
        "replica-b",
        Duration::from_secs(60),
    );
    let steal = async {
        assert!(until(Duration::from_secs(10), || probe.runs_by("replica-a") == 1).await);
        // Say a's lease was found expired by b (a clock jump, a long pause):
        // it goes to b, and a's next renewal is refused.
        t.db.leases()
            .release("test-lease", "replica-a")
            .await
            .unwrap();
        assert_eq!(
            b.run(now_ms(), async { Ok::<_, StorageError>(()) })
                .await
                .unwrap(),
            Some(())
        );
    };
    let started = tokio::time::Instant::now();
    let (ran, ()) = tokio::join!(
        a.run(now_ms(), probe.run("replica-a", Duration::from_secs(30))),
        steal
    );
    assert_eq!(ran.unwrap(), None, "cut short");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(probe.finished_by("replica-a"), 0);
    // While b holds it, a does not run at all.
    assert_eq!(
        a.run(now_ms(), async { Ok::<_, StorageError>(()) })
            .await
            .unwrap(),
        None
    );
}
