//! The harness shared by the end-to-end test binaries (`tests/e2e.rs`, `tests/durability.rs`):
//! the real `gitlab-chat-bridge` binary on loopback (`serve`, killed on drop, or stopped with
//! SIGKILL or SIGTERM and restarted on the same outbox; the `outbox` subcommand), a fake Zoho
//! Cliq endpoint that enforces Cliq's contract and can be scripted (error answers in sequence or
//! per channel, a per-answer delay, a hold mode), GitLab's fixtures posted with GitLab's headers,
//! and bounded polling helpers. Not every test binary uses everything.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The channels' Cliq key (the fake accepts only this one).
pub const ZAPIKEY: &str = "zk-SECRET-1234";
/// Another key, which the fake refuses.
pub const OTHER_ZAPIKEY: &str = "zk-SECRET-OTHER-4321";
/// GitLab's secret token.
pub const TOKEN: &str = "gl-SECRET-5678";
/// `server.max_body_bytes` in the test config.
pub const MAX_BODY_BYTES: usize = 65_536;
/// Bounded wait for the daemon's `ready` line.
const STARTUP: Duration = Duration::from_secs(10);
/// `wait_for_accepted` prints every message only when there are at most this many.
const PRINT_AT_MOST: usize = 50;

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// A fixture's bytes.
pub fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(file)).unwrap()
}

/// A fixture as JSON.
pub fn fixture_json(file: &str) -> Value {
    serde_json::from_slice(&fixture(file)).unwrap()
}

/// The `X-Gitlab-Event` header of a fixture, from INDEX.tsv.
pub fn event_header(file: &str) -> String {
    let index = std::fs::read_to_string(fixtures_dir().join("INDEX.tsv")).unwrap();
    let map: HashMap<&str, &str> = index
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?, cols.next()?))
        })
        .collect();
    map.get(file)
        .map(|s| s.to_string())
        .unwrap_or_else(|| panic!("{file} is not in INDEX.tsv"))
}

/// Polls `cond` every 25 ms until it holds; fails after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Fails if a secret appears in the daemon's log.
pub fn assert_no_secrets(log: &[String]) {
    assert!(
        log.iter().any(|l| l.contains("ready")),
        "no log captured: {log:#?}"
    );
    for secret in [ZAPIKEY, OTHER_ZAPIKEY, TOKEN] {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked into the log: {leaks:#?}");
    }
}

// ---- the fake Cliq endpoint -----------------------------------------------------------------

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
            .fallback(unexpected)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCliq { addr, shared, task }
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
    if key.as_deref() != Some(ZAPIKEY) {
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

fn chars(v: &Value) -> Option<usize> {
    v.as_str().map(|s| s.chars().count())
}

/// Cliq's message contract; `Err` says what is wrong.
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
    let Some(obj) = msg.as_object() else {
        return Err("body is not a JSON object".into());
    };
    match obj.get("text").map(chars) {
        Some(Some(n)) if (1..=5000).contains(&n) => {}
        Some(Some(n)) => return Err(format!("text has {n} characters")),
        Some(None) => return Err("text is not a string".into()),
        None => return Err("text is missing".into()),
    }
    if let Some(card) = obj.get("card") {
        let Some(card) = card.as_object() else {
            return Err("card is not an object".into());
        };
        match card.get("title").map(chars) {
            Some(Some(n)) if n <= 200 => {}
            Some(Some(n)) => return Err(format!("card.title has {n} characters")),
            Some(None) => return Err("card.title is not a string".into()),
            None => return Err("card.title is missing".into()),
        }
        if let Some(theme) = card.get("theme") {
            let ok = ["modern-inline", "poll", "prompt"];
            if !theme.as_str().is_some_and(|t| ok.contains(&t)) {
                return Err(format!("card.theme {theme} is not one of {ok:?}"));
            }
        }
    }
    if let Some(buttons) = obj.get("buttons") {
        let Some(buttons) = buttons.as_array() else {
            return Err("buttons is not an array".into());
        };
        if buttons.len() > 5 {
            return Err(format!("{} buttons", buttons.len()));
        }
        for (i, b) in buttons.iter().enumerate() {
            match chars(&b["label"]) {
                Some(n) if (1..=20).contains(&n) => {}
                _ => return Err(format!("buttons[{i}].label: {}", b["label"])),
            }
            if let Some(t) = b.get("type") {
                if !matches!(t.as_str(), Some("+" | "-")) {
                    return Err(format!("buttons[{i}].type {t}"));
                }
            }
            match chars(&b["action"]["data"]["web"]) {
                Some(n) if (1..=256).contains(&n) => {}
                _ => return Err(format!("buttons[{i}].action.data.web: {}", b["action"])),
            }
        }
    }
    Ok(msg)
}

// ---- the daemon -----------------------------------------------------------------------------

/// One `[[channels]]` entry.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub name: &'static str,
    pub url: String,
    pub zapikey: &'static str,
    pub events: Option<Vec<&'static str>>,
    pub confidential: bool,
}

