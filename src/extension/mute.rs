//! `/gitlab mute` and `unmute` (and the cards' *Mute* button, through [`mute`]): nothing more
//! about one merge request or issue in this chat, for a while or until unmuted. Chat rules in
//! the store; GitLab is not asked.

use super::answers::{store_failed, usage};
use super::invocation::{check_subject, clip, Caller};
use super::{unix_ms, Context};
use crate::deliver::store::{ChatRule, RuleChange};
use crate::duration;
use crate::render::cliq::{self, plain};
use crate::route::MUTE;
use std::time::Duration;

/// Longest mute accepted: `for` up to 90 days.
pub const MAX_MUTE: Duration = Duration::from_secs(90 * 86_400);

/// `/gitlab mute <path>!<iid> | <path>#<iid> [for 2h]`.
pub(super) async fn mute(ctx: &Context, caller: &Caller, args: &[String]) -> cliq::Message {
    let chat = match ctx.chat(caller) {
        Ok(c) => c,
        Err(m) => return m,
    };
    let (subject, dur) = match args {
        [s] => (s, None),
        [s, f, d] if f.eq_ignore_ascii_case("for") => match duration::parse(d) {
            Some(d) if !d.is_zero() && d <= MAX_MUTE => (s, Some(d)),
            _ => {
                return cliq::answer(
                    "Not understood",
                    &format!(
                        "`{}` is not a duration such as `30m`, `2h` or `7d` (at most 90 days); nothing was done.",
                        plain(&clip(d, 40))
                    ),
                    None,
                )
            }
        },
        _ => return usage("mute <path>!<iid> | <path>#<iid> [for 2h]"),
    };
    let subject = match check_subject(subject) {
        Ok(s) => s,
        Err(m) => return m,
    };
    let until = dur.map(|d| unix_ms() + d.as_millis() as i64);
    let rule = ChatRule {
        chat: chat.to_string(),
        kind: MUTE.into(),
        subject: subject.clone(),
        spec: "{}".into(),
        until,
        created_by: caller.user_id.clone(),
        created_at: unix_ms(),
    };
    if let Err(e) = ctx.outbox.change_rules(RuleChange::Put(rule)).await {
        return store_failed(&e.to_string());
    }
    tracing::info!(user = %caller.user_id, chat = %chat, subject = %subject, until = ?until, "muted in a chat");
    let how_long = match (dur, args.get(2)) {
        (Some(_), Some(d)) => format!(" for {}", plain(d)),
        _ => " until `/gitlab unmute`".into(),
    };
    cliq::answer(
        "Muted",
        &format!(
            "This chat hears nothing more about `{}`{how_long}.",
            plain(&subject),
        ),
        None,
    )
}

/// `/gitlab unmute <path>!<iid> | <path>#<iid>`.
pub(super) async fn unmute(ctx: &Context, caller: &Caller, args: &[String]) -> cliq::Message {
    let chat = match ctx.chat(caller) {
        Ok(c) => c,
        Err(m) => return m,
    };
    let [subject] = args else {
        return usage("unmute <path>!<iid> | <path>#<iid>");
    };
    let subject = match check_subject(subject) {
        Ok(s) => s,
        Err(m) => return m,
    };
    let change = RuleChange::Delete {
        chat: chat.to_string(),
        kind: MUTE.into(),
        subject: subject.clone(),
    };
    match ctx.outbox.change_rules(change).await {
        Ok(0) => cliq::answer(
            "Not muted",
            &format!(
                "`{}` is not muted in this chat; nothing was done.",
                plain(&subject)
            ),
            None,
        ),
        Ok(_) => {
            tracing::info!(user = %caller.user_id, chat = %chat, subject = %subject, "unmuted in a chat");
            cliq::answer(
                "Unmuted",
                &format!("This chat hears about `{}` again.", plain(&subject)),
                None,
            )
        }
        Err(e) => store_failed(&e.to_string()),
    }
}
