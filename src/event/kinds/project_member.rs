//! Project members, from instance-wide system hooks: a user added to, removed from or changed
//! in a project (GitLab calls projects "teams" here: `user_add_to_team`), or a project access
//! request. Keyed `project_member.add`, …; off unless a filter names `project_member`.

use crate::event::shared::{timestamp, User};
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::str_at;
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Membership changes and access requests.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("add", "was added to").sent_as("user_add_to_team"),
    Action::new("remove", "was removed from").sent_as("user_remove_from_team"),
    Action::new("update", "had their access changed in").sent_as("user_update_for_team"),
    Action::new("access_request", "requested access to").sent_as("user_access_request_to_project"),
    Action::new("access_request_revoked", "withdrew their access request to")
        .sent_as("user_access_request_revoked_for_project"),
];

/// A project membership change (system hooks; no URL in the payload). The project is the
/// event's `project`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectMember {
    /// The member (also `actor`: the payload names no one else).
    pub user: User,
    /// Role name (`Guest`, `Developer`, `Maintainer`, …).
    pub access: Option<String>,
    /// The project's visibility: `private`, `internal` or `public`.
    pub visibility: Option<String>,
    /// When the membership was created (RFC 3339 when parseable).
    pub created_at: Option<String>,
}

/// A project membership event; the flat `project_name` and `project_path_with_namespace` fill
/// the project.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    input
        .project
        .fill_from(v, "project_name", "project_path_with_namespace");
    let member = ProjectMember {
        user: input.actor.clone(),
        access: str_at(v, &["access_level"]),
        visibility: str_at(v, &["project_visibility"]),
        created_at: timestamp(v, &["created_at"]),
    };
    Some(
        input
            .keyed(input.event_word("user_").as_deref())
            .with(Detail::ProjectMember(Box::new(member))),
    )
}

/// Messages about one member of one project stay in order.
pub(super) fn object_key(m: &ProjectMember, p: &str) -> String {
    format!("{p}/member/{}", m.user.username.as_deref().unwrap_or(&m.user.name))
}

/// The sample with each event.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["event_name"], ACTIONS, "event")
}

/// Template variables of project membership events (the project is the common `project`).
pub(super) const VARIABLES: KindVariables = (
    "project_member",
    &[
        ("project_member", "the membership (system hooks only; the project is `project`)"),
        ("project_member.user", "the member (also `actor`)"),
        ("project_member.user.name", "display name (falls back to the username, then `someone`)"),
        ("project_member.user.username", "login name, without `@`"),
        ("project_member.user.email", "e-mail, only when GitLab sent a real one"),
        ("project_member.user.avatar_url", "avatar image URL (http(s) only)"),
        ("project_member.access", "role (`Guest`, `Developer`, `Maintainer`, …)"),
        ("project_member.visibility", "the project's visibility: `private`, `internal` or `public`"),
        ("project_member.created_at", "when the membership was created"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail, Kind};
    use serde_json::json;

    #[test]
    fn team_events_are_project_members() {
        for (name, key) in [
            ("user_add_to_team", "project_member.add"),
            ("user_remove_from_team", "project_member.remove"),
            ("user_update_for_team", "project_member.update"),
            ("user_access_request_to_project", "project_member.access_request"),
            (
                "user_access_request_revoked_for_project",
                "project_member.access_request_revoked",
            ),
        ] {
            let body = json!({"event_name": name, "access_level": "Maintainer", "project_id": 74,
                              "project_name": "StoreCloud", "project_path_with_namespace": "jsmith/storecloud",
                              "user_name": "John Smith", "user_username": "johnsmith", "user_email": "johnsmith@example.com"});
            let Ok(e) = parse(Some("System Hook"), body) else {
                panic!("{name}")
            };
            assert_eq!((e.kind.clone(), e.key.as_str(), e.known), (Kind::ProjectMember, key, true));
            assert_eq!(e.project.path, "jsmith/storecloud");
            assert_eq!(e.project.id, Some(74));
            assert_eq!(e.actor.name, "John Smith");
            assert_eq!(e.object_key(), "74/member/johnsmith");
            let Detail::ProjectMember(m) = &e.detail else {
                panic!("{name}: {:?}", e.detail)
            };
            assert_eq!(m.access.as_deref(), Some("Maintainer"));
        }
    }

    #[test]
    fn missing_fields_degrade() {
        let Ok(e) = parse(None, json!({"event_name": "user_update_for_team", "project_name": null})) else {
            panic!("no parse")
        };
        assert_eq!(e.key, "project_member.update");
        assert_eq!(e.actor.name, "someone");
        assert_eq!(e.project.path, "");
        let unknown = parse(None, json!({"event_name": "user_frob_for_team"}));
        assert_eq!(
            unknown.map(|e| (e.key, e.known)).ok(),
            Some(("project_member.frob_for_team".to_string(), false))
        );
    }
}
