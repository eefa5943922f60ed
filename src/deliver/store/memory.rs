//! The router's memory on SQLite: small values the routing function keeps between events,
//! read by the router stage and written with the event that set them.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// The router's memory of `key` (see [`super::RoutedEvent::memory`]).
pub fn memory(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM router_memory WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Forgets the memories last changed before `before` (unix ms): their objects were quiet that
/// long, and the next event about one starts afresh.
pub fn forget_quiet(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM router_memory WHERE updated_at < ?1", [before])?)
}

/// Remembers `value` under `key` at `now` (in the transaction that marks its event routed).
pub fn remember(tx: &Connection, key: &str, value: &str, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO router_memory (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?
    .execute(params![key, value, now])?;
    Ok(())
}
