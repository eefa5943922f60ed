//! Comments: `Note Hook`, keyed by what they are on (`noteable_type`): an issue, a merge request,
//! a commit or a snippet. The target itself is part of the detail.

use super::issue::{self, Issue};
use super::merge_request::{self, MergeRequest};
use crate::event::shared::Commit;
use crate::event::table::{as_bundled, key_word, Action, Input, Keyed, Parsed, Variant};
use crate::event::value::{bool_at, obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What people read, whatever the comment is on.
const VERB: &str = "commented on";

/// The targets a comment can have, keyed by GitLab's `noteable_type`.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("issue", VERB).sent_as("Issue"),
    Action::new("merge_request", VERB).sent_as("MergeRequest"),
    Action::new("commit", VERB).sent_as("Commit"),
    Action::new("snippet", VERB).sent_as("Snippet"),
];

/// A code snippet (the target of a comment).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Snippet {
    /// Snippet id.
    pub id: Option<u64>,
    /// Title.
    pub title: String,
    /// Web page.
    pub url: Option<String>,
    /// File name.
    pub file_name: Option<String>,
}

/// A comment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Note {
    /// Comment text.
    pub body: String,
    /// Link to the comment.
    pub url: Option<String>,
    /// `commit`, `merge_request`, `issue`, `snippet` (or what GitLab sent).
    pub target: String,
    /// Short human name of the target (`issue #17`, `merge request !1`, `commit cfe32cf6`, `snippet $53`).
    pub target_label: String,
    /// Title of the target (the commit's first line for commits).
    pub target_title: String,
    /// Link to the target.
    pub target_url: Option<String>,
    /// Whether GitLab wrote it (system note) rather than a person.
    pub system: bool,
    /// The issue, for comments on issues.
    pub issue: Option<Issue>,
    /// The merge request, for comments on merge requests.
    pub merge_request: Option<MergeRequest>,
    /// The commit, for comments on commits.
    pub commit: Option<Commit>,
    /// The snippet, for comments on snippets.
    pub snippet: Option<Snippet>,
}

/// A comment; `None` without `object_attributes`. A target this version does not know is keyed
/// (`note.epic`) but not known.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (a, v) = (obj_at(input.v, &["object_attributes"])?, input.v);
    let sent = str_at(a, &["noteable_type"]);
    let word = input.word_sent_as(Some(sent.as_deref().unwrap_or("")));
    let url = url_at(a, &["url"]);
    let url_without_fragment = url
        .as_ref()
        .map(|u| u.split('#').next().unwrap_or(u).to_string());
    let mut note = Note {
        body: str_at(a, &["note"]).unwrap_or_default(),
        url,
        target: word.map_or_else(|| key_word(sent.as_deref().unwrap_or("")), str::to_string),
        target_label: String::new(),
        target_title: String::new(),
        target_url: None,
        system: bool_at(a, &["system"]).unwrap_or(false),
        issue: None,
        merge_request: None,
        commit: None,
        snippet: None,
    };
    match word {
        Some("issue") => {
            let issue = obj_at(v, &["issue"]).map(|i| Issue::from_attrs(i, None));
            let iid = issue.as_ref().and_then(|i| i.iid);
            note.target_label = iid.map_or("an issue".into(), |n| format!("issue #{n}"));
            note.target_title = issue.as_ref().map(|i| i.title.clone()).unwrap_or_default();
            note.target_url = issue.as_ref().and_then(|i| i.url.clone());
            note.issue = issue;
        }
        Some("merge_request") => {
            let mr = obj_at(v, &["merge_request"]).map(|m| MergeRequest::from_attrs(m, None));
            let iid = mr.as_ref().and_then(|m| m.iid);
            note.target_label =
                iid.map_or("a merge request".into(), |n| format!("merge request !{n}"));
            note.target_title = mr.as_ref().map(|m| m.title.clone()).unwrap_or_default();
            note.target_url = mr.as_ref().and_then(|m| m.url.clone());
            note.merge_request = mr;
        }
        Some("commit") => {
            let c = obj_at(v, &["commit"]).map(Commit::from_obj);
            note.target_label = c
                .as_ref()
                .map_or("a commit".into(), |c| format!("commit {}", c.short_id));
            note.target_title = c.as_ref().map(|c| c.title.clone()).unwrap_or_default();
            note.target_url = c.as_ref().and_then(|c| c.url.clone());
            note.commit = c;
        }
        Some("snippet") => {
            let s = obj_at(v, &["snippet"]).map(|s| Snippet {
                id: u64_at(s, &["id"]),
                title: str_at(s, &["title"]).unwrap_or_default(),
                url: url_at(s, &["url"]),
                file_name: str_at(s, &["file_name"]),
            });
            let id = s.as_ref().and_then(|s| s.id);
            note.target_label = id.map_or("a snippet".into(), |n| format!("snippet ${n}"));
            note.target_title = s.as_ref().map(|s| s.title.clone()).unwrap_or_default();
            note.target_url = s.as_ref().and_then(|s| s.url.clone());
            note.snippet = s;
        }
        _ => note.target_label = "something".into(),
    }
    if note.target_url.is_none() {
        note.target_url = url_without_fragment;
    }
    if note.target_title.is_empty() {
        note.target_title = note.target_label.clone();
    }
    let confidential = note.issue.as_ref().is_some_and(|i| i.confidential);
    let keyed = Keyed {
        key: format!("{}.{}", input.row.name, note.target),
        action: input.action.clone(),
        verb: VERB.to_string(),
        known: word.is_some(),
    };
    Some(
        keyed
            .with(Detail::Note(Box::new(note)))
            .confidential(confidential),
    )
}

