//! The router's memory on PostgreSQL: small values the routing function keeps between events,
//! read by the router stage and written with the event that set them.

use super::PgError;
use deadpool_postgres::Transaction;

/// The value the router last remembered under `key`.
pub async fn memory(client: &tokio_postgres::Client, key: &str) -> Result<Option<String>, PgError> {
    Ok(client
        .query_opt("SELECT value FROM router_memory WHERE key = $1", &[&key])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// Remembers `value` under `key` at `now` (in the transaction that marks its event routed).
pub async fn remember(
    tx: &Transaction<'_>,
    key: &str,
    value: &str,
    now: i64,
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO router_memory (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                             updated_at = EXCLUDED.updated_at",
        )
        .await?;
    tx.execute(&stmt, &[&key, &value, &now]).await?;
    Ok(())
}
