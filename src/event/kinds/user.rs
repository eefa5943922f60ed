//! User accounts, from instance-wide system hooks (`X-Gitlab-Event: System Hook`): created,
//! deleted, renamed, or a blocked user's failed sign-in. Keyed by `event_name`
//! (`user_failed_login` → `user.failed_login`); off unless a filter names `user`.

use crate::event::shared::{timestamp, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to accounts.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "was created").sent_as("user_create"),
    Action::new("destroy", "was deleted").sent_as("user_destroy"),
    Action::new("failed_login", "failed to sign in").sent_as("user_failed_login"),
    Action::new("rename", "was renamed").sent_as("user_rename"),
];

/// A user account, as system hooks describe it (no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserAccount {
    /// User id.
    pub id: Option<u64>,
    /// Display name; falls back to the username, then "someone".
    pub name: String,
    /// Login name, without `@`.
    pub username: Option<String>,
    /// E-mail, when GitLab sent a real one.
    pub email: Option<String>,
    /// The account's state, for failed sign-ins (`blocked`, `ldap_blocked`).
    pub state: Option<String>,
    /// The username before a rename.
    pub old_username: Option<String>,
    /// When the account was created (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// A user account event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let person = User::from_parts(
        str_at(v, &["name"]),
        str_at(v, &["username"]),
        str_at(v, &["email"]),
        None,
    );
    let account = UserAccount {
        id: u64_at(v, &["user_id"]),
        name: person.name,
        username: person.username,
        email: person.email,
        state: str_at(v, &["state"]),
        old_username: str_at(v, &["old_username"]),
        created_at: timestamp(v, &["created_at"]),
    };
    Some(
        input
            .keyed(input.event_word("user_").as_deref())
            .with(Detail::User(Box::new(account))),
    )
}

/// Messages about one account stay in order.
pub(super) fn object_key(u: &UserAccount, _: &str) -> String {
    match u.id {
        Some(id) => format!("user/{id}"),
        None => format!("user/{}", u.username.as_deref().unwrap_or(&u.name)),
    }
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of user account events.
pub(super) const VARIABLES: KindVariables = (
    "user",
    &[
        ("user", "the account (system hooks only)"),
        ("user.id", "user id"),
        ("user.name", "display name (falls back to the username, then `someone`)"),
        ("user.username", "login name, without `@`"),
        ("user.email", "e-mail, only when GitLab sent a real one"),
        ("user.state", "the account's state, for failed sign-ins (`blocked`, `ldap_blocked`)"),
        ("user.old_username", "the username before a rename"),
        ("user.created_at", "when the account was created"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail, Kind};
    use serde_json::json;

    #[test]
    fn accounts_are_keyed_by_event_name_and_degrade() {
        let cases = [
            (json!({"event_name": "user_create", "name": "John Smith", "username": "js", "email": "js@gitlabhq.com", "user_id": 41}), "user.create", true),
            (json!({"event_name": "user_failed_login", "username": "user4", "state": "blocked"}), "user.failed_login", true),
            (json!({"event_name": "user_rename", "username": "new", "old_username": "old"}), "user.rename", true),
            (json!({"event_name": "user_destroy", "name": null, "email": "[REDACTED]"}), "user.destroy", true),
            (json!({"event_name": "user_create", "created_at": "yesterday-ish"}), "user.create", true),
        ];
        for (body, key, known) in cases {
            let Ok(e) = parse(Some("System Hook"), body) else {
                panic!("{key} does not parse")
            };
            assert_eq!((e.kind.clone(), e.key.as_str(), e.known), (Kind::User, key, known));
            assert!(e.kind.opt_in());
            let Detail::User(u) = &e.detail else {
                panic!("{key}: {:?}", e.detail)
            };
            assert!(!u.name.is_empty(), "{key}");
            assert!(u.email.as_deref().is_none_or(|m| m.contains('@')), "{key}");
        }
        let e = parse(None, json!({"event_name": "user_failed_login", "name": "John", "username": "u", "state": "ldap_blocked", "created_at": "2017-10-03T06:08:48Z"}));
        let Ok(e) = e else { panic!("no parse") };
        assert_eq!(e.verb, "failed to sign in");
        assert_eq!(e.object_key(), "user/u");
        let Detail::User(u) = e.detail else { panic!() };
        assert_eq!(u.state.as_deref(), Some("ldap_blocked"));
        assert_eq!(u.created_at.as_deref(), Some("2017-10-03T06:08:48+00:00"));
    }

    #[test]
    fn group_member_events_stay_members() {
        let Ok(e) = parse(Some("System Hook"), json!({"event_name": "user_add_to_group"})) else {
            panic!("no parse")
        };
        assert_eq!((e.kind, e.key.as_str()), (Kind::Member, "member.add"));
    }
}
