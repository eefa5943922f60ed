//! One POST to a chat endpoint and what its answer means for retrying.
//!
//! Any 2xx is success (Cliq answers 204, or 200 with a body). 429, 5xx, 408, network errors and
//! Cliq's throttle answer (`400 {"code":"request_limit_exceeded"}`) are retried; other 4xx are
//! permanent and carry the answer's `message` (Cliq, Discord) or text (Slack's `invalid_blocks`).
//! A wait comes from `Retry-After` or, failing that, a JSON `retry_after` in seconds (Discord);
//! after a 2xx with `X-RateLimit-Remaining: 0` the next post to that endpoint waits
//! `X-RateLimit-Reset-After` (Discord's per-webhook bucket). Credentials are added here and never
//! appear in an error: reqwest errors are stripped of their URL. A signed endpoint's posts carry
//! Standard Webhooks' `webhook-id` (the message's id, the same on every retry),
//! `webhook-timestamp` and `webhook-signature`.
//!
//! Each chat with an API of its own has a file here: `telegram` (Bot API: `chat_id` at send
//! time, `migrate_to_chat_id`, replies and `editMessageText`) and `matrix` (a `PUT` per txnId,
//! room aliases, `m.thread` and `m.replace`), `discord` (a webhook's `?wait=true`,
//! `?thread_id=`, forum posts and `PATCH …/messages/{id}`), `slack` (bot token:
//! `chat.postMessage` with `thread_ts` and `reply_broadcast`, `chat.update`; `{ok: false,
//! error}` answers) and `mattermost` (`POST /api/v4/posts` with `root_id`, `PUT …/patch`, a
//! broadcast a short line of its own); they build their requests with
//! `Sender::request`, the one place an HTTP request leaves the daemon, and classify the
//! answers their own way. [`Sender::converse`] posts a message as a conversation's root, a
//! reply in its thread or an edit of the root, in the chat's own terms; a root's reference is
//! read from the answer, and a reply or edit whose root the chat no longer has says so
//! ([`Posted::root_lost`]), for a new root. `cliq` is Cliq's REST API with OAuth (a refresh
//! token traded for access tokens kept per credential; `sync_message`, `thread_message_id`,
//! `post_in_parent` and root edits, each failing soft to flat posts).

mod cliq;
mod discord;
mod matrix;
mod mattermost;
mod slack;
mod telegram;

pub use cliq::{cliq_act, cliq_target, CliqTarget, MESSAGE_NOT_FOUND, REFRESH_EARLY};
pub use discord::{discord_root_lost, discord_url, thread_name, MAX_THREAD_NAME_CHARS};
use matrix::matrix_alias;
pub use matrix::{classify_matrix, matrix_act, txn_id, ResolveError};
pub use mattermost::{classify_mattermost, mattermost_act};
pub use slack::{classify_slack, slack_act};
pub use telegram::{classify_telegram, telegram_act, telegram_body};

use super::conversation::Act;
use super::{Auth, Endpoint};
use crate::signing::SigningKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cliq's error code for "too many requests" on older deployments (sent with HTTP 400).
pub const THROTTLE_CODE: &str = "request_limit_exceeded";
/// Longest error text kept from an answer body.
const MAX_REASON_CHARS: usize = 300;
/// Longest pause honoured from `X-RateLimit-Reset-After` before the next post.
const MAX_BUCKET_WAIT: Duration = Duration::from_secs(60);

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Posted (2xx).
    Delivered(u16),
    /// Failed for now; try again later.
    Retry {
        /// HTTP status, if an answer came.
        status: Option<u16>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// True for 429 / `request_limit_exceeded`: the whole credential should pause.
        throttled: bool,
        /// What happened, without secrets.
        reason: String,
    },
    /// Telegram: the group became a supergroup with this chat id; the message was not posted
    /// and should be posted there (`migrate_to_chat_id`).
    Migrated {
        /// The new `chat_id`.
        to: String,
        /// What happened, without secrets.
        reason: String,
    },
    /// Failed for good (bad channel, bad token, invalid message).
    Permanent {
        /// HTTP status.
        status: u16,
        /// Cliq's message or the answer's text.
        reason: String,
    },
}

