//! Events on PostgreSQL: ingest with dedupe, a group of webhooks in one statement, the readiness probe's row, new
//! events read back for the router (no high-water mark), the routed mark with its messages
//! under their objects' locks, and pruning.

use super::messages::{listed_row, lock_objects, object_keys, LOCK_OBJECTS};
use super::{PgError, LOCK_SPACE};
use crate::deliver::store::{
    self, EncodedEvent, EventFilter, EventRow, Ingested, ListedRow, PruneBefore, Pruned,
    RoutedEvent, StoredEvent,
};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

/// Records `key` as seen at `now` unless it was seen at or after `since`; `true` when it was
/// (a duplicate). Two replicas receiving one key at once meet on its unique index: the second
/// waits for the first's commit, then sees a duplicate.
pub(super) async fn seen_before(
    tx: &Transaction<'_>,
    key: &str,
    now: i64,
    since: i64,
) -> Result<bool, PgError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO dedupe (key, received_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET received_at = EXCLUDED.received_at
              WHERE dedupe.received_at < $3
             RETURNING 1",
        )
        .await?;
    Ok(tx.query_opt(&stmt, &[&key, &now, &since]).await?.is_none())
}

/// Most deliveries [`ingest_group`] writes in one statement.
pub const MAX_INGEST_GROUP: usize = 256;

/// One delivery of an ingest group: the event and its receive time (unix ms).
#[derive(Debug, Clone)]
pub struct Queued {
    /// The event, encoded.
    pub ev: EncodedEvent,
    /// When it was received.
    pub now: i64,
}

/// Stores a group of received deliveries in one statement and one commit (the acknowledgement
/// path of every webhook that arrived while the previous group was being committed): each is a
/// new event unless its dedupe key was seen within `window_ms` of its receive time. The keys of
/// a group must be distinct (one statement cannot both insert a key and find it again); the
/// caller keeps a repeated key for the next group. Returns one answer per delivery, in order.
/// Event ids follow the group's order, so per-object order holds.
pub async fn ingest_group(
    client: &deadpool_postgres::ClientWrapper,
    group: &[Queued],
    window_ms: i64,
) -> Result<Vec<Ingested>, PgError> {
    // The sequence is looked up once per statement (a sub-select, run once), not once per row:
    // `pg_get_serial_sequence` searches the catalog each time it is called.
    let stmt = client
        .prepare_cached(
            "WITH input AS (
                  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[])
                         WITH ORDINALITY AS i(received_at, request_id, dedupe_key, headers, body, n)),
                  d AS (INSERT INTO dedupe (key, received_at)
                        SELECT dedupe_key, received_at FROM input WHERE dedupe_key IS NOT NULL
                        ON CONFLICT (key) DO UPDATE SET received_at = EXCLUDED.received_at
                         WHERE dedupe.received_at < EXCLUDED.received_at - $6::bigint
                        RETURNING key),
                  a AS MATERIALIZED (
                        SELECT n, received_at, request_id, dedupe_key, headers, body,
                               nextval((SELECT pg_get_serial_sequence('events', 'id')::regclass)) AS id
                          FROM input
                         WHERE dedupe_key IS NULL OR dedupe_key IN (SELECT key FROM d)
                         ORDER BY n),
                  e AS (INSERT INTO events (id, received_at, request_id, dedupe_key)
                        OVERRIDING SYSTEM VALUE
                        SELECT id, received_at, request_id, dedupe_key FROM a),
                  b AS (INSERT INTO event_bodies (id, headers, body, encoding)
                        SELECT id, headers, body, 'lz4' FROM a)
             SELECT n, id FROM a",
        )
        .await?;
    let received: Vec<i64> = group.iter().map(|q| q.now).collect();
    let request_ids: Vec<&str> = group.iter().map(|q| q.ev.request_id.as_str()).collect();
    let keys: Vec<Option<&str>> = group.iter().map(|q| q.ev.dedupe_key.as_deref()).collect();
    let headers: Vec<&str> = group.iter().map(|q| q.ev.headers.as_str()).collect();
    let bodies: Vec<&[u8]> = group.iter().map(|q| q.ev.body.as_slice()).collect();
    let rows = client
        .query(
            &stmt,
            &[
                &received,
                &request_ids,
                &keys,
                &headers,
                &bodies,
                &window_ms,
            ],
        )
        .await?;
    let mut answers = vec![Ingested::Duplicate; group.len()];
    for r in rows {
        let n: i64 = r.try_get(0)?;
        let id: i64 = r.try_get(1)?;
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| answers.get_mut(i)) {
            *slot = Ingested::Accepted(id);
        }
    }
    Ok(answers)
}

