//! A fake Telegram Bot API on loopback that enforces the contract of `sendMessage` and
//! `editMessageText` as the daemon uses them, and can be scripted:
//!
//! - the token in the path (`/bot{TOKEN}/{method}`): a wrong token is 401 `Unauthorized`, a path
//!   without a bot token 404 `Not Found`, as Telegram answers;
//! - a JSON object with `chat_id` (an integer, or `@channelname`), `text`, `parse_mode: "HTML"`,
//!   optional `link_preview_options`, `message_thread_id`, `reply_parameters` and an
//!   `inline_keyboard` of URL buttons;
//! - the HTML parsed on its own terms (not the builder's code): only Telegram's tags, `a` with an
//!   `href` (http(s) or `tg://user?id=`), `span` only as `tg-spoiler`, tags nested and closed,
//!   `&` `<` `>` only as entities, named entities only `&lt; &gt; &amp; &quot;`, and 1–4 096
//!   characters after entity parsing (UTF-16 code units); anything else is 400 `Bad Request:
//!   can't parse entities: …` or `message is too long` / `message text is empty`;
//! - chats known by id or `@name` (others: 400 `chat not found`); scripted per chat: 429 with
//!   `parameters.retry_after` for the next N posts, a migration (400 with
//!   `parameters.migrate_to_chat_id`, for good), a removal (403 `Forbidden: bot was kicked from
//!   the supergroup chat`);
//! - `editMessageText` of a recorded message: 400 `message is not modified` when nothing changes.
//! - a `reply_parameters.message_id` of no message of the chat (or of one [`FakeTelegram::delete`]d),
//!   without `allow_sending_without_reply`: 400 `message to be replied not found`; an edit of a
//!   deleted message: 400 `message to edit not found`.
//!
//! Accepted messages are recorded per chat with their `message_id`; every request is logged with
//! what was wrong with it.

use super::fake_api::{wait, FakeApi};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bot token the fake accepts.
pub const TOKEN: &str = "123456789:AAH-fake-SECRET-telegram-token_xyz";
/// The tags Telegram's HTML parse mode knows.
const TAGS: [&str; 18] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
    "tg-time",
    "br",
];
/// The most characters of a message after entity parsing.
pub const MAX_TEXT: usize = 4_096;

/// A message the fake accepted.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its `message_id`.
    pub message_id: i64,
    /// The chat it went to, as the request named it.
    pub chat: String,
    /// The text as sent (HTML).
    pub html: String,
    /// The text after entity parsing.
    pub text: String,
    /// The whole request.
    pub body: Value,
    /// When it was accepted.
    pub at: Instant,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method (`sendMessage`, …) or the path when it was not one.
    pub method: String,
    /// The chat named, if any.
    pub chat: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Telegram's `description` when refused.
    pub description: Option<String>,
    /// When it came.
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    known: HashSet<String>,
    throttle: HashMap<String, (usize, u64)>,
    migrated: HashMap<String, String>,
    kicked: HashSet<String>,
    messages: Vec<Message>,
    requests: Vec<Request>,
    next_id: i64,
    deleted: HashSet<(String, i64)>,
}

/// The fake server.
pub struct FakeTelegram {
    api: FakeApi<Shared>,
}

impl FakeTelegram {
    /// Starts on 127.0.0.1, knowing the chats `chats` (ids or `@names`).
    pub async fn start(chats: &[&str]) -> FakeTelegram {
        FakeTelegram {
            api: FakeApi::start(
                Shared {
                    known: chats.iter().map(|c| c.to_string()).collect(),
                    next_id: 1,
                    ..Shared::default()
                },
                handle,
            )
            .await,
        }
    }

    /// Deletes message `id` of `chat`, as a person in the chat would: replies to it and edits of
    /// it are refused from now on (it stays in [`FakeTelegram::messages`]).
    pub fn delete(&self, chat: &str, id: i64) {
        let mut s = self.api.state();
        s.deleted.insert((chat.to_string(), id));
    }

