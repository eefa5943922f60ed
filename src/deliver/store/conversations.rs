//! The conversation map on SQLite: per (channel, object key) the chat's reference to the root
//! message of the object's thread (opaque here), the hash of the root body last shown, and
//! when the conversation started, last changed and ended. Written in the transaction that
//! records the delivery it comes from.

use super::{Conversation, ConversationWrite, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// The conversation of `key` on `channel`, if one was started.
pub fn conversation(
    conn: &Connection,
    channel: &str,
    key: &str,
) -> Result<Option<Conversation>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT root, body_hash, started_at, updated_at, closed_at FROM conversations
              WHERE channel = ?1 AND object_key = ?2",
        )?
        .query_row(params![channel, key], |r| {
            Ok(Conversation {
                channel: channel.to_string(),
                key: key.to_string(),
                root: r.get(0)?,
                body_hash: r.get(1)?,
                started_at: r.get(2)?,
                updated_at: r.get(3)?,
                closed_at: r.get(4)?,
            })
        })
        .optional()?)
}

/// Forgets the conversations last changed before `before` (unix ms): the next message about
/// one of those objects starts a new thread.
pub fn forget_quiet(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM conversations WHERE updated_at < ?1", [before])?)
}

/// Applies `w` at `now` (in the transaction that records its message's outcome): a new root
/// replaces the conversation (open again), otherwise the hash and the end are updated.
pub fn write(tx: &Connection, w: &ConversationWrite, now: i64) -> Result<(), StoreError> {
    match &w.root {
        Some(root) => {
            tx.prepare_cached(
                "INSERT INTO conversations
                     (channel, object_key, root, body_hash, started_at, updated_at, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, CASE WHEN ?6 THEN ?5 END)
                 ON CONFLICT (channel, object_key) DO UPDATE SET root = excluded.root,
                     body_hash = excluded.body_hash, started_at = excluded.started_at,
                     updated_at = excluded.updated_at, closed_at = excluded.closed_at",
            )?
            .execute(params![w.channel, w.key, root, w.body_hash, now, w.closed])?;
        }
        None => {
            tx.prepare_cached(
                "UPDATE conversations SET body_hash = COALESCE(?3, body_hash), updated_at = ?4,
                     closed_at = CASE WHEN ?5 THEN COALESCE(closed_at, ?4) ELSE closed_at END
                  WHERE channel = ?1 AND object_key = ?2",
            )?
            .execute(params![w.channel, w.key, w.body_hash, now, w.closed])?;
        }
    }
    Ok(())
}
