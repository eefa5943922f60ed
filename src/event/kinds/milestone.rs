//! Milestones: `Milestone Hook` (GitLab 18.2+), keyed by the top-level `action`; project or
//! group milestones.

use crate::event::shared::{timestamp, under, Group};
use crate::event::table::{each_action, with, Action, Input, Parsed, Variant};
use crate::event::value::{obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::{time, Detail};
use serde::Serialize;
use serde_json::{json, Value};

/// What happens to milestones.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "created"),
    Action::new("update", "updated"),
    Action::new("close", "closed"),
    Action::new("reopen", "reopened"),
    Action::new("delete", "deleted"),
];

/// A milestone created, closed, reopened or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Milestone {
    /// Global id.
    pub id: Option<u64>,
    /// Project- or group-scoped number.
    pub iid: Option<u64>,
    /// Title (`v1.0`).
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// `active` or `closed`.
    pub state: Option<String>,
    /// Calendar date `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// Calendar date `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Web page (project milestones only: GitLab sends no URL).
    pub url: Option<String>,
    /// The group, for group milestones.
    pub group: Option<Group>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Last update time (RFC 3339 when parseable).
    pub updated_at: Option<String>,
}

/// A milestone event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let a = input.attrs();
    let iid = u64_at(a, &["iid"]);
    let milestone = Milestone {
        id: u64_at(a, &["id"]),
        title: str_at(a, &["title"]).unwrap_or_else(|| "(untitled)".to_string()),
        description: str_at(a, &["description"]),
        state: str_at(a, &["state"]),
        start_date: str_at(a, &["start_date"]).map(|d| time::normalize(&d)),
        due_date: str_at(a, &["due_date"]).map(|d| time::normalize(&d)),
        url: url_at(a, &["url"])
            .or_else(|| iid.and_then(|i| under(&input.project, &format!("milestones/{i}")))),
        group: obj_at(input.v, &["group"]).and_then(Group::from_fields),
        created_at: timestamp(a, &["created_at"]),
        updated_at: timestamp(a, &["updated_at"]),
        iid,
    };
    Some(
        input
            .keyed(input.action.as_deref())
            .with(Detail::Milestone(Box::new(milestone))),
    )
}

/// Messages about one milestone stay in order.
pub(super) fn object_key(m: &Milestone, p: &str) -> String {
    match &m.group {
        Some(g) if p.is_empty() => {
            format!("group/{}/milestone/{}", g.full_path, m.iid.unwrap_or(0))
        }
        _ => format!("{p}/milestone/{}", m.iid.unwrap_or(0)),
    }
}

/// The sample with each action, and as a group milestone.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let mut out = each_action(base, &["action"], ACTIONS, "action");
    let group = with(
        &with(base, &["project"], Value::Null),
        &["group"],
        json!({"group_name": "g", "group_path": "g", "group_id": 1, "full_path": "g"}),
    );
    out.push(("group milestone".into(), group));
    out
}

/// Template variables of milestones.
pub(super) const VARIABLES: KindVariables = (
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
);
