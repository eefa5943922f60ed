//! Subgroups created or deleted: `Subgroup Hook` (group webhooks), keyed by `event_name`
//! (`subgroup_create` → `create`).

use crate::event::shared::Group;
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to subgroups.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "was created").sent_as("subgroup_create"),
    Action::new("destroy", "was deleted").sent_as("subgroup_destroy"),
];

/// A subgroup created or deleted (group webhooks; no URL in the payload).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Subgroup {
    /// Group id.
    pub id: Option<u64>,
    /// Name.
    pub name: String,
    /// Full path (`parent/child`).
    pub full_path: String,
    /// The parent group.
    pub parent: Option<Group>,
}

/// A subgroup event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let name = str_at(v, &["name"]).unwrap_or_default();
    let subgroup = Subgroup {
        id: u64_at(v, &["group_id"]),
        full_path: str_at(v, &["full_path"])
            .or_else(|| str_at(v, &["path"]))
            .unwrap_or_else(|| name.clone()),
        name,
        parent: str_at(v, &["parent_full_path"]).map(|full_path| Group {
            id: u64_at(v, &["parent_group_id"]),
            name: str_at(v, &["parent_name"]).unwrap_or_else(|| full_path.clone()),
            full_path,
        }),
    };
    Some(
        input
            .keyed(input.event_word("subgroup_").as_deref())
            .with(Detail::Subgroup(Box::new(subgroup))),
    )
}

/// Messages about one subgroup stay in order.
pub(super) fn object_key(g: &Subgroup, _: &str) -> String {
    format!("group/{}", g.full_path)
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of subgroup events.
pub(super) const VARIABLES: KindVariables = (
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
);
