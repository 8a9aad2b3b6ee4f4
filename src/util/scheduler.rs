//! Leased schedulers: periodic work that one replica at a time does.
//!
//! Every replica runs the same [`Scheduler`]s; each tick, a scheduler
//! takes (or renews) its named lease for its replica's holder id, and runs
//! the work only when it holds it. The holder keeps the lease across ticks
//! (it lasts `ttl`, longer than a tick), so the same replica goes on
//! working while it lives; a replica that stops lets go, and one that died
//! is replaced once its lease runs out.
//!
//! Two runs never overlap: while the work runs, the lease is renewed every
//! quarter of `ttl`, and the run is cut short (its future dropped) when a
//! renewal is refused or has not succeeded for three quarters of `ttl`,
//! a quarter before anyone else could take the lease. That rests on the
//! replicas' clocks agreeing to within that quarter, as leases do.
//!
//! Where the lease is kept is the caller's: a [`Leases`] (the database's
//! lease table, `storage::leases`).

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Named leases with an expiry, shared by every replica.
#[async_trait]
pub trait Leases: Clone + Send + Sync + 'static {
    type Error: Display + Send;

    /// Takes lease `name` for `holder` until `until` (Unix ms) when it is
    /// free, ran out before `now`, or is already `holder`'s (a renewal);
    /// true when `holder` holds it now.
    async fn take(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, Self::Error>;

    /// Lets the lease go if `holder` holds it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), Self::Error>;
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// One named lease as one holder sees it.
#[derive(Clone)]
pub struct Lease<L: Leases> {
    leases: L,
    name: String,
    holder: String,
    ttl: Duration,
}

impl<L: Leases> Lease<L> {
    /// `ttl`: how long a take or renewal holds the lease; at least 4 ms
    /// (renewals come every quarter of it).
    pub fn new(leases: L, name: &str, holder: &str, ttl: Duration) -> Self {
        Lease {
            leases,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl: ttl.max(Duration::from_millis(4)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Runs `work` if this holder takes (or renews) the lease at `now`
    /// (Unix ms; tests pass their own), keeping it renewed while the work
    /// runs. `Ok(None)`: another holder has the lease, or it was lost while
    /// running and the work was cut short (logged).
    pub async fn run<F, T, E>(&self, now: i64, work: F) -> Result<Option<T>, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<L::Error>,
    {
        let ttl = ms(self.ttl);
        let started = Instant::now();
        if !self
            .leases
            .take(&self.name, &self.holder, now, now.saturating_add(ttl))
            .await?
        {
            tracing::debug!(lease = %self.name, holder = %self.holder, "another replica holds the lease");
            return Ok(None);
        }
        // Measured from before the take was sent: the lease's expiry is
        // counted from then too, so this side always gives up first.
        let mut cut_at = started + self.ttl * 3 / 4;
        let beat = self.ttl / 4;
        let mut renew = tokio::time::interval_at(started + beat, beat);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out.map(Some),
                _ = tokio::time::sleep_until(cut_at) => {
                    tracing::warn!(lease = %self.name, holder = %self.holder, "the lease could not be renewed in time; this run is cut short");
                    return Ok(None);
                }
                _ = renew.tick() => {
                    let sent = Instant::now();
                    // `now` moves on with the real clock from where the caller set it.
                    let at = now.saturating_add(ms(sent.duration_since(started)));
                    let renewed = tokio::time::timeout_at(
                        cut_at,
                        self.leases.take(&self.name, &self.holder, at, at.saturating_add(ttl)),
                    )
                    .await;
                    match renewed {
                        Ok(Ok(true)) => cut_at = sent + self.ttl * 3 / 4,
                        Ok(Ok(false)) => {
                            tracing::warn!(lease = %self.name, holder = %self.holder, "the lease was taken by another replica; this run is cut short");
                            return Ok(None);
                        }
                        // The deadline decides: a later renewal may still succeed.
                        Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "renewing the lease failed"),
                        Err(_) => {}
                    }
                }
            }
        }
    }

    /// Lets the lease go if this holder has it.
    pub async fn release(&self) -> Result<(), L::Error> {
        self.leases.release(&self.name, &self.holder).await
    }
}

/// When a [`Scheduler`] runs: the first tick `first` after it starts, then
/// every `every`; its lease lasts `ttl` (by default two ticks, so the
/// holder keeps it from one tick to the next and a replica that died is
/// replaced within two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub first: Duration,
    pub every: Duration,
    pub ttl: Duration,
}

impl Timing {
    /// Every `every`, the first a whole `every` after start.
    pub fn every(every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        Timing {
            first: every,
            every,
            ttl: every * 2,
        }
    }

    pub fn first_after(self, first: Duration) -> Self {
        Timing { first, ..self }
    }

    pub fn ttl(self, ttl: Duration) -> Self {
        Timing { ttl, ..self }
    }
}

/// A running leased loop; clones share it. [`Scheduler::stop`] ends it.
#[derive(Clone)]
pub struct Scheduler {
    name: String,
    stop: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Scheduler {
    /// Starts the loop: at each tick, `job` runs under `lease` (skipped
    /// while another holder has it). A failed run is a warning; the next
    /// tick tries again. Stopping cuts a run short and lets the lease go.
    pub fn spawn<L, F, Fut, T, E>(lease: Lease<L>, timing: Timing, job: F) -> Scheduler
    where
        L: Leases,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Display + From<L::Error> + Send,
    {
        let stop = Arc::new(watch::channel(false).0);
        let mut stopped = stop.subscribe();
        let name = lease.name().to_owned();
        let task = tokio::spawn(async move {
            let every = timing.every.max(Duration::from_millis(1));
            let mut ticks = tokio::time::interval_at(Instant::now() + timing.first, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                // Stopping cuts a run short: every scheduled job commits its
                // work in steps of its own, so the next holder carries on.
                tokio::select! {
                    r = lease.run(super::now_ms(), job()) => if let Err(e) = r {
                        tracing::warn!(scheduler = %lease.name(), error = %e, "the scheduled run failed; trying again next tick");
                    },
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
            if let Err(e) = lease.release().await {
                tracing::warn!(scheduler = %lease.name(), error = %e, "letting the lease go failed; it runs out by itself");
            }
        });
        Scheduler {
            name,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the loop (a run under way stops at once), lets the lease go
    /// so another replica need not wait for it to run out, and returns
    /// when all that is done.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(scheduler = %self.name, error = %e, "the scheduler's task ended badly");
            }
        }
    }
}

/// Every scheduler a process started, stopped together at shutdown.
#[derive(Clone, Default)]
pub struct Schedulers {
    all: Arc<Mutex<Vec<Scheduler>>>,
}

impl Schedulers {
    pub fn add(&self, s: Scheduler) {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// Stops them all at once and waits for each.
    pub async fn stop(&self) {
        let all: Vec<Scheduler> =
            std::mem::take(&mut *self.all.lock().unwrap_or_else(|p| p.into_inner()));
        futures_util::future::join_all(all.iter().map(Scheduler::stop)).await;
    }
}
