//! Slack's Web API with a bot token: every post is `chat.postMessage` with the Block Kit body
//! of `render::slack` and the channel's id, an edit of a root `chat.update {channel, ts, text,
//! blocks}` ([`slack_act`]); `Authorization: Bearer xoxb-…`. A root's reference is
//! `{"channel", "ts"}`; a reply carries `thread_ts` (and `reply_broadcast: true` for a
//! broadcast key: no post of its own). Slack answers HTTP 200 with `{ok: false, error}`
//! ([`classify_slack`]): `ratelimited` (or HTTP 429) with `Retry-After` is a throttle, Slack's
//! own failures are retried, anything else (`invalid_auth`, `channel_not_found`,
//! `not_in_channel`, `invalid_blocks`, …) is permanent and named.
//!
//! A root deleted in Slack: one that had replies stays as a "This message was deleted." stub
//! whose thread still takes replies, but `chat.update` answers `message_not_found`; one that had
//! none is gone, and a reply naming it is posted on its own in the channel (Slack does not
//! refuse it: the answer's `message` has no `thread_ts`). Both say the root is lost
//! ([`Posted::root_lost`]); the second also gives the reply's own reference, for it is now a
//! message of the channel. `thread_not_found` / `message_not_found` on a reply say so too.

use super::{answer_str, api_call, parse_retry_after, short, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::{Auth, Endpoint};

/// The errors of a Slack answer that mean Slack failed for now (tried again).
const TRANSIENT: [&str; 5] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// The errors of a reply or edit that mean its root is gone.
const LOST: [&str; 3] = [
    "message_not_found",
    "thread_not_found",
    "cannot_reply_to_message",
];

/// The root's `(channel, ts)` from its reference.
fn root_of(root: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(root).ok()?;
    let ts = v.get("ts")?.as_str()?.to_string();
    let channel = v.get("channel")?.as_str()?.to_string();
    Some((channel, ts))
}

/// The Slack request body for `act` in `channel` and its method (`chat.postMessage` or
/// `chat.update`), or `None` when `body` is not a JSON object or the root's reference is not
/// Slack's.
pub fn slack_act(body: &str, channel: &str, act: Act<'_>) -> Option<(String, &'static str)> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let o = v.as_object_mut()?;
    o.insert("channel".into(), channel.into());
    let method = match act {
        Act::Root => "chat.postMessage",
        Act::Reply { root, broadcast } => {
            let (_, ts) = root_of(root)?;
            o.insert("thread_ts".into(), ts.into());
            if broadcast {
                o.insert("reply_broadcast".into(), true.into());
            }
            "chat.postMessage"
        }
        // Not asked of Slack (its reply carries the broadcast); the same reply if it were.
        Act::Broadcast { root } => {
            let (_, ts) = root_of(root)?;
            o.insert("thread_ts".into(), ts.into());
            o.insert("reply_broadcast".into(), true.into());
            "chat.postMessage"
        }
        Act::Edit { root } => {
            let (root_channel, ts) = root_of(root)?;
            let mut edit = serde_json::Map::new();
            edit.insert("channel".into(), root_channel.into());
            edit.insert("ts".into(), ts.into());
            for k in ["text", "blocks"] {
                if let Some(x) = o.get(k) {
                    edit.insert(k.into(), x.clone());
                }
            }
            return Some((serde_json::Value::Object(edit).to_string(), "chat.update"));
        }
    };
    Some((v.to_string(), method))
}

