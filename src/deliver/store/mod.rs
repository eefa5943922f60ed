//! The durable outbox store on SQLite (WAL) through rusqlite, written from one writer thread:
//! the rows both engines share (here: `Store`, `Reader`, the row types and errors) and the
//! SQLite dialect of each operation, arranged by concern exactly as the PostgreSQL engine's
//! ([`super::pg`]) so that one operation's two dialects sit at the same path: [`schema`] (the
//! schema and its migrations), [`events`] (ingest, dedupe, stored events, routed marks,
//! listing), [`messages`] (messages, leases, outcomes, dead letters, stats, purge), [`rules`]
//! (chat rules), [`memory`](mod@memory) (the router's memory), [`reminders`] (review
//! reminders' last runs) and [`conversations`] (a chat's root message per object, for threads).
//! A new concern gets a file of the same name in both engines.
//!
//! Two tables carry the pipeline. `events` holds each webhook delivery as received (the headers
//! that matter and the body bytes): `new` until the router stage has turned it into messages,
//! then `routed`, kept for `events.retention_days` for `events list/show/replay`. `messages` holds
//! what goes to each channel: a row is `pending` until posted (then `sent`, kept as long as its
//! event) or `dead` (given up, kept for inspection). The oldest pending message of each
//! `(channel, ordering_key)` carries `head = 1`; only heads are leased, so a lease costs the
//! number of objects waiting, not the number of messages. Rows of one `(channel, ordering_key)` are handed out strictly in id order: a row
//! is leased only when no older pending row of the same key exists, so a retrying message holds
//! back later messages about the same object and nothing else. Schema changes are versioned with
//! `PRAGMA user_version`.

pub mod conversations;
pub mod events;
pub mod memory;
pub mod messages;
pub mod reminders;
pub mod rules;
pub mod schema;
#[cfg(test)]
mod tests;

pub use events::*;
pub use memory::*;
pub use messages::*;
pub use reminders::*;
pub use rules::*;

use rusqlite::{Connection, Transaction};
use std::path::Path;

/// Prepared statements kept per connection: more than the writer uses.
const STATEMENT_CACHE: usize = 64;

/// Headers of a webhook kept with its body: what routing, dedupe and `events show` need.
pub const KEPT_HEADERS: [&str; 6] = [
    "x-gitlab-event",
    "idempotency-key",
    "x-gitlab-webhook-uuid",
    "x-gitlab-event-uuid",
    "x-gitlab-instance",
    "user-agent",
];

/// A store failure, with SQLite's message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl StoreError {
    /// A store error saying `message` (another engine's failure, in the same type).
    pub fn from_message(message: String) -> StoreError {
        StoreError(message)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// What a pruning pass forgets: what is older than each of these instants (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBefore {
    /// Dedupe keys received before it.
    pub dedupe: i64,
    /// Routed events received before it, and messages sent before it.
    pub events: i64,
    /// Conversations and the router's memories last changed before it (quiet objects).
    pub quiet: i64,
}

/// What a pruning pass forgot: rows of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Routed events.
    pub events: u64,
    /// The router's memories of quiet objects.
    pub memories: u64,
    /// Conversations of quiet objects.
    pub conversations: u64,
}

impl Pruned {
    /// Logs what the pass forgot, if anything (the same lines on every engine).
    pub fn log(&self) {
        if self.events > 0 {
            tracing::info!(events = self.events, "pruned events past their retention");
        }
        if self.memories + self.conversations > 0 {
            tracing::info!(
                memories = self.memories,
                conversations = self.conversations,
                "forgot quiet objects' memories and conversations"
            );
        }
    }
}

/// A conversation: the root message in `channel` of the thread about object `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The channel.
    pub channel: String,
    /// The object's key (the messages' ordering key).
    pub key: String,
    /// The chat's reference to the root message (opaque to the store: JSON the sender wrote).
    pub root: String,
    /// A hash of the root body the chat shows now, if it is known.
    pub body_hash: Option<String>,
    /// When the root was posted (unix ms).
    pub started_at: i64,
    /// When the conversation last changed (unix ms).
    pub updated_at: i64,
    /// When its object was merged or closed (unix ms), if it was.
    pub closed_at: Option<i64>,
}

