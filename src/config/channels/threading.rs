//! What a conversation channel can do in its chat: threads and root edits, threads only, root
//! edits only, or flat posts, and why ([`ChannelConfig::conversation_plan`], which `check`
//! prints); and the kinds that refuse a conversation with a reason of their own ([`refusal`]):
//! Teams (its webhook answers 202 with no message id to reply to or edit) and Google Chat's
//! `thread+edit` (an edit needs the Chat API with a service account). Google Chat's `thread` is
//! the `threadKey` its cards already carry, one thread per object.

use super::{ChannelConfig, ChannelKind};
use crate::deliver::conversation::Mode;
use crate::deliver::Auth;

/// Why a channel of `kind` cannot have conversation `mode`, if it cannot for a reason of the
/// chat's own (not merely "not yet").
pub(super) fn refusal(kind: ChannelKind, mode: Mode) -> Option<&'static str> {
    match (kind, mode) {
        (ChannelKind::Teams, _) => Some(
            "a teams channel cannot thread: its Workflows webhook answers 202 with no message id to reply to or edit (set conversation = \"off\")",
        ),
        (ChannelKind::GoogleChat, Mode::ThreadEdit) => Some(
            "a google_chat channel cannot edit its root: that needs the Chat API with a service account; use \"thread\" (one thread per object by its threadKey)",
        ),
        _ => None,
    }
}

impl ChannelConfig {
    /// What this channel does with its conversations, as `check` says it: `None` when it has
    /// none (`conversation = "off"`, and no conversation asked of a transport that posts flat,
    /// [`super::ConversationConfig::fallback`]).
    pub fn conversation_plan(&self) -> Option<String> {
        if let Some(why) = &self.conversation.fallback {
            return Some(format!("channel {:?}: {why}", self.name));
        }
        let mode = self.conversation.mode;
        let edits = mode == Mode::ThreadEdit;
        let plan = match (&self.endpoint.auth, self.kind) {
            (_, _) if mode == Mode::Off => return None,
            (Auth::Discord { forum: true, .. }, _) if edits => {
                "threads + root edits (a forum post per object; broadcasts do not apply: a forum has no channel beside its posts)".to_string()
            }
            (Auth::Discord { forum: true, .. }, _) => {
                "threads only (a forum post per object; broadcasts do not apply: a forum has no channel beside its posts)".to_string()
            }
            (Auth::Discord { .. }, _) if edits => {
                "root edits only: discord cannot thread through a text channel's webhook, replies are posts in the channel (forum = true for a forum channel's webhook)".to_string()
            }
            (Auth::Discord { .. }, _) => {
                "flat posts: discord cannot thread through a text channel's webhook (forum = true for a forum channel's webhook)".to_string()
            }
            (_, ChannelKind::GoogleChat) => {
                "threads only: google_chat threads by the threadKey its cards carry (as with conversation = \"off\"); no root edits".to_string()
            }
            _ if edits => "threads + root edits".to_string(),
            _ => "threads only".to_string(),
        };
        Some(format!(
            "channel {:?}: conversation = {:?}: {plan}",
            self.name,
            mode.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error};

    const HOOK: &str = "url='https://discord.com/api/webhooks/1/TOKEN'";

    #[test]
    fn each_kind_says_what_its_conversations_do() {
        let plan = |block: &str| {
            one_channel(&format!("name='c'\n{block}"), &[])
                .conversation_plan()
                .unwrap_or_default()
        };
        assert!(plan(&format!(
            "kind='discord'\n{HOOK}\nforum=true\nconversation='thread+edit'"
        ))
        .contains(": threads + root edits (a forum post per object"));
        assert!(plan(&format!(
            "kind='discord'\n{HOOK}\nconversation='thread+edit'"
        ))
        .contains(": root edits only: discord cannot thread"));
        assert!(
            plan(&format!("kind='discord'\n{HOOK}\nconversation='thread'"))
                .contains(": flat posts: discord cannot thread through a text channel's webhook")
        );
        assert!(plan(
            "kind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t'\nconversation='thread'"
        )
        .contains("threadKey"));
        assert_eq!(
            one_channel(&format!("name='c'\nkind='discord'\n{HOOK}"), &[]).conversation_plan(),
            None
        );
        assert!(one_channel_error(
            "name='c'\nkind='teams'\nurl='https://example.com/workflows/1'\nconversation='thread'",
            &[]
        )
        .starts_with("channels[0].conversation: a teams channel cannot thread"));
        assert!(one_channel_error(
            "name='c'\nkind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t'\nconversation='thread+edit'",
            &[]
        )
        .starts_with("channels[0].conversation: a google_chat channel cannot edit its root"));
        assert!(one_channel_error(
            "name='c'\nkind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nforum=true",
            &[]
        )
        .starts_with("channels[0].forum: is for a discord channel"));
    }
}