    /// `http://127.0.0.1:PORT`: a channel's `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api.addr())
    }

    /// The `sendMessage` URL with `token` in it.
    pub fn send_url(&self, token: &str) -> String {
        format!("{}/bot{token}/sendMessage", self.api_url())
    }

    /// Answers the next `n` posts to `chat` with 429 and `retry_after` seconds.
    pub fn throttle(&self, chat: &str, n: usize, retry_after: u64) {
        self.api
            .state()
            .throttle
            .insert(chat.to_string(), (n, retry_after));
    }

    /// `chat` became the supergroup `to`: posts to `chat` are refused with `migrate_to_chat_id`.
    pub fn migrate(&self, chat: &str, to: &str) {
        let mut s = self.api.state();
        s.migrated.insert(chat.to_string(), to.to_string());
        s.known.insert(to.to_string());
    }

    /// The bot was removed from `chat`: posts are refused with 403.
    pub fn kick(&self, chat: &str) {
        self.api.state().kicked.insert(chat.to_string());
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.api.state().messages.clone()
    }

    /// The accepted messages of `chat`.
    pub fn messages_in(&self, chat: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.chat == chat)
            .collect()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.api.state().requests.clone()
    }

    /// Waits (bounded) until `chat` holds at least `n` messages.
    pub async fn wait_for(&self, chat: &str, n: usize, timeout: Duration) -> Vec<Message> {
        wait(
            timeout,
            || self.messages_in(chat).len() >= n,
            || {
                format!(
                    "timed out with {} of {n} messages in {chat}; requests: {:#?}",
                    self.messages_in(chat).len(),
                    self.requests()
                )
            },
        )
        .await;
        self.messages_in(chat)
    }
}

fn answer(status: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut v = json!({"ok": false, "error_code": status, "description": description});
    if let Some(p) = parameters {
        v["parameters"] = p;
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(v),
    )
        .into_response()
}

/// Telegram's HTML parse mode, on its own terms: the text after entity parsing, or why the
/// HTML cannot be parsed.
pub fn parse_html(html: &str) -> Result<String, String> {
    let mut text = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        let c = rest.chars().next().unwrap();
        match c {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!("Unclosed start tag at byte offset {i}"));
                };
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Can't find end tag corresponding to start tag \"{open}\""
                            ))
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let inner = inner.trim_end_matches('/');
                    let (name, attrs) = match inner.find(char::is_whitespace) {
                        Some(p) => (&inner[..p], inner[p..].trim()),
                        None => (inner, ""),
                    };
                    let name = name.to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) || name == "br" {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    }
                    let attrs = attributes(attrs).map_err(|e| format!("{e} at byte offset {i}"))?;
                    match name.as_str() {
                        "a" => {
                            let href = attrs.get("href").cloned().unwrap_or_default();
                            let lower = href.to_ascii_lowercase();
                            let ok = lower.starts_with("http://")
                                || lower.starts_with("https://")
                                || (lower.starts_with("tg://user?id=")
                                    && lower[13..].bytes().all(|b| b.is_ascii_digit())
                                    && lower.len() > 13);
                            if !ok {
                                return Err(format!("Wrong HTTP URL \"{href}\""));
                            }
                        }
                        "span" if attrs.get("class").map(String::as_str) != Some("tg-spoiler") => {
                            return Err("Tag \"span\" must have class \"tg-spoiler\"".into())
                        }
                        _ if !attrs.is_empty()
                            && !matches!(
                                name.as_str(),
                                "pre" | "code" | "tg-emoji" | "tg-time" | "blockquote"
                            ) =>
                        {
                            return Err(format!("Tag \"{name}\" must have no attributes"))
                        }
                        _ => {}
                    }
                    stack.push(name);
                }
                i += end + 1;
            }
            '&' => {
                let (ch, used) = entity(rest).ok_or_else(|| {
                    format!("Character '&' is reserved and must be escaped with the preceding '\\' or as an entity at byte offset {i}")
                })?;
                text.push(ch);
                i += used;
            }
            '>' => {
                return Err(format!("Character '>' is reserved at byte offset {i}"));
            }
            c => {
                text.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(text)
}

