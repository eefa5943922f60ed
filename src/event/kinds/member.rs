//! Group members: `Member Hook` (group webhooks; also `System Hook` bodies), keyed by
//! `event_name` (`user_add_to_group` → `add`). The payload names no one but the member.

use crate::event::shared::{timestamp, Group, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::str_at;
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Membership changes and access requests.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("add", "was added to").sent_as("user_add_to_group"),
    Action::new("remove", "was removed from").sent_as("user_remove_from_group"),
    Action::new("update", "had their access changed in").sent_as("user_update_for_group"),
    Action::new("access_request", "requested access to").sent_as("user_access_request_to_group"),
    Action::new("access_request_denied", "was denied access to")
        .sent_as("user_access_request_denied_for_group"),
];

/// A group membership change (group webhooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Member {
    /// The member (also `actor`: the payload names no one else).
    pub user: User,
    /// The group.
    pub group: Group,
    /// Access level name (`Guest`, `Developer`, …).
    pub access: Option<String>,
    /// When the membership ends (RFC 3339 when parseable).
    pub expires_at: Option<String>,
    /// When the membership was created (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// A group membership event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let member = Member {
        user: input.actor.clone(),
        group: Group::from_fields(v).unwrap_or_default(),
        access: str_at(v, &["group_access"]),
        expires_at: timestamp(v, &["expires_at"]),
        created_at: timestamp(v, &["created_at"]),
    };
    Some(
        input
            .keyed(input.event_word("user_").as_deref())
            .with(Detail::Member(Box::new(member))),
    )
}

/// Messages about one member of one group stay in order.
pub(super) fn object_key(m: &Member, _: &str) -> String {
    format!("group/{}/member/{}", m.group.full_path, m.user.name)
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of group membership events.
pub(super) const VARIABLES: KindVariables = (
    "member",
    &[
        ("member", "the membership"),
        ("member.user", "the member (also `actor`)"),
        ("member.user.name", "display name (falls back to the username, then `someone`)"),
        ("member.user.username", "login name, without `@`"),
        ("member.user.email", "e-mail, only when GitLab sent a real one"),
        ("member.user.avatar_url", "avatar image URL (http(s) only)"),
        ("member.group", "the group"),
        ("member.group.id", "group id"),
        ("member.group.name", "group name"),
        ("member.group.full_path", "full path (`parent/child`)"),
        ("member.access", "access level (`Guest`, `Developer`, …)"),
        ("member.expires_at", "when the membership ends"),
        ("member.created_at", "when the membership was created"),
    ],
);
