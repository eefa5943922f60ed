//! What an issue, work item or merge request `update` changed, from the payload's `changes` object.
//!
//! GitLab sends `changes: {field: {previous, current}}` with every issue and merge request event.
//! We keep the fields people care about, in a fixed order, and drop bookkeeping (`updated_at`,
//! `updated_by_id`, `last_edited_at`, time tracking). Each kept field becomes one [`Change`] with a
//! ready-made one-line `summary`, plus the raw parts (`from`/`to`, `added`/`removed`, the people
//! added or removed) for templates that want their own wording or mentions.

use super::value::{arr_at, bool_at, obj_at, str_at};
use super::{time, User};
use serde::Serialize;
use serde_json::Value;

/// One thing an update changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Change {
    /// Which field: `title`, `state`, `draft`, `description`, `labels`, `assignees`, `reviewers`,
    /// `milestone`, `due_date`, `target_branch`, `confidential` or `discussion_locked`.
    pub field: &'static str,
    /// The field's name for people: `Title`, `State`, `Draft`, `Description`, `Labels`, …
    pub label: &'static str,
    /// The previous value as text, for single values (`title`, `state`, `due_date` as
    /// `YYYY-MM-DD`, `target_branch`); empty otherwise or when there was none.
    pub from: Option<String>,
    /// The new value as text, like `from`.
    pub to: Option<String>,
    /// Labels added (titles), or the names of the people added.
    pub added: Vec<String>,
    /// Labels removed (titles), or the names of the people removed.
    pub removed: Vec<String>,
    /// People added (`assignees`, `reviewers`), for `{{mention}}`.
    pub added_users: Vec<User>,
    /// People removed (`assignees`, `reviewers`).
    pub removed_users: Vec<User>,
    /// The change in one line: `Old → New`, `+Platform, −API`, `marked as ready`, `edited`, …
    pub summary: String,
}

/// GitLab's numeric `state_id` values.
fn state_name(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(
            match n.as_u64() {
                Some(1) => "opened",
                Some(2) => "closed",
                Some(3) => "merged",
                Some(4) => "locked",
                _ => return Some(n.to_string()),
            }
            .to_string(),
        ),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn arrow(from: Option<&str>, to: Option<&str>) -> String {
    format!("{} → {}", from.unwrap_or("none"), to.unwrap_or("none"))
}

fn plus_minus(added: &[String], removed: &[String]) -> String {
    let plus = added.iter().map(|a| format!("+{a}"));
    let minus = removed.iter().map(|r| format!("−{r}"));
    plus.chain(minus).collect::<Vec<_>>().join(", ")
}

fn label_titles(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|l| str_at(l, &["title"]).or_else(|| l.as_str().map(str::to_string)))
            .collect(),
        _ => Vec::new(),
    }
}

fn users(v: &Value) -> Vec<User> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter(|u| u.is_object())
            .map(User::from_obj)
            .collect(),
        _ => Vec::new(),
    }
}

/// Who a person is, for telling lists apart: username, else e-mail, else name.
fn identity(u: &User) -> &str {
    u.username
        .as_deref()
        .or(u.email.as_deref())
        .unwrap_or(&u.name)
}

/// The fields we report, in the order we report them.
const FIELDS: [(&str, &str, &str); 12] = [
    ("title", "title", "Title"),
    ("state_id", "state", "State"),
    ("draft", "draft", "Draft"),
    ("description", "description", "Description"),
    ("labels", "labels", "Labels"),
    ("assignees", "assignees", "Assignees"),
    ("reviewers", "reviewers", "Reviewers"),
    ("milestone_id", "milestone", "Milestone"),
    ("due_date", "due_date", "Due date"),
    ("target_branch", "target_branch", "Target branch"),
    ("confidential", "confidential", "Confidential"),
    ("discussion_locked", "discussion_locked", "Discussion"),
];

/// Older payloads spell some fields differently.
fn lookup<'a>(changes: &'a Value, key: &str) -> Option<&'a Value> {
    let alt = match key {
        "state_id" => Some("state"),
        "draft" => Some("work_in_progress"),
        "milestone_id" => Some("milestone"),
        _ => None,
    };
    obj_at(changes, &[key]).or_else(|| alt.and_then(|a| obj_at(changes, &[a])))
}

