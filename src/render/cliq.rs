//! The Zoho Cliq message shape and its limits.
//!
//! A rendered template must be a JSON object with a non-empty `text`. Everything Cliq caps is cut
//! here, after rendering, so no template can produce a message Cliq would refuse for its size:
//! `text` ≤ 5 000 characters, card title ≤ 200, ≤ 5 buttons with labels ≤ 20 and URLs ≤ 256,
//! ≤ 20 slides totalling ≤ 10 000 characters.
//!
//! This module is the only builder of Cliq message bodies outside the templates: the digest that
//! stands for a backlog ([`digest`]) and the message that stands for an event whose template
//! failed ([`fallback`]) are built here from typed parts, with every GitLab value neutralised
//! ([`escape::neutralize`](super::escape::neutralize)) and the result held to the same [`shape`].

use super::escape::neutralize;
use super::helpers::truncate;
use crate::event::Event;
use serde_json::{json, Map, Value};
use std::fmt::Display;

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
/// Longest fallback message text, in characters: enough for the template error, short in a channel.
pub const MAX_FALLBACK_CHARS: usize = 1_000;
/// Separator between the messages of a digest.
const DIGEST_SEPARATOR: &str = "\n\n";

/// A message ready to post: a JSON object that fits Cliq's shape and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Message(Map<String, Value>);