/// `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#NN;`, `&#xHH;` at the start of `s`.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s.find(';').filter(|e| *e <= 12)?;
    let name = &s[1..end];
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        n if n.starts_with("#x") || n.starts_with("#X") => {
            char::from_u32(u32::from_str_radix(&n[2..], 16).ok()?)?
        }
        n if n.starts_with('#') => char::from_u32(n[1..].parse().ok()?)?,
        _ => return None,
    };
    Some((ch, end + 1))
}

/// `name="value"` pairs, values entity-decoded.
fn attributes(s: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or("Expected equal sign in declaration of an attribute")?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().ok_or("Expected attribute value")?;
        if quote != '"' && quote != '\'' {
            return Err("Expected quoted attribute value".into());
        }
        let close = after[1..].find(quote).ok_or("Unclosed attribute value")?;
        let raw = &after[1..1 + close];
        let mut value = String::new();
        let mut j = 0;
        while j < raw.len() {
            let r = &raw[j..];
            if r.starts_with('&') {
                let (ch, used) = entity(r).ok_or("Unsupported entity in an attribute")?;
                value.push(ch);
                j += used;
            } else {
                let ch = r.chars().next().unwrap();
                value.push(ch);
                j += ch.len_utf8();
            }
        }
        out.insert(name, value);
        rest = after[close + 2..].trim_start();
    }
    Ok(out)
}

/// The shape of a request besides its text; `Err` is Telegram's description.
fn check_shape(body: &Value, method: &str) -> Result<(), String> {
    let Some(o) = body.as_object() else {
        return Err("Bad Request: message text is empty".into());
    };
    match o.get("chat_id") {
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(Value::String(s)) if s.starts_with('@') || s.parse::<i64>().is_ok() => {}
        _ => return Err("Bad Request: chat_id is empty".into()),
    }
    if o.get("parse_mode").and_then(Value::as_str) != Some("HTML") {
        return Err("Bad Request: the fake expects parse_mode \"HTML\"".into());
    }
    if !o.get("text").is_some_and(Value::is_string) {
        return Err("Bad Request: message text is empty".into());
    }
    if method == "sendMessage" {
        if let Some(l) = o.get("link_preview_options") {
            if !l.get("is_disabled").is_some_and(Value::is_boolean) {
                return Err("Bad Request: can't parse link preview options".into());
            }
        }
        if let Some(t) = o.get("message_thread_id") {
            if !t.is_i64() {
                return Err("Bad Request: message thread not found".into());
            }
        }
    }
    if let Some(m) = o.get("reply_markup") {
        let rows = m
            .get("inline_keyboard")
            .and_then(Value::as_array)
            .ok_or("Bad Request: can't parse reply keyboard markup JSON object")?;
        for row in rows {
            let row = row
                .as_array()
                .ok_or("Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object")?;
            if row.len() > 8 {
                return Err("Bad Request: too many buttons in a row".into());
            }
            for b in row {
                let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
                let url = b.get("url").and_then(Value::as_str).unwrap_or_default();
                if text.trim().is_empty() {
                    return Err("Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard".into());
                }
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("Bad Request: inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"));
                }
            }
        }
    }
    Ok(())
}

