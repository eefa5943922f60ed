//! End-to-end tests on loopback: the real `gitlab-chat-bridge serve` binary, a fake Zoho Cliq
//! endpoint that enforces Cliq's contract (`zapikey`, message shape and limits; answers 429 with
//! `Retry-After` first when asked to, then 204), and GitLab's real payloads posted with GitLab's
//! headers. They check that the right cards arrive exactly once, that a throttled post is retried,
//! that nothing is posted for a wrong or missing token, a bad body or an unknown kind, that a
//! re-sent delivery is posted once, that channel filters and confidentiality hold, and that no
//! secret ever reaches the daemon's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::time::Duration;
use support::{ChannelSpec, Daemon, FakeCliq};

/// How long a message may take to reach the fake (with the 1 s throttle pause included).
const ARRIVAL: Duration = Duration::from_secs(15);
/// How long to keep watching for a message that must not come.
const QUIET: Duration = Duration::from_millis(500);

fn text(msg: &Value) -> &str {
    msg["text"].as_str().unwrap_or_default()
}

/// The one accepted message whose text contains `needle`; fails if none or several.
fn the_card<'a>(messages: &'a [Value], needle: &str) -> &'a Value {
    let found: Vec<&Value> = messages
        .iter()
        .filter(|m| text(m).contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one card containing {needle:?}, got {}: {messages:#?}",
        found.len()
    );
    found[0]
}

