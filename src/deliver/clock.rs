//! [`Clock`]: the outbox's notion of now, in unix milliseconds, advancing with tokio's clock.
//!
//! The durable outbox stamps and schedules rows with it and the workers sleep until its times, so
//! both must read the same clock; tests pause tokio's time and move it forward. It sits below
//! `durable` and `worker` so each imports it downward.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::{Duration, Instant};

/// Wall-clock milliseconds that advance with tokio's clock, so tests can pause time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: i64,
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting at the current wall time.
    pub fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            base_ms: wall,
            base: Instant::now(),
        }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + Instant::now().duration_since(self.base).as_millis() as i64
    }

    /// The tokio instant of a unix-millisecond time.
    pub fn instant_at(&self, ms: i64) -> Instant {
        self.base + Duration::from_millis((ms - self.base_ms).max(0) as u64)
    }
}