/// What a post in a conversation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The attempt's outcome.
    pub attempt: Attempt,
    /// A posted root's reference in the chat (JSON: Telegram `{"message_id"}`, Matrix
    /// `{"event_id"}`, Slack `{"channel", "ts"}`, Mattermost `{"id"}`), when the chat gave one.
    /// With [`Posted::root_lost`] on a delivered reply: the chat posted the reply on its own in
    /// the channel (Slack, when the thread's root is gone), and this is that post.
    pub reference: Option<String>,
    /// The reply's or edit's root is gone from the chat (deleted): a new root is needed.
    pub root_lost: bool,
}

/// Whether a broadcast reply in `auth`'s chat is a post of its own in the channel
/// ([`Act::Broadcast`], after the reply): where a thread's replies are out of the channel's
/// timeline and the reply itself cannot be shown there (Matrix, Mattermost). `false` where the
/// reply is in the chat's timeline already (Telegram; a Discord text channel, whose replies are
/// posts), where there is no channel beside the threads (a Discord forum: its posts are the
/// threads), or where the reply carries the broadcast itself ([`Act::Reply`]'s `broadcast`).
pub fn separate_broadcast(auth: &Auth) -> bool {
    matches!(auth, Auth::Matrix { .. } | Auth::Mattermost { .. })
}

/// A chat API's answer: status, `Retry-After` and body.
#[derive(Debug)]
struct Answer {
    /// The HTTP status.
    status: u16,
    /// The `Retry-After` header, if any.
    retry_after: Option<String>,
    /// The `X-Ratelimit-Reset` header (Mattermost: seconds until its limit resets), if any.
    ratelimit_reset: Option<String>,
    /// The body.
    body: Vec<u8>,
}

impl Posted {
    /// `attempt`, with no reference and no root lost.
    fn of(attempt: Attempt) -> Posted {
        Posted {
            attempt,
            reference: None,
            root_lost: false,
        }
    }

    /// Refused for good before anything was sent, for `reason`.
    fn refused(reason: String) -> Posted {
        Posted::of(Attempt::Permanent { status: 0, reason })
    }

    /// A body that is not a JSON object: refused for good, nothing sent.
    fn not_json() -> Posted {
        Posted::refused("the message is not a JSON object".into())
    }
}

/// One call of a chat's API with `token` as `Authorization: Bearer` and a JSON `body` (see
/// [`Sender::request`]): its answer, or the [`Posted`] to report: `url` malformed (refused for
/// good, naming `what`; the parser's message never quotes the URL) or the request failed.
async fn api_call(
    sender: &Sender,
    method: reqwest::Method,
    url: &str,
    what: &str,
    token: &crate::secret::Secret,
    body: &str,
    bucket: &str,
) -> Result<Answer, Posted> {
    let url = reqwest::Url::parse(url).map_err(|e| Posted::refused(format!("bad {what}: {e}")))?;
    let headers = [("Authorization", format!("Bearer {}", token.expose()))];
    sender
        .request(method, url, &headers, Some(body), bucket)
        .await
        .map_err(Posted::of)
}

/// The string `key` of a parsed JSON answer, `""` when there is none.
fn answer_str<'a>(parsed: Option<&'a serde_json::Value>, key: &str) -> &'a str {
    parsed
        .and_then(|v| v.get(key))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

/// Posts messages over HTTP(S).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Endpoint (logged form) → when its rate-limit bucket refills, after one said it was empty.
    hold: Arc<Mutex<HashMap<String, Instant>>>,
    /// A Matrix endpoint naming a room alias → its send URL with the room id.
    rooms: Arc<Mutex<HashMap<String, String>>>,
    /// Cliq's access tokens per credential, chat ids and refusals per channel.
    cliq: Arc<cliq::CliqState>,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct SenderError(String);