fn button_urls(msg: &Value) -> Vec<&str> {
    msg["buttons"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|b| b["action"]["data"]["web"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Every kind, posted with GitLab's headers while the fake throttles the first post: each webhook
/// is answered 200 at once, the throttled post is retried, and each card arrives exactly once
/// with what a user should see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_arrives_once_after_a_throttled_retry() {
    let fake = FakeCliq::start(1).await;
    let daemon = Daemon::start("kinds", &[ChannelSpec::new("dev", fake.url("dev"))]).await;

    let fixtures = [
        "issue__open.json",
        "merge_request__open.json",
        "push__basic.json",
        "note__issue.json",
        "note__commit.json",
        "note__merge_request.json",
        "note__snippet.json",
    ];
    for f in fixtures {
        let started = std::time::Instant::now();
        let answer = daemon.post_fixture(f).await;
        assert_eq!(answer.status, 200, "{f}: {answer:?}");
        assert_eq!(answer.body["status"], "queued", "{f}: {answer:?}");
        assert_eq!(answer.body["deliveries"], 1, "{f}: {answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{f} took {:?} to be answered",
            started.elapsed()
        );
    }

    fake.wait_for_accepted(fixtures.len(), ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(seen.throttled, 1, "the fake answered 429 once");
    assert_eq!(seen.accepted.len(), fixtures.len(), "{:#?}", seen.accepted);
    assert!(
        seen.requests > seen.accepted.len(),
        "no retry: {} requests for {} messages",
        seen.requests,
        seen.accepted.len()
    );
    assert_eq!(seen.requests, seen.accepted.len() + 1);
    assert!(seen.accepted.iter().all(|a| a.channel == "dev"));
    let msgs: Vec<Value> = seen.accepted.iter().map(|a| a.body.clone()).collect();
    for m in &msgs {
        assert_eq!(m["card"]["theme"], "modern-inline", "{m:#}");
        assert!(
            m["card"]["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{m:#}"
        );
    }

    let issue = the_card(&msgs, "New API: create/update/delete file");
    let t = text(issue);
    assert!(t.contains("Administrator"), "{t}");
    assert!(t.contains("http://example.com/diaspora/issues/23"), "{t}");
    assert!(button_urls(issue).contains(&"http://example.com/diaspora/issues/23"));

    let push = the_card(&msgs, "fixed readme");
    let t = text(push);
    assert!(t.contains("John Smith"), "{t}");
    assert!(
        t.contains(
            "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
        ),
        "{t}"
    );

    let mr = the_card(&msgs, "MS-Viewport");
    let t = text(mr);
    assert!(t.contains("ms-viewport → master"), "{t}");
    assert!(t.contains("Administrator"), "{t}");
    assert!(button_urls(mr).contains(&"http://example.com/diaspora/merge_requests/1"));

    let note = the_card(&msgs, "Hello world");
    assert!(text(note).contains("http://example.com/gitlab-org/gitlab-test/issues/17"));
    the_card(&msgs, "This is a commit comment. How does this work?");
    the_card(&msgs, "This MR needs work.");
    the_card(&msgs, "Is this snippet doing what it");

    let log = daemon.stop();
    assert!(
        log.iter().any(|l| l.contains("will retry")),
        "the retry is not in the log: {log:#?}"
    );
    support::assert_no_secrets(&log);
}

/// A wrong or missing `X-Gitlab-Token` is answered 401 and nothing reaches Cliq; a right one
/// afterwards is posted exactly once (so the refused ones were not queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_posts_nothing() {
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("token", &[ChannelSpec::new("dev", fake.url("dev"))]).await;
    let body = support::fixture("issue__open.json");

    let wrong = daemon
        .post("Issue Hook", body.clone(), Some("not-the-token"), None)
        .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let prefix = daemon
        .post("Issue Hook", body.clone(), Some("gl-SECRET"), None)
        .await;
    assert_eq!(prefix.status, 401, "{prefix:?}");
    let missing = daemon.post_without_token("Issue Hook", body.clone()).await;
    assert_eq!(missing.status, 401, "{missing:?}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(fake.snapshot().requests, 0, "posted for a refused token");

    let ok = daemon.post_fixture("issue__open.json").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.requests, 1);
    assert_eq!(seen.accepted.len(), 1);
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    support::assert_no_secrets(&daemon.stop());
}

/// Malformed JSON is 400, an oversized body 413, an unknown kind 200 and ignored, `/healthz` 200;
/// none of them posts anything, and a good webhook afterwards is the only message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_unknown_kinds_acknowledged() {
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("bodies", &[ChannelSpec::new("dev", fake.url("dev"))]).await;

    let malformed = daemon
        .post(
            "Push Hook",
            b"{\"object_kind\": \"push\",".to_vec(),
            None,
            None,
        )
        .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    let not_object = daemon
        .post("Push Hook", b"[1, 2, 3]".to_vec(), None, None)
        .await;
    assert_eq!(not_object.status, 400, "{not_object:?}");

    let big = json!({ "object_kind": "push", "pad": "x".repeat(100 * 1024) }).to_string();
    assert!(big.len() > support::MAX_BODY_BYTES);
    let too_large = daemon.post("Push Hook", big.into_bytes(), None, None).await;
    assert_eq!(too_large.status, 413, "{too_large:?}");

    let unknown = daemon
        .post(
            "Something New Hook",
            br#"{"object_kind":"brand_new"}"#.to_vec(),
            None,
            None,
        )
        .await;
    assert_eq!(unknown.status, 200, "{unknown:?}");
    assert_eq!(unknown.body["status"], "ignored", "{unknown:?}");
    assert_eq!(unknown.body["deliveries"], 0, "{unknown:?}");

    assert_eq!(daemon.get("/healthz").await, 200);
    tokio::time::sleep(QUIET).await;
    assert_eq!(fake.snapshot().requests, 0, "something was posted");

    let ok = daemon.post_fixture("push__basic.json").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.requests, 1);
    assert!(text(&seen.accepted[0].body).contains("fixed readme"));
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    support::assert_no_secrets(&daemon.stop());
}

/// GitLab re-sends a delivery with the same `Idempotency-Key`: it is posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_delivery_is_posted_once() {
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("dedupe", &[ChannelSpec::new("dev", fake.url("dev"))]).await;
    let body = support::fixture("issue__open.json");
    let key = support::unique("idem");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let a = daemon
            .post("Issue Hook", body.clone(), None, Some(&key))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        statuses.push(a.body["status"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(statuses, ["queued", "duplicate", "duplicate"]);
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 1, "{:#?}", seen.accepted);
    assert_eq!(seen.requests, 1);
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    support::assert_no_secrets(&daemon.stop());
}

/// `events` filters and `confidential` opt-in decide which channels get what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_get_what_they_subscribe_to() {
    let fake = FakeCliq::start(0).await;
    let mut pushes = ChannelSpec::new("pushes", fake.url("pushes"));
    pushes.events = Some(vec!["push*"]);
    let mut private = ChannelSpec::new("private", fake.url("private"));
    private.events = Some(vec!["issue.*"]);
    private.confidential = true;
    let daemon = Daemon::start(
        "routing",
        &[ChannelSpec::new("all", fake.url("all")), pushes, private],
    )
    .await;

    assert_eq!(daemon.post_fixture("push__basic.json").await.status, 200);
    assert_eq!(daemon.post_fixture("issue__open.json").await.status, 200);

    // Confidential by header only (GitLab's `Confidential Issue Hook`).
    let mut by_header: Value =
        serde_json::from_slice(&support::fixture("issue__open.json")).unwrap();
    by_header["object_attributes"]["title"] = json!("Secret plan by header");
    let a = daemon
        .post(
            "Confidential Issue Hook",
            by_header.to_string().into_bytes(),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["deliveries"], 1, "{a:?}");
    // Confidential by `event_type` under the plain header, as some GitLab versions send it.
    let mut by_type = by_header.clone();
    by_type["event_type"] = json!("confidential_issue");
    by_type["object_attributes"]["title"] = json!("Secret plan by event type");
    let a = daemon
        .post("Issue Hook", by_type.to_string().into_bytes(), None, None)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["deliveries"], 1, "{a:?}");

    // push → all, pushes; issue → all, private; two confidential issues → private.
    fake.wait_for_accepted(6, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    let channels_with = |needle: &str| {
        let mut c: Vec<String> = seen
            .accepted
            .iter()
            .filter(|a| text(&a.body).contains(needle))
            .map(|a| a.channel.clone())
            .collect();
        c.sort();
        c
    };
    assert_eq!(channels_with("fixed readme"), ["all", "pushes"]);
    assert_eq!(
        channels_with("New API: create/update/delete file"),
        ["all", "private"]
    );
    assert_eq!(channels_with("Secret plan by header"), ["private"]);
    assert_eq!(channels_with("Secret plan by event type"), ["private"]);
    assert_eq!(seen.accepted.len(), 6, "{:#?}", seen.accepted);
    support::assert_no_secrets(&daemon.stop());
}

