//! A local Zoho Cliq `channelsbyname` endpoint that enforces Cliq's contract
//! ([`cliq_violations`](super::cliq::cliq_violations) and the channel keys) and records what it
//! accepts; it can be scripted: error answers in sequence or per channel, a per-answer delay, a
//! hold mode.

use super::cliq::cliq_violations;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The channels' Cliq key (the fake accepts this one and [`SECOND_ZAPIKEY`]).
pub const ZAPIKEY: &str = "zk-SECRET-1234";
/// A second key the fake accepts: another Cliq user, with a rate budget of its own.
pub const SECOND_ZAPIKEY: &str = "zk-SECRET-SECOND-8765";
/// Another key, which the fake refuses.
pub const OTHER_ZAPIKEY: &str = "zk-SECRET-OTHER-4321";
/// `wait_for_accepted` prints every message only when there are at most this many.
const PRINT_AT_MOST: usize = 50;

/// How the fake answers a post that honours the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 204: posted. Only these are recorded in [`Seen::accepted`].
    Accept,
    /// 503 Service Unavailable (an outage).
    Unavailable,
    /// 429 `too_many_requests` with `Retry-After` of this many seconds.
    Throttle(u64),
    /// Cliq's other throttle answer: 400 `{"code":"request_limit_exceeded"}`.
    LimitExceeded,
    /// 404 `{"code":"channel_not_found"}`: a permanent failure.
    ChannelNotFound,
}

impl Reply {
    fn status(self) -> u16 {
        match self {
            Reply::Accept => 204,
            Reply::Unavailable => 503,
            Reply::Throttle(_) => 429,
            Reply::LimitExceeded => 400,
            Reply::ChannelNotFound => 404,
        }
    }

    fn response(self) -> Response {
        match self {
            Reply::Accept => StatusCode::NO_CONTENT.into_response(),
            Reply::Unavailable => cliq_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service temporarily unavailable.",
            ),
            Reply::Throttle(secs) => {
                let mut r = cliq_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests, try again later.",
                );
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
                r
            }
            Reply::LimitExceeded => cliq_error(
                StatusCode::BAD_REQUEST,
                "request_limit_exceeded",
                "Request limit exceeded, try again later.",
            ),
            Reply::ChannelNotFound => cliq_error(
                StatusCode::NOT_FOUND,
                "channel_not_found",
                "No such channel exists.",
            ),
        }
    }
}

/// One message the fake accepted (answered 204).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The channel's unique name from the URL.
    pub channel: String,
    /// The message body.
    pub body: Value,
}

impl Accepted {
    /// The message's `text`.
    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }
}

/// One answer to a post that honoured the contract, in the order answered.
#[derive(Debug, Clone)]
pub struct Answered {
    /// When it was answered.
    pub at: Instant,
    /// The channel.
    pub channel: String,
    /// The status answered.
    pub status: u16,
}

/// What the fake has seen.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every request, whatever its fate.
    pub requests: usize,
    /// Requests answered 429.
    pub throttled: usize,
    /// Messages answered 204, in the order answered.
    pub accepted: Vec<Accepted>,
    /// Contract violations (answered 400, 401 or 404), as `"<status> <channel>: <what>"`.
    pub violations: Vec<String>,
    /// Every post that honoured the contract and was answered (held ones are not).
    pub answered: Vec<Answered>,
    /// Posts held in hold mode: never recorded as accepted, answered 503 on release.
    pub held: usize,
    /// Bodies posted to an extension's response URL (`/v2/extensions/{id}/responses/{id}`).
    pub responses: Vec<Value>,
}

impl Seen {
    /// How many accepted messages of `channel` contain `needle`.
    pub fn count(&self, channel: &str, needle: &str) -> usize {
        self.accepted
            .iter()
            .filter(|a| a.channel == channel && a.text().contains(needle))
            .count()
    }

    /// Answers with `status`.
    pub fn answered_with(&self, status: u16) -> usize {
        self.answered.iter().filter(|a| a.status == status).count()
    }

