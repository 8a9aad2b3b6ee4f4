//! A fact an adapter asks its platform once at start (which Slack
//! workspace the bot token belongs to, which Discord application Paver
//! is), retried with backoff until the platform answers. Until then the
//! fact is unknown, and adapters refuse events rather than guess.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::util::Backoff;

/// Where an event came from, as far as serving it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Ours,
    /// Another workspace, server or app: acknowledged, logged, not handled.
    Elsewhere(String),
    /// Paver does not know yet where it belongs (the platform has not
    /// answered): refused unacknowledged, so the platform can deliver again.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase<T> {
    /// The first question is still out.
    Asking,
    Known(T),
    /// The first question failed; it is asked again in the background.
    Failed,
}

#[derive(Debug)]
pub struct Learned<T> {
    phase: watch::Sender<Phase<T>>,
}

impl<T: Clone + Send + Sync + 'static> Learned<T> {
    /// Not known yet: [`Learned::learn`] or [`Learned::set`] will tell.
    pub fn asking() -> Arc<Self> {
        Arc::new(Learned {
            phase: watch::Sender::new(Phase::Asking),
        })
    }

    /// Known from the start (from the configuration).
    pub fn known(value: T) -> Arc<Self> {
        Arc::new(Learned {
            phase: watch::Sender::new(Phase::Known(value)),
        })
    }

    pub fn is_known(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Known(_))
    }

    pub fn set(&self, value: T) {
        self.phase.send_replace(Phase::Known(value));
    }

    fn failed(&self) {
        self.phase.send_if_modified(|p| {
            if matches!(p, Phase::Asking) {
                *p = Phase::Failed;
                true
            } else {
                false
            }
        });
    }

    /// The value, waiting at most `wait` while the first question is still
    /// out (so events arriving during start are not refused for nothing).
    pub async fn get(&self, wait: Duration) -> Option<T> {
        let mut rx = self.phase.subscribe();
        if matches!(*rx.borrow(), Phase::Asking) {
            let _ = tokio::time::timeout(wait, rx.wait_for(|p| !matches!(p, Phase::Asking))).await;
        }
        let now = rx.borrow();
        match &*now {
            Phase::Known(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Asks `ask` until it answers ([`Backoff`] from 1 s, doubling to a minute),
    /// logging each failure; the answer is kept.
    pub fn learn<F, Fut, E>(
        self: &Arc<Self>,
        what: &'static str,
        ask: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        E: Display + Send,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let mut delays = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).delays();
            loop {
                match ask().await {
                    Ok(v) => {
                        me.set(v);
                        return;
                    }
                    Err(e) => {
                        me.failed();
                        // The iterator has no end: the fallback is never used.
                        let backoff = delays.next().unwrap_or(Duration::from_secs(60));
                        tracing::error!(error = %e, retry_in = ?backoff, "could not learn {what}; refusing events until it is known");
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        })
    }
}
