//! A fake Discord webhook API on loopback, for conversations: two webhooks, one of a text
//! channel and one of a forum channel, each enforcing Discord's documented contract as the
//! daemon uses it:
//!
//! - `POST /api/webhooks/{id}/{token}`: a wrong token is 401 `Invalid Webhook Token` (50027), an
//!   unknown webhook 404 `Unknown Webhook` (10015); a JSON object whose shape and limits are
//!   Discord's ([`super::chats::violations`]), else 400 `Invalid Form Body` (50035);
//!   `?wait=true` answers 200 with the message object `{id, channel_id, …}`, else 204;
//! - a forum's webhook takes a message only with `thread_name` (1–100 characters: a new forum
//!   post, whose starter message has the thread's id) or `?thread_id=` of one of its posts
//!   (400 220001 without either; 404 `Unknown Channel` 10003 for a post that is not there); a
//!   text channel's webhook refuses `thread_name` (400 220003: threads only in forums) and any
//!   `thread_id` (10003);
//! - `PATCH …/messages/{id}` (`?thread_id=` for a message in a forum post): the webhook's own
//!   message, not deleted, in the channel or thread named, else 404 `Unknown Message` (10008);
//!   fields left out stay, `null` clears, `thread_name` refused;
//! - 30 requests a minute per webhook, posts and edits alike: the next is 429
//!   `{retry_after, global: false}` with `Retry-After` and `X-RateLimit-*` (each answer carries
//!   `X-RateLimit-Limit`, `-Remaining`, `-Reset-After`).
//!
//! Scripted: a message or a whole forum post deleted as a person would. Every request is logged
//! with its answer; the accepted posts and edits are counted per minute.

use super::fake_api::{most_in_a_minute, FakeApi, Logged};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The webhooks' token (a secret: it must never reach a log line).
pub const TOKEN: &str = "fake-SECRET-discord-webhook-token_xyz";
/// The text channel webhook's id.
pub const TEXT_HOOK: &str = "1100000000000000001";
/// The forum channel webhook's id.
pub const FORUM_HOOK: &str = "1100000000000000002";
/// The text channel's id.
pub const TEXT_CHANNEL: &str = "900000000000000001";
/// The forum channel's id.
pub const FORUM_CHANNEL: &str = "900000000000000002";
/// Requests (posts and edits) a webhook takes in a minute.
pub const PER_MINUTE: usize = 30;
/// Longest forum post title.
pub const MAX_THREAD_NAME: usize = 100;

/// A message the fake accepted.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id (a snowflake).
    pub id: String,
    /// The channel it is in: the text channel, or a forum post (thread) id.
    pub channel_id: String,
    /// The webhook that posted it.
    pub webhook: String,
    /// The body as first posted.
    pub first: Value,
    /// The body as it is now (after edits).
    pub body: Value,
    /// How many times it was edited.
    pub edits: usize,
    /// Deleted in the chat.
    pub deleted: bool,
}

