//! `/gitlab subscribe`, `unsubscribe` and `list`: a chat's subscriptions, chat rules in the
//! store. `subscribe` asks GitLab whether the bridge's token can see the path (held to the
//! command's [`Deadline`]) before anything is written.

use super::answers::{ago, gitlab_failed, store_failed, usage, Deadline, Pending};
use super::invocation::{check_path, clip, list as items, Caller};
use super::{unix_ms, Context};
use crate::deliver::store::{ChatRule, RuleChange};
use crate::gitlab::Visible;
use crate::render::cliq::{self, plain, Table};
use crate::route::{SubscriptionSpec, MUTE, SUBSCRIPTION};
use std::sync::Arc;

/// The answer while GitLab takes its time.
pub(super) const PENDING: Pending<'static> = Pending {
    title: "Subscribing",
    text: "GitLab is taking a while to answer: the result will follow here.",
};

/// `/gitlab subscribe <path> [event globs…] [labels:a,b] [refs:main,release/*]`.
pub(super) async fn subscribe(
    ctx: Arc<Context>,
    caller: Caller,
    args: Vec<String>,
    deadline: Deadline,
) -> cliq::Message {
    let chat = match ctx.chat(&caller) {
        Ok(c) => c,
        Err(m) => return m,
    };
    let Some((path, filters)) = args.split_first() else {
        return usage(
            "subscribe <project-or-group path> [event globs…] [labels:a,b] [refs:main,release/*]",
        );
    };
    let path = match check_path(path) {
        Ok(p) => p,
        Err(m) => return m,
    };
    let mut spec = SubscriptionSpec::default();
    for f in filters {
        if let Some(l) = f.strip_prefix("labels:") {
            spec.labels.extend(items(l));
        } else if let Some(r) = f.strip_prefix("refs:") {
            spec.refs.extend(items(r));
        } else if f
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '!' | '-'))
            && f.len() <= 100
        {
            spec.events.push(f.to_string());
        } else {
            return cliq::answer(
                "Not understood",
                &format!(
                    "`{}` is not an event glob (`issue.*`, `!note.*`), `labels:a,b` or `refs:main`; nothing was done.",
                    plain(&clip(f, 60))
                ),
                None,
            );
        }
    }
    if let Err(m) = ctx.allowed(&path) {
        return m;
    }
    let path = match visible(&ctx, &path, deadline).await {
        Ok(p) => p,
        Err(m) => return m,
    };
    let existing = match ctx.rules_of(chat).await {
        Ok(r) => r,
        Err(m) => return m,
    };
    let updated = existing
        .iter()
        .any(|r| r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path));
    // One row per subscription whatever the spelling: an old spelling gives way.
    for r in existing.iter().filter(|r| {
        r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path) && r.subject != path
    }) {
        let _ = ctx
            .outbox
            .change_rules(RuleChange::Delete {
                chat: chat.to_string(),
                kind: SUBSCRIPTION.into(),
                subject: r.subject.clone(),
            })
            .await;
    }
    let rule = ChatRule {
        chat: chat.to_string(),
        kind: SUBSCRIPTION.into(),
        subject: path.clone(),
        spec: serde_json::to_string(&spec).unwrap_or_else(|_| "{}".into()),
        until: None,
        created_by: caller.user_id.clone(),
        created_at: unix_ms(),
    };
    if let Err(e) = ctx.outbox.change_rules(RuleChange::Put(rule)).await {
        return store_failed(&e.to_string());
    }
    tracing::info!(user = %caller.user_id, chat = %chat, path = %path, events = ?spec.events, labels = ?spec.labels, refs = ?spec.refs, updated, "chat subscribed");
    (ctx.chats)(chat);
    let title = if updated {
        "Subscription updated"
    } else {
        "Subscribed"
    };
    cliq::answer(
        title,
        &format!(
            "This chat now receives events of `{}`{}.",
            plain(&path),
            plain(&describe(&spec))
        ),
        None,
    )
}

/// The path as GitLab spells it, if the bridge's token can see it (asked by `deadline`).
async fn visible(ctx: &Context, path: &str, deadline: Deadline) -> Result<String, cliq::Message> {
    match deadline.gitlab(ctx.gitlab.visible(path)).await {
        Ok(Some(Visible::Project(p) | Visible::Group(p))) => Ok(p),
        Ok(None) => Err(cliq::answer(
            "Not visible",
            &format!(
                "The bridge's GitLab token cannot see a project or group `{}` (it does not exist, or is hidden from the token); nothing was done.",
                plain(path)
            ),
            None,
        )),
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "cannot ask GitLab for /gitlab subscribe");
            Err(gitlab_failed(path, &e))
        }
    }
}

