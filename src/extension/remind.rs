//! `/gitlab remind DAYS HH:MM PATH [tz:ZONE]` and `/gitlab remind off`: this chat's review
//! reminder, a chat rule ([`route::REMINDER`], one per chat) that `serve`'s reminder schedule
//! runs like a `[[reminders]]` entry: the card of `/gitlab reviews PATH`, posted to the chat on
//! schedule (in `ZONE`, default `[templates] timezone`).

use super::answers::{gitlab_failed, store_failed, usage, Deadline, Pending};
use super::invocation::{check_path, clip, Caller};
use super::{unix_ms, Context};
use crate::deliver::store::{ChatRule, RuleChange};
use crate::gitlab::Visible;
use crate::render::cliq::{self, plain};
use crate::route::{self, ReminderSpec, REMINDER, REMINDER_SUBJECT};
use crate::schedule::Schedule;
use std::sync::Arc;

/// The answer while GitLab is asked about the path.
pub(super) const PENDING: Pending<'static> = Pending {
    title: "Setting the reminder",
    text: "GitLab is taking a while to answer: the result will follow here.",
};

const SYNTAX: &str = "remind weekdays 09:30 group/project [tz:Europe/Berlin] (or: remind off)";

/// `/gitlab remind …`.
pub(super) async fn remind(
    ctx: Arc<Context>,
    caller: Caller,
    args: Vec<String>,
    deadline: Deadline,
) -> cliq::Message {
    let chat = match ctx.chat(&caller) {
        Ok(c) => c.to_string(),
        Err(m) => return m,
    };
    if let [off] = &args[..] {
        if off.eq_ignore_ascii_case("off") {
            return off_(&ctx, &caller, &chat).await;
        }
    }
    let (days, time, raw, tz) = match &args[..] {
        [d, t, p] => (d, t, p, None),
        [d, t, p, z] => match z.strip_prefix("tz:") {
            Some(z) => (d, t, p, Some(z)),
            None => return usage(SYNTAX),
        },
        _ => return usage(SYNTAX),
    };
    let schedule = match Schedule::parse(&format!("{days} {time}")) {
        Ok(s) => s,
        Err(e) => {
            return cliq::answer(
                "Not understood",
                &format!("{}; nothing was done.", plain(&e.to_string())),
                None,
            )
        }
    };
    let timezone = match tz {
        None => ctx.timezone,
        Some(z) => match z.parse::<chrono_tz::Tz>() {
            Ok(t) => t,
            Err(_) => {
                return cliq::answer(
                    "Not understood",
                    &format!(
                        "`{}` is not an IANA time zone (such as Europe/Berlin); nothing was done.",
                        plain(&clip(z, 60))
                    ),
                    None,
                )
            }
        },
    };
    let path = match check_path(raw) {
        Ok(p) => p,
        Err(m) => return m,
    };
    if let Err(m) = ctx.allowed(&path) {
        return m;
    }
    let projects = match deadline.gitlab(ctx.gitlab.visible(&path)).await {
        Ok(Some(Visible::Project(p))) => p,
        Ok(Some(Visible::Group(g))) => format!("{g}/*"),
        Ok(None) => {
            return cliq::answer(
                "Not visible",
                &format!(
                "The bridge's GitLab token cannot see a project or group `{}`; nothing was done.",
                plain(&path)
            ),
                None,
            )
        }
        Err(e) => return gitlab_failed(&path, &e),
    };
    let spec = ReminderSpec {
        schedule: schedule.to_string(),
        timezone: timezone.name().to_string(),
        projects,
    };
    let rule = ChatRule {
        chat: chat.clone(),
        kind: REMINDER.into(),
        subject: REMINDER_SUBJECT.into(),
        spec: serde_json::to_string(&spec).unwrap_or_else(|_| "{}".into()),
        until: None,
        created_by: caller.user_id.clone(),
        created_at: unix_ms(),
    };
    if let Err(e) = ctx.outbox.change_rules(RuleChange::Put(rule)).await {
        return store_failed(&e.to_string());
    }
    tracing::info!(user = %caller.user_id, chat = %chat, schedule = %spec.schedule, timezone = %spec.timezone, projects = %spec.projects, "chat review reminder set");
    (ctx.chats)(&chat);
    let next = schedule.next_after(chrono::Utc::now(), timezone);
    cliq::answer(
        "Reminder set",
        &format!(
            "This chat gets the merge requests of `{}` waiting for review {} ({}); next on {}. `/gitlab remind off` stops it.",
            plain(&path),
            plain(&schedule.to_string()),
            plain(timezone.name()),
            next.with_timezone(&timezone).format("%a %d %b %H:%M")
        ),
        None,
    )
}

/// `/gitlab remind off`.
async fn off_(ctx: &Context, caller: &Caller, chat: &str) -> cliq::Message {
    let change = RuleChange::Delete {
        chat: chat.to_string(),
        kind: REMINDER.into(),
        subject: REMINDER_SUBJECT.into(),
    };
    match ctx.outbox.change_rules(change).await {
        Ok(0) => cliq::answer("No reminder", "This chat has no review reminder.", None),
        Ok(_) => {
            tracing::info!(user = %caller.user_id, chat = %chat, "chat review reminder removed");
            cliq::answer(
                "Reminder off",
                "This chat gets no more review reminders.",
                None,
            )
        }
        Err(e) => store_failed(&e.to_string()),
    }
}

/// The `Details` of a reminder rule in `/gitlab list`.
pub(super) fn describe(spec: &str) -> String {
    match serde_json::from_str::<ReminderSpec>(spec) {
        Ok(s) => format!("{} ({}), {}", s.schedule, s.timezone, s.projects),
        Err(_) => "unreadable".into(),
    }
}

/// Whether `route` names this module's rule kind (kept beside it for `list`).
pub(super) fn is_reminder(kind: &str) -> bool {
    kind == route::REMINDER
}