/// Posts `body` as `act` into the endpoint's Slack channel.
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let Auth::Slack { token, channel } = &endpoint.auth else {
        return Posted::not_json();
    };
    let Some((request, method)) = slack_act(body, channel, act) else {
        return Posted::not_json();
    };
    let base = endpoint.url.trim_end_matches('/');
    let answer = match api_call(
        sender,
        reqwest::Method::POST,
        &format!("{base}/{method}"),
        "Slack api_url",
        token,
        &request,
        &endpoint.url,
    )
    .await
    {
        Ok(a) => a,
        Err(posted) => return posted,
    };
    let attempt = classify_slack(answer.status, answer.retry_after.as_deref(), &answer.body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let error = answer_str(parsed.as_ref(), "error");
    let posted_ref = || -> Option<String> {
        let v = parsed.as_ref()?;
        let ts = v.get("ts")?.as_str()?;
        let ch = v.get("channel").and_then(|c| c.as_str()).unwrap_or(channel);
        Some(serde_json::json!({ "channel": ch, "ts": ts }).to_string())
    };
    let delivered = matches!(attempt, Attempt::Delivered(_));
    match act {
        Act::Root => Posted {
            reference: delivered.then(posted_ref).flatten(),
            attempt,
            root_lost: false,
        },
        Act::Edit { .. } => Posted {
            root_lost: !delivered && error == "message_not_found",
            attempt,
            reference: None,
        },
        Act::Reply { root, .. } | Act::Broadcast { root } => {
            if !delivered {
                return Posted {
                    root_lost: LOST.contains(&error),
                    attempt,
                    reference: None,
                };
            }
            // A reply to a root Slack no longer has is posted in the channel on its own: the
            // answer's message has no (or another) `thread_ts`. No message: assume threaded.
            let orphan = parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .filter(|m| m.is_object())
                .is_some_and(|m| {
                    let threaded = m.get("thread_ts").and_then(|t| t.as_str());
                    threaded != root_of(root).as_ref().map(|(_, ts)| ts.as_str())
                });
            Posted {
                reference: orphan.then(posted_ref).flatten(),
                attempt,
                root_lost: orphan,
            }
        }
    }
}

/// Decides what a Slack Web API answer means: HTTP 200 with `ok: true` is delivered; `ok:
/// false` is permanent (its `error` named) unless Slack is throttling (`ratelimited`) or failed
/// itself; HTTP 429 and 5xx are tried again.
pub fn classify_slack(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let ok = parsed
        .as_ref()
        .and_then(|v| v.get("ok"))
        .and_then(serde_json::Value::as_bool);
    if (200..300).contains(&status) && ok == Some(true) {
        return Attempt::Delivered(status);
    }
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let reason = short(format!("HTTP {status}: Slack error {error}"));
    let throttled = status == 429 || error == "ratelimited" || error == "rate_limited";
    if throttled || status == 408 || status >= 500 || TRANSIENT.contains(&error.as_str()) {
        return Attempt::Retry {
            status: Some(status),
            retry_after: retry_after.and_then(parse_retry_after),
            throttled,
            reason,
        };
    }
    Attempt::Permanent { status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slack_requests_per_act() {
        let body = r#"{"text":"t","blocks":[{"type":"section"}],"unfurl_links":false}"#;
        let root = r#"{"channel":"C1","ts":"1.000100"}"#;
        let (post, method) = slack_act(body, "C9", Act::Root).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&post).unwrap_or_default();
        assert_eq!(
            (method, v["channel"].as_str()),
            ("chat.postMessage", Some("C9"))
        );
        assert!(v.get("thread_ts").is_none());
        let reply = |broadcast| {
            let (r, _) = slack_act(body, "C9", Act::Reply { root, broadcast }).unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(&r).unwrap_or_default()
        };
        assert_eq!(reply(false)["thread_ts"], "1.000100");
        assert!(reply(false).get("reply_broadcast").is_none());
        assert_eq!(reply(true)["reply_broadcast"], true);
        let (edit, method) = slack_act(body, "C9", Act::Edit { root }).unwrap_or_default();
        assert_eq!(method, "chat.update");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&edit).unwrap_or_default(),
            serde_json::json!({"channel": "C1", "ts": "1.000100", "text": "t", "blocks": [{"type": "section"}]})
        );
        assert_eq!(slack_act(body, "C9", Act::Edit { root: "{}" }), None);
        assert_eq!(slack_act("[]", "C9", Act::Root), None);
    }

    #[test]
    fn slack_answers() {
        assert_eq!(
            classify_slack(200, None, br#"{"ok":true,"channel":"C1","ts":"1.2"}"#),
            Attempt::Delivered(200)
        );
        assert!(matches!(
            classify_slack(429, Some("30"), br#"{"ok":false,"error":"ratelimited"}"#),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            classify_slack(200, None, br#"{"ok":false,"error":"ratelimited"}"#),
            Attempt::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify_slack(200, None, br#"{"ok":false,"error":"internal_error"}"#),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            classify_slack(503, None, b""),
            Attempt::Retry { .. }
        ));
        for error in [
            "invalid_auth",
            "not_authed",
            "channel_not_found",
            "not_in_channel",
            "invalid_blocks",
        ] {
            let body = format!(r#"{{"ok":false,"error":"{error}"}}"#);
            assert_eq!(
                classify_slack(200, None, body.as_bytes()),
                Attempt::Permanent {
                    status: 200,
                    reason: format!("HTTP 200: Slack error {error}")
                }
            );
        }
    }
}
