//! The rate window replicas share (docs/postgres.md): each credential's posts of the last
//! minute and its pauses, on the database's clock.

use super::PgError;
use crate::deliver::engine::Slot;
use deadpool_postgres::Transaction;
use std::time::Duration;

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
