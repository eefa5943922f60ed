//! Digest cards: when a channel's backlog is larger than its credential may post in a minute,
//! its oldest messages are combined into one Cliq message instead of waiting their turn one by
//! one (or being dropped). The digest lists each message's title and text, in order.

use serde_json::{json, Value};

/// Longest digest text, in characters (Cliq's limit for `text`).
const MAX_TEXT_CHARS: usize = 5_000;
/// Separator between the messages of a digest.
const SEPARATOR: &str = "\n\n";

/// Combines the leading `bodies` (Cliq message JSON) into one digest. Returns the digest and how
/// many bodies it holds (at least one; as many as fit in Cliq's text limit).
pub fn combine(bodies: &[&str]) -> (String, usize) {
    let mut text = String::new();
    let mut chars = 0;
    let mut used = 0;
    for body in bodies {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let part_text = v["text"].as_str().unwrap_or_default();
        let part = match v["card"]["title"].as_str().filter(|t| !t.is_empty()) {
            Some(title) => format!("*{}*\n{part_text}", title.replace('*', "\u{2217}")),
            None => part_text.to_string(),
        };
        let part_chars = part.chars().count() + SEPARATOR.len();
        if used > 0 && chars + part_chars > MAX_TEXT_CHARS {
            break;
        }
        if used > 0 {
            text.push_str(SEPARATOR);
        }
        text.push_str(&part);
        chars += part_chars;
        used += 1;
    }
    if used == 1 {
        // One message alone is posted as it was rendered.
        return (bodies[0].to_string(), 1);
    }
    let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
    let body = json!({
        "text": text,
        "card": {
            "title": format!("{used} updates (digest: more were waiting than the rate limit allows)"),
            "theme": "modern-inline",
        },
    });
    (body.to_string(), used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_keep_order_and_fit_the_limit() {
        let a = r#"{"text":"first","card":{"title":"A","theme":"modern-inline"}}"#;
        let b = r#"{"text":"second"}"#;
        let (body, used) = combine(&[a, b]);
        assert_eq!(used, 2);
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["text"], "*A*\nfirst\n\nsecond");
        assert!(v["card"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("2 updates")));

        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(3000));
        let (_, used) = combine(&[&long, &long, &long]);
        assert_eq!(used, 1);
        let (alone, used) = combine(&[a]);
        assert_eq!((alone.as_str(), used), (a, 1));
    }
}
