//! The durable [`Outbox`]: one writer thread owns the SQLite [`Store`] and groups whatever
//! arrived meanwhile (received deliveries, routed events, leases, outcomes) into one
//! transaction, so throughput does not fall to one fsync per webhook. A webhook is acknowledged
//! only after its raw delivery is committed; the router stage ([`super::router`]) is woken then,
//! reads new events on its own connection, and hands back their messages, which are committed
//! together with the event's `routed` mark.

use super::bell::Bell;
use super::checkpoint::{self, Checkpointer};
use super::clock::Clock;
use super::store::{
    self, ChatRule, EncodedEvent, Ingested, Leased, Outcome, RawEvent, RoutedEvent, RuleChange,
    Store, StoreError,
};
use super::{Batch, BoxFuture, Enqueued, Outbox, OutboxError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most operations grouped into one transaction.
pub const MAX_GROUP: usize = 1024;

/// Settings of the durable outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableSettings {
    /// A repeated dedupe key within this many milliseconds is a duplicate.
    pub dedupe_window_ms: i64,
    /// `synchronous=FULL` (survives power loss) rather than `NORMAL` (survives a process crash).
    pub full_sync: bool,
}

enum Cmd {
    Ingest(
        EncodedEvent,
        i64,
        oneshot::Sender<Result<Ingested, OutboxError>>,
    ),
    Enqueue(Batch, i64, oneshot::Sender<Result<Enqueued, OutboxError>>),
    Routed(
        Vec<RoutedEvent>,
        i64,
        oneshot::Sender<Result<(), OutboxError>>,
    ),
    Lease {
        channel: String,
        now: i64,
        lease_ms: i64,
        digest_over: usize,
        max: usize,
        reply: oneshot::Sender<Result<LeaseAnswer, OutboxError>>,
    },
    Record(i64, Outcome, i64, oneshot::Sender<Result<(), OutboxError>>),
    Prune {
        dedupe_before: i64,
        events_before: i64,
    },
    /// Readiness: write the probe row, answer after the commit.
    Ping(i64, oneshot::Sender<Result<(), OutboxError>>),
    /// Counts per channel, for the metrics.
    Stats(oneshot::Sender<Result<Vec<store::ChannelStats>, OutboxError>>),
    /// A change to the chat rules; answered with the rows changed, after the commit.
    Rules(RuleChange, oneshot::Sender<Result<usize, OutboxError>>),
    /// Every chat rule (a read).
    ListRules(oneshot::Sender<Result<Vec<ChatRule>, OutboxError>>),
    /// When each channel last had a post (a read).
    LastPosts(oneshot::Sender<Result<Vec<(String, i64)>, OutboxError>>),
    /// Make one dead letter due again; answered with its channel, after the commit.
    RetryDead(
        i64,
        i64,
        oneshot::Sender<Result<Option<String>, OutboxError>>,
    ),
}

/// The wake-up signals of the channels, made on first use: a channel that appears while
/// serving (a chat that subscribed itself) gets one as its worker starts.
type Wakers = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

/// Most messages one digest combines.
pub const DIGEST_MAX: usize = 20;

/// What a lease request gives: messages to post now (one, or several for a digest), and when
/// the channel next has one due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAnswer {
    /// The messages to post now, oldest first: empty, some to post one by one, or a digest's worth.
    pub messages: Vec<Leased>,
    /// Whether `messages` are to be combined into one digest.
    pub digest: bool,
    /// When (unix ms) something is next due on the channel, if anything is pending.
    pub next_due: Option<i64>,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct DurableOutbox {
    tx: mpsc::UnboundedSender<Cmd>,
    wake: Wakers,
    router: Arc<Bell>,
    clock: Clock,
}

impl std::fmt::Debug for DurableOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableOutbox").finish_non_exhaustive()
    }
}

fn store_err(e: StoreError) -> OutboxError {
    OutboxError::Store(e.to_string())
}