/// A change to a conversation, recorded with the outcome of the message that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationWrite {
    /// The channel.
    pub channel: String,
    /// The object's key.
    pub key: String,
    /// A new root (its reference): the conversation starts (again) with it.
    pub root: Option<String>,
    /// The hash of the root body the chat shows now, when it changed.
    pub body_hash: Option<String>,
    /// The object was merged or closed: the conversation ends (its end time is kept).
    pub closed: bool,
}

/// A message handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// Row id.
    pub id: i64,
    /// Id for logs (`request/channel`).
    pub delivery_id: String,
    /// The webhook's `Idempotency-Key` (or other dedupe key), for logs; `None` for rows written
    /// before it was kept.
    pub idempotency_key: Option<String>,
    /// The Cliq message.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When it was received (unix ms).
    pub created_at: i64,
}

/// A message as `outbox list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRow {
    /// Row id (for `outbox retry ID`).
    pub id: i64,
    /// `pending` or `dead`.
    pub state: String,
    /// When the next attempt is due (unix ms), for pending messages.
    pub next_at: i64,
    /// Id for logs.
    pub delivery_id: String,
    /// Channel.
    pub channel: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was received (unix ms).
    pub created_at: i64,
    /// Last HTTP status, if any.
    pub last_status: Option<u16>,
    /// Last error text.
    pub last_error: Option<String>,
}

/// A rule one chat made for itself (a subscription, a mute): a row the router stage reads
/// beside the configuration's routes. What `kind`, `subject` and `spec` mean is the caller's
/// business (`route::chat`); the store only keeps one row per `(chat, kind, subject)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatRule {
    /// The chat it applies to (Cliq chat id).
    pub chat: String,
    /// What kind of rule (`subscription`, `mute`).
    pub kind: String,
    /// What it is about (a project path, an issue).
    pub subject: String,
    /// Its details, as JSON text.
    pub spec: String,
    /// When it lapses (unix ms), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Who made it (a Cliq user id, or `cli`).
    pub created_by: String,
    /// When (unix ms).
    pub created_at: i64,
}

/// A change to the chat rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleChange {
    /// Adds the rule, or replaces the one with its `(chat, kind, subject)`.
    Put(ChatRule),
    /// Removes the rule `(chat, kind, subject)`, if any.
    Delete {
        /// The chat.
        chat: String,
        /// The kind.
        kind: String,
        /// The subject.
        subject: String,
    },
    /// Puts every rule (an import), all or none.
    PutAll(Vec<ChatRule>),
}

/// Counts for one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Channel name.
    pub channel: String,
    /// Waiting for a first attempt.
    pub pending: u64,
    /// Failed at least once, waiting for another attempt.
    pub retrying: u64,
    /// Given up.
    pub dead: u64,
    /// Receive time (unix ms) of the oldest message not yet posted (pending or retrying).
    pub oldest_created_at: Option<i64>,
}

/// How the outcome of one attempt is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted: the row is kept as `sent` (with its event) until the event is pruned.
    Sent,
    /// Try again at `next_at` (unix ms).
    Retry {
        /// When to try again.
        next_at: i64,
        /// HTTP status, if any.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Give up: the row becomes dead.
    Dead {
        /// HTTP status, if any.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Not attempted (shutdown): release the lease, keep the attempt count.
    Release,
}

/// A webhook delivery as received, before routing: what the HTTP handler stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Human id for logs (`X-Gitlab-Webhook-UUID`, else the dedupe key, else a counter).
    pub request_id: String,
    /// `Idempotency-Key`, else `X-Gitlab-Webhook-UUID`, else a hash of the body: a second
    /// delivery with the same key within the dedupe window is a duplicate.
    pub dedupe_key: Option<String>,
    /// The [`KEPT_HEADERS`] that were present, lower-case names, as received.
    pub headers: Vec<(String, String)>,
    /// The body bytes, exactly as received (checked to be one JSON object).
    pub body: Vec<u8>,
}

impl RawEvent {
    /// The value of header `name` (lower case), if it was kept.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A [`RawEvent`] encoded for storage (headers as JSON, body compressed): done on the caller's
/// thread, so the one writer thread only inserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    // Read by the PostgreSQL store too (`super::pg`).
    pub(super) request_id: String,
    pub(super) dedupe_key: Option<String>,
    pub(super) headers: String,
    /// lz4-compressed.
    pub(super) body: Vec<u8>,
}

