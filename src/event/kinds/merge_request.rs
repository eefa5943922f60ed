//! Merge requests: `Merge Request Hook`, keyed by `object_attributes.action`; also the merge
//! request a comment is on.

use crate::event::changes::{self, people_at, Change};
use crate::event::shared::{assignees, label_titles, timestamp, Commit, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to merge requests; no action at all is GitLab's *Test* button.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("open", "opened"),
    Action::new("close", "closed"),
    Action::new("reopen", "reopened"),
    Action::new("update", "updated"),
    Action::new("merge", "merged"),
    Action::new("approved", "approved"),
    Action::new("unapproved", "unapproved"),
    Action::new("approval", "added an approval to"),
    Action::new("unapproval", "removed an approval from"),
    Action::new("test", "sent a test event for").sent_as(""),
];

/// A merge request (also the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MergeRequest {
    /// Project-scoped number (`!1`).
    pub iid: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// `opened` / `closed` / `merged` / `locked`.
    pub state: Option<String>,
    /// Body text.
    pub description: Option<String>,
    /// Branch the changes come from.
    pub source_branch: Option<String>,
    /// Branch the changes go to.
    pub target_branch: Option<String>,
    /// `group/project` of the source, when it is a fork.
    pub source_project: Option<String>,
    /// Whether it is marked draft.
    pub draft: bool,
    /// Label titles.
    pub labels: Vec<String>,
    /// Assigned people.
    pub assignees: Vec<User>,
    /// Requested reviewers.
    pub reviewers: Vec<User>,
    /// GitLab's detailed merge status (`mergeable`, …).
    pub merge_status: Option<String>,
    /// Newest commit.
    pub last_commit: Option<Commit>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
    /// What this event changed (see [`Change`]); empty for comments' merge requests.
    pub changes: Vec<Change>,
}

impl MergeRequest {
    /// From `object_attributes` (or a comment's `merge_request`); `payload` gives labels,
    /// assignees, reviewers and changes when the merge request is the event's own.
    pub(super) fn from_attrs(a: &Value, payload: Option<&Value>) -> MergeRequest {
        let source = str_at(a, &["source", "path_with_namespace"]);
        let target = str_at(a, &["target", "path_with_namespace"]);
        MergeRequest {
            iid: u64_at(a, &["iid"]),
            title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
            url: url_at(a, &["url"]),
            state: str_at(a, &["state"]),
            description: str_at(a, &["description"]),
            source_branch: str_at(a, &["source_branch"]),
            target_branch: str_at(a, &["target_branch"]),
            source_project: source.filter(|s| Some(s) != target.as_ref()),
            draft: bool_at(a, &["draft"])
                .or_else(|| bool_at(a, &["work_in_progress"]))
                .unwrap_or(false),
            labels: label_titles(a, payload),
            assignees: payload.map(assignees).unwrap_or_default(),
            reviewers: payload
                .map(|p| people_at(p, &["reviewers"]))
                .unwrap_or_default(),
            merge_status: str_at(a, &["detailed_merge_status"])
                .or_else(|| str_at(a, &["merge_status"])),
            last_commit: obj_at(a, &["last_commit"]).map(Commit::from_obj),
            created_at: timestamp(a, &["created_at"]),
            updated_at: timestamp(a, &["updated_at"]),
            changes: payload.map(changes::detect).unwrap_or_default(),
        }
    }
}

/// A merge request event; `None` without `object_attributes`.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let mr = MergeRequest::from_attrs(obj_at(input.v, &["object_attributes"])?, Some(input.v));
    Some(
        input
            .keyed_by_action()
            .with(Detail::MergeRequest(Box::new(mr))),
    )
}

/// Messages about one merge request stay in order.
pub(super) fn object_key(m: &MergeRequest, p: &str) -> String {
    format!("{p}/mr/{}", m.iid.unwrap_or(0))
}

