//! Repository updates, from instance-wide system hooks: one `repository_update` per push,
//! listing every ref it changed (branches and tags). Keyed `repository.update`; off unless a
//! filter names `repository`.

use crate::event::shared::{segment, short, under, Project, ZERO_SHA};
use crate::event::table::{as_bundled, Action, Input, Parsed, Variant};
use crate::event::value::{arr_at, str_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// A push updated refs.
pub(super) const ACTIONS: &[Action] = &[Action::new("update", "pushed to").sent_as("repository_update")];

/// One ref a push changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefChange {
    /// Full ref (`refs/heads/main`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Branch or tag name (`main`).
    pub name: String,
    /// `branch`, `tag`, or `ref` for anything else.
    pub ref_type: &'static str,
    /// `create`, `delete` or `update`.
    pub change: &'static str,
    /// First characters of the commit before (empty on creation).
    pub short_before: String,
    /// First characters of the commit after (empty on deletion).
    pub short_after: String,
    /// Web page: the comparison for an update, the branch or tag for a creation.
    pub url: Option<String>,
}

/// Refs of a repository updated by one push.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepositoryUpdate {
    /// The refs it changed.
    pub changes: Vec<RefChange>,
    /// The first change's web page, when it has one.
    pub url: Option<String>,
}

/// The name, type and web page segment of a full ref.
fn ref_parts(git_ref: &str) -> (String, &'static str, &'static str) {
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        (b.to_string(), "branch", "tree")
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        (t.to_string(), "tag", "tags")
    } else {
        (git_ref.to_string(), "ref", "tree")
    }
}

fn ref_change(project: &Project, git_ref: String, before: &str, after: &str) -> RefChange {
    let (name, ref_type, page) = ref_parts(&git_ref);
    let change = if after == ZERO_SHA {
        "delete"
    } else if before == ZERO_SHA {
        "create"
    } else {
        "update"
    };
    let url = match change {
        "update" if !before.is_empty() && !after.is_empty() => {
            under(project, &format!("compare/{before}...{after}"))
        }
        "create" => under(project, &format!("{page}/{}", segment(&name))),
        _ => None,
    };
    RefChange {
        short_before: if change == "create" { String::new() } else { short(before) },
        short_after: if change == "delete" { String::new() } else { short(after) },
        git_ref,
        name,
        ref_type,
        change,
        url,
    }
}

/// A repository update; without `changes`, its `refs` are listed as updated.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let (v, project) = (input.v, &input.project);
    let mut changes: Vec<RefChange> = arr_at(v, &["changes"])
        .iter()
        .filter_map(|c| {
            let git_ref = str_at(c, &["ref"])?;
            let before = str_at(c, &["before"]).unwrap_or_default();
            let after = str_at(c, &["after"]).unwrap_or_default();
            Some(ref_change(project, git_ref, &before, &after))
        })
        .collect();
    if changes.is_empty() {
        changes = arr_at(v, &["refs"])
            .iter()
            .filter_map(|r| r.as_str().filter(|r| !r.trim().is_empty()))
            .map(|r| ref_change(project, r.to_string(), "", ""))
            .collect();
    }
    let update = RepositoryUpdate {
        url: changes.iter().find_map(|c| c.url.clone()),
        changes,
    };
    Some(
        input
            .keyed(input.event_word("repository_").as_deref())
            .with(Detail::Repository(Box::new(update))),
    )
}

/// Updates of one repository stay in order.
pub(super) fn object_key(_: &RepositoryUpdate, p: &str) -> String {
    format!("{p}/repository")
}

/// The sample as it is (it has one action).
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    as_bundled(base)
}

/// Template variables of repository updates.
pub(super) const VARIABLES: KindVariables = (
    "repository",
    &[
        ("repository", "the update (system hooks only; the repository's project is `project`)"),
        ("repository.changes", "the refs the push changed"),
        ("repository.changes[].ref", "full ref (`refs/heads/main`)"),
        ("repository.changes[].name", "branch or tag name (`main`)"),
        ("repository.changes[].ref_type", "`branch`, `tag`, or `ref` for anything else"),
        ("repository.changes[].change", "`create`, `delete` or `update`"),
        ("repository.changes[].short_before", "first 8 characters of the commit before (empty on creation)"),
        ("repository.changes[].short_after", "first 8 characters of the commit after (empty on deletion)"),
        ("repository.changes[].url", "web page: the comparison for an update, the branch or tag for a creation"),
        ("repository.url", "the first change's web page"),
    ],
);

#[cfg(test)]
mod tests {
    use crate::event::{parse, Detail, Kind};
    use serde_json::json;

    const ZERO: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn every_ref_is_a_change_with_a_link() {
        let body = json!({"event_name": "repository_update", "user_name": "John Smith",
            "project": {"name": "Example", "web_url": "http://example.com/jsmith/example", "path_with_namespace": "jsmith/example"},
            "project_id": 1,
            "changes": [
                {"before": "8205ea8d81ce0c6b90fbe8280d118cc9fdad6130", "after": "4045ea7a3df38697b3730a20fb73c8bed8a3e69e", "ref": "refs/heads/master"},
                {"before": ZERO, "after": "4045ea7a3df38697b3730a20fb73c8bed8a3e69e", "ref": "refs/tags/v1.0"},
                {"before": "4045ea7a3df38697b3730a20fb73c8bed8a3e69e", "after": ZERO, "ref": "refs/heads/old"},
                {"before": "x"}
            ],
            "refs": ["refs/heads/master"]});
        let Ok(e) = parse(Some("System Hook"), body) else {
            panic!("no parse")
        };
        assert_eq!((e.kind.clone(), e.key.as_str(), e.actor.name.as_str()), (Kind::Repository, "repository.update", "John Smith"));
        assert_eq!(e.object_key(), "1/repository");
        let Detail::Repository(r) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        let seen: Vec<(&str, &str, &str)> = r.changes.iter().map(|c| (c.name.as_str(), c.ref_type, c.change)).collect();
        assert_eq!(seen, [("master", "branch", "update"), ("v1.0", "tag", "create"), ("old", "branch", "delete")]);
        assert_eq!(r.changes[0].url.as_deref(), Some("http://example.com/jsmith/example/-/compare/8205ea8d81ce0c6b90fbe8280d118cc9fdad6130...4045ea7a3df38697b3730a20fb73c8bed8a3e69e"));
        assert_eq!(r.changes[1].url.as_deref(), Some("http://example.com/jsmith/example/-/tags/v1.0"));
        assert_eq!((r.changes[2].short_before.as_str(), r.changes[2].url.as_deref()), ("4045ea7a", None));
        assert_eq!(r.url, r.changes[0].url);
    }

    #[test]
    fn refs_alone_or_nothing_degrade() {
        let Ok(e) = parse(None, json!({"event_name": "repository_update", "refs": ["refs/heads/main", 3, ""], "project": null})) else {
            panic!("no parse")
        };
        let Detail::Repository(r) = &e.detail else {
            panic!("{:?}", e.detail)
        };
        assert_eq!(r.changes.len(), 1);
        assert_eq!((r.changes[0].change, r.changes[0].url.as_deref()), ("update", None));
        let Ok(e) = parse(None, json!({"event_name": "repository_update"})) else {
            panic!("no parse")
        };
        assert!(e.known);
    }
}