    /// A short summary for failure messages.
    pub fn summary(&self) -> String {
        let mut statuses: HashMap<u16, usize> = HashMap::new();
        for a in &self.answered {
            *statuses.entry(a.status).or_default() += 1;
        }
        format!(
            "requests={} accepted={} held={} violations={:?} answers by status={statuses:?}",
            self.requests,
            self.accepted.len(),
            self.held,
            self.violations
        )
    }
}

struct Behaviour {
    /// Answers to give first, in order, whatever the channel.
    script: VecDeque<Reply>,
    /// The answer of a channel once the script is used up (default [`Reply::Accept`]).
    per_channel: HashMap<String, Reply>,
    /// How long each valid post takes to be answered.
    delay: Duration,
}

struct Shared {
    seen: Mutex<Seen>,
    behaviour: Mutex<Behaviour>,
    /// True while in hold mode. Read and written under `seen`'s lock, so that "recorded as
    /// accepted" and "held" are decided atomically with respect to [`FakeCliq::hold`].
    hold: watch::Sender<bool>,
}

/// A local Cliq `channelsbyname` endpoint enforcing the contract.
pub struct FakeCliq {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCliq {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeCliq {
    /// Starts on 127.0.0.1; the first `throttle_first` valid posts are answered 429 with
    /// `Retry-After: 1`, the rest 204.
    pub async fn start(throttle_first: usize) -> FakeCliq {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            behaviour: Mutex::new(Behaviour {
                script: std::iter::repeat_n(Reply::Throttle(1), throttle_first).collect(),
                per_channel: HashMap::new(),
                delay: Duration::ZERO,
            }),
            hold: watch::channel(false).0,
        });
        let app = Router::new()
            .route("/api/v2/channelsbyname/{name}/message", post(message))
            .route("/api/v2/chats/{chat}/message", post(chat_message))
            .route("/v2/extensions/{ext}/responses/{id}", post(response))
            .fallback(unexpected)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCliq { addr, shared, task }
    }

