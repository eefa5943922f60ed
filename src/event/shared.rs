//! What several kinds share: the people, projects, commits and groups payloads name, and the
//! small readers and link builders every kind's parser uses.
//!
//! Links GitLab does not send are built from the project's web page (`/-/jobs/ID`,
//! `/-/tags/NAME`, …); when the project is unknown they stay empty rather than being guessed.

use super::time;
use super::value::{arr_at, obj_at, str_at, u64_at, url_at};
use serde::Serialize;
use serde_json::Value;

/// A Git object id made only of zeros: `before` of a branch creation, `after` of a deletion.
pub(super) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";
/// How many characters of a commit id a short id keeps.
pub(super) const SHORT_SHA_LEN: usize = 8;

/// A person as GitLab names them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct User {
    /// Display name; falls back to the username, then "someone".
    pub name: String,
    /// Login name, without `@`.
    pub username: Option<String>,
    /// E-mail, when GitLab sent a real one (not `[REDACTED]`).
    pub email: Option<String>,
    /// Avatar URL, when it is a usable http(s) URL.
    pub avatar_url: Option<String>,
}

impl User {
    /// From a `user`-like object (`name`, `username`, `email`, `avatar_url`).
    pub(super) fn from_obj(v: &Value) -> User {
        User::from_parts(
            str_at(v, &["name"]),
            str_at(v, &["username"]),
            str_at(v, &["email"]),
            url_at(v, &["avatar_url"]),
        )
    }

    /// From loose parts; a fake e-mail is dropped and a missing name falls back.
    pub(super) fn from_parts(
        name: Option<String>,
        username: Option<String>,
        email: Option<String>,
        avatar_url: Option<String>,
    ) -> User {
        let email = email.filter(|e| e.contains('@') && !e.contains("REDACTED"));
        User {
            name: name
                .or_else(|| username.clone())
                .unwrap_or_else(|| "someone".to_string()),
            username,
            email,
            avatar_url,
        }
    }

    /// The person a payload says acted: its `user` object, or the flat `user_name`,
    /// `user_username`, `user_email`, `user_avatar` fields of pushes and group events.
    pub(super) fn actor(v: &Value) -> User {
        if let Some(u) = obj_at(v, &["user"]) {
            return User::from_obj(u);
        }
        User::from_parts(
            str_at(v, &["user_name"]),
            str_at(v, &["user_username"]),
            str_at(v, &["user_email"]),
            url_at(v, &["user_avatar"]),
        )
    }
}

/// The project an event belongs to (empty fields for group-level events).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Project {
    /// Numeric id.
    pub id: Option<u64>,
    /// Human name.
    pub name: String,
    /// `group/subgroup/project`.
    pub path: String,
    /// Web page of the project.
    pub url: Option<String>,
    /// Namespace display name.
    pub namespace: Option<String>,
    /// Default branch name.
    pub default_branch: Option<String>,
}

impl Project {
    /// From the payload's `project` (or `repository`) object, with old payloads' fallbacks.
    pub(super) fn from_payload(v: &Value) -> Project {
        let p = obj_at(v, &["project"]);
        let repo = obj_at(v, &["repository"]);
        let get = |key: &str| p.and_then(|p| str_at(p, &[key]));
        let name = get("name")
            .or_else(|| repo.and_then(|r| str_at(r, &["name"])))
            .unwrap_or_default();
        // Old job payloads have no `project` object, only `project_name: "group/project"`.
        let path = get("path_with_namespace")
            .or_else(|| {
                p.is_none()
                    .then(|| str_at(v, &["project_name"]))
                    .flatten()
                    .filter(|n| n.contains('/'))
            })
            .unwrap_or_else(|| name.clone());
        Project {
            id: p
                .and_then(|p| u64_at(p, &["id"]))
                .or_else(|| u64_at(v, &["project_id"])),
            name,
            path,
            url: p
                .and_then(|p| url_at(p, &["web_url"]))
                .or_else(|| repo.and_then(|r| url_at(r, &["homepage"]))),
            namespace: get("namespace"),
            default_branch: get("default_branch"),
        }
    }

    /// Fills an unknown name and path from flat fields (group and system hooks name the project
    /// only so): `name_key` and `path_key` of `v`.
    pub(super) fn fill_from(&mut self, v: &Value, name_key: &str, path_key: &str) {
        if self.path.is_empty() {
            self.name = str_at(v, &[name_key]).unwrap_or_default();
            self.path = str_at(v, &[path_key]).unwrap_or_else(|| self.name.clone());
        }
    }

    /// The ordering-key prefix of this project: its id, else its path.
    pub(super) fn key(&self) -> String {
        self.id.map_or(self.path.clone(), |i| i.to_string())
    }
}

