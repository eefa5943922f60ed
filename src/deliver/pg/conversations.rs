//! The conversation map on PostgreSQL: per (channel, object key) the chat's reference to the
//! root message of the object's thread (opaque here), the hash of the root body last shown,
//! and when the conversation started, last changed and ended. Written in the transaction that
//! records the delivery it comes from, so every replica sees the same threads.

use super::PgError;
use crate::deliver::store::{Conversation, ConversationWrite};
use deadpool_postgres::Transaction;

/// Forgets the conversations last changed before `before` (unix ms), in `tx`: the next
/// message about one of those objects starts a new thread.
pub async fn forget_quiet(tx: &Transaction<'_>, before: i64) -> Result<u64, PgError> {
    Ok(tx
        .execute(
            "DELETE FROM conversations WHERE updated_at < $1",
            &[&before],
        )
        .await?)
}

/// The conversation of `key` on `channel`, if one was started.
pub async fn conversation(
    client: &tokio_postgres::Client,
    channel: &str,
    key: &str,
) -> Result<Option<Conversation>, PgError> {
    let row = client
        .query_opt(
            "SELECT root, body_hash, started_at, updated_at, closed_at FROM conversations
              WHERE channel = $1 AND object_key = $2",
            &[&channel, &key],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(Conversation {
        channel: channel.to_string(),
        key: key.to_string(),
        root: r.try_get(0)?,
        body_hash: r.try_get(1)?,
        started_at: r.try_get(2)?,
        updated_at: r.try_get(3)?,
        closed_at: r.try_get(4)?,
    }))
}

/// Applies `w` at `now` (in the transaction that records its message's outcome): a new root
/// replaces the conversation (open again), otherwise the hash and the end are updated.
pub async fn write(tx: &Transaction<'_>, w: &ConversationWrite, now: i64) -> Result<(), PgError> {
    match &w.root {
        Some(root) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO conversations
                         (channel, object_key, root, body_hash, started_at, updated_at, closed_at)
                     VALUES ($1, $2, $3, $4, $5::BIGINT, $5::BIGINT, CASE WHEN $6::BOOLEAN THEN $5::BIGINT END)
                     ON CONFLICT (channel, object_key) DO UPDATE SET root = EXCLUDED.root,
                         body_hash = EXCLUDED.body_hash, started_at = EXCLUDED.started_at,
                         updated_at = EXCLUDED.updated_at, closed_at = EXCLUDED.closed_at",
                )
                .await?;
            tx.execute(
                &stmt,
                &[&w.channel, &w.key, root, &w.body_hash, &now, &w.closed],
            )
            .await?;
        }
        None => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE conversations SET body_hash = COALESCE($3::TEXT, body_hash), updated_at = $4::BIGINT,
                         closed_at = CASE WHEN $5::BOOLEAN THEN COALESCE(closed_at, $4::BIGINT) ELSE closed_at END
                      WHERE channel = $1 AND object_key = $2",
                )
                .await?;
            tx.execute(&stmt, &[&w.channel, &w.key, &w.body_hash, &now, &w.closed])
                .await?;
        }
    }
    Ok(())
}
