//! The PostgreSQL store's operations in SQL, each on a transaction the engine
//! ([`super::engine`]) opens and commits: the same rows and rules as SQLite's
//! ([`crate::deliver::store`]), plus what several replicas need (docs/postgres.md): per-object
//! advisory locks around every change of an object's head, leases with a token, `SKIP LOCKED`,
//! and the shared rate window on the database's clock.

use super::{PgError, LOCK_SPACE};
use crate::deliver::engine::{LeaseAnswer, LeaseRequest, Slot, DIGEST_MAX};
use crate::deliver::store::{
    self, ChannelStats, ChatRule, EncodedEvent, Ingested, Leased, ListedRow, Outcome, RoutedEvent,
    RuleChange, StoredEvent,
};
use crate::deliver::{Batch, Delivery, Enqueued};
use deadpool_postgres::Transaction;
use std::time::Duration;
use tokio_postgres::Row;

/// The second key of the advisory lock of a channel's digest prefix is the channel's hash; an
/// object's lock hashes `channel \n ordering key`. A collision only serialises two objects
/// more than needed.
fn lock_key(parts: &[&str]) -> i32 {
    // FNV-1a: stable across replicas and releases (every replica must compute the same key).
    let mut h: u32 = 0x811c_9dc5;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= u32::from(b'\n');
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in p.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h as i32
}

/// Takes the advisory locks of `keys` for the rest of the transaction, in ascending order (two
/// transactions locking overlapping sets never wait on each other in a cycle).
async fn lock_keys(tx: &Transaction<'_>, mut keys: Vec<i32>) -> Result<(), PgError> {
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock($1, k)
               FROM unnest($2::int4[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
        )
        .await?;
    tx.query(&stmt, &[&LOCK_SPACE, &keys]).await?;
    Ok(())
}

/// Locks the objects of `deliveries` (see [`lock_key`]).
async fn lock_objects<'a>(
    tx: &Transaction<'_>,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<(), PgError> {
    let keys = deliveries
        .map(|d| lock_key(&[&d.channel, &d.ordering_key]))
        .collect();
    lock_keys(tx, keys).await
}

/// Records `key` as seen at `now` unless it was seen at or after `since`; `true` when it was
/// (a duplicate). Two replicas receiving one key at once meet on its unique index: the second
/// waits for the first's commit, then sees a duplicate.
async fn seen_before(
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

/// Stores a received delivery as a new event unless its dedupe key is a duplicate: one
/// statement, so one round trip and one commit (the acknowledgement path). The key's row is the
/// unique index two replicas meet on: the second waits for the first's commit, then finds the
/// key seen (no row back: a duplicate).
pub async fn ingest(
    client: &deadpool_postgres::ClientWrapper,
    ev: &EncodedEvent,
    now: i64,
    dedupe_since: i64,
) -> Result<Ingested, PgError> {
    let stmt = client
        .prepare_cached(
            "WITH d AS (INSERT INTO dedupe (key, received_at)
                        SELECT $3::text, $1::bigint WHERE $3::text IS NOT NULL
                        ON CONFLICT (key) DO UPDATE SET received_at = EXCLUDED.received_at
                         WHERE dedupe.received_at < $6
                        RETURNING 1),
                  e AS (INSERT INTO events (received_at, request_id, dedupe_key)
                        SELECT $1, $2, $3 WHERE $3::text IS NULL OR EXISTS (SELECT 1 FROM d)
                        RETURNING id)
             INSERT INTO event_bodies (id, headers, body, encoding)
             SELECT id, $4, $5, 'lz4' FROM e RETURNING id",
        )
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &now,
                &ev.request_id,
                &ev.dedupe_key,
                &ev.headers,
                &ev.body,
                &dedupe_since,
            ],
        )
        .await?;
    Ok(match row {
        Some(r) => Ingested::Accepted(r.try_get(0)?),
        None => Ingested::Duplicate,
    })
}

