//! The properties every GitLab payload must satisfy, shared by the fuzz target
//! (`fuzz_targets/parse_render.rs`) and the property tests (`tests/properties.rs`, which includes
//! this file with `#[path]`), so both hold the code to the same rules:
//!
//! - `event::parse` returns `Ok` for every JSON object and `NotAnObject` for anything else;
//! - the built-in templates render every event without an error;
//! - every message is a JSON object that passes the Cliq shape check written here, independently
//!   of `render::cliq`'s code but with the limits it exports, the one place Cliq's limits are
//!   written (text ≤ 5 000 characters, card title ≤ 200, theme in modern-inline/poll/prompt, 1–5
//!   buttons with labels of 1–20 characters and http(s) URLs of at most 256, ≤ 20 slides
//!   totalling ≤ 10 000 characters; `tests/cliq_schema.rs` holds the messages to Zoho's own
//!   schema);
//! - no `{@` (a Cliq mention) outside the card title, which is not markup by design
//!   (docs/ARCHITECTURE.md, "Escaping"), and no `{{` unless the payload itself contained `{{`;
//! - an issue's, merge request's or pipeline's conversation root card (its `KIND.root` template
//!   over the state the event gives) holds to the same rules as the event's message;
//! - the fallback message a channel would get if the event's template failed, and a digest of
//!   several rendered messages ([`check_digest`]), pass the same shape check with no `{@` at all,
//!   card titles included (they are GitLab text that moved into `text`).
//!
//! Panics in the code under test are left to the caller's harness (libFuzzer or proptest).

use chrono::{TimeZone, Utc};
use gitlab_chat_bridge::event::{self, ParseError};
use gitlab_chat_bridge::render::cliq::{
    self, MAX_BUTTONS, MAX_BUTTON_LABEL_CHARS, MAX_BUTTON_URL_CHARS, MAX_SLIDES, MAX_SLIDES_CHARS,
    MAX_TEXT_CHARS, MAX_TITLE_CHARS, THEMES,
};
use gitlab_chat_bridge::render::{DateSettings, Rendered, Renderer};
use serde_json::Value;
use std::sync::Arc;

/// A renderer with the built-in templates, a fixed clock and a zone with a half-hour offset.
pub fn renderer() -> Renderer {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let dates = DateSettings {
        timezone: chrono_tz::Asia::Kolkata,
        date_format: "%d-%b-%Y %I:%M %p".into(),
        day_format: "%d-%b-%Y".into(),
        clock: Arc::new(move || now),
    };
    match Renderer::new(Vec::new(), dates, false) {
        Ok(r) => r,
        Err(e) => panic!("built-in templates do not compile: {e:?}"),
    }
}

/// Splits fuzz input into an `X-Gitlab-Event` header and a body: when the input starts with
/// anything but `{`, its first line is the header (an empty first line means no header).
pub fn split_input(data: &[u8]) -> (Option<String>, &[u8]) {
    if data.first() == Some(&b'{') {
        return (None, data);
    }
    match data.iter().position(|&b| b == b'\n') {
        Some(0) => (None, &data[1..]),
        Some(i) => (
            Some(String::from_utf8_lossy(&data[..i]).into_owned()),
            &data[i + 1..],
        ),
        None => (None, data),
    }
}

/// Whether any string (or key) in `v` contains `needle`.
pub fn contains_text(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| contains_text(x, needle)),
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| k.contains(needle) || contains_text(x, needle)),
        _ => false,
    }
}

fn chars(v: &Value) -> Option<usize> {
    v.as_str().map(|s| s.chars().count())
}

fn is_web_url(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://"))
        && u.chars().count() <= MAX_BUTTON_URL_CHARS
        && !u.chars().any(char::is_whitespace)
}

