//! `outbox`: look into the durable outbox while the daemon runs or not: counts per channel, the
//! messages not yet posted, retrying dead letters and purging old ones.

use super::{now_ms, open_store, when};
use crate::cli::{OutboxAction, OutboxArgs};
use crate::deliver::store;
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
    let command = match &args.action {
        OutboxAction::Stats => "outbox stats",
        OutboxAction::List { .. } => "outbox list",
        OutboxAction::Retry { .. } => "outbox retry",
        OutboxAction::Purge { .. } => "outbox purge",
    };
    let mut store = open_store(&cfg, command)?;
    let mut out = std::io::stdout().lock();
    let now = now_ms();
    match &args.action {
        OutboxAction::Stats => {
            let stats = store.stats()?;
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
            let waiting = store::unrouted_count(store.conn())?;
            writeln!(out, "events waiting to be routed: {waiting}")?;
        }
        OutboxAction::List { dead, limit } => {
            for r in store.list(*dead, *limit)? {
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
            let n = store.retry_dead(if *all_dead { None } else { *id }, now)?;
            writeln!(
                out,
                "{n} dead letter(s) will be retried by the running daemon"
            )?;
            if n == 0 && !all_dead {
                return Ok(1);
            }
        }
        OutboxAction::Purge { older_than, .. } => {
            let n = store.purge_dead(now - older_than.as_millis() as i64)?;
            writeln!(out, "{n} dead letter(s) purged")?;
        }
    }
    Ok(0)
}
