//! The Microsoft Teams Workflows (Power Automate) webhook body: a message with one Adaptive
//! Card attachment.
//!
//! `{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
//! "content": {AdaptiveCard 1.4: TextBlocks, Action.OpenUrl, msteams.entities}}]}`. Limits
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-reference>):
//! a card message ≤ 28 KB; Teams shows at most 6 actions (we keep 5, Cliq's number). Each line
//! of text is a wrapping TextBlock; GitLab text carries look-alikes for Markdown and `<`/`>`, so
//! it can neither format nor write `<at>`. Mentions are `<at>ID</at>` with their entity, from
//! `[mentions.teams]` (a Teams user id or UPN).

use super::chat::{cut, plain, write_runs, Markup, Parts, Platform};
use serde_json::{json, Value};

/// Largest body, in bytes of JSON (Teams refuses a card message over 28 KB).
pub const MAX_BODY_BYTES: usize = 27_000;
/// Most actions.
pub const MAX_ACTIONS: usize = 5;
/// Longest title kept.
pub const MAX_TITLE_CHARS: usize = 200;

const MARKUP: Markup = Markup {
    platform: Platform::Teams,
    bold: ("**", "**"),
    italic: ("_", "_"),
    // Adaptive Cards' Markdown has no strike-through.
    strike: ("", ""),
    link: |label, url| format!("[{label}]({url})"),
    mention: |id| format!("<at>{id}</at>"),
};

/// The text in Adaptive Cards' Markdown subset.
pub fn markdown(parts: &Parts) -> String {
    write_runs(parts, &MARKUP)
}

/// The Teams body of a card.
pub fn body(parts: &Parts) -> Value {
    let title = cut(&plain(Platform::Teams, parts.title.trim()), MAX_TITLE_CHARS);
    let mut blocks = Vec::new();
    if !title.is_empty() {
        blocks.push(json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true}));
    }
    for line in markdown(parts).split('\n').filter(|l| !l.trim().is_empty()) {
        blocks.push(json!({"type": "TextBlock", "text": line, "wrap": true}));
    }
    let actions: Vec<Value> = parts
        .buttons
        .iter()
        .take(MAX_ACTIONS)
        .map(|(label, url)| json!({"type": "Action.OpenUrl", "title": plain(Platform::Teams, label), "url": url}))
        .collect();
    let entities: Vec<Value> = parts
        .mentions()
        .iter()
        .map(|id| json!({"type": "mention", "text": format!("<at>{id}</at>"), "mentioned": {"id": id, "name": id}}))
        .collect();
    loop {
        let card = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": blocks,
                    "actions": actions,
                    "msteams": {"width": "Full", "entities": entities},
                },
            }],
        });
        if card.to_string().len() <= MAX_BODY_BYTES || blocks.len() <= 1 {
            return card;
        }
        // Over the size limit: drop text lines from the end, and say so.
        blocks.pop();
        if let Some(last) = blocks.last_mut() {
            if let Some(t) = last["text"].as_str() {
                last["text"] = json!(format!("{t} …"));
            }
        }
    }
}