/// Neither the zapikeys nor the secret token reach the log, on the paths most likely to leak
/// them: refused webhooks, a channel whose key Cliq refuses, a channel that cannot be reached
/// (network errors carry the URL, and so the zapikey, unless stripped), with debug logging on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let fake = FakeCliq::start(0).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut bad_key = ChannelSpec::new("badkey", fake.url("badkey"));
    bad_key.zapikey = support::OTHER_ZAPIKEY;
    let down = ChannelSpec::new(
        "down",
        format!("http://{closed}/api/v2/channelsbyname/down/message"),
    );
    let daemon = Daemon::start(
        "secrets",
        &[ChannelSpec::new("good", fake.url("good")), bad_key, down],
    )
    .await;

    let body = support::fixture("issue__open.json");
    let wrong = daemon
        .post("Issue Hook", body.clone(), Some("nope"), None)
        .await;
    assert_eq!(wrong.status, 401);
    let bad = daemon.post("Issue Hook", b"{".to_vec(), None, None).await;
    assert_eq!(bad.status, 400);
    let ok = daemon.post("Issue Hook", body, None, None).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["deliveries"], 3, "{ok:?}");

    fake.wait_for_accepted(1, ARRIVAL).await;
    support::wait_until("Cliq refuses the bad key", ARRIVAL, || {
        !fake.snapshot().violations.is_empty()
    })
    .await;
    support::wait_until(
        "two failed posts to the unreachable channel",
        ARRIVAL,
        || {
            daemon
                .log()
                .iter()
                .filter(|l| l.contains("down") && l.contains("will retry"))
                .count()
                >= 2
        },
    )
    .await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 1);
    assert_eq!(seen.accepted[0].channel, "good");
    assert!(
        seen.violations.iter().all(|v| v.starts_with("401 badkey")),
        "{:#?}",
        seen.violations
    );
    let log = daemon.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("rejected by the chat endpoint")),
        "{log:#?}"
    );
    support::assert_no_secrets(&log);
}

