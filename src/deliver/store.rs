//! The durable outbox store: SQLite (WAL) through rusqlite, written from one writer thread.
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

use super::{Batch, Enqueued};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;

/// Prepared statements kept per connection: more than the writer uses.
const STATEMENT_CACHE: usize = 64;

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 6] = [
    r#"
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    ordering_key TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    lease_until  INTEGER,
    last_status  INTEGER,
    last_error   TEXT
);
CREATE INDEX messages_due ON messages (channel, state, next_at);
CREATE INDEX messages_order ON messages (channel, ordering_key, state, id);
CREATE TABLE dedupe (
    key         TEXT    PRIMARY KEY,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedupe_age ON dedupe (received_at);
"#,
    // The webhook's Idempotency-Key (or other dedupe key), so every log line about a delivery
    // names it next to the request id.
    "ALTER TABLE messages ADD COLUMN idempotency_key TEXT;",
    // The staged pipeline: raw deliveries in `events`, routed later; messages remember their
    // event and are kept as `sent` (SQLite cannot change a CHECK, so the table is rebuilt with
    // every row and id as it was).
    r#"
CREATE TABLE messages_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_at         INTEGER NOT NULL,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    idempotency_key TEXT,
    event_id        INTEGER,
    sent_at         INTEGER,
    head            INTEGER NOT NULL DEFAULT 0
);
INSERT INTO messages_v3 (id, request_id, delivery_id, channel, ordering_key, body, state, attempts,
                         created_at, next_at, lease_until, last_status, last_error, idempotency_key)
    SELECT id, request_id, delivery_id, channel, ordering_key, body, state, attempts,
           created_at, next_at, lease_until, last_status, last_error, idempotency_key
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;
CREATE INDEX messages_due ON messages (channel, state, next_at);
CREATE INDEX messages_order ON messages (channel, ordering_key, state, id);
CREATE INDEX messages_event ON messages (event_id);
CREATE INDEX messages_sent ON messages (sent_at) WHERE state = 'sent';
CREATE INDEX messages_heads ON messages (channel, id) WHERE state = 'pending' AND head = 1;
CREATE INDEX messages_pending ON messages (channel, id) WHERE state = 'pending';
UPDATE messages SET head = 1
 WHERE state = 'pending'
   AND id = (SELECT MIN(p.id) FROM messages p
              WHERE p.channel = messages.channel AND p.ordering_key = messages.ordering_key
                AND p.state = 'pending');
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    dedupe_key  TEXT,
    headers     TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'routed')),
    routed_at   INTEGER,
    kind        TEXT,
    key         TEXT,
    project     TEXT,
    outcome     TEXT,
    replay_of   INTEGER
);
CREATE INDEX events_new ON events (id) WHERE state = 'new';
CREATE INDEX events_received ON events (received_at);
"#,
    // Bodies apart from the event rows: marking an event routed rewrites a row of a hundred
    // bytes, not the whole payload again; new bodies are stored compressed (`encoding = 'lz4'`).
    r#"
CREATE TABLE event_bodies (
    id       INTEGER PRIMARY KEY,
    headers  TEXT    NOT NULL,
    body     BLOB    NOT NULL,
    encoding TEXT
);
INSERT INTO event_bodies (id, headers, body) SELECT id, headers, body FROM events;
ALTER TABLE events DROP COLUMN headers;
ALTER TABLE events DROP COLUMN body;
"#,
    // Rules a chat made for itself (the Cliq extension's subscriptions and mutes): generic rows
    // the router stage reads beside the config's routes; `spec` is opaque here.
    r#"
CREATE TABLE chat_rules (
    chat       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    until      INTEGER,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (chat, kind, subject)
);
"#,
    // The router's memory: small values the routing function keeps between events (keys and
    // values are its own, e.g. the last finished status of a branch), written in the same
    // transaction as the event that set them.
    r#"
CREATE TABLE router_memory (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

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

/// Applies `change`; returns how many rows it added, replaced or removed.
pub fn change_rules(tx: &Connection, change: &RuleChange) -> Result<usize, StoreError> {
    let put = |r: &ChatRule| -> Result<usize, StoreError> {
        Ok(tx
            .prepare_cached(
                "INSERT INTO chat_rules (chat, kind, subject, spec, until, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (chat, kind, subject) DO UPDATE SET spec = excluded.spec,
                     until = excluded.until, created_by = excluded.created_by,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                r.chat,
                r.kind,
                r.subject,
                r.spec,
                r.until,
                r.created_by,
                r.created_at
            ])?)
    };
    match change {
        RuleChange::Put(r) => put(r),
        RuleChange::PutAll(rules) => rules.iter().map(put).sum(),
        RuleChange::Delete {
            chat,
            kind,
            subject,
        } => Ok(tx
            .prepare_cached(
                "DELETE FROM chat_rules WHERE chat = ?1 AND kind = ?2 AND subject = ?3",
            )?
            .execute(params![chat, kind, subject])?),
    }
}