impl Message {
    /// The first embed's title, as shown now.
    pub fn title(&self) -> String {
        self.body["embeds"][0]["title"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first embed's text, as shown now.
    pub fn text(&self) -> String {
        self.body["embeds"][0]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A forum post.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Its id (the starter message's id too).
    pub id: String,
    /// Its title.
    pub name: String,
    /// Deleted in the chat.
    pub deleted: bool,
}

/// One request and the fake's answer.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST` or `PATCH`.
    pub method: String,
    /// The webhook id of the path, if any.
    pub webhook: Option<String>,
    /// The query (never the token).
    pub query: String,
    /// The answer's status.
    pub status: u16,
    /// Discord's error code, when refused.
    pub code: Option<i64>,
    /// Discord's error message, when refused.
    pub message: Option<String>,
}

#[derive(Default)]
struct Shared {
    messages: Vec<Message>,
    threads: Vec<Thread>,
    requests: Vec<Request>,
    /// Accepted posts and edits per webhook.
    accepted: HashMap<String, Vec<Instant>>,
    next_id: u64,
}

impl Logged for Shared {
    type Request = Request;
    fn log(&self) -> &[Request] {
        &self.requests
    }
    fn is_accepted(r: &Request, what: &str) -> bool {
        r.method == what && (200..300).contains(&r.status)
    }
}

/// The fake server.
pub struct FakeDiscord {
    api: FakeApi<Shared>,
}

impl FakeDiscord {
    /// Starts on 127.0.0.1.
    pub async fn start() -> FakeDiscord {
        FakeDiscord {
            api: FakeApi::start(
                Shared {
                    next_id: 1_200_000_000_000_000_001,
                    ..Shared::default()
                },
                handle,
            )
            .await,
        }
    }

    /// The webhook URL of the forum channel (`forum`) or of the text channel.
    pub fn url(&self, forum: bool) -> String {
        let id = if forum { FORUM_HOOK } else { TEXT_HOOK };
        format!("http://{}/api/webhooks/{id}/{TOKEN}", self.api.addr())
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.api.state().messages.clone()
    }

    /// The messages in `channel` (the text channel, or a forum post), deleted ones left out.
    pub fn messages_in(&self, channel: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.channel_id == channel && !m.deleted)
            .collect()
    }

    /// The forum's posts, in order (deleted ones too).
    pub fn threads(&self) -> Vec<Thread> {
        self.api.state().threads.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// The requests answered 2xx with `method`.
    pub fn accepted(&self, method: &str) -> usize {
        self.api.accepted(method)
    }

    /// The most posts and edits a webhook had accepted within any one minute.
    pub fn max_per_minute(&self) -> usize {
        let s = self.api.state();
        s.accepted
            .values()
            .map(|times| most_in_a_minute(times))
            .max()
            .unwrap_or(0)
    }

    /// Deletes message `id`, as a person in the chat would.
    pub fn delete_message(&self, id: &str) {
        let mut s = self.api.state();
        for m in s.messages.iter_mut().filter(|m| m.id == id) {
            m.deleted = true;
        }
    }

    /// Deletes the forum post `id` and every message in it.
    pub fn delete_thread(&self, id: &str) {
        let mut s = self.api.state();
        for t in s.threads.iter_mut().filter(|t| t.id == id) {
            t.deleted = true;
        }
        for m in s.messages.iter_mut().filter(|m| m.channel_id == id) {
            m.deleted = true;
        }
    }

    /// Waits (bounded) until `accepted(method)` reaches `n` for each `(method, n)`.
    pub async fn settle(&self, counts: &[(&str, usize)], timeout: Duration) {
        self.api.settle(counts, timeout).await;
    }
}

/// Discord's error answer.
fn refuse(status: u16, code: i64, message: &str) -> (u16, Option<i64>, Option<String>, Response) {
    let r = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"message": message, "code": code})),
    )
        .into_response();
    (status, Some(code), Some(message.to_string()), r)
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri.query().unwrap_or_default().to_string();
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let webhook = (segments.len() >= 4 && segments[..2] == ["api", "webhooks"])
        .then(|| segments[2].to_string());
    let mut s = shared.lock().unwrap();
    let (status, code, message, response) =
        answer(&mut s, &method, &segments, &query, &headers, &body);
    s.requests.push(Request {
        method: method.to_string(),
        webhook,
        query,
        status,
        code,
        message,
    });
    response
}

