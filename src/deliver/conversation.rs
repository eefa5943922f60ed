//! Conversations as `deliver` sees them: a message about an object may carry an
//! [`Instruction`] from the routing stage (which object it is about, whether the root is to be
//! edited, the root card to show, whether the object ended), wrapped with its body in an
//! envelope ([`wrap`], [`unwrap`]) so the store keeps one opaque body per message. The worker
//! reads the conversation map (`store::conversations`) to post the first message about an
//! object as the root of a thread, later ones into it, and (with [`Mode::ThreadEdit`]) to edit
//! the root; `deliver` still knows nothing of GitLab: what an object is, which card is its root
//! and when it ends are decided above it.

use serde::{Deserialize, Serialize};

/// How a channel groups the messages about one object (`channels[].conversation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every message is a post of its own (the default).
    #[default]
    Off,
    /// The first message about an object is the root; later ones go into its thread.
    Thread,
    /// As `Thread`, and the root is edited to show the object's latest state.
    ThreadEdit,
}

impl Mode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::Thread, Mode::ThreadEdit];

    /// The mode's name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Thread => "thread",
            Mode::ThreadEdit => "thread+edit",
        }
    }

    /// The mode named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// What the routing stage says about a message in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// The object the message is about (its ordering key).
    pub key: String,
    /// Whether the root is edited to show [`Instruction::root`] (`thread+edit`).
    pub edit: bool,
    /// The root card as the object's latest state shows it (`thread+edit`): posted as the root
    /// when the conversation starts, and the root is edited to it when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Whether the reply is also to be shown in the channel itself.
    #[serde(default)]
    pub broadcast: bool,
    /// Whether the object was merged or closed with this event: the conversation ends.
    #[serde(default)]
    pub ends: bool,
    /// Days after its end that a conversation still takes replies; then a new root starts.
    pub days: u32,
}

impl Instruction {
    /// Whether a conversation that ended at `closed_at` is over at `now` (unix ms).
    pub fn expired(&self, closed_at: Option<i64>, now: i64) -> bool {
        closed_at.is_some_and(|t| now - t > i64::from(self.days) * 86_400_000)
    }
}

/// The stored form of a message with an instruction.
#[derive(Serialize, Deserialize)]
struct Envelope {
    gcb_conversation: Instruction,
    body: String,
}

/// How an envelope starts (a chat body never does: it has no such key).
const PREFIX: &str = "{\"gcb_conversation\":";

/// `body` with `instruction`, as one stored body.
pub fn wrap(body: &str, instruction: &Instruction) -> String {
    serde_json::to_string(&Envelope {
        gcb_conversation: instruction.clone(),
        body: body.to_string(),
    })
    .unwrap_or_else(|_| body.to_string())
}

/// A stored body taken apart: the chat body and its instruction, if it has one.
pub fn unwrap(stored: &str) -> (String, Option<Instruction>) {
    if stored.starts_with(PREFIX) {
        if let Ok(e) = serde_json::from_str::<Envelope>(stored) {
            return (e.body, Some(e.gcb_conversation));
        }
    }
    (stored.to_string(), None)
}

/// A short hash of a root body, to skip edits that change nothing.
pub fn body_hash(body: &str) -> String {
    crate::signing::sha256(&[body.as_bytes()])[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What one post in a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act<'a> {
    /// A message of its own (the conversation's root, or a flat post).
    Root,
    /// A reply in the thread of the root with this reference.
    Reply {
        /// The root's reference, as the sender wrote it.
        root: &'a str,
        /// Whether the reply is also to be shown in the channel itself, where the chat's
        /// reply carries that (Slack's `reply_broadcast`, Cliq's `post_in_parent`).
        broadcast: bool,
    },
    /// The root with this reference, edited to show the body.
    Edit {
        /// The root's reference.
        root: &'a str,
    },
    /// A reply also shown in the channel itself, for a chat whose reply cannot carry that
    /// ([`crate::deliver::sender::separate_broadcast`]): a post of its own in the channel.
    Broadcast {
        /// The root's reference.
        root: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_plain_bodies_pass() {
        let i = Instruction {
            key: "acme/app!1".into(),
            edit: true,
            root: Some(r#"{"text":"root"}"#.into()),
            broadcast: false,
            ends: true,
            days: 14,
        };
        let stored = wrap(r#"{"text":"hi"}"#, &i);
        assert_eq!(
            unwrap(&stored),
            (r#"{"text":"hi"}"#.to_string(), Some(i.clone()))
        );
        assert_eq!(unwrap(r#"{"text":"x"}"#), (r#"{"text":"x"}"#.into(), None));
        assert!(!i.expired(None, i64::MAX));
        assert!(!i.expired(Some(0), 14 * 86_400_000));
        assert!(i.expired(Some(0), 14 * 86_400_000 + 1));
        assert_eq!(Mode::from_name("thread+edit"), Some(Mode::ThreadEdit));
        assert_eq!(Mode::from_name("threads"), None);
        assert_ne!(body_hash("a"), body_hash("b"));
    }
}
