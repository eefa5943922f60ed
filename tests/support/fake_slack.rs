//! A fake Slack Web API on loopback (`{api_url}` = `http://127.0.0.1:PORT/api`) that enforces
//! the contract of `chat.postMessage` and `chat.update` as a bot token uses them, answering as
//! Slack does (HTTP 200 with `{ok: false, error}` for a refusal):
//!
//! - `Authorization: Bearer` with the bot token (`not_authed` without one, `invalid_auth` with
//!   another), `Content-Type: application/json` (`invalid_post_type`), a JSON object
//!   (`invalid_json`), only the arguments the methods take (`invalid_arguments`);
//! - `channel` a channel id the fake knows (`channel_not_found`);
//! - `chat.postMessage`: `text` or `blocks` (`no_text`), `text` ≤ 40 000 characters
//!   (`msg_too_long`), `blocks` ≤ 50 objects of a known `type` (`invalid_blocks`);
//!   `reply_broadcast` only with `thread_ts`; `thread_ts` of a top-level message of the channel
//!   (a reply's ts is refused `invalid_thread_ts`); answers `{ok, channel, ts, message}` with a
//!   new `ts`, and the message's `thread_ts` when it is a reply;
//! - a root [`FakeSlack::delete`]d: with replies it stays as Slack's "This message was deleted."
//!   stub, its thread still takes replies and `chat.update` of it is `message_not_found`;
//!   without replies it is gone, and a reply naming it is posted on its own in the channel (no
//!   `thread_ts` in the answer's message), as Slack does;
//! - `chat.update {channel, ts, text?, blocks?}` of a message the channel has (else
//!   `message_not_found`); nothing else is taken;
//! - scripted: the next N posts taken but not answered ([`FakeSlack::hold`]); the next N requests answered HTTP 429 `{ok: false, error: "ratelimited"}` with
//!   `Retry-After`.
//!
//! Accepted posts and edits are counted per minute ([`FakeSlack::max_per_minute`]); every
//! request is logged with its answer.

use super::fake_api::{most_in_a_minute, FakeApi, Logged};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bot token the fake accepts.
pub const TOKEN: &str = "xoxb-1111-2222-SECRETslackbot";
/// The channel the fake knows.
pub const CHANNEL: &str = "C0FAKE0001";
/// The block types a message may have (of those Slack knows).
const BLOCK_TYPES: [&str; 8] = [
    "header",
    "section",
    "actions",
    "context",
    "divider",
    "image",
    "rich_text",
    "markdown",
];
/// The arguments of `chat.postMessage` the fake takes.
const POST_ARGS: [&str; 9] = [
    "channel",
    "text",
    "blocks",
    "thread_ts",
    "reply_broadcast",
    "unfurl_links",
    "unfurl_media",
    "mrkdwn",
    "metadata",
];
/// The arguments of `chat.update` the fake takes.
const UPDATE_ARGS: [&str; 4] = ["channel", "ts", "text", "blocks"];

/// A message in the fake's channel.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its `ts`.
    pub ts: String,
    /// The root's `ts`, for a reply.
    pub thread_ts: Option<String>,
    /// Whether the reply was also shown in the channel.
    pub reply_broadcast: bool,
    /// Its `text` now.
    pub text: String,
    /// Its `blocks` now.
    pub blocks: Value,
    /// The `text` it was posted with.
    pub first_text: String,
    /// How often it was edited.
    pub edits: usize,
    /// Deleted in the channel.
    pub deleted: bool,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Request {
    /// `chat.postMessage`, `chat.update`, or the path.
    pub method: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Slack's `error` when refused.
    pub error: Option<String>,
    /// The body as sent.
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    channels: HashSet<String>,
    messages: Vec<Message>,
    requests: Vec<Request>,
    accepted: Vec<Instant>,
    throttle: (usize, u64),
    next: u64,
    /// Accepted posts whose answer is withheld (for a kill before the answer).
    hold: usize,
}

impl Logged for Shared {
    type Request = Request;
    fn log(&self) -> &[Request] {
        &self.requests
    }
    fn is_accepted(r: &Request, what: &str) -> bool {
        r.method == what && r.error.is_none()
    }
}

/// The fake server.
pub struct FakeSlack {
    api: FakeApi<Shared>,
}

impl FakeSlack {
    /// Starts on 127.0.0.1, knowing [`CHANNEL`].
    pub async fn start() -> FakeSlack {
        FakeSlack {
            api: FakeApi::start(
                Shared {
                    channels: [CHANNEL.to_string()].into_iter().collect(),
                    next: 100,
                    ..Shared::default()
                },
                handle,
            )
            .await,
        }
    }

    /// `http://127.0.0.1:PORT/api`: a channel's `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.api.addr())
    }

    /// Deletes message `ts`, as a person in the channel would.
    pub fn delete(&self, ts: &str) {
        let mut s = self.api.state();
        if let Some(m) = s.messages.iter_mut().find(|m| m.ts == ts) {
            m.deleted = true;
        }
    }

    /// Answers the next `n` requests with 429 and `Retry-After: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        self.api.state().throttle = (n, secs);
    }

    /// Takes the next `n` posts but never answers them (the connection hangs up to a minute).
    pub fn hold(&self, n: usize) {
        self.api.state().hold = n;
    }

    /// Every message, in the order posted.
    pub fn messages(&self) -> Vec<Message> {
        self.api.state().messages.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// Accepted requests of `method`.
    pub fn accepted(&self, method: &str) -> usize {
        self.api.accepted(method)
    }

    /// The most posts and edits accepted in any 60 seconds.
    pub fn max_per_minute(&self) -> usize {
        most_in_a_minute(&self.api.state().accepted)
    }

    /// Waits (bounded) until `posts` posts and `edits` edits were accepted.
    pub async fn settle(&self, posts: usize, edits: usize, timeout: Duration) {
        let counts = [("chat.postMessage", posts), ("chat.update", edits)];
        self.api.settle(&counts, timeout).await;
    }
}

