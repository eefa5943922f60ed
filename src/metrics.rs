//! Operational metrics: one named function per thing we count, and the Prometheus text
//! rendering of `GET /metrics`.
//!
//! This module is the one home of the `metrics` facade and its Prometheus exporter. Other modules
//! call the functions below (`webhook_received`, `delivery`, …), never the `metrics` macros, so
//! every metric name, label and unit is listed here. Until [`install`] runs (in `serve`), the
//! facade has no recorder and every call is a cheap no-op: `check`, `render` and unit tests
//! record nothing.
//!
//! Label values are bounded: event kinds GitLab may invent are counted as `unknown`, rejection
//! reasons and outcomes are fixed words, channels and template files come from the config.

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Webhooks answered 2xx, by outcome (accepted, duplicate).
pub const WEBHOOKS_RECEIVED: &str = "gcb_webhooks_received_total";
/// Events the router stage handled, by event kind and outcome (queued, ignored).
pub const EVENTS_ROUTED: &str = "gcb_events_routed_total";
/// Seconds from a webhook's arrival to its messages' commit by the router stage.
pub const ROUTE_LATENCY: &str = "gcb_event_route_seconds";
/// Webhooks refused, by reason.
pub const WEBHOOKS_REJECTED: &str = "gcb_webhooks_rejected_total";
/// Events whose template failed at render time (a fallback message was posted), by template.
pub const RENDER_ERRORS: &str = "gcb_render_errors_total";
/// Post attempts by channel and outcome.
pub const DELIVERIES: &str = "gcb_deliveries_total";
/// Post attempts that were retries of an earlier failed attempt, by channel.
pub const RETRIES: &str = "gcb_delivery_retries_total";
/// Waits for a credential's rate limit (count and seconds), by channel.
pub const RATE_LIMIT_WAITS: &str = "gcb_rate_limit_wait_seconds";
/// Messages waiting in the outbox (not dead), by channel.
pub const OUTBOX_PENDING: &str = "gcb_outbox_pending";
/// Age in seconds of the oldest waiting message, by channel (0 when none waits).
pub const OUTBOX_OLDEST_AGE: &str = "gcb_outbox_oldest_pending_age_seconds";
/// Dead letters kept in the outbox, by channel.
pub const OUTBOX_DEAD: &str = "gcb_outbox_dead_letters";
/// Seconds from a webhook's arrival to its answer (including the outbox commit), by outcome.
pub const ACK_LATENCY: &str = "gcb_webhook_ack_seconds";
/// Seconds from a webhook's arrival to the chat endpoint's acceptance of its message, by channel.
pub const DELIVERY_LATENCY: &str = "gcb_delivery_latency_seconds";
/// HTTP connections open now.
pub const CONNECTIONS: &str = "gcb_http_connections";
/// Changes of a managed GitLab hook's `alert_status` seen by `serve`, by the new status.
pub const HOOK_ALERTS: &str = "gcb_gitlab_hook_alerts_total";
/// Managed GitLab hooks GitLab does not call now (`temporarily_disabled` or `disabled`).
pub const HOOKS_FAILING: &str = "gcb_gitlab_hooks_failing";
/// Shortest time between two refreshes of the outbox gauges from the store.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(1);

/// Buckets of [`ACK_LATENCY`], in seconds: GitLab waits 10 s at most.
const ACK_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`RATE_LIMIT_WAITS`], in seconds: a window is 60 s, a throttle pause up to 300 s.
const WAIT_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
/// Buckets of [`DELIVERY_LATENCY`], in seconds: from an instant post to a day of retries.
const DELIVERY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0,
];

/// What became of a webhook that was answered 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored as a new event, to be routed.
    Accepted,
    /// Seen before (same `Idempotency-Key`); not stored again.
    Duplicate,
}

impl Received {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
        }
    }
}