/// The answer to one request (the state changed when it is accepted).
fn answer(
    s: &mut Shared,
    method: &Method,
    segments: &[&str],
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (u16, Option<i64>, Option<String>, Response) {
    let (hook, token, rest) = match segments {
        ["api", "webhooks", hook, token, rest @ ..] => (*hook, *token, rest),
        _ => return refuse(404, 0, "404: Not Found"),
    };
    if hook != TEXT_HOOK && hook != FORUM_HOOK {
        return refuse(404, 10015, "Unknown Webhook");
    }
    if token != TOKEN {
        return refuse(401, 50027, "Invalid Webhook Token");
    }
    let forum = hook == FORUM_HOOK;
    let param = |k: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.into_owned())
    };
    // The per-webhook minute: posts and edits alike.
    let now = Instant::now();
    let times = s.accepted.entry(hook.to_string()).or_default();
    let window: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| now.duration_since(*t) < Duration::from_secs(60))
        .collect();
    if window.len() >= PER_MINUTE {
        let wait = Duration::from_secs(60) - now.duration_since(window[0]);
        let secs = wait.as_secs_f64();
        let r = (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after", format!("{}", wait.as_secs() + 1)),
                ("x-ratelimit-limit", PER_MINUTE.to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset-after", format!("{secs:.3}")),
            ],
            axum::Json(
                json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}),
            ),
        )
            .into_response();
        return (429, None, Some("rate limited".into()), r);
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(Value::Object(mut o)) = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|_| json_type)
    else {
        return refuse(400, 50109, "The request body contains invalid JSON.");
    };
    let problems = super::chats::violations("discord", &Value::Object(o.clone()));
    let thread_name = o.remove("thread_name");
    let message = match (method.as_str(), rest) {
        ("POST", []) => {
            let problems_left = problems;
            if !problems_left.is_empty() {
                return refuse(400, 50035, &format!("Invalid Form Body: {problems_left:?}"));
            }
            let thread_id = param("thread_id");
            let channel =
                match (forum, &thread_name, &thread_id) {
                    (false, Some(_), _) => {
                        return refuse(
                            400,
                            220003,
                            "Webhooks can only create threads in forum channels",
                        )
                    }
                    (false, None, Some(_)) => return refuse(404, 10003, "Unknown Channel"),
                    (false, None, None) => TEXT_CHANNEL.to_string(),
                    (true, Some(_), Some(_)) => {
                        return refuse(400, 50035, "Invalid Form Body: thread_name with thread_id")
                    }
                    (true, Some(name), None) => {
                        let name = name.as_str().unwrap_or_default().trim().to_string();
                        let n = name.chars().count();
                        if n == 0 || n > MAX_THREAD_NAME {
                            return refuse(400, 50035, "Invalid Form Body: thread_name 1..=100");
                        }
                        let id = s.next_id.to_string();
                        s.threads.push(Thread {
                            id: id.clone(),
                            name,
                            deleted: false,
                        });
                        id
                    }
                    (true, None, Some(t)) => {
                        if !s.threads.iter().any(|x| &x.id == t && !x.deleted) {
                            return refuse(404, 10003, "Unknown Channel");
                        }
                        t.clone()
                    }
                    (true, None, None) => return refuse(
                        400,
                        220001,
                        "Webhooks posted to forum channels must have a thread_name or thread_id",
                    ),
                };
            let id = s.next_id.to_string();
            s.next_id += 1;
            let body = Value::Object(o);
            s.messages.push(Message {
                id,
                channel_id: channel,
                webhook: hook.to_string(),
                first: body.clone(),
                body,
                edits: 0,
                deleted: false,
            });
            s.messages.last().cloned()
        }
        ("PATCH", ["messages", id]) => {
            if thread_name.is_some() {
                return refuse(
                    400,
                    50035,
                    "Invalid Form Body: thread_name cannot be edited",
                );
            }
            let thread_id = param("thread_id");
            if let Some(t) = &thread_id {
                if !forum || !s.threads.iter().any(|x| &x.id == t && !x.deleted) {
                    return refuse(404, 10003, "Unknown Channel");
                }
            }
            let channel = thread_id
                .unwrap_or_else(|| if forum { FORUM_CHANNEL } else { TEXT_CHANNEL }.to_string());
            let Some(m) = s.messages.iter_mut().find(|m| {
                m.id == *id && m.webhook == hook && !m.deleted && m.channel_id == channel
            }) else {
                return refuse(404, 10008, "Unknown Message");
            };
            let mut now_shown = m.body.as_object().cloned().unwrap_or_default();
            for (k, v) in o {
                if v.is_null() {
                    now_shown.remove(&k);
                } else {
                    now_shown.insert(k, v);
                }
            }
            let shown = Value::Object(now_shown);
            let problems = super::chats::violations("discord", &shown);
            if !problems.is_empty() {
                return refuse(400, 50035, &format!("Invalid Form Body: {problems:?}"));
            }
            m.body = shown;
            m.edits += 1;
            Some(m.clone())
        }
        _ => return refuse(405, 0, "405: Method Not Allowed"),
    };
    let times = s.accepted.entry(hook.to_string()).or_default();
    times.push(now);
    let window: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| now.duration_since(*t) < Duration::from_secs(60))
        .collect();
    let reset = Duration::from_secs(60) - now.duration_since(window[0]);
    let limits = [
        ("x-ratelimit-limit", PER_MINUTE.to_string()),
        (
            "x-ratelimit-remaining",
            PER_MINUTE.saturating_sub(window.len()).to_string(),
        ),
        (
            "x-ratelimit-reset-after",
            format!("{:.3}", reset.as_secs_f64()),
        ),
    ];
    let wait = param("wait").as_deref() == Some("true") || method == Method::PATCH;
    let Some(m) = message.filter(|_| wait) else {
        return (
            204,
            None,
            None,
            (StatusCode::NO_CONTENT, limits).into_response(),
        );
    };
    let mut object = m.body.clone();
    object["id"] = json!(m.id);
    object["channel_id"] = json!(m.channel_id);
    object["webhook_id"] = json!(m.webhook);
    object["type"] = json!(0);
    (
        200,
        None,
        None,
        (StatusCode::OK, limits, axum::Json(object)).into_response(),
    )
}
