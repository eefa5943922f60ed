//! Work items (tasks, epics, objectives, …): `Issue Hook` with `object_kind: work_item`. They
//! are issues by another name: same fields, same actions.

use super::issue::{self, Issue};
use crate::event::table::{each_action, with, Action, Input, Parsed, Variant};
use crate::event::value::obj_at;
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde_json::Value;

/// The actions of issues.
pub(super) const ACTIONS: &[Action] = issue::ACTIONS;

/// A work item event; `None` without `object_attributes`.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let item = Issue::from_attrs(obj_at(input.v, &["object_attributes"])?, Some(input.v));
    let confidential = item.confidential;
    Some(
        input
            .keyed_by_action()
            .with(Detail::WorkItem(Box::new(item)))
            .confidential(confidential),
    )
}

/// Messages about one work item stay in order (work items share issues' numbers).
pub(super) fn object_key(i: &Issue, p: &str) -> String {
    issue::object_key(i, p)
}

/// The issue sample made a task, with each action.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let task = with(
        &with(base, &["object_kind"], Value::from("work_item")),
        &["object_attributes", "type"],
        Value::from("Task"),
    );
    each_action(&task, &["object_attributes", "action"], ACTIONS, "action")
        .into_iter()
        .map(|(what, v)| match what.as_str() {
            "" => ("as a task".to_string(), v),
            _ => (format!("as a task, {what}"), v),
        })
        .collect()
}

/// Template variables of work item events.
pub(super) const VARIABLES: KindVariables = (
    "work_item",
    &[
        ("work_item", "the work item (same fields as an issue; `work_item.issue_type` is `Task`, `Epic`, …)"),
        ("work_item.iid", "project-scoped number (`#23`)"),
        ("work_item.title", "title"),
        ("work_item.url", "web page"),
        ("work_item.state", "`opened` / `closed`"),
        ("work_item.description", "body text"),
        ("work_item.due_date", "calendar date `YYYY-MM-DD` (raw text if GitLab sent something else)"),
        ("work_item.labels", "label titles"),
        ("work_item.assignees", "assigned people (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("work_item.assignees[].name", "display name (falls back to the username, then `someone`)"),
        ("work_item.assignees[].username", "login name, without `@`"),
        ("work_item.assignees[].email", "e-mail, only when GitLab sent a real one"),
        ("work_item.assignees[].avatar_url", "avatar image URL (http(s) only)"),
        ("work_item.issue_type", "type: `Issue`, `Incident`, …; for work items `Task`, `Epic`, …"),
        ("work_item.confidential", "whether it is confidential"),
        ("work_item.created_at", "creation time (RFC 3339 when parseable)"),
        ("work_item.updated_at", "last update time (RFC 3339 when parseable)"),
        ("work_item.changes", "what the event changed, one entry per field (empty unless GitLab sent `changes`)"),
        ("work_item.changes[].field", "which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`, `milestone`, `due_date`, `target_branch`, `confidential`, `discussion_locked`"),
        ("work_item.changes[].label", "the field's name for people (`Title`, `Labels`, …)"),
        ("work_item.changes[].from", "previous value as text (title, state, due date `YYYY-MM-DD`, target branch)"),
        ("work_item.changes[].to", "new value as text"),
        ("work_item.changes[].added", "labels added, or names of the people added"),
        ("work_item.changes[].removed", "labels removed, or names of the people removed"),
        ("work_item.changes[].added_users", "people added (assignees, reviewers)"),
        ("work_item.changes[].added_users[].name", "display name (falls back to the username, then `someone`)"),
        ("work_item.changes[].added_users[].username", "login name, without `@`"),
        ("work_item.changes[].added_users[].email", "e-mail, only when GitLab sent a real one"),
        ("work_item.changes[].added_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("work_item.changes[].removed_users", "people removed (assignees, reviewers)"),
        ("work_item.changes[].removed_users[].name", "display name (falls back to the username, then `someone`)"),
        ("work_item.changes[].removed_users[].username", "login name, without `@`"),
        ("work_item.changes[].removed_users[].email", "e-mail, only when GitLab sent a real one"),
        ("work_item.changes[].removed_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("work_item.changes[].summary", "the change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`"),
    ],
);
