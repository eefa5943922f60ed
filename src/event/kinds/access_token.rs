//! Project and group access tokens about to expire: `Resource Access Token Hook` (GitLab sends
//! it seven days ahead), keyed by `event_name` (`expiring_access_token` → `expiring`).

use crate::event::shared::{timestamp, under, Group};
use crate::event::table::{as_bundled, Action, Input, Parsed, Variant};
use crate::event::value::{obj_at, str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::{time, Detail};
use serde::Serialize;
use serde_json::Value;

/// What GitLab tells of tokens.
pub(super) const ACTIONS: &[Action] =
    &[Action::new("expiring", "expires").sent_as("expiring_access_token")];

/// A project or group access token about to expire.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessToken {
    /// Token id.
    pub id: Option<u64>,
    /// Token name.
    pub name: String,
    /// `project` or `group`: what the token belongs to.
    pub scope: &'static str,
    /// Calendar date `YYYY-MM-DD` it expires on.
    pub expires_at: Option<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// The group, for group tokens.
    pub group: Option<Group>,
    /// Web page of the project's access tokens (project tokens only: GitLab sends no group URL).
    pub url: Option<String>,
}

/// An access token event; another `…_access_token` event name is keyed by its first part.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (v, a) = (input.v, input.attrs());
    let group = obj_at(v, &["group"]).and_then(Group::from_fields);
    let is_project = obj_at(v, &["project"]).is_some();
    let sent = str_at(v, &["event_name"]);
    let word = sent.as_deref().map(|n| {
        input
            .word_sent_as(Some(n))
            .unwrap_or_else(|| n.trim_end_matches("_access_token"))
    });
    let token = AccessToken {
        id: u64_at(a, &["id"]),
        name: str_at(a, &["name"]).unwrap_or_else(|| "(unnamed)".to_string()),
        scope: if is_project || group.is_none() {
            "project"
        } else {
            "group"
        },
        expires_at: str_at(a, &["expires_at"]).map(|d| time::normalize(&d)),
        created_at: timestamp(a, &["created_at"]),
        url: is_project
            .then(|| under(&input.project, "settings/access_tokens"))
            .flatten(),
        group,
    };
    Some(
        input
            .keyed(word)
            .with(Detail::AccessToken(Box::new(token))),
    )
}

/// Messages about one token stay in order.
pub(super) fn object_key(t: &AccessToken, p: &str) -> String {
    match &t.group {
        Some(g) if p.is_empty() => format!("group/{}/access_token/{}", g.full_path, t.name),
        _ => format!("{p}/access_token/{}", t.name),
    }
}

/// Each bundled sample (a project and a group token) as it is.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    as_bundled(base)
}

/// Template variables of access token events.
pub(super) const VARIABLES: KindVariables = (
    "access_token",
    &[
        ("access_token", "the token"),
        ("access_token.id", "token id"),
        ("access_token.name", "token name"),
        ("access_token.scope", "`project` or `group`"),
        ("access_token.expires_at", "calendar date `YYYY-MM-DD` it expires on"),
        ("access_token.created_at", "creation time"),
        ("access_token.group", "the group, for group tokens"),
        ("access_token.group.id", "group id"),
        ("access_token.group.name", "group name"),
        ("access_token.group.full_path", "full path (`parent/child`)"),
        ("access_token.url", "web page of the project's access tokens (project tokens only)"),
    ],
);
