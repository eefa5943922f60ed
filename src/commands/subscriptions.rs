//! `subscriptions`: the chats' own subscriptions and mutes (chat rules in the outbox store,
//! made with the Cliq extension's `/gitlab` command) listed, exported as JSON and imported back,
//! whether the daemon runs or not (a running daemon applies an import from its next routing
//! batch, and starts the workers of new chats within seconds).

use super::{now_ms, CommandStore};
use crate::cli::{SubscriptionsAction, SubscriptionsArgs};
use crate::deliver::store::{ChatRule, RuleChange};
use crate::route::{self, SubscriptionSpec, MUTE, SUBSCRIPTION};
use anyhow::Context;
use std::io::Write;

/// Runs `subscriptions`. Returns the process exit code.
pub fn run(args: &SubscriptionsArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let mut out = std::io::stdout().lock();
    match &args.action {
        SubscriptionsAction::List => {
            let store = CommandStore::open(&cfg)?;
            let rules = chats_own(store.run(|o| Box::pin(o.chat_rules()))?);
            if rules.is_empty() {
                writeln!(out, "(no chat has subscribed to anything)")?;
            }
            let now = now_ms();
            for r in &rules {
                let lapsed = r.until.is_some_and(|u| u <= now);
                writeln!(
                    out,
                    "{:<40} {:<12} {:<40} {}{} by {} at {}",
                    r.chat,
                    r.kind,
                    r.subject,
                    r.spec,
                    r.until
                        .map_or(String::new(), |u| format!(" until {}", super::when(u))),
                    r.created_by,
                    super::when(r.created_at),
                )?;
                if lapsed {
                    writeln!(out, "{:<40} (lapsed)", "")?;
                }
            }
        }
        SubscriptionsAction::Export => {
            let store = CommandStore::open(&cfg)?;
            let rules = chats_own(store.run(|o| Box::pin(o.chat_rules()))?);
            serde_json::to_writer_pretty(&mut out, &rules)?;
            writeln!(out)?;
        }
        SubscriptionsAction::Import { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let rules: Vec<ChatRule> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a JSON list of subscriptions (as `subscriptions export` writes)",
                    file.display()
                )
            })?;
            for (i, r) in rules.iter().enumerate() {
                check(r).with_context(|| format!("{}: entry {i}", file.display()))?;
            }
            let store = CommandStore::open_or_create(&cfg)?;
            let n = rules.len();
            store.run(|o| Box::pin(o.change_rules(RuleChange::PutAll(rules))))?;
            tracing::info!(file = %file.display(), rules = n, "imported chat subscriptions and mutes");
            writeln!(out, "imported {n} subscription(s) and mute(s)")?;
        }
    }
    Ok(0)
}

/// An imported rule must be one the router stage understands.
fn check(r: &ChatRule) -> anyhow::Result<()> {
    if r.chat.trim().is_empty() || r.subject.trim().is_empty() {
        anyhow::bail!("chat and subject must not be empty");
    }
    if !route::is_chat_id(&r.chat) {
        anyhow::bail!(
            "chat {:?} is not a Cliq chat id (letters, digits, _, - and ., at most {} of them)",
            r.chat,
            route::MAX_CHAT_ID_LEN
        );
    }
    match r.kind.as_str() {
        SUBSCRIPTION => {
            serde_json::from_str::<SubscriptionSpec>(&r.spec)
                .context("spec is not a subscription's filters ({\"events\": [...], ...})")?;
        }
        MUTE => {}
        route::REMINDER => {
            let spec: route::ReminderSpec = serde_json::from_str(&r.spec)
                .context("spec is not a reminder's ({\"schedule\": ..., \"timezone\": ..., \"projects\": ...})")?;
            crate::schedule::Schedule::parse(&spec.schedule)?;
            spec.timezone
                .parse::<chrono_tz::Tz>()
                .map_err(|_| anyhow::anyhow!("{:?} is not an IANA time zone", spec.timezone))?;
        }
        other => anyhow::bail!(
            "kind {other:?} is none of {SUBSCRIPTION:?}, {MUTE:?}, {:?}",
            route::REMINDER
        ),
    }
    Ok(())
}

/// The chats' subscriptions, mutes and review reminders, without the rules the bridge keeps for itself (a moved
/// Telegram chat, `worker::MOVED_RULE`), which are no one's to export or import.
fn chats_own(rules: Vec<ChatRule>) -> Vec<ChatRule> {
    rules
        .into_iter()
        .filter(|r| r.kind == SUBSCRIPTION || r.kind == MUTE || r.kind == route::REMINDER)
        .collect()
}