/// Marks each event routed with its messages and memory, and announces the channels that got
/// messages on `notify_on` (sent at commit); an event routed already is left as it is. Returns
/// the channels that got messages.
///
/// Two statements sent together (one round trip for the whole batch): the advisory locks of the
/// messages' objects, then one statement that marks the events, inserts the messages of those
/// it marked (ids in the batch's order; a message is its object's head when it is the object's
/// first in the batch and the object has no pending message) and writes their memory (the last
/// value of each key). The locks come first and apart: a statement sees what committed before
/// it began, so the objects' pending messages are read only once their locks are held.
pub async fn routed(
    tx: &Transaction<'_>,
    events: &[RoutedEvent],
    now: i64,
    notify_on: &str,
) -> Result<Vec<String>, PgError> {
    let lock = tx.prepare_cached(LOCK_OBJECTS).await?;
    // The messages' sequence looked up once per statement, as in `ingest_group`.
    let mark = tx
        .prepare_cached(
            "WITH ev AS (
                  SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                         AS t(id, kind, key, project, outcome)),
                  marked AS (
                  UPDATE events e SET state = 'routed', routed_at = $1, kind = ev.kind,
                                      key = ev.key, project = ev.project, outcome = ev.outcome
                    FROM ev WHERE e.id = ev.id AND e.state = 'new'
                  RETURNING e.id),
                  input AS (
                  SELECT i.*, row_number() OVER (PARTITION BY i.channel, i.ordering_key
                                                 ORDER BY i.n) = 1 AS first
                    FROM unnest($7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[],
                                $12::text[], $13::text[])
                         WITH ORDINALITY AS i(event_id, request_id, idempotency_key, delivery_id,
                                              channel, ordering_key, body, n)
                   WHERE i.event_id IN (SELECT id FROM marked)),
                  m AS MATERIALIZED (
                  SELECT input.*, nextval((SELECT pg_get_serial_sequence('messages', 'id')::regclass)) AS id
                    FROM input ORDER BY n),
                  ins AS (
                  INSERT INTO messages (id, request_id, delivery_id, channel, ordering_key, body,
                                        created_at, next_at, idempotency_key, event_id, head)
                  OVERRIDING SYSTEM VALUE
                  SELECT id, request_id, delivery_id, channel, ordering_key, body, $1, $1,
                         idempotency_key, event_id,
                         first AND NOT EXISTS (SELECT 1 FROM messages p
                                                WHERE p.channel = m.channel
                                                  AND p.ordering_key = m.ordering_key
                                                  AND p.state = 'pending')
                    FROM m),
                  mem AS (
                  INSERT INTO router_memory (key, value, updated_at)
                  SELECT DISTINCT ON (k.key) k.key, k.value, $1
                    FROM unnest($14::bigint[], $15::text[], $16::text[])
                         WITH ORDINALITY AS k(event_id, key, value, n)
                   WHERE k.event_id IN (SELECT id FROM marked)
                   ORDER BY k.key, k.n DESC
                  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                                  updated_at = EXCLUDED.updated_at)
             SELECT c, pg_notify($17, c) FROM (SELECT DISTINCT channel AS c FROM m) d",
        )
        .await?;
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    let projects: Vec<&str> = events.iter().map(|e| e.project.as_str()).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    let mut m_event = Vec::new();
    let mut m_request = Vec::new();
    let mut m_idempotency = Vec::new();
    let mut m_delivery = Vec::new();
    let mut m_channel = Vec::new();
    let mut m_object = Vec::new();
    let mut m_body = Vec::new();
    let mut k_event = Vec::new();
    let mut k_key = Vec::new();
    let mut k_value = Vec::new();
    for e in events {
        for d in &e.deliveries {
            m_event.push(e.event_id);
            m_request.push(e.request_id.as_str());
            m_idempotency.push(e.idempotency_key.as_deref());
            m_delivery.push(d.id.as_str());
            m_channel.push(d.channel.as_str());
            m_object.push(d.ordering_key.as_str());
            m_body.push(d.body.as_str());
        }
        for (key, value) in &e.memory {
            k_event.push(e.event_id);
            k_key.push(key.as_str());
            k_value.push(value.as_str());
        }
    }
    let objects = object_keys(events.iter().flat_map(|e| e.deliveries.iter()));
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&LOCK_SPACE, &objects];
    let locked = async {
        if objects.is_empty() {
            Ok(Vec::new())
        } else {
            tx.query(&lock, &lock_params).await
        }
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 17] = [
        &now,
        &ids,
        &kinds,
        &keys,
        &projects,
        &outcomes,
        &m_event,
        &m_request,
        &m_idempotency,
        &m_delivery,
        &m_channel,
        &m_object,
        &m_body,
        &k_event,
        &k_key,
        &k_value,
        &notify_on,
    ];
    let marked = tx.query(&mark, &params);
    // Polled in this order, the lock statement is sent first.
    let (_, rows) = tokio::try_join!(locked, marked)?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Columns [`stored_event`] reads, in its order, and the join they come from.