/// What Cliq would refuse in `m`, and mentions or template syntax that leaked into it; empty
/// when all is well. `payload_has_braces`: the payload had `{{` somewhere in its text.
pub fn violations(m: &Value, payload_has_braces: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(obj) = m.as_object() else {
        return vec!["not a JSON object".into()];
    };
    match obj.get("text") {
        Some(Value::String(t)) if t.trim().is_empty() => bad.push("blank text".into()),
        Some(Value::String(t)) if t.chars().count() > MAX_TEXT_CHARS => {
            bad.push(format!("text has {} characters", t.chars().count()));
        }
        Some(Value::String(_)) => {}
        other => bad.push(format!("text is {other:?}")),
    }
    if let Some(card) = obj.get("card") {
        match chars(&card["title"]) {
            Some(n) if n > MAX_TITLE_CHARS => bad.push(format!("card title has {n} characters")),
            Some(_) => {}
            None => bad.push(format!("card without a string title: {card}")),
        }
        if let Some(theme) = card.get("theme") {
            if !theme.as_str().is_some_and(|t| THEMES.contains(&t)) {
                bad.push(format!("card theme {theme}"));
            }
        }
    }
    if let Some(buttons) = obj.get("buttons") {
        match buttons.as_array() {
            Some(list) if list.is_empty() || list.len() > MAX_BUTTONS => {
                bad.push(format!("{} buttons", list.len()));
            }
            Some(list) => {
                for b in list {
                    match chars(&b["label"]) {
                        Some(n) if (1..=MAX_BUTTON_LABEL_CHARS).contains(&n) => {}
                        _ => bad.push(format!("button label {}", b["label"])),
                    }
                    if let Some(web) = b.pointer("/action/data/web") {
                        if !web.as_str().is_some_and(is_web_url) {
                            bad.push(format!("button URL {web}"));
                        }
                    }
                }
            }
            None => bad.push("buttons is not an array".into()),
        }
    }
    if let Some(slides) = obj.get("slides") {
        match slides.as_array() {
            Some(list) => {
                let total: usize = list.iter().map(|s| s.to_string().chars().count()).sum();
                if list.len() > MAX_SLIDES || total > MAX_SLIDES_CHARS {
                    bad.push(format!("{} slides, {total} characters", list.len()));
                }
            }
            None => bad.push("slides is not an array".into()),
        }
    }
    // A mention is only possible outside the card title (titles are not markup, by design).
    let mut outside_title = m.clone();
    if let Some(card) = outside_title.get_mut("card").and_then(Value::as_object_mut) {
        card.remove("title");
    }
    if contains_text(&outside_title, "{@") {
        bad.push("a `{@` mention survived".into());
    }
    if !payload_has_braces && contains_text(m, "{{") {
        bad.push("`{{` in the output but not in the payload".into());
    }
    bad
}

/// Parses and renders one payload and checks every property; `Err` says which one failed.
pub fn check(r: &Renderer, header: Option<&str>, body: Value) -> Result<(), String> {
    let is_object = body.is_object();
    let payload_has_braces = contains_text(&body, "{{");
    let event = match (event::parse(header, body), is_object) {
        (Ok(e), true) => e,
        (Err(ParseError::NotAnObject(_)), false) => return Ok(()),
        (Err(e), _) => return Err(format!("an object did not parse: {e}")),
        (Ok(e), false) => return Err(format!("a non-object parsed as {}", e.key)),
    };
    // The object's conversation root card (from the state the event alone gives) holds to the
    // same rules as the event's message.
    if let Some(state) = event::state::ObjectState::of(&event) {
        match r.render_root(&state) {
            Ok(Rendered::Message(m, name)) => {
                let json = m.to_json();
                let value: Value = serde_json::from_str(&json)
                    .map_err(|e| format!("{name}: invalid JSON ({e}): {json}"))?;
                let bad = violations(&value, payload_has_braces);
                if !bad.is_empty() {
                    return Err(format!("{name}: {}\nmessage: {json}", bad.join("; ")));
                }
            }
            Ok(Rendered::Skipped(_) | Rendered::NoTemplate) => {}
            Err(e) => return Err(format!("{}: root card render error: {e}", event.key)),
        }
    }
    let (message, template) = match r.render(&event) {
        Ok(Rendered::Message(m, template)) => (m, template),
        Ok(Rendered::Skipped(_) | Rendered::NoTemplate) => return Ok(()),
        Err(e) => return Err(format!("{}: render error: {e}", event.key)),
    };
    let json = message.to_json();
    let value: Value = serde_json::from_str(&json)
        .map_err(|e| format!("{template}: invalid JSON ({e}): {json}"))?;
    let bad = violations(&value, payload_has_braces);
    if !bad.is_empty() {
        return Err(format!("{template}: {}\nmessage: {json}", bad.join("; ")));
    }
    // The message this channel would get instead, had the template failed with an error that
    // quotes GitLab text.
    let error = format!("template {template}:1:1: {{@all}} *{}*", event.actor.name);
    inert(&cliq::fallback(&event, &error).to_json(), "fallback")
}

/// A digest of `bodies` (rendered messages, oldest first) is a valid Cliq message with no `{@`
/// anywhere, standing for at least one and at most all of them.
pub fn check_digest(bodies: &[String]) -> Result<(), String> {
    if bodies.is_empty() {
        return Ok(());
    }
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let (digest, used) = cliq::digest(&refs);
    if used == 0 || used > bodies.len() {
        return Err(format!("a digest of {} stands for {used}", bodies.len()));
    }
    if used == 1 {
        return Ok(());
    }
    inert(&digest, "digest")
}

/// `json` is a valid Cliq message with no `{@` anywhere.
fn inert(json: &str, what: &str) -> Result<(), String> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("{what}: invalid JSON ({e}): {json}"))?;
    let mut bad = violations(&value, true);
    if contains_text(&value, "{@") {
        bad.push("a `{@` mention".into());
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}\nmessage: {json}", bad.join("; ")))
    }
}