    /// The base URL (`http://127.0.0.1:PORT`), the extension's `api_url`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The channel URL for `name` (without the key, as in the config).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/api/v2/channelsbyname/{name}/message", self.addr)
    }

    /// Appends answers to give to the next valid posts, in order, whatever their channel.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.behaviour.lock().unwrap().script.extend(replies);
    }

    /// Scripted answers not given yet.
    pub fn script_left(&self) -> usize {
        self.shared.behaviour.lock().unwrap().script.len()
    }

    /// How `channel` is answered once the script is used up.
    pub fn set_channel(&self, channel: &str, reply: Reply) {
        self.shared
            .behaviour
            .lock()
            .unwrap()
            .per_channel
            .insert(channel.to_string(), reply);
    }

    /// Makes every valid post take `delay` before it is answered (or held).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.behaviour.lock().unwrap().delay = delay;
    }

    /// Hold mode: from now on valid posts are neither answered nor recorded until
    /// [`FakeCliq::release`]; a post already recorded as accepted was decided before this.
    pub fn hold(&self) {
        let _seen = self.shared.seen.lock().unwrap();
        self.shared.hold.send_replace(true);
    }

    /// Ends hold mode: the held posts are answered 503 (and not recorded).
    pub fn release(&self) {
        let _seen = self.shared.seen.lock().unwrap();
        self.shared.hold.send_replace(false);
    }

    /// A copy of what was seen so far.
    pub fn snapshot(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many messages were accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.seen.lock().unwrap().accepted.len()
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.accepted() >= n {
                return;
            }
            if Instant::now() >= deadline {
                let seen = self.snapshot();
                if seen.accepted.len() <= PRINT_AT_MOST {
                    panic!(
                        "timed out after {timeout:?} waiting for {n} messages; the fake saw {seen:#?}"
                    );
                }
                panic!(
                    "timed out after {timeout:?} waiting for {n} messages; the fake saw {}",
                    seen.summary()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn cliq_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

async fn unexpected(State(s): State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    let mut seen = s.seen.lock().unwrap();
    seen.requests += 1;
    // The path only: the query holds the key.
    seen.violations
        .push(format!("404 ?: unexpected {}", uri.path()));
    cliq_error(StatusCode::NOT_FOUND, "url_not_found", "no such endpoint")
}

async fn message(
    State(s): State<Arc<Shared>>,
    UrlPath(channel): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let msg = match admit(&s, &channel, query.as_deref(), &headers, &body) {
        Ok(m) => m,
        Err((status, code, message)) => return cliq_error(status, code, &message),
    };
    let delay = s.behaviour.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(answer) = decide(&s, channel, msg) {
        return answer;
    }
    // Held: wait for the release (checks the current value first, so no wake-up is missed).
    let mut rx = s.hold.subscribe();
    let _ = rx.wait_for(|held| !*held).await;
    cliq_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "held",
        "Held by the test; not posted.",
    )
}

/// A post into a chat by id (the Cliq extension's subscribed chats): recorded as channel
/// `chat:<id>`, under the same contract as channel posts.
async fn chat_message(
    state: State<Arc<Shared>>,
    UrlPath(chat): UrlPath<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    message(state, UrlPath(format!("chat:{chat}")), query, headers, body).await
}

/// A post to an extension's response URL: `{"output": message}`, recorded whole.
async fn response(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut seen = s.seen.lock().unwrap();
    seen.requests += 1;
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v["output"].is_object() && cliq_violations(&v["output"]).is_empty() => {
            seen.responses.push(v);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => {
            seen.violations
                .push(format!("400 response: {}", String::from_utf8_lossy(&body)));
            cliq_error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "not {\"output\": message}",
            )
        }
    }
}

/// Counts the request and checks the key and the message; `Err` is the refusal to send
/// (status, Cliq's error code and message).
fn admit(
    s: &Shared,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, (StatusCode, &'static str, String)> {
    let mut seen = s.seen.lock().unwrap();
    seen.requests += 1;
    let key = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "zapikey")
            .map(|(_, v)| v.into_owned())
    });
    if key.as_deref() != Some(ZAPIKEY) && key.as_deref() != Some(SECOND_ZAPIKEY) {
        seen.violations
            .push(format!("401 {channel}: missing or wrong zapikey"));
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid_oauthtoken",
            "Invalid OAuth token or zapikey.".to_string(),
        ));
    }
    check_message(headers, body).map_err(|what| {
        seen.violations.push(format!("400 {channel}: {what}"));
        (StatusCode::BAD_REQUEST, "invalid_body", what)
    })
}

/// Answers a valid post (recording it) unless in hold mode (`None`: held).
fn decide(s: &Shared, channel: String, msg: Value) -> Option<Response> {
    let mut seen = s.seen.lock().unwrap();
    if *s.hold.borrow() {
        seen.held += 1;
        return None;
    }
    let reply = {
        let mut b = s.behaviour.lock().unwrap();
        match b.script.pop_front() {
            Some(r) => r,
            None => b
                .per_channel
                .get(&channel)
                .copied()
                .unwrap_or(Reply::Accept),
        }
    };
    if matches!(reply, Reply::Throttle(_)) {
        seen.throttled += 1;
    }
    seen.answered.push(Answered {
        at: Instant::now(),
        channel: channel.clone(),
        status: reply.status(),
    });
    if reply == Reply::Accept {
        seen.accepted.push(Accepted { channel, body: msg });
    }
    Some(reply.response())
}

/// Cliq's message contract for a post; `Err` says what is wrong.
fn check_message(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(format!("content-type is {ct:?}, not application/json"));
    }
    let msg: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let violations = cliq_violations(&msg);
    if violations.is_empty() {
        Ok(msg)
    } else {
        Err(violations.join("; "))
    }
}
