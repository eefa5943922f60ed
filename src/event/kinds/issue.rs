//! Issues: `Issue Hook` with `object_kind: issue` (incidents, requirements and test cases too),
//! keyed by `object_attributes.action`; also the issue a comment is on.

use crate::event::changes::{self, Change};
use crate::event::shared::{assignees, label_titles, timestamp, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::{time, Detail};
use serde::Serialize;
use serde_json::Value;

/// What happens to issues and work items; no action at all is GitLab's *Test* button (or a very
/// old GitLab).
pub(super) const ACTIONS: &[Action] = &[
    Action::new("open", "opened"),
    Action::new("close", "closed"),
    Action::new("reopen", "reopened"),
    Action::new("update", "updated"),
    Action::new("test", "sent a test event for").sent_as(""),
];

/// An issue (also the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Issue {
    /// Project-scoped number (`#23`).
    pub iid: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// `opened` / `closed`.
    pub state: Option<String>,
    /// Body text.
    pub description: Option<String>,
    /// Calendar date `YYYY-MM-DD` (raw text if GitLab sent something else).
    pub due_date: Option<String>,
    /// Label titles.
    pub labels: Vec<String>,
    /// Assigned people.
    pub assignees: Vec<User>,
    /// Issue type (`Issue`, `Incident`, …); for work items their type (`Task`, `Epic`, …).
    pub issue_type: Option<String>,
    /// Whether the issue is confidential.
    pub confidential: bool,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
    /// What this event changed (see [`Change`]); empty for comments' issues.
    pub changes: Vec<Change>,
}

impl Issue {
    /// From `object_attributes` (or a comment's `issue`); `payload` gives labels, assignees and
    /// changes when the issue is the event's own.
    pub(super) fn from_attrs(a: &Value, payload: Option<&Value>) -> Issue {
        Issue {
            iid: u64_at(a, &["iid"]),
            title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
            url: url_at(a, &["url"]),
            state: str_at(a, &["state"]),
            description: str_at(a, &["description"]),
            due_date: str_at(a, &["due_date"]).map(|d| time::normalize(&d)),
            labels: label_titles(a, payload),
            assignees: payload.map(assignees).unwrap_or_default(),
            issue_type: str_at(a, &["type"]).or_else(|| str_at(a, &["issue_type"])),
            confidential: bool_at(a, &["confidential"]).unwrap_or(false),
            created_at: timestamp(a, &["created_at"]),
            updated_at: timestamp(a, &["updated_at"]),
            changes: payload.map(changes::detect).unwrap_or_default(),
        }
    }
}

/// An issue event; `None` without `object_attributes`.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let issue = Issue::from_attrs(obj_at(input.v, &["object_attributes"])?, Some(input.v));
    let confidential = issue.confidential;
    Some(
        input
            .keyed_by_action()
            .with(Detail::Issue(issue))
            .confidential(confidential),
    )
}

/// Messages about one issue stay in order.
pub(super) fn object_key(i: &Issue, p: &str) -> String {
    format!("{p}/issue/{}", i.iid.unwrap_or(0))
}

/// The sample with each action, and without one.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["object_attributes", "action"], ACTIONS, "action")
}

/// Template variables of issue events.
pub(super) const VARIABLES: KindVariables = (
    "issue",
    &[
        ("issue", "the issue"),
        ("issue.iid", "project-scoped number (`#23`)"),
        ("issue.title", "title"),
        ("issue.url", "web page"),
        ("issue.state", "`opened` / `closed`"),
        ("issue.description", "body text"),
        ("issue.due_date", "calendar date `YYYY-MM-DD` (raw text if GitLab sent something else)"),
        ("issue.labels", "label titles"),
        ("issue.assignees", "assigned people (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("issue.assignees[].name", "display name (falls back to the username, then `someone`)"),
        ("issue.assignees[].username", "login name, without `@`"),
        ("issue.assignees[].email", "e-mail, only when GitLab sent a real one"),
        ("issue.assignees[].avatar_url", "avatar image URL (http(s) only)"),
        ("issue.issue_type", "type: `Issue`, `Incident`, …; for work items `Task`, `Epic`, …"),
        ("issue.confidential", "whether it is confidential"),
        ("issue.created_at", "creation time (RFC 3339 when parseable)"),
        ("issue.updated_at", "last update time (RFC 3339 when parseable)"),
        ("issue.changes", "what the event changed, one entry per field (empty unless GitLab sent `changes`)"),
        ("issue.changes[].field", "which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`, `milestone`, `due_date`, `target_branch`, `confidential`, `discussion_locked`"),
        ("issue.changes[].label", "the field's name for people (`Title`, `Labels`, …)"),
        ("issue.changes[].from", "previous value as text (title, state, due date `YYYY-MM-DD`, target branch)"),
        ("issue.changes[].to", "new value as text"),
        ("issue.changes[].added", "labels added, or names of the people added"),
        ("issue.changes[].removed", "labels removed, or names of the people removed"),
        ("issue.changes[].added_users", "people added (assignees, reviewers)"),
        ("issue.changes[].added_users[].name", "display name (falls back to the username, then `someone`)"),
        ("issue.changes[].added_users[].username", "login name, without `@`"),
        ("issue.changes[].added_users[].email", "e-mail, only when GitLab sent a real one"),
        ("issue.changes[].added_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("issue.changes[].removed_users", "people removed (assignees, reviewers)"),
        ("issue.changes[].removed_users[].name", "display name (falls back to the username, then `someone`)"),
        ("issue.changes[].removed_users[].username", "login name, without `@`"),
        ("issue.changes[].removed_users[].email", "e-mail, only when GitLab sent a real one"),
        ("issue.changes[].removed_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("issue.changes[].summary", "the change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`"),
    ],
);
