//! Discord's webhook API in a conversation: the webhook URL is the credential, so threads and
//! edits need nothing more. A post with `?wait=true` answers the message object
//! `{id, channel_id, …}`; the root's reference is `{"id"}`, and in a forum channel
//! `{"id", "thread_id"}` (the forum post the root started with `thread_name`, its title cut to
//! [`MAX_THREAD_NAME_CHARS`]). A reply in a forum is posted with `?thread_id=`; in a text
//! channel a webhook cannot start a thread, so a reply is a post in the channel. The root is
//! edited with `PATCH {url}/messages/{id}` (`?thread_id=` in a forum). A reply or edit whose
//! root is gone (404 `Unknown Message` 10008, `Unknown Channel` 10003, a thread archived and
//! locked 50083) says so ([`discord_root_lost`]). Throttling (429 with `retry_after`, the
//! `X-RateLimit-*` bucket) is [`super::classify`]'s and [`Sender::request`]'s.

use super::{classify, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::{Auth, Endpoint};

/// Longest forum post title (`thread_name`).
pub const MAX_THREAD_NAME_CHARS: usize = 100;

/// Discord's codes for a message or thread that is not there (any more): Unknown Channel,
/// Unknown Message, and a thread archived and locked (no post can reopen it).
const LOST_CODES: [i64; 3] = [10003, 10008, 50083];

/// The title of the forum post a Discord body starts: its first embed's title, else the first
/// line of its text, cut to [`MAX_THREAD_NAME_CHARS`]; `GitLab` when it has neither.
pub fn thread_name(body: &serde_json::Value) -> String {
    let embed = &body["embeds"][0];
    let name = [&embed["title"], &embed["description"], &body["content"]]
        .into_iter()
        .filter_map(|v| v.as_str())
        .filter_map(|s| s.lines().map(str::trim).find(|l| !l.is_empty()))
        .next()
        .unwrap_or("GitLab");
    let name: String = name.chars().take(MAX_THREAD_NAME_CHARS).collect();
    name.trim().to_string()
}

/// The method and URL of `act` through the webhook `base` (a forum's when `forum`): `None`
/// when `base` is not a URL or the root's reference is not one of a Discord message (of a
/// forum post, in a forum).
pub fn discord_url(
    base: &str,
    act: Act<'_>,
    forum: bool,
) -> Option<(reqwest::Method, reqwest::Url)> {
    let mut url = reqwest::Url::parse(base.trim()).ok()?;
    let reference = |root: &str| -> Option<(String, Option<String>)> {
        let v: serde_json::Value = serde_json::from_str(root).ok()?;
        let snowflake = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string)
        };
        Some((snowflake("id")?, snowflake("thread_id")))
    };
    match act {
        Act::Root => {
            url.query_pairs_mut().append_pair("wait", "true");
            Some((reqwest::Method::POST, url))
        }
        Act::Reply { root, .. } | Act::Broadcast { root } => {
            url.query_pairs_mut().append_pair("wait", "true");
            if forum {
                let (_, thread) = reference(root)?;
                url.query_pairs_mut().append_pair("thread_id", &thread?);
            }
            Some((reqwest::Method::POST, url))
        }
        Act::Edit { root } => {
            let (id, thread) = reference(root)?;
            if forum && thread.is_none() {
                return None;
            }
            url.path_segments_mut()
                .ok()?
                .pop_if_empty()
                .push("messages")
                .push(&id);
            if let Some(t) = thread {
                url.query_pairs_mut().append_pair("thread_id", &t);
            }
            Some((reqwest::Method::PATCH, url))
        }
    }
}

/// Whether a Discord answer says the message or thread a reply or edit named is gone.
pub fn discord_root_lost(status: u16, body: &[u8]) -> bool {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code")?.as_i64());
    matches!(status, 400 | 403 | 404) && code.is_some_and(|c| LOST_CODES.contains(&c))
}

