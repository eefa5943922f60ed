//! Messages on PostgreSQL: inserting them under their objects' advisory locks (each its
//! object's head when it is the oldest pending one), leases with a token and an owner taken
//! `FOR UPDATE SKIP LOCKED` (or a digest's prefix under the channel's lock), renewals,
//! outcomes guarded by the token with the promotion of the next head, dead letters made due
//! again, counts, the last posts and purges.

use super::events::seen_before;
use super::{PgError, LOCK_SPACE};
use crate::deliver::engine::{LeaseAnswer, LeaseRequest, DIGEST_MAX};
use crate::deliver::store::{ChannelStats, Leased, ListedRow, Outcome};
use crate::deliver::{Batch, Delivery, Enqueued};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

/// The second key of the advisory lock of a channel's digest prefix is the channel's hash; an
/// object's lock hashes `channel \n ordering key`. A collision only serialises two objects
/// more than needed.
pub(super) fn lock_key(parts: &[&str]) -> i32 {
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

/// Takes the advisory locks of `$2` (sorted) in the space `$1` for the rest of the transaction,
/// in that order.
pub(super) const LOCK_OBJECTS: &str = "SELECT pg_advisory_xact_lock($1, k)
   FROM unnest($2::int4[]) WITH ORDINALITY AS t(k, n) ORDER BY n";

/// Takes the advisory locks of `keys` for the rest of the transaction, in ascending order (two
/// transactions locking overlapping sets never wait on each other in a cycle).
pub(super) async fn lock_keys(tx: &Transaction<'_>, mut keys: Vec<i32>) -> Result<(), PgError> {
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    let stmt = tx.prepare_cached(LOCK_OBJECTS).await?;
    tx.query(&stmt, &[&LOCK_SPACE, &keys]).await?;
    Ok(())
}

/// The lock keys of the objects of `deliveries` (see [`lock_key`]), ascending, each once.
pub(super) fn object_keys<'a>(deliveries: impl Iterator<Item = &'a Delivery>) -> Vec<i32> {
    let mut keys: Vec<i32> = deliveries
        .map(|d| lock_key(&[&d.channel, &d.ordering_key]))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Locks the objects of `deliveries` (see [`lock_key`]).
pub(super) async fn lock_objects<'a>(
    tx: &Transaction<'_>,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<(), PgError> {
    lock_keys(tx, object_keys(deliveries)).await
}

