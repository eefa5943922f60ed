//! The Discord webhook body: one embed, and `allowed_mentions` that lets no one be pinged but
//! the users `[mentions.discord]` names.
//!
//! `{"content"?, "embeds": [{"title", "url", "description"}], "allowed_mentions": {"parse": [],
//! "users": […]}}`. Limits (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>):
//! `content` ≤ 2 000 characters, ≤ 10 embeds, title ≤ 256, description ≤ 4 096, and ≤ 6 000
//! characters across an embed's text. GitLab text has `@` as `＠` and `<` as `‹`, so it cannot
//! write `@everyone`, `@here`, `<@id>`, `<@&role>` or `<#channel>`, and `parse: []` would stop
//! them anyway. Mentions (`<@ID>`) go in `content`, as mentions inside embeds notify no one.

use super::chat::{cut, plain, write_runs, Markup, Parts, Platform};
use serde_json::{json, Value};

/// Longest `content`.
pub const MAX_CONTENT_CHARS: usize = 2_000;
/// Longest embed title.
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest embed description.
pub const MAX_DESCRIPTION_CHARS: usize = 4_096;
/// Most characters across an embed's title, description, fields, footer and author.
pub const MAX_EMBED_CHARS: usize = 6_000;
/// Most users `allowed_mentions.users` may list.
pub const MAX_ALLOWED_USERS: usize = 100;

const MARKUP: Markup = Markup {
    platform: Platform::Discord,
    bold: ("**", "**"),
    italic: ("_", "_"),
    strike: ("~~", "~~"),
    link: |label, url| format!("[{label}]({url})"),
    mention: |id| format!("<@{id}>"),
};

/// The text in Discord Markdown (mentions left out: they go in `content`).
pub fn markdown(parts: &Parts) -> String {
    write_runs(parts, &MARKUP)
}

/// The Discord body of a card.
pub fn body(parts: &Parts) -> Value {
    let title = cut(
        &plain(Platform::Discord, parts.title.trim()),
        MAX_TITLE_CHARS,
    );
    let mut description = markdown(parts);
    let links: Vec<String> = parts
        .buttons
        .iter()
        .map(|(label, url)| format!("[{}]({url})", plain(Platform::Discord, label)))
        .collect();
    if !links.is_empty() {
        description.push_str(&format!("\n{}", links.join(" · ")));
    }
    let room = MAX_EMBED_CHARS.saturating_sub(title.chars().count());
    let description = cut(&description, MAX_DESCRIPTION_CHARS.min(room));
    let mut embed = json!({ "description": description });
    if !title.is_empty() {
        embed["title"] = json!(title);
    }
    if let Some((_, url)) = parts.buttons.first() {
        embed["url"] = json!(url);
    }
    let mut users = parts.mentions();
    users.retain(|id| id.chars().all(|c| c.is_ascii_digit()));
    users.truncate(MAX_ALLOWED_USERS);
    let mut out = json!({
        "embeds": [embed],
        "allowed_mentions": { "parse": [], "users": users },
    });
    if !users.is_empty() {
        let content: Vec<String> = users.iter().map(|id| format!("<@{id}>")).collect();
        out["content"] = json!(cut(&content.join(" "), MAX_CONTENT_CHARS));
    }
    out
}
