//! Per-credential posting budget: at most N posts in any 60-second window.
//!
//! Cliq locks a user out for 10 minutes above about 50 posts a minute, so the limit is a sliding
//! window (never more than `rate_per_minute` posts in any minute), not a token bucket that could
//! allow a burst plus a refill. Channels sharing a credential share one limiter. A throttle answer
//! pauses the credential as a whole. With several replicas on one PostgreSQL store the window is
//! the database's ([`SharedWindow`]): the limiter asks it for each slot, keeping the leases of
//! the messages waiting for one.

use super::engine::{SharedWindow, Slot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// Length of the budget window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Longest sleep between two asks of a shared window (the leases are renewed in between).
pub const SHARED_STEP: Duration = Duration::from_secs(5);

/// Wait after the shared window could not be asked.
pub const SHARED_RETRY: Duration = Duration::from_millis(500);

/// A sliding-window limiter (uses tokio's clock, so tests can pause time).
#[derive(Debug)]
pub struct RateLimiter {
    per_window: usize,
    state: Mutex<State>,
    shared: Option<Shared>,
}

/// The window replicas share: where, and under which name (a hash, never the credential).
struct Shared {
    window: Arc<dyn SharedWindow>,
    name: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// At most `per_minute` posts in any 60 s.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_window: per_minute.max(1) as usize,
            state: Mutex::new(State::default()),
            shared: None,
        }
    }

    /// A limiter whose window is `window`'s, shared by every replica, for the credential
    /// `credential` (its identity, secret included: only its SHA-256 leaves the process).
    pub fn shared(per_minute: u32, credential: &str, window: Arc<dyn SharedWindow>) -> RateLimiter {
        let digest = crate::signing::sha256(&[credential.as_bytes()]);
        let name = digest.iter().map(|b| format!("{b:02x}")).collect();
        RateLimiter {
            shared: Some(Shared { window, name }),
            ..RateLimiter::new(per_minute)
        }
    }

    /// Whether the window is shared with other replicas (its slots come from the database).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Waits for a slot like [`RateLimiter::acquire`]; with a shared window, `keep` is run
    /// before each wait (the worker renews its leases there) and its `false` gives up: then
    /// this returns `false` and no slot was taken. A database error is waited out.
    pub async fn acquire_keeping<F, Fut>(&self, mut keep: F) -> bool
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let Some(shared) = &self.shared else {
            self.acquire().await;
            return true;
        };
        let mut failing = false;
        loop {
            let wait = match shared
                .window
                .take_slot(&shared.name, self.per_minute())
                .await
            {
                Ok(Slot::Go) => return true,
                Ok(Slot::Wait(d)) => d,
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot take a posting slot; trying again");
                    }
                    failing = true;
                    SHARED_RETRY
                }
            };
            if !keep().await {
                return false;
            }
            tokio::time::sleep(wait.min(SHARED_STEP)).await;
        }
    }

    /// The budget: posts allowed in any 60 s.
    pub fn per_minute(&self) -> u32 {
        self.per_window as u32
    }

    /// Waits until a post is allowed, then records it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while st
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    st.sent.pop_front();
                }
                let paused = st.paused_until.filter(|p| *p > now);
                match (paused, st.sent.front()) {
                    (Some(p), _) => p - now,
                    (None, Some(oldest)) if st.sent.len() >= self.per_window => {
                        (*oldest + WINDOW) - now
                    }
                    _ => {
                        st.sent.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Stops all posts on this credential for `d` (after a throttle answer).
    pub fn pause(&self, d: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + d;
        if st.paused_until.is_none_or(|p| p < until) {
            st.paused_until = Some(until);
        }
        drop(st);
        if let Some(shared) = &self.shared {
            let (window, name) = (Arc::clone(&shared.window), shared.name.clone());
            tokio::spawn(async move {
                if let Err(error) = window.pause(&name, d).await {
                    tracing::warn!(%error, "cannot pause the credential for the other replicas");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_budget_in_any_window() {
        let lim = RateLimiter::new(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            lim.acquire().await;
            times.push(Instant::now() - start);
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u - *t < WINDOW).count();
            assert!(in_window <= 5, "{in_window} posts within a minute of {t:?}");
        }
        assert_eq!(times[5], WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everything() {
        let lim = RateLimiter::new(100);
        lim.pause(Duration::from_secs(30));
        let start = Instant::now();
        lim.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }
}