/// What the router stage made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Messages were queued for at least one channel.
    Queued,
    /// Nothing to post (no template, no channel, confidential, skipped).
    Ignored,
}

impl Routed {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Routed::Queued => "queued",
            Routed::Ignored => "ignored",
        }
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Missing or wrong `X-Gitlab-Token` (401).
    Token,
    /// Missing, wrong or stale `webhook-signature` (401).
    Signature,
    /// A `webhook-id` seen within the tolerance (401).
    Replay,
    /// The TCP peer is outside `server.allow_networks` (403).
    Network,
    /// The body is larger than `server.max_body_bytes` (413).
    Size,
    /// The body could not be read (client gone, too slow) (400/408).
    Body,
    /// Not a JSON object (400).
    Json,
    /// The outbox could not commit (503).
    Outbox,
    /// The request was not read and answered within `server.request_timeout_secs` (408).
    Timeout,
}

impl Rejected {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Token => "token",
            Rejected::Signature => "signature",
            Rejected::Replay => "replay",
            Rejected::Network => "network",
            Rejected::Size => "size",
            Rejected::Body => "body",
            Rejected::Json => "json",
            Rejected::Outbox => "outbox",
            Rejected::Timeout => "timeout",
        }
    }
}

/// The outcome of one post attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// Accepted by the chat endpoint.
    Delivered,
    /// Failed; will be tried again.
    Retry,
    /// Failed for good; kept as a dead letter.
    Dead,
}

impl Attempted {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Attempted::Delivered => "delivered",
            Attempted::Retry => "retry",
            Attempted::Dead => "dead",
        }
    }
}

/// The outbox of one channel, for the gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxGauge {
    /// Channel name.
    pub channel: String,
    /// Messages waiting (first attempt or retry).
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
    /// Age of the oldest waiting message.
    pub oldest_age: Duration,
}

/// The installed Prometheus recorder; renders `GET /metrics`.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    refreshed: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(String);

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> Result<Metrics, MetricsError> {
    if let Some(m) = INSTALLED.get() {
        return Ok(m.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(ACK_LATENCY.into()), &ACK_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(DELIVERY_LATENCY.into()), &DELIVERY_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(RATE_LIMIT_WAITS.into()), &WAIT_BUCKETS)
        })
        .map_err(|e| MetricsError(e.to_string()))?;
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        // Lost a race with another caller: theirs is installed.
        Err(e) => return INSTALLED.get().cloned().ok_or(MetricsError(e.to_string())),
    };
    describe();
    let m = Metrics {
        handle,
        refreshed: Arc::new(Mutex::new(None)),
    };
    Ok(INSTALLED.get_or_init(|| m).clone())
}

/// How often `serve` folds the histogram samples recorded meanwhile into their buckets
/// ([`Metrics::upkeep`]), whether or not anything scrapes `/metrics`.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

impl Metrics {
    /// Folds the histogram samples recorded since the last upkeep into their buckets and
    /// summaries. The exporter keeps every sample until then: without a scrape, memory grew
    /// with every webhook routed and answered (about 40 bytes each).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        // Without the exporter's own upkeep task (no async runtime feature), histograms are
        // folded in here.
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// True at most once per [`GAUGE_REFRESH`]: whether to refresh the outbox gauges now, so a
    /// client scraping in a loop cannot keep the outbox busy.
    pub fn due_for_refresh(&self) -> bool {
        let mut last = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < GAUGE_REFRESH) {
            return false;
        }
        *last = Some(now);
        true
    }
}

