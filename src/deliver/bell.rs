//! [`Bell`]: a wake-up signal from one thread to another that is never missed (a ring before the
//! wait makes the wait return at once). The outbox writer rings it after committing new events;
//! the router stage waits on it.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A wake-up signal between threads: rung by the writer after new events are committed.
#[derive(Debug, Default)]
pub struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    /// Wakes the waiter (or makes its next wait return at once).
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits until rung or `timeout` passed; returns whether it was rung.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |rung| !*rung)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bell_rung_before_the_wait_is_not_missed() {
        let bell = Bell::default();
        bell.ring();
        assert!(bell.wait(Duration::from_secs(5)));
        assert!(!bell.wait(Duration::from_millis(10)));
    }
}