/// Comments stay in order with the issue or merge request they are on.
pub(super) fn object_key(n: &Note, p: &str) -> String {
    match (&n.issue, &n.merge_request) {
        (Some(i), _) => issue::object_key(i, p),
        (_, Some(m)) => merge_request::object_key(m, p),
        _ => format!("{p}/note/{}", n.target_label),
    }
}

/// Each bundled sample (one per target) as it is.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    as_bundled(base)
}

/// Template variables of comments.
pub(super) const VARIABLES: KindVariables = (
    "note",
    &[
        ("note", "the comment"),
        ("note.body", "comment text"),
        ("note.url", "link to the comment"),
        ("note.target", "`issue`, `merge_request`, `commit`, `snippet` (or what GitLab sent)"),
        ("note.target_label", "short name of the target: `issue #17`, `merge request !1`, `commit cfe32cf6`, `snippet $53`"),
        ("note.target_title", "title of the target (the commit's first line for commits)"),
        ("note.target_url", "link to the target"),
        ("note.system", "whether GitLab wrote it (system note)"),
        ("note.issue", "the issue, for comments on issues"),
        ("note.issue.iid", "project-scoped number (`#23`)"),
        ("note.issue.title", "title"),
        ("note.issue.url", "web page"),
        ("note.issue.state", "`opened` / `closed`"),
        ("note.issue.description", "body text"),
        ("note.issue.due_date", "calendar date `YYYY-MM-DD` (raw text if GitLab sent something else)"),
        ("note.issue.labels", "label titles"),
        ("note.issue.assignees", "assigned people (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("note.issue.assignees[].name", "display name (falls back to the username, then `someone`)"),
        ("note.issue.assignees[].username", "login name, without `@`"),
        ("note.issue.assignees[].email", "e-mail, only when GitLab sent a real one"),
        ("note.issue.assignees[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.issue.issue_type", "type: `Issue`, `Incident`, …; for work items `Task`, `Epic`, …"),
        ("note.issue.confidential", "whether it is confidential"),
        ("note.issue.created_at", "creation time (RFC 3339 when parseable)"),
        ("note.issue.updated_at", "last update time (RFC 3339 when parseable)"),
        ("note.issue.changes", "what the event changed, one entry per field (empty unless GitLab sent `changes`)"),
        ("note.issue.changes[].field", "which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`, `milestone`, `due_date`, `target_branch`, `confidential`, `discussion_locked`"),
        ("note.issue.changes[].label", "the field's name for people (`Title`, `Labels`, …)"),
        ("note.issue.changes[].from", "previous value as text (title, state, due date `YYYY-MM-DD`, target branch)"),
        ("note.issue.changes[].to", "new value as text"),
        ("note.issue.changes[].added", "labels added, or names of the people added"),
        ("note.issue.changes[].removed", "labels removed, or names of the people removed"),
        ("note.issue.changes[].added_users", "people added (assignees, reviewers)"),
        ("note.issue.changes[].added_users[].name", "display name (falls back to the username, then `someone`)"),
        ("note.issue.changes[].added_users[].username", "login name, without `@`"),
        ("note.issue.changes[].added_users[].email", "e-mail, only when GitLab sent a real one"),
        ("note.issue.changes[].added_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.issue.changes[].removed_users", "people removed (assignees, reviewers)"),
        ("note.issue.changes[].removed_users[].name", "display name (falls back to the username, then `someone`)"),
        ("note.issue.changes[].removed_users[].username", "login name, without `@`"),
        ("note.issue.changes[].removed_users[].email", "e-mail, only when GitLab sent a real one"),
        ("note.issue.changes[].removed_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.issue.changes[].summary", "the change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`"),
        ("note.merge_request", "the merge request, for comments on merge requests"),
        ("note.merge_request.iid", "project-scoped number (`!1`)"),
        ("note.merge_request.title", "title"),
        ("note.merge_request.url", "web page"),
        ("note.merge_request.state", "`opened` / `closed` / `merged` / `locked`"),
        ("note.merge_request.description", "body text"),
        ("note.merge_request.source_branch", "branch the changes come from"),
        ("note.merge_request.target_branch", "branch the changes go to"),
        ("note.merge_request.source_project", "`group/project` of the source, when it is a fork"),
        ("note.merge_request.draft", "whether it is marked draft"),
        ("note.merge_request.labels", "label titles"),
        ("note.merge_request.assignees", "assigned people (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("note.merge_request.assignees[].name", "display name (falls back to the username, then `someone`)"),
        ("note.merge_request.assignees[].username", "login name, without `@`"),
        ("note.merge_request.assignees[].email", "e-mail, only when GitLab sent a real one"),
        ("note.merge_request.assignees[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.merge_request.reviewers", "requested reviewers (list of people; `{{join …}}`, `{{mention …}}`)"),
        ("note.merge_request.reviewers[].name", "display name (falls back to the username, then `someone`)"),
        ("note.merge_request.reviewers[].username", "login name, without `@`"),
        ("note.merge_request.reviewers[].email", "e-mail, only when GitLab sent a real one"),
        ("note.merge_request.reviewers[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.merge_request.merge_status", "GitLab's detailed merge status (`mergeable`, …)"),
        ("note.merge_request.last_commit", "newest commit"),
        ("note.merge_request.last_commit.id", "full commit id"),
        ("note.merge_request.last_commit.short_id", "first 8 characters of the id"),
        ("note.merge_request.last_commit.title", "first line of the message"),
        ("note.merge_request.last_commit.message", "whole message"),
        ("note.merge_request.last_commit.url", "web page of the commit"),
        ("note.merge_request.last_commit.author_name", "author's name"),
        ("note.merge_request.last_commit.author_email", "author's e-mail"),
        ("note.merge_request.last_commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
        ("note.merge_request.created_at", "creation time (RFC 3339 when parseable)"),
        ("note.merge_request.updated_at", "last update time (RFC 3339 when parseable)"),
        ("note.merge_request.changes", "what the event changed, one entry per field (empty unless GitLab sent `changes`)"),
        ("note.merge_request.changes[].field", "which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`, `milestone`, `due_date`, `target_branch`, `confidential`, `discussion_locked`"),
        ("note.merge_request.changes[].label", "the field's name for people (`Title`, `Labels`, …)"),
        ("note.merge_request.changes[].from", "previous value as text (title, state, due date `YYYY-MM-DD`, target branch)"),
        ("note.merge_request.changes[].to", "new value as text"),
        ("note.merge_request.changes[].added", "labels added, or names of the people added"),
        ("note.merge_request.changes[].removed", "labels removed, or names of the people removed"),
        ("note.merge_request.changes[].added_users", "people added (assignees, reviewers)"),
        ("note.merge_request.changes[].added_users[].name", "display name (falls back to the username, then `someone`)"),
        ("note.merge_request.changes[].added_users[].username", "login name, without `@`"),
        ("note.merge_request.changes[].added_users[].email", "e-mail, only when GitLab sent a real one"),
        ("note.merge_request.changes[].added_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.merge_request.changes[].removed_users", "people removed (assignees, reviewers)"),
        ("note.merge_request.changes[].removed_users[].name", "display name (falls back to the username, then `someone`)"),
        ("note.merge_request.changes[].removed_users[].username", "login name, without `@`"),
        ("note.merge_request.changes[].removed_users[].email", "e-mail, only when GitLab sent a real one"),
        ("note.merge_request.changes[].removed_users[].avatar_url", "avatar image URL (http(s) only)"),
        ("note.merge_request.changes[].summary", "the change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`"),
        ("note.commit", "the commit, for comments on commits"),
        ("note.commit.id", "full commit id"),
        ("note.commit.short_id", "first 8 characters of the id"),
        ("note.commit.title", "first line of the message"),
        ("note.commit.message", "whole message"),
        ("note.commit.url", "web page of the commit"),
        ("note.commit.author_name", "author's name"),
        ("note.commit.author_email", "author's e-mail"),
        ("note.commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
        ("note.snippet", "the snippet, for comments on snippets"),
        ("note.snippet.id", "snippet id"),
        ("note.snippet.title", "title"),
        ("note.snippet.url", "web page"),
        ("note.snippet.file_name", "file name"),
    ],
);
