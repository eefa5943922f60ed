//! The in-process outbox: one queue and one worker per channel.
//!
//! Each channel's worker posts its messages one at a time, in the order received, retrying a
//! failed post (with backoff, `Retry-After` and the credential's rate limit) before the next, so
//! per-object order holds. Messages are held in memory only: what is queued when the process
//! stops is lost (the durable outbox replaces this).

use super::rate::RateLimiter;
use super::sender::{Attempt, Sender};
use super::{Batch, BoxFuture, Delivery, Endpoint, Enqueued, Outbox, OutboxError, RetryPolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages a channel's queue holds before new webhooks are refused (503, GitLab re-sends).
pub const QUEUE_CAPACITY: usize = 10_000;
/// How long a dedupe key is remembered.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most dedupe keys remembered; the oldest are forgotten first.
pub const DEDUPE_MAX_KEYS: usize = 100_000;
/// Pause of a credential after a throttle answer without `Retry-After`.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// A channel as the worker sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Channel name.
    pub name: String,
    /// Where to post.
    pub endpoint: Endpoint,
    /// The budget of the channel's credential (shared between channels with one credential).
    pub limiter: Arc<RateLimiter>,
}

/// In-memory [`Outbox`] with a worker per channel.
#[derive(Debug)]
pub struct MemoryOutbox {
    queues: HashMap<String, mpsc::Sender<Delivery>>,
    seen: Mutex<HashMap<String, Instant>>,
}

impl MemoryOutbox {
    /// Starts one worker per target on `tracker`; workers stop when `cancel` fires.
    pub fn start(
        targets: Vec<Target>,
        sender: Sender,
        policy: RetryPolicy,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> MemoryOutbox {
        let mut queues = HashMap::new();
        for t in targets {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            queues.insert(t.name.clone(), tx);
            tracker.spawn(worker(t, rx, sender.clone(), policy, cancel.clone()));
        }
        MemoryOutbox {
            queues,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// True if `key` was seen within the window (and remembers it otherwise).
    fn is_duplicate(&self, key: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if seen
            .get(key)
            .is_some_and(|t| now.duration_since(*t) < DEDUPE_WINDOW)
        {
            return true;
        }
        if seen.len() >= DEDUPE_MAX_KEYS {
            seen.retain(|_, t| now.duration_since(*t) < DEDUPE_WINDOW);
            if seen.len() >= DEDUPE_MAX_KEYS {
                if let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                    seen.remove(&oldest);
                }
            }
        }
        seen.insert(key.to_string(), now);
        false
    }
}

impl Outbox for MemoryOutbox {
    fn enqueue(&self, batch: Batch) -> BoxFuture<'_, Result<Enqueued, OutboxError>> {
        Box::pin(async move {
            if let Some(key) = &batch.dedupe_key {
                if self.is_duplicate(key) {
                    return Ok(Enqueued::Duplicate);
                }
            }
            // Check room for the whole batch first, so a webhook is taken whole or not at all.
            for d in &batch.deliveries {
                let q = self.queues.get(&d.channel).ok_or(OutboxError::Closed)?;
                if q.capacity() == 0 {
                    return Err(OutboxError::Full(QUEUE_CAPACITY));
                }
            }
            for d in batch.deliveries {
                let q = self.queues.get(&d.channel).ok_or(OutboxError::Closed)?;
                q.try_send(d).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => OutboxError::Full(QUEUE_CAPACITY),
                    mpsc::error::TrySendError::Closed(_) => OutboxError::Closed,
                })?;
            }
            Ok(Enqueued::Accepted)
        })
    }
}

async fn worker(
    target: Target,
    mut rx: mpsc::Receiver<Delivery>,
    sender: Sender,
    policy: RetryPolicy,
    cancel: CancellationToken,
) {
    loop {
        let delivery = tokio::select! {
            _ = cancel.cancelled() => break,
            d = rx.recv() => match d { Some(d) => d, None => break },
        };
        if !deliver(&target, &delivery, &sender, &policy, &cancel).await {
            break;
        }
    }
    let left = rx.len();
    if left > 0 {
        tracing::warn!(channel = %target.name, left, "stopping with undelivered messages");
    }
}

/// Posts one delivery until it succeeds, fails for good or runs out of attempts.
/// Returns false when cancelled mid-way.
async fn deliver(
    target: &Target,
    d: &Delivery,
    sender: &Sender,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
) -> bool {
    for attempt in 1..=policy.max_attempts {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = target.limiter.acquire() => {}
        }
        let result = tokio::select! {
            _ = cancel.cancelled() => return false,
            r = sender.post(&target.endpoint, &d.body) => r,
        };
        match result {
            Attempt::Delivered(status) => {
                tracing::info!(delivery = %d.id, channel = %d.channel, status, attempt, "delivered");
                return true;
            }
            Attempt::Permanent { status, reason } => {
                tracing::error!(delivery = %d.id, channel = %d.channel, status, %reason, "rejected by the chat endpoint; not retried");
                return true;
            }
            Attempt::Retry {
                status,
                retry_after,
                throttled,
                reason,
            } => {
                if attempt == policy.max_attempts {
                    tracing::error!(delivery = %d.id, channel = %d.channel, ?status, %reason, attempt, "giving up after the last attempt");
                    return true;
                }
                let wait = policy.delay(attempt, retry_after);
                if throttled {
                    target.limiter.pause(
                        retry_after
                            .unwrap_or(THROTTLE_PAUSE)
                            .min(policy.max_backoff)
                            .max(wait),
                    );
                }
                tracing::warn!(delivery = %d.id, channel = %d.channel, ?status, %reason, attempt, wait_ms = wait.as_millis() as u64, "post failed; will retry");
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    true
}