/// Slack's refusal: HTTP 200 `{ok: false, error}`.
fn refused(error: &str) -> Response {
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let method = uri.path().trim_start_matches("/api/").to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (response, withheld) = {
        let mut s = shared.lock().unwrap();
        let (response, status, error) = answer(&mut s, &method, &headers, &parsed);
        let withheld = error.is_none() && s.hold > 0;
        s.hold -= usize::from(withheld);
        s.requests.push(Request {
            method,
            status,
            error,
            body: parsed,
        });
        (response, withheld)
    };
    if withheld {
        // Taken, never answered in time: the client gives up or dies first.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    response
}

/// The answer to one request, its status and Slack's error.
fn answer(
    s: &mut Shared,
    method: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (Response, u16, Option<String>) {
    let no = |e: &str| (refused(e), 200, Some(e.to_string()));
    if !matches!(method, "chat.postMessage" | "chat.update") {
        return (
            (StatusCode::NOT_FOUND, "unknown method").into_response(),
            404,
            Some("unknown_method".into()),
        );
    }
    if s.throttle.0 > 0 {
        s.throttle.0 -= 1;
        let r = (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", s.throttle.1.to_string())],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
        return (r, 429, Some("ratelimited".into()));
    }
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return no("not_authed"),
        Some(a) if a != format!("Bearer {TOKEN}") => return no("invalid_auth"),
        Some(_) => {}
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json_type {
        return no("invalid_post_type");
    }
    let Some(o) = body.as_object() else {
        return no("invalid_json");
    };
    let allowed: &[&str] = if method == "chat.update" {
        &UPDATE_ARGS
    } else {
        &POST_ARGS
    };
    if o.keys().any(|k| !allowed.contains(&k.as_str())) {
        return no("invalid_arguments");
    }
    let channel = o.get("channel").and_then(Value::as_str).unwrap_or_default();
    if !s.channels.contains(channel) {
        return no("channel_not_found");
    }
    let text = o.get("text").and_then(Value::as_str);
    let blocks = o.get("blocks");
    if text.is_none() && blocks.is_none() {
        return no("no_text");
    }
    if text.is_some_and(|t| t.chars().count() > 40_000) {
        return no("msg_too_long");
    }
    if let Some(b) = blocks {
        let ok = b.as_array().is_some_and(|a| {
            a.len() <= 50
                && a.iter().all(|x| {
                    x.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| BLOCK_TYPES.contains(&t))
                })
        });
        if !ok {
            return no("invalid_blocks");
        }
    }
    let now = Instant::now();
    if method == "chat.update" {
        let ts = o.get("ts").and_then(Value::as_str).unwrap_or_default();
        let Some(m) = s.messages.iter_mut().find(|m| m.ts == ts && !m.deleted) else {
            return no("message_not_found");
        };
        if let Some(t) = text {
            m.text = t.to_string();
        }
        if let Some(b) = blocks {
            m.blocks = b.clone();
        }
        m.edits += 1;
        let answer = json!({"ok": true, "channel": channel, "ts": ts, "text": m.text});
        s.accepted.push(now);
        return (axum::Json(answer).into_response(), 200, None);
    }
    let broadcast = match o.get("reply_broadcast") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return no("invalid_arguments"),
    };
    let thread = match o.get("thread_ts") {
        None if broadcast => return no("invalid_arguments"),
        None => None,
        Some(Value::String(t)) => {
            let parent = s.messages.iter().find(|m| &m.ts == t);
            match parent {
                Some(p) if p.thread_ts.is_some() => return no("invalid_thread_ts"),
                // A deleted root with replies keeps its thread; one without is gone, and
                // the reply lands in the channel on its own.
                Some(p)
                    if !p.deleted || s.messages.iter().any(|m| m.thread_ts.as_ref() == Some(t)) =>
                {
                    Some(t.clone())
                }
                _ => None,
            }
        }
        Some(_) => return no("invalid_arguments"),
    };
    s.next += 1;
    let ts = format!("1700000000.{:06}", s.next);
    let text = text.unwrap_or_default().to_string();
    s.messages.push(Message {
        ts: ts.clone(),
        thread_ts: thread.clone(),
        reply_broadcast: broadcast && thread.is_some(),
        text: text.clone(),
        blocks: blocks.cloned().unwrap_or(Value::Null),
        first_text: text.clone(),
        edits: 0,
        deleted: false,
    });
    s.accepted.push(now);
    let mut message = json!({"type": "message", "subtype": "bot_message", "bot_id": "B0FAKE", "text": text, "ts": ts});
    if let Some(t) = thread {
        message["thread_ts"] = json!(t);
    }
    let answer = json!({"ok": true, "channel": channel, "ts": ts, "message": message});
    (axum::Json(answer).into_response(), 200, None)
}
