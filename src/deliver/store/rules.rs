//! Chat rules on SQLite: the subscriptions and mutes chats made for themselves.

use super::{ChatRule, RuleChange, StoreError};
use rusqlite::{params, Connection};

/// Applies `change`; returns how many rows it added, replaced or removed.
pub fn change_rules(tx: &Connection, change: &RuleChange) -> Result<usize, StoreError> {
    let put = |r: &ChatRule| -> Result<usize, StoreError> {
        Ok(tx
            .prepare_cached(
                "INSERT INTO chat_rules (chat, kind, subject, spec, until, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (chat, kind, subject) DO UPDATE SET spec = excluded.spec,
                     until = excluded.until, created_by = excluded.created_by,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                r.chat,
                r.kind,
                r.subject,
                r.spec,
                r.until,
                r.created_by,
                r.created_at
            ])?)
    };
    match change {
        RuleChange::Put(r) => put(r),
        RuleChange::PutAll(rules) => rules.iter().map(put).sum(),
        RuleChange::Delete {
            chat,
            kind,
            subject,
        } => Ok(tx
            .prepare_cached(
                "DELETE FROM chat_rules WHERE chat = ?1 AND kind = ?2 AND subject = ?3",
            )?
            .execute(params![chat, kind, subject])?),
    }
}

/// Every chat rule, by chat, kind and subject.
pub fn chat_rules(conn: &Connection) -> Result<Vec<ChatRule>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT chat, kind, subject, spec, until, created_by, created_at FROM chat_rules
         ORDER BY chat, kind, subject",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ChatRule {
            chat: r.get(0)?,
            kind: r.get(1)?,
            subject: r.get(2)?,
            spec: r.get(3)?,
            until: r.get(4)?,
            created_by: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
