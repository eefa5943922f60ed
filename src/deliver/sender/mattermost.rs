//! Mattermost's REST API (v4) with a personal access or bot token (`Authorization: Bearer`).
//! The body `render::mattermost` builds has the incoming webhook's shape (`text`,
//! `attachments`); it is turned into the API's here, at send time, as it is the transport's
//! shape ([`mattermost_act`]): `POST /api/v4/posts {channel_id, message, props: {attachments},
//! root_id?}` → `201 {id, …}` (a root's reference is `{"id"}`), an edit of a root
//! `PUT /api/v4/posts/{id}/patch {message, props}`. A broadcast is a post of its own in the
//! channel: the reply's title (or first line) and, when the channel's `team` is known, a link
//! to the thread (`{server}/{team}/pl/{root id}`). Errors are `{id, message, status_code}`
//! ([`classify_mattermost`]); 429 carries `Retry-After` or `X-Ratelimit-Reset`. A reply whose
//! root was deleted is refused with 400 "Invalid RootId parameter"
//! (`api.post.create_post.root_id.app_error`), an edit of it with 404 or that same 400: the root
//! is lost ([`Posted::root_lost`]).

use super::{answer_str, api_call, parse_retry_after, short, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::{path_segment, Auth, Endpoint};

/// Mattermost's error id for a `root_id` it does not have (deleted, or never there).
const ROOT_ID_ERROR: &str = "api.post.create_post.root_id.app_error";
/// The longest broadcast line's text before its link.
const MAX_BROADCAST_CHARS: usize = 300;

/// The root's post id from its reference.
fn root_id(root: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(root).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

/// The Mattermost API request for `act`: its method, path (under the server's base) and body;
/// `None` when `body` is not a JSON object or the root's reference is not Mattermost's.
/// `server` and `team` make a broadcast's link to the thread.
pub fn mattermost_act(
    body: &str,
    channel_id: &str,
    act: Act<'_>,
    server: &str,
    team: Option<&str>,
) -> Option<(reqwest::Method, String, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let o = v.as_object()?;
    let text = o.get("text").and_then(|t| t.as_str()).unwrap_or_default();
    let attachments = o
        .get("attachments")
        .cloned()
        .unwrap_or_else(|| serde_json::json!([]));
    let post = |message: &str, attachments: serde_json::Value| {
        serde_json::json!({
            "channel_id": channel_id,
            "message": message,
            "props": { "attachments": attachments },
        })
    };
    let posts = "/api/v4/posts".to_string();
    Some(match act {
        Act::Root => (
            reqwest::Method::POST,
            posts,
            post(text, attachments).to_string(),
        ),
        Act::Reply { root, .. } => {
            let mut p = post(text, attachments);
            p["root_id"] = root_id(root)?.into();
            (reqwest::Method::POST, posts, p.to_string())
        }
        Act::Edit { root } => {
            let id = root_id(root)?;
            let patch = serde_json::json!({
                "message": text,
                "props": { "attachments": attachments },
            });
            (
                reqwest::Method::PUT,
                format!("/api/v4/posts/{}/patch", path_segment(&id)),
                patch.to_string(),
            )
        }
        Act::Broadcast { root } => {
            let id = root_id(root)?;
            let title = attachments
                .get(0)
                .and_then(|a| a.get("title"))
                .and_then(|t| t.as_str())
                .filter(|t| !t.trim().is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| text.lines().next().unwrap_or_default().to_string());
            let title: String = title.trim().chars().take(MAX_BROADCAST_CHARS).collect();
            let line = match team {
                Some(team) => format!(
                    "{title} · [thread]({}/{}/pl/{})",
                    server.trim_end_matches('/'),
                    path_segment(team),
                    path_segment(&id)
                ),
                None => format!("{title} (in its thread)"),
            };
            (
                reqwest::Method::POST,
                posts,
                post(&line, serde_json::json!([])).to_string(),
            )
        }
    })
}

/// Posts `body` as `act` into the endpoint's Mattermost channel.
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let Auth::Mattermost {
        token,
        channel_id,
        team,
    } = &endpoint.auth
    else {
        return Posted::not_json();
    };
    let server = endpoint.url.trim_end_matches('/');
    let Some((method, path, request)) =
        mattermost_act(body, channel_id, act, server, team.as_deref())
    else {
        return Posted::not_json();
    };
    let answer = match api_call(
        sender,
        method,
        &format!("{server}{path}"),
        "Mattermost url",
        token,
        &request,
        &endpoint.url,
    )
    .await
    {
        Ok(a) => a,
        Err(posted) => return posted,
    };
    let retry_after = answer
        .retry_after
        .clone()
        .or(answer.ratelimit_reset.clone());
    let attempt = classify_mattermost(answer.status, retry_after.as_deref(), &answer.body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let error_id = answer_str(parsed.as_ref(), "id");
    let message = answer_str(parsed.as_ref(), "message");
    let delivered = matches!(attempt, Attempt::Delivered(_));
    let bad_root = error_id == ROOT_ID_ERROR || message.contains("Invalid RootId");
    let root_lost = !delivered
        && match act {
            Act::Root => false,
            Act::Reply { .. } | Act::Broadcast { .. } => answer.status == 400 && bad_root,
            Act::Edit { .. } => answer.status == 404 || (answer.status == 400 && bad_root),
        };
    let reference = (act == Act::Root && delivered)
        .then(|| {
            let id = parsed.as_ref()?.get("id")?.as_str()?;
            Some(serde_json::json!({ "id": id }).to_string())
        })
        .flatten();
    Posted {
        attempt,
        reference,
        root_lost,
    }
}

/// Decides what a Mattermost API answer means: 2xx delivered; 429 (a throttle), 408 and 5xx
/// tried again after `retry_after` (`Retry-After`, or `X-Ratelimit-Reset`'s seconds); other
/// answers permanent, with Mattermost's error id and message.
pub fn classify_mattermost(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Delivered(status);
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|x| x.as_str())
    };
    let message = field("message")
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let reason = short(match field("id") {
        Some(id) if !id.is_empty() => format!("HTTP {status} {id}: {message}"),
        _ => format!("HTTP {status}: {message}"),
    });
    if status == 429 || status == 408 || status >= 500 {
        return Attempt::Retry {
            status: Some(status),
            retry_after: retry_after.and_then(parse_retry_after),
            throttled: status == 429,
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
    fn mattermost_requests_per_act() {
        let body = r#"{"text":"hi","attachments":[{"fallback":"T","title":"Merged !1"}]}"#;
        let root = r#"{"id":"p1"}"#;
        let act = |a| mattermost_act(body, "ch", a, "https://mm.test", Some("dev"));
        let (method, path, post) = act(Act::Root).unwrap_or_default_triple();
        assert_eq!(
            (method, path.as_str()),
            (reqwest::Method::POST, "/api/v4/posts")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&post).unwrap_or_default(),
            serde_json::json!({"channel_id": "ch", "message": "hi",
                "props": {"attachments": [{"fallback": "T", "title": "Merged !1"}]}})
        );
        let (_, _, reply) = act(Act::Reply {
            root,
            broadcast: true,
        })
        .unwrap_or_default_triple();
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        assert_eq!(reply["root_id"], "p1");
        let (method, path, edit) = act(Act::Edit { root }).unwrap_or_default_triple();
        assert_eq!(
            (method, path.as_str()),
            (reqwest::Method::PUT, "/api/v4/posts/p1/patch")
        );
        let edit: serde_json::Value = serde_json::from_str(&edit).unwrap_or_default();
        assert_eq!(edit["message"], "hi");
        assert!(edit.get("channel_id").is_none());
        let (_, _, line) = act(Act::Broadcast { root }).unwrap_or_default_triple();
        let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(
            line["message"],
            "Merged !1 · [thread](https://mm.test/dev/pl/p1)"
        );
        assert!(line.get("root_id").is_none());
        let (_, _, bare) =
            mattermost_act(body, "ch", Act::Broadcast { root }, "https://mm.test", None)
                .unwrap_or_default_triple();
        let bare: serde_json::Value = serde_json::from_str(&bare).unwrap_or_default();
        assert_eq!(bare["message"], "Merged !1 (in its thread)");
        assert!(act(Act::Edit { root: "{}" }).is_none());
    }

    trait Triple {
        fn unwrap_or_default_triple(self) -> (reqwest::Method, String, String);
    }

    impl Triple for Option<(reqwest::Method, String, String)> {
        fn unwrap_or_default_triple(self) -> (reqwest::Method, String, String) {
            self.unwrap_or((reqwest::Method::GET, String::new(), String::new()))
        }
    }

    #[test]
    fn mattermost_answers() {
        assert_eq!(
            classify_mattermost(201, None, b"{}"),
            Attempt::Delivered(201)
        );
        assert!(matches!(
            classify_mattermost(429, Some("3"), b"limit exceeded"),
            Attempt::Retry { throttled: true, retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify_mattermost(502, None, b""),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
        assert_eq!(
            classify_mattermost(400, None, br#"{"id":"api.post.create_post.root_id.app_error","message":"Invalid RootId parameter.","status_code":400}"#),
            Attempt::Permanent {
                status: 400,
                reason: "HTTP 400 api.post.create_post.root_id.app_error: Invalid RootId parameter.".into()
            }
        );
        assert!(matches!(
            classify_mattermost(401, None, br#"{"id":"api.context.session_expired.app_error","message":"Invalid or expired session"}"#),
            Attempt::Permanent { status: 401, .. }
        ));
    }
}