impl DurableOutbox {
    /// Opens the store at `path` and starts the writer thread. `channels` are the channel names
    /// workers will ask for; each gets a wake-up signal when new messages for it are committed.
    /// Returns the handle and the thread's join handle (it ends when every handle is dropped).
    pub fn open(
        path: &Path,
        settings: DurableSettings,
        channels: &[String],
        clock: Clock,
    ) -> Result<(DurableOutbox, std::thread::JoinHandle<()>), OutboxError> {
        let mut store = Store::open(path, settings.full_sync).map_err(store_err)?;
        let released = store.clear_leases().map_err(store_err)?;
        if released > 0 {
            tracing::info!(
                released,
                "picked up messages left in flight by the previous run"
            );
        }
        // Without its own checkpointer the store checkpoints inside commits, as SQLite does.
        let checkpointer = match Checkpointer::spawn(path) {
            Ok(c) => {
                store
                    .manual_checkpoints(checkpoint::LOG_PAGES, c.trigger())
                    .map_err(store_err)?;
                Some(c)
            }
            Err(error) => {
                tracing::warn!(%error, "checkpointing inside commits instead");
                None
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let wake: Wakers = Arc::new(Mutex::new(
            channels
                .iter()
                .map(|c| (c.clone(), Arc::new(Notify::new())))
                .collect(),
        ));
        let router = Arc::new(Bell::default());
        let thread_wake = Arc::clone(&wake);
        let thread_router = Arc::clone(&router);
        let handle = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                writer(store, rx, settings, thread_wake, thread_router);
                // After the writer's last commit: the checkpointer copies it and stops.
                drop(checkpointer);
            })
            .map_err(|e| OutboxError::Store(format!("cannot start the writer thread: {e}")))?;
        Ok((
            DurableOutbox {
                tx,
                wake,
                router,
                clock,
            },
            handle,
        ))
    }

    /// Rung after every commit that stored new events (the router stage waits on it).
    pub fn router_bell(&self) -> Arc<Bell> {
        Arc::clone(&self.router)
    }

    /// The clock the outbox stamps rows with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    async fn call<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, OutboxError>>) -> Cmd,
    ) -> Result<T, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(cmd(reply)).map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }

    /// Stores a received delivery as a new event (committed when this resolves).
    pub async fn ingest_at(&self, ev: RawEvent, now: i64) -> Result<Ingested, OutboxError> {
        let ev = ev.encode();
        self.call(|reply| Cmd::Ingest(ev, now, reply)).await
    }

    /// Commits routed events, from the router stage's thread (outside the async runtime): each
    /// is marked routed and its messages inserted, together.
    pub fn routed_blocking(&self, events: Vec<RoutedEvent>) -> Result<(), OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Routed(events, self.clock.now_ms(), reply))
            .map_err(|_| OutboxError::Closed)?;
        rx.blocking_recv().map_err(|_| OutboxError::Closed)?
    }

    /// The wake-up signal of `channel`.
    pub fn waker(&self, channel: &str) -> Arc<Notify> {
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(wake.entry(channel.to_string()).or_default())
    }

    /// Changes the chat rules (committed when this resolves); returns the rows changed.
    pub async fn change_rules(&self, change: RuleChange) -> Result<usize, OutboxError> {
        self.call(|reply| Cmd::Rules(change, reply)).await
    }

    /// Every chat rule.
    pub async fn chat_rules(&self) -> Result<Vec<ChatRule>, OutboxError> {
        self.call(Cmd::ListRules).await
    }

    /// When each channel last had a post (unix ms).
    pub async fn last_posts(&self) -> Result<Vec<(String, i64)>, OutboxError> {
        self.call(Cmd::LastPosts).await
    }

    /// Makes the dead letter `id` due again now (committed when this resolves) and wakes its
    /// channel's worker; returns its channel, or `None` when `id` is not (or no longer) a dead
    /// letter, in which case nothing changed.
    pub async fn retry_dead(&self, id: i64) -> Result<Option<String>, OutboxError> {
        let now = self.clock.now_ms();
        self.call(|reply| Cmd::RetryDead(id, now, reply)).await
    }

    /// Leases up to `max` messages of `channel` to post one by one (ordering respected). When
    /// more than `digest_over` messages are due (0: never), leases up to [`DIGEST_MAX`] of the
    /// oldest at once instead, to be posted as one digest.
    pub async fn lease(
        &self,
        channel: &str,
        now: i64,
        lease_ms: i64,
        digest_over: usize,
        max: usize,
    ) -> Result<LeaseAnswer, OutboxError> {
        let channel = channel.to_string();
        self.call(|reply| Cmd::Lease {
            channel,
            now,
            lease_ms,
            digest_over,
            max,
            reply,
        })
        .await
    }

    /// Records the outcome of an attempt (committed when this resolves).
    pub async fn record(&self, id: i64, outcome: Outcome) -> Result<(), OutboxError> {
        let now = self.clock.now_ms();
        self.call(|reply| Cmd::Record(id, outcome, now, reply))
            .await
    }

    /// Forgets dedupe keys older than `dedupe_before` and routed events (with their sent
    /// messages) received before `events_before` (unix ms); fire and forget.
    pub fn prune(&self, dedupe_before: i64, events_before: i64) {
        let _ = self.tx.send(Cmd::Prune {
            dedupe_before,
            events_before,
        });
    }

    /// Enqueues messages directly, now: deduplicated on the batch's key, not tied to a stored
    /// event.
    pub async fn enqueue(&self, batch: Batch) -> Result<Enqueued, OutboxError> {
        self.enqueue_at(batch, self.clock.now_ms()).await
    }

    /// Enqueues messages directly, with an explicit receive time (unix ms): deduplicated on the
    /// batch's key, not tied to a stored event.
    pub async fn enqueue_at(&self, batch: Batch, now: i64) -> Result<Enqueued, OutboxError> {
        self.call(|reply| Cmd::Enqueue(batch, now, reply)).await
    }
}

