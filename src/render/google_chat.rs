//! The Google Chat space-webhook body: one `cardsV2` card, in the thread of the event's object.
//!
//! `{"cardsV2": [{"cardId", "card": {"header": {"title"}, "sections": [{"widgets":
//! [textParagraph, buttonList]}]}}], "thread": {"threadKey"}, "text"?}`; the channel's URL
//! carries `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`, so each issue, merge
//! request or branch gets a thread. Limits (<https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages>):
//! a message ≤ 32 000 bytes; we keep the card's text to [`MAX_TEXT_CHARS`]. Card text is
//! Google's HTML subset: GitLab text has `&<>` as entities, so it can write no tag and no
//! `<users/all>`. Mentions (`<users/ID>` from `[mentions.google_chat]`) go in `text`, where
//! Chat notifies them.

use super::chat::{cut, plain_text, write_runs, Markup, Parts, Platform};
use serde_json::{json, Value};

/// Longest card text kept.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Longest header title kept.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most buttons.
pub const MAX_BUTTONS: usize = 5;
/// Longest thread key kept.
pub const MAX_THREAD_KEY_CHARS: usize = 1_000;

const MARKUP: Markup = Markup {
    platform: Platform::GoogleChat,
    bold: ("<b>", "</b>"),
    italic: ("<i>", "</i>"),
    strike: ("<s>", "</s>"),
    link: |label, url| format!("<a href=\"{}\">{label}</a>", attr(url)),
    mention: |id| format!("<users/{id}>"),
};

/// The text in Google Chat's card HTML.
pub fn html(parts: &Parts) -> String {
    write_runs(parts, &MARKUP)
}

/// A URL inside a double-quoted HTML attribute.
fn attr(u: &str) -> String {
    u.replace('&', "&amp;")
        .replace('"', "%22")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

/// The Google Chat body of a card; `thread` is the event's object key.
pub fn body(parts: &Parts, thread: &str) -> Value {
    let mut text = html(parts);
    if text.chars().count() > MAX_TEXT_CHARS {
        // Cut on the plain text rather than inside a tag: drop the markup, keep the words.
        text = cut(
            &super::chat::plain(Platform::GoogleChat, &parts.text),
            MAX_TEXT_CHARS,
        );
    }
    let mut widgets = vec![json!({"textParagraph": {"text": text}})];
    let buttons: Vec<Value> = parts
        .buttons
        .iter()
        .take(MAX_BUTTONS)
        .map(|(label, url)| json!({"text": plain_text(label), "onClick": {"openLink": {"url": url}}}))
        .collect();
    if !buttons.is_empty() {
        widgets.push(json!({"buttonList": {"buttons": buttons}}));
    }
    let mut card = json!({"sections": [{"widgets": widgets}]});
    let title = cut(&plain_text(parts.title.trim()), MAX_TITLE_CHARS);
    if !title.is_empty() {
        card["header"] = json!({"title": title});
    }
    let mut out = json!({
        "cardsV2": [{"cardId": "gitlab-event", "card": card}],
        "thread": {"threadKey": cut(thread, MAX_THREAD_KEY_CHARS)},
    });
    let mentions: Vec<String> = parts
        .mentions()
        .iter()
        .map(|id| format!("<users/{id}>"))
        .collect();
    if !mentions.is_empty() {
        out["text"] = json!(mentions.join(" "));
    }
    out
}