/// The sample with each action, and without one.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["object_attributes", "action"], ACTIONS, "action")
}

/// Template variables of merge request events.
pub(super) const VARIABLES: KindVariables = (
    "merge_request",
    &[
        ("merge_request", "the merge request"),
        ("merge_request.iid", "project-scoped number (`!1`)"),
        ("merge_request.title", "title"),
        ("merge_request.url", "web page"),
        ("merge_request.state", "`opened` / `closed` / `merged` / `locked`"),
        ("merge_request.description", "body text"),
        ("merge_request.source_branch", "branch the changes come from"),
        ("merge_request.target_branch", "branch the changes go to"),
        ("merge_request.source_project", "`group/project` of the source, when it is a fork"),
        ("merge_request.draft", "whether it is marked draft"),
        ("merge_request.labels", "label titles"),
        ("merge_request.assignees", "assigned people (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("merge_request.assignees[].name", "display name (falls back to the username, then `someone`)"),
        ("merge_request.assignees[].username", "login name, without `@`"),
        ("merge_request.assignees[].email", "e-mail, only when GitLab sent a real one"),
        ("merge_request.assignees[].avatar_url", "avatar image URL (http(s) only)"),
        ("merge_request.reviewers", "requested reviewers (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("merge_request.reviewers[].name", "display name (falls back to the username, then `someone`)"),
        ("merge_request.reviewers[].username", "login name, without `@`"),
        ("merge_request.reviewers[].email", "e-mail, only when GitLab sent a real one"),
        ("merge_request.reviewers[].avatar_url", "avatar image URL (http(s) only)"),
        ("merge_request.merge_status", "GitLab's detailed merge status (`mergeable`, …)"),
        ("merge_request.last_commit", "newest commit"),
        ("merge_request.last_commit.id", "full commit id"),
        ("merge_request.last_commit.short_id", "first 8 characters of the id"),
        ("merge_request.last_commit.title", "first line of the message"),
        ("merge_request.last_commit.message", "whole message"),
        ("merge_request.last_commit.url", "web page of the commit"),
        ("merge_request.last_commit.author_name", "author's name"),
        ("merge_request.last_commit.author_email", "author's e-mail"),
        ("merge_request.last_commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
        ("merge_request.created_at", "creation time (RFC 3339 when parseable)"),
        ("merge_request.updated_at", "last update time (RFC 3339 when parseable)"),
        ("merge_request.changes", "what the event changed, one entry per field (empty unless GitLab sent `changes`)"),
        ("merge_request.changes[].field", "which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`, `milestone`, `due_date`, `target_branch`, `confidential`, `discussion_locked`"),
        ("merge_request.changes[].label", "the field's name for people (`Title`, `Labels`, …)"),
        ("merge_request.changes[].from", "previous value as text (title, state, due date `YYYY-MM-DD`, target branch)"),
        ("merge_request.changes[].to", "new value as text"),
        ("merge_request.changes[].added", "labels added, or names of the people added"),
        ("merge_request.changes[].removed", "labels removed, or names of the people removed"),
        ("merge_request.changes[].added_users", "people added (assignees, reviewers)"),
        ("merge_request.changes[].added_users[].name", "display name (falls back to the username, then `someone`)"),
        ("merge_request.changes[].added_users[].username", "login name, without `@`"),
        ("merge_request.changes[].added_users[].email", "e-mail, only when GitLab sent a real one"),
        ("merge_request.changes[].added_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("merge_request.changes[].removed_users", "people removed (assignees, reviewers)"),
        ("merge_request.changes[].removed_users[].name", "display name (falls back to the username, then `someone`)"),
        ("merge_request.changes[].removed_users[].username", "login name, without `@`"),
        ("merge_request.changes[].removed_users[].email", "e-mail, only when GitLab sent a real one"),
        ("merge_request.changes[].removed_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("merge_request.changes[].summary", "the change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`"),
    ],
);