impl Outbox for DurableOutbox {
    fn ingest(&self, ev: RawEvent) -> BoxFuture<'_, Result<Ingested, OutboxError>> {
        Box::pin(self.ingest_at(ev, self.clock.now_ms()))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), OutboxError>> {
        let now = self.clock.now_ms();
        Box::pin(self.call(move |reply| Cmd::Ping(now, reply)))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<store::ChannelStats>, OutboxError>> {
        Box::pin(self.call(Cmd::Stats))
    }
}

/// A reply to send once the transaction is committed.
enum Reply {
    Ingest(
        oneshot::Sender<Result<Ingested, OutboxError>>,
        Result<Ingested, OutboxError>,
    ),
    Enqueue(
        oneshot::Sender<Result<Enqueued, OutboxError>>,
        Result<Enqueued, OutboxError>,
    ),
    Lease(
        oneshot::Sender<Result<LeaseAnswer, OutboxError>>,
        Result<LeaseAnswer, OutboxError>,
    ),
    Record(
        oneshot::Sender<Result<(), OutboxError>>,
        Result<(), OutboxError>,
    ),
    Count(
        oneshot::Sender<Result<usize, OutboxError>>,
        Result<usize, OutboxError>,
    ),
    Retried(
        oneshot::Sender<Result<Option<String>, OutboxError>>,
        Result<Option<String>, OutboxError>,
    ),
}

impl Reply {
    fn fail(self, e: &OutboxError) {
        let err = || OutboxError::Store(e.to_string());
        match self {
            Reply::Ingest(tx, _) => drop(tx.send(Err(err()))),
            Reply::Enqueue(tx, _) => drop(tx.send(Err(err()))),
            Reply::Lease(tx, _) => drop(tx.send(Err(err()))),
            Reply::Record(tx, _) => drop(tx.send(Err(err()))),
            Reply::Count(tx, _) => drop(tx.send(Err(err()))),
            Reply::Retried(tx, _) => drop(tx.send(Err(err()))),
        }
    }

    fn send(self) {
        match self {
            Reply::Ingest(tx, r) => drop(tx.send(r)),
            Reply::Enqueue(tx, r) => drop(tx.send(r)),
            Reply::Lease(tx, r) => drop(tx.send(r)),
            Reply::Record(tx, r) => drop(tx.send(r)),
            Reply::Count(tx, r) => drop(tx.send(r)),
            Reply::Retried(tx, r) => drop(tx.send(r)),
        }
    }
}