/// Every chat rule, by chat, kind and subject.
pub fn chat_rules(conn: &Connection) -> Result<Vec<ChatRule>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT chat, kind, subject, spec, until, created_by, created_at FROM chat_rules
         ORDER BY chat, kind, subject",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ChatRule {
            chat: r.get(0)?,
            kind: r.get(1)?,
            subject: r.get(2)?,
            spec: r.get(3)?,
            until: r.get(4)?,
            created_by: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When each channel last had a message posted (unix ms), by channel.
pub fn last_posts(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, MAX(sent_at) FROM messages WHERE state = 'sent' GROUP BY channel
         ORDER BY channel",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
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

impl RawEvent {
    /// Encodes the event for [`insert_encoded`].
    pub fn encode(&self) -> EncodedEvent {
        let headers = serde_json::to_string(
            &self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        // A map of strings always serialises; an empty map keeps the row valid regardless.
        .unwrap_or_else(|_| "{}".into());
        EncodedEvent {
            request_id: self.request_id.clone(),
            dedupe_key: self.dedupe_key.clone(),
            headers,
            body: compress(&self.body),
        }
    }
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
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "the outbox was written by a newer version (schema {version}); upgrade gitlab-chat-bridge"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
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
    /// read first and then found another connection had written (the checkpointer restarting
    /// the log, a CLI command) could only fail.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Forgets every lease: called at start, when no worker can hold one.
    pub fn clear_leases(&self) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE messages SET lease_until = NULL WHERE lease_until IS NOT NULL",
            [],
        )?)
    }

    /// Counts per channel.
    pub fn stats(&self) -> Result<Vec<ChannelStats>, StoreError> {
        stats(&self.conn)
    }

    /// Messages not yet posted, newest first: only dead ones with `dead_only`.
    pub fn list(&self, dead_only: bool, limit: usize) -> Result<Vec<ListedRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, state, next_at, delivery_id, channel, attempts, created_at, last_status, last_error
             FROM messages WHERE state IN ('pending', 'dead') AND (?1 = 0 OR state = 'dead')
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![dead_only as i64, limit as i64], listed_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes dead messages pending again (one id, or all when `id` is `None`), due at `now`.
    pub fn retry_dead(&mut self, id: Option<i64>, now: i64) -> Result<usize, StoreError> {
        let sql =
            "UPDATE messages SET state = 'pending', attempts = 0, next_at = ?1, lease_until = NULL
                   WHERE state = 'dead' AND (?2 IS NULL OR id = ?2)";
        let tx = self.conn.transaction()?;
        let n = tx.execute(sql, params![now, id])?;
        if n > 0 {
            recompute_heads(&tx)?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// The connection, for reads by the `events` commands and the router stage.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Deletes dead messages received before `before` (unix ms).
    pub fn purge_dead(&self, before: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM messages WHERE state = 'dead' AND created_at < ?1",
            [before],
        )?)
    }
}

fn listed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListedRow> {
    Ok(ListedRow {
        id: r.get(0)?,
        state: r.get(1)?,
        next_at: r.get(2)?,
        delivery_id: r.get(3)?,
        channel: r.get(4)?,
        attempts: r.get::<_, i64>(5)?.max(0) as u32,
        created_at: r.get(6)?,
        last_status: r.get::<_, Option<i64>>(7)?.map(|s| s.clamp(0, 999) as u16),
        last_error: r.get(8)?,
    })
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

/// How far a checkpoint may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Copies what it can without waiting for the writer or readers.
    Passive,
    /// Waits for readers to move to the newest snapshot (blocking new writes meanwhile), copies
    /// everything, and lets the next write start the log over.
    Restart,
}

impl LogCopier {
    /// Opens the store at `path` (already created and migrated) for checkpoints.
    pub fn open(path: &Path) -> Result<LogCopier, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(LogCopier { conn })
    }

    /// Runs one checkpoint; returns the log's length in pages.
    pub fn checkpoint(&self, mode: CheckpointMode) -> Result<i64, StoreError> {
        let sql = match mode {
            CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            CheckpointMode::Restart => "PRAGMA wal_checkpoint(RESTART)",
        };
        Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(1))?)
    }
}

/// Counts per channel (on the writer's transaction, or any connection).
pub fn stats(conn: &Connection) -> Result<Vec<ChannelStats>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel,
                SUM(state = 'pending' AND attempts = 0),
                SUM(state = 'pending' AND attempts > 0),
                SUM(state = 'dead'),
                MIN(CASE WHEN state = 'pending' THEN created_at END)
         FROM messages WHERE state IN ('pending', 'dead') GROUP BY channel ORDER BY channel",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ChannelStats {
            channel: r.get(0)?,
            pending: r.get::<_, i64>(1)?.max(0) as u64,
            retrying: r.get::<_, i64>(2)?.max(0) as u64,
            dead: r.get::<_, i64>(3)?.max(0) as u64,
            oldest_created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Key of the row `GET /readyz` writes to prove the store takes commits; it starts with a NUL,
/// which no HTTP header can carry, so it never meets a real `Idempotency-Key`.
pub const PROBE_KEY: &str = "\u{0}readyz";

