//! Projects created, deleted, renamed or moved in a group: `Project Hook` (group webhooks; also
//! `System Hook` bodies), keyed by `event_name` (`project_create` → `create`). The project
//! itself is the event's `project`; the detail is serialised as `project_event`.

use crate::event::changes::people_at;
use crate::event::shared::User;
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::str_at;
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// What happens to projects.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "was created").sent_as("project_create"),
    Action::new("destroy", "was deleted").sent_as("project_destroy"),
    Action::new("rename", "was renamed").sent_as("project_rename"),
    Action::new("transfer", "was transferred").sent_as("project_transfer"),
    Action::new("update", "was updated").sent_as("project_update"),
];

/// A project created, deleted, renamed or moved in a group (group webhooks; no URL in the payload).
/// The project itself is the event's `project`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectEvent {
    /// `private`, `internal` or `public`.
    pub visibility: Option<String>,
    /// The project's owners.
    pub owners: Vec<User>,
    /// The path before a rename or transfer.
    pub old_path: Option<String>,
}

/// A project event; the payload's flat `name` and `path_with_namespace` fill the project.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    input.project.fill_from(v, "name", "path_with_namespace");
    let mut owners = people_at(v, &["owners"]);
    if owners.is_empty() {
        // System hooks name one owner in flat fields.
        if let Some(name) = str_at(v, &["owner_name"]) {
            owners.push(User::from_parts(
                Some(name),
                None,
                str_at(v, &["owner_email"]),
                None,
            ));
        }
    }
    let event = ProjectEvent {
        visibility: str_at(v, &["project_visibility"]),
        owners,
        old_path: str_at(v, &["old_path_with_namespace"]),
    };
    Some(
        input
            .keyed(input.event_word("project_").as_deref())
            .with(Detail::ProjectEvent(Box::new(event))),
    )
}

/// Messages about one project stay in order.
pub(super) fn object_key(_: &ProjectEvent, p: &str) -> String {
    format!("{p}/project")
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of group project events (the project is the common `project`).
pub(super) const VARIABLES: KindVariables = (
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
);