fn chat_key(v: &Value) -> Option<String> {
    match v.get("chat_id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, uri: Uri, raw: Bytes) -> Response {
    let path = uri.path();
    let log = |s: &Arc<Mutex<Shared>>,
               method: &str,
               chat: Option<String>,
               status: u16,
               d: Option<String>| {
        s.lock().unwrap().requests.push(Request {
            method: method.to_string(),
            chat,
            status,
            description: d,
            at: Instant::now(),
        });
    };
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|r| r.split_once('/')) else {
        log(&shared, path, None, 404, Some("Not Found".into()));
        return answer(404, "Not Found", None);
    };
    if token != TOKEN {
        log(&shared, method, None, 401, Some("Unauthorized".into()));
        return answer(401, "Unauthorized", None);
    }
    if method != "sendMessage" && method != "editMessageText" {
        log(&shared, method, None, 404, Some("Not Found".into()));
        return answer(404, "Not Found", None);
    }
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let chat = chat_key(&body);
    let refuse = |status: u16, d: String, p: Option<Value>| {
        log(&shared, method, chat.clone(), status, Some(d.clone()));
        answer(status, &d, p)
    };
    if let Err(d) = check_shape(&body, method) {
        return refuse(400, d, None);
    }
    let chat_id = chat.clone().unwrap_or_default();
    let html = body["text"].as_str().unwrap_or_default().to_string();
    let text = match parse_html(&html) {
        Ok(t) => t,
        Err(e) => return refuse(400, format!("Bad Request: can't parse entities: {e}"), None),
    };
    if text.trim().is_empty() {
        return refuse(400, "Bad Request: message text is empty".into(), None);
    }
    if text.encode_utf16().count() > MAX_TEXT {
        return refuse(400, "Bad Request: message is too long".into(), None);
    }
    let mut s = shared.lock().unwrap();
    if let Some(to) = s.migrated.get(&chat_id).cloned() {
        drop(s);
        let to_value: Value = to.parse::<i64>().map_or(json!(to), |n| json!(n));
        return refuse(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat".into(),
            Some(json!({"migrate_to_chat_id": to_value})),
        );
    }
    if s.kicked.contains(&chat_id) {
        drop(s);
        return refuse(
            403,
            "Forbidden: bot was kicked from the supergroup chat".into(),
            None,
        );
    }
    if !s.known.contains(&chat_id) {
        drop(s);
        return refuse(400, "Bad Request: chat not found".into(), None);
    }
    if let Some((n, secs)) = s.throttle.get_mut(&chat_id) {
        if *n > 0 {
            *n -= 1;
            let secs = *secs;
            drop(s);
            return refuse(
                429,
                format!("Too Many Requests: retry after {secs}"),
                Some(json!({"retry_after": secs})),
            );
        }
    }
    if let Some(to) = body["reply_parameters"]["message_id"].as_i64() {
        let gone = s.deleted.contains(&(chat_id.clone(), to))
            || !s
                .messages
                .iter()
                .any(|m| m.message_id == to && m.chat == chat_id);
        if gone && body["reply_parameters"]["allow_sending_without_reply"] != json!(true) {
            drop(s);
            return refuse(
                400,
                "Bad Request: message to be replied not found".into(),
                None,
            );
        }
    }
    let now = Instant::now();
    let result = if method == "editMessageText" {
        let id = body["message_id"].as_i64().unwrap_or(-1);
        let deleted = s.deleted.contains(&(chat_id.clone(), id));
        let Some(m) = s
            .messages
            .iter_mut()
            .find(|m| m.message_id == id && m.chat == chat_id && !deleted)
        else {
            drop(s);
            return refuse(400, "Bad Request: message to edit not found".into(), None);
        };
        if m.html == html {
            drop(s);
            return refuse(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message".into(), None);
        }
        m.html = html;
        m.text = text.clone();
        m.body = body.clone();
        json!({"message_id": id, "chat": {"id": chat_id}, "text": text, "edit_date": 1})
    } else {
        let id = s.next_id;
        s.next_id += 1;
        s.messages.push(Message {
            message_id: id,
            chat: chat_id.clone(),
            html,
            text: text.clone(),
            body: body.clone(),
            at: now,
        });
        json!({"message_id": id, "chat": {"id": chat_id}, "date": 1, "text": text})
    };
    s.requests.push(Request {
        method: method.to_string(),
        chat: Some(chat_id),
        status: 200,
        description: None,
        at: now,
    });
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}
