//! The PostgreSQL schema and its migrations, run at start under a session advisory lock: when
//! two replicas start at once on an empty database, one applies the steps and the other waits,
//! then finds nothing to do. Each step is one transaction with its version bump, so a replica
//! killed mid-way leaves the schema at a whole version. Steps must be additive, so that
//! replicas of the previous release keep working during a rolling upgrade.

use super::{PgError, LOCK_SPACE, MIGRATION_LOCK};
use tokio_postgres::Client;

/// Schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    request_id  TEXT   NOT NULL,
    dedupe_key  TEXT,
    state       TEXT   NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'routed')),
    routed_at   BIGINT,
    kind        TEXT,
    key         TEXT,
    project     TEXT,
    outcome     TEXT,
    replay_of   BIGINT
);
CREATE INDEX events_new ON events (id) WHERE state = 'new';
CREATE INDEX events_received ON events (received_at);
CREATE TABLE event_bodies (
    id       BIGINT PRIMARY KEY,
    headers  TEXT   NOT NULL,
    body     BYTEA  NOT NULL,
    encoding TEXT
);
CREATE TABLE messages (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead', 'sent')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    next_at         BIGINT  NOT NULL,
    lease_until     BIGINT,
    lease_token     BIGINT,
    lease_owner     TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    idempotency_key TEXT,
    event_id        BIGINT,
    sent_at         BIGINT,
    head            BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX messages_due ON messages (channel, state, next_at);
CREATE INDEX messages_order ON messages (channel, ordering_key, state, id);
CREATE INDEX messages_event ON messages (event_id);
CREATE INDEX messages_sent ON messages (sent_at) WHERE state = 'sent';
CREATE INDEX messages_heads ON messages (channel, id) WHERE state = 'pending' AND head;
CREATE INDEX messages_pending ON messages (channel, id) WHERE state = 'pending';
CREATE TABLE dedupe (
    key         TEXT   PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX dedupe_age ON dedupe (received_at);
CREATE TABLE chat_rules (
    chat       TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    spec       TEXT   NOT NULL,
    until      BIGINT,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chat, kind, subject)
);
CREATE TABLE router_memory (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE rate_credentials (
    credential   TEXT PRIMARY KEY,
    paused_until BIGINT
);
CREATE TABLE rate_posts (
    credential TEXT   NOT NULL,
    posted_at  BIGINT NOT NULL
);
CREATE INDEX rate_posts_window ON rate_posts (credential, posted_at);
-- A posting slot of a credential: 0 when taken, else how long to wait (ms). One round trip;
-- the credential's row lock makes replicas take its slots one at a time, and the clock is
-- the database's, read once the lock is held.
CREATE FUNCTION gcb_take_slot(cred TEXT, budget BIGINT, window_ms BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $fn$
DECLARE
    paused BIGINT;
    now_ms BIGINT;
    n      BIGINT;
    oldest BIGINT;
BEGIN
    INSERT INTO rate_credentials (credential) VALUES (cred) ON CONFLICT DO NOTHING;
    SELECT paused_until INTO paused FROM rate_credentials WHERE credential = cred FOR UPDATE;
    now_ms := (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT;
    IF paused IS NOT NULL AND paused > now_ms THEN
        RETURN paused - now_ms;
    END IF;
    DELETE FROM rate_posts WHERE credential = cred AND posted_at <= now_ms - window_ms;
    SELECT COUNT(*), MIN(posted_at) INTO n, oldest FROM rate_posts WHERE credential = cred;
    IF n >= budget THEN
        RETURN GREATEST(COALESCE(oldest + window_ms - now_ms, 1000), 1);
    END IF;
    INSERT INTO rate_posts (credential, posted_at) VALUES (cred, now_ms);
    RETURN 0;
END
$fn$;
"#,
    // Review reminders: each one's last scheduled instant run or skipped (unix ms).
    r#"
CREATE TABLE reminder_runs (
    name       TEXT   PRIMARY KEY,
    last_run   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    // Conversations: per channel and object, the chat's reference to the thread's root
    // message (opaque JSON), the hash of the root body shown, and when the object ended.
    r#"
CREATE TABLE conversations (
    channel    TEXT   NOT NULL,
    object_key TEXT   NOT NULL,
    root       TEXT   NOT NULL,
    body_hash  TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at  BIGINT,
    PRIMARY KEY (channel, object_key)
);
"#,
];

/// The schema version this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What [`migrate`] did: the schema version before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version found.
    pub from: i64,
    /// The version left (this binary's [`SCHEMA_VERSION`]).
    pub to: i64,
}

/// Brings the database's schema to [`SCHEMA_VERSION`], under the migration lock (waiting while
/// another replica migrates). Refuses a database newer than this binary.
pub async fn migrate(client: &mut Client) -> Result<Migrated, PgError> {
    client
        .execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&LOCK_SPACE, &MIGRATION_LOCK],
        )
        .await?;
    let result = migrate_locked(client).await;
    // Released even after a failure; a lost connection releases it too.
    let unlocked = client
        .execute(
            "SELECT pg_advisory_unlock($1, $2)",
            &[&LOCK_SPACE, &MIGRATION_LOCK],
        )
        .await;
    let migrated = result?;
    unlocked?;
    Ok(migrated)
}

async fn migrate_locked(client: &mut Client) -> Result<Migrated, PgError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                 version BIGINT  NOT NULL
             );
             INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;",
        )
        .await?;
    let from: i64 = client
        .query_one("SELECT version FROM schema_version", &[])
        .await?
        .try_get(0)?;
    if from > SCHEMA_VERSION {
        return Err(PgError::TooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("UPDATE schema_version SET version = $1", &[&(i as i64 + 1)])
            .await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "migrated the PostgreSQL schema");
    }
    Ok(Migrated {
        from,
        to: SCHEMA_VERSION,
    })
}
