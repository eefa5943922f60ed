//! systemd's service notifications (`Type=notify`): `READY=1` once the daemon listens,
//! `WATCHDOG=1` pings while it is healthy when the unit sets `WatchdogSec=`, `STOPPING=1` at
//! shutdown. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.
//!
//! The one home of the `sd-notify` crate.

use sd_notify::NotifyState;
use std::time::Duration;

/// Tells systemd the daemon is ready (it listens and its outbox is open).
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Tells systemd the daemon is stopping (finishing in-flight work).
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// Tells systemd the daemon is alive and well.
pub fn watchdog() {
    send(&[NotifyState::Watchdog], "WATCHDOG=1");
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (systemd's advice), when the unit
/// set `WatchdogSec=` for this process; `None` otherwise.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

fn send(state: &[NotifyState], what: &str) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, state = what, "cannot notify systemd");
    }
}
