//! One local server standing in for every other kind's endpoint: Slack
//! (`/services/T/B/TOKEN`), Mattermost (`/hooks/KEY`), Teams (`/workflows/ID`), Google Chat
//! (`/v1/spaces/S/messages?key&token`), Discord (`/api/webhooks/ID/TOKEN`), a generic webhook
//! (`/webhook/NAME`), a Cliq extension or bot incoming URL (`/api/v2/applications/ID/incoming`,
//! `/api/v2/bots/NAME/incoming`) and a Zoho function (`/crm/v7/functions/NAME/actions/execute`).
//! Each enforces its kind's contract ([`super::chats::violations`]) and credential (token in
//! the path, or `appkey`/`zapikey` in the query), answers 400 on a violation, and can be told to
//! answer a kind's next posts with its 429.

use super::chats::violations;
use super::fake_api::{wait, FakeApi};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token in every fake webhook URL.
pub const TOKEN: &str = "hooktoken-SECRET-5678";
/// The `appkey` of the fake extension.
pub const APPKEY: &str = "appkey-SECRET-9999";

/// One post the fake saw.
#[derive(Debug, Clone)]
pub struct Post {
    /// `slack`, `mattermost`, `teams`, `google_chat`, `discord`, `webhook`, `extension`, `function`.
    pub kind: String,
    /// The query string.
    pub query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: Value,
    /// The raw body.
    pub raw: Bytes,
    /// When it was answered 2xx (`None`: refused or throttled).
    pub accepted_at: Option<Instant>,
    /// What was wrong with it.
    pub violations: Vec<String>,
}

#[derive(Default)]
struct Shared {
    posts: Vec<Post>,
    throttle: HashMap<String, usize>,
    /// Discord's answers say the bucket is empty (`X-RateLimit-Remaining: 0`) and refills after
    /// this many seconds.
    discord_reset_after: Option<f64>,
}

/// The fake server.
pub struct FakeChats {
    api: FakeApi<Shared>,
}

impl FakeChats {
    /// Starts on 127.0.0.1.
    pub async fn start() -> FakeChats {
        FakeChats {
            api: FakeApi::start(Shared::default(), handle).await,
        }
    }

    /// The URL of a kind's endpoint, with its credential where the kind puts it in the URL.
    pub fn url(&self, kind: &str) -> String {
        let a = self.api.addr();
        match kind {
            "slack" => format!("http://{a}/services/T000/B000/{TOKEN}"),
            "mattermost" => format!("http://{a}/hooks/{TOKEN}"),
            "teams" => format!("http://{a}/workflows/{TOKEN}"),
            "google_chat" => format!("http://{a}/v1/spaces/AAAA/messages?key=k&token={TOKEN}"),
            "discord" => format!("http://{a}/api/webhooks/42/{TOKEN}"),
            "webhook" => format!("http://{a}/webhook/{TOKEN}"),
            "extension" => format!("http://{a}/api/v2/applications/77/incoming?appkey={APPKEY}"),
            "bot" => format!("http://{a}/api/v2/bots/gitlab/incoming"),
            "function" => {
                format!("http://{a}/crm/v7/functions/gitlab/actions/execute?auth_type=apikey")
            }
            other => panic!("no fake for {other}"),
        }
    }

    /// Answers `kind`'s next `n` valid posts with its 429.
    pub fn throttle(&self, kind: &str, n: usize) {
        self.api.state().throttle.insert(kind.to_string(), n);
    }

    /// Makes Discord's 2xx answers say the webhook's bucket is empty for `secs` seconds.
    pub fn discord_bucket_empty(&self, secs: f64) {
        self.api.state().discord_reset_after = Some(secs);
    }

    /// Every post so far.
    pub fn posts(&self) -> Vec<Post> {
        self.api.state().posts.clone()
    }

