//! The durable [`Outbox`]: the handle the server, the router stage, the workers, the extension
//! and the hook watch hold, whichever store [`Engine`] is behind it (today SQLite's writer
//! thread, [`super::writer`]). A webhook is acknowledged only after its raw delivery is
//! committed; the router stage ([`super::router`]) is woken then, reads new events, and hands
//! back their messages, which are committed together with the event's `routed` mark. The
//! outbox stamps rows with its [`Clock`] and turns the dedupe window into a time.

use super::bell::Bell;
use super::clock::Clock;
use super::engine::{Engine, LeaseRequest, RouterReads, SharedWindow, Wake};
pub use super::engine::{LeaseAnswer, DIGEST_MAX};
use super::pg::{Migrated, PgEngine, PgError, PgOptions};
use super::store::{
    self, ChatRule, Conversation, ConversationWrite, EventFilter, EventRow, Ingested, ListedRow,
    Outcome, PruneBefore, RawEvent, RoutedEvent, RuleChange, StoredEvent,
};
use super::writer::SqliteEngine;
use super::{Batch, BoxFuture, Enqueued, Outbox, OutboxError};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Settings of the durable outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableSettings {
    /// A repeated dedupe key within this many milliseconds is a duplicate.
    pub dedupe_window_ms: i64,
    /// `synchronous=FULL` (survives power loss) rather than `NORMAL` (survives a process crash).
    pub full_sync: bool,
}

/// The outbox everything above `deliver` holds: the store's [`Engine`], the wake-up signals
/// of the router stage and the channels, and the clock rows are stamped with. Cheap to clone.
#[derive(Clone)]
pub struct DurableOutbox {
    engine: Arc<dyn Engine>,
    wake: Wake,
    clock: Clock,
    dedupe_window_ms: i64,
    /// Webhooks handed to [`DurableOutbox::ingest_at`] so far (what the router stage yields to).
    received: Arc<AtomicU64>,
}