/// The changes of the payload's `changes` object worth telling people about, in a fixed order.
pub fn detect(payload: &Value) -> Vec<Change> {
    let Some(changes) = obj_at(payload, &["changes"]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, field, label) in FIELDS {
        let Some(c) = lookup(changes, key) else {
            continue;
        };
        let prev = c.get("previous").unwrap_or(&Value::Null);
        let cur = c.get("current").unwrap_or(&Value::Null);
        if prev == cur {
            continue;
        }
        let mut change = Change {
            field,
            label,
            ..Change::default()
        };
        match field {
            "title" | "target_branch" => {
                change.from = text(prev);
                change.to = text(cur);
                change.summary = arrow(change.from.as_deref(), change.to.as_deref());
            }
            "state" => {
                change.from = state_name(prev);
                change.to = state_name(cur);
                change.summary = arrow(change.from.as_deref(), change.to.as_deref());
            }
            "due_date" => {
                change.from = text(prev).map(|d| time::normalize(&d));
                change.to = text(cur).map(|d| time::normalize(&d));
                change.summary = arrow(change.from.as_deref(), change.to.as_deref());
            }
            "description" => change.summary = "edited".into(),
            "milestone" => {
                change.summary = match (text(prev), text(cur)) {
                    (None, _) => "set",
                    (_, None) => "removed",
                    _ => "changed",
                }
                .into();
            }
            "draft" | "confidential" | "discussion_locked" => {
                let on = bool_at(c, &["current"]).unwrap_or(false);
                change.summary = match (field, on) {
                    ("draft", true) => "marked as draft",
                    ("draft", false) => "marked as ready",
                    ("confidential", true) => "made confidential",
                    ("confidential", false) => "made public",
                    (_, true) => "locked",
                    (_, false) => "unlocked",
                }
                .into();
            }
            "labels" => {
                let (before, after) = (label_titles(prev), label_titles(cur));
                change.added = after
                    .iter()
                    .filter(|l| !before.contains(l))
                    .cloned()
                    .collect();
                change.removed = before
                    .iter()
                    .filter(|l| !after.contains(l))
                    .cloned()
                    .collect();
                change.summary = plus_minus(&change.added, &change.removed);
            }
            _ => {
                // assignees, reviewers
                let (before, after) = (users(prev), users(cur));
                let has = |list: &[User], u: &User| list.iter().any(|o| identity(o) == identity(u));
                change.added_users = after.iter().filter(|u| !has(&before, u)).cloned().collect();
                change.removed_users = before.iter().filter(|u| !has(&after, u)).cloned().collect();
                change.added = change.added_users.iter().map(|u| u.name.clone()).collect();
                change.removed = change
                    .removed_users
                    .iter()
                    .map(|u| u.name.clone())
                    .collect();
                change.summary = plus_minus(&change.added, &change.removed);
            }
        }
        if !change.summary.is_empty() {
            out.push(change);
        }
    }
    out
}

/// The list at `path` of a payload as people, for callers outside this module.
pub(super) fn people_at(v: &Value, path: &[&str]) -> Vec<User> {
    arr_at(v, path)
        .iter()
        .filter(|u| u.is_object())
        .map(User::from_obj)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(c: &[Change]) -> Vec<(&str, &str)> {
        c.iter().map(|c| (c.field, c.summary.as_str())).collect()
    }

    #[test]
    fn bookkeeping_is_dropped_and_labels_are_diffed() {
        let p = json!({"changes": {
            "updated_at": {"previous": "a", "current": "b"},
            "updated_by_id": {"previous": null, "current": 1},
            "labels": {"previous": [{"title": "API"}, {"title": "bug"}], "current": [{"title": "bug"}, {"title": "Platform"}]}
        }});
        let c = detect(&p);
        assert_eq!(fields(&c), vec![("labels", "+Platform, −API")]);
        assert_eq!(c[0].added, vec!["Platform"]);
        assert_eq!(c[0].removed, vec!["API"]);
    }

    #[test]
    fn every_reported_field() {
        let p = json!({"changes": {
            "title": {"previous": "Draft: Old", "current": "New"},
            "state_id": {"previous": 1, "current": 2},
            "draft": {"previous": true, "current": false},
            "description": {"previous": "a", "current": "b"},
            "assignees": {"previous": [{"name": "Ann", "username": "ann"}], "current": [{"name": "Bob", "username": "bob"}]},
            "reviewers": {"previous": [], "current": [{"name": "Cy", "username": "cy"}]},
            "milestone_id": {"previous": null, "current": 4},
            "due_date": {"previous": "2026-01-02", "current": null},
            "target_branch": {"previous": "main", "current": "next"},
            "confidential": {"previous": false, "current": true},
            "discussion_locked": {"previous": true, "current": false},
            "time_estimate": {"previous": 0, "current": 60}
        }});
        let c = detect(&p);
        assert_eq!(
            fields(&c),
            vec![
                ("title", "Draft: Old → New"),
                ("state", "opened → closed"),
                ("draft", "marked as ready"),
                ("description", "edited"),
                ("assignees", "+Bob, −Ann"),
                ("reviewers", "+Cy"),
                ("milestone", "set"),
                ("due_date", "2026-01-02 → none"),
                ("target_branch", "main → next"),
                ("confidential", "made confidential"),
                ("discussion_locked", "unlocked"),
            ]
        );
        assert_eq!(c[4].added_users[0].username.as_deref(), Some("bob"));
        assert_eq!(c[4].removed_users[0].name, "Ann");
        assert_eq!(c[1].from.as_deref(), Some("opened"));
    }

    #[test]
    fn odd_or_missing_changes_degrade() {
        assert!(detect(&json!({})).is_empty());
        assert!(detect(&json!({"changes": null})).is_empty());
        assert!(detect(&json!({"changes": {"labels": null, "title": 7}})).is_empty());
        // Same value on both sides: nothing changed.
        assert!(
            detect(&json!({"changes": {"title": {"previous": "a", "current": "a"}}})).is_empty()
        );
        // Old payloads: `work_in_progress`, a string state.
        let c = detect(&json!({"changes": {
            "work_in_progress": {"previous": false, "current": true},
            "state": {"previous": "opened", "current": "merged"},
            "assignees": {"previous": null, "current": [{"name": "Ann"}]}
        }}));
        assert_eq!(
            fields(&c),
            vec![
                ("state", "opened → merged"),
                ("draft", "marked as draft"),
                ("assignees", "+Ann")
            ]
        );
    }
}