const STORED_EVENT_COLUMNS: &str =
    "e.id, e.received_at, e.request_id, e.dedupe_key, b.headers, b.body, e.replay_of, b.encoding
       FROM events e JOIN event_bodies b ON b.id = e.id";

fn stored_event(r: &Row) -> Result<StoredEvent, PgError> {
    store::stored_event_of(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get::<_, &str>(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get::<_, Option<&str>>(7)?,
    )
    .map_err(PgError::Db)
}

/// Events not routed yet, oldest first (whatever was committed late: no high-water mark).
pub async fn new_events(
    client: &tokio_postgres::Client,
    limit: usize,
) -> Result<Vec<StoredEvent>, PgError> {
    let rows = client
        .query(
            &format!("SELECT {STORED_EVENT_COLUMNS} WHERE e.state = 'new' ORDER BY e.id LIMIT $1"),
            &[&(limit as i64)],
        )
        .await?;
    rows.iter().map(stored_event).collect()
}

/// Event `id` as received, if it is still kept.
pub async fn event(
    client: &tokio_postgres::Client,
    id: i64,
) -> Result<Option<StoredEvent>, PgError> {
    client
        .query_opt(
            &format!("SELECT {STORED_EVENT_COLUMNS} WHERE e.id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(stored_event)
        .transpose()
}

/// The columns [`event_row_of`] reads.
const EVENT_ROW_COLUMNS: &str =
    "id, received_at, state, kind, key, project, outcome, replay_of, request_id FROM events";

fn event_row_of(r: &Row) -> Result<EventRow, PgError> {
    Ok(EventRow {
        id: r.try_get(0)?,
        received_at: r.try_get(1)?,
        state: r.try_get(2)?,
        kind: r.try_get(3)?,
        key: r.try_get(4)?,
        project: r.try_get(5)?,
        outcome: r.try_get(6)?,
        replay_of: r.try_get(7)?,
        request_id: r.try_get(8)?,
    })
}

/// Events newest first, as `events list` shows them.
pub async fn list_events(
    client: &tokio_postgres::Client,
    filter: &EventFilter,
) -> Result<Vec<EventRow>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT {EVENT_ROW_COLUMNS}
                  WHERE ($1::text IS NULL OR kind = $1)
                    AND ($2::text IS NULL OR strpos(COALESCE(project, ''), $2) > 0)
                    AND ($3::bigint IS NULL OR received_at >= $3)
                  ORDER BY id DESC LIMIT $4"
            ),
            &[
                &filter.kind,
                &filter.project,
                &filter.since,
                &(filter.limit.min(i64::MAX as usize) as i64),
            ],
        )
        .await?;
    rows.iter().map(event_row_of).collect()
}

/// Event `id`'s summary, if it is kept.
pub async fn event_row(
    client: &tokio_postgres::Client,
    id: i64,
) -> Result<Option<EventRow>, PgError> {
    client
        .query_opt(&format!("SELECT {EVENT_ROW_COLUMNS} WHERE id = $1"), &[&id])
        .await?
        .as_ref()
        .map(event_row_of)
        .transpose()
}

