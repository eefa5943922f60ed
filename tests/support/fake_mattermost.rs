//! A fake Mattermost REST API (v4) on loopback that enforces the contract of creating and
//! patching posts as a bot uses them, answering as Mattermost does (errors `{id, message,
//! status_code}`):
//!
//! - `Authorization: Bearer` with the token (401 `api.context.session_expired.app_error`),
//!   `Content-Type: application/json`, a JSON object with only the fields a post has (400
//!   `api.context.invalid_body_param.app_error`);
//! - `POST /api/v4/posts {channel_id, message, props?: {attachments}, root_id?}`: a channel the
//!   fake knows (403 `api.context.permissions.app_error`), a message or attachments, the message
//!   ≤ 16 383 characters, attachments a list of objects; a `root_id` of a root post of the
//!   channel that is not deleted, else 400 `api.post.create_post.root_id.app_error` "Invalid
//!   RootId parameter" (a reply's id too: Mattermost threads one level); answers 201 with the
//!   post (`id`, 26 characters);
//! - `PUT /api/v4/posts/{id}/patch {message?, props?}` of a post that is there (404
//!   `app.post.get.app_error` when deleted or unknown);
//! - scripted: the next N requests answered 429 with `X-Ratelimit-Reset`.
//!
//! Accepted posts and edits are counted per minute ([`FakeMattermost::max_per_minute`]).

use super::fake_api::{most_in_a_minute, FakeApi, Logged};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The access token the fake accepts.
pub const TOKEN: &str = "SECRETmattermostbot0000000";
/// The channel the fake knows.
pub const CHANNEL: &str = "fakechannel000000000000001";
/// The longest message.
const MAX_MESSAGE: usize = 16_383;

/// A post in the fake's channel.
#[derive(Debug, Clone)]
pub struct Post {
    /// Its id.
    pub id: String,
    /// Its root's id, for a reply (`""` for a root).
    pub root_id: String,
    /// Its message now.
    pub message: String,
    /// Its props now.
    pub props: Value,
    /// The message it was posted with.
    pub first_message: String,
    /// How often it was edited.
    pub edits: usize,
    /// Deleted in the channel.
    pub deleted: bool,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Request {
    /// `create`, `patch`, or the path.
    pub what: String,
    /// The status answered.
    pub status: u16,
    /// Mattermost's error id when refused.
    pub error: Option<String>,
    /// The body as sent.
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    posts: Vec<Post>,
    requests: Vec<Request>,
    accepted: Vec<Instant>,
    throttle: (usize, u64),
    next: u64,
}

impl Logged for Shared {
    type Request = Request;
    fn log(&self) -> &[Request] {
        &self.requests
    }
    fn is_accepted(r: &Request, what: &str) -> bool {
        r.what == what && r.error.is_none()
    }
}

/// The fake server.
pub struct FakeMattermost {
    api: FakeApi<Shared>,
}

impl FakeMattermost {
    /// Starts on 127.0.0.1.
    pub async fn start() -> FakeMattermost {
        FakeMattermost {
            api: FakeApi::start(Shared::default(), handle).await,
        }
    }

    /// `http://127.0.0.1:PORT`: the channel's `url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api.addr())
    }

    /// Deletes post `id`, as a person in the channel would.
    pub fn delete(&self, id: &str) {
        let mut s = self.api.state();
        if let Some(p) = s.posts.iter_mut().find(|p| p.id == id) {
            p.deleted = true;
        }
    }

    /// Answers the next `n` requests with 429 and `X-Ratelimit-Reset: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        self.api.state().throttle = (n, secs);
    }

    /// Every post, in order.
    pub fn posts(&self) -> Vec<Post> {
        self.api.state().posts.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// Accepted requests of `what` (`create`, `patch`).
    pub fn accepted(&self, what: &str) -> usize {
        self.api.accepted(what)
    }

    /// The most posts and edits accepted in any 60 seconds.
    pub fn max_per_minute(&self) -> usize {
        most_in_a_minute(&self.api.state().accepted)
    }

    /// Waits (bounded) until `posts` posts and `edits` edits were accepted.
    pub async fn settle(&self, posts: usize, edits: usize, timeout: Duration) {
        let counts = [("create", posts), ("patch", edits)];
        self.api.settle(&counts, timeout).await;
    }
}

