//! The table of kinds: one row per GitLab event kind, one file per kind beside this one.
//!
//! A row names the kind's `Kind` and `Detail` variants, its module (the file holding its detail
//! type, parser, verbs, variables and sample variants), its key prefix, the `X-Gitlab-Event`
//! headers, `object_kind` and `event_name` values GitLab announces it with, its bundled sample
//! files, and whether filters must name it (`opt_in`). `Kind`'s strings, `check`'s samples and
//! the template reference (`docs/templates.md`) are derived from these rows; see "Adding an
//! event kind" in `docs/ARCHITECTURE.md`.

use super::table::KindRow;

kinds! {
    /// `Issue Hook` with `object_kind: issue` (incidents, requirements, test cases too).
    Issue => issue, Issue(Issue) {
        name: "issue",
        headers: ["Issue Hook"],
        object_kinds: ["issue"],
        event_names: [],
        samples: ["issue__open.json"],
        opt_in: false,
        detail: "An issue event.",
    }
    /// `Issue Hook` with `object_kind: work_item` (tasks, epics, …).
    WorkItem => work_item, WorkItem(Box<Issue>) {
        name: "work_item",
        headers: ["Issue Hook"],
        object_kinds: ["work_item"],
        event_names: [],
        samples: ["issue__open.json"],
        opt_in: false,
        detail: "A work item event (task, epic, …): an issue by another name.",
    }
    /// `Merge Request Hook`.
    MergeRequest => merge_request, MergeRequest(Box<MergeRequest>) {
        name: "merge_request",
        headers: ["Merge Request Hook"],
        object_kinds: ["merge_request"],
        event_names: [],
        samples: ["merge_request__open.json"],
        opt_in: false,
        detail: "A merge request event.",
    }
    /// `Push Hook`.
    Push => push, Push(Push) {
        name: "push",
        headers: ["Push Hook"],
        object_kinds: ["push"],
        event_names: ["push"],
        samples: ["push__basic.json"],
        opt_in: false,
        detail: "A push.",
    }
    /// `Tag Push Hook`.
    TagPush => tag_push, TagPush(Box<TagPush>) {
        name: "tag_push",
        headers: ["Tag Push Hook"],
        object_kinds: ["tag_push"],
        event_names: ["tag_push"],
        samples: ["tag_push__basic.json"],
        opt_in: false,
        detail: "A tag pushed or deleted.",
    }
    /// `Note Hook` (comments).
    Note => note, Note(Box<Note>) {
        name: "note",
        headers: ["Note Hook"],
        object_kinds: ["note"],
        event_names: [],
        samples: [
            "note__issue.json",
            "note__merge_request.json",
            "note__commit.json",
            "note__snippet.json",
        ],
        opt_in: false,
        detail: "A comment.",
    }
    /// `Pipeline Hook`.
    Pipeline => pipeline, Pipeline(Box<Pipeline>) {
        name: "pipeline",
        headers: ["Pipeline Hook"],
        object_kinds: ["pipeline"],
        event_names: [],
        samples: ["pipeline__basic.json"],
        opt_in: false,
        detail: "A pipeline's status change.",
    }
    /// `Job Hook` or the older `Build Hook` (`object_kind: build`).
    Job => job, Job(Box<Job>) {
        name: "job",
        headers: ["Job Hook", "Build Hook"],
        object_kinds: ["build", "job"],
        event_names: [],
        samples: ["job__basic.json"],
        opt_in: false,
        detail: "A job's status change.",
    }
    /// `Release Hook`.
    Release => release, Release(Box<Release>) {
        name: "release",
        headers: ["Release Hook"],
        object_kinds: ["release"],
        event_names: [],
        samples: ["release__create.json"],
        opt_in: false,
        detail: "A release created, edited or deleted.",
    }
    /// `Wiki Page Hook`.
    WikiPage => wiki_page, WikiPage(Box<WikiPage>) {
        name: "wiki_page",
        headers: ["Wiki Page Hook"],
        object_kinds: ["wiki_page"],
        event_names: [],
        samples: ["wiki_page__create.json"],
        opt_in: false,
        detail: "A wiki page created, edited or deleted.",
    }
    /// `Deployment Hook` (status changes, and approvals of deployments waiting for one).
    Deployment => deployment, Deployment(Box<Deployment>) {
        name: "deployment",
        headers: ["Deployment Hook"],
        object_kinds: ["deployment"],
        event_names: [],
        samples: ["deployment__basic.json", "deployment__approved.json"],
        opt_in: false,
        detail: "A deployment's status change, approval or rejection.",
    }
    /// `Milestone Hook`.
    Milestone => milestone, Milestone(Box<Milestone>) {
        name: "milestone",
        headers: ["Milestone Hook"],
        object_kinds: ["milestone"],
        event_names: [],
        samples: ["milestone__create.json"],
        opt_in: false,
        detail: "A milestone created, closed, reopened or deleted.",
    }
    /// `Emoji Hook`.
    Emoji => emoji, Emoji(Box<Emoji>) {
        name: "emoji",
        headers: ["Emoji Hook"],
        object_kinds: ["emoji"],
        event_names: [],
        samples: ["emoji__award.json"],
        opt_in: false,
        detail: "An emoji reaction added or removed.",
    }
    /// `Feature Flag Hook`.
    FeatureFlag => feature_flag, FeatureFlag(Box<FeatureFlag>) {
        name: "feature_flag",
        headers: ["Feature Flag Hook"],
        object_kinds: ["feature_flag"],
        event_names: [],
        samples: ["feature_flag__basic.json"],
        opt_in: false,
        detail: "A feature flag turned on or off.",
    }
    /// `Resource Access Token Hook`.
    AccessToken => access_token, AccessToken(Box<AccessToken>) {
        name: "access_token",
        headers: ["Resource Access Token Hook"],
        object_kinds: ["access_token"],
        event_names: ["*access_token"],
        samples: ["access_token__project.json", "access_token__group.json"],
        opt_in: false,
        detail: "A project or group access token about to expire.",
    }
    /// `Member Hook` (group members; no `object_kind`).
    Member => member, Member(Box<Member>) {
        name: "member",
        headers: ["Member Hook"],
        object_kinds: [],
        event_names: ["user_*group*"],
        samples: ["member__add_to_group.json"],
        opt_in: false,
        detail: "A group membership change.",
    }
    /// `Project Hook` (group-level project create/destroy; no `object_kind`).
    Project => project, ProjectEvent(Box<ProjectEvent>) {
        name: "project",
        headers: ["Project Hook"],
        object_kinds: [],
        event_names: ["project_*"],
        samples: ["project__create.json"],
        opt_in: false,
        detail: "A project created, deleted, renamed or moved in a group (the project is the \
                 event's `project`; serialised as `project_event`).",
    }
    /// `Subgroup Hook`.
    Subgroup => subgroup, Subgroup(Box<Subgroup>) {
        name: "subgroup",
        headers: ["Subgroup Hook"],
        object_kinds: [],
        event_names: ["subgroup_*"],
        samples: ["subgroup__create.json"],
        opt_in: false,
        detail: "A subgroup created or deleted.",
    }
    /// `Vulnerability Hook`.
    Vulnerability => vulnerability, Vulnerability(Box<Vulnerability>) {
        name: "vulnerability",
        headers: ["Vulnerability Hook"],
        object_kinds: ["vulnerability"],
        event_names: [],
        samples: ["vulnerability__basic.json"],
        opt_in: false,
        detail: "A vulnerability found or changing state.",
    }
    /// `System Hook` with `event_name` `user_create`, `user_destroy`, `user_failed_login` or
    /// `user_rename` (instance administrators only).
    User => user, User(Box<UserAccount>) {
        name: "user",
        headers: [],
        object_kinds: [],
        event_names: ["user_create", "user_destroy", "user_failed_login", "user_rename"],
        samples: ["user__create.json", "user__failed_login.json"],
        opt_in: true,
        detail: "A user account created, deleted or renamed, or a blocked user's sign-in attempt.",
    }
    /// `System Hook` with `event_name` `user_add_to_team`, `user_remove_from_team`,
    /// `user_update_for_team` or a project access request (project members).
    ProjectMember => project_member, ProjectMember(Box<ProjectMember>) {
        name: "project_member",
        headers: [],
        object_kinds: [],
        event_names: [
            "user_*team*",
            "user_access_request_to_project",
            "user_access_request_revoked_for_project",
        ],
        samples: ["project_member__add.json"],
        opt_in: true,
        detail: "A project membership change (system hooks).",
    }
    /// `System Hook` with `event_name` `group_create`, `group_destroy` or `group_rename`.
    Group => group, Group(Box<GroupEvent>) {
        name: "group",
        headers: [],
        object_kinds: [],
        event_names: ["group_create", "group_destroy", "group_rename"],
        samples: ["group__create.json", "group__rename.json"],
        opt_in: true,
        detail: "A group created, deleted or renamed (system hooks).",
    }
    /// `System Hook` with `event_name` `key_create` or `key_destroy`.
    SshKey => ssh_key, SshKey(Box<SshKey>) {
        name: "ssh_key",
        headers: [],
        object_kinds: [],
        event_names: ["key_create", "key_destroy"],
        samples: ["ssh_key__create.json"],
        opt_in: true,
        detail: "An SSH key added or removed (system hooks).",
    }
    /// `System Hook` with `event_name` `repository_update` (one per push, for all its refs).
    Repository => repository, Repository(Box<RepositoryUpdate>) {
        name: "repository",
        headers: [],
        object_kinds: [],
        event_names: ["repository_update"],
        samples: ["repository__update.json"],
        opt_in: true,
        detail: "Refs of a repository updated by one push (system hooks).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::table::wildcard;
    use crate::event::{parse, Detail};
    use std::collections::HashSet;

    #[test]
    fn names_headers_and_event_names_are_unique() {
        let mut names = HashSet::new();
        let mut object_kinds = HashSet::new();
        for row in &KINDS {
            assert!(names.insert(row.name), "{} twice", row.name);
            assert_eq!(row.kind.as_str(), row.name);
            assert_eq!(row.kind.row().map(|r| r.name), Some(row.name));
            for k in row.object_kinds {
                assert!(object_kinds.insert(*k), "object_kind {k} twice");
            }
            for n in row.event_names.iter().filter(|n| !n.contains('*')) {
                let owner = KINDS
                    .iter()
                    .find(|r| r.event_names.iter().any(|p| wildcard(p, n)));
                assert_eq!(owner.map(|r| r.name), Some(row.name), "event_name {n}");
            }
        }
    }

    #[test]
    fn every_row_has_actions_samples_and_variables() {
        for row in &KINDS {
            assert!(!row.actions.is_empty(), "{}", row.name);
            assert!(!row.samples.is_empty(), "{}", row.name);
            assert!(!row.variables.1.is_empty(), "{}", row.name);
            let words: HashSet<&str> = row.actions.iter().map(|a| a.word).collect();
            assert_eq!(words.len(), row.actions.len(), "{}: a word twice", row.name);
        }
    }

    #[test]
    fn every_sample_parses_as_its_kind_with_a_known_key() {
        for row in &KINDS {
            let header = row.sample_header();
            for (label, v) in row.sample_payloads() {
                let e = parse(Some(header), v);
                let Ok(e) = e else {
                    panic!("{label} does not parse")
                };
                assert_eq!(e.kind, row.kind, "{label}");
                assert!(e.known, "{label}: {} not known", e.key);
                let listed = e.key == row.name || row.keys().contains(&e.key);
                assert!(listed, "{label}: {}", e.key);
                assert!(!matches!(e.detail, Detail::Other {}), "{label}");
            }
        }
    }

    #[test]
    fn the_readme_lists_every_key() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### Event keys")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        for row in &KINDS {
            for key in row.keys() {
                let short = key.strip_prefix(row.name).unwrap_or(&key);
                let listed = section.contains(&format!("`{key}`"))
                    || (short.starts_with('.') && section.contains(&format!("`{short}`")));
                assert!(listed, "README's event keys miss {key}");
            }
        }
    }
}