/// Ids of events received at or after `since` (unix ms) that are not replays, oldest first.
pub async fn event_ids_since(
    client: &tokio_postgres::Client,
    since: i64,
) -> Result<Vec<i64>, PgError> {
    let rows = client
        .query(
            "SELECT id FROM events WHERE received_at >= $1 AND replay_of IS NULL ORDER BY id",
            &[&since],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The messages of event `id` with their state (`pending`, `sent`, `dead`), oldest first.
pub async fn event_messages(
    client: &tokio_postgres::Client,
    id: i64,
) -> Result<Vec<ListedRow>, PgError> {
    let rows = client
        .query(
            "SELECT id, state, COALESCE(sent_at, next_at), delivery_id, channel, attempts,
                    created_at, last_status, last_error
               FROM messages WHERE event_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    rows.iter().map(listed_row).collect()
}

/// Stores a replay of `of` as a new event (request id `routed.request_id`, no dedupe key,
/// pointing at `of`) marked routed with its messages, in the caller's transaction; returns its
/// id. The event is inserted `new` and marked in the same transaction, so no router ever sees
/// it unrouted; its messages take their objects' locks as [`routed`]'s do.
pub async fn replay(
    tx: &Transaction<'_>,
    of: &StoredEvent,
    routed_as: &RoutedEvent,
    now: i64,
    notify_on: &str,
) -> Result<i64, PgError> {
    lock_objects(tx, routed_as.deliveries.iter()).await?;
    let mut raw = of.raw.clone();
    raw.request_id = routed_as.request_id.clone();
    raw.dedupe_key = None;
    let ev = raw.encode();
    let row = tx
        .query_one(
            "WITH e AS (INSERT INTO events (received_at, request_id, replay_of)
                        VALUES ($1, $2, $3) RETURNING id)
             INSERT INTO event_bodies (id, headers, body, encoding)
             SELECT id, $4, $5, 'lz4' FROM e RETURNING id",
            &[&now, &ev.request_id, &of.id, &ev.headers, &ev.body],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let routed_as = RoutedEvent {
        event_id: id,
        idempotency_key: None,
        ..routed_as.clone()
    };
    routed(tx, std::slice::from_ref(&routed_as), now, notify_on).await?;
    Ok(id)
}

/// Forgets, in `tx`, what is older than `before` says: dedupe keys, routed events (with their
/// sent messages), and the memories and conversations of quiet objects.
pub async fn prune(tx: &Transaction<'_>, before: PruneBefore) -> Result<Pruned, PgError> {
    Ok(Pruned {
        events: prune_events(tx, before.dedupe, before.events).await?,
        memories: super::memory::forget_quiet(tx, before.quiet).await?,
        conversations: super::conversations::forget_quiet(tx, before.quiet).await?,
    })
}

async fn prune_events(
    tx: &Transaction<'_>,
    dedupe_before: i64,
    events_before: i64,
) -> Result<u64, PgError> {
    tx.execute(
        "DELETE FROM dedupe WHERE received_at < $1",
        &[&dedupe_before],
    )
    .await?;
    tx.execute(
        "DELETE FROM messages WHERE state = 'sent' AND sent_at < $1",
        &[&events_before],
    )
    .await?;
    tx.execute(
        "DELETE FROM event_bodies WHERE id IN
           (SELECT id FROM events WHERE state = 'routed' AND received_at < $1)",
        &[&events_before],
    )
    .await?;
    Ok(tx
        .execute(
            "DELETE FROM events WHERE state = 'routed' AND received_at < $1",
            &[&events_before],
        )
        .await?)
}

/// The readiness probe's dedupe key: no HTTP header can carry DEL, so no `Idempotency-Key`
/// meets it (SQLite's has a NUL, which PostgreSQL's text refuses).
pub const PROBE_KEY: &str = "\u{7f}readyz";

/// The readiness probe's write.
pub async fn touch(tx: &Transaction<'_>, now: i64) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO dedupe (key, received_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET received_at = EXCLUDED.received_at",
        )
        .await?;
    tx.execute(&stmt, &[&PROBE_KEY, &now]).await?;
    Ok(())
}

/// Events stored and not routed yet.
pub async fn unrouted_count(client: &tokio_postgres::Client) -> Result<u64, PgError> {
    let n: i64 = client
        .query_one("SELECT COUNT(*) FROM events WHERE state = 'new'", &[])
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

/// When the delivery with dedupe key `key` was last received.
pub async fn received_at(
    client: &tokio_postgres::Client,
    key: &str,
) -> Result<Option<i64>, PgError> {
    Ok(client
        .query_opt("SELECT received_at FROM dedupe WHERE key = $1", &[&key])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}