/// Inserts `deliveries` as messages (the caller holds their objects' locks): each is its
/// object's head when the object has no other pending message.
pub(super) async fn insert_messages(
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

/// Leases what `req` asks for under `token`, for `owner` (see [`LeaseRequest`]), on `client`
/// (a pooled connection, in no transaction). Each step is one statement, committed on its own:
/// whether a digest is due (a count), the digest's prefix (in a transaction, under the channel's
/// lock), else the due heads (one statement that selects `FOR UPDATE SKIP LOCKED` and leases),
/// and, when nothing was leased, the next due time (a read). A plain lease is one round trip
/// instead of four (begin, lease, next due, commit).
pub async fn lease(
    client: &mut deadpool_postgres::Object,
    req: &LeaseRequest,
    token: i64,
    owner: &str,
) -> Result<LeaseAnswer, PgError> {
    let (channel, now) = (&req.channel, req.now);
    let mut messages = Vec::new();
    if req.digest_over > 0 {
        let count = client
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages
                                        WHERE channel = $1 AND state = 'pending' AND next_at <= $2
                                        LIMIT $3) d",
            )
            .await?;
        let due: i64 = client
            .query_one(&count, &[channel, &now, &(req.digest_over as i64 + 1)])
            .await?
            .try_get(0)?;
        if due > req.digest_over as i64 {
            let tx = client.transaction().await?;
            messages = lease_prefix(&tx, req, token, owner).await?;
            tx.commit().await?;
        }
    }
    let digest = !messages.is_empty();
    if !digest {
        let stmt = client
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
        let rows = client
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
        let stmt = client
            .prepare_cached(
                "SELECT MIN(GREATEST(next_at, COALESCE(lease_until, 0))) FROM messages
                  WHERE channel = $1 AND state = 'pending' AND head",
            )
            .await?;
        client.query_one(&stmt, &[channel]).await?.try_get(0)?
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
    // Sent and dead say whether the message was its object's head (read once the lock is
    // held): only then does the next one become head.
    let (n, was_head) = match outcome {
        Outcome::Sent => {
            let stmt = tx
                .prepare_cached(
                    "WITH old AS (SELECT head FROM messages WHERE id = $1)
                     UPDATE messages SET state = 'sent', sent_at = $3, attempts = attempts + 1,
                            lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                            last_error = NULL, head = FALSE
                       FROM old WHERE messages.id = $1 AND lease_token = $2
                     RETURNING old.head",
                )
                .await?;
            match tx.query_opt(&stmt, &[&id, &token, &now]).await? {
                Some(row) => (1, row.try_get::<_, bool>(0)?),
                None => (0, false),
            }
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
            let n = tx
                .execute(&stmt, &[&id, &token, next_at, &status, error])
                .await?;
            (n, false)
        }
        Outcome::Dead { status, error } => {
            let stmt = tx
                .prepare_cached(
                    "WITH old AS (SELECT head FROM messages WHERE id = $1)
                     UPDATE messages SET attempts = attempts + 1, state = 'dead',
                            lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                            last_status = $3, last_error = $4, head = FALSE
                       FROM old WHERE messages.id = $1 AND lease_token = $2
                     RETURNING old.head",
                )
                .await?;
            let status = status.map(i64::from);
            match tx.query_opt(&stmt, &[&id, &token, &status, error]).await? {
                Some(row) => (1, row.try_get::<_, bool>(0)?),
                None => (0, false),
            }
        }
        Outcome::Release => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE messages SET lease_until = NULL, lease_token = NULL,
                            lease_owner = NULL
                      WHERE id = $1 AND lease_token = $2",
                )
                .await?;
            (tx.execute(&stmt, &[&id, &token]).await?, false)
        }
    };
    if n == 0 {
        return Ok(false);
    }
    if promotes && was_head {
        promote_after(tx, &channel, &key, id).await?;
    }
    Ok(true)
}

/// Makes the oldest pending message of the object after `id` its head, once `id`, its head,
/// was sent or became a dead letter (the caller holds the object's lock). A head is its
/// object's oldest pending message, so the next one is the first after it, and only that row
/// is written (every pending row of the object was, before). `ORDER BY id LIMIT 1`, not
/// `MIN(id)`: with the statistics of a table that grew fast the planner aggregated every
/// pending message of the channel for a `MIN` (13 ms behind 33 000), where the ordered scan
/// stops at the first.
async fn promote_after(
    tx: &Transaction<'_>,
    channel: &str,
    key: &str,
    id: i64,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET head = TRUE
              WHERE id = (SELECT id FROM messages
                           WHERE channel = $1 AND ordering_key = $2 AND state = 'pending'
                             AND id > $3
                           ORDER BY id LIMIT 1)
                AND NOT head",
        )
        .await?;
    tx.execute(&stmt, &[&channel, &key, &id]).await?;
    Ok(())
}

/// Makes the oldest pending message of the object its head and every other one not (the caller
/// holds its lock): after a dead letter older than the head was made pending again.
async fn recompute_head(tx: &Transaction<'_>, channel: &str, key: &str) -> Result<(), PgError> {
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
    recompute_head(tx, &channel, &key).await?;
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
    rows.iter().map(listed_row).collect()
}

/// A message row as listed (`id, state, next_at, delivery_id, channel, attempts, created_at,
/// last_status, last_error`).
pub(super) fn listed_row(r: &Row) -> Result<ListedRow, PgError> {
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
        recompute_head(tx, channel, key).await?;
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
