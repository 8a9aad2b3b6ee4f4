//! A circuit breaker: after a run of failures (or a 429 that says how long
//! to stay away), Paver stops calling the server for a while and answers
//! with the rules parser at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(remaining)` while the breaker is open. Once the time is up one
    /// call goes through (half-open); its failure opens the breaker again.
    pub fn check(&self) -> Result<(), Duration> {
        let s = self.lock();
        match s.open_until {
            Some(t) if t > Instant::now() => Err(t - Instant::now()),
            _ => Ok(()),
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.open_until = None;
    }

    /// Counts a failure; true when this one opened the breaker.
    pub fn failure(&self) -> bool {
        let mut s = self.lock();
        s.failures += 1;
        if s.failures >= self.threshold {
            s.open_until = Some(Instant::now() + self.cooldown);
            true
        } else {
            false
        }
    }

    /// The server asked for a pause (429 with `Retry-After`): honour it.
    pub fn hold(&self, pause: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + pause;
        s.open_until = Some(s.open_until.map_or(until, |t| t.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_closes_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(50));
        assert!(b.check().is_ok());
        assert!(!b.failure());
        assert!(b.check().is_ok());
        assert!(b.failure());
        assert!(b.check().is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok(), "half-open after the cooldown");
        assert!(b.failure(), "one more failure opens it again");
        b.success();
        assert!(b.check().is_ok());
        b.hold(Duration::from_secs(5));
        assert!(b.check().unwrap_err() > Duration::from_secs(4));
    }
}
