//! Messages on SQLite: inserting them (each its object's head when it is the oldest pending
//! one), leases (one by one, or a digest's prefix), outcomes and the promotion of the next head,
//! dead letters made due again, counts, the last posts and purges.

use super::events::seen_before;
use super::{ChannelStats, Leased, ListedRow, Outcome, StoreError};
use crate::deliver::{Batch, Delivery, Enqueued};
use rusqlite::{params, Connection, OptionalExtension};

/// When each channel last had a message posted (unix ms), by channel.
pub fn last_posts(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, MAX(sent_at) FROM messages WHERE state = 'sent' GROUP BY channel
         ORDER BY channel",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn listed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListedRow> {
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
pub(super) fn insert_messages(
    tx: &Connection,
    event_id: Option<i64>,
    request_id: &str,
    idempotency_key: Option<&str>,
    deliveries: &[Delivery],
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

/// Forgets every lease: called at start, when no worker can hold one.
pub fn clear_leases(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE messages SET lease_until = NULL WHERE lease_until IS NOT NULL",
        [],
    )?)
}

/// Messages not yet posted, newest first: only dead ones with `dead_only`.
pub fn list(
    conn: &Connection,
    dead_only: bool,
    limit: usize,
) -> Result<Vec<ListedRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, state, next_at, delivery_id, channel, attempts, created_at, last_status, last_error
         FROM messages WHERE state IN ('pending', 'dead') AND (?1 = 0 OR state = 'dead')
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![dead_only as i64, limit as i64], listed_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Makes dead messages pending again (one id, or all when `id` is `None`), due at `now`, in the
/// caller's transaction; how many.
pub fn retry_dead(tx: &Connection, id: Option<i64>, now: i64) -> Result<usize, StoreError> {
    let sql =
        "UPDATE messages SET state = 'pending', attempts = 0, next_at = ?1, lease_until = NULL
               WHERE state = 'dead' AND (?2 IS NULL OR id = ?2)";
    let n = tx.execute(sql, params![now, id])?;
    if n > 0 {
        recompute_heads(tx)?;
    }
    Ok(n)
}

/// Deletes dead messages received before `before` (unix ms).
pub fn purge_dead(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM messages WHERE state = 'dead' AND created_at < ?1",
        [before],
    )?)
}