/// The daemon process, the fake Cliq endpoint, fixtures and polling helpers.
mod support {
    use axum::body::Bytes;
    use axum::extract::{Path as UrlPath, RawQuery, State};
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab")
    }

    /// A fixture's bytes.
    pub fn fixture(file: &str) -> Vec<u8> {
        std::fs::read(fixtures_dir().join(file)).unwrap()
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

    // ---- the fake Cliq endpoint -------------------------------------------------------------

    /// One message the fake accepted.
    #[derive(Debug, Clone)]
    pub struct Accepted {
        /// The channel's unique name from the URL.
        pub channel: String,
        /// The message body.
        pub body: Value,
    }

    /// What the fake has seen.
    #[derive(Debug, Clone, Default)]
    pub struct Seen {
        /// Every request, whatever its fate.
        pub requests: usize,
        /// Requests answered 429.
        pub throttled: usize,
        /// Messages answered 204.
        pub accepted: Vec<Accepted>,
        /// Contract violations (answered 400, 401 or 404), as `"<status> <channel>: <what>"`.
        pub violations: Vec<String>,
    }

    struct Shared {
        throttle_left: Mutex<usize>,
        seen: Mutex<Seen>,
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
        /// Starts on 127.0.0.1; the first `throttle_first` valid posts are answered 429.
        pub async fn start(throttle_first: usize) -> FakeCliq {
            let shared = Arc::new(Shared {
                throttle_left: Mutex::new(throttle_first),
                seen: Mutex::new(Seen::default()),
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

        /// A copy of what was seen so far.
        pub fn snapshot(&self) -> Seen {
            self.shared.seen.lock().unwrap().clone()
        }

        /// Waits until at least `n` messages were accepted.
        pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) {
            let deadline = Instant::now() + timeout;
            loop {
                let seen = self.snapshot();
                if seen.accepted.len() >= n {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out after {timeout:?} waiting for {n} messages; the fake saw {seen:#?}"
                );
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
        let mut seen = s.seen.lock().unwrap();
        seen.requests += 1;
        let key = query.as_deref().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "zapikey")
                .map(|(_, v)| v.into_owned())
        });
        if key.as_deref() != Some(ZAPIKEY) {
            seen.violations
                .push(format!("401 {channel}: missing or wrong zapikey"));
            return cliq_error(
                StatusCode::UNAUTHORIZED,
                "invalid_oauthtoken",
                "Invalid OAuth token or zapikey.",
            );
        }
        let msg = match check_message(&headers, &body) {
            Ok(m) => m,
            Err(what) => {
                seen.violations.push(format!("400 {channel}: {what}"));
                return cliq_error(StatusCode::BAD_REQUEST, "invalid_body", &what);
            }
        };
        {
            let mut left = s.throttle_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                seen.throttled += 1;
                let mut r = cliq_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many requests, try again later.",
                );
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                return r;
            }
        }
        seen.accepted.push(Accepted { channel, body: msg });
        StatusCode::NO_CONTENT.into_response()
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
        let msg: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
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

    // ---- the daemon -------------------------------------------------------------------------

    /// One `[[channels]]` entry.
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

    /// A webhook's answer.
    #[derive(Debug)]
    pub struct HookAnswer {
        /// HTTP status.
        pub status: u16,
        /// JSON body (`null` if not JSON).
        pub body: Value,
    }

    /// The real binary, serving on a loopback port; killed on drop.
    pub struct Daemon {
        child: Option<Child>,
        reader: Option<std::thread::JoinHandle<()>>,
        log: Arc<Mutex<Vec<String>>>,
        dir: PathBuf,
        base: String,
        client: reqwest::Client,
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
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
        let rest = &line[line.find("listen=")? + "listen=".len()..];
        rest.split_whitespace().next()?.parse().ok()
    }

    fn toml_str(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    impl Daemon {
        /// Writes a config for `channels` and starts `serve`; waits (bounded) for `ready`.
        pub async fn start(name: &str, channels: &[ChannelSpec]) -> Daemon {
            let dir = std::env::temp_dir().join(unique(&format!("gcb-e2e-{name}")));
            std::fs::create_dir_all(&dir).unwrap();
            let mut cfg = format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nsecret_token = {}\nmax_body_bytes = {MAX_BODY_BYTES}\n\n\
                 [outbox]\npath = {}\nsynchronous = \"normal\"\n\n\
                 [delivery]\ntimeout_secs = 5\nmax_attempts = 8\ninitial_backoff_ms = 50\nmax_backoff_secs = 2\n",
                toml_str(TOKEN),
                toml_str(&dir.join("outbox.sqlite").display().to_string()),
            );
            for c in channels {
                cfg.push_str(&format!(
                    "\n[[channels]]\nname = {}\nurl = {}\nzapikey = {}\nconfidential = {}\nrate_per_minute = 600\n",
                    toml_str(c.name),
                    toml_str(&c.url),
                    toml_str(c.zapikey),
                    c.confidential
                ));
                if let Some(events) = &c.events {
                    let list: Vec<String> = events.iter().map(|e| toml_str(e)).collect();
                    cfg.push_str(&format!("events = [{}]\n", list.join(", ")));
                }
            }
            let config = dir.join("config.toml");
            std::fs::write(&config, cfg).unwrap();

            let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitlab-chat-bridge"));
            cmd.arg("serve")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "debug")
                .env("NO_COLOR", "1")
                .env_remove("GITLAB_CHAT_BRIDGE_SECRET_TOKEN")
                .env_remove("GITLAB_CHAT_BRIDGE_CONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
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
                dir,
                base: String::new(),
                client: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap(),
            };
            let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(STARTUP))
                .await
                .unwrap();
            match addr {
                Ok(a) => {
                    assert!(a.ip().is_loopback(), "listening on {a}");
                    daemon.base = format!("http://{a}");
                }
                Err(_) => {
                    daemon.kill();
                    panic!(
                        "the daemon did not log `ready` within {STARTUP:?}; its log: {:#?}",
                        daemon.log()
                    );
                }
            }
            daemon
        }

        fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
        }

        /// The log lines so far.
        pub fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        /// Stops the daemon and returns its whole log.
        pub fn stop(mut self) -> Vec<String> {
            self.kill();
            self.log()
        }

        /// `GET path`; the status.
        pub async fn get(&self, path: &str) -> u16 {
            let r = self
                .client
                .get(format!("{}{path}", self.base))
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
            self.send(event, body, Some(token.unwrap_or(TOKEN)), idempotency_key)
                .await
        }

        /// Posts a webhook with GitLab's headers but no `X-Gitlab-Token`.
        pub async fn post_without_token(&self, event: &str, body: Vec<u8>) -> HookAnswer {
            self.send(event, body, None, None).await
        }

        async fn send(
            &self,
            event: &str,
            body: Vec<u8>,
            token: Option<&str>,
            idempotency_key: Option<&str>,
        ) -> HookAnswer {
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
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            HookAnswer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            }
        }
    }
}
