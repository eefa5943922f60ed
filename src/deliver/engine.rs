//! The store interface: what the outbox asks of the engine that keeps events and messages.
//!
//! [`Engine`] is the list of operations `serve` needs from a store, each one transaction inside
//! the engine (a caller never holds a transaction open), answered once it is committed. The
//! SQLite engine ([`super::writer`]) runs them on one writer thread with group commit; a
//! PostgreSQL engine runs each on a pooled connection (docs/postgres.md). [`super::durable`]'s
//! `DurableOutbox` is the handle everything above `deliver` holds, whichever engine is behind it.

use super::bell::Bell;
use super::store::{
    ChannelStats, ChatRule, Conversation, ConversationWrite, EncodedEvent, EventFilter, EventRow,
    Ingested, Leased, ListedRow, Outcome, PruneBefore, Reader, RoutedEvent, RuleChange, StoreError,
    StoredEvent,
};
use super::{Batch, BoxFuture, Enqueued, OutboxError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Most messages one digest combines.
pub const DIGEST_MAX: usize = 20;

/// The wake-up signals of the channels, made on first use: a channel that appears while
/// serving (a chat that subscribed itself) gets one as its worker starts. The engine notifies a
/// channel after committing messages for it.
pub type Wakers = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

/// Whom an engine wakes after a commit: the router stage when new events were stored, and each
/// channel that got new messages.
#[derive(Debug, Clone, Default)]
pub struct Wake {
    /// The channels' signals.
    pub channels: Wakers,
    /// The router stage's bell.
    pub router: Arc<Bell>,
}

impl Wake {
    /// Rings the router stage's bell.
    pub fn router(&self) {
        self.router.ring();
    }

    /// Notifies the workers of `channels` (each once).
    pub fn channels(&self, mut channels: Vec<String>) {
        channels.sort();
        channels.dedup();
        let wake = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for c in channels {
            if let Some(n) = wake.get(&c) {
                n.notify_one();
            }
        }
    }
}

/// A lease request: up to `max` messages of `channel` to post one by one (ordering respected),
/// or, when more than `digest_over` are due (0: never), up to [`DIGEST_MAX`] of the oldest at
/// once, to be posted as one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The channel.
    pub channel: String,
    /// Now (unix ms).
    pub now: i64,
    /// How long the lease lasts per message leased (ms).
    pub lease_ms: i64,
    /// A backlog above this many due messages is digested (0: never).
    pub digest_over: usize,
    /// Most messages leased to post one by one.
    pub max: usize,
}

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

/// What the router stage reads, synchronously on its own thread and its own connection (so its
/// reads never wait behind the writer): new events, the chat rules in force, its memory.
pub trait RouterReads: Send {
    /// Events not routed yet with an id above `after`, oldest first, at most `limit`. An engine
    /// whose commits may land out of id order (several writers) returns the oldest new events
    /// whatever `after` says, so that an event committed late is not skipped; routing one again
    /// is harmless ([`Engine::routed`] leaves a routed event as it is).
    fn new_events(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Every chat rule.
    fn chat_rules(&self) -> Result<Vec<ChatRule>, StoreError>;
    /// The value the router last remembered under `key`.
    fn memory(&self, key: &str) -> Result<Option<String>, StoreError>;
}

impl RouterReads for Reader {
    fn new_events(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Reader::new_events(self, after, limit)
    }

    fn chat_rules(&self) -> Result<Vec<ChatRule>, StoreError> {
        Reader::chat_rules(self)
    }

    fn memory(&self, key: &str) -> Result<Option<String>, StoreError> {
        Reader::memory(self, key)
    }
}

/// The answer to a request for a posting slot of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Post now: the slot is taken (it counts even if the post then fails).
    Go,
    /// The window is full or the credential paused: ask again after this long.
    Wait(std::time::Duration),
}

/// What replicas on one database share about posting, beyond the rows: each credential's rate
/// window (never more than its budget in any minute across every replica) and its pauses, and
/// the leases a worker keeps while it waits for a slot. An engine used by one process only
/// (SQLite) has none: the in-process [`super::rate::RateLimiter`] is the whole window.
pub trait SharedWindow: Send + Sync + 'static {
    /// Takes a slot of `credential` (an opaque name, never the secret), at most `per_minute`
    /// in any window.
    fn take_slot<'a>(
        &'a self,
        credential: &'a str,
        per_minute: u32,
    ) -> BoxFuture<'a, Result<Slot, OutboxError>>;

    /// Pauses `credential` for `d` (a throttle answer), for every replica.
    fn pause<'a>(
        &'a self,
        credential: &'a str,
        d: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), OutboxError>>;

    /// Extends the lease of messages `ids` (all leased together) to `lease_ms` from `now`;
    /// `Ok(false)` when the lease was lost (it expired and another replica took them).
    fn renew(
        &self,
        ids: Vec<i64>,
        now: i64,
        lease_ms: i64,
    ) -> BoxFuture<'_, Result<bool, OutboxError>>;
}

