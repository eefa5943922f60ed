//! Groups, from instance-wide system hooks: created, deleted or renamed (`group_create`, …).
//! Keyed `group.create`, …; off unless a filter names `group`. Subgroups seen by a group's own
//! webhook are the `subgroup` kind.

use crate::event::shared::{timestamp, Group};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to groups.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "was created").sent_as("group_create"),
    Action::new("destroy", "was deleted").sent_as("group_destroy"),
    Action::new("rename", "was renamed").sent_as("group_rename"),
];

/// A group created, deleted or renamed (system hooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupEvent {
    /// The group: `id`, `name`, `full_path` (the path when GitLab sends no full path).
    #[serde(flatten)]
    pub group: Group,
    /// The full path before a rename.
    pub old_full_path: Option<String>,
    /// When the group was created (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// A group event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let name = str_at(v, &["name"]);
    let full_path = str_at(v, &["full_path"]).or_else(|| str_at(v, &["path"]));
    let event = GroupEvent {
        group: Group {
            id: u64_at(v, &["group_id"]),
            name: name.clone().or_else(|| full_path.clone()).unwrap_or_default(),
            full_path: full_path.or(name).unwrap_or_default(),
        },
        old_full_path: str_at(v, &["old_full_path"]).or_else(|| str_at(v, &["old_path"])),
        created_at: timestamp(v, &["created_at"]),
    };
    Some(
        input
            .keyed(input.event_word("group_").as_deref())
            .with(Detail::Group(Box::new(event))),
    )
}

/// Messages about one group stay in order.
pub(super) fn object_key(g: &GroupEvent, _: &str) -> String {
    match g.group.id {
        Some(id) => format!("group/{id}"),
        None => format!("group/{}", g.group.full_path),
    }
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of group events.
pub(super) const VARIABLES: KindVariables = (
    "group",
    &[
        ("group", "the group (system hooks only)"),
        ("group.id", "group id"),
        ("group.name", "group name"),
        ("group.full_path", "full path (`parent/child`; the path when GitLab sends no full path)"),
        ("group.old_full_path", "the full path before a rename"),
        ("group.created_at", "when the group was created"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail, Kind};
    use serde_json::json;

    #[test]
    fn groups_are_keyed_and_renames_keep_the_old_path() {
        let body = json!({"event_name": "group_rename", "name": "Better Name", "path": "better-name",
                          "full_path": "parent-group/better-name", "group_id": 64,
                          "old_path": "old-name", "old_full_path": "parent-group/old-name"});
        let Ok(e) = parse(Some("System Hook"), body) else {
            panic!("no parse")
        };
        assert_eq!((e.kind.clone(), e.key.as_str()), (Kind::Group, "group.rename"));
        assert_eq!(e.object_key(), "group/64");
        let Detail::Group(g) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        assert_eq!(g.group.full_path, "parent-group/better-name");
        assert_eq!(g.old_full_path.as_deref(), Some("parent-group/old-name"));
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["group"]["full_path"], "parent-group/better-name");
    }

    #[test]
    fn a_bare_group_event_degrades() {
        for name in ["group_create", "group_destroy"] {
            let Ok(e) = parse(None, json!({"event_name": name, "path": "storecloud", "name": null})) else {
                panic!("{name}")
            };
            assert!(e.known, "{name}");
            let Detail::Group(g) = &e.detail else {
                panic!("{name}")
            };
            assert_eq!((g.group.name.as_str(), g.group.full_path.as_str()), ("storecloud", "storecloud"));
        }
        let Ok(e) = parse(Some("Subgroup Hook"), json!({"event_name": "subgroup_create"})) else {
            panic!("subgroup")
        };
        assert_eq!(e.kind, Kind::Subgroup);
    }
}