fn describe() {
    describe_counter!(
        WEBHOOKS_RECEIVED,
        "Webhooks answered 2xx, by outcome (accepted, duplicate)"
    );
    describe_counter!(
        EVENTS_ROUTED,
        "Events routed, by event kind and outcome (queued, ignored)"
    );
    describe_histogram!(
        ROUTE_LATENCY,
        "Seconds from a webhook's arrival to the commit of its messages"
    );
    describe_counter!(
        WEBHOOKS_REJECTED,
        "Webhooks refused, by reason (token, signature, replay, network, size, body, json, outbox, timeout)"
    );
    describe_counter!(
        RENDER_ERRORS,
        "Events whose template failed at render time (a fallback message was posted), by template"
    );
    describe_counter!(
        DELIVERIES,
        "Post attempts, by channel and outcome (delivered, retry, dead)"
    );
    describe_counter!(
        RETRIES,
        "Post attempts that retried an earlier failed attempt, by channel"
    );
    describe_histogram!(
        RATE_LIMIT_WAITS,
        "Seconds posts waited for their credential's rate limit (only posts that waited), by channel"
    );
    describe_gauge!(
        OUTBOX_PENDING,
        "Messages waiting in the outbox (first attempt or retry), by channel"
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        "Age in seconds of the oldest waiting message, by channel"
    );
    describe_gauge!(OUTBOX_DEAD, "Dead letters in the outbox, by channel");
    describe_histogram!(
        ACK_LATENCY,
        "Seconds from a webhook's arrival to its answer, by outcome"
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        "Seconds from a webhook's arrival to the chat endpoint accepting its message, by channel"
    );
    describe_gauge!(CONNECTIONS, "HTTP connections open now");
    describe_counter!(
        HOOK_ALERTS,
        "Changes of a managed GitLab hook's alert_status, by new status (executable, temporarily_disabled, disabled)"
    );
    describe_gauge!(
        HOOKS_FAILING,
        "Managed GitLab hooks that GitLab does not call now (temporarily_disabled or disabled)"
    );
}

/// Bounds the `kind` label: GitLab's known kinds, else `unknown`.
fn kind_label(kind: &str, known: bool) -> String {
    if known {
        kind.to_string()
    } else {
        "unknown".to_string()
    }
}

/// A webhook answered 2xx after `took`.
pub fn webhook_received(outcome: Received, took: Duration) {
    counter!(WEBHOOKS_RECEIVED, "outcome" => outcome.as_str()).increment(1);
    histogram!(ACK_LATENCY, "outcome" => outcome.as_str()).record(took.as_secs_f64());
}

/// The router stage handled an event: `kind` is the event kind (`issue`, `push`, …); `known` is
/// false for kinds this version does not know (counted as `unknown`); `since_received` is the
/// time since its webhook arrived.
pub fn event_routed(kind: &str, known: bool, outcome: Routed, since_received: Duration) {
    counter!(EVENTS_ROUTED, "kind" => kind_label(kind, known), "outcome" => outcome.as_str())
        .increment(1);
    histogram!(ROUTE_LATENCY).record(since_received.as_secs_f64());
}

/// A webhook refused.
pub fn webhook_rejected(reason: Rejected, took: Duration) {
    counter!(WEBHOOKS_REJECTED, "reason" => reason.as_str()).increment(1);
    histogram!(ACK_LATENCY, "outcome" => "rejected").record(took.as_secs_f64());
}

/// A template failed at render time; `template` is its file or built-in name.
pub fn render_error(template: &str) {
    counter!(RENDER_ERRORS, "template" => template.to_string()).increment(1);
}

/// A post attempt finished. `attempt` counts from 1; `since_received` is the time since the
/// webhook arrived (recorded as delivery latency when delivered).
pub fn delivery(channel: &str, outcome: Attempted, attempt: u32, since_received: Duration) {
    counter!(DELIVERIES, "channel" => channel.to_string(), "outcome" => outcome.as_str())
        .increment(1);
    if attempt > 1 {
        counter!(RETRIES, "channel" => channel.to_string()).increment(1);
    }
    if outcome == Attempted::Delivered {
        histogram!(DELIVERY_LATENCY, "channel" => channel.to_string())
            .record(since_received.as_secs_f64());
    }
}