/// Writes the readiness probe row (a real write, so a full disk or a read-only file fails).
pub fn touch(tx: &Connection, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO dedupe (key, received_at) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET received_at = excluded.received_at",
    )?
    .execute(params![PROBE_KEY, now])?;
    Ok(())
}

/// Inserts a batch unless its dedupe key was seen after `dedupe_since` (unix ms).
pub fn insert_batch(
    tx: &Connection,
    batch: &Batch,
    now: i64,
    dedupe_since: i64,
) -> Result<Enqueued, StoreError> {
    if let Some(key) = &batch.dedupe_key {
        if seen_before(tx, key, now, dedupe_since)? {
            return Ok(Enqueued::Duplicate);
        }
    }
    insert_messages(
        tx,
        None,
        &batch.request_id,
        batch.dedupe_key.as_deref(),
        &batch.deliveries,
        now,
    )?;
    Ok(Enqueued::Accepted)
}

/// Inserts messages for one webhook (of event `event_id`, when routed from one).
fn insert_messages(
    tx: &Connection,
    event_id: Option<i64>,
    request_id: &str,
    idempotency_key: Option<&str>,
    deliveries: &[super::Delivery],
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO messages (request_id, delivery_id, channel, ordering_key, body, created_at, next_at,
                               idempotency_key, event_id, head)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8,
                 NOT EXISTS (SELECT 1 FROM messages WHERE channel = ?3 AND ordering_key = ?4
                                                      AND state = 'pending'))",
    )?;
    for d in deliveries {
        stmt.execute(params![
            request_id,
            d.id,
            d.channel,
            d.ordering_key,
            d.body,
            now,
            idempotency_key,
            event_id
        ])?;
    }
    Ok(())
}

/// When a delivery with dedupe key `key` was last received (unix ms), while the dedupe table
/// remembers it.
pub fn received_at(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT received_at FROM dedupe WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Whether `key` was seen at or after `since` (unix ms); remembers it at `now` when not.
fn seen_before(tx: &Connection, key: &str, now: i64, since: i64) -> Result<bool, StoreError> {
    let seen: Option<i64> = tx
        .prepare_cached("SELECT received_at FROM dedupe WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    if seen.is_some_and(|t| t >= since) {
        return Ok(true);
    }
    tx.prepare_cached(
        "INSERT INTO dedupe (key, received_at) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET received_at = excluded.received_at",
    )?
    .execute(params![key, now])?;
    Ok(false)
}

/// Stores a received delivery as a new event, unless its dedupe key was seen after
/// `dedupe_since` (unix ms).
pub fn insert_event(
    tx: &Connection,
    ev: &RawEvent,
    now: i64,
    dedupe_since: i64,
) -> Result<Ingested, StoreError> {
    insert_encoded(tx, &ev.encode(), now, dedupe_since)
}

/// [`insert_event`] for an event encoded beforehand.
pub fn insert_encoded(
    tx: &Connection,
    ev: &EncodedEvent,
    now: i64,
    dedupe_since: i64,
) -> Result<Ingested, StoreError> {
    if let Some(key) = &ev.dedupe_key {
        if seen_before(tx, key, now, dedupe_since)? {
            return Ok(Ingested::Duplicate);
        }
    }
    insert_event_row(tx, ev, now, None)
}

fn insert_event_row(
    tx: &Connection,
    ev: &EncodedEvent,
    now: i64,
    replay_of: Option<i64>,
) -> Result<Ingested, StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (received_at, request_id, dedupe_key, replay_of) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![now, ev.request_id, ev.dedupe_key, replay_of])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO event_bodies (id, headers, body, encoding) VALUES (?1, ?2, ?3, 'lz4')",
    )?
    .execute(params![id, ev.headers, ev.body])?;
    Ok(Ingested::Accepted(id))
}

/// Largest body a stored lz4 block may claim to expand to (a damaged size prefix must not
/// become a huge allocation).
const MAX_STORED_BODY: usize = 256 << 20;

/// A body as stored: an lz4 block with its size in front (GitLab's JSON shrinks to about a
/// third, and so does the write load of every webhook).
fn compress(body: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(body)
}

/// A stored body as received, whatever its `encoding`.
fn decompress(stored: Vec<u8>, encoding: Option<&str>) -> Result<Vec<u8>, String> {
    match encoding {
        None => Ok(stored),
        Some("lz4") => {
            let (size, _) = lz4_flex::block::uncompressed_size(&stored)
                .map_err(|e| format!("damaged stored body: {e}"))?;
            if size > MAX_STORED_BODY {
                return Err(format!("damaged stored body: claims {size} bytes"));
            }
            lz4_flex::block::decompress_size_prepended(&stored)
                .map_err(|e| format!("damaged stored body: {e}"))
        }
        Some(other) => Err(format!("stored body in an unknown encoding {other:?}")),
    }
}