/// What the store did with a received delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored as event `id`, to be routed.
    Accepted(i64),
    /// Seen before (same dedupe key within the window): acknowledged, not stored again.
    Duplicate,
}

/// An event as the router stage reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Event id (arrival order).
    pub id: i64,
    /// When it was received (unix ms).
    pub received_at: i64,
    /// The delivery as received.
    pub raw: RawEvent,
    /// The event this one replays, for `events replay`.
    pub replay_of: Option<i64>,
}

/// What routing made of one event: its summary for `events list`, and its messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutedEvent {
    /// The event.
    pub event_id: i64,
    /// Its request id (for the messages' delivery ids and logs), as stored with it.
    pub request_id: String,
    /// Its dedupe key (`Idempotency-Key`, …), kept with each message for logs.
    pub idempotency_key: Option<String>,
    /// Event kind (`issue`), for `events list --kind`.
    pub kind: String,
    /// Event key (`issue.open`).
    pub key: String,
    /// Project path, for `events list --project`.
    pub project: String,
    /// What happened, in words (`queued 2`, `ignored: no channel subscribes to this event`).
    pub outcome: String,
    /// One message per channel.
    pub deliveries: Vec<super::Delivery>,
    /// What routing asked to remember (`(key, value)`, see [`Reader::memory`]), written with the
    /// event's mark.
    pub memory: Vec<(String, String)>,
}

/// An event as `events list` and `events show` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Event id.
    pub id: i64,
    /// When it was received (unix ms).
    pub received_at: i64,
    /// `new` (not routed yet) or `routed`.
    pub state: String,
    /// Kind, key, project and outcome, once routed.
    pub kind: Option<String>,
    /// Event key.
    pub key: Option<String>,
    /// Project path.
    pub project: Option<String>,
    /// What routing did.
    pub outcome: Option<String>,
    /// The event this one replays.
    pub replay_of: Option<i64>,
    /// Request id for logs.
    pub request_id: String,
}

/// What `events list` selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only projects whose path contains this.
    pub project: Option<String>,
    /// Only events received at or after this time (unix ms).
    pub since: Option<i64>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// The SQLite-backed store. Not `Sync`: one thread owns it.
