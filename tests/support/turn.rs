//! Turns: which tests may run side by side. Every test module shares one process, and the test
//! harness runs tests on as many threads as there are cores. The end-to-end durability tests
//! (`durability`) must run alone: they load the machine (thousands of webhooks through the real
//! daemon) and assert on timing (every webhook answered within 1 s, pauses after a 429), so they
//! neither disturb nor are disturbed by another test. Every test takes its turn first thing:
//! [`alone`] for those, [`shared`] (or [`shared_async`] in an async test) for the rest, which may
//! run side by side. The lock is fair (first come, first served) and not poisoned by a failing
//! test.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TURNS: RwLock<()> = RwLock::const_new(());

/// A turn with no other test running, for as long as the guard lives.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    TURNS.write().await
}

/// A turn beside other tests taking [`shared`] turns, in a plain `#[test]`.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    TURNS.blocking_read()
}

/// Like [`shared`], in an async test.
pub async fn shared_async() -> RwLockReadGuard<'static, ()> {
    TURNS.read().await
}