/// Inserts `deliveries` as messages (the caller holds their objects' locks): each is its
/// object's head when the object has no other pending message.
async fn insert_messages(
    tx: &Transaction<'_>,
    event_id: Option<i64>,
    request_id: &str,
    idempotency_key: Option<&str>,
    deliveries: &[Delivery],
    now: i64,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO messages (request_id, delivery_id, channel, ordering_key, body,
                                   created_at, next_at, idempotency_key, event_id, head)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8,
                     NOT EXISTS (SELECT 1 FROM messages WHERE channel = $3 AND ordering_key = $4
                                                          AND state = 'pending'))",
        )
        .await?;
    for d in deliveries {
        tx.execute(
            &stmt,
            &[
                &request_id,
                &d.id,
                &d.channel,
                &d.ordering_key,
                &d.body,
                &now,
                &idempotency_key,
                &event_id,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Inserts a batch of messages not tied to an event, deduplicated on its key.
pub async fn enqueue(
    tx: &Transaction<'_>,
    batch: &Batch,
    now: i64,
    dedupe_since: i64,
) -> Result<Enqueued, PgError> {
    lock_objects(tx, batch.deliveries.iter()).await?;
    if let Some(key) = &batch.dedupe_key {
        if seen_before(tx, key, now, dedupe_since).await? {
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
    )
    .await?;
    Ok(Enqueued::Accepted)
}

/// Marks each event routed with its messages and memory; an event routed already is left as
/// it is. Returns the channels that got messages.
pub async fn routed(
    tx: &Transaction<'_>,
    events: &[RoutedEvent],
    now: i64,
) -> Result<Vec<String>, PgError> {
    lock_objects(tx, events.iter().flat_map(|e| e.deliveries.iter())).await?;
    let mark = tx
        .prepare_cached(
            "UPDATE events SET state = 'routed', routed_at = $2, kind = $3, key = $4,
                    project = $5, outcome = $6
              WHERE id = $1 AND state = 'new'",
        )
        .await?;
    let remember = tx
        .prepare_cached(
            "INSERT INTO router_memory (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                             updated_at = EXCLUDED.updated_at",
        )
        .await?;
    let mut woken = Vec::new();
    for r in events {
        let changed = tx
            .execute(
                &mark,
                &[&r.event_id, &now, &r.kind, &r.key, &r.project, &r.outcome],
            )
            .await?;
        if changed == 0 {
            continue;
        }
        for (key, value) in &r.memory {
            tx.execute(&remember, &[key, value, &now]).await?;
        }
        insert_messages(
            tx,
            Some(r.event_id),
            &r.request_id,
            r.idempotency_key.as_deref(),
            &r.deliveries,
            now,
        )
        .await?;
        woken.extend(r.deliveries.iter().map(|d| d.channel.clone()));
    }
    Ok(woken)
}

/// Events not routed yet, oldest first (whatever was committed late: no high-water mark).
pub async fn new_events(
    client: &tokio_postgres::Client,
    limit: usize,
) -> Result<Vec<StoredEvent>, PgError> {
    let rows = client
        .query(
            "SELECT e.id, e.received_at, e.request_id, e.dedupe_key, b.headers, b.body,
                    e.replay_of, b.encoding
               FROM events e JOIN event_bodies b ON b.id = e.id
              WHERE e.state = 'new' ORDER BY e.id LIMIT $1",
            &[&(limit as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}

/// The value the router last remembered under `key`.
pub async fn memory(client: &tokio_postgres::Client, key: &str) -> Result<Option<String>, PgError> {
    Ok(client
        .query_opt("SELECT value FROM router_memory WHERE key = $1", &[&key])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

fn leased(r: &Row) -> Result<Leased, PgError> {
    Ok(Leased {
        id: r.try_get(0)?,
        delivery_id: r.try_get(1)?,
        body: r.try_get(2)?,
        attempts: r.try_get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: r.try_get(4)?,
        idempotency_key: r.try_get(5)?,
    })
}

/// Leases what `req` asks for under `token`, for `owner` (see [`LeaseRequest`]).
pub async fn lease(
    tx: &Transaction<'_>,
    req: &LeaseRequest,
    token: i64,
    owner: &str,
) -> Result<LeaseAnswer, PgError> {
    let (channel, now) = (&req.channel, req.now);
    let mut messages = Vec::new();
    if req.digest_over > 0 {
        let count = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages
                                        WHERE channel = $1 AND state = 'pending' AND next_at <= $2
                                        LIMIT $3) d",
            )
            .await?;
        let due: i64 = tx
            .query_one(&count, &[channel, &now, &(req.digest_over as i64 + 1)])
            .await?
            .try_get(0)?;
        if due > req.digest_over as i64 {
            messages = lease_prefix(tx, req, token, owner).await?;
        }
    }
    let digest = !messages.is_empty();
    if !digest {
        let stmt = tx
            .prepare_cached(
                "WITH c AS (SELECT id FROM messages
                             WHERE channel = $1 AND state = 'pending' AND head AND next_at <= $2
                               AND (lease_until IS NULL OR lease_until <= $2)
                             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 UPDATE messages m
                    SET lease_until = $2 + $4 * (SELECT COUNT(*) FROM c), lease_token = $5,
                        lease_owner = $6
                   FROM c WHERE m.id = c.id
                 RETURNING m.id, m.delivery_id, m.body, m.attempts, m.created_at,
                           m.idempotency_key",
            )
            .await?;
        let rows = tx
            .query(
                &stmt,
                &[
                    channel,
                    &now,
                    &(req.max.max(1) as i64),
                    &req.lease_ms,
                    &token,
                    &owner,
                ],
            )
            .await?;
        messages = rows.iter().map(leased).collect::<Result<_, _>>()?;
        messages.sort_by_key(|m| m.id);
    }
    let next_due = if messages.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT MIN(GREATEST(next_at, COALESCE(lease_until, 0))) FROM messages
                  WHERE channel = $1 AND state = 'pending' AND head",
            )
            .await?;
        tx.query_one(&stmt, &[channel]).await?.try_get(0)?
    } else {
        None
    };
    Ok(LeaseAnswer {
        messages,
        digest,
        next_due,
    })
}

/// The digest's lease: an unbroken prefix of the channel's queue, never tried, due and not
/// leased, at least two long. One replica at a time digests a channel (its advisory lock); the
/// prefix is read without skipping, so a row leased elsewhere ends it instead of leaving a gap.
async fn lease_prefix(
    tx: &Transaction<'_>,
    req: &LeaseRequest,
    token: i64,
    owner: &str,
) -> Result<Vec<Leased>, PgError> {
    lock_keys(tx, vec![lock_key(&[&req.channel])]).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT id, delivery_id, body, attempts, created_at, idempotency_key, next_at,
                    lease_until
               FROM messages WHERE channel = $1 AND state = 'pending' ORDER BY id LIMIT $2
                FOR UPDATE",
        )
        .await?;
    let rows = tx
        .query(&stmt, &[&req.channel, &(DIGEST_MAX as i64)])
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        let ready = r.try_get::<_, i64>(3)? == 0
            && r.try_get::<_, i64>(6)? <= req.now
            && r.try_get::<_, Option<i64>>(7)?.is_none_or(|l| l <= req.now);
        if !ready {
            break;
        }
        out.push(leased(r)?);
    }
    if out.len() < 2 {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = out.iter().map(|m| m.id).collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET lease_until = $2, lease_token = $3, lease_owner = $4
              WHERE id = ANY($1)",
        )
        .await?;
    tx.execute(&stmt, &[&ids, &(req.now + req.lease_ms), &token, &owner])
        .await?;
    Ok(out)
}

/// Moves the lease of `ids` (held under `token`) to end at `until`; `false` when any of them
/// is no longer this lease's (it expired and was taken over).
pub async fn renew(
    tx: &Transaction<'_>,
    ids: &[i64],
    token: i64,
    until: i64,
) -> Result<bool, PgError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET lease_until = $3
              WHERE id = ANY($1) AND lease_token = $2 AND state = 'pending'",
        )
        .await?;
    let n = tx.execute(&stmt, &[&ids, &token, &until]).await?;
    Ok(n as usize == ids.len())
}

/// Records the outcome of an attempt on `id`, if its lease is still `token`'s; `false` when it
/// is not (the lease expired and another replica took the message over).
pub async fn record(
    tx: &Transaction<'_>,
    id: i64,
    token: i64,
    outcome: &Outcome,
    now: i64,
) -> Result<bool, PgError> {
    let find = tx
        .prepare_cached(
            "SELECT channel, ordering_key FROM messages
              WHERE id = $1 AND lease_token = $2 AND state = 'pending'",
        )
        .await?;
    let Some(row) = tx.query_opt(&find, &[&id, &token]).await? else {
        return Ok(false);
    };
    let (channel, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let promotes = matches!(outcome, Outcome::Sent | Outcome::Dead { .. });
    if promotes {
        lock_keys(tx, vec![lock_key(&[&channel, &key])]).await?;
    }
    let n = match outcome {
        Outcome::Sent => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET state = 'sent', sent_at = $3, attempts = attempts + 1,
                            lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                            last_error = NULL, head = FALSE
                      WHERE id = $1 AND lease_token = $2",
                )
                .await?;
            tx.execute(&stmt, &[&id, &token, &now]).await?
        }
        Outcome::Retry {
            next_at,
            status,
            error,
        } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET attempts = attempts + 1, next_at = $3,
                            lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                            last_status = $4, last_error = $5
                      WHERE id = $1 AND lease_token = $2",
                )
                .await?;
            let status = status.map(i64::from);
            tx.execute(&stmt, &[&id, &token, next_at, &status, error])
                .await?
        }
        Outcome::Dead { status, error } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET attempts = attempts + 1, state = 'dead',
                            lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                            last_status = $3, last_error = $4, head = FALSE
                      WHERE id = $1 AND lease_token = $2",
                )
                .await?;
            let status = status.map(i64::from);
            tx.execute(&stmt, &[&id, &token, &status, error]).await?
        }
        Outcome::Release => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET lease_until = NULL, lease_token = NULL,
                            lease_owner = NULL
                      WHERE id = $1 AND lease_token = $2",
                )
                .await?;
            tx.execute(&stmt, &[&id, &token]).await?
        }
    };
    if n == 0 {
        return Ok(false);
    }
    if promotes {
        promote(tx, &channel, &key).await?;
    }
    Ok(true)
}

