//! Review reminders' runs on PostgreSQL: each reminder's last scheduled instant run (or
//! skipped), claimed with the run's messages in one transaction. The claim is one conditional
//! upsert, so of two replicas asking at once exactly one gets it (the row lock orders them).

use super::messages::enqueue;
use super::PgError;
use crate::deliver::Batch;
use deadpool_postgres::Transaction;

/// Claims reminder `name`'s run of scheduled instant `at` (unix ms): unless its last recorded
/// run is at or after `at`, records `at` and queues `batch` (if it has messages); returns
/// whether it was claimed.
pub async fn reminder_run(
    tx: &Transaction<'_>,
    name: &str,
    at: i64,
    batch: &Batch,
    now: i64,
    dedupe_since: i64,
) -> Result<bool, PgError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO reminder_runs (name, last_run, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run,
                                             updated_at = EXCLUDED.updated_at
             WHERE reminder_runs.last_run < EXCLUDED.last_run
             RETURNING name",
        )
        .await?;
    let claimed = tx.query_opt(&stmt, &[&name, &at, &now]).await?.is_some();
    if claimed && !batch.deliveries.is_empty() {
        enqueue(tx, batch, now, dedupe_since).await?;
    }
    Ok(claimed)
}

/// Each reminder's last recorded run (unix ms of its scheduled instant), by name.
pub async fn reminder_runs(client: &tokio_postgres::Client) -> Result<Vec<(String, i64)>, PgError> {
    let rows = client
        .query(
            "SELECT name, last_run FROM reminder_runs ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
