//! When a crashed engine is restarted, and when the supervisor gives up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many restarts in the window: stop trying.
    GiveUp {
        /// Restarts already made in the window.
        restarts: usize,
        /// The window.
        window: Duration,
    },
}

/// Restarts with a fixed delay and a burst limit: at most `burst` restarts in any `window`
/// (defaults: 2 s, 3 per 60 s).
#[derive(Debug, Clone)]
pub struct Backoff {
    delay: Duration,
    burst: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(2), 3, Duration::from_secs(60))
    }
}

impl Backoff {
    /// A policy with its own numbers.
    pub fn new(delay: Duration, burst: usize, window: Duration) -> Self {
        Self { delay, burst, window, recent: VecDeque::new() }
    }

    /// Decides after a crash at `now`, and records the restart when one is decided.
    pub fn on_crash(&mut self, now: Instant) -> RestartDecision {
        while self.recent.front().is_some_and(|&t| now.duration_since(t) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.burst {
            return RestartDecision::GiveUp { restarts: self.recent.len(), window: self.window };
        }
        self.recent.push_back(now);
        RestartDecision::RestartAfter(self.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_restarts_a_minute_then_give_up() {
        let start = Instant::now();
        let mut b = Backoff::default();
        for i in 0..3 {
            assert_eq!(
                b.on_crash(start + Duration::from_secs(i)),
                RestartDecision::RestartAfter(Duration::from_secs(2))
            );
        }
        assert_eq!(
            b.on_crash(start + Duration::from_secs(10)),
            RestartDecision::GiveUp { restarts: 3, window: Duration::from_secs(60) }
        );
        // Once the first restart leaves the window, one more is allowed.
        assert!(matches!(b.on_crash(start + Duration::from_secs(60)), RestartDecision::RestartAfter(_)));
    }
}
