//! Chat rules on PostgreSQL: the subscriptions and mutes chats made for themselves.

use super::PgError;
use crate::deliver::store::{ChatRule, RuleChange};
use deadpool_postgres::Transaction;

/// Changes the chat rules; the rows changed.
pub async fn change_rules(tx: &Transaction<'_>, change: &RuleChange) -> Result<usize, PgError> {
    async fn put(tx: &Transaction<'_>, r: &ChatRule) -> Result<usize, PgError> {
        Ok(tx
            .execute(
                "INSERT INTO chat_rules (chat, kind, subject, spec, until, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (chat, kind, subject) DO UPDATE SET spec = EXCLUDED.spec,
                     until = EXCLUDED.until, created_by = EXCLUDED.created_by,
                     created_at = EXCLUDED.created_at",
                &[
                    &r.chat,
                    &r.kind,
                    &r.subject,
                    &r.spec,
                    &r.until,
                    &r.created_by,
                    &r.created_at,
                ],
            )
            .await? as usize)
    }
    match change {
        RuleChange::Put(r) => put(tx, r).await,
        RuleChange::PutAll(rules) => {
            let mut n = 0;
            for r in rules {
                n += put(tx, r).await?;
            }
            Ok(n)
        }
        RuleChange::Delete {
            chat,
            kind,
            subject,
        } => Ok(tx
            .execute(
                "DELETE FROM chat_rules WHERE chat = $1 AND kind = $2 AND subject = $3",
                &[chat, kind, subject],
            )
            .await? as usize),
    }
}

/// Every chat rule.
pub async fn chat_rules(client: &tokio_postgres::Client) -> Result<Vec<ChatRule>, PgError> {
    let rows = client
        .query(
            "SELECT chat, kind, subject, spec, until, created_by, created_at FROM chat_rules
              ORDER BY chat, kind, subject",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ChatRule {
                chat: r.try_get(0)?,
                kind: r.try_get(1)?,
                subject: r.try_get(2)?,
                spec: r.try_get(3)?,
                until: r.try_get(4)?,
                created_by: r.try_get(5)?,
                created_at: r.try_get(6)?,
            })
        })
        .collect()
}