impl Sender {
    /// A sender whose posts time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Sender, SenderError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("gitlab-chat-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SenderError(e.without_url().to_string()))?;
        Ok(Sender {
            client,
            hold: Arc::default(),
            rooms: Arc::default(),
            cliq: Arc::default(),
        })
    }

    /// Resolves the room alias of a Matrix endpoint now (`serve` at start), so a wrong alias
    /// shows in the log before any post; posts resolve it themselves when this could not.
    pub async fn prepare(&self, endpoint: &Endpoint) -> Result<(), String> {
        match &endpoint.auth {
            Auth::Matrix { token } if matrix_alias(&endpoint.url).is_some() => self
                .matrix_room_url(&endpoint.url, token)
                .await
                .map(|_| ())
                .map_err(|a| match a {
                    Attempt::Permanent { reason, .. } | Attempt::Retry { reason, .. } => reason,
                    other => format!("{other:?}"),
                }),
            _ => Ok(()),
        }
    }

    /// POSTs `body` (JSON) to `endpoint`; `id` names the message (the same on every retry).
    pub async fn post(&self, endpoint: &Endpoint, id: &str, body: &str) -> Attempt {
        if let Auth::CliqOAuth(oauth) = &endpoint.auth {
            return cliq::post(self, endpoint, oauth, body).await;
        }
        if let Auth::Discord { forum: true, .. } = &endpoint.auth {
            // A forum takes no message outside a post: each message starts a post of its own.
            return discord::converse(self, endpoint, body, Act::Root)
                .await
                .attempt;
        }
        match &endpoint.auth {
            // Their API's post is a conversation's root, without a thread.
            Auth::Slack { .. } => {
                slack::converse(self, endpoint, body, Act::Root)
                    .await
                    .attempt
            }
            Auth::Mattermost { .. } => {
                mattermost::converse(self, endpoint, body, Act::Root)
                    .await
                    .attempt
            }
            _ => self.exchange(endpoint, id, body, None).await.0,
        }
    }

    /// Posts `body` as `act` in a conversation: a root (its reference is returned), a reply
    /// in a root's thread, or an edit of a root. Telegram: `reply_parameters` (never without
    /// the reply) and `editMessageText`; Matrix: an `m.thread` relation with a reply fallback,
    /// and `m.replace` under a txnId of its own; Slack: `thread_ts` (`reply_broadcast`) and
    /// `chat.update`; Mattermost: `root_id` and a `patch`. Other chats post flat and give no
    /// reference.
    pub async fn converse(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: &str,
        act: Act<'_>,
    ) -> Posted {
        match &endpoint.auth {
            Auth::Telegram { .. } => telegram::converse(self, endpoint, id, body, act).await,
            Auth::Matrix { .. } => matrix::converse(self, endpoint, id, body, act).await,
            Auth::Discord { .. } => discord::converse(self, endpoint, body, act).await,
            Auth::CliqOAuth(oauth) => cliq::converse(self, endpoint, oauth, body, act).await,
            Auth::Slack { .. } => slack::converse(self, endpoint, body, act).await,
            Auth::Mattermost { .. } => mattermost::converse(self, endpoint, body, act).await,
            _ => Posted::of(self.post(endpoint, id, body).await),
        }
    }

    /// Sends `body` to `endpoint` (Telegram: to `method` instead of `sendMessage`); the
    /// attempt and the answer's body.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        id: &str,
        body: &str,
        method: Option<&str>,
    ) -> (Attempt, Vec<u8>) {
        let matrix_url;
        let telegram_url;
        let raw_url = match &endpoint.auth {
            Auth::Telegram { url: u, .. } if method.is_some() => {
                let base = u.expose().trim_end_matches("/sendMessage");
                telegram_url = format!("{base}/{}", method.unwrap_or("sendMessage"));
                telegram_url.as_str()
            }
            Auth::SecretUrl(u)
            | Auth::Signed { url: u, .. }
            | Auth::Telegram { url: u, .. }
            | Auth::Discord { url: u, .. } => u.expose(),
            Auth::Matrix { token } => {
                let room_url = match self.matrix_room_url(&endpoint.url, token).await {
                    Ok(u) => u,
                    Err(attempt) => return (attempt, Vec::new()),
                };
                matrix_url = format!("{}/{}", room_url.trim_end_matches('/'), txn_id(id));
                matrix_url.as_str()
            }
            _ => endpoint.url.as_str(),
        };
        let mut body = std::borrow::Cow::Borrowed(body);
        if let Auth::Telegram {
            chat_id,
            message_thread_id,
            ..
        } = &endpoint.auth
        {
            match telegram_body(&body, chat_id, *message_thread_id) {
                Some(b) => body = std::borrow::Cow::Owned(b),
                None => {
                    return (
                        Attempt::Permanent {
                            status: 0,
                            reason: "the message is not a JSON object".into(),
                        },
                        Vec::new(),
                    )
                }
            }
        }
        let body: &str = &body;
        let mut url = match reqwest::Url::parse(raw_url) {
            Ok(u) => u,
            // The parser's message never quotes the URL.
            Err(e) => {
                return (
                    Attempt::Permanent {
                        status: 0,
                        reason: format!("bad endpoint URL: {e}"),
                    },
                    Vec::new(),
                )
            }
        };
        let mut headers = Vec::new();
        match &endpoint.auth {
            Auth::ZapiKey(k) => {
                url.query_pairs_mut().append_pair("zapikey", k.expose());
            }
            Auth::Query(keys) => {
                let mut q = url.query_pairs_mut();
                for (k, v) in keys {
                    q.append_pair(k, v.expose());
                }
            }
            Auth::OAuth(t) => {
                headers.push(("Authorization", format!("Zoho-oauthtoken {}", t.expose())));
            }
            Auth::Signed { key, .. } => {
                let Some(key) = SigningKey::parse(key.expose()) else {
                    return (
                        Attempt::Permanent {
                            status: 0,
                            reason: "the signing secret is not whsec_ followed by base64".into(),
                        },
                        Vec::new(),
                    );
                };
                let ts = chrono::Utc::now().timestamp().to_string();
                let msg_id = format!("msg_{id}");
                headers.push((
                    "webhook-signature",
                    key.signature_header(&msg_id, &ts, body.as_bytes()),
                ));
                headers.push(("webhook-id", msg_id));
                headers.push(("webhook-timestamp", ts));
            }
            Auth::Matrix { token } => {
                headers.push(("Authorization", format!("Bearer {}", token.expose())));
            }
            // Cliq OAuth is posted by `cliq`, never through here.
            Auth::SecretUrl(_)
            | Auth::Telegram { .. }
            | Auth::Discord { .. }
            | Auth::CliqOAuth(_)
            | Auth::Slack { .. }
            | Auth::Mattermost { .. }
            | Auth::None => {}
        }
        let method = match &endpoint.auth {
            Auth::Matrix { .. } => reqwest::Method::PUT,
            _ => reqwest::Method::POST,
        };
        let answer = match self
            .request(method, url, &headers, Some(body), &endpoint.url)
            .await
        {
            Ok(a) => a,
            Err(attempt) => return (attempt, Vec::new()),
        };
        let retry_after = answer.retry_after.as_deref();
        let attempt = match &endpoint.auth {
            Auth::Telegram { .. } => classify_telegram(answer.status, retry_after, &answer.body),
            Auth::Matrix { .. } => classify_matrix(answer.status, retry_after, &answer.body),
            _ => classify(answer.status, retry_after, &answer.body),
        };
        (attempt, answer.body)
    }

    /// One HTTP request of a chat's API (the chats' own files build theirs with it): `url` with
    /// any credential it holds, `headers` (an `Authorization` among them), a JSON `body`;
    /// `bucket` is the endpoint's logged form, the key of its rate-limit bucket. A network
    /// failure is the attempt to record (retried; its text never holds the URL).
    async fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: &[(&str, String)],
        body: Option<&str>,
        bucket: &str,
    ) -> Result<Answer, Attempt> {
        self.wait_for_bucket(bucket).await;
        let mut req = self.client.request(method, url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.map_err(|e| Attempt::Retry {
            status: None,
            retry_after: None,
            throttled: false,
            reason: describe(e),
        })?;
        let status = r.status().as_u16();
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after");
        if header("x-ratelimit-remaining").as_deref() == Some("0") {
            if let Some(wait) = header("x-ratelimit-reset-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
            {
                let wait = Duration::from_secs_f64(wait).min(MAX_BUCKET_WAIT);
                if let Ok(mut hold) = self.hold.lock() {
                    hold.insert(bucket.to_string(), Instant::now() + wait);
                }
            }
        }
        let ratelimit_reset = header("x-ratelimit-reset");
        let body = r.bytes().await.unwrap_or_default().to_vec();
        Ok(Answer {
            status,
            retry_after,
            ratelimit_reset,
            body,
        })
    }

    /// Waits while the endpoint's rate-limit bucket is empty (Discord's `X-RateLimit-*`).
    async fn wait_for_bucket(&self, endpoint: &str) {
        let until = self.hold.lock().ok().and_then(|mut h| h.remove(endpoint));
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// A reqwest error with its causes ("error sending request: connection refused"), never the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Decides what an answer means (pure, so it is tested without a server).
pub fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Delivered(status);
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .to_string();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut reason = if code.is_empty() {
        format!("HTTP {status}: {message}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    if reason.chars().count() > MAX_REASON_CHARS {
        reason = reason.chars().take(MAX_REASON_CHARS).collect::<String>() + "…";
    }
    let throttled = status == 429 || code == THROTTLE_CODE;
    if throttled || status == 408 || status >= 500 {
        // Discord's 429 body: {"retry_after": 1.5, ...} in seconds.
        let json_wait = parsed
            .as_ref()
            .and_then(|v| v.get("retry_after"))
            .and_then(serde_json::Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
        return Attempt::Retry {
            status: Some(status),
            retry_after: retry_after.and_then(parse_retry_after).or(json_wait),
            throttled,
            reason,
        };
    }
    Attempt::Permanent { status, reason }
}

/// `reason` cut to [`MAX_REASON_CHARS`].
fn short(reason: String) -> String {
    if reason.chars().count() > MAX_REASON_CHARS {
        reason.chars().take(MAX_REASON_CHARS).collect::<String>() + "…"
    } else {
        reason
    }
}

/// A JSON number of seconds as a wait, capped at an hour.
fn seconds(v: Option<&serde_json::Value>) -> Option<Duration> {
    v.and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(204, None, b""), Attempt::Delivered(204));
        assert!(matches!(
            classify(429, Some("7"), b""),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(
                400,
                None,
                br#"{"code":"request_limit_exceeded","message":"slow down"}"#
            ),
            Attempt::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(503, None, b"oops"),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
        match classify(
            404,
            None,
            br#"{"code":"channel_not_found","message":"No such channel"}"#,
        ) {
            Attempt::Permanent {
                status: 404,
                reason,
            } => assert!(reason.contains("No such channel")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn discord_and_slack_throttles() {
        assert!(matches!(
            classify(429, None, br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_millis(1500)
        ));
        assert!(matches!(
            classify(429, Some("30"), b"rate_limited"),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(30)
        ));
        match classify(400, None, b"invalid_blocks") {
            Attempt::Permanent {
                status: 400,
                reason,
            } => assert!(reason.contains("invalid_blocks")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn telegram_answers() {
        assert_eq!(
            classify_telegram(200, None, br#"{"ok":true,"result":{"message_id":7}}"#),
            Attempt::Delivered(200)
        );
        assert!(matches!(
            classify_telegram(429, None, br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(35)
        ));
        assert_eq!(
            classify_telegram(400, None, br#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#),
            Attempt::Migrated {
                to: "-1001234567890".into(),
                reason: "HTTP 400: Bad Request: group chat was upgraded to a supergroup chat".into()
            }
        );
        assert_eq!(
            classify_telegram(403, None, br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was kicked from the supergroup chat"}"#),
            Attempt::Permanent {
                status: 403,
                reason: "HTTP 403: Forbidden: bot was kicked from the supergroup chat".into()
            }
        );
        assert!(matches!(
            classify_telegram(400, None, br#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Unsupported start tag \"script\""}"#),
            Attempt::Permanent { status: 400, reason } if reason.contains("can't parse entities")
        ));
        assert_eq!(
            classify_telegram(400, None, br#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}"#),
            Attempt::Delivered(400)
        );
        assert!(matches!(
            classify_telegram(502, None, b"Bad Gateway"),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
    }

    #[test]
    fn matrix_answers() {
        assert_eq!(
            classify_matrix(200, None, br#"{"event_id":"$a:b"}"#),
            Attempt::Delivered(200)
        );
        assert!(matches!(
            classify_matrix(429, None, br#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":2500}"#),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_millis(2500)
        ));
        assert!(matches!(
            classify_matrix(429, Some("4"), br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(4)
        ));
        assert_eq!(
            classify_matrix(403, None, br#"{"errcode":"M_FORBIDDEN","error":"User @bot:localhost not in room !r:localhost"}"#),
            Attempt::Permanent {
                status: 403,
                reason: "HTTP 403 M_FORBIDDEN: User @bot:localhost not in room !r:localhost".into()
            }
        );
        assert!(matches!(
            classify_matrix(401, None, br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed."}"#),
            Attempt::Permanent { status: 401, reason } if reason.contains("M_UNKNOWN_TOKEN")
        ));
        assert!(matches!(
            classify_matrix(500, None, b""),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
    }

    #[test]
    fn matrix_aliases_are_found_in_send_urls() {
        let alias = super::super::Endpoint::matrix(
            "http://127.0.0.1:8008",
            "#dev:example.org",
            crate::secret::Secret::new("t"),
        );
        assert_eq!(
            matrix_alias(&alias.url),
            Some(("http://127.0.0.1:8008".into(), "#dev:example.org".into()))
        );
        let id = super::super::Endpoint::matrix(
            "http://127.0.0.1:8008",
            "!abc:example.org",
            crate::secret::Secret::new("t"),
        );
        assert_eq!(matrix_alias(&id.url), None);
    }

    #[test]
    fn txn_ids_are_stable_and_path_safe() {
        let a = txn_id("req-1/mx");
        assert_eq!(a, txn_id("req-1/mx"));
        assert_ne!(a, txn_id("req-2/mx"));
        assert_eq!(a.len(), 35);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn telegram_bodies_get_their_chat() {
        let b = telegram_body(r#"{"text":"hi","parse_mode":"HTML"}"#, "-100123", Some(42));
        let v: serde_json::Value = serde_json::from_str(&b.unwrap_or_default()).unwrap_or_default();
        assert_eq!(v["chat_id"], -100123);
        assert_eq!(v["message_thread_id"], 42);
        let b = telegram_body(r#"{"text":"hi","chat_id":1}"#, "@devchannel", None);
        let v: serde_json::Value = serde_json::from_str(&b.unwrap_or_default()).unwrap_or_default();
        assert_eq!(v["chat_id"], "@devchannel");
        assert!(telegram_body("[1]", "1", None).is_none());
    }

    #[test]
    fn conversation_bodies_per_chat() {
        let tg = r#"{"text":"hi","parse_mode":"HTML"}"#;
        let root = r#"{"message_id":7}"#;
        assert_eq!(telegram_act(tg, Act::Root).map(|(_, m)| m), Some(None));
        let (reply, method) = telegram_act(
            tg,
            Act::Reply {
                root,
                broadcast: false,
            },
        )
        .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        assert_eq!(method, None);
        assert_eq!(
            v["reply_parameters"],
            serde_json::json!({"message_id": 7, "allow_sending_without_reply": false})
        );
        let (edit, method) = telegram_act(tg, Act::Edit { root }).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&edit).unwrap_or_default();
        assert_eq!(
            (method, v["message_id"].as_i64()),
            (Some("editMessageText"), Some(7))
        );
        assert_eq!(
            telegram_act(
                tg,
                Act::Reply {
                    root: "{}",
                    broadcast: false
                }
            ),
            None
        );

        let mx = r#"{"msgtype":"m.notice","body":"b","format":"org.matrix.custom.html","formatted_body":"<b>b</b>","m.mentions":{}}"#;
        let root = r#"{"event_id":"$r"}"#;
        let reply: serde_json::Value = serde_json::from_str(
            &matrix_act(
                mx,
                Act::Reply {
                    root,
                    broadcast: false,
                },
            )
            .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(
            reply["m.relates_to"],
            serde_json::json!({"rel_type": "m.thread", "event_id": "$r", "is_falling_back": true,
                "m.in_reply_to": {"event_id": "$r"}})
        );
        assert_eq!(reply["body"], "b");
        let edit: serde_json::Value =
            serde_json::from_str(&matrix_act(mx, Act::Edit { root }).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(edit["body"], "* b");
        assert_eq!(edit["formatted_body"], "* <b>b</b>");
        assert_eq!(edit["m.new_content"]["body"], "b");
        assert_eq!(
            edit["m.relates_to"],
            serde_json::json!({"rel_type": "m.replace", "event_id": "$r"})
        );
    }

    #[test]
    fn retry_after_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
