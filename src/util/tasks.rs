//! Work that was acknowledged before it was done, counted so a caller can
//! wait until everything in flight has finished, and bounded so a flood is
//! turned away instead of queued without limit.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Too much work in flight: the caller should not acknowledge the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many events in flight; try again shortly")]
pub struct Overloaded;

/// Counts spawned work; clones share one count.
#[derive(Debug, Clone)]
pub struct Tracker {
    running: Arc<AtomicUsize>,
    limit: usize,
    /// Told each time a piece of work ends, so a caller waiting for
    /// quiet wakes then rather than on a timer.
    ended: Arc<Notify>,
}

impl Tracker {
    /// At most `limit` pieces of work admitted by [`Tracker::admit`] at once.
    pub fn new(limit: usize) -> Self {
        Tracker {
            running: Arc::new(AtomicUsize::new(0)),
            limit,
            ended: Arc::new(Notify::new()),
        }
    }

    /// Spawns `work` if fewer than the limit are running; `what` names the
    /// work in the log when it fails.
    pub fn admit<F, E>(&self, what: &'static str, work: F) -> Result<(), Overloaded>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let previous = self.running.fetch_add(1, Ordering::SeqCst);
        if previous >= self.limit {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                in_flight = previous,
                "too many {what}s in flight; asking for redelivery"
            );
            return Err(Overloaded);
        }
        self.run(what, work);
        Ok(())
    }

    /// Spawns `work` whatever the count: for work Paver starts itself.
    pub fn spawn<F, E>(&self, what: &'static str, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.run(what, work);
    }

    fn run<F, E>(&self, what: &'static str, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let (running, ended) = (self.running.clone(), self.ended.clone());
        tokio::spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(error = %e, "handling a {what} failed");
            }
            running.fetch_sub(1, Ordering::SeqCst);
            ended.notify_waiters();
        });
    }

    /// Told (`notify_waiters`) whenever a piece of work ends.
    pub fn ended(&self) -> Arc<Notify> {
        self.ended.clone()
    }

    /// How many are running now.
    pub fn count(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_past_the_limit_and_counts_down() {
        let t = Tracker::new(1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        t.admit("event", async move { rx.await.map_err(|e| e.to_string()) })
            .unwrap();
        assert_eq!(
            t.admit("event", async { Ok::<(), String>(()) }),
            Err(Overloaded)
        );
        // Paver's own work is never refused.
        t.spawn("job", async { Ok::<(), String>(()) });
        tx.send(()).unwrap();
        for _ in 0..100 {
            if t.count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("still {} running", t.count());
    }
}