/// A commit as shown in pushes, notes and merge requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Commit {
    /// Full commit id.
    pub id: String,
    /// First characters of the id.
    pub short_id: String,
    /// First line of the message.
    pub title: String,
    /// Whole message.
    pub message: String,
    /// Web page of the commit.
    pub url: Option<String>,
    /// Author's name.
    pub author_name: Option<String>,
    /// Author's e-mail.
    pub author_email: Option<String>,
    /// When it was authored (RFC 3339 when parseable).
    pub timestamp: Option<String>,
}

impl Commit {
    /// From a commit object (`id`, `message`, `title`, `url`, `author`, `timestamp`).
    pub(super) fn from_obj(v: &Value) -> Commit {
        let id = str_at(v, &["id"]).unwrap_or_default();
        let message = str_at(v, &["message"]).unwrap_or_default();
        let title = str_at(v, &["title"])
            .unwrap_or_else(|| message.lines().next().unwrap_or_default().to_string());
        Commit {
            short_id: short(&id),
            id,
            title,
            message: message.trim_end().to_string(),
            url: url_at(v, &["url"]),
            author_name: str_at(v, &["author", "name"]),
            author_email: str_at(v, &["author", "email"]),
            timestamp: timestamp(v, &["timestamp"]),
        }
    }

    /// Every commit of the list at `commits`.
    pub(super) fn list(v: &Value) -> Vec<Commit> {
        arr_at(v, &["commits"])
            .iter()
            .map(Commit::from_obj)
            .collect()
    }
}

/// A group, for group-level events (access tokens, milestones, members, system hooks).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    /// Numeric id.
    pub id: Option<u64>,
    /// Display name.
    pub name: String,
    /// Full path (`parent/child`).
    pub full_path: String,
}

impl Group {
    /// From `group_name`/`group_path`/`group_id`/`full_path` fields of `v`.
    pub(super) fn from_fields(v: &Value) -> Option<Group> {
        let name = str_at(v, &["group_name"]);
        let full_path = str_at(v, &["full_path"]).or_else(|| str_at(v, &["group_path"]));
        if name.is_none() && full_path.is_none() {
            return None;
        }
        Some(Group {
            id: u64_at(v, &["group_id"]),
            name: name.or_else(|| full_path.clone()).unwrap_or_default(),
            full_path: full_path.unwrap_or_default(),
        })
    }
}

/// Makes `s` safe as one URL path segment (tags and branches may hold `#`, `?`, `%`).
pub(super) fn segment(s: &str) -> String {
    s.replace('%', "%25")
        .replace('#', "%23")
        .replace('?', "%3F")
        .replace(' ', "%20")
}

/// `PROJECT_URL/-/rest`, when the project's web page is known.
pub(super) fn under(project: &Project, rest: &str) -> Option<String> {
    project.url.as_ref().map(|base| format!("{base}/-/{rest}"))
}

/// The first characters of a commit id.
pub(super) fn short(sha: &str) -> String {
    sha.chars().take(SHORT_SHA_LEN).collect()
}

/// Seconds for people: `45s`, `1m 3s`, `2h 5m`.
pub fn duration_text(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// A timestamp or date at `path`, normalised (RFC 3339, `YYYY-MM-DD`, or the raw text).
pub(super) fn timestamp(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path).map(|t| time::normalize(&t))
}

/// The first non-blank line, trimmed.
pub(super) fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Label titles of an issue or merge request: the payload's `labels`, else the object's.
pub(super) fn label_titles(attrs: &Value, payload: Option<&Value>) -> Vec<String> {
    let from = |arr: &[Value]| -> Vec<String> {
        arr.iter()
            .filter_map(|l| str_at(l, &["title"]).or_else(|| l.as_str().map(str::to_string)))
            .collect()
    };
    let top = payload
        .map(|p| from(arr_at(p, &["labels"])))
        .unwrap_or_default();
    if top.is_empty() {
        from(arr_at(attrs, &["labels"]))
    } else {
        top
    }
}

/// The payload's `assignees`, or the singular `assignee` of old payloads.
pub(super) fn assignees(v: &Value) -> Vec<User> {
    let list: Vec<User> = arr_at(v, &["assignees"])
        .iter()
        .map(User::from_obj)
        .collect();
    if !list.is_empty() {
        return list;
    }
    obj_at(v, &["assignee"])
        .map(User::from_obj)
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(0.0), "0s");
        assert_eq!(duration_text(17.4), "17s");
        assert_eq!(duration_text(63.0), "1m 3s");
        assert_eq!(duration_text(7322.0), "2h 2m");
        assert_eq!(duration_text(-5.0), "0s");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("v1#2 ?%"), "v1%232%20%3F%25");
    }
}