pub struct Store {
    conn: Connection,
    /// `synchronous=FULL` configured: commits survive power loss.
    full_sync: bool,
    /// The connection's `synchronous` now (a relaxed transaction lowers it to `NORMAL`).
    syncing: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it. `full_sync` makes every
    /// commit survive power loss, not just a process crash.
    pub fn open(path: &Path, full_sync: bool) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement the writer runs stays prepared (the default keeps 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans that do not depend on bound values: without this, SQLite re-prepares a statement
        // whenever a parameter it compared with a partial index's condition changes, which is
        // on nearly every execution of the writer's statements.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )?;
        let mut store = Store {
            conn,
            full_sync,
            syncing: full_sync,
        };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// Leaves checkpoints to someone else ([`super::checkpoint`]): commits stop copying the log
    /// into the database file themselves, and `grown` is called after a commit that leaves the
    /// log at `pages` pages or more (SQLite's own threshold is 1 000).
    pub fn manual_checkpoints(
        &mut self,
        pages: i64,
        grown: impl Fn() + Send + 'static,
    ) -> Result<(), StoreError> {
        // The pragma replaces any log hook, so it goes first.
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.conn
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, log: i32| {
                if i64::from(log) >= pages {
                    grown();
                }
                Ok(())
            }))?;
        Ok(())
    }

    /// Starts a transaction (the writer groups many operations in one commit). It takes the
    /// write lock at once (`BEGIN IMMEDIATE`), waiting for it if need be: a transaction that
    /// read first and then found another connection had written (a CLI command) could only
    /// fail.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.set_syncing(self.full_sync)?;
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Starts a transaction whose commit does not wait for the disk (`synchronous=NORMAL`),
    /// as [`Store::transaction`] otherwise. It survives a process crash at once, and a power
    /// loss once a later synced commit (or a checkpoint) has written the log to disk: the log
    /// is replayed in order, so a power loss only takes a tail of relaxed commits, never one
    /// before a synced one.
    pub fn relaxed_transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.set_syncing(false)?;
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Whether commits wait for the disk unless relaxed (`synchronous=FULL` configured).
    pub fn full_sync(&self) -> bool {
        self.full_sync
    }

    fn set_syncing(&mut self, full: bool) -> Result<(), StoreError> {
        if self.syncing != full {
            // A cached statement: the writer switches twice a cycle under load, and preparing
            // the pragma anew each time showed in its profile.
            let pragma = if full {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            self.conn.prepare_cached(pragma)?.execute([])?;
            self.syncing = full;
        }
        Ok(())
    }

    /// Copies the rest of the log into the database file on the writer's own connection, so
    /// that its next commit starts the log over ([`super::checkpoint`] says when).
    pub fn finish_checkpoint(&self) -> Result<i64, StoreError> {
        passive_checkpoint(&self.conn)
    }

    /// Forgets every lease: called at start, when no worker can hold one.
    pub fn clear_leases(&self) -> Result<usize, StoreError> {
        messages::clear_leases(&self.conn)
    }

    /// Counts per channel.
    pub fn stats(&self) -> Result<Vec<ChannelStats>, StoreError> {
        stats(&self.conn)
    }

    /// Messages not yet posted, newest first: only dead ones with `dead_only`.
    pub fn list(&self, dead_only: bool, limit: usize) -> Result<Vec<ListedRow>, StoreError> {
        messages::list(&self.conn, dead_only, limit)
    }

    /// Makes dead messages pending again (one id, or all when `id` is `None`), due at `now`.
    pub fn retry_dead(&mut self, id: Option<i64>, now: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = messages::retry_dead(&tx, id, now)?;
        tx.commit()?;
        Ok(n)
    }

    /// The connection, for reads by the `events` commands and the router stage.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Deletes dead messages received before `before` (unix ms).
    pub fn purge_dead(&self, before: i64) -> Result<usize, StoreError> {
        messages::purge_dead(&self.conn, before)
    }
}

/// A read-only connection of its own (WAL lets it read while the writer commits): the router
/// stage's and the `events` commands' view of the store.
pub struct Reader {
    conn: Connection,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// Opens the store at `path` for reading; it must exist (the writer creates and migrates it).
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Reader { conn })
    }

    /// Events not routed yet with an id above `after`, oldest first, at most `limit`.
    pub fn new_events(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        new_events(&self.conn, after, limit)
    }

    /// Events newest first, as `events list` shows them.
    pub fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        list_events(&self.conn, filter)
    }

    /// Event `id` as received, if it is still kept.
    pub fn event(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        event(&self.conn, id)
    }

    /// Every chat rule.
    pub fn chat_rules(&self) -> Result<Vec<ChatRule>, StoreError> {
        chat_rules(&self.conn)
    }

    /// Counts per channel.
    pub fn stats(&self) -> Result<Vec<ChannelStats>, StoreError> {
        stats(&self.conn)
    }

    /// When a delivery with dedupe key `key` was last received (unix ms), while remembered.
    pub fn received_at(&self, key: &str) -> Result<Option<i64>, StoreError> {
        received_at(&self.conn, key)
    }

    /// The router's memory of `key`: the last value a routed event asked to remember.
    pub fn memory(&self, key: &str) -> Result<Option<String>, StoreError> {
        memory(&self.conn, key)
    }
}

/// A connection that only checkpoints the write-ahead log (for [`super::checkpoint`]).
pub struct LogCopier {
    conn: Connection,
}

impl std::fmt::Debug for LogCopier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogCopier")
    }
}

impl LogCopier {
    /// Opens the store at `path` (already created and migrated) for checkpoints.
    pub fn open(path: &Path) -> Result<LogCopier, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(LogCopier { conn })
    }

    /// Runs one passive checkpoint; returns the log's length in pages.
    pub fn checkpoint(&self) -> Result<i64, StoreError> {
        passive_checkpoint(&self.conn)
    }
}

/// Copies what it can of the log into the database file without waiting for anyone (another
/// checkpoint under way makes it a no-op); returns the log's length in pages.
fn passive_checkpoint(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))?)
}
