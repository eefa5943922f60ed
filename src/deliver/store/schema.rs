//! The SQLite schema: the migrations from an empty file to the current version, each one
//! transaction with its `user_version` bump (the PostgreSQL engine's list is its own:
//! [`crate::deliver::pg::schema`]).

use super::StoreError;
use rusqlite::Connection;

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: [&str; 8] = [
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
    // Review reminders: each one's last scheduled instant run or skipped (unix ms), claimed in
    // the transaction that queues the run's messages.
    r#"
CREATE TABLE reminder_runs (
    name       TEXT    PRIMARY KEY,
    last_run   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Conversations: per channel and object, the chat's reference to the thread's root
    // message (opaque JSON), the hash of the root body shown, and when the object ended.
    r#"
CREATE TABLE conversations (
    channel    TEXT    NOT NULL,
    object_key TEXT    NOT NULL,
    root       TEXT    NOT NULL,
    body_hash  TEXT,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    closed_at  INTEGER,
    PRIMARY KEY (channel, object_key)
) WITHOUT ROWID;
"#,
];

/// Brings the schema of `conn` to the newest version; refuses a store written by a newer one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
        .try_into()
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::from_message(format!(
                "the outbox was written by a newer version (schema {version}); upgrade gitlab-chat-bridge"
            )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
