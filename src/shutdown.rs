//! Process signals → a cancellation token, and a bounded wait for tasks to finish.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long `serve` waits for in-flight work after a stop signal. Fits inside systemd's default
/// `TimeoutStopSec` (90 s) and the unit's 30 s.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Cancels `token` on SIGTERM or SIGINT (Ctrl-C).
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop signal received; finishing in-flight work");
        token.cancel();
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for every task on `tracker`, at most `limit`. Returns false on timeout.
pub async fn drain(tracker: &TaskTracker, limit: Duration) -> bool {
    tracker.close();
    tokio::time::timeout(limit, tracker.wait()).await.is_ok()
}
