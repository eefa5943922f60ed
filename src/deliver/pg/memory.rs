//! The router's memory on PostgreSQL: small values the routing function keeps between events,
//! read by the router stage (written with the event that set them, by `events::routed`).

use super::PgError;

/// Forgets the memories last changed before `before` (unix ms), in `tx`: their objects were
/// quiet that long, and the next event about one starts afresh.
pub async fn forget_quiet(
    tx: &deadpool_postgres::Transaction<'_>,
    before: i64,
) -> Result<u64, PgError> {
    Ok(tx
        .execute(
            "DELETE FROM router_memory WHERE updated_at < $1",
            &[&before],
        )
        .await?)
}

/// The value the router last remembered under `key`.
pub async fn memory(client: &tokio_postgres::Client, key: &str) -> Result<Option<String>, PgError> {
    Ok(client
        .query_opt("SELECT value FROM router_memory WHERE key = $1", &[&key])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}