/// A post waited `waited` for its credential's rate limit.
pub fn rate_limit_wait(channel: &str, waited: Duration) {
    histogram!(RATE_LIMIT_WAITS, "channel" => channel.to_string()).record(waited.as_secs_f64());
}

/// Sets the outbox gauges from a fresh look at the store.
pub fn outbox(channels: &[OutboxGauge]) {
    for c in channels {
        gauge!(OUTBOX_PENDING, "channel" => c.channel.clone()).set(c.pending as f64);
        gauge!(OUTBOX_DEAD, "channel" => c.channel.clone()).set(c.dead as f64);
        gauge!(OUTBOX_OLDEST_AGE, "channel" => c.channel.clone()).set(c.oldest_age.as_secs_f64());
    }
}

/// A managed hook's `alert_status` changed to `status` (bounded: GitLab's three words, else
/// `other`).
pub fn hook_alert(status: &str) {
    let status = match status {
        "executable" | "temporarily_disabled" | "disabled" => status.to_string(),
        _ => "other".to_string(),
    };
    counter!(HOOK_ALERTS, "alert_status" => status).increment(1);
}

/// How many managed hooks GitLab does not call now.
pub fn hooks_failing(n: usize) {
    gauge!(HOOKS_FAILING).set(n as f64);
}

/// A connection was opened (`+1`) or closed (`-1`).
pub fn connections(delta: f64) {
    gauge!(CONNECTIONS).increment(delta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(ACK_LATENCY.into()), &ACK_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(RATE_LIMIT_WAITS.into()), &WAIT_BUCKETS)
            })
            .map(PrometheusBuilder::build_recorder);
        let Ok(recorder) = recorder else {
            panic!("buckets refused")
        };
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            webhook_received(Received::Accepted, Duration::from_millis(3));
            webhook_received(Received::Duplicate, Duration::ZERO);
            event_routed("issue", true, Routed::Queued, Duration::from_millis(20));
            event_routed(
                "whatever_gitlab_adds",
                false,
                Routed::Ignored,
                Duration::ZERO,
            );
            webhook_rejected(Rejected::Token, Duration::ZERO);
            delivery("dev", Attempted::Retry, 1, Duration::ZERO);
            delivery("dev", Attempted::Delivered, 2, Duration::from_secs(2));
            rate_limit_wait("dev", Duration::from_millis(1500));
            outbox(&[OutboxGauge {
                channel: "dev".into(),
                pending: 3,
                dead: 1,
                oldest_age: Duration::from_secs(42),
            }]);
        });
        let text = handle.render();
        for line in [
            "gcb_webhooks_received_total{outcome=\"accepted\"} 1",
            "gcb_webhooks_received_total{outcome=\"duplicate\"} 1",
            "gcb_events_routed_total{kind=\"issue\",outcome=\"queued\"} 1",
            "gcb_events_routed_total{kind=\"unknown\",outcome=\"ignored\"} 1",
            "gcb_event_route_seconds_count 2",
            "gcb_webhooks_rejected_total{reason=\"token\"} 1",
            "gcb_deliveries_total{channel=\"dev\",outcome=\"retry\"} 1",
            "gcb_deliveries_total{channel=\"dev\",outcome=\"delivered\"} 1",
            "gcb_delivery_retries_total{channel=\"dev\"} 1",
            "gcb_rate_limit_wait_seconds_count{channel=\"dev\"} 1",
            "gcb_rate_limit_wait_seconds_bucket{channel=\"dev\",le=\"5\"} 1",
            "gcb_outbox_pending{channel=\"dev\"} 3",
            "gcb_outbox_dead_letters{channel=\"dev\"} 1",
            "gcb_outbox_oldest_pending_age_seconds{channel=\"dev\"} 42",
            "gcb_webhook_ack_seconds_bucket{outcome=\"accepted\",le=\"0.005\"} 1",
            "# HELP gcb_webhooks_rejected_total",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }
}