fn writer(
    mut store: Store,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    settings: DurableSettings,
    wake: Wakers,
    router: Arc<Bell>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut woken: Vec<String> = Vec::new();
        let mut new_events = false;
        let result = (|| -> Result<(), StoreError> {
            let mut tx = store.transaction()?;
            for cmd in group.drain(..) {
                match cmd {
                    Cmd::Ingest(ev, now, reply) => {
                        // A failure fails the whole group, so no dedupe key is committed without
                        // its event (GitLab's re-send must not be taken for a duplicate). Cheaper
                        // than a savepoint per webhook, and as rare as a full disk.
                        let since = now - settings.dedupe_window_ms;
                        let r = store::insert_encoded(&tx, &ev, now, since)?;
                        new_events |= matches!(r, Ingested::Accepted(_));
                        replies.push(Reply::Ingest(reply, Ok(r)));
                    }
                    Cmd::Routed(events, now, reply) => {
                        // No savepoint: a failure here fails the whole group (every webhook in
                        // it is refused and re-sent by GitLab, every event stays `new`), which
                        // leaves no event routed with half of its messages.
                        for ev in &events {
                            if store::mark_routed(&tx, ev, now)? {
                                woken.extend(ev.deliveries.iter().map(|d| d.channel.clone()));
                            }
                        }
                        replies.push(Reply::Record(reply, Ok(())));
                    }
                    Cmd::Enqueue(batch, now, reply) => {
                        let since = now - settings.dedupe_window_ms;
                        // A savepoint per webhook: a failed insert leaves none of its rows (nor
                        // its dedupe key) behind, so GitLab's re-send is not taken for a duplicate.
                        let mut sp = tx.savepoint()?;
                        let r = store::insert_batch(&sp, &batch, now, since).map_err(store_err);
                        if r.is_ok() {
                            sp.commit()?;
                        } else {
                            sp.rollback()?;
                        }
                        if matches!(r, Ok(Enqueued::Accepted)) {
                            woken.extend(batch.deliveries.iter().map(|d| d.channel.clone()));
                        }
                        replies.push(Reply::Enqueue(reply, r));
                    }
                    Cmd::Lease {
                        channel,
                        now,
                        lease_ms,
                        digest_over,
                        max,
                        reply,
                    } => {
                        let r = (|| {
                            let mut messages = Vec::new();
                            if digest_over > 0
                                && store::due_count(&tx, &channel, now, digest_over as u64 + 1)?
                                    > digest_over as u64
                            {
                                messages =
                                    store::lease_prefix(&tx, &channel, now, lease_ms, DIGEST_MAX)?;
                            }
                            let digest = !messages.is_empty();
                            if !digest {
                                messages =
                                    store::lease_batch(&tx, &channel, now, lease_ms, max.max(1))?;
                            }
                            // Only asked for when there is nothing to do now.
                            let next_due = if messages.is_empty() {
                                store::next_due(&tx, &channel)?
                            } else {
                                None
                            };
                            Ok(LeaseAnswer {
                                messages,
                                digest,
                                next_due,
                            })
                        })();
                        replies.push(Reply::Lease(reply, r.map_err(store_err)));
                    }
                    Cmd::Record(id, outcome, now, reply) => {
                        let r = store::record(&tx, id, &outcome, now).map_err(store_err);
                        replies.push(Reply::Record(reply, r));
                    }
                    Cmd::Prune {
                        dedupe_before,
                        events_before,
                    } => {
                        if let Err(error) = store::prune_dedupe(&tx, dedupe_before) {
                            tracing::warn!(%error, "cannot prune old dedupe keys");
                        }
                        match store::prune_events(&tx, events_before) {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!(events = n, "pruned events past their retention")
                            }
                            Err(error) => tracing::warn!(%error, "cannot prune old events"),
                        }
                    }
                    Cmd::Ping(now, reply) => {
                        let r = store::touch(&tx, now).map_err(store_err);
                        replies.push(Reply::Record(reply, r));
                    }
                    Cmd::Stats(reply) => {
                        // A read: answered at once, it need not wait for the commit.
                        let _ = reply.send(store::stats(&tx).map_err(store_err));
                    }
                    Cmd::Rules(change, reply) => {
                        // A savepoint: a failed import leaves no half of itself behind, and
                        // does not fail the webhooks committed in the same group.
                        let mut sp = tx.savepoint()?;
                        let r = store::change_rules(&sp, &change).map_err(store_err);
                        if r.is_ok() {
                            sp.commit()?;
                        } else {
                            sp.rollback()?;
                        }
                        replies.push(Reply::Count(reply, r));
                    }
                    Cmd::ListRules(reply) => {
                        let _ = reply.send(store::chat_rules(&tx).map_err(store_err));
                    }
                    Cmd::LastPosts(reply) => {
                        let _ = reply.send(store::last_posts(&tx).map_err(store_err));
                    }
                    Cmd::RetryDead(id, now, reply) => {
                        let mut sp = tx.savepoint()?;
                        let r = store::retry_dead_one(&sp, id, now).map_err(store_err);
                        if r.is_ok() {
                            sp.commit()?;
                        } else {
                            sp.rollback()?;
                        }
                        if let Ok(Some(channel)) = &r {
                            woken.push(channel.clone());
                        }
                        replies.push(Reply::Retried(reply, r));
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                replies.into_iter().for_each(Reply::send);
                if new_events {
                    router.ring();
                }
                woken.sort();
                woken.dedup();
                let wake = wake.lock().unwrap_or_else(|p| p.into_inner());
                for c in woken {
                    if let Some(n) = wake.get(&c) {
                        n.notify_one();
                    }
                }
            }
            Err(e) => {
                let e = store_err(e);
                tracing::error!(error = %e, "outbox commit failed; the webhooks in it were refused");
                replies.into_iter().for_each(|r| r.fail(&e));
            }
        }
    }
    tracing::debug!("outbox writer stopped");
}