/// Columns [`stored_event`] reads, in its order, and the join they come from.
const STORED_EVENT_COLUMNS: &str =
    "e.id, e.received_at, e.request_id, e.dedupe_key, b.headers, b.body, e.replay_of, b.encoding
     FROM events e JOIN event_bodies b ON b.id = e.id";

fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    stored_event_of(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        &r.get::<_, String>(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get::<_, Option<String>>(7)?.as_deref(),
    )
    .map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Blob, e.into())
    })
}

/// A stored event from its columns (both engines store the same ones): the headers as a JSON
/// object, the body as `encoding` says. A damaged body is an error naming what is wrong.
#[allow(clippy::too_many_arguments)]
pub(super) fn stored_event_of(
    id: i64,
    received_at: i64,
    request_id: String,
    dedupe_key: Option<String>,
    headers: &str,
    body: Vec<u8>,
    replay_of: Option<i64>,
    encoding: Option<&str>,
) -> Result<StoredEvent, String> {
    let headers: Vec<(String, String)> =
        serde_json::from_str::<std::collections::BTreeMap<String, String>>(headers)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
    Ok(StoredEvent {
        id,
        received_at,
        raw: RawEvent {
            request_id,
            dedupe_key,
            headers,
            body: decompress(body, encoding)?,
        },
        replay_of,
    })
}

/// Events not routed yet with an id above `after`, oldest first, at most `limit`.
pub fn new_events(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STORED_EVENT_COLUMNS} WHERE e.state = 'new' AND e.id > ?1 ORDER BY e.id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit as i64], stored_event)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many events are stored but not routed yet (the router stage's backlog).
pub fn unrouted_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM events WHERE state = 'new'")?
        .query_row([], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Event `id` as received, if it is still kept.
pub fn event(conn: &Connection, id: i64) -> Result<Option<StoredEvent>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {STORED_EVENT_COLUMNS} WHERE e.id = ?1"))?
        .query_row([id], stored_event)
        .optional()?)
}

