//! Emoji reactions: `Emoji Hook`, keyed `award` or `revoke`, on issues, merge requests,
//! snippets, commits and comments on them.

use crate::event::shared::Commit;
use crate::event::table::{each_action, key_word, Action, Input, Parsed, Variant};
use crate::event::value::{obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// A reaction added or removed.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("award", "reacted to"),
    Action::new("revoke", "removed a reaction from"),
];

/// Common emoji names and their characters; others are shown as `:name:`.
const EMOJI: [(&str, &str); 26] = [
    ("thumbsup", "👍"),
    ("+1", "👍"),
    ("thumbsdown", "👎"),
    ("-1", "👎"),
    ("heart", "❤️"),
    ("tada", "🎉"),
    ("rocket", "🚀"),
    ("eyes", "👀"),
    ("smile", "😄"),
    ("smiley", "😃"),
    ("laughing", "😆"),
    ("joy", "😂"),
    ("slight_smile", "🙂"),
    ("confused", "😕"),
    ("thinking", "🤔"),
    ("white_check_mark", "✅"),
    ("heavy_check_mark", "✔️"),
    ("x", "❌"),
    ("fire", "🔥"),
    ("clap", "👏"),
    ("pray", "🙏"),
    ("100", "💯"),
    ("star", "⭐"),
    ("ok_hand", "👌"),
    ("warning", "⚠️"),
    ("bug", "🐛"),
];

/// An emoji reaction added or removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Emoji {
    /// GitLab's name of the emoji (`thumbsup`).
    pub name: String,
    /// The emoji itself when it is a common one (`👍`), else `:name:`.
    pub emoji: String,
    /// What it is on: `issue`, `merge_request`, `note`, `snippet`, `commit`, … (snake case).
    pub target: String,
    /// Short human name of the target (`issue #42`, `a comment on issue #42`, `merge request !1`).
    pub target_label: String,
    /// Title of the target (of the issue or merge request a comment is on).
    pub target_title: String,
    /// Web page of the target (`awarded_on_url`).
    pub target_url: Option<String>,
    /// The comment's text, for reactions on comments.
    pub note: Option<String>,
}

/// Snake case of a GitLab class name (`MergeRequest` → `merge_request`).
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    key_word(&out)
}

/// (label, title, url) of the issue, merge request, snippet or commit of a payload.
fn noteable(v: &Value, kind: &str) -> (String, String, Option<String>) {
    let title = |o: &Value| str_at(o, &["title"]).unwrap_or_default();
    match kind {
        "issue" | "work_item" => {
            let o = obj_at(v, &["issue"]).or_else(|| obj_at(v, &["work_item"]));
            let label = o
                .and_then(|o| u64_at(o, &["iid"]))
                .map_or("an issue".into(), |n| format!("issue #{n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "merge_request" => {
            let o = obj_at(v, &["merge_request"]);
            let label = o
                .and_then(|o| u64_at(o, &["iid"]))
                .map_or("a merge request".into(), |n| format!("merge request !{n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "snippet" => {
            let o = obj_at(v, &["snippet"]);
            let label = o
                .and_then(|o| u64_at(o, &["id"]))
                .map_or("a snippet".into(), |n| format!("snippet ${n}"));
            (
                label,
                o.map(title).unwrap_or_default(),
                o.and_then(|o| url_at(o, &["url"])),
            )
        }
        "commit" => {
            let c = obj_at(v, &["commit"]).map(Commit::from_obj);
            let label = c
                .as_ref()
                .map_or("a commit".into(), |c| format!("commit {}", c.short_id));
            (
                label,
                c.as_ref().map(|c| c.title.clone()).unwrap_or_default(),
                c.and_then(|c| c.url),
            )
        }
        other => (other.replace('_', " "), String::new(), None),
    }
}

/// A reaction, keyed by `object_attributes.action` (or the older `event_type`).
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (v, a) = (input.v, input.attrs());
    let name = str_at(a, &["name"]).unwrap_or_else(|| "emoji".to_string());
    let emoji = EMOJI
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| format!(":{name}:"), |(_, e)| (*e).to_string());
    let target = snake(&str_at(a, &["awardable_type"]).unwrap_or_default());
    let (target_label, target_title, url, note) = if target == "note" {
        let parent = snake(&str_at(v, &["note", "noteable_type"]).unwrap_or_default());
        let (label, title, url) = noteable(v, &parent);
        (
            format!("a comment on {label}"),
            title,
            url_at(v, &["note", "url"]).or(url),
            str_at(v, &["note", "note"]),
        )
    } else {
        let (label, title, url) = noteable(v, &target);
        (label, title, url, None)
    };
    let action = input
        .action
        .as_deref()
        .or_else(|| v.get("event_type").and_then(Value::as_str));
    let keyed = input.keyed(action);
    let emoji = Emoji {
        name,
        emoji,
        target_title: if target_title.is_empty() {
            target_label.clone()
        } else {
            target_title
        },
        target_url: url_at(a, &["awarded_on_url"]).or(url),
        target,
        target_label,
        note,
    };
    Some(keyed.with(Detail::Emoji(Box::new(emoji))))
}

/// Reactions to one target stay in order.
pub(super) fn object_key(e: &Emoji, p: &str) -> String {
    format!("{p}/emoji/{}", e.target_label)
}

/// The sample with each action.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["object_attributes", "action"], ACTIONS, "action")
}

/// Template variables of emoji reactions.
pub(super) const VARIABLES: KindVariables = (
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
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_snake_case() {
        assert_eq!(snake("MergeRequest"), "merge_request");
        assert_eq!(snake("Note"), "note");
        assert_eq!(snake(""), "unknown");
    }
}
