//! Releases: `Release Hook`, keyed by `action` (`create`, `update`, `delete`).

use crate::event::shared::{timestamp, Commit};
use crate::event::table::{each_action, without, Action, Input, Parsed, Variant};
use crate::event::value::{arr_at, obj_at, str_at, u64_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Created, edited, deleted (wiki pages too).
pub(super) const ACTIONS: &[Action] = &[
    Action::new("create", "created"),
    Action::new("update", "updated"),
    Action::new("delete", "deleted"),
];

/// A link attached to a release.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReleaseLink {
    /// Link text.
    pub name: String,
    /// Target.
    pub url: Option<String>,
    /// `other`, `runbook`, `image`, `package`.
    pub link_type: Option<String>,
}

/// A release created, edited or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Release {
    /// Release id.
    pub id: Option<u64>,
    /// Release name (the tag when unnamed).
    pub name: String,
    /// Tag it is built on.
    pub tag: String,
    /// Release notes.
    pub description: Option<String>,
    /// Web page of the release.
    pub url: Option<String>,
    /// Creation time (RFC 3339 when parseable).
    pub created_at: Option<String>,
    /// Release time (RFC 3339 when parseable; may be in the future).
    pub released_at: Option<String>,
    /// The tagged commit.
    pub commit: Option<Commit>,
    /// Links attached to the release (packages, changelog, …).
    pub links: Vec<ReleaseLink>,
    /// How many assets it has (links and source archives).
    pub assets_count: Option<u64>,
}

/// A release event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let v = input.v;
    let tag = str_at(v, &["tag"]).unwrap_or_default();
    let release = Release {
        id: u64_at(v, &["id"]),
        name: str_at(v, &["name"]).unwrap_or_else(|| tag.clone()),
        description: str_at(v, &["description"]),
        url: url_at(v, &["url"]),
        created_at: timestamp(v, &["created_at"]),
        released_at: timestamp(v, &["released_at"]),
        commit: obj_at(v, &["commit"]).map(Commit::from_obj),
        links: arr_at(v, &["assets", "links"])
            .iter()
            .map(|l| ReleaseLink {
                name: str_at(l, &["name"]).unwrap_or_else(|| "link".to_string()),
                url: url_at(l, &["url"]),
                link_type: str_at(l, &["link_type"]),
            })
            .collect(),
        assets_count: u64_at(v, &["assets", "count"]),
        tag,
    };
    Some(
        input
            .keyed(input.action.as_deref())
            .with(Detail::Release(Box::new(release))),
    )
}

/// Messages about one release stay in order.
pub(super) fn object_key(r: &Release, p: &str) -> String {
    format!("{p}/release/{}", r.tag)
}

/// The sample with each action, and without one.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    let mut out = each_action(base, &["action"], ACTIONS, "action");
    out.push(("no action".into(), without(base, &["action"])));
    out
}

/// Template variables of releases.
pub(super) const VARIABLES: KindVariables = (
    "release",
    &[
        ("release", "the release"),
        ("release.id", "release id"),
        ("release.name", "release name (the tag when unnamed)"),
        ("release.tag", "tag it is built on"),
        ("release.description", "release notes"),
        ("release.url", "web page of the release"),
        ("release.created_at", "creation time (RFC 3339 when parseable)"),
        ("release.released_at", "release time (may be in the future)"),
        ("release.commit", "the tagged commit"),
        ("release.commit.id", "full commit id"),
        ("release.commit.short_id", "first 8 characters of the id"),
        ("release.commit.title", "first line of the message"),
        ("release.commit.message", "whole message"),
        ("release.commit.url", "web page of the commit"),
        ("release.commit.author_name", "author's name"),
        ("release.commit.author_email", "author's e-mail"),
        ("release.commit.timestamp", "when it was authored (RFC 3339 when parseable)"),
        ("release.links", "links attached to the release"),
        ("release.links[].name", "link text"),
        ("release.links[].url", "target"),
        ("release.links[].link_type", "`other`, `runbook`, `image`, `package`"),
        ("release.assets_count", "how many assets it has (links and source archives)"),
    ],
);