/// Mattermost's error answer.
fn refused(status: u16, id: &str, message: &str) -> (Response, u16, Option<String>) {
    let r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(
            json!({"id": id, "message": message, "status_code": status, "request_id": "fake"}),
        ),
    )
        .into_response();
    (r, status, Some(id.to_string()))
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    let what = match (&method, path.as_str()) {
        (&Method::POST, "/api/v4/posts") => "create".to_string(),
        (&Method::PUT, p) if p.starts_with("/api/v4/posts/") && p.ends_with("/patch") => {
            "patch".to_string()
        }
        _ => format!("{method} {path}"),
    };
    let mut s = shared.lock().unwrap();
    let (response, status, error) = answer(&mut s, &what, &path, &headers, &parsed);
    s.requests.push(Request {
        what,
        status,
        error,
        body: parsed,
    });
    response
}

/// Whether `props` is absent or `{attachments: [objects]}` (and nothing else the fake checks).
fn props_ok(props: Option<&Value>) -> bool {
    match props {
        None => true,
        Some(p) => p.as_object().is_some_and(|o| {
            o.get("attachments")
                .is_none_or(|a| a.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
        }),
    }
}

/// The answer to one request, its status and Mattermost's error id.
fn answer(
    s: &mut Shared,
    what: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (Response, u16, Option<String>) {
    if what != "create" && what != "patch" {
        return refused(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        );
    }
    if s.throttle.0 > 0 {
        s.throttle.0 -= 1;
        let r = (
            StatusCode::TOO_MANY_REQUESTS,
            [("X-Ratelimit-Reset", s.throttle.1.to_string())],
            "limit exceeded",
        )
            .into_response();
        return (r, 429, Some("throttled".into()));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return refused(
            401,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        );
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let Some(o) = body.as_object().filter(|_| json_type) else {
        return refused(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing post in request body.",
        );
    };
    let allowed: &[&str] = if what == "create" {
        &[
            "channel_id",
            "message",
            "props",
            "root_id",
            "file_ids",
            "metadata",
        ]
    } else {
        &["message", "props", "is_pinned", "file_ids", "has_reactions"]
    };
    let message = o.get("message").and_then(Value::as_str);
    let valid = o.keys().all(|k| allowed.contains(&k.as_str()))
        && props_ok(o.get("props"))
        && message.is_none_or(|m| m.chars().count() <= MAX_MESSAGE);
    if !valid {
        return refused(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing post in request body.",
        );
    }
    let now = Instant::now();
    if what == "patch" {
        let id = path
            .trim_start_matches("/api/v4/posts/")
            .trim_end_matches("/patch");
        let Some(p) = s.posts.iter_mut().find(|p| p.id == id && !p.deleted) else {
            return refused(404, "app.post.get.app_error", "Unable to get the post.");
        };
        if let Some(m) = message {
            p.message = m.to_string();
        }
        if let Some(props) = o.get("props") {
            p.props = props.clone();
        }
        p.edits += 1;
        let answer =
            json!({"id": p.id, "message": p.message, "props": p.props, "root_id": p.root_id});
        s.accepted.push(now);
        return (axum::Json(answer).into_response(), 200, None);
    }
    if o.get("channel_id").and_then(Value::as_str) != Some(CHANNEL) {
        return refused(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        );
    }
    let attachments = o
        .get("props")
        .and_then(|p| p.get("attachments"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if message.unwrap_or_default().trim().is_empty() && attachments == 0 {
        return refused(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing post in request body.",
        );
    }
    let root_id = o.get("root_id").and_then(Value::as_str).unwrap_or_default();
    if !root_id.is_empty()
        && !s
            .posts
            .iter()
            .any(|p| p.id == root_id && p.root_id.is_empty() && !p.deleted)
    {
        return refused(
            400,
            "api.post.create_post.root_id.app_error",
            "Invalid RootId parameter.",
        );
    }
    s.next += 1;
    let id = format!("fakepost{:018}", s.next);
    let post = Post {
        id: id.clone(),
        root_id: root_id.to_string(),
        message: message.unwrap_or_default().to_string(),
        props: o.get("props").cloned().unwrap_or(json!({})),
        first_message: message.unwrap_or_default().to_string(),
        edits: 0,
        deleted: false,
    };
    let answer = json!({"id": id, "channel_id": CHANNEL, "root_id": root_id, "message": post.message, "props": post.props, "create_at": 1});
    s.posts.push(post);
    s.accepted.push(now);
    (
        (StatusCode::CREATED, axum::Json(answer)).into_response(),
        201,
        None,
    )
}
