//! The one delay calculator for everything that waits before trying again
//! (jobs, reconnects, outbound retries), built on `backon`.
//!
//! Delays double from `base` up to `max`; each is jittered into the upper
//! half of its step (`[d/2, d)`), so many waiters started together spread
//! out without any of them retrying much sooner than intended.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Exponential backoff with jitter: `base`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delays, one per failed attempt, without end.
    pub fn delays(&self) -> ExponentialBackoff {
        // backon adds a jitter in (0, d) to a delay d: building on half the
        // step lands each delay in [d/2, d).
        ExponentialBuilder::new()
            .with_min_delay(self.base / 2)
            .with_max_delay((self.max / 2).max(self.base / 2))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The delay before retry number `attempt` (1 = after the first
    /// failure), for waiters that keep their attempt count elsewhere (the
    /// job table).
    pub fn delay(&self, attempt: u32) -> Duration {
        if self.base.is_zero() || self.max.is_zero() {
            return Duration::ZERO;
        }
        let n = attempt.saturating_sub(1).min(30) as usize;
        self.delays().nth(n).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_the_upper_half_and_stops_at_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..50 {
            let d: Vec<Duration> = b.delays().take(6).collect();
            for (i, step) in [100u64, 200, 400, 800, 1000, 1000].into_iter().enumerate() {
                let step = Duration::from_millis(step);
                assert!(
                    d[i] >= step / 2 && d[i] <= step,
                    "{i}: {:?} not in [{:?}, {:?}]",
                    d[i],
                    step / 2,
                    step
                );
            }
        }
        assert!(b.delay(1) <= Duration::from_millis(100));
        assert!(b.delay(40) <= Duration::from_millis(1000));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO).delay(3),
            Duration::ZERO
        );
    }
}