impl Message {
    /// A body built and held to its limits by one of the other kinds' builders
    /// ([`super::chat::Platform::body`]).
    pub(crate) fn from_map(m: Map<String, Value>) -> Message {
        Message(m)
    }

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

/// Combines the leading `bodies` (rendered Cliq messages, oldest first) into one digest message
/// for a channel whose backlog is larger than its credential may post in a minute. Returns the
/// body and how many messages it stands for: at least one, as many as fit in Cliq's `text`
/// limit. One message alone is returned as it was rendered.
///
/// Each message becomes its card title in bold (neutralised: a title is GitLab text that the
/// templates only JSON-escape, since Cliq shows titles literally) followed by its text, which
/// the renderer already escaped.
pub fn digest(bodies: &[&str]) -> (String, usize) {
    let Some(first) = bodies.first() else {
        return (String::new(), 0);
    };
    let mut text = String::new();
    let mut chars = 0;
    let mut used = 0;
    for body in bodies {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let part_text = v["text"].as_str().unwrap_or_default();
        let part = match v["card"]["title"].as_str().filter(|t| !t.trim().is_empty()) {
            Some(title) => format!("*{}*\n{part_text}", neutralize(title.trim())),
            None => part_text.to_string(),
        };
        let part_chars = part.chars().count() + DIGEST_SEPARATOR.len();
        if used > 0 && chars + part_chars > MAX_TEXT_CHARS {
            break;
        }
        if used > 0 {
            text.push_str(DIGEST_SEPARATOR);
        }
        text.push_str(&part);
        chars += part_chars;
        used += 1;
    }
    if used == 1 {
        return ((*first).to_string(), 1);
    }
    let digest = json!({
        "text": text,
        "card": {
            "title": format!("{used} updates (digest: more were waiting than the rate limit allows)"),
            "theme": "modern-inline",
        },
    });
    match shape(digest) {
        Ok(m) => (m.to_json(), used),
        // Only when no message had any text: post them one by one instead.
        Err(_) => ((*first).to_string(), 1),
    }
}

/// The plain message a channel receives instead of `event` when its template failed with
/// `error`: what could not be rendered, where and by whom, and why. Every part is neutralised.
pub fn fallback(event: &Event, error: &dyn Display) -> Message {
    let project = if event.project.path.is_empty() {
        String::new()
    } else {
        format!(" in {}", neutralize(&event.project.path))
    };
    let text = format!(
        "gitlab-chat-bridge could not render {}{project} by {}: {}",
        neutralize(&event.key),
        neutralize(&event.actor.name),
        neutralize(&error.to_string())
    );
    text_only(&text)
}

/// A message of `text` alone, cut to [`MAX_FALLBACK_CHARS`]: the render-error fallback, and what
/// an alert card falls back to.
fn text_only(text: &str) -> Message {
    let mut m = Map::new();
    m.insert(
        "text".into(),
        Value::String(truncate(text, MAX_FALLBACK_CHARS)),
    );
    Message(m)
}

/// An operator's alert card: `title` (neutralised by the caller) over `text`, with `buttons`
/// if any; [`text_only`] when it does not take Cliq's shape.
fn alert_card(title: &str, text: &str, buttons: Option<Value>) -> Message {
    let mut v = json!({
        "text": text,
        "card": {"title": truncate(title, MAX_FALLBACK_CHARS), "theme": "modern-inline"},
    });
    if let Some(b) = buttons {
        v["buttons"] = b;
    }
    shape(v).unwrap_or_else(|_| text_only(text))
}

/// A button that invokes the extension's `function` with `key` (`mute:…`, `retry:…`).
fn function_button(label: &str, kind: &str, hint: &str, function: &str, key: String) -> Value {
    json!({
        "label": label,
        "type": kind,
        "hint": hint,
        "action": {"type": "invoke.function", "data": {"name": function}},
        "key": key,
    })
}

/// Label of the *Mute* button on merge request and issue cards in subscribed chats.
pub const MUTE_LABEL: &str = "Mute";
/// Prefix of the *Mute* button's key; the rest is what it mutes (`group/project!12`).
pub const MUTE_KEY_PREFIX: &str = "mute:";
/// Most rows in one table slide of an answer; longer lists take several slides.
pub const ROWS_PER_SLIDE: usize = 10;

/// `body` (a rendered message) with a *Mute* button that invokes the extension's `function`
/// with the key `mute:<subject>`; when the message already has the most buttons Cliq takes, the
/// last one gives way. A body that is not a message object is returned as it was.
pub fn with_mute_button(body: &str, function: &str, subject: &str) -> String {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let button = function_button(
        MUTE_LABEL,
        "-",
        &truncate(&format!("Stop posting about {subject} in this chat"), 100),
        function,
        format!("{MUTE_KEY_PREFIX}{subject}"),
    );
    let buttons = m
        .entry("buttons")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = buttons {
        list.truncate(MAX_BUTTONS - 1);
        list.push(button);
    }
    match shape(Value::Object(m)) {
        Ok(message) => message.to_json(),
        Err(_) => body.to_string(),
    }
}

/// A table in an answer: column titles, and rows of cells in the same order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column titles.
    pub headers: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

/// An answer of the Cliq extension (`/gitlab …`): a card with `title` and `text`, and the
/// `table`'s rows as table slides of at most [`ROWS_PER_SLIDE`] rows each. `text` is markup the
/// caller composed, with every value from GitLab or the user passed through [`plain`] first;
/// the title and the table's cells are neutralised here.
pub fn answer(title: &str, text: &str, table: Option<&Table>) -> Message {
    let mut m = Map::new();
    m.insert("text".into(), Value::String(text.to_string()));
    m.insert(
        "card".into(),
        json!({"title": neutralize(title), "theme": "modern-inline"}),
    );
    if let Some(t) = table.filter(|t| !t.rows.is_empty()) {
        let headers: Vec<String> = t.headers.iter().map(|h| neutralize(h)).collect();
        let slides: Vec<Value> = t
            .rows
            .chunks(ROWS_PER_SLIDE)
            .map(|chunk| {
                let rows: Vec<Value> = chunk
                    .iter()
                    .map(|row| {
                        let cells: Map<String, Value> = headers
                            .iter()
                            .zip(row)
                            .map(|(h, v)| (h.clone(), Value::String(neutralize(v))))
                            .collect();
                        Value::Object(cells)
                    })
                    .collect();
                json!({"type": "table", "data": {"headers": headers, "rows": rows}})
            })
            .collect();
        m.insert("slides".into(), Value::Array(slides));
    }
    match shape(Value::Object(m)) {
        Ok(message) => message,
        // Only an empty text gets here; the title says it.
        Err(_) => {
            let mut m = Map::new();
            m.insert("text".into(), Value::String(neutralize(title)));
            Message(m)
        }
    }
}

/// `s` (text from GitLab or a user) made safe to put in an answer's markup.
pub fn plain(s: &str) -> String {
    neutralize(s)
}

/// The card `serve` posts to `gitlab.ops_channel` when GitLab changes a managed hook's
/// `alert_status` (`executable`, `temporarily_disabled`, `disabled`): which hook, what GitLab
/// does now, until when, and what to do. Every part from GitLab is neutralised.
pub fn hook_alert(
    project: &str,
    hook_id: u64,
    alert_status: &str,
    disabled_until: Option<&str>,
) -> Message {
    let (icon, what, advice) = match alert_status {
        "executable" => (
            "✅",
            "is enabled again: GitLab delivers to the bridge",
            "Run `gitlab-chat-bridge catch-up` if deliveries failed meanwhile.",
        ),
        "temporarily_disabled" => (
            "⚠️",
            "is temporarily disabled after failed deliveries",
            "GitLab retries it later; `gitlab-chat-bridge setup --repair` re-enables it now.",
        ),
        _ => (
            "🛑",
            "is disabled: GitLab no longer delivers to the bridge",
            "Fix the cause, then run `gitlab-chat-bridge setup --repair` and `catch-up`.",
        ),
    };
    let until = disabled_until
        .filter(|u| !u.trim().is_empty())
        .map(|u| format!(" until {}", neutralize(u)))
        .unwrap_or_default();
    let text = format!(
        "{icon} The bridge's webhook #{hook_id} on {} {what}{until} (alert_status: {}).\n{advice}",
        neutralize(project),
        neutralize(alert_status)
    );
    // GitLab's three states read as they are; anything else is hostile text like the rest.
    let status = match alert_status {
        "executable" | "temporarily_disabled" | "disabled" => alert_status.to_string(),
        other => neutralize(other),
    };
    let title = format!("Webhook #{hook_id} on {}: {status}", neutralize(project));
    alert_card(&title, &text, None)
}

/// Label of the *Retry* button on dead-letter alerts.
pub const RETRY_LABEL: &str = "Retry";
/// Prefix of the *Retry* button's key; the rest is the dead letter's message id.
pub const RETRY_KEY_PREFIX: &str = "retry:";
/// Most characters of a dead letter's last error shown in its alert.
pub const MAX_DEAD_ERROR_CHARS: usize = 500;

/// The card `serve` posts to `gitlab.ops_channel` when a message becomes a dead letter: its
/// channel, its message id, the last status and error (from the chat server, so neutralised and
/// cut), and what to do. With `retry_function` (the extension's `button_function`) it carries a
/// *Retry* button with the key `retry:<id>`.
pub fn dead_letter_alert(
    channel: &str,
    id: i64,
    status: Option<u16>,
    error: &str,
    retry_function: Option<&str>,
) -> Message {
    let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    let error = neutralize(&truncate(error.trim(), MAX_DEAD_ERROR_CHARS));
    let advice = if retry_function.is_some() {
        format!("Press *{RETRY_LABEL}* or run `gitlab-chat-bridge outbox retry {id}` once the cause is fixed.")
    } else {
        format!("Run `gitlab-chat-bridge outbox retry {id}` once the cause is fixed.")
    };
    let text = format!(
        "🛑 A message for channel {} was given up and kept as dead letter {id}{status}.\nLast error: {error}\n{advice}",
        neutralize(channel)
    );
    let title = format!("Dead letter {id} in {}", neutralize(channel));
    let retry = retry_function.map(|function| {
        json!([function_button(
            RETRY_LABEL,
            "+",
            "Make this message due again",
            function,
            format!("{RETRY_KEY_PREFIX}{id}"),
        )])
    });
    alert_card(&title, &text, retry)
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
    use crate::event::parse;
    use crate::render::{DateSettings, Rendered, Renderer};
    use serde_json::json;
    use std::sync::Arc;

    /// GitLab text that would mention, bold or link if it reached Cliq live.
    const HOSTILE: [&str; 4] = ["{@all}", "{@12345}", "*bold*", "[x](http://evil)"];

    fn hostile_text() -> String {
        format!("{} {}", HOSTILE.join(" "), "y".repeat(10_000))
    }

    fn renderer() -> Renderer {
        let dates = DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y %I:%M %p".into(),
            day_format: "%d-%b-%Y".into(),
            clock: Arc::new(chrono::Utc::now),
        };
        match Renderer::new(Vec::new(), dates, false) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Events whose titles, descriptions and branch names (10 000 characters), people and
    /// project (short, so a fallback shows them whole) hold [`HOSTILE`] text.
    fn hostile_events() -> Vec<Event> {
        let h = hostile_text();
        let short = HOSTILE.join(" ");
        let user = json!({"name": short, "username": "{@all}"});
        let project = json!({"id": 1, "name": short, "path_with_namespace": short,
            "web_url": "https://g.test/a/b"});
        let bodies = [
            (
                "Issue Hook",
                json!({"object_kind": "issue", "user": user, "project": project,
                "object_attributes": {"action": "open", "iid": 1, "title": h, "description": h,
                "url": "https://g.test/a/b/-/issues/1"}, "labels": [{"title": h}]}),
            ),
            (
                "Merge Request Hook",
                json!({"object_kind": "merge_request", "user": user, "project": project,
                "object_attributes": {"action": "open", "iid": 2, "title": h, "source_branch": h,
                "target_branch": "main", "url": "https://g.test/a/b/-/merge_requests/2"}}),
            ),
            (
                "Note Hook",
                json!({"object_kind": "note", "user": user, "project": project,
                "object_attributes": {"noteable_type": "Issue", "note": h, "url": "https://g.test/a/b/-/issues/1#note_1"},
                "issue": {"iid": 1, "title": h}}),
            ),
        ];
        bodies
            .into_iter()
            .map(|(header, body)| match parse(Some(header), body) {
                Ok(e) => e,
                Err(e) => panic!("{e}"),
            })
            .collect()
    }

    /// Asserts that `body` is a Cliq message within every limit whose `text` (what Cliq reads as
    /// markup) holds none of [`HOSTILE`] live.
    fn assert_inert_and_within_limits(body: &str) {
        let v: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {body}"),
        };
        let Ok(again) = shape(v.clone()) else {
            panic!("not a Cliq message: {body}")
        };
        assert_eq!(Value::Object(again.as_map().clone()), v, "over a limit");
        for h in HOSTILE {
            assert!(!again.text().contains(h), "{h} is live in {body}");
        }
    }

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
    fn digests_neutralise_titles_and_keep_within_limits() {
        let r = renderer();
        let mut bodies: Vec<String> = hostile_events()
            .iter()
            .map(|e| match r.render(e) {
                Ok(Rendered::Message(m, _)) => m.to_json(),
                other => panic!("{}: {other:?}", e.key),
            })
            .collect();
        // A card title is only JSON-escaped by the templates: the digest must neutralise it.
        let raw_title =
            json!({"text": "t", "card": {"title": HOSTILE.join(" "), "theme": "modern-inline"}});
        bodies.insert(0, raw_title.to_string());
        bodies.insert(1, json!({"text": "short"}).to_string());
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let (combined, used) = digest(&refs);
        assert!(used >= 2, "{used}");
        assert_inert_and_within_limits(&combined);
        for h in HOSTILE {
            assert!(!combined.contains(h), "{h} is live in {combined}");
        }
        assert!(
            combined.contains("{＠all}"),
            "the title is readable: {combined}"
        );
        // The rest follow in later digests, each inert too.
        let (next, _) = digest(&refs[used..]);
        assert_inert_and_within_limits(&next);
    }