/// Marks an event routed and inserts its messages, in the caller's transaction. Returns false
/// (and inserts nothing) when the event is gone or was routed already, so a repeat is harmless.
pub fn mark_routed(tx: &Connection, routed: &RoutedEvent, now: i64) -> Result<bool, StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE events SET state = 'routed', routed_at = ?2, kind = ?3, key = ?4, project = ?5,
                    outcome = ?6
             WHERE id = ?1 AND state = 'new'",
        )?
        .execute(params![
            routed.event_id,
            now,
            routed.kind,
            routed.key,
            routed.project,
            routed.outcome
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    for (key, value) in &routed.memory {
        tx.prepare_cached(
            "INSERT INTO router_memory (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )?
        .execute(params![key, value, now])?;
    }
    insert_messages(
        tx,
        Some(routed.event_id),
        &routed.request_id,
        routed.idempotency_key.as_deref(),
        &routed.deliveries,
        now,
    )?;
    Ok(true)
}

/// The router's memory of `key` (see [`RoutedEvent::memory`]).
pub fn memory(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM router_memory WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Stores a replay of an event as a new, already routed event with its messages (no dedupe: a
/// replay is a new delivery). Returns the new event's id.
pub fn insert_replay(
    tx: &Connection,
    of: &StoredEvent,
    request_id: &str,
    routed: &RoutedEvent,
    now: i64,
) -> Result<i64, StoreError> {
    let mut raw = of.raw.clone();
    raw.request_id = request_id.to_string();
    raw.dedupe_key = None;
    let Ingested::Accepted(id) = insert_event_row(tx, &raw.encode(), now, Some(of.id))? else {
        return Err(StoreError("the replay was not stored".into()));
    };
    let routed = RoutedEvent {
        event_id: id,
        request_id: raw.request_id,
        idempotency_key: None,
        ..routed.clone()
    };
    mark_routed(tx, &routed, now)?;
    Ok(id)
}

/// Events newest first, as `events list` shows them.
pub fn list_events(conn: &Connection, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, received_at, state, kind, key, project, outcome, replay_of, request_id FROM events
         WHERE (?1 IS NULL OR kind = ?1)
           AND (?2 IS NULL OR instr(COALESCE(project, ''), ?2) > 0)
           AND (?3 IS NULL OR received_at >= ?3)
         ORDER BY id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            filter.kind,
            filter.project,
            filter.since,
            filter.limit as i64
        ],
        event_row_of,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Event `id`'s summary, if it is kept.
pub fn event_row(conn: &Connection, id: i64) -> Result<Option<EventRow>, StoreError> {
    Ok(conn
        .prepare(
            "SELECT id, received_at, state, kind, key, project, outcome, replay_of, request_id
             FROM events WHERE id = ?1",
        )?
        .query_row([id], event_row_of)
        .optional()?)
}

fn event_row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        received_at: r.get(1)?,
        state: r.get(2)?,
        kind: r.get(3)?,
        key: r.get(4)?,
        project: r.get(5)?,
        outcome: r.get(6)?,
        replay_of: r.get(7)?,
        request_id: r.get(8)?,
    })
}

/// Ids of events received at or after `since` (unix ms), oldest first (for `events replay`).
pub fn event_ids_since(conn: &Connection, since: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id FROM events WHERE received_at >= ?1 AND replay_of IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([since], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The messages of event `id` with their state (`pending`, `sent`, `dead`), oldest first.
pub fn event_messages(conn: &Connection, id: i64) -> Result<Vec<ListedRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, state, COALESCE(sent_at, next_at), delivery_id, channel, attempts, created_at,
                last_status, last_error
         FROM messages WHERE event_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], listed_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets routed events received before `before` (unix ms) and the sent messages of that age.
/// Pending messages and dead letters stay whatever their age.
pub fn prune_events(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    tx.execute(
        "DELETE FROM messages WHERE state = 'sent' AND sent_at < ?1",
        [before],
    )?;
    tx.execute(
        "DELETE FROM event_bodies WHERE id IN
           (SELECT id FROM events WHERE state = 'routed' AND received_at < ?1)",
        [before],
    )?;
    Ok(tx.execute(
        "DELETE FROM events WHERE state = 'routed' AND received_at < ?1",
        [before],
    )?)
}

/// Leases the oldest due message of `channel` whose object has no older pending message.
pub fn lease_next(
    tx: &Connection,
    channel: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Option<Leased>, StoreError> {
    Ok(lease_batch(tx, channel, now, lease_ms, 1)?.pop())
}

/// Leases up to `max` due messages of `channel`, oldest first, each the oldest pending message of
/// its object: posted in this order (and each recorded before the next is posted) they keep every
/// object's order. The lease lasts `lease_ms` per message leased.
pub fn lease_batch(
    tx: &Connection,
    channel: &str,
    now: i64,
    lease_ms: i64,
    max: usize,
) -> Result<Vec<Leased>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT m.id, m.delivery_id, m.body, m.attempts, m.created_at, m.idempotency_key
         FROM messages m INDEXED BY messages_heads
         WHERE m.channel = ?1 AND m.state = 'pending' AND m.head = 1 AND m.next_at <= ?2
           AND (m.lease_until IS NULL OR m.lease_until <= ?2)
         ORDER BY m.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![channel, now, max as i64], |r| {
        Ok(Leased {
            id: r.get(0)?,
            delivery_id: r.get(1)?,
            body: r.get(2)?,
            attempts: r.get::<_, i64>(3)?.max(0) as u32,
            created_at: r.get(4)?,
            idempotency_key: r.get(5)?,
        })
    })?;
    let out: Vec<Leased> = rows.collect::<Result<_, _>>()?;
    let until = now + lease_ms.saturating_mul(out.len().max(1) as i64);
    let mut lease = tx.prepare_cached("UPDATE messages SET lease_until = ?2 WHERE id = ?1")?;
    for l in &out {
        lease.execute(params![l.id, until])?;
    }
    Ok(out)
}

/// How many messages of `channel` are due now (a backlog measure), counting at most `cap`.
pub fn due_count(tx: &Connection, channel: &str, now: i64, cap: u64) -> Result<u64, StoreError> {
    let n: i64 = tx
        .prepare_cached(
            // `messages_due` covers the query: the count reads index pages, never the rows.
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages INDEXED BY messages_due
                                   WHERE channel = ?1 AND state = 'pending' AND next_at <= ?2
                                   LIMIT ?3)",
        )?
        .query_row(
            params![channel, now, cap.min(i64::MAX as u64) as i64],
            |r| r.get(0),
        )?;
    Ok(n.max(0) as u64)
}

/// Leases the oldest pending messages of `channel`, up to `max`, as long as they form an unbroken
/// prefix of its queue that is due, not leased and never tried: posted together in id order they
/// keep every object's order. Returns nothing when fewer than two qualify.
pub fn lease_prefix(
    tx: &Connection,
    channel: &str,
    now: i64,
    lease_ms: i64,
    max: usize,
) -> Result<Vec<Leased>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, delivery_id, body, attempts, created_at, next_at, lease_until, idempotency_key
         FROM messages INDEXED BY messages_pending
         WHERE channel = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![channel, max as i64], |r| {
        let ready = r.get::<_, i64>(3)? == 0
            && r.get::<_, i64>(5)? <= now
            && r.get::<_, Option<i64>>(6)?.is_none_or(|l| l <= now);
        Ok((
            ready,
            Leased {
                id: r.get(0)?,
                delivery_id: r.get(1)?,
                body: r.get(2)?,
                attempts: 0,
                created_at: r.get(4)?,
                idempotency_key: r.get(7)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ready, leased) = row?;
        if !ready {
            break;
        }
        out.push(leased);
    }
    if out.len() < 2 {
        return Ok(Vec::new());
    }
    let mut lease = tx.prepare_cached("UPDATE messages SET lease_until = ?2 WHERE id = ?1")?;
    for l in &out {
        lease.execute(params![l.id, now + lease_ms])?;
    }
    Ok(out)
}

/// When `channel` next has a message it may post (unix ms): the earliest due time among
/// messages not held back by an older message of their object.
pub fn next_due(tx: &Connection, channel: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) FROM messages INDEXED BY messages_heads
             WHERE channel = ?1 AND state = 'pending' AND head = 1",
        )?
        .query_row([channel], |r| r.get(0))?)
}

