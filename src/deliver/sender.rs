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
        })
    }

    /// POSTs `body` (JSON) to `endpoint`; `id` names the message (the same on every retry).
    pub async fn post(&self, endpoint: &Endpoint, id: &str, body: &str) -> Attempt {
        let raw_url = match &endpoint.auth {
            Auth::SecretUrl(u) | Auth::Signed { url: u, .. } => u.expose(),
            _ => endpoint.url.as_str(),
        };
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
            Auth::SecretUrl(_) | Auth::None => {}
        }
        self.wait_for_bucket(&endpoint.url).await;
        let mut req = self.client.post(url);
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
                classify(status, retry_after.as_deref(), &body)
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
    fn retry_after_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
