//! Tags pushed, moved or deleted: `Tag Push Hook` (and `System Hook` bodies with
//! `event_name: tag_push`), keyed by what happened to the tag.

use crate::event::shared::{segment, short, under, Commit, ZERO_SHA};
use crate::event::table::{with, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// A new tag, a deleted one, an existing tag moved to another commit.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "pushed tag"),
    Action::new("delete", "deleted tag"),
    Action::new("update", "moved tag"),
];

/// A tag pushed or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagPush {
    /// Full ref (`refs/tags/v1.0.0`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Tag name (`v1.0.0`).
    pub tag: String,
    /// `create`, `delete`, or `update` (an existing tag moved to another commit).
    pub change: &'static str,
    /// Commit the tag pointed to before (zeros on creation).
    pub before: String,
    /// Commit the tag points to now (zeros on deletion).
    pub after: String,
    /// First characters of the tagged commit (of `before` on deletion).
    pub short_id: String,
    /// Message of an annotated tag.
    pub message: Option<String>,
    /// Web page of the tag; of the project's tag list after a deletion.
    pub url: Option<String>,
    /// Web page of the tagged commit (none on deletion).
    pub commit_url: Option<String>,
    /// Commits GitLab listed (usually none).
    pub commits: Vec<Commit>,
    /// `total_commits_count`.
    pub total_commits: u64,
    /// Whether the tag is protected (when GitLab says).
    pub protected: Option<bool>,
}

/// A tag push, keyed `create`, `delete` or `update` from `before` and `after`.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let project = &input.project;
    let git_ref = str_at(v, &["ref"]).unwrap_or_default();
    let tag = git_ref
        .strip_prefix("refs/tags/")
        .unwrap_or(&git_ref)
        .to_string();
    let before = str_at(v, &["before"]).unwrap_or_default();
    let after = str_at(v, &["after"]).unwrap_or_default();
    let change = if after == ZERO_SHA {
        "delete"
    } else if before == ZERO_SHA || before.is_empty() {
        "create"
    } else {
        "update"
    };
    let commits = Commit::list(v);
    let listed = commits.len() as u64;
    let sha = if change == "delete" { &before } else { &after };
    let tag_push = TagPush {
        url: if change == "delete" {
            under(project, "tags")
        } else {
            under(project, &format!("tags/{}", segment(&tag)))
        },
        commit_url: (change != "delete" && !after.is_empty())
            .then(|| under(project, &format!("commit/{after}")))
            .flatten(),
        short_id: short(sha),
        message: str_at(v, &["message"]),
        total_commits: u64_at(v, &["total_commits_count"])
            .unwrap_or(listed)
            .max(listed),
        commits,
        protected: bool_at(v, &["ref_protected"]),
        git_ref,
        tag,
        change,
        before,
        after,
    };
    Some(
        input
            .keyed(Some(change))
            .with(Detail::TagPush(Box::new(tag_push))),
    )
}

/// Messages about one tag stay in order.
pub(super) fn object_key(t: &TagPush, p: &str) -> String {
    format!("{p}/ref/{}", t.git_ref)
}

/// The sample (a new tag), and the tag deleted.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let deleted = with(
        &with(base, &["before"], base["after"].clone()),
        &["after"],
        Value::from(ZERO_SHA),
    );
    vec![
        (String::new(), base.clone()),
        ("tag deleted".into(), deleted),
    ]
}

/// Template variables of tag pushes.
pub(super) const VARIABLES: KindVariables = (
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
);
