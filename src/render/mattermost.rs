//! The Mattermost incoming-webhook body: `text` and one attachment.
//!
//! `{"text", "attachments": [{"fallback", "title", "title_link", "text"}]}`. Limits
//! (<https://developers.mattermost.com/integrate/webhooks/incoming/>): a post's text ≤ 16 383
//! characters (longer ones are split into several posts; we cut instead), attachments have no
//! separate cap we rely on. GitLab text has `@` as `＠`, so it cannot write `@channel`, `@all`,
//! `@here` or `@someone`; mentions are `@ID` from `[mentions.mattermost]`.

use super::chat::{cut, plain, write_runs, Markup, Parts, Platform};
use serde_json::{json, Value};

/// Longest post text.
pub const MAX_TEXT_CHARS: usize = 16_383;
/// Longest attachment title kept.
pub const MAX_TITLE_CHARS: usize = 250;

const MARKUP: Markup = Markup {
    platform: Platform::Mattermost,
    bold: ("**", "**"),
    italic: ("_", "_"),
    strike: ("~~", "~~"),
    link: |label, url| format!("[{label}]({url})"),
    mention: |id| format!("@{id}"),
};

/// The text in Mattermost Markdown.
pub fn markdown(parts: &Parts) -> String {
    write_runs(parts, &MARKUP)
}

/// The Mattermost body of a card.
pub fn body(parts: &Parts) -> Value {
    let text = cut(&markdown(parts), MAX_TEXT_CHARS);
    let title = cut(
        &plain(Platform::Mattermost, parts.title.trim()),
        MAX_TITLE_CHARS,
    );
    if title.is_empty() && parts.buttons.is_empty() {
        return json!({ "text": text });
    }
    let mut attachment =
        json!({ "fallback": if title.is_empty() { "GitLab" } else { title.as_str() } });
    if !title.is_empty() {
        attachment["title"] = json!(title);
    }
    if let Some((_, url)) = parts.buttons.first() {
        attachment["title_link"] = json!(url);
    }
    let links: Vec<String> = parts
        .buttons
        .iter()
        .map(|(label, url)| format!("[{}]({url})", plain(Platform::Mattermost, label)))
        .collect();
    if !links.is_empty() {
        attachment["text"] = json!(links.join(" · "));
    }
    json!({ "text": text, "attachments": [attachment] })
}