/// `/gitlab unsubscribe <path>`.
pub(super) async fn unsubscribe(ctx: &Context, caller: &Caller, args: &[String]) -> cliq::Message {
    let chat = match ctx.chat(caller) {
        Ok(c) => c,
        Err(m) => return m,
    };
    let [path] = args else {
        return usage("unsubscribe <project-or-group path>");
    };
    let path = match check_path(path) {
        Ok(p) => p,
        Err(m) => return m,
    };
    let existing = match ctx.rules_of(chat).await {
        Ok(r) => r,
        Err(m) => return m,
    };
    let Some(rule) = existing
        .iter()
        .find(|r| r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path))
    else {
        return cliq::answer(
            "Not subscribed",
            &format!(
                "This chat has no subscription to `{}`; nothing was done.",
                plain(&path)
            ),
            None,
        );
    };
    let change = RuleChange::Delete {
        chat: chat.to_string(),
        kind: SUBSCRIPTION.into(),
        subject: rule.subject.clone(),
    };
    if let Err(e) = ctx.outbox.change_rules(change).await {
        return store_failed(&e.to_string());
    }
    tracing::info!(user = %caller.user_id, chat = %chat, path = %rule.subject, "chat unsubscribed");
    cliq::answer(
        "Unsubscribed",
        &format!(
            "This chat no longer receives events of `{}`.",
            plain(&rule.subject)
        ),
        None,
    )
}

/// `/gitlab list`: the chat's subscriptions and mutes still in force.
pub(super) async fn list(ctx: &Context, caller: &Caller) -> cliq::Message {
    let chat = match ctx.chat(caller) {
        Ok(c) => c,
        Err(m) => return m,
    };
    let rules = match ctx.rules_of(chat).await {
        Ok(r) => r,
        Err(m) => return m,
    };
    let now = unix_ms();
    let rules: Vec<&ChatRule> = rules
        .iter()
        .filter(|r| r.until.is_none_or(|u| u > now))
        .collect();
    if rules.is_empty() {
        return cliq::answer(
            "Subscriptions",
            "This chat has no subscriptions. Try `/gitlab subscribe group/project`.",
            None,
        );
    }
    let subs = rules.iter().filter(|r| r.kind == SUBSCRIPTION).count();
    let mutes = rules.iter().filter(|r| r.kind == MUTE).count();
    let table = Table {
        headers: vec!["What".into(), "Path".into(), "Details".into(), "By".into()],
        rows: rules.iter().map(|r| rule_row(r, now)).collect(),
    };
    cliq::answer(
        "Subscriptions",
        &format!(
            "This chat has {subs} subscription(s) and {mutes} mute(s){}.",
            if rules.iter().any(|r| super::remind::is_reminder(&r.kind)) {
                ", and a review reminder"
            } else {
                ""
            }
        ),
        Some(&table),
    )
}

/// ` (events …; labels …; refs …)`, or nothing for every event.
fn describe(spec: &SubscriptionSpec) -> String {
    let mut parts = Vec::new();
    if !spec.events.is_empty() {
        parts.push(format!("events {}", spec.events.join(" ")));
    }
    if !spec.labels.is_empty() {
        parts.push(format!("labels {}", spec.labels.join(",")));
    }
    if !spec.refs.is_empty() {
        parts.push(format!("refs {}", spec.refs.join(",")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// A row of `/gitlab list`'s table.
fn rule_row(r: &ChatRule, now: i64) -> Vec<String> {
    let details = if super::remind::is_reminder(&r.kind) {
        super::remind::describe(&r.spec)
    } else if r.kind == SUBSCRIPTION {
        let spec: SubscriptionSpec = serde_json::from_str(&r.spec).unwrap_or_default();
        let d = describe(&spec);
        if d.is_empty() {
            "every event".into()
        } else {
            d.trim_start_matches(" (").trim_end_matches(')').to_string()
        }
    } else {
        r.until
            .map_or("until unmuted".into(), |u| format!("{} left", ago(u - now)))
    };
    vec![
        r.kind.clone(),
        r.subject.clone(),
        details,
        r.created_by.clone(),
    ]
}
