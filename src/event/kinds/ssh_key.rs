//! SSH keys, from instance-wide system hooks: added or removed (`key_create`, `key_destroy`).
//! Keyed `ssh_key.create`, `ssh_key.destroy`; off unless a filter names `ssh_key`.

use crate::event::shared::timestamp;
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to keys.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "added").sent_as("key_create"),
    Action::new("destroy", "removed").sent_as("key_destroy"),
];

/// An SSH key added or removed (system hooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SshKey {
    /// Key id.
    pub id: Option<u64>,
    /// Whose key it is (login name, without `@`).
    pub username: Option<String>,
    /// The key's type (`ssh-rsa`, `ssh-ed25519`, …).
    pub key_type: Option<String>,
    /// The key's comment, often `user@host`.
    pub comment: Option<String>,
    /// When the key was added (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// An SSH key event; the public key itself is read for its type and comment only.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let key = str_at(v, &["key"]).unwrap_or_default();
    let mut parts = key.split_whitespace();
    let key_type = parts.next().map(str::to_string);
    let comment = parts.skip(1).collect::<Vec<_>>().join(" ");
    let ssh_key = SshKey {
        id: u64_at(v, &["id"]),
        username: str_at(v, &["username"]),
        key_type,
        comment: (!comment.is_empty()).then_some(comment),
        created_at: timestamp(v, &["created_at"]),
    };
    Some(
        input
            .keyed(input.event_word("key_").as_deref())
            .with(Detail::SshKey(Box::new(ssh_key))),
    )
}

/// Messages about one key stay in order.
pub(super) fn object_key(k: &SshKey, _: &str) -> String {
    format!("ssh_key/{}", k.id.unwrap_or(0))
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of SSH key events.
pub(super) const VARIABLES: KindVariables = (
    "ssh_key",
    &[
        ("ssh_key", "the key (system hooks only)"),
        ("ssh_key.id", "key id"),
        ("ssh_key.username", "whose key it is (login name, without `@`)"),
        ("ssh_key.key_type", "`ssh-rsa`, `ssh-ed25519`, …"),
        ("ssh_key.comment", "the key's comment, often `user@host`"),
        ("ssh_key.created_at", "when the key was added"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail, Kind};
    use serde_json::json;

    #[test]
    fn keys_show_their_type_and_comment() {
        let body = json!({"event_name": "key_destroy", "created_at": "2014-08-18 18:45:16 UTC",
                          "username": "root", "key": "ssh-rsa AAAAB3Nza john@localhost", "id": 4});
        let Ok(e) = parse(Some("System Hook"), body) else {
            panic!("no parse")
        };
        assert_eq!((e.kind.clone(), e.key.as_str(), e.verb.as_str()), (Kind::SshKey, "ssh_key.destroy", "removed"));
        let Detail::SshKey(k) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        assert_eq!(k.key_type.as_deref(), Some("ssh-rsa"));
        assert_eq!(k.comment.as_deref(), Some("john@localhost"));
        assert_eq!(k.created_at.as_deref(), Some("2014-08-18T18:45:16+00:00"));
        assert_eq!(e.object_key(), "ssh_key/4");
    }

    #[test]
    fn a_key_without_a_key_degrades() {
        let Ok(e) = parse(None, json!({"event_name": "key_create", "key": 42})) else {
            panic!("no parse")
        };
        assert_eq!(e.key, "ssh_key.create");
        let Detail::SshKey(k) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        assert_eq!((k.key_type.as_deref(), k.comment.as_deref()), (Some("42"), None));
    }
}
