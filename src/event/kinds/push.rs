//! Pushes to a branch: `Push Hook` (and `System Hook` bodies with `event_name: push`), keyed
//! by what happened to the branch: new commits (`push`), creation or deletion.

use crate::event::shared::{Commit, ZERO_SHA};
use crate::event::table::{with, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// New commits (the bare `push` key), a new branch, a deleted branch.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("", "pushed to"),
    Action::new("branch_created", "created branch"),
    Action::new("branch_deleted", "deleted branch"),
    // Never in a payload: the router stage keys a push whose `before` is not an ancestor of
    // `after` so (GitLab's compare API, when `[gitlab]` is configured).
    Action::new("force", "force-pushed to"),
];

/// A push to a branch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Push {
    /// Full ref (`refs/heads/main`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Branch name (`main`).
    pub branch: String,
    /// `commits`, `branch_created` or `branch_deleted`.
    pub change: &'static str,
    /// Commit before the push (zeros on creation).
    pub before: String,
    /// Commit after the push (zeros on deletion).
    pub after: String,
    /// Commits GitLab listed (at most 20).
    pub commits: Vec<Commit>,
    /// How many commits the push really had (`total_commits_count`).
    pub total_commits: u64,
    /// Commits pushed but not listed (`total_commits` − listed).
    pub more_commits: u64,
    /// Web page comparing `before` and `after`, or the branch's commits on creation.
    pub compare_url: Option<String>,
    /// Whether the ref is protected (when GitLab says).
    pub protected: Option<bool>,
    /// For a force push (`push.force`): how many commits of `before` are no longer on the
    /// branch; `None` for other pushes.
    pub dropped_commits: Option<u64>,
}

/// Makes `push` a force push that dropped `dropped` commits.
pub(crate) fn mark_forced(push: &mut Push, dropped: u64) {
    push.dropped_commits = Some(dropped);
}

/// A push; a branch push with no new commits has an empty list.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let project = &input.project;
    let git_ref = str_at(v, &["ref"]).unwrap_or_default();
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .unwrap_or(&git_ref)
        .to_string();
    let before = str_at(v, &["before"]).unwrap_or_default();
    let after = str_at(v, &["after"]).unwrap_or_default();
    let change = if after == ZERO_SHA {
        "branch_deleted"
    } else if before == ZERO_SHA {
        "branch_created"
    } else {
        "commits"
    };
    let commits = Commit::list(v);
    let listed = commits.len() as u64;
    let total_commits = u64_at(v, &["total_commits_count"])
        .unwrap_or(listed)
        .max(listed);
    let compare_url = project.url.as_ref().and_then(|base| match change {
        "commits" if !before.is_empty() && !after.is_empty() => {
            Some(format!("{base}/-/compare/{before}...{after}"))
        }
        "branch_created" => Some(format!("{base}/-/commits/{branch}")),
        _ => None,
    });
    let push = Push {
        git_ref,
        branch,
        change,
        before,
        after,
        commits,
        total_commits,
        more_commits: total_commits - listed,
        compare_url,
        protected: bool_at(v, &["ref_protected"]),
        dropped_commits: None,
    };
    let mut k = input.keyed((change != "commits").then_some(change));
    k.action = input.action.clone();
    Some(k.with(Detail::Push(push)))
}

/// Messages about one branch stay in order.
pub(super) fn object_key(push: &Push, p: &str) -> String {
    format!("{p}/ref/{}", push.git_ref)
}

/// The sample, its branch created and deleted, and a push without new commits.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let zero = || Value::from(ZERO_SHA);
    let no_commits = |v: &Value| {
        with(
            &with(v, &["commits"], Value::Array(Vec::new())),
            &["total_commits_count"],
            Value::from(0),
        )
    };
    vec![
        (String::new(), base.clone()),
        ("branch created".into(), with(base, &["before"], zero())),
        (
            "branch deleted".into(),
            no_commits(&with(base, &["after"], zero())),
        ),
        ("no new commits".into(), no_commits(base)),
    ]
}

/// Template variables of pushes.
pub(super) const VARIABLES: KindVariables = (
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
        ("push.dropped_commits", "for `push.force`: commits of `before` no longer on the branch"),
    ],
);
