//! The template variables of every event kind: [`variables`] joins what every event has with
//! each kind's own list (the `VARIABLES` of its file under `kinds/`), in the table's order.
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

use super::{Event, KINDS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// One kind's variables: (path, meaning).
pub type KindVariables = (&'static str, &'static [(&'static str, &'static str)]);

/// Every template variable, per event kind: `common` first, then each kind with its own fields.
pub fn variables() -> &'static [KindVariables] {
    static ALL: OnceLock<Vec<KindVariables>> = OnceLock::new();
    ALL.get_or_init(|| {
        let kinds = KINDS.iter().map(|row| row.variables);
        std::iter::once(COMMON)
            .chain(kinds)
            .chain(std::iter::once(OTHER))
            .collect()
    })
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

/// What every event has.
const COMMON: KindVariables = (
    "common",
    &[
        ("key", "the event key: `merge_request.merge`, `pipeline.failed`, …"),
        ("kind", "the kind: `merge_request`, `pipeline`, …"),
        ("action", "the key's last part: GitLab's action (`open`, `merge`), a status (`failed`), `create`/`delete`, `on`/`off`; empty for the *Test* button"),
        ("verb", "past-tense words for people: `opened`, `merged`, `pushed to`, `failed`, …"),
        ("also_keys", "further keys filters match: `pipeline.fixed` (failed → success on the ref), `pipeline.broken` (success → failed); empty otherwise"),
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
);

/// The detail of kinds this version does not model.
const OTHER: KindVariables = (
    "other",
    &[(
        "other",
        "an empty object: kinds this version does not model; use `raw`",
    )],
);

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