    #[test]
    fn digests_keep_order_and_fit_the_limit() {
        let a = r#"{"text":"first","card":{"title":"A","theme":"modern-inline"}}"#;
        let b = r#"{"text":"second"}"#;
        let (body, used) = digest(&[a, b]);
        assert_eq!(used, 2);
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["text"], "*A*\nfirst\n\nsecond");
        assert!(v["card"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("2 updates")));

        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(3000));
        let (_, used) = digest(&[&long, &long, &long]);
        assert_eq!(used, 1);
        let (alone, used) = digest(&[a]);
        assert_eq!((alone.as_str(), used), (a, 1));
    }

    #[test]
    fn fallbacks_neutralise_the_actor_project_and_error() {
        for e in hostile_events() {
            let m = fallback(
                &e,
                &format!("template issue.hbs:1:2: {}", HOSTILE.join(" ")),
            );
            assert_inert_and_within_limits(&m.to_json());
            assert_eq!(m.as_map().len(), 1, "text only");
            assert!(m.text().starts_with("gitlab-chat-bridge could not render"));
            assert!(m.text().chars().count() <= MAX_FALLBACK_CHARS);
        }
    }

    #[test]
    fn dead_letter_alerts_are_inert_and_carry_the_retry_button() {
        let error = format!("400 Bad Request: {}", hostile_text());
        let m = dead_letter_alert("chat:{@all}", 42, Some(400), &error, Some("gitlabbridge"));
        assert_inert_and_within_limits(&m.to_json());
        let map = m.as_map();
        assert!(
            m.text().contains("dead letter 42 (HTTP 400)"),
            "{}",
            m.text()
        );
        assert!(m.text().contains("outbox retry 42"), "{}", m.text());
        assert!(m.text().contains("{＠all}"), "readable: {}", m.text());
        assert!(
            m.text().chars().count() < MAX_DEAD_ERROR_CHARS + 400,
            "the error is cut"
        );
        assert!(!map["card"]["title"].to_string().contains("{@all}"));
        assert_eq!(map["buttons"][0]["key"], "retry:42");
        assert_eq!(map["buttons"][0]["action"]["type"], "invoke.function");
        assert_eq!(map["buttons"][0]["action"]["data"]["name"], "gitlabbridge");
        let without = dead_letter_alert("ops", 7, None, "timed out", None);
        assert!(!without.as_map().contains_key("buttons"));
        assert!(without.text().contains("outbox retry 7"));
    }

    #[test]
    fn bad_shapes_are_reported() {
        assert!(shape(json!([])).is_err());
        assert!(shape(json!({"card": {"title": "t"}})).is_err());
        assert!(shape(json!({"text": "t", "card": {"title": "t", "theme": "1"}})).is_err());
        assert!(shape(json!({"text": "t", "card": {"theme": "poll"}})).is_err());
    }
}