/// The operations of a store engine. Each write is committed when its future resolves `Ok`;
/// an `Err` means nothing of it was committed.
pub trait Engine: Send + Sync + 'static {
    /// Stores a received delivery as a new event, or recognises its dedupe key as seen since
    /// `dedupe_since` (unix ms).
    fn ingest(
        &self,
        ev: EncodedEvent,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Ingested, OutboxError>>;

    /// Inserts messages directly (not tied to a stored event), deduplicated on the batch's key
    /// against keys seen since `dedupe_since`; none of the batch is kept if any of it fails.
    fn enqueue(
        &self,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<Enqueued, OutboxError>>;

    /// Marks each event routed and inserts its messages and its memory, together; an event
    /// routed already is left as it is.
    fn routed(&self, events: Vec<RoutedEvent>, now: i64) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// Leases messages to post (see [`LeaseRequest`]).
    fn lease(&self, req: LeaseRequest) -> BoxFuture<'_, Result<LeaseAnswer, OutboxError>>;

    /// Records the outcome of an attempt on message `id` at `now`.
    fn record(&self, id: i64, outcome: Outcome, now: i64)
        -> BoxFuture<'_, Result<(), OutboxError>>;

    /// Records the outcome of an attempt on message `id` together with the change it made to
    /// its conversation (a new root's reference, the root body's hash, its end), in one
    /// transaction: a root is never posted and recorded without its reference.
    fn record_conversation(
        &self,
        id: i64,
        outcome: Outcome,
        conversation: ConversationWrite,
        now: i64,
    ) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// The conversation of object `key` on `channel` (its thread's root), if one was started.
    fn conversation(
        &self,
        channel: String,
        key: String,
    ) -> BoxFuture<'_, Result<Option<Conversation>, OutboxError>>;

    /// Forgets what is older than `before` says (dedupe keys, routed events with their sent
    /// messages, quiet objects' conversations and memories); fire and forget, failures logged.
    fn prune(&self, before: PruneBefore);

    /// Proves a commit works now (the readiness probe writes a row).
    fn ping(&self, now: i64) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// Counts per channel.
    fn stats(&self) -> BoxFuture<'_, Result<Vec<ChannelStats>, OutboxError>>;

    /// Changes the chat rules (all of the change or none); returns the rows changed.
    fn change_rules(&self, change: RuleChange) -> BoxFuture<'_, Result<usize, OutboxError>>;

    /// Every chat rule.
    fn chat_rules(&self) -> BoxFuture<'_, Result<Vec<ChatRule>, OutboxError>>;

    /// When each channel last had a post (unix ms).
    fn last_posts(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>>;

    /// When the delivery with dedupe key `key` was last received (unix ms), if it is known.
    fn received_at(&self, key: String) -> BoxFuture<'_, Result<Option<i64>, OutboxError>>;

    /// Claims review reminder `name`'s run of scheduled instant `at` (unix ms) in one
    /// transaction: unless its last recorded run is at or after `at` (a restart, another
    /// replica), records `at` and queues `batch` (none when it has no messages: a skipped or
    /// empty run); returns whether it was claimed.
    fn reminder_run(
        &self,
        name: String,
        at: i64,
        batch: Batch,
        now: i64,
        dedupe_since: i64,
    ) -> BoxFuture<'_, Result<bool, OutboxError>>;

    /// Each review reminder's last recorded run (unix ms of its scheduled instant), by name.
    fn reminder_runs(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, OutboxError>>;

    /// Makes the dead letter `id` due again at `now` and wakes its channel; returns its
    /// channel, or `None` (nothing changed) when `id` is not a dead letter.
    fn retry_dead(&self, id: i64, now: i64) -> BoxFuture<'_, Result<Option<String>, OutboxError>>;

    /// Messages not sent yet, newest first, at most `limit`: only dead letters with
    /// `dead_only` (`outbox list`).
    fn list(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>>;

    /// Makes every dead letter due again at `now`, each object's head recomputed; how many
    /// (`outbox retry --all-dead`).
    fn retry_all_dead(&self, now: i64) -> BoxFuture<'_, Result<u64, OutboxError>>;

    /// Deletes the dead letters received before `before` (unix ms); how many (`outbox purge`).
    fn purge_dead(&self, before: i64) -> BoxFuture<'_, Result<u64, OutboxError>>;

    /// How many events are stored and not routed yet (the router's backlog).
    fn unrouted_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>>;

    /// Stored events newest first, as `events list` and the preview page show them.
    fn list_events(&self, filter: EventFilter)
        -> BoxFuture<'_, Result<Vec<EventRow>, OutboxError>>;

    /// Event `id` as received, if it is still kept.
    fn event(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredEvent>, OutboxError>>;

    /// Event `id`'s summary (state, what routing made of it), if it is still kept.
    fn event_row(&self, id: i64) -> BoxFuture<'_, Result<Option<EventRow>, OutboxError>>;

    /// The messages of event `id` with their state (`pending`, `sent`, `dead`), oldest first.
    fn event_messages(&self, id: i64) -> BoxFuture<'_, Result<Vec<ListedRow>, OutboxError>>;

    /// Ids of the events received at or after `since` (unix ms) that are not replays, oldest
    /// first (`events replay --since`).
    fn event_ids_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<i64>, OutboxError>>;

    /// Stores a replay of `of` as a new event (request id `routed.request_id`, no dedupe key,
    /// pointing at `of`), already routed as `routed` says, with its messages, in one
    /// transaction; returns the new event's id. It never is a `new` event, so no router routes
    /// it; its messages are inserted under their objects' order as a routed event's are.
    fn replay(
        &self,
        of: StoredEvent,
        routed: RoutedEvent,
        now: i64,
    ) -> BoxFuture<'_, Result<i64, OutboxError>>;

    /// Opens the router stage's reads (a connection of their own).
    fn router_reads(&self) -> Result<Box<dyn RouterReads>, OutboxError>;

    /// Whether this process leads the replicas on this store (routes events; watches hooks).
    /// A store of one process is always led by it.
    fn leads(&self) -> bool {
        true
    }

    /// What replicas share about posting, when several processes may post from this store.
    fn shared_window(&self) -> Option<Arc<dyn SharedWindow>> {
        None
    }
}
