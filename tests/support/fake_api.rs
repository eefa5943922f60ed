//! The scaffold the fake chat APIs share, written once: a server on 127.0.0.1 around a fake's
//! state (stopped on drop), the most requests accepted within any one minute, and the bounded
//! wait for what a fake has seen.

use axum::handler::Handler;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A fake's server: `handler` answers every request with the state behind a lock.
pub struct FakeApi<S> {
    addr: SocketAddr,
    shared: Arc<Mutex<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for FakeApi<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> FakeApi<S> {
    /// Starts on 127.0.0.1 with `state`, every request going to `handler`.
    pub async fn start<H, T>(state: S, handler: H) -> FakeApi<S>
    where
        H: Handler<T, Arc<Mutex<S>>>,
        T: 'static,
    {
        FakeApi::routed(state, |r| r.fallback(handler)).await
    }

    /// Starts on 127.0.0.1 with `state`, requests going where `routes` sends them.
    pub async fn routed(
        state: S,
        routes: impl FnOnce(Router<Arc<Mutex<S>>>) -> Router<Arc<Mutex<S>>>,
    ) -> FakeApi<S> {
        let shared = Arc::new(Mutex::new(state));
        let app = routes(Router::new()).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { addr, shared, task }
    }
}

impl<S> FakeApi<S> {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fake's state, locked.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.shared.lock().unwrap()
    }
}

/// The most of `at` (times in the order taken) within any 60 seconds.
pub fn most_in_a_minute(at: &[Instant]) -> usize {
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|t| t.duration_since(at[i]) < Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Polls `done` every 20 ms until it holds; fails with `why()` after `timeout`.
pub async fn wait(timeout: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{}", why());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fake's state that logs every request it answered.
pub trait Logged {
    /// One request and its answer.
    type Request: Clone + std::fmt::Debug;
    /// Every request, in order.
    fn log(&self) -> &[Self::Request];
    /// Whether `r` is an accepted request of `what` (a method or an action).
    fn is_accepted(r: &Self::Request, what: &str) -> bool;
}

impl<S: Logged> FakeApi<S> {
    /// Every request, in order.
    pub fn requests(&self) -> Vec<S::Request> {
        self.state().log().to_vec()
    }

    /// Accepted requests of `what`.
    pub fn accepted(&self, what: &str) -> usize {
        let s = self.state();
        s.log().iter().filter(|r| S::is_accepted(r, what)).count()
    }

    /// Waits (bounded) until `accepted(what)` reaches `n` for each `(what, n)`; fails with the
    /// requests seen.
    pub async fn settle(&self, counts: &[(&str, usize)], timeout: Duration) {
        wait(
            timeout,
            || counts.iter().all(|(what, n)| self.accepted(what) >= *n),
            || format!("waiting for {counts:?}: {:#?}", self.requests()),
        )
        .await;
    }
}