/// Makes the oldest pending message of the object its head (the caller holds its lock).
async fn promote(tx: &Transaction<'_>, channel: &str, key: &str) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET head = (id = (SELECT MIN(id) FROM messages
                                                WHERE channel = $1 AND ordering_key = $2
                                                  AND state = 'pending'))
              WHERE channel = $1 AND ordering_key = $2 AND state = 'pending'",
        )
        .await?;
    tx.execute(&stmt, &[&channel, &key]).await?;
    Ok(())
}

/// Makes the dead letter `id` due again at `now`; its channel, or `None` when it is not dead.
pub async fn retry_dead(
    tx: &Transaction<'_>,
    id: i64,
    now: i64,
) -> Result<Option<String>, PgError> {
    let Some(row) = tx
        .query_opt(
            "SELECT channel, ordering_key FROM messages WHERE id = $1 AND state = 'dead'",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (channel, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    lock_keys(tx, vec![lock_key(&[&channel, &key])]).await?;
    let n = tx
        .execute(
            "UPDATE messages SET state = 'pending', attempts = 0, next_at = $2,
                    lease_until = NULL, lease_token = NULL, lease_owner = NULL
              WHERE id = $1 AND state = 'dead'",
            &[&id, &now],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    promote(tx, &channel, &key).await?;
    Ok(Some(channel))
}

/// Releases the leases `owner` held (a replica restarting under the same name: nothing of its
/// previous run is in flight any more). Returns how many.
pub async fn release_owned(tx: &Transaction<'_>, owner: &str) -> Result<u64, PgError> {
    Ok(tx
        .execute(
            "UPDATE messages SET lease_until = NULL, lease_token = NULL, lease_owner = NULL
              WHERE lease_owner = $1 AND state = 'pending'",
            &[&owner],
        )
        .await?)
}

/// Forgets old dedupe keys and routed events (with their sent messages).
pub async fn prune(
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

/// Counts per channel.
pub async fn stats(client: &tokio_postgres::Client) -> Result<Vec<ChannelStats>, PgError> {
    let rows = client
        .query(
            "SELECT channel,
                    COUNT(*) FILTER (WHERE state = 'pending' AND attempts = 0),
                    COUNT(*) FILTER (WHERE state = 'pending' AND attempts > 0),
                    COUNT(*) FILTER (WHERE state = 'dead'),
                    MIN(created_at) FILTER (WHERE state = 'pending')
               FROM messages WHERE state IN ('pending', 'dead')
              GROUP BY channel ORDER BY channel",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ChannelStats {
                channel: r.try_get(0)?,
                pending: r.try_get::<_, i64>(1)?.max(0) as u64,
                retrying: r.try_get::<_, i64>(2)?.max(0) as u64,
                dead: r.try_get::<_, i64>(3)?.max(0) as u64,
                oldest_created_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Changes the chat rules; the rows changed.
pub async fn change_rules(tx: &Transaction<'_>, change: &RuleChange) -> Result<usize, PgError> {
    async fn put(tx: &Transaction<'_>, r: &ChatRule) -> Result<usize, PgError> {
        Ok(tx
            .execute(
                "INSERT INTO chat_rules (chat, kind, subject, spec, until, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (chat, kind, subject) DO UPDATE SET spec = EXCLUDED.spec,
                     until = EXCLUDED.until, created_by = EXCLUDED.created_by,
                     created_at = EXCLUDED.created_at",
                &[
                    &r.chat,
                    &r.kind,
                    &r.subject,
                    &r.spec,
                    &r.until,
                    &r.created_by,
                    &r.created_at,
                ],
            )
            .await? as usize)
    }
    match change {
        RuleChange::Put(r) => put(tx, r).await,
        RuleChange::PutAll(rules) => {
            let mut n = 0;
            for r in rules {
                n += put(tx, r).await?;
            }
            Ok(n)
        }
        RuleChange::Delete {
            chat,
            kind,
            subject,
        } => Ok(tx
            .execute(
                "DELETE FROM chat_rules WHERE chat = $1 AND kind = $2 AND subject = $3",
                &[chat, kind, subject],
            )
            .await? as usize),
    }
}

/// Every chat rule.
pub async fn chat_rules(client: &tokio_postgres::Client) -> Result<Vec<ChatRule>, PgError> {
    let rows = client
        .query(
            "SELECT chat, kind, subject, spec, until, created_by, created_at FROM chat_rules
              ORDER BY chat, kind, subject",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ChatRule {
                chat: r.try_get(0)?,
                kind: r.try_get(1)?,
                subject: r.try_get(2)?,
                spec: r.try_get(3)?,
                until: r.try_get(4)?,
                created_by: r.try_get(5)?,
                created_at: r.try_get(6)?,
            })
        })
        .collect()
}

/// Messages not sent yet (or only dead letters), newest first: `outbox list`.
pub async fn list(
    client: &tokio_postgres::Client,
    dead_only: bool,
    limit: usize,
) -> Result<Vec<ListedRow>, PgError> {
    let rows = client
        .query(
            "SELECT id, state, next_at, delivery_id, channel, attempts, created_at, last_status,
                    last_error
               FROM messages WHERE state IN ('pending', 'dead') AND (NOT $1 OR state = 'dead')
              ORDER BY id DESC LIMIT $2",
            &[&dead_only, &(limit as i64)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ListedRow {
                id: r.try_get(0)?,
                state: r.try_get(1)?,
                next_at: r.try_get(2)?,
                delivery_id: r.try_get(3)?,
                channel: r.try_get(4)?,
                attempts: r.try_get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
                created_at: r.try_get(6)?,
                last_status: r
                    .try_get::<_, Option<i64>>(7)?
                    .map(|s| s.clamp(0, 999) as u16),
                last_error: r.try_get(8)?,
            })
        })
        .collect()
}

/// Makes every dead letter due again at `now` (`outbox retry --all-dead`), each object's head
/// recomputed under its lock; how many.
pub async fn retry_all_dead(tx: &Transaction<'_>, now: i64) -> Result<u64, PgError> {
    let objects = tx
        .query(
            "SELECT DISTINCT channel, ordering_key FROM messages WHERE state = 'dead'",
            &[],
        )
        .await?;
    let objects: Vec<(String, String)> = objects
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, PgError>>()?;
    lock_keys(tx, objects.iter().map(|(c, k)| lock_key(&[c, k])).collect()).await?;
    let n = tx
        .execute(
            "UPDATE messages SET state = 'pending', attempts = 0, next_at = $1,
                    lease_until = NULL, lease_token = NULL, lease_owner = NULL
              WHERE state = 'dead'",
            &[&now],
        )
        .await?;
    for (channel, key) in &objects {
        promote(tx, channel, key).await?;
    }
    Ok(n)
}

/// Deletes dead letters created before `before` (`outbox purge`); how many.
pub async fn purge_dead(tx: &Transaction<'_>, before: i64) -> Result<u64, PgError> {
    Ok(tx
        .execute(
            "DELETE FROM messages WHERE state = 'dead' AND created_at < $1",
            &[&before],
        )
        .await?)
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

/// When each channel last had a post.
pub async fn last_posts(client: &tokio_postgres::Client) -> Result<Vec<(String, i64)>, PgError> {
    let rows = client
        .query(
            "SELECT channel, MAX(sent_at) FROM messages WHERE state = 'sent'
              GROUP BY channel ORDER BY channel",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// How long posts count against a credential: a minute, plus a margin for the time between
/// taking a slot and the post's arrival at the chat (which differs from post to post), so that
/// the chat's clock never sees more than the budget in any 60 s either.
pub const RATE_WINDOW_MS: i64 = 61_000;

/// Takes a posting slot of `credential` (at most `per_minute` in any window, across every
/// replica) on the database's clock, or says how long to wait for one: the schema's
/// `gcb_take_slot`, one statement (its own transaction).
pub async fn take_slot(
    client: &deadpool_postgres::ClientWrapper,
    credential: &str,
    per_minute: u32,
) -> Result<Slot, PgError> {
    let stmt = client
        .prepare_cached("SELECT gcb_take_slot($1, $2, $3)")
        .await?;
    let budget = i64::from(per_minute.max(1));
    let wait: i64 = client
        .query_one(&stmt, &[&credential, &budget, &RATE_WINDOW_MS])
        .await?
        .try_get(0)?;
    Ok(match wait {
        w if w <= 0 => Slot::Go,
        w => Slot::Wait(Duration::from_millis(w as u64)),
    })
}

/// Pauses `credential` for `d` from now (the database's clock), for every replica; a longer
/// pause already set is kept.
pub async fn pause(tx: &Transaction<'_>, credential: &str, d: Duration) -> Result<(), PgError> {
    let now = db_now(tx).await?;
    let until = now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64);
    tx.execute(
        "INSERT INTO rate_credentials (credential, paused_until) VALUES ($1, $2)
         ON CONFLICT (credential) DO UPDATE
            SET paused_until = GREATEST(COALESCE(rate_credentials.paused_until, 0), $2)",
        &[&credential, &until],
    )
    .await?;
    Ok(())
}

/// The database's clock, unix milliseconds: the one clock every replica shares.
async fn db_now(tx: &Transaction<'_>) -> Result<i64, PgError> {
    let stmt = tx
        .prepare_cached("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
        .await?;
    Ok(tx.query_one(&stmt, &[]).await?.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_separate_the_parts() {
        // Replicas of different builds must agree: the key is part of the protocol.
        assert_eq!(lock_key(&["a", "b"]), lock_key(&["a", "b"]));
        assert_ne!(lock_key(&["ab", "c"]), lock_key(&["a", "bc"]));
        assert_eq!(lock_key(&[""]), 0x811c_9dc5_u32 as i32);
    }
}
