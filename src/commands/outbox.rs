//! `outbox`: look into the durable outbox while the daemon runs or not: counts per channel, the
//! messages not yet posted, retrying dead letters and purging old ones. Works on either store:
//! the SQLite file directly, or the PostgreSQL database the replicas share.

use super::{now_ms, open_store, when};
use crate::cli::{OutboxAction, OutboxArgs};
use crate::config::Config;
use crate::deliver::engine::{Engine, Wake};
use crate::deliver::pg::{PgEngine, PgOptions};
use crate::deliver::store::{self, ChannelStats, ListedRow, Store};
use anyhow::Context;
use std::io::Write;

/// The store the command works on.
enum Admin {
    Sqlite(Store),
    Postgres(tokio::runtime::Runtime, PgEngine),
}

impl Admin {
    fn open(cfg: &Config, command: &str) -> anyhow::Result<Admin> {
        let Some(pg) = &cfg.outbox.postgres else {
            return Ok(Admin::Sqlite(open_store(cfg, command)?));
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let opts = PgOptions {
            url: pg.url.clone(),
            password: pg.password.clone(),
            ca_file: pg.ca_file.clone(),
            pool_size: 2,
            // Holds no lease: the name only keeps a replica's leases out of reach.
            owner: format!("cli:{}", std::process::id()),
        };
        let (engine, _) = runtime
            .block_on(PgEngine::connect(&opts, Wake::default()))
            .with_context(|| format!("cannot open the PostgreSQL store {}", pg.target()))?;
        Ok(Admin::Postgres(runtime, engine))
    }

    fn stats(&self) -> anyhow::Result<(Vec<ChannelStats>, u64)> {
        Ok(match self {
            Admin::Sqlite(s) => (s.stats()?, store::unrouted_count(s.conn())?),
            Admin::Postgres(rt, e) => {
                rt.block_on(async { anyhow::Ok((e.stats().await?, e.unrouted_count().await?)) })?
            }
        })
    }

    fn list(&self, dead: bool, limit: usize) -> anyhow::Result<Vec<ListedRow>> {
        Ok(match self {
            Admin::Sqlite(s) => s.list(dead, limit)?,
            Admin::Postgres(rt, e) => rt.block_on(e.list(dead, limit))?,
        })
    }

    fn retry(&mut self, id: Option<i64>, now: i64) -> anyhow::Result<u64> {
        Ok(match self {
            Admin::Sqlite(s) => s.retry_dead(id, now)? as u64,
            Admin::Postgres(rt, e) => match id {
                Some(id) => u64::from(rt.block_on(e.retry_dead(id, now))?.is_some()),
                None => rt.block_on(e.retry_all_dead(now))?,
            },
        })
    }

    fn purge(&self, before: i64) -> anyhow::Result<u64> {
        Ok(match self {
            Admin::Sqlite(s) => s.purge_dead(before)? as u64,
            Admin::Postgres(rt, e) => rt.block_on(e.purge_dead(before))?,
        })
    }
}

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
    let mut store = Admin::open(&cfg, command)?;
    let mut out = std::io::stdout().lock();
    let now = now_ms();
    match &args.action {
        OutboxAction::Stats => {
            let (stats, waiting) = store.stats()?;
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
            let n = store.retry(if *all_dead { None } else { *id }, now)?;
            writeln!(
                out,
                "{n} dead letter(s) will be retried by the running daemon"
            )?;
            if n == 0 && !all_dead {
                return Ok(1);
            }
        }
        OutboxAction::Purge { older_than, .. } => {
            let n = store.purge(now - older_than.as_millis() as i64)?;
            writeln!(out, "{n} dead letter(s) purged")?;
        }
    }
    Ok(0)
}
