//! The Zoho Cliq message shape and its limits.
//!
//! A rendered template must be a JSON object with a non-empty `text`. Everything Cliq caps is cut
//! here, after rendering, so no template can produce a message Cliq would refuse for its size:
//! `text` ≤ 5 000 characters, card title ≤ 200, ≤ 5 buttons with labels ≤ 20 and URLs ≤ 256,
//! ≤ 20 slides totalling ≤ 10 000 characters.

use super::helpers::truncate;
use serde_json::{Map, Value};

/// Longest `text` Cliq accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Longest card title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most buttons on one message.
pub const MAX_BUTTONS: usize = 5;
/// Longest button label, in characters.
pub const MAX_BUTTON_LABEL_CHARS: usize = 20;
/// Longest button URL, in characters.
pub const MAX_BUTTON_URL_CHARS: usize = 256;
/// Most slides on one message.
pub const MAX_SLIDES: usize = 20;
/// Most characters across all slides (their JSON text).
pub const MAX_SLIDES_CHARS: usize = 10_000;
/// Card themes Cliq documents today.
pub const THEMES: [&str; 3] = ["modern-inline", "poll", "prompt"];

/// A message ready to post: a JSON object that fits Cliq's shape and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Message(Map<String, Value>);

impl Message {
    /// The message as JSON.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// The `text` field.
    pub fn text(&self) -> &str {
        self.0
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Checks a rendered value against the Cliq shape, cutting what is too long.
pub fn shape(v: Value) -> Result<Message, String> {
    let Value::Object(mut m) = v else {
        return Err("output must be a JSON object".into());
    };
    let text = match m.get("text") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None => return Err("output has no \"text\"".into()),
        Some(_) => return Err("\"text\" must be a string".into()),
    };
    m.insert(
        "text".into(),
        Value::String(cut_text(&text, MAX_TEXT_CHARS)),
    );

    if let Some(card) = m.get_mut("card") {
        let Value::Object(card) = card else {
            return Err("\"card\" must be an object".into());
        };
        match card.get("title") {
            Some(Value::String(t)) => {
                let t = truncate(t.trim(), MAX_TITLE_CHARS);
                card.insert("title".into(), Value::String(t));
            }
            None => return Err("\"card\" needs a \"title\"".into()),
            Some(_) => return Err("\"card.title\" must be a string".into()),
        }
        if let Some(theme) = card.get("theme") {
            if !theme.as_str().is_some_and(|t| THEMES.contains(&t)) {
                return Err(format!(
                    "\"card.theme\" must be one of {}, not {theme}",
                    THEMES.join(", ")
                ));
            }
        }
    }

    if let Some(b) = m.get_mut("buttons") {
        let Value::Array(buttons) = b else {
            return Err("\"buttons\" must be an array".into());
        };
        buttons.retain(button_fits);
        buttons.truncate(MAX_BUTTONS);
        for button in buttons.iter_mut() {
            if let Some(Value::String(label)) = button.get("label").cloned() {
                button["label"] = Value::String(truncate(&label, MAX_BUTTON_LABEL_CHARS));
            }
        }
        if buttons.is_empty() {
            m.remove("buttons");
        }
    }

    if let Some(s) = m.get_mut("slides") {
        let Value::Array(slides) = s else {
            return Err("\"slides\" must be an array".into());
        };
        slides.truncate(MAX_SLIDES);
        while slides.len() > 1 && slides_chars(slides) > MAX_SLIDES_CHARS {
            slides.pop();
        }
        if slides_chars(slides) > MAX_SLIDES_CHARS {
            slides.clear();
        }
        if slides.is_empty() {
            m.remove("slides");
        }
    }
    Ok(Message(m))
}

/// A button survives when it has a label and, for URL actions, a usable URL within Cliq's limit.
fn button_fits(b: &Value) -> bool {
    let has_label = b
        .get("label")
        .and_then(Value::as_str)
        .is_some_and(|l| !l.trim().is_empty());
    let url = b.pointer("/action/data/web").and_then(Value::as_str);
    has_label && url.is_none_or(|u| !u.is_empty() && u.chars().count() <= MAX_BUTTON_URL_CHARS)
}

fn slides_chars(slides: &[Value]) -> usize {
    slides.iter().map(|s| s.to_string().chars().count()).sum()
}

/// Cuts long text at a line break when one is near the end, so no line (or link) is left half.
fn cut_text(s: &str, max: usize) -> String {
    let s = s.trim_end();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let marker = "\n…";
    let budget = max - marker.chars().count();
    let head: String = s.chars().take(budget).collect();
    let floor = budget * 4 / 5;
    match head.rfind('\n') {
        Some(i) if head[..i].chars().count() >= floor => format!("{}{marker}", &head[..i]),
        _ => truncate(s, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_enforced() {
        let long = "x".repeat(12_000);
        let buttons: Vec<Value> = (0..8)
            .map(|i| json!({"label": format!("button number {i} with a long label"), "type": "+", "action": {"type": "open.url", "data": {"web": "https://example.com"}}}))
            .collect();
        let m = shape(
            json!({"text": long, "card": {"title": long, "theme": "modern-inline"}, "buttons": buttons}),
        );
        let m = match m {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(m.text().chars().count(), MAX_TEXT_CHARS);
        let map = m.as_map();
        assert_eq!(
            map["card"]["title"].as_str().map(|t| t.chars().count()),
            Some(MAX_TITLE_CHARS)
        );
        assert_eq!(map["buttons"].as_array().map(Vec::len), Some(MAX_BUTTONS));
        assert!(map["buttons"][0]["label"]
            .as_str()
            .is_some_and(|l| l.chars().count() <= 20));
    }

    #[test]
    fn text_is_cut_at_a_line_break() {
        let lines: Vec<String> = (0..400)
            .map(|i| format!("line {i} [link](https://e.x/{i})"))
            .collect();
        let out = cut_text(&lines.join("\n"), MAX_TEXT_CHARS);
        assert!(out.chars().count() <= MAX_TEXT_CHARS);
        assert!(out.ends_with("\n…"));
        let last_line = out.lines().rev().nth(1).unwrap_or_default();
        assert!(last_line.ends_with(')'), "{last_line}");
    }

    #[test]
    fn bad_shapes_are_reported() {
        assert!(shape(json!([])).is_err());
        assert!(shape(json!({"card": {"title": "t"}})).is_err());
        assert!(shape(json!({"text": "t", "card": {"title": "t", "theme": "1"}})).is_err());
        assert!(shape(json!({"text": "t", "card": {"theme": "poll"}})).is_err());
    }
}
