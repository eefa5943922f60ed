//! The template variables of every event kind, in one list: [`variables`].
//!
//! This is the reference `docs/templates.md` is generated from, and the test that keeps both in
//! step with the types compares it with [`serialized_paths`] of real events. Paths are written as
//! templates write them, from the context's root:
//! - nested fields with dots (`issue.title`, `pipeline.commit.short_id`);
//! - fields of list items with `[]` (`issue.assignees[].username`; inside `{{#each issue.assignees}}`
//!   that is just `username`);
//! - objects and lists appear as entries of their own too (`note.commit`, `issue.assignees`).
//!
//! The `common` entry holds what every event has; each other entry is named for the event's kind
//! (`Kind::as_str`), except the group-level `project` kind, whose entry is `project_event` like
//! its fields (`project_event.owners`; the project itself is the common `project`).

use super::Event;
use serde_json::Value;
use std::collections::BTreeSet;

/// One kind's variables: (path, meaning).
pub type KindVariables = (&'static str, &'static [(&'static str, &'static str)]);

/// Every template variable, per event kind: `common` first, then each kind with its own fields.
pub fn variables() -> &'static [KindVariables] {
    &VARIABLES
}

/// The variable paths an event serialises to, written like [`variables`] writes them.
pub fn serialized_paths(event: &Event) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(event) {
        collect(&v, "", &mut out);
    }
    out
}

