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
//! Telegram (`Auth::Telegram`): the body gets the channel's `chat_id` (and
//! `message_thread_id`); answers are `{ok, error_code, description, parameters?: {retry_after,
//! migrate_to_chat_id}}` ([`classify_telegram`]): 429 waits `retry_after`, `migrate_to_chat_id`
//! is [`Attempt::Migrated`], 403 (the bot was removed) and other 4xx are permanent, naming
//! Telegram's description. Matrix (`Auth::Matrix`): a `PUT` to `{url}/{txnId}` with a Bearer
//! token, the txnId from the message id ([`txn_id`]), so a post re-sent after a crash or a lost
//! answer is the event of the first; answers `{errcode, error, retry_after_ms?}`
//! ([`classify_matrix`]): 429 `M_LIMIT_EXCEEDED` waits `Retry-After` or `retry_after_ms`, 403 and
//! other 4xx are permanent with the errcode. A `room` alias in a Matrix endpoint is resolved once
//! (`GET /_matrix/client/v3/directory/room/{alias}`) and kept for the sender's life.

use super::{Auth, Endpoint};
use crate::signing::{sha256, SigningKey};
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

/// Posts messages over HTTP(S).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Endpoint (logged form) → when its rate-limit bucket refills, after one said it was empty.
    hold: Arc<Mutex<HashMap<String, Instant>>>,
    /// A Matrix endpoint naming a room alias → its send URL with the room id.
    rooms: Arc<Mutex<HashMap<String, String>>>,
}

/// The homeserver and room alias of a Matrix send URL that names an alias (`…/rooms/%23…`).
fn matrix_alias(url: &str) -> Option<(String, String)> {
    let (homeserver, rest) = url.split_once("/_matrix/client/v3/rooms/")?;
    let encoded = rest.split('/').next()?;
    if !encoded.starts_with("%23") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some((homeserver.to_string(), String::from_utf8(out).ok()?))
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
        })
    }

    /// A Matrix endpoint's send URL with a room id: as configured, or with its alias resolved
    /// (once; the answer is kept). A failure is the attempt to record: an unknown alias is
    /// permanent, anything else is tried again.
    async fn matrix_room_url(
        &self,
        url: &str,
        token: &crate::secret::Secret,
    ) -> Result<String, Attempt> {
        let Some((homeserver, alias)) = matrix_alias(url) else {
            return Ok(url.to_string());
        };
        if let Some(u) = self.rooms.lock().ok().and_then(|r| r.get(url).cloned()) {
            return Ok(u);
        }
        match self.resolve_room(&homeserver, &alias, token).await {
            Ok(room) => {
                let resolved = super::Endpoint::matrix(&homeserver, &room, token.clone()).url;
                tracing::info!(%alias, %room, "resolved the Matrix room alias");
                if let Ok(mut r) = self.rooms.lock() {
                    r.insert(url.to_string(), resolved.clone());
                }
                Ok(resolved)
            }
            Err(ResolveError::Refused {
                status: 404,
                reason,
                ..
            }) => Err(Attempt::Permanent {
                status: 404,
                reason: format!("the room alias {alias} does not exist: {reason}"),
            }),
            Err(e) => Err(Attempt::Retry {
                status: None,
                retry_after: None,
                throttled: false,
                reason: e.to_string(),
            }),
        }
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
        let matrix_url;
        let raw_url = match &endpoint.auth {
            Auth::SecretUrl(u) | Auth::Signed { url: u, .. } | Auth::Telegram { url: u, .. } => {
                u.expose()
            }
            Auth::Matrix { token } => {
                let room_url = match self.matrix_room_url(&endpoint.url, token).await {
                    Ok(u) => u,
                    Err(attempt) => return attempt,
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
                    return Attempt::Permanent {
                        status: 0,
                        reason: "the message is not a JSON object".into(),
                    }
                }
            }
        }
        let body: &str = &body;
        let mut url = match reqwest::Url::parse(raw_url) {
            Ok(u) => u,
            // The parser's message never quotes the URL.
            Err(e) => {
                return Attempt::Permanent {
                    status: 0,
                    reason: format!("bad endpoint URL: {e}"),
                }
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
                    return Attempt::Permanent {
                        status: 0,
                        reason: "the signing secret is not whsec_ followed by base64".into(),
                    };
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
            Auth::SecretUrl(_) | Auth::Telegram { .. } | Auth::None => {}
        }
        self.wait_for_bucket(&endpoint.url).await;
        let mut req = match &endpoint.auth {
            Auth::Matrix { .. } => self.client.put(url),
            _ => self.client.post(url),
        };
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        match resp {
            Err(e) => Attempt::Retry {
                status: None,
                retry_after: None,
                throttled: false,
                reason: describe(e),
            },
            Ok(r) => {
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
                            hold.insert(endpoint.url.clone(), Instant::now() + wait);
                        }
                    }
                }
                let body = r.bytes().await.unwrap_or_default();
                match &endpoint.auth {
                    Auth::Telegram { .. } => {
                        classify_telegram(status, retry_after.as_deref(), &body)
                    }
                    Auth::Matrix { .. } => classify_matrix(status, retry_after.as_deref(), &body),
                    _ => classify(status, retry_after.as_deref(), &body),
                }
            }
        }
    }

    /// Waits while the endpoint's rate-limit bucket is empty (Discord's `X-RateLimit-*`).
    async fn wait_for_bucket(&self, endpoint: &str) {
        let until = self.hold.lock().ok().and_then(|mut h| h.remove(endpoint));
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// Why a Matrix room alias could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The homeserver could not be reached (no URL or token in the text).
    #[error("cannot reach the homeserver: {0}")]
    Unreachable(String),
    /// The homeserver answered with an error (404 `M_NOT_FOUND` for an unknown alias).
    #[error("the homeserver cannot resolve {alias}: {reason}")]
    Refused {
        /// The alias.
        alias: String,
        /// The HTTP status.
        status: u16,
        /// Status, errcode and error.
        reason: String,
    },
}

