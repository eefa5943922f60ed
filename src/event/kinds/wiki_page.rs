//! Wiki pages: `Wiki Page Hook`, keyed by `object_attributes.action` (`create`, `update`,
//! `delete`).

use super::release;
use crate::event::table::{each_action, Action, Input, Parsed, Variant};
use crate::event::value::{str_at, url_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Created, edited, deleted, as releases.
pub(super) const ACTIONS: &[Action] = release::ACTIONS;

/// A wiki page created, edited or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WikiPage {
    /// Page title.
    pub title: String,
    /// Page slug (its path in the wiki).
    pub slug: Option<String>,
    /// Web page.
    pub url: Option<String>,
    /// Web page of this version's diff.
    pub diff_url: Option<String>,
    /// The edit's commit message.
    pub message: Option<String>,
    /// Page text (markup as written).
    pub content: Option<String>,
    /// `markdown`, `rdoc`, `asciidoc`, `org`.
    pub format: Option<String>,
    /// Web page of the wiki's home.
    pub wiki_url: Option<String>,
}

/// A wiki page event.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let a = input.attrs();
    let page = WikiPage {
        title: str_at(a, &["title"])
            .or_else(|| str_at(a, &["slug"]))
            .unwrap_or_else(|| "(untitled)".to_string()),
        slug: str_at(a, &["slug"]),
        url: url_at(a, &["url"]),
        diff_url: url_at(a, &["diff_url"]),
        message: str_at(a, &["message"]),
        content: str_at(a, &["content"]),
        format: str_at(a, &["format"]),
        wiki_url: url_at(input.v, &["wiki", "web_url"]),
    };
    Some(
        input
            .keyed(input.action.as_deref())
            .with(Detail::WikiPage(Box::new(page))),
    )
}

/// Messages about one page stay in order.
pub(super) fn object_key(w: &WikiPage, p: &str) -> String {
    format!("{p}/wiki/{}", w.slug.as_deref().unwrap_or(&w.title))
}

/// The sample with each action.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    each_action(base, &["object_attributes", "action"], ACTIONS, "action")
}

/// Template variables of wiki page events.
pub(super) const VARIABLES: KindVariables = (
    "wiki_page",
    &[
        ("wiki_page", "the wiki page"),
        ("wiki_page.title", "page title"),
        ("wiki_page.slug", "page slug (its path in the wiki)"),
        ("wiki_page.url", "web page"),
        ("wiki_page.diff_url", "web page of this version's diff"),
        ("wiki_page.message", "the edit's commit message"),
        ("wiki_page.content", "page text (markup as written)"),
        ("wiki_page.format", "`markdown`, `rdoc`, `asciidoc`, `org`"),
        ("wiki_page.wiki_url", "web page of the wiki's home"),
    ],
);