    /// The accepted posts of `kind`.
    pub fn accepted(&self, kind: &str) -> Vec<Post> {
        self.posts()
            .into_iter()
            .filter(|p| p.kind == kind && p.accepted_at.is_some())
            .collect()
    }

    /// Waits (bounded) until every kind in `kinds` has at least one accepted post.
    pub async fn wait_for(&self, kinds: &[&str], timeout: Duration) {
        wait(
            timeout,
            || kinds.iter().all(|k| !self.accepted(k).is_empty()),
            || format!("timed out; posts: {:#?}", self.posts()),
        )
        .await;
    }
}

fn kind_of(path: &str) -> Option<&'static str> {
    let token = path.ends_with(&format!("/{TOKEN}"));
    Some(match path {
        p if p.starts_with("/services/") && token => "slack",
        p if p.starts_with("/hooks/") && token => "mattermost",
        p if p.starts_with("/workflows/") && token => "teams",
        "/v1/spaces/AAAA/messages" => "google_chat",
        p if p.starts_with("/api/webhooks/") && token => "discord",
        p if p.starts_with("/webhook/") && token => "webhook",
        "/api/v2/applications/77/incoming" => "extension",
        "/api/v2/bots/gitlab/incoming" => "bot",
        "/crm/v7/functions/gitlab/actions/execute" => "function",
        _ => return None,
    })
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let Some(kind) = kind_of(uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such webhook").into_response();
    };
    let query = query.unwrap_or_default();
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut problems = Vec::new();
    match kind {
        "slack" | "mattermost" | "teams" | "discord" => problems = violations(kind, &body),
        "google_chat" => {
            problems = violations(kind, &body);
            if q.get("token").map(String::as_str) != Some(TOKEN) {
                problems.push("google_chat: wrong token".into());
            }
            if q.get("messageReplyOption").map(String::as_str)
                != Some("REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
            {
                problems.push("google_chat: no messageReplyOption".into());
            }
        }
        "extension" | "bot" | "function" => {
            if q.get("zapikey").map(String::as_str) != Some(super::fake_cliq::ZAPIKEY) {
                problems.push(format!("{kind}: wrong zapikey"));
            }
            if kind == "extension" && q.get("appkey").map(String::as_str) != Some(APPKEY) {
                problems.push("extension: wrong appkey".into());
            }
            if kind == "function" && q.get("auth_type").map(String::as_str) != Some("apikey") {
                problems.push("function: auth_type=apikey missing".into());
            }
            if !body.is_object() {
                problems.push(format!("{kind}: not a JSON object"));
            }
        }
        _ => {
            if !body.is_object() {
                problems.push(format!("{kind}: not a JSON object"));
            }
        }
    }
    let mut s = shared.lock().unwrap();
    let throttled = problems.is_empty()
        && s.throttle.get_mut(kind).is_some_and(|n| {
            let t = *n > 0;
            *n = n.saturating_sub(1);
            t
        });
    let accepted = problems.is_empty() && !throttled;
    let reset_after = s.discord_reset_after;
    s.posts.push(Post {
        kind: kind.to_string(),
        query,
        headers,
        body,
        raw,
        accepted_at: accepted.then(Instant::now),
        violations: problems.clone(),
    });
    drop(s);
    if !problems.is_empty() {
        return (StatusCode::BAD_REQUEST, problems.join("; ")).into_response();
    }
    if throttled {
        return match kind {
            "discord" => (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false})),
            )
                .into_response(),
            _ => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate_limited").into_response(),
        };
    }
    match kind {
        "slack" => (StatusCode::OK, "ok").into_response(),
        "discord" => match reset_after {
            Some(secs) => (
                StatusCode::NO_CONTENT,
                [
                    ("x-ratelimit-limit", "5".to_string()),
                    ("x-ratelimit-remaining", "0".to_string()),
                    ("x-ratelimit-reset-after", format!("{secs:.3}")),
                ],
            )
                .into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        _ => (StatusCode::OK, axum::Json(json!({}))).into_response(),
    }
}