impl Sender {
    /// Resolves a Matrix room alias (`#dev:example.org`) to its room id, with the channel's
    /// access token (`GET /_matrix/client/v3/directory/room/{alias}`).
    pub async fn resolve_room(
        &self,
        homeserver: &str,
        alias: &str,
        token: &crate::secret::Secret,
    ) -> Result<String, ResolveError> {
        let url = format!(
            "{}/_matrix/client/v3/directory/room/{}",
            homeserver.trim_end_matches('/'),
            super::path_segment(alias)
        );
        let r = self
            .client
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| ResolveError::Unreachable(describe(e)))?;
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap_or_default();
        let refused = |reason: String| ResolveError::Refused {
            alias: alias.to_string(),
            status,
            reason,
        };
        if !(200..300).contains(&status) {
            return Err(refused(match classify_matrix(status, None, &body) {
                Attempt::Permanent { reason, .. } | Attempt::Retry { reason, .. } => reason,
                other => format!("{other:?}"),
            }));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("room_id")?.as_str().map(str::to_string))
            .filter(|id| id.starts_with('!'))
            .ok_or_else(|| refused(format!("HTTP {status}: the answer has no room_id")))
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

/// A Matrix transaction id for the message `id`: the same for every retry and restart, safe
/// in a URL path (`gcb` and 32 hex digits of its SHA-256).
pub fn txn_id(id: &str) -> String {
    let digest = sha256(&[id.as_bytes()]);
    let mut out = String::from("gcb");
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `body` (a JSON object) with Telegram's `chat_id` (a number when it is one) and
/// `message_thread_id`; `None` when it is not an object.
pub fn telegram_body(body: &str, chat_id: &str, thread: Option<i64>) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let o = v.as_object_mut()?;
    let id = match chat_id.trim().parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(chat_id.trim()),
    };
    o.insert("chat_id".into(), id);
    match thread {
        Some(t) => o.insert("message_thread_id".into(), t.into()),
        None => o.remove("message_thread_id"),
    };
    Some(v.to_string())
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

/// Decides what a Telegram Bot API answer means.
pub fn classify_telegram(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k));
    let description = field("description")
        .and_then(|d| d.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    // An edit that changes nothing is refused, but the message already shows what we meant.
    let unchanged = status == 400 && description.contains("message is not modified");
    if (200..300).contains(&status) || unchanged {
        return Attempt::Delivered(status);
    }
    let params = field("parameters");
    let reason = short(format!("HTTP {status}: {description}"));
    if let Some(to) = params.and_then(|p| p.get("migrate_to_chat_id")) {
        let to = match to {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !to.is_empty() && to != "null" {
            return Attempt::Migrated { to, reason };
        }
    }
    if status == 429 || status == 408 || status >= 500 {
        return Attempt::Retry {
            status: Some(status),
            retry_after: seconds(params.and_then(|p| p.get("retry_after")))
                .or_else(|| retry_after.and_then(parse_retry_after)),
            throttled: status == 429,
            reason,
        };
    }
    Attempt::Permanent { status, reason }
}

/// Decides what a Matrix client-server API answer means.
pub fn classify_matrix(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Delivered(status);
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k));
    let errcode = field("errcode")
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    let error = field("error")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let reason = short(if errcode.is_empty() {
        format!("HTTP {status}: {error}")
    } else {
        format!("HTTP {status} {errcode}: {error}")
    });
    let throttled = status == 429 || errcode == "M_LIMIT_EXCEEDED";
    if throttled || status == 408 || status >= 500 {
        let ms = field("retry_after_ms")
            .and_then(serde_json::Value::as_f64)
            .map(|ms| serde_json::Value::from(ms / 1000.0));
        return Attempt::Retry {
            status: Some(status),
            retry_after: retry_after
                .and_then(parse_retry_after)
                .or_else(|| seconds(ms.as_ref())),
            throttled,
            reason,
        };
    }
    Attempt::Permanent { status, reason }
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
    fn retry_after_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
