//! `outbox`: look into the durable outbox while the daemon runs or not: counts per channel, the
//! messages not yet posted, retrying dead letters and purging old ones. Works on either store:
//! the SQLite file directly, or the PostgreSQL database the replicas share.

use super::{now_ms, when, CommandStore};
use crate::cli::{OutboxAction, OutboxArgs};
use crate::deliver::Outbox;
use std::io::Write;

fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Runs `outbox`. Returns the process exit code.
pub fn run(args: &OutboxArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let store = CommandStore::open(&cfg)?;
    let mut out = std::io::stdout().lock();
    let now = now_ms();
    match &args.action {
        OutboxAction::Stats => {
            let stats = store.run(|o| o.stats())?;
            let waiting = store.run(|o| Box::pin(o.unrouted_count()))?;
            writeln!(
                out,
                "{:<20} {:>8} {:>9} {:>6}  oldest waiting",
                "channel", "pending", "retrying", "dead"
            )?;
            for s in &stats {
                let oldest = s
                    .oldest_created_at
                    .map_or("-".to_string(), |t| age(now - t));
                writeln!(
                    out,
                    "{:<20} {:>8} {:>9} {:>6}  {oldest}",
                    s.channel, s.pending, s.retrying, s.dead
                )?;
            }
            if stats.is_empty() {
                writeln!(out, "(empty: everything was delivered)")?;
            }
            writeln!(out, "events waiting to be routed: {waiting}")?;
        }
        OutboxAction::List { dead, limit } => {
            for r in store.run(|o| Box::pin(o.list(*dead, *limit)))? {
                let status = r.last_status.map_or("-".to_string(), |s| s.to_string());
                let next = if r.state == "pending" {
                    format!(" next {}", when(r.next_at))
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{:>6} {:<7} {} {} attempts={} status={status} received {}{next}\n       {}",
                    r.id,
                    r.state,
                    r.channel,
                    r.delivery_id,
                    r.attempts,
                    when(r.created_at),
                    r.last_error.as_deref().unwrap_or("-"),
                )?;
            }
        }
        OutboxAction::Retry { id, all_dead } => {
            let n = match (all_dead, id) {
                (false, Some(id)) => {
                    u64::from(store.run(|o| Box::pin(o.retry_dead(*id)))?.is_some())
                }
                _ => store.run(|o| Box::pin(o.retry_all_dead()))?,
            };
            writeln!(
                out,
                "{n} dead letter(s) will be retried by the running daemon"
            )?;
            if n == 0 && !all_dead {
                return Ok(1);
            }
        }
        OutboxAction::Purge { older_than, .. } => {
            let before = now - older_than.as_millis() as i64;
            let n = store.run(|o| Box::pin(o.purge_dead(before)))?;
            writeln!(out, "{n} dead letter(s) purged")?;
        }
    }
    Ok(0)
}
