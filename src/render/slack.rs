//! The Slack incoming-webhook body: Block Kit blocks with a `text` fallback.
//!
//! `{"text", "blocks": [header, section…, actions], "unfurl_links": false}`. Limits
//! (<https://docs.slack.dev/reference/block-kit/blocks>): `text` ≤ 40 000 characters (kept to
//! [`MAX_FALLBACK_CHARS`] for notifications), a header's text ≤ 150, a section's ≤ 3 000, ≤ 50
//! blocks, ≤ 25 elements in an actions block, a button's text ≤ 75 and URL ≤ 3 000. GitLab text
//! has `&`, `<` and `>` as entities, so it cannot write `<!channel>`, `<!here>`, `<@U…>` or a
//! link; mentions are `<@ID>` from `[mentions.slack]`.

use super::chat::{cut, plain, plain_text, write_runs, Markup, Parts, Platform};
use serde_json::{json, Value};

/// Longest header text.
pub const MAX_HEADER_CHARS: usize = 150;
/// Longest section text.
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Most blocks in a message.
pub const MAX_BLOCKS: usize = 50;
/// Most buttons in the actions block.
pub const MAX_BUTTONS: usize = 25;
/// Longest button text.
pub const MAX_BUTTON_TEXT_CHARS: usize = 75;
/// Longest button URL.
pub const MAX_URL_CHARS: usize = 3_000;
/// Longest `text` fallback kept (Slack takes 40 000; notifications show the start).
pub const MAX_FALLBACK_CHARS: usize = 4_000;

const MARKUP: Markup = Markup {
    platform: Platform::Slack,
    bold: ("*", "*"),
    italic: ("_", "_"),
    strike: ("~", "~"),
    link: |label, url| format!("<{}|{label}>", url_safe(url)),
    mention: |id| format!("<@{id}>"),
};

/// The text in Slack mrkdwn.
pub fn mrkdwn(parts: &Parts) -> String {
    write_runs(parts, &MARKUP)
}

/// A URL that cannot end Slack's `<url|label>` early.
fn url_safe(u: &str) -> String {
    u.replace('|', "%7C")
        .replace('>', "%3E")
        .replace('<', "%3C")
}

/// The Slack body of a card.
pub fn body(parts: &Parts) -> Value {
    let text = mrkdwn(parts);
    let title = cut(&plain_text(parts.title.trim()), MAX_HEADER_CHARS);
    let mut blocks = Vec::new();
    if !title.is_empty() {
        blocks.push(
            json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
        );
    }
    let reserve = usize::from(!parts.buttons.is_empty());
    let mut chunks = chunk(&text, MAX_SECTION_CHARS);
    chunks.truncate(MAX_BLOCKS - blocks.len() - reserve);
    for c in chunks {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": c}}));
    }
    let buttons: Vec<Value> = parts
        .buttons
        .iter()
        .filter(|(_, u)| u.chars().count() <= MAX_URL_CHARS)
        .take(MAX_BUTTONS)
        .map(|(label, url)| {
            json!({"type": "button", "text": {"type": "plain_text", "text": cut(&plain_text(label), MAX_BUTTON_TEXT_CHARS)}, "url": url})
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    let fallback = if title.is_empty() {
        text.clone()
    } else {
        format!("{}\n{text}", plain(Platform::Slack, parts.title.trim()))
    };
    json!({
        "text": cut(&fallback, MAX_FALLBACK_CHARS),
        "blocks": blocks,
        "unfurl_links": false,
    })
}

/// `s` in pieces of at most `max` characters, cut at line ends where possible.
pub fn chunk(s: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in s.split('\n') {
        let line_len = line.chars().count();
        if !cur.is_empty() && cur.chars().count() + 1 + line_len > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        if line_len > max {
            let mut rest: Vec<char> = line.chars().collect();
            while rest.len() > max {
                let tail = rest.split_off(max);
                out.push(rest.into_iter().collect());
                rest = tail;
            }
            cur.extend(rest);
        } else {
            cur.push_str(line);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}