fn collect(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            if !prefix.is_empty() {
                out.insert(prefix.to_string());
            }
            for (k, x) in m {
                collect(x, &join(k), out);
            }
        }
        Value::Array(items) => {
            out.insert(prefix.to_string());
            let item = format!("{prefix}[]");
            for x in items.iter().filter(|x| x.is_object()) {
                if let Value::Object(m) = x {
                    for (k, y) in m {
                        collect(y, &format!("{item}.{k}"), out);
                    }
                }
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

const VARIABLES: [KindVariables; 21] = [
    (
        "common",
        &[
            ("key", "the event key: `merge_request.merge`, `pipeline.failed`, …"),
            ("kind", "the kind: `merge_request`, `pipeline`, …"),
            ("action", "the key's last part: GitLab's action (`open`, `merge`), a status (`failed`), `create`/`delete`, `on`/`off`; empty for the *Test* button"),
            ("verb", "past-tense words for people: `opened`, `merged`, `pushed to`, `failed`, …"),
            ("confidential", "true for confidential issues, work items and comments"),
            ("known", "true when the kind and action are ones this version knows"),
            ("actor", "who did it (`someone` when the payload names no one)"),
            ("actor.name", "display name (falls back to the username, then `someone`)"),
            ("actor.username", "login name, without `@`"),
            ("actor.email", "e-mail, only when GitLab sent a real one"),
            ("actor.avatar_url", "avatar image URL (http(s) only)"),
            ("project", "where it happened (empty fields for group-level events)"),
            ("project.id", "numeric id"),
            ("project.name", "human name"),
            ("project.path", "`group/subgroup/project`"),
            ("project.url", "web page of the project"),
            ("project.namespace", "namespace display name"),
            ("project.default_branch", "default branch name"),
            ("raw", "the payload exactly as GitLab sent it, for anything not listed here"),
        ],
    ),
    (
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
    ),
    (
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
    ),
    (
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
    ),
    (
        "push",
        &[
            ("push", "the push"),
            ("push.ref", "full ref (`refs/heads/main`)"),
            ("push.branch", "branch name (`main`)"),
            ("push.change", "`commits`, `branch_created` or `branch_deleted`"),
            ("push.before", "commit before the push (zeros on creation)"),
            ("push.after", "commit after the push (zeros on deletion)"),
            ("push.commits", "commits GitLab listed (at most 20)"),
            ("push.commits[].id", "full commit id"),
            ("push.commits[].short_id", "first 8 characters of the id"),
            ("push.commits[].title", "first line of the message"),
            ("push.commits[].message", "whole message"),
            ("push.commits[].url", "web page of the commit"),
            ("push.commits[].author_name", "author's name"),
            ("push.commits[].author_email", "author's e-mail"),
            ("push.commits[].timestamp", "when it was authored (RFC 3339 when parseable)"),
            ("push.total_commits", "how many commits the push really had (`total_commits_count`)"),
            ("push.more_commits", "commits pushed but not listed"),
            ("push.compare_url", "web page comparing `before` and `after`, or the branch's commits on creation"),
            ("push.protected", "whether the branch is protected (when GitLab says)"),
        ],
    ),
    (
        "tag_push",
        &[
            ("tag_push", "the tag push"),
            ("tag_push.ref", "full ref (`refs/tags/v1.0.0`)"),
            ("tag_push.tag", "tag name (`v1.0.0`)"),
            ("tag_push.change", "`create`, `delete`, or `update` (an existing tag moved)"),
            ("tag_push.before", "commit the tag pointed to before (zeros on creation)"),
            ("tag_push.after", "commit it points to now (zeros on deletion)"),
            ("tag_push.short_id", "first characters of the tagged commit"),
            ("tag_push.message", "message of an annotated tag"),
            ("tag_push.url", "web page of the tag (of the project's tags after a deletion)"),
            ("tag_push.commit_url", "web page of the tagged commit (none on deletion)"),
            ("tag_push.commits", "commits GitLab listed (usually none)"),
            ("tag_push.commits[].id", "full commit id"),
            ("tag_push.commits[].short_id", "first 8 characters of the id"),
            ("tag_push.commits[].title", "first line of the message"),
            ("tag_push.commits[].message", "whole message"),
            ("tag_push.commits[].url", "web page of the commit"),
            ("tag_push.commits[].author_name", "author's name"),
            ("tag_push.commits[].author_email", "author's e-mail"),
            ("tag_push.commits[].timestamp", "when it was authored (RFC 3339 when parseable)"),
            ("tag_push.total_commits", "`total_commits_count`"),
            ("tag_push.protected", "whether the tag is protected (when GitLab says)"),
        ],
    ),
    (
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
    ),
    (
        "pipeline",
        &[
            ("pipeline", "the pipeline"),
            ("pipeline.id", "global id (the number in its URL)"),
            ("pipeline.iid", "project-scoped number"),
            ("pipeline.name", "its name, when it has one"),
            ("pipeline.ref", "branch or tag it ran for"),
            ("pipeline.tag", "whether `ref` is a tag"),
            ("pipeline.sha", "commit id"),
            ("pipeline.short_sha", "first 8 characters of the commit id"),
            ("pipeline.source", "what started it: `push`, `web`, `schedule`, `merge_request_event`, `parent_pipeline`, `pipeline`, `trigger`, `api`, …"),
            ("pipeline.status", "`created`, `waiting_for_resource`, `preparing`, `pending`, `running`, `success`, `failed`, `canceling`, `canceled`, `skipped`, `manual`, `scheduled`"),
            ("pipeline.detailed_status", "GitLab's detailed status (`passed`, …), when sent"),
            ("pipeline.stages", "stage names in order"),
            ("pipeline.created_at", "creation time (RFC 3339 when parseable)"),
            ("pipeline.finished_at", "finish time (RFC 3339 when parseable)"),
            ("pipeline.duration", "run time in seconds"),
            ("pipeline.duration_text", "run time for people (`1m 3s`)"),
            ("pipeline.queued_duration", "seconds it waited for a runner"),
            ("pipeline.url", "web page of the pipeline"),
            ("pipeline.commit", "the commit it ran on"),
            ("pipeline.commit.id", "full commit id"),
            ("pipeline.commit.short_id", "first 8 characters of the id"),
            ("pipeline.commit.title", "first line of the message"),
            ("pipeline.commit.message", "whole message"),
            ("pipeline.commit.url", "web page of the commit"),
            ("pipeline.commit.author_name", "author's name"),
            ("pipeline.commit.author_email", "author's e-mail"),
            ("pipeline.commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
            ("pipeline.merge_request", "the merge request, for merge request pipelines"),
            ("pipeline.merge_request.iid", "project-scoped number (`!1`)"),
            ("pipeline.merge_request.title", "title"),
            ("pipeline.merge_request.url", "web page"),
            ("pipeline.merge_request.source_branch", "source branch"),
            ("pipeline.merge_request.target_branch", "target branch"),
            ("pipeline.merge_request.state", "`opened`, `merged`, …"),
            ("pipeline.child", "true for a child pipeline (`source` is `parent_pipeline`, or its upstream is the same project)"),
            ("pipeline.upstream", "the pipeline that triggered this one (child and multi-project pipelines)"),
            ("pipeline.upstream.id", "its pipeline id"),
            ("pipeline.upstream.job_id", "the job that triggered this pipeline"),
            ("pipeline.upstream.project_path", "`group/project` it ran in"),
            ("pipeline.upstream.project_url", "web page of that project"),
            ("pipeline.upstream.url", "web page of that pipeline"),
            ("pipeline.failed_jobs", "failed jobs, oldest first, at most 10"),
            ("pipeline.failed_jobs[].id", "job id"),
            ("pipeline.failed_jobs[].name", "job name"),
            ("pipeline.failed_jobs[].stage", "stage name"),
            ("pipeline.failed_jobs[].status", "`failed`, …"),
            ("pipeline.failed_jobs[].failure_reason", "why it failed (`script_failure`, …)"),
            ("pipeline.failed_jobs[].allow_failure", "whether the pipeline may pass although it failed"),
            ("pipeline.failed_jobs[].duration_text", "run time for people (`17s`)"),
            ("pipeline.failed_jobs[].url", "web page of the job"),
            ("pipeline.failed_jobs_total", "how many jobs failed in all"),
            ("pipeline.more_failed_jobs", "failed jobs not listed"),
            ("pipeline.jobs_total", "how many jobs GitLab listed"),
        ],
    ),
    (
        "job",
        &[
            ("job", "the job"),
            ("job.id", "job id"),
            ("job.name", "job name"),
            ("job.stage", "stage name"),
            ("job.status", "`created`, `pending`, `running`, `success`, `failed`, `canceled`, `skipped`, `manual`, …"),
            ("job.ref", "branch or tag it ran for"),
            ("job.tag", "whether `ref` is a tag"),
            ("job.sha", "commit id"),
            ("job.short_sha", "first 8 characters of the commit id"),
            ("job.commit_title", "first line of the commit message"),
            ("job.commit_url", "web page of the commit"),
            ("job.created_at", "creation time (RFC 3339 when parseable)"),
            ("job.started_at", "start time"),
            ("job.finished_at", "finish time"),
            ("job.duration", "run time in seconds"),
            ("job.duration_text", "run time for people (`1m 3s`)"),
            ("job.queued_duration", "seconds it waited for a runner"),
            ("job.allow_failure", "whether the pipeline may pass although this job fails"),
            ("job.failure_reason", "why it failed (`script_failure`, …), for failed jobs only"),
            ("job.retries", "how many times it was retried"),
            ("job.url", "web page of the job"),
            ("job.pipeline_id", "id of its pipeline"),
            ("job.pipeline_url", "web page of its pipeline"),
            ("job.runner", "description of the runner that took it"),
            ("job.environment", "environment it deploys to, if any"),
        ],
    ),
    (
        "release",
        &[
            ("release", "the release"),
            ("release.id", "release id"),
            ("release.name", "release name (the tag when unnamed)"),
            ("release.tag", "tag it is built on"),
            ("release.description", "release notes"),
            ("release.url", "web page of the release"),
            ("release.created_at", "creation time (RFC 3339 when parseable)"),
            ("release.released_at", "release time (may be in the future)"),
            ("release.commit", "the tagged commit"),
            ("release.commit.id", "full commit id"),
            ("release.commit.short_id", "first 8 characters of the id"),
            ("release.commit.title", "first line of the message"),
            ("release.commit.message", "whole message"),
            ("release.commit.url", "web page of the commit"),
            ("release.commit.author_name", "author's name"),
            ("release.commit.author_email", "author's e-mail"),
            ("release.commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
            ("release.links", "links attached to the release"),
            ("release.links[].name", "link text"),
            ("release.links[].url", "target"),
            ("release.links[].link_type", "`other`, `runbook`, `image`, `package`"),
            ("release.assets_count", "how many assets it has (links and source archives)"),
        ],
    ),
    (
        "wiki_page",
        &[
            ("wiki_page", "the wiki page"),
            ("wiki_page.title", "page title"),
            ("wiki_page.slug", "page slug (its path in the wiki)"),
            ("wiki_page.url", "web page"),
            ("wiki_page.diff_url", "web page of this version's diff"),
            ("wiki_page.message", "the edit's commit message"),
            ("wiki_page.content", "page text (markup as written)"),
            ("wiki_page.format", "`markdown`, `rdoc`, `asciidoc`, `org`"),
            ("wiki_page.wiki_url", "web page of the wiki's home"),
        ],
    ),
    (
        "deployment",
        &[
            ("deployment", "the deployment"),
            ("deployment.id", "deployment id"),
            ("deployment.status", "`created`, `running`, `success`, `failed`, `canceled`, `skipped`, `blocked`"),
            ("deployment.status_changed_at", "when the status changed"),
            ("deployment.environment", "environment name (`staging`)"),
            ("deployment.environment_tier", "`production`, `staging`, …"),
            ("deployment.environment_url", "the environment's own address"),
            ("deployment.ref", "branch or tag deployed, when GitLab says"),
            ("deployment.short_sha", "first characters of the deployed commit"),
            ("deployment.commit_url", "web page of the deployed commit"),
            ("deployment.commit_title", "first line of its message"),
            ("deployment.job_id", "id of the job that deploys"),
            ("deployment.job_url", "web page of that job"),
            ("deployment.url", "the best page to open: the job, else the commit, else the environment"),
        ],
    ),
    (
        "milestone",
        &[
            ("milestone", "the milestone"),
            ("milestone.id", "global id"),
            ("milestone.iid", "project- or group-scoped number"),
            ("milestone.title", "title (`v1.0`)"),
            ("milestone.description", "description"),
            ("milestone.state", "`active` or `closed`"),
            ("milestone.start_date", "calendar date `YYYY-MM-DD`"),
            ("milestone.due_date", "calendar date `YYYY-MM-DD`"),
            ("milestone.url", "web page (project milestones only)"),
            ("milestone.group", "the group, for group milestones"),
            ("milestone.group.id", "group id"),
            ("milestone.group.name", "group name"),
            ("milestone.group.full_path", "full path (`parent/child`)"),
            ("milestone.created_at", "creation time"),
            ("milestone.updated_at", "last update time"),
        ],
    ),
    (
        "emoji",
        &[
            ("emoji", "the reaction"),
            ("emoji.name", "GitLab's name of the emoji (`thumbsup`)"),
            ("emoji.emoji", "the emoji itself when common (`👍`), else `:name:`"),
            ("emoji.target", "what it is on: `issue`, `merge_request`, `note`, `snippet`, `commit`, …"),
            ("emoji.target_label", "short name of the target: `issue #42`, `a comment on issue #42`, `merge request !1`"),
            ("emoji.target_title", "title of the target (of the issue or merge request a comment is on)"),
            ("emoji.target_url", "web page of the target"),
            ("emoji.note", "the comment's text, for reactions on comments"),
        ],
    ),
    (
        "feature_flag",
        &[
            ("feature_flag", "the feature flag"),
            ("feature_flag.id", "flag id"),
            ("feature_flag.name", "flag name"),
            ("feature_flag.description", "description"),
            ("feature_flag.active", "whether it is on now"),
            ("feature_flag.url", "web page of the project's feature flags"),
        ],
    ),
    (
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
    ),
    (
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
    ),
    (
        "project_event",
        &[
            ("project_event", "the project event (the project itself is `project`)"),
            ("project_event.visibility", "`private`, `internal` or `public`"),
            ("project_event.owners", "the project's owners (list of people; `{{join …}}`, `{{mention …}}`)"),
            ("project_event.owners[].name", "display name (falls back to the username, then `someone`)"),
            ("project_event.owners[].username", "login name, without `@`"),
            ("project_event.owners[].email", "e-mail, only when GitLab sent a real one"),
            ("project_event.owners[].avatar_url", "avatar image URL (http(s) only)"),
            ("project_event.old_path", "the path before a rename or transfer"),
        ],
    ),
    (
        "subgroup",
        &[
            ("subgroup", "the subgroup"),
            ("subgroup.id", "group id"),
            ("subgroup.name", "name"),
            ("subgroup.full_path", "full path (`parent/child`)"),
            ("subgroup.parent", "the parent group"),
            ("subgroup.parent.id", "group id"),
            ("subgroup.parent.name", "group name"),
            ("subgroup.parent.full_path", "full path (`parent/child`)"),
        ],
    ),
    (
        "vulnerability",
        &[
            ("vulnerability", "the vulnerability"),
            ("vulnerability.title", "title"),
            ("vulnerability.url", "web page"),
            ("vulnerability.state", "`detected`, `confirmed`, `resolved`, `dismissed`"),
            ("vulnerability.severity", "`critical`, `high`, `medium`, `low`, `info`, `unknown`"),
            ("vulnerability.confidence", "`confirmed`, `unknown`, …"),
            ("vulnerability.report_type", "scanner kind (`dependency_scanning`, `sast`, …)"),
            ("vulnerability.file", "file it was found in"),
            ("vulnerability.identifiers", "identifier names (`CVE-2024-41123`, …)"),
            ("vulnerability.created_at", "creation time"),
        ],
    ),
    (
        "other",
        &[
            ("other", "an empty object: kinds this version does not model; use `raw`"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;
    use serde_json::json;
    use std::collections::HashSet;

    fn documented() -> HashSet<&'static str> {
        variables()
            .iter()
            .flat_map(|(_, vars)| vars.iter().map(|(p, _)| *p))
            .collect()
    }

    #[test]
    fn no_path_is_listed_twice_and_every_meaning_is_written() {
        let mut seen = HashSet::new();
        for (kind, vars) in variables() {
            assert!(!vars.is_empty(), "{kind}");
            for (p, meaning) in *vars {
                assert!(seen.insert(*p), "{p} listed twice");
                assert!(!meaning.trim().is_empty(), "{p} has no meaning");
            }
        }
    }

    #[test]
    fn serialized_fields_of_synthetic_events_are_documented() {
        let docs = documented();
        let events = [
            (
                "Issue Hook",
                json!({"object_kind":"work_item","object_attributes":{"action":"update","type":"Task"},
                       "changes":{"assignees":{"previous":[],"current":[{"name":"A","username":"a"}]}}}),
            ),
            (
                "Note Hook",
                json!({"object_kind":"note","object_attributes":{"noteable_type":"Snippet"},"snippet":{"id":1}}),
            ),
            ("Whatever Hook", json!({"object_kind":"frobnicate"})),
        ];
        for (header, body) in events {
            let Ok(e) = parse(Some(header), body) else {
                panic!("{header} does not parse")
            };
            for p in serialized_paths(&e) {
                assert!(docs.contains(p.as_str()), "{}: {p} undocumented", e.key);
            }
        }
    }
}
