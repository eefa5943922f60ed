//! Review reminders' runs on SQLite: each reminder's last scheduled instant run (or skipped),
//! claimed together with the run's messages in one transaction, so a run happens once however
//! often it is asked for.

use super::messages::insert_batch;
use super::StoreError;
use crate::deliver::Batch;
use rusqlite::{params, Connection, OptionalExtension};

/// Claims reminder `name`'s run of scheduled instant `at` (unix ms): unless its last recorded
/// run is at or after `at`, records `at` and inserts `batch` (if it has messages); returns
/// whether it was claimed. The caller's transaction holds both or neither.
pub fn reminder_run(
    tx: &Connection,
    name: &str,
    at: i64,
    batch: &Batch,
    now: i64,
    dedupe_since: i64,
) -> Result<bool, StoreError> {
    let claimed = tx
        .prepare_cached(
            "INSERT INTO reminder_runs (name, last_run, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run,
                                             updated_at = excluded.updated_at
             WHERE reminder_runs.last_run < excluded.last_run
             RETURNING name",
        )?
        .query_row(params![name, at, now], |r| r.get::<_, String>(0))
        .optional()?
        .is_some();
    if claimed && !batch.deliveries.is_empty() {
        insert_batch(tx, batch, now, dedupe_since)?;
    }
    Ok(claimed)
}

/// Each reminder's last recorded run (unix ms of its scheduled instant), by name.
pub fn reminder_runs(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name, last_run FROM reminder_runs ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
