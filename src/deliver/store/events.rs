//! Events on SQLite: ingest with dedupe, the readiness probe's row, stored events read back
//! (bodies lz4-compressed), the routed mark with its messages, replays, the listings of the
//! `events` commands and pruning.

use super::memory::remember;
use super::messages::{insert_messages, listed_row};
use super::{
    EncodedEvent, EventFilter, EventRow, Ingested, ListedRow, RawEvent, RoutedEvent, StoreError,
    StoredEvent,
};
use rusqlite::{params, Connection, OptionalExtension};

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

/// When a delivery with dedupe key `key` was last received (unix ms), while the dedupe table
/// remembers it.
pub fn received_at(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT received_at FROM dedupe WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Whether `key` was seen at or after `since` (unix ms); remembers it at `now` when not.
pub(super) fn seen_before(
    tx: &Connection,
    key: &str,
    now: i64,
    since: i64,
) -> Result<bool, StoreError> {
    // One statement: a key seen since `since` is left as it was (no row changed: a duplicate);
    // a new key, or one seen before `since`, is stamped `now`.
    let changed = tx
        .prepare_cached(
            "INSERT INTO dedupe (key, received_at) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET received_at = excluded.received_at
             WHERE dedupe.received_at < ?3",
        )?
        .execute(params![key, now, since])?;
    Ok(changed == 0)
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
pub(in crate::deliver) fn stored_event_of(
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
        remember(tx, key, value, now)?;
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
        return Err(StoreError::from_message("the replay was not stored".into()));
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

/// Forgets dedupe keys received before `before` (unix ms).
pub fn prune_dedupe(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM dedupe WHERE received_at < ?1", [before])?)
}
