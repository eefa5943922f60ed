//! `/gitlab status`: what the outbox still has to post, per channel, its dead letters and the
//! last post of each. Read from the store; GitLab is not asked.

use super::answers::{ago, store_failed};
use super::{unix_ms, Context};
use crate::render::cliq::{self, Table};

/// `/gitlab status`.
pub(super) async fn status(ctx: &Context) -> cliq::Message {
    let stats = match crate::deliver::Outbox::stats(&ctx.outbox).await {
        Ok(s) => s,
        Err(e) => return store_failed(&e.to_string()),
    };
    let last = match ctx.outbox.last_posts().await {
        Ok(l) => l,
        Err(e) => return store_failed(&e.to_string()),
    };
    let now = unix_ms();
    let mut channels: Vec<String> = stats.iter().map(|s| s.channel.clone()).collect();
    channels.extend(last.iter().map(|(c, _)| c.clone()));
    channels.sort();
    channels.dedup();
    let rows = channels
        .iter()
        .map(|c| {
            let s = stats.iter().find(|s| &s.channel == c);
            let posted = last.iter().find(|(x, _)| x == c).map(|(_, t)| *t);
            vec![
                c.clone(),
                s.map_or(0, |s| s.pending + s.retrying).to_string(),
                s.and_then(|s| s.oldest_created_at)
                    .map_or("-".into(), |t| ago(now - t)),
                s.map_or(0, |s| s.dead).to_string(),
                posted.map_or("never".into(), |t| format!("{} ago", ago(now - t))),
            ]
        })
        .collect();
    let pending: u64 = stats.iter().map(|s| s.pending + s.retrying).sum();
    let dead: u64 = stats.iter().map(|s| s.dead).sum();
    let oldest = stats
        .iter()
        .filter_map(|s| s.oldest_created_at)
        .min()
        .map_or("nothing waiting".into(), |t| {
            format!("oldest waiting {}", ago(now - t))
        });
    cliq::answer(
        "Bridge status",
        &format!("Outbox: {pending} waiting ({oldest}), {dead} dead letter(s)."),
        Some(&Table {
            headers: vec![
                "Channel".into(),
                "Waiting".into(),
                "Oldest".into(),
                "Dead".into(),
                "Last post".into(),
            ],
            rows,
        }),
    )
}