impl ChannelSpec {
    /// An unfiltered, non-confidential channel posting with [`ZAPIKEY`].
    pub fn new(name: &'static str, url: String) -> ChannelSpec {
        ChannelSpec {
            name,
            url,
            zapikey: ZAPIKEY,
            events: None,
            confidential: false,
        }
    }
}

/// What goes into a test config besides the listen address, token and outbox path.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `[[channels]]`.
    pub channels: Vec<ChannelSpec>,
    /// `rate_per_minute` of every channel.
    pub rate_per_minute: u32,
    /// `[delivery] timeout_secs`.
    pub timeout_secs: u64,
    /// `[delivery] max_attempts`.
    pub max_attempts: u32,
    /// `[delivery] initial_backoff_ms`.
    pub initial_backoff_ms: u64,
    /// `[delivery] max_backoff_secs`.
    pub max_backoff_secs: u64,
}

impl Settings {
    /// `channels` with fast retries: 5 s post timeout, 8 attempts, 50 ms first backoff, at most
    /// 2 s, 600 posts a minute.
    pub fn new(channels: Vec<ChannelSpec>) -> Settings {
        Settings {
            channels,
            rate_per_minute: 600,
            timeout_secs: 5,
            max_attempts: 8,
            initial_backoff_ms: 50,
            max_backoff_secs: 2,
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A temporary folder for a config and its outbox, removed on drop; it outlives daemon restarts.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Workdir {
    /// A new empty folder under the system's temporary folder.
    pub fn new(name: &str) -> Workdir {
        let path = std::env::temp_dir().join(unique(&format!("gcb-e2e-{name}")));
        std::fs::create_dir_all(&path).unwrap();
        Workdir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `config.toml` (listening on 127.0.0.1:0, outbox `outbox.sqlite` here) and
    /// returns its path.
    pub fn write_config(&self, s: &Settings) -> PathBuf {
        let mut cfg = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = {}\nmax_body_bytes = {MAX_BODY_BYTES}\n\n\
             [outbox]\npath = {}\nsynchronous = \"normal\"\n\n\
             [delivery]\ntimeout_secs = {}\nmax_attempts = {}\ninitial_backoff_ms = {}\nmax_backoff_secs = {}\n",
            toml_str(TOKEN),
            toml_str(&self.path.join("outbox.sqlite").display().to_string()),
            s.timeout_secs,
            s.max_attempts,
            s.initial_backoff_ms,
            s.max_backoff_secs,
        );
        for c in &s.channels {
            cfg.push_str(&format!(
                "\n[[channels]]\nname = {}\nurl = {}\nzapikey = {}\nconfidential = {}\nrate_per_minute = {}\n",
                toml_str(c.name),
                toml_str(&c.url),
                toml_str(c.zapikey),
                c.confidential,
                s.rate_per_minute,
            ));
            if let Some(events) = &c.events {
                let list: Vec<String> = events.iter().map(|e| toml_str(e)).collect();
                cfg.push_str(&format!("events = [{}]\n", list.join(", ")));
            }
        }
        let config = self.path.join("config.toml");
        std::fs::write(&config, cfg).unwrap();
        config
    }
}

/// A webhook's answer.
#[derive(Debug)]
pub struct HookAnswer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`null` if not JSON).
    pub body: Value,
}

/// Posts webhooks to one daemon as GitLab does; cheap to clone into concurrent tasks.
#[derive(Debug, Clone)]
pub struct Hooks {
    base: String,
    client: reqwest::Client,
}

impl Hooks {
    /// Posts a webhook with GitLab's headers. `token`: `None` sends the right one;
    /// `idempotency_key`: `None` makes a unique one. Fails on a transport error.
    pub async fn post(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> HookAnswer {
        self.send(event, body, Some(token.unwrap_or(TOKEN)), idempotency_key)
            .await
            .unwrap()
    }

    /// Like [`Hooks::post`] with the right token, but a transport error (connection refused or
    /// reset: the daemon is dead) is returned, not a failure.
    pub async fn try_post(
        &self,
        event: &str,
        body: Vec<u8>,
        idempotency_key: &str,
    ) -> Result<HookAnswer, String> {
        self.send(event, body, Some(TOKEN), Some(idempotency_key))
            .await
    }

    /// Posts with GitLab's headers; `token: None` sends no `X-Gitlab-Token`.
    pub async fn send(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<HookAnswer, String> {
        let key = idempotency_key
            .map(str::to_string)
            .unwrap_or_else(|| unique("idem"));
        let mut req = self
            .client
            .post(format!("{}/hooks/gitlab", self.base))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitLab/17.0.0")
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Instance", "https://gitlab.example.com")
            .header("X-Gitlab-Webhook-UUID", unique("uuid"))
            .header("X-Gitlab-Event-UUID", unique("event-uuid"))
            .header("Idempotency-Key", key)
            .body(body);
        if let Some(t) = token {
            req = req.header("X-Gitlab-Token", t);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        Ok(HookAnswer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// The real binary, serving on a loopback port; killed (SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    hooks: Hooks,
    /// The folder of a daemon made by [`Daemon::start`]; removed after the process is gone.
    workdir: Option<Workdir>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("ready") {
        return None;
    }
    // `[log] format = "json"` writes `"listen":"ADDR"`.
    if let Some(i) = line.find("\"listen\":\"") {
        let rest = &line[i + "\"listen\":\"".len()..];
        return rest.split('"').next()?.parse().ok();
    }
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The binary under test, with no proxy and no configuration from the environment.
fn bin_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitlab-chat-bridge"));
    cmd.env("NO_COLOR", "1")
        .env_remove("GITLAB_CHAT_BRIDGE_SECRET_TOKEN")
        .env_remove("GITLAB_CHAT_BRIDGE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null());
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}

impl Daemon {
    /// Writes a config for `channels` (see [`Settings::new`]) in a new folder and starts `serve`;
    /// waits (bounded) for `ready`. The folder goes with the daemon.
    pub async fn start(name: &str, channels: &[ChannelSpec]) -> Daemon {
        let dir = Workdir::new(name);
        let config = dir.write_config(&Settings::new(channels.to_vec()));
        let mut daemon = Daemon::spawn(&config).await;
        daemon.workdir = Some(dir);
        daemon
    }

    /// Starts `serve --config config` (debug logging); waits (bounded) for `ready`.
    pub async fn spawn(config: &Path) -> Daemon {
        Daemon::spawn_with_env(config, &[]).await
    }

    /// Like [`Daemon::spawn`], with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub async fn spawn_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = bin_command();
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if let Some(addr) = listen_addr(&line) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        let mut daemon = Daemon {
            child: Some(child),
            reader: Some(reader),
            log,
            hooks: Hooks {
                base: String::new(),
                client: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap(),
            },
            workdir: None,
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(STARTUP))
            .await
            .unwrap();
        match addr {
            Ok(a) => {
                assert!(a.ip().is_loopback(), "listening on {a}");
                daemon.hooks.base = format!("http://{a}");
            }
            Err(_) => {
                daemon.kill_now();
                panic!(
                    "the daemon did not log `ready` within {STARTUP:?}; its log: {:#?}",
                    daemon.log()
                );
            }
        }
        daemon
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reap it and collect the rest of its log.
    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// The daemon's base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.hooks.base
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A handle to post webhooks to this daemon from other tasks.
    pub fn hooks(&self) -> Hooks {
        self.hooks.clone()
    }

    /// Kills the daemon (SIGKILL: no clean-up at all) and returns its whole log.
    pub fn stop(mut self) -> Vec<String> {
        self.kill_now();
        self.log()
    }

    /// Sends SIGTERM (with `kill -TERM`) and waits up to `within` for the process to exit.
    /// Returns its exit status (`None`: still running after `within`, then killed) and its log.
    pub async fn terminate(mut self, within: Duration) -> (Option<ExitStatus>, Vec<String>) {
        let pid = self.pid();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = Instant::now() + within;
        let mut status = None;
        while let Some(child) = self.child.as_mut() {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                self.child = None;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_now();
        (status, self.log())
    }

    /// `GET path`; the status.
    pub async fn get(&self, path: &str) -> u16 {
        let r = self
            .hooks
            .client
            .get(format!("{}{path}", self.hooks.base))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Posts a fixture with its INDEX.tsv header and the right token.
    pub async fn post_fixture(&self, file: &str) -> HookAnswer {
        self.post(&event_header(file), fixture(file), None, None)
            .await
    }

    /// Posts a webhook with GitLab's headers. `token`: `None` sends the right one (use
    /// [`Daemon::post_without_token`] to send none); `idempotency_key`: `None` makes a
    /// unique one.
    pub async fn post(
        &self,
        event: &str,
        body: Vec<u8>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> HookAnswer {
        self.hooks.post(event, body, token, idempotency_key).await
    }

    /// Posts a webhook with GitLab's headers but no `X-Gitlab-Token`.
    pub async fn post_without_token(&self, event: &str, body: Vec<u8>) -> HookAnswer {
        self.hooks.send(event, body, None, None).await.unwrap()
    }
}

// ---- other subcommands ----------------------------------------------------------------------

/// What a finished subcommand printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the binary with `args` (e.g. `["outbox", "--config", F, "stats"]`); fails if it takes
/// longer than `timeout` (it is then killed).
pub async fn run_cli(args: &[&str], timeout: Duration) -> CliOutput {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = bin_command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{}` took longer than {timeout:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        CliOutput {
            code: status.code(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    })
    .await
    .unwrap()
}