impl std::fmt::Debug for DurableOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableOutbox").finish_non_exhaustive()
    }
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
        let wake = wake_for(channels);
        let (engine, handle) = SqliteEngine::open(path, settings.full_sync, wake.clone())?;
        Ok((
            DurableOutbox {
                engine: Arc::new(engine),
                wake,
                clock,
                dedupe_window_ms: settings.dedupe_window_ms,
                received: Arc::default(),
            },
            handle,
        ))
    }

    /// Opens the SQLite store at `path` for an operator's command beside a daemon that may be
    /// running on it ([`SqliteEngine::attach`]: no lease is released). Nothing is woken: the
    /// daemon finds what the command committed by its own polling. Returns the handle and the
    /// writer thread's join handle (it ends when every handle is dropped).
    pub fn attach(
        path: &Path,
        settings: DurableSettings,
        clock: Clock,
    ) -> Result<(DurableOutbox, std::thread::JoinHandle<()>), OutboxError> {
        let (engine, thread) = SqliteEngine::attach(path, settings.full_sync)?;
        let outbox = DurableOutbox {
            engine: Arc::new(engine),
            wake: Wake::default(),
            clock,
            dedupe_window_ms: settings.dedupe_window_ms,
            received: Arc::default(),
        };
        Ok((outbox, thread))
    }

    /// Connects to the PostgreSQL store `opts` names (migrating it first, see
    /// [`super::pg::migrate`]). `channels` as for [`DurableOutbox::open`].
    pub async fn open_postgres(
        opts: &PgOptions,
        dedupe_window_ms: i64,
        channels: &[String],
        clock: Clock,
    ) -> Result<(DurableOutbox, Migrated), PgError> {
        let wake = wake_for(channels);
        let (engine, migrated) = PgEngine::connect(opts, wake.clone()).await?;
        Ok((
            DurableOutbox {
                engine: Arc::new(engine),
                wake,
                clock,
                dedupe_window_ms,
                received: Arc::default(),
            },
            migrated,
        ))
    }

    /// Rung after every commit that stored new events (the router stage waits on it).
    pub fn router_bell(&self) -> Arc<Bell> {
        Arc::clone(&self.wake.router)
    }

    /// Opens the router stage's reads, on a connection of their own.
    pub fn router_reads(&self) -> Result<Box<dyn RouterReads>, OutboxError> {
        self.engine.router_reads()
    }

    /// The clock the outbox stamps rows with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Stores a received delivery as a new event (committed when this resolves).
    pub async fn ingest_at(&self, ev: RawEvent, now: i64) -> Result<Ingested, OutboxError> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let ev = ev.encode();
        self.engine
            .ingest(ev, now, now - self.dedupe_window_ms)
            .await
    }

    /// How many webhooks this process has handed to the store so far: the router stage compares
    /// two readings to tell whether webhooks are arriving.
    pub fn webhooks_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Commits routed events: each is marked routed and its messages inserted, together.
    pub async fn routed(&self, events: Vec<RoutedEvent>) -> Result<(), OutboxError> {
        self.engine.routed(events, self.clock.now_ms()).await
    }

    /// The wake-up signal of `channel`.
    pub fn waker(&self, channel: &str) -> Arc<Notify> {
        let mut wake = self.wake.channels.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(wake.entry(channel.to_string()).or_default())
    }

    /// Changes the chat rules (committed when this resolves); returns the rows changed.
    pub async fn change_rules(&self, change: RuleChange) -> Result<usize, OutboxError> {
        self.engine.change_rules(change).await
    }

    /// Every chat rule.
    pub async fn chat_rules(&self) -> Result<Vec<ChatRule>, OutboxError> {
        self.engine.chat_rules().await
    }

    /// When the delivery with dedupe key `key` was last received (unix ms), if it is known.
    pub async fn received_at(&self, key: &str) -> Result<Option<i64>, OutboxError> {
        self.engine.received_at(key.to_string()).await
    }

    /// When each channel last had a post (unix ms).
    pub async fn last_posts(&self) -> Result<Vec<(String, i64)>, OutboxError> {
        self.engine.last_posts().await
    }

    /// Makes the dead letter `id` due again now (committed when this resolves) and wakes its
    /// channel's worker; returns its channel, or `None` when `id` is not (or no longer) a dead
    /// letter, in which case nothing changed.
    pub async fn retry_dead(&self, id: i64) -> Result<Option<String>, OutboxError> {
        let now = self.clock.now_ms();
        self.engine.retry_dead(id, now).await
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
        self.engine
            .lease(LeaseRequest {
                channel: channel.to_string(),
                now,
                lease_ms,
                digest_over,
                max,
            })
            .await
    }

    /// Extends the lease of `ids` to `lease_ms` from `now` when the store is shared by
    /// replicas; `Ok(false)` when it was lost. A store of one process keeps its leases anyway.
    pub async fn renew(&self, ids: Vec<i64>, now: i64, lease_ms: i64) -> Result<bool, OutboxError> {
        match self.engine.shared_window() {
            Some(w) => w.renew(ids, now, lease_ms).await,
            None => Ok(true),
        }
    }

    /// Whether this replica leads (routes, watches hooks); always, on SQLite.
    pub fn leads(&self) -> bool {
        self.engine.leads()
    }

    /// What replicas on this store share about posting (`None` for SQLite).
    pub fn shared_window(&self) -> Option<Arc<dyn SharedWindow>> {
        self.engine.shared_window()
    }

    /// Records the outcome of an attempt (committed when this resolves).
    pub async fn record(&self, id: i64, outcome: Outcome) -> Result<(), OutboxError> {
        let now = self.clock.now_ms();
        self.engine.record(id, outcome, now).await
    }

    /// Records the outcome of an attempt with the change it made to its conversation, in one
    /// transaction (committed when this resolves).
    pub async fn record_conversation(
        &self,
        id: i64,
        outcome: Outcome,
        conversation: ConversationWrite,
    ) -> Result<(), OutboxError> {
        let now = self.clock.now_ms();
        self.engine
            .record_conversation(id, outcome, conversation, now)
            .await
    }

    /// The conversation of object `key` on `channel`, if one was started.
    pub async fn conversation(
        &self,
        channel: &str,
        key: &str,
    ) -> Result<Option<Conversation>, OutboxError> {
        self.engine
            .conversation(channel.to_string(), key.to_string())
            .await
    }

    /// Forgets what is older than `before` says: dedupe keys, routed events (with their sent
    /// messages), and the conversations and memories of quiet objects; fire and forget.
    pub fn prune(&self, before: PruneBefore) {
        self.engine.prune(before);
    }

    /// Messages not sent yet, newest first (only dead letters with `dead_only`).
    pub async fn list(&self, dead_only: bool, limit: usize) -> Result<Vec<ListedRow>, OutboxError> {
        self.engine.list(dead_only, limit).await
    }

    /// Makes every dead letter due again now; how many.
    pub async fn retry_all_dead(&self) -> Result<u64, OutboxError> {
        self.engine.retry_all_dead(self.clock.now_ms()).await
    }

    /// Deletes the dead letters received before `before` (unix ms); how many.
    pub async fn purge_dead(&self, before: i64) -> Result<u64, OutboxError> {
        self.engine.purge_dead(before).await
    }

    /// How many events are stored and not routed yet.
    pub async fn unrouted_count(&self) -> Result<u64, OutboxError> {
        self.engine.unrouted_count().await
    }

    /// Stored events newest first, as `filter` selects them.
    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<EventRow>, OutboxError> {
        self.engine.list_events(filter).await
    }

    /// Event `id` as received, if it is still kept.
    pub async fn event(&self, id: i64) -> Result<Option<StoredEvent>, OutboxError> {
        self.engine.event(id).await
    }

    /// Event `id`'s summary, if it is still kept.
    pub async fn event_row(&self, id: i64) -> Result<Option<EventRow>, OutboxError> {
        self.engine.event_row(id).await
    }

    /// The messages of event `id`, oldest first.
    pub async fn event_messages(&self, id: i64) -> Result<Vec<ListedRow>, OutboxError> {
        self.engine.event_messages(id).await
    }

    /// Ids of the events (not replays) received at or after `since` (unix ms), oldest first.
    pub async fn event_ids_since(&self, since: i64) -> Result<Vec<i64>, OutboxError> {
        self.engine.event_ids_since(since).await
    }

    /// Stores a replay of `of`, routed as `routed` says (its request id, its messages), at
    /// `now`; returns the new event's id (see [`Engine::replay`]).
    pub async fn replay(
        &self,
        of: StoredEvent,
        routed: RoutedEvent,
        now: i64,
    ) -> Result<i64, OutboxError> {
        self.engine.replay(of, routed, now).await
    }

    /// Enqueues messages directly, now: deduplicated on the batch's key, not tied to a stored
    /// event.
    pub async fn enqueue(&self, batch: Batch) -> Result<Enqueued, OutboxError> {
        self.enqueue_at(batch, self.clock.now_ms()).await
    }

    /// Enqueues messages directly, with an explicit receive time (unix ms): deduplicated on the
    /// batch's key, not tied to a stored event.
    pub async fn enqueue_at(&self, batch: Batch, now: i64) -> Result<Enqueued, OutboxError> {
        self.engine
            .enqueue(batch, now, now - self.dedupe_window_ms)
            .await
    }

    /// Claims review reminder `name`'s run of scheduled instant `at` (unix ms) and queues
    /// `batch` with it, once: false when that run (or a later one) is already recorded.
    pub async fn reminder_run(
        &self,
        name: &str,
        at: i64,
        batch: Batch,
    ) -> Result<bool, OutboxError> {
        let now = self.clock.now_ms();
        self.engine
            .reminder_run(
                name.to_string(),
                at,
                batch,
                now,
                now - self.dedupe_window_ms,
            )
            .await
    }

    /// Each review reminder's last recorded run (unix ms of its scheduled instant), by name.
    pub async fn reminder_runs(&self) -> Result<Vec<(String, i64)>, OutboxError> {
        self.engine.reminder_runs().await
    }
}

/// The wake-up signals of the router stage and of `channels`.
fn wake_for(channels: &[String]) -> Wake {
    Wake {
        channels: Arc::new(std::sync::Mutex::new(
            channels
                .iter()
                .map(|c| (c.clone(), Arc::new(Notify::new())))
                .collect(),
        )),
        router: Arc::new(Bell::default()),
    }
}

impl Outbox for DurableOutbox {
    fn ingest(&self, ev: RawEvent) -> BoxFuture<'_, Result<Ingested, OutboxError>> {
        Box::pin(self.ingest_at(ev, self.clock.now_ms()))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), OutboxError>> {
        self.engine.ping(self.clock.now_ms())
    }

    fn stats(&self) -> BoxFuture<'_, Result<Vec<store::ChannelStats>, OutboxError>> {
        self.engine.stats()
    }
}