/// Makes the oldest pending message of row `id`'s object its head, after `id` left `pending`.
fn promote_next(tx: &Connection, id: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE messages SET head = 1
          WHERE id = (SELECT p.id FROM messages p, messages m
                       WHERE m.id = ?1 AND p.channel = m.channel
                         AND p.ordering_key = m.ordering_key AND p.state = 'pending'
                       ORDER BY p.id LIMIT 1)",
    )?
    .execute([id])?;
    Ok(())
}

/// Recomputes every `head` flag (after dead letters were made pending again, which may put an
/// older message in front of its object's current head).
fn recompute_heads(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "UPDATE messages SET head = 0 WHERE head = 1;
         UPDATE messages SET head = 1
          WHERE state = 'pending'
            AND id = (SELECT MIN(p.id) FROM messages p
                       WHERE p.channel = messages.channel AND p.ordering_key = messages.ordering_key
                         AND p.state = 'pending');",
    )?;
    Ok(())
}

/// Records the outcome of an attempt on row `id` at `now` (unix ms).
pub fn record(tx: &Connection, id: i64, outcome: &Outcome, now: i64) -> Result<(), StoreError> {
    match outcome {
        Outcome::Sent => {
            tx.prepare_cached(
                "UPDATE messages SET state = 'sent', sent_at = ?2, attempts = attempts + 1,
                        lease_until = NULL, last_error = NULL, head = 0 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            promote_next(tx, id)?;
        }
        Outcome::Retry {
            next_at,
            status,
            error,
        } => {
            tx.prepare_cached(
                "UPDATE messages SET attempts = attempts + 1, next_at = ?2, lease_until = NULL,
                        last_status = ?3, last_error = ?4 WHERE id = ?1",
            )?
            .execute(params![id, next_at, status, error])?;
        }
        Outcome::Dead { status, error } => {
            tx.prepare_cached(
                "UPDATE messages SET attempts = attempts + 1, state = 'dead', lease_until = NULL,
                        last_status = ?2, last_error = ?3, head = 0 WHERE id = ?1",
            )?
            .execute(params![id, status, error])?;
            promote_next(tx, id)?;
        }
        Outcome::Release => {
            tx.prepare_cached("UPDATE messages SET lease_until = NULL WHERE id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}

/// Makes the dead letter `id` pending again, due at `now` (the Cliq extension's *Retry*
/// button); returns its channel, or `None` (nothing changed) when `id` is not a dead letter.
pub fn retry_dead_one(tx: &Connection, id: i64, now: i64) -> Result<Option<String>, StoreError> {
    let channel: Option<String> = tx
        .query_row(
            "SELECT channel FROM messages WHERE id = ?1 AND state = 'dead'",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    if channel.is_some() {
        tx.execute(
            "UPDATE messages SET state = 'pending', attempts = 0, next_at = ?1, lease_until = NULL
              WHERE id = ?2 AND state = 'dead'",
            params![now, id],
        )?;
        recompute_heads(tx)?;
    }
    Ok(channel)
}

/// Forgets dedupe keys received before `before` (unix ms).
pub fn prune_dedupe(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM dedupe WHERE received_at < ?1", [before])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Delivery;

    fn store() -> Store {
        store_named("main")
    }

    fn store_named(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!(
            "gcb-store-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        match Store::open(&dir.join("o.sqlite"), false) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn batch(key: &str, items: &[(&str, &str)]) -> Batch {
        Batch {
            dedupe_key: Some(key.into()),
            request_id: key.into(),
            deliveries: items
                .iter()
                .map(|(obj, body)| Delivery {
                    id: format!("{key}/c"),
                    channel: "c".into(),
                    ordering_key: (*obj).into(),
                    body: (*body).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn dedupe_ordering_retry_and_dead() -> Result<(), StoreError> {
        let mut s = store();
        let tx = s.transaction()?;
        assert_eq!(
            insert_batch(&tx, &batch("k1", &[("A", "a1")]), 0, 0)?,
            Enqueued::Accepted
        );
        assert_eq!(
            insert_batch(&tx, &batch("k1", &[("A", "a1")]), 1, 0)?,
            Enqueued::Duplicate
        );
        insert_batch(&tx, &batch("k2", &[("A", "a2"), ("B", "b1")]), 2, 0)?;
        // a1 first; while a1 is out, a2 waits but b1 goes.
        let a1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.body);
        assert_eq!(a1.as_deref(), Some("a1"));
        let b1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.body);
        assert_eq!(b1.as_deref(), Some("b1"));
        assert_eq!(lease_next(&tx, "c", 10, 1000)?, None);
        // a1 fails: it is retried later, and a2 still waits behind it.
        let id = tx.query_row("SELECT id FROM messages WHERE body = 'a1'", [], |r| {
            r.get(0)
        })?;
        record(
            &tx,
            id,
            &Outcome::Retry {
                next_at: 500,
                status: Some(503),
                error: "x".into(),
            },
            20,
        )?;
        assert_eq!(lease_next(&tx, "c", 20, 1000)?, None);
        let again = lease_next(&tx, "c", 500, 1000)?;
        assert_eq!(
            again.as_ref().map(|l| (l.body.as_str(), l.attempts)),
            Some(("a1", 1))
        );
        record(
            &tx,
            id,
            &Outcome::Dead {
                status: Some(404),
                error: "gone".into(),
            },
            550,
        )?;
        // Dead messages do not block their object.
        let a2 = lease_next(&tx, "c", 600, 1000)?.map(|l| l.body);
        assert_eq!(a2.as_deref(), Some("a2"));
        tx.commit()?;
        let stats = s.stats()?;
        assert_eq!((stats[0].dead, stats[0].pending), (1, 2));
        assert_eq!(s.list(true, 10)?[0].last_status, Some(404));
        assert_eq!(s.list(false, 10)?.len(), 3);
        assert_eq!(s.retry_dead(None, 700)?, 1);
        assert_eq!(s.purge_dead(i64::MAX)?, 0);
        Ok(())
    }

    #[test]
    fn one_dead_letter_is_made_due_again_and_nothing_else() -> Result<(), StoreError> {
        let mut s = store_named("retry-one");
        let tx = s.transaction()?;
        insert_batch(&tx, &batch("k1", &[("A", "a1"), ("B", "b1")]), 1, 0)?;
        let a1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.id).unwrap_or(-1);
        let dead = Outcome::Dead {
            status: Some(400),
            error: "bad".into(),
        };
        record(&tx, a1, &dead, 20)?;
        // Not a dead letter (pending, or no such row): nothing changes.
        let b1: i64 = tx.query_row("SELECT id FROM messages WHERE body = 'b1'", [], |r| {
            r.get(0)
        })?;
        assert_eq!(retry_dead_one(&tx, b1, 30)?, None);
        assert_eq!(retry_dead_one(&tx, 9_999, 30)?, None);
        assert_eq!(retry_dead_one(&tx, a1, 30)?.as_deref(), Some("c"));
        assert_eq!(retry_dead_one(&tx, a1, 31)?, None, "no longer dead");
        let again = lease_next(&tx, "c", 30, 1000)?;
        assert_eq!(
            again.as_ref().map(|l| (l.id, l.attempts)),
            Some((a1, 0)),
            "due again, from its first attempt"
        );
        tx.commit()?;
        Ok(())
    }

    #[test]
    fn digests_take_an_untried_due_prefix() -> Result<(), StoreError> {
        let mut s = store_named("prefix");
        let tx = s.transaction()?;
        for (k, obj) in [("p1", "A"), ("p2", "B"), ("p3", "A"), ("p4", "C")] {
            insert_batch(&tx, &batch(k, &[(obj, k)]), 0, 0)?;
        }
        assert_eq!(due_count(&tx, "c", 10, 100)?, 4);
        assert_eq!(due_count(&tx, "c", 10, 2)?, 2);
        let got: Vec<String> = lease_prefix(&tx, "c", 10, 1000, 3)?
            .into_iter()
            .map(|l| l.body)
            .collect();
        assert_eq!(got, ["p1", "p2", "p3"]);
        // Leased rows stop the next prefix; a lone row is not a digest.
        assert!(lease_prefix(&tx, "c", 10, 1000, 3)?.is_empty());
        Ok(())
    }
    fn raw(key: &str) -> RawEvent {
        RawEvent {
            request_id: format!("req-{key}"),
            dedupe_key: Some(key.into()),
            headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
            body: format!("{{\"n\":\"{key}\"}}").into_bytes(),
        }
    }

    #[test]
    fn events_are_stored_once_routed_once_and_pruned() -> Result<(), StoreError> {
        let mut s = store_named("events");
        let tx = s.transaction()?;
        let Ingested::Accepted(a) = insert_event(&tx, &raw("a"), 100, 0)? else {
            panic!("a not accepted")
        };
        assert_eq!(insert_event(&tx, &raw("a"), 101, 0)?, Ingested::Duplicate);
        let Ingested::Accepted(b) = insert_event(&tx, &raw("b"), 102, 0)? else {
            panic!("b not accepted")
        };
        let new: Vec<i64> = new_events(&tx, 0, 10)?.iter().map(|e| e.id).collect();
        assert_eq!(new, [a, b]);
        assert_eq!(
            new_events(&tx, a, 10)?[0].raw.header("x-gitlab-event"),
            Some("Issue Hook")
        );
        let routed = RoutedEvent {
            event_id: a,
            request_id: "req-a".into(),
            idempotency_key: Some("a".into()),
            kind: "issue".into(),
            key: "issue.open".into(),
            project: "g/p".into(),
            outcome: "queued 1".into(),
            deliveries: vec![Delivery {
                id: "req-a/c".into(),
                channel: "c".into(),
                ordering_key: "o".into(),
                body: "m".into(),
            }],
            memory: vec![("k".into(), "v1".into())],
        };
        assert_eq!(memory(&tx, "k")?, None);
        assert!(mark_routed(&tx, &routed, 200)?);
        assert_eq!(memory(&tx, "k")?.as_deref(), Some("v1"));
        // A second commit of the same routing (a retried batch) adds nothing.
        let again = RoutedEvent {
            memory: vec![("k".into(), "v2".into())],
            ..routed.clone()
        };
        assert!(!mark_routed(&tx, &again, 201)?);
        assert_eq!(memory(&tx, "k")?.as_deref(), Some("v1"));
        assert_eq!(new_events(&tx, 0, 10)?.len(), 1);
        let m = lease_next(&tx, "c", 300, 1000)?.map(|l| (l.id, l.idempotency_key));
        let Some((id, key)) = m else {
            panic!("nothing to lease")
        };
        assert_eq!(key.as_deref(), Some("a"));
        record(&tx, id, &Outcome::Sent, 400)?;
        let shown = event_messages(&tx, a)?;
        assert_eq!((shown.len(), shown[0].state.as_str()), (1, "sent"));
        // Sent messages are neither pending nor listed.
        assert_eq!(lease_next(&tx, "c", 500, 1000)?, None);
        tx.commit()?;
        assert!(s.list(false, 10)?.is_empty());
        let tx = s.transaction()?;
        assert_eq!(
            prune_events(&tx, 450)?,
            1,
            "the routed event goes; the new one stays"
        );
        assert!(event_messages(&tx, a)?.is_empty());
        assert_eq!(new_events(&tx, 0, 10)?.len(), 1);
        Ok(())
    }

    #[test]
    fn a_schema_2_outbox_opens_under_the_current_schema() -> Result<(), StoreError> {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/outbox-schema2.sqlite");
        let dir = std::env::temp_dir().join(format!("gcb-upgrade-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("o.sqlite");
        std::fs::copy(&fixture, &path).map_err(|e| StoreError(e.to_string()))?;
        let mut s = Store::open(&path, false)?;
        let v: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, MIGRATIONS.len() as i64);
        let stats = s.stats()?;
        let by: Vec<(&str, u64, u64, u64)> = stats
            .iter()
            .map(|c| (c.channel.as_str(), c.pending, c.retrying, c.dead))
            .collect();
        assert_eq!(by, [("dev", 4, 1, 1), ("ops", 3, 1, 1)]);
        let tx = s.transaction()?;
        // Old rows keep their ids, attempts and order; the old dedupe keys still dedupe.
        let first = lease_next(&tx, "dev", i64::MAX / 2, 1000)?.map(|l| (l.id, l.attempts));
        assert_eq!(first, Some((1, 1)));
        assert_eq!(
            insert_event(&tx, &raw("idem-old-0"), 1_795_000_100_000, 0)?,
            Ingested::Duplicate
        );
        Ok(())
    }

    #[test]
    fn a_schema_3_outbox_keeps_its_events_when_bodies_move_out() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("gcb-upgrade3-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("o.sqlite");
        {
            // An outbox as schema 3 left it: bodies inside `events`, one routed and one new.
            let conn = Connection::open(&path)?;
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql)?;
            }
            conn.pragma_update(None, "user_version", 3)?;
            conn.execute_batch(
                r#"INSERT INTO events (id, received_at, request_id, dedupe_key, headers, body, state)
                   VALUES (1, 10, 'r1', 'k1', '{"x-gitlab-event":"Issue Hook"}', X'7B226E223A317D', 'routed'),
                          (2, 20, 'r2', 'k2', '{"x-gitlab-event":"Push Hook"}', X'7B226E223A327D', 'new');"#,
            )?;
        }
        let mut s = Store::open(&path, false)?;
        let got = event(s.conn(), 1)?
            .map(|e| (e.raw.header("x-gitlab-event").map(String::from), e.raw.body));
        assert_eq!(
            got,
            Some((Some("Issue Hook".into()), b"{\"n\":1}".to_vec()))
        );
        let new: Vec<(i64, Vec<u8>)> = new_events(s.conn(), 0, 10)?
            .into_iter()
            .map(|e| (e.id, e.raw.body))
            .collect();
        assert_eq!(new, [(2, b"{\"n\":2}".to_vec())]);
        // New events after the upgrade are stored compressed and read back as received.
        let tx = s.transaction()?;
        let big = RawEvent {
            body: format!("{{\"description\":\"{}\"}}", "abc ".repeat(2000)).into_bytes(),
            ..raw("k3")
        };
        let Ingested::Accepted(id) = insert_event(&tx, &big, 30, 0)? else {
            panic!("not stored");
        };
        let stored: i64 = tx.query_row(
            "SELECT length(body) FROM event_bodies WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        assert!(
            stored < (big.body.len() / 4) as i64,
            "stored {stored} bytes"
        );
        assert_eq!(event(&tx, id)?.map(|e| e.raw.body), Some(big.body));
        Ok(())
    }
}