/// Posts `body` as `act` through a Discord webhook: the root (a forum post of its own in a
/// forum) with its reference read from the answer, a reply (into the forum post, or in the
/// channel), or an edit of the root.
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let Auth::Discord { url, forum } = &endpoint.auth else {
        return Posted::not_json();
    };
    let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str::<serde_json::Value>(body)
    else {
        return Posted::not_json();
    };
    o.remove("thread_name");
    match act {
        Act::Root if *forum => {
            let name = thread_name(&serde_json::Value::Object(o.clone()));
            o.insert("thread_name".into(), name.into());
        }
        // Fields an edit leaves out stay as they were: a card without mentions clears them.
        Act::Edit { .. } => {
            o.entry("content").or_insert(serde_json::Value::Null);
        }
        _ => {}
    }
    let Some((method, target)) = discord_url(url.expose(), act, *forum) else {
        // A reference of another chat, or of a text channel's root in a forum: a new root.
        return Posted {
            root_lost: act != Act::Root,
            ..Posted::refused(
                "the conversation's root is not a message this Discord webhook can reach".into(),
            )
        };
    };
    let body = serde_json::Value::Object(o).to_string();
    let answer = match sender
        .request(method, target, &[], Some(&body), &endpoint.url)
        .await
    {
        Ok(a) => a,
        Err(attempt) => return Posted::of(attempt),
    };
    let attempt = classify(answer.status, answer.retry_after.as_deref(), &answer.body);
    let root_lost = act != Act::Root && discord_root_lost(answer.status, &answer.body);
    let reference = (act == Act::Root && matches!(attempt, Attempt::Delivered(_)))
        .then(|| {
            let v: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
            let id = v.get("id")?.as_str()?;
            let mut r = serde_json::json!({ "id": id });
            if *forum {
                r["thread_id"] = v.get("channel_id")?.as_str()?.into();
            }
            Some(r.to_string())
        })
        .flatten();
    Posted {
        attempt,
        reference,
        root_lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOOK: &str = "https://discord.com/api/webhooks/1/TOKEN";

    #[test]
    fn urls_per_act() {
        let root = r#"{"id":"11","thread_id":"22"}"#;
        let url = |act, forum| discord_url(HOOK, act, forum).map(|(m, u)| (m, u.to_string()));
        assert_eq!(
            url(Act::Root, true),
            Some((reqwest::Method::POST, format!("{HOOK}?wait=true")))
        );
        let reply = Act::Reply {
            root,
            broadcast: true,
        };
        assert_eq!(
            url(reply, true),
            Some((
                reqwest::Method::POST,
                format!("{HOOK}?wait=true&thread_id=22")
            ))
        );
        assert_eq!(
            url(reply, false),
            Some((reqwest::Method::POST, format!("{HOOK}?wait=true")))
        );
        assert_eq!(
            url(Act::Edit { root }, true),
            Some((
                reqwest::Method::PATCH,
                format!("{HOOK}/messages/11?thread_id=22")
            ))
        );
        assert_eq!(
            url(
                Act::Edit {
                    root: r#"{"id":"11"}"#
                },
                false
            ),
            Some((reqwest::Method::PATCH, format!("{HOOK}/messages/11")))
        );
        // A text channel's root in a forum, another chat's reference, a path in an id.
        assert_eq!(
            url(
                Act::Edit {
                    root: r#"{"id":"11"}"#
                },
                true
            ),
            None
        );
        assert_eq!(
            url(
                Act::Edit {
                    root: r#"{"message_id":7}"#
                },
                false
            ),
            None
        );
        assert_eq!(
            url(
                Act::Edit {
                    root: r#"{"id":"../x"}"#
                },
                false
            ),
            None
        );
    }

    #[test]
    fn forum_post_titles_and_lost_roots() {
        let long = "x".repeat(300);
        assert_eq!(
            thread_name(&json!({"embeds": [{"title": long}]}))
                .chars()
                .count(),
            MAX_THREAD_NAME_CHARS
        );
        assert_eq!(
            thread_name(&json!({"embeds": [{"description": "\n line one\nline two"}]})),
            "line one"
        );
        assert_eq!(thread_name(&json!({"embeds": []})), "GitLab");
        assert!(discord_root_lost(
            404,
            br#"{"message":"Unknown Message","code":10008}"#
        ));
        assert!(discord_root_lost(
            404,
            br#"{"message":"Unknown Channel","code":10003}"#
        ));
        assert!(!discord_root_lost(
            404,
            br#"{"message":"Unknown Webhook","code":10015}"#
        ));
        assert!(!discord_root_lost(429, br#"{"retry_after":1.0}"#));
    }
}
