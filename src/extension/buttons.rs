//! The card buttons, by their key: *Mute* (`mute:<subject>`, as `/gitlab mute <subject>`) on
//! merge request and issue cards, and *Retry* (`retry:<id>`) on dead-letter alerts — admins
//! only; the dead letter is made due again through the outbox's writer. Neither asks GitLab.

use super::answers::store_failed;
use super::invocation::{clip, Caller};
use super::mute::mute;
use super::Context;
use crate::render::cliq::{self, plain};
use crate::route;

/// The answer to pressing the button with `key`.
pub(super) async fn press(ctx: &Context, caller: &Caller, key: &str) -> cliq::Message {
    if let Some(subject) = key.strip_prefix(cliq::MUTE_KEY_PREFIX) {
        return mute(ctx, caller, &[subject.to_string()]).await;
    }
    if let Some(id) = key.strip_prefix(cliq::RETRY_KEY_PREFIX) {
        return retry(ctx, caller, id).await;
    }
    cliq::answer(
        "Unknown button",
        "This button is not one of gitlab-chat-bridge's; nothing was done.",
        None,
    )
}

/// The *Retry* button of a dead-letter alert: admins only; the dead letter `id` is made due
/// again through the outbox's writer.
async fn retry(ctx: &Context, caller: &Caller, id: &str) -> cliq::Message {
    if !ctx.is_admin(caller) {
        tracing::warn!(user = %caller.user_id, message = %clip(id, 40), "refused a dead-letter retry from a non-admin");
        return cliq::answer(
            "Admins only",
            "Only the bridge's admins (`cliq_extension.admins`) may retry dead letters; nothing was done.",
            None,
        );
    }
    let Some(n) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return cliq::answer(
            "Unknown message",
            &format!(
                "`{}` is not a message id; nothing was done.",
                plain(&clip(id, 40))
            ),
            None,
        );
    };
    match ctx.outbox.retry_dead(n).await {
        Ok(Some(channel)) => {
            tracing::info!(user = %caller.user_id, message = n, channel = %channel, "dead letter retried from Cliq");
            if let Some(chat) = route::chat_of(&channel) {
                (ctx.chats)(chat);
            }
            cliq::answer(
                "Retrying",
                &format!(
                    "Dead letter {n} (channel {}) is due again; the bridge posts it now.",
                    plain(&channel)
                ),
                None,
            )
        }
        Ok(None) => cliq::answer(
            "Not a dead letter",
            &format!(
                "Message {n} is not a dead letter (unknown, already retried, or delivered); nothing was done."
            ),
            None,
        ),
        Err(e) => store_failed(&e.to_string()),
    }
}
