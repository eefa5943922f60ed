//! Zoho Cliq's message contract as the tests hold every message to it: the fake Cliq endpoint
//! refuses a post that breaks it, and the rendering tests check each message with it. Cliq's
//! limits come from the library (`render::cliq`), the one place they are written; Zoho's own
//! schema checks them in turn (`cliq_schema`).
//!
//! Besides Cliq's limits it holds what every message of ours carries: a card has a non-empty
//! title and a theme, and a button a label and an http(s) link.

use gitlab_chat_bridge::render::cliq::{
    MAX_BUTTONS, MAX_BUTTON_LABEL_CHARS, MAX_BUTTON_URL_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
    THEMES,
};
use serde_json::Value;

fn chars(v: &Value) -> Option<usize> {
    v.as_str().map(|s| s.chars().count())
}

/// What in message `m` breaks the contract; empty when nothing does.
pub fn cliq_violations(m: &Value) -> Vec<String> {
    let Some(obj) = m.as_object() else {
        return vec!["the message is not a JSON object".into()];
    };
    let mut v = Vec::new();
    match obj.get("text").map(chars) {
        Some(Some(n)) if (1..=MAX_TEXT_CHARS).contains(&n) => {}
        Some(Some(n)) => v.push(format!("text has {n} characters")),
        Some(None) => v.push("text is not a string".into()),
        None => v.push("text is missing".into()),
    }
    match obj.get("card") {
        None => {}
        Some(card @ Value::Object(_)) => {
            if !chars(&card["title"]).is_some_and(|n| (1..=MAX_TITLE_CHARS).contains(&n)) {
                v.push(format!("card.title {}", card["title"]));
            }
            if !card["theme"].as_str().is_some_and(|t| THEMES.contains(&t)) {
                v.push(format!(
                    "card.theme {} is not one of {THEMES:?}",
                    card["theme"]
                ));
            }
        }
        Some(_) => v.push("card is not an object".into()),
    }
    match obj.get("buttons") {
        None => {}
        Some(Value::Array(buttons)) => {
            if buttons.len() > MAX_BUTTONS {
                v.push(format!("{} buttons", buttons.len()));
            }
            for (i, b) in buttons.iter().enumerate() {
                v.extend(
                    button_violations(b)
                        .into_iter()
                        .map(|what| format!("buttons[{i}].{what}")),
                );
            }
        }
        Some(_) => v.push("buttons is not an array".into()),
    }
    v
}

/// What in one button breaks the contract.
fn button_violations(b: &Value) -> Vec<String> {
    let mut v = Vec::new();
    if !chars(&b["label"]).is_some_and(|n| (1..=MAX_BUTTON_LABEL_CHARS).contains(&n)) {
        v.push(format!("label {}", b["label"]));
    }
    if let Some(t) = b.get("type") {
        if !matches!(t.as_str(), Some("+" | "-")) {
            v.push(format!("type {t}"));
        }
    }
    // A button that invokes the extension's function names it; any other opens a URL.
    if b["action"]["type"] == "invoke.function" {
        let name = &b["action"]["data"]["name"];
        if name.as_str().is_none_or(|n| n.trim().is_empty()) {
            v.push(format!("action.data.name {name}"));
        }
        return v;
    }
    let web = &b["action"]["data"]["web"];
    let fits = web
        .as_str()
        .is_some_and(|u| u.starts_with("http") && u.chars().count() <= MAX_BUTTON_URL_CHARS);
    if !fits {
        v.push(format!("action.data.web {web}"));
    }
    v
}
