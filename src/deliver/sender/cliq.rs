//! Zoho Cliq's REST API with OAuth (a `cliq` channel's API mode, [`Auth::CliqOAuth`]).
//!
//! Access tokens: `POST {accounts_url}/oauth/v2/token?grant_type=refresh_token&client_id&
//! client_secret&refresh_token` → `{access_token, expires_in}`, kept in memory (one per credential,
//! shared by the channels using it), refreshed before they expire ([`REFRESH_EARLY`], or half
//! their life when shorter) and once on a 401 (the request is then sent again, once); sent as
//! `Authorization: Zoho-oauthtoken …`. A refused refresh (`{"error":"invalid_code"}`, …) is a
//! permanent failure naming the config key of the refresh token; Zoho's "Access Denied" (too
//! many refreshes) and outages are tried again. No token ever reaches a log line or an error.
//!
//! Conversations: a root is posted with `sync_message: true` and its reference is Cliq's
//! `{"message_id"}` (with the `chat_id` when known); a reply carries `thread_message_id` (and
//! `post_in_parent: true` when broadcast); an edit of the root is
//! `PUT /api/v2/chats/{chat_id}/messages/{message_id}` `{text}` (text only: the card's title,
//! slides and buttons stay as first posted), the channel's chat id read once per sender life
//! from `GET /api/v2/channelsbyname/{name}`. These facts are partly unconfirmed, so each fails
//! soft, logged once per channel with Cliq's answer: a root answered without a `message_id`
//! leaves the channel posting flat; a reply refused for its thread parameters is posted flat
//! (and the channel's later replies too); a refused edit is skipped from then on. A reply or
//! edit answered `message_not_found` has lost its root ([`Posted::root_lost`]).

use super::{classify, describe, parse_retry_after, short, Answer, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::{path_segment, Endpoint, ZohoOAuth};
use crate::secret::Secret;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long before its expiry an access token is refreshed (at most half its life).
pub const REFRESH_EARLY: Duration = Duration::from_secs(300);
/// Cliq's error code for a message (a thread's root) it does not have.
pub const MESSAGE_NOT_FOUND: &str = "message_not_found";
/// The wait after Zoho's accounts server refused a refresh as too frequent.
const REFRESH_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Zoho's refresh errors that no retry mends (a wrong client or a revoked grant).
const REFRESH_REFUSALS: [&str; 6] = [
    "invalid_code",
    "invalid_client",
    "invalid_client_secret",
    "invalid_grant",
    "unauthorized_client",
    "invalid_request",
];

/// An access token and when it stops being used.
struct Token {
    value: Secret,
    /// When it is refreshed (its expiry less the early margin).
    renew_at: Instant,
}

/// What a sender keeps of Cliq: access tokens per credential, chat ids per channel, and the
/// channels whose threads, edits or root ids Cliq refused (each logged once).
#[derive(Default)]
pub(super) struct CliqState {
    /// Credential → its token, behind a lock of its own so that one refresh serves everyone.
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    /// Channel URL → its chat id.
    chats: Mutex<HashMap<String, String>>,
    /// Channel URLs whose replies are posted flat (Cliq refused a thread).
    flat: Mutex<HashSet<String>>,
    /// Channel URLs whose root edits are skipped (Cliq refused one).
    no_edit: Mutex<HashSet<String>>,
    /// Channel URLs whose root came back without a `message_id` (logged once).
    no_id: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for CliqState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CliqState")
    }
}

/// Adds `url` to `set`; true the first time (so a refusal is logged once).
fn first_time(set: &Mutex<HashSet<String>>, url: &str) -> bool {
    set.lock().is_ok_and(|mut s| s.insert(url.to_string()))
}

/// Whether `url` is in `set`.
fn contains(set: &Mutex<HashSet<String>>, url: &str) -> bool {
    set.lock().is_ok_and(|s| s.contains(url))
}

/// What a Cliq message URL names: the API's base (`https://cliq.zoho.com`) and the channel's
/// unique name or the chat's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliqTarget {
    /// `{base}/api/v2/channelsbyname/{name}/message`.
    Channel {
        /// Scheme, host and port.
        base: String,
        /// The channel's unique name.
        name: String,
    },
    /// `{base}/api/v2/chats/{chat_id}/message`.
    Chat {
        /// Scheme, host and port.
        base: String,
        /// The chat's id.
        chat_id: String,
    },
}

/// The channel or chat a Cliq message URL posts to; `None` for other URLs (bots, extensions),
/// which post flat.
pub fn cliq_target(url: &str) -> Option<CliqTarget> {
    let u = url::Url::parse(url).ok()?;
    let base = u.origin().ascii_serialization();
    let segments: Vec<&str> = u.path_segments()?.collect();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    match segments.as_slice() {
        ["api", "v2", "channelsbyname", name, "message"] if !name.is_empty() => {
            Some(CliqTarget::Channel {
                base,
                name: decode(name)?,
            })
        }
        ["api", "v2", "chats", chat, "message"] if !chat.is_empty() => Some(CliqTarget::Chat {
            base,
            chat_id: decode(chat)?,
        }),
        _ => None,
    }
}

/// A Cliq body for `act` (`sync_message`, `thread_message_id`, `post_in_parent`), or `None`
/// when `body` is not a JSON object or `root` has no `message_id`. An edit's body is the text
/// alone.
pub fn cliq_act(body: &str, act: Act<'_>) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let o = v.as_object_mut()?;
    match act {
        Act::Root => {
            o.insert("sync_message".into(), true.into());
        }
        Act::Reply { root, broadcast } => {
            o.insert("thread_message_id".into(), message_id(root)?.into());
            if broadcast {
                o.insert("post_in_parent".into(), true.into());
            }
        }
        Act::Broadcast { root } => {
            o.insert("thread_message_id".into(), message_id(root)?.into());
            o.insert("post_in_parent".into(), true.into());
        }
        Act::Edit { .. } => {
            let text = o.get("text").cloned().unwrap_or_default();
            return Some(serde_json::json!({ "text": text }).to_string());
        }
    }
    Some(v.to_string())
}

/// A root reference's `message_id`.
fn message_id(root: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(root).ok()?;
    v.get("message_id")?.as_str().map(str::to_string)
}

/// A root reference's `chat_id`, if it has one.
fn chat_id(root: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(root).ok()?;
    v.get("chat_id")?.as_str().map(str::to_string)
}

/// `body` with the conversation keys taken out: the flat form of a reply.
fn flat(body: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    if let Some(o) = v.as_object_mut() {
        for k in ["sync_message", "thread_message_id", "post_in_parent"] {
            o.remove(k);
        }
    }
    v.to_string()
}

/// Whether a refusal is Cliq's "no such message" (the thread's root is gone).
fn lost(attempt: &Attempt) -> bool {
    matches!(attempt, Attempt::Permanent { reason, .. } if reason.contains(MESSAGE_NOT_FOUND))
}

/// Posts `body` flat (no conversation) to a Cliq channel with OAuth.
pub(super) async fn post(
    sender: &Sender,
    endpoint: &Endpoint,
    oauth: &ZohoOAuth,
    body: &str,
) -> Attempt {
    send(
        sender,
        endpoint,
        oauth,
        reqwest::Method::POST,
        &endpoint.url,
        body,
    )
    .await
    .0
}

/// Posts `body` as `act` in a Cliq channel with OAuth (see the module's doc).
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    oauth: &ZohoOAuth,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let url = endpoint.url.as_str();
    let state = &sender.cliq;
    let threaded = cliq_target(url).is_some();
    let posted = |attempt: Attempt| Posted {
        attempt,
        reference: None,
        root_lost: false,
    };
    if let Act::Edit { root } = act {
        return edit(sender, endpoint, oauth, body, root).await;
    }
    // A channel without threads: every post flat.
    let flat_now = !threaded || (act != Act::Root && contains(&state.flat, url));
    if flat_now {
        return posted(post(sender, endpoint, oauth, &flat(body)).await);
    }
    let Some(content) = cliq_act(body, act) else {
        return Posted::not_json();
    };
    let (attempt, answer) = send(
        sender,
        endpoint,
        oauth,
        reqwest::Method::POST,
        url,
        &content,
    )
    .await;
    if act == Act::Root {
        let reference = match (&attempt, id_of(&answer)) {
            (Attempt::Delivered(_), Some(id)) => {
                let chat = match cliq_target(url) {
                    Some(CliqTarget::Chat { chat_id, .. }) => Some(chat_id),
                    _ => state.chats.lock().ok().and_then(|c| c.get(url).cloned()),
                };
                let mut r = serde_json::json!({ "message_id": id });
                if let Some(chat) = chat {
                    r["chat_id"] = chat.into();
                }
                Some(r.to_string())
            }
            (Attempt::Delivered(status), None) => {
                if first_time(&state.no_id, url) {
                    tracing::warn!(url = %url, status, "Cliq answered a root without a message_id: this channel's messages are posted flat");
                }
                None
            }
            _ => None,
        };
        return Posted {
            attempt,
            reference,
            root_lost: false,
        };
    }
    if lost(&attempt) {
        return Posted {
            attempt,
            reference: None,
            root_lost: true,
        };
    }
    // A refused thread (Cliq's 4xx naming the thread's parameters): posted flat, logged once.
    if let Attempt::Permanent { status, reason } = &attempt {
        if (400..500).contains(status)
            && !refresh_failure(oauth, reason)
            && (reason.contains("thread") || reason.contains("parent"))
        {
            if first_time(&state.flat, url) {
                tracing::warn!(url = %url, status, reason = %reason, "Cliq refused a thread reply: this channel's replies are posted flat");
            }
            return posted(post(sender, endpoint, oauth, &flat(body)).await);
        }
    }
    posted(attempt)
}

/// `message_id` of a post's answer.
fn id_of(answer: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    match v.get("message_id")? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Edits the root `root` to `body`'s text. A refused edit is logged once and skipped from
/// then on: reported as done (so the worker neither logs nor retries it; the map's card hash
/// then only means the next changed card is skipped too).
async fn edit(
    sender: &Sender,
    endpoint: &Endpoint,
    oauth: &ZohoOAuth,
    body: &str,
    root: &str,
) -> Posted {
    let url = endpoint.url.as_str();
    let state = &sender.cliq;
    let done = |attempt: Attempt, root_lost: bool| Posted {
        attempt,
        reference: None,
        root_lost,
    };
    if contains(&state.no_edit, url) {
        return done(Attempt::Delivered(204), false);
    }
    let (Some(target), Some(message)) = (cliq_target(url), message_id(root)) else {
        return done(Attempt::Delivered(204), false);
    };
    let chat = match chat_id(root) {
        Some(c) => c,
        None => match resolve_chat(sender, endpoint, oauth, &target).await {
            Ok(c) => c,
            Err(attempt) => return refused_edit(sender, oauth, url, attempt),
        },
    };
    let Some(text) = cliq_act(body, Act::Edit { root }) else {
        return Posted::not_json();
    };
    let base = match &target {
        CliqTarget::Channel { base, .. } | CliqTarget::Chat { base, .. } => base,
    };
    let edit_url = format!(
        "{base}/api/v2/chats/{}/messages/{}",
        path_segment(&chat),
        path_segment(&message)
    );
    let (attempt, _) = send(
        sender,
        endpoint,
        oauth,
        reqwest::Method::PUT,
        &edit_url,
        &text,
    )
    .await;
    if lost(&attempt) {
        return done(attempt, true);
    }
    refused_edit(sender, oauth, url, attempt)
}

/// Whether a refusal is the accounts server's (a refresh), not Cliq's answer to the call.
fn refresh_failure(oauth: &ZohoOAuth, reason: &str) -> bool {
    reason.starts_with(&oauth.key)
}

/// An edit's attempt, a permanent refusal turned into a skip (logged once per channel).
fn refused_edit(sender: &Sender, oauth: &ZohoOAuth, url: &str, attempt: Attempt) -> Posted {
    let attempt = match attempt {
        Attempt::Permanent { status, reason } if !refresh_failure(oauth, &reason) => {
            if first_time(&sender.cliq.no_edit, url) {
                tracing::warn!(url = %url, status, reason = %reason, "Cliq refused to edit a thread's root: this channel's roots are not edited (replies go on)");
            }
            Attempt::Delivered(status)
        }
        other => other,
    };
    Posted {
        attempt,
        reference: None,
        root_lost: false,
    }
}

/// The chat id of a channel (`GET /api/v2/channelsbyname/{name}` → `chat_id`), asked once per
/// sender life.
async fn resolve_chat(
    sender: &Sender,
    endpoint: &Endpoint,
    oauth: &ZohoOAuth,
    target: &CliqTarget,
) -> Result<String, Attempt> {
    let url = endpoint.url.as_str();
    let (base, name) = match target {
        CliqTarget::Chat { chat_id, .. } => return Ok(chat_id.clone()),
        CliqTarget::Channel { base, name } => (base, name),
    };
    if let Some(c) = sender
        .cliq
        .chats
        .lock()
        .ok()
        .and_then(|c| c.get(url).cloned())
    {
        return Ok(c);
    }
    let lookup = format!("{base}/api/v2/channelsbyname/{}", path_segment(name));
    let (attempt, answer) = call(sender, oauth, reqwest::Method::GET, &lookup, None, url).await;
    if !matches!(attempt, Attempt::Delivered(_)) {
        return Err(attempt);
    }
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    let chat = v
        .get("chat_id")
        .or_else(|| v.get("data").and_then(|d| d.get("chat_id")))
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Attempt::Permanent {
            status: 200,
            reason: format!("Cliq's answer about the channel {name} has no chat_id"),
        })?
        .to_string();
    tracing::info!(channel = %name, chat_id = %chat, "resolved the Cliq channel's chat id");
    if let Ok(mut c) = sender.cliq.chats.lock() {
        c.insert(url.to_string(), chat.clone());
    }
    Ok(chat)
}

/// Sends `body` to `url` with the channel's access token: the attempt and the answer's body.
async fn send(
    sender: &Sender,
    endpoint: &Endpoint,
    oauth: &ZohoOAuth,
    method: reqwest::Method,
    url: &str,
    body: &str,
) -> (Attempt, Vec<u8>) {
    call(sender, oauth, method, url, Some(body), &endpoint.url).await
}

/// One Cliq API call with the access token, sent again once with a fresh token after a 401;
/// `bucket` is the channel's logged URL (its rate-limit bucket).
async fn call(
    sender: &Sender,
    oauth: &ZohoOAuth,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
    bucket: &str,
) -> (Attempt, Vec<u8>) {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            let reason = format!("bad endpoint URL: {e}");
            return (Attempt::Permanent { status: 0, reason }, Vec::new());
        }
    };
    let mut stale = None;
    for _ in 0..2 {
        let token = match access_token(sender, oauth, stale.as_ref()).await {
            Ok(t) => t,
            Err(attempt) => return (attempt, Vec::new()),
        };
        let headers = [(
            "Authorization",
            format!("Zoho-oauthtoken {}", token.expose()),
        )];
        let answer: Answer = match sender
            .request(method.clone(), parsed.clone(), &headers, body, bucket)
            .await
        {
            Ok(a) => a,
            Err(attempt) => return (attempt, Vec::new()),
        };
        if answer.status == 401 && stale.is_none() {
            tracing::info!(url = %bucket, "Cliq refused the access token; refreshing it and sending again");
            stale = Some(token);
            continue;
        }
        let attempt = classify(answer.status, answer.retry_after.as_deref(), &answer.body);
        return (attempt, answer.body);
    }
    let reason = "Cliq refused a freshly refreshed access token".to_string();
    (
        Attempt::Permanent {
            status: 401,
            reason,
        },
        Vec::new(),
    )
}

/// The credential's access token: the one kept unless it is due for renewal or is `stale`
/// (refused by Cliq), else a fresh one from the accounts server.
async fn access_token(
    sender: &Sender,
    oauth: &ZohoOAuth,
    stale: Option<&Secret>,
) -> Result<Secret, Attempt> {
    let id = credential_id(oauth);
    let slot = match sender.cliq.tokens.lock() {
        Ok(mut t) => Arc::clone(t.entry(id).or_default()),
        Err(_) => Arc::default(),
    };
    let mut kept = slot.lock().await;
    if let Some(t) = kept.as_ref() {
        if Instant::now() < t.renew_at && stale != Some(&t.value) {
            return Ok(t.value.clone());
        }
    }
    let fresh = refresh(sender, oauth).await?;
    let value = fresh.value.clone();
    *kept = Some(fresh);
    Ok(value)
}

/// A key of the credential in the token map (a digest: no secret kept as a key).
fn credential_id(oauth: &ZohoOAuth) -> String {
    let d = crate::signing::sha256(&[
        oauth.accounts_url.as_bytes(),
        b"\0",
        oauth.client_id.expose().as_bytes(),
        b"\0",
        oauth.refresh_token.expose().as_bytes(),
    ]);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Trades the refresh token for an access token.
async fn refresh(sender: &Sender, oauth: &ZohoOAuth) -> Result<Token, Attempt> {
    let retry = |status: Option<u16>, reason: String| Attempt::Retry {
        status,
        retry_after: None,
        throttled: false,
        reason: format!(
            "{}: cannot refresh the Zoho access token: {reason}",
            oauth.key
        ),
    };
    let mut url =
        reqwest::Url::parse(&format!("{}/oauth/v2/token", oauth.accounts_url)).map_err(|e| {
            Attempt::Permanent {
                status: 0,
                reason: format!("{}: bad accounts_url: {e}", oauth.key),
            }
        })?;
    url.query_pairs_mut()
        .append_pair("grant_type", "refresh_token")
        .append_pair("client_id", oauth.client_id.expose())
        .append_pair("client_secret", oauth.client_secret.expose())
        .append_pair("refresh_token", oauth.refresh_token.expose());
    let r = sender
        .client
        .post(url)
        .send()
        .await
        .map_err(|e| retry(None, describe(e)))?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = r.bytes().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
    if let (true, Some(token)) = (
        (200..300).contains(&status),
        v.get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty()),
    ) {
        let life = v
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .map_or(Duration::from_secs(3600), Duration::from_secs);
        let early = REFRESH_EARLY.min(life / 2);
        tracing::debug!(
            expires_in_secs = life.as_secs(),
            "refreshed the Zoho access token"
        );
        return Ok(Token {
            value: Secret::new(token),
            renew_at: Instant::now() + life - early,
        });
    }
    let error = text("error");
    let detail = short(match (error, text("error_description")) {
        ("", _) => format!("HTTP {status}: the answer has no access_token"),
        (e, "") => format!("HTTP {status}: {e}"),
        (e, d) => format!("HTTP {status}: {e}: {d}"),
    });
    if error == "Access Denied" || status == 429 {
        return Err(Attempt::Retry {
            status: Some(status),
            retry_after: retry_after.or(Some(REFRESH_THROTTLE_WAIT)),
            throttled: true,
            reason: format!(
                "{}: Zoho refused to refresh the access token for now: {detail}",
                oauth.key
            ),
        });
    }
    if status >= 500 || status == 408 || error.is_empty() {
        return Err(retry(Some(status), detail));
    }
    let hint = if REFRESH_REFUSALS.contains(&error) {
        " (check client_id, client_secret, refresh_token and accounts_url: the data centre that issued them)"
    } else {
        ""
    };
    Err(Attempt::Permanent {
        status,
        reason: format!(
            "{}: Zoho's accounts server refused to refresh the access token: {detail}{hint}",
            oauth.key
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cliq_urls_name_their_channel_or_chat() {
        assert_eq!(
            cliq_target("https://cliq.zoho.eu/api/v2/channelsbyname/dev%20ops/message"),
            Some(CliqTarget::Channel {
                base: "https://cliq.zoho.eu".into(),
                name: "dev ops".into()
            })
        );
        assert_eq!(
            cliq_target("http://127.0.0.1:9/api/v2/chats/CT_1_2/message"),
            Some(CliqTarget::Chat {
                base: "http://127.0.0.1:9".into(),
                chat_id: "CT_1_2".into()
            })
        );
        assert_eq!(
            cliq_target("https://cliq.zoho.com/api/v2/bots/b/incoming"),
            None
        );
    }

    #[test]
    fn conversation_bodies() {
        let body = r#"{"text":"hi","card":{"title":"T","theme":"modern-inline"}}"#;
        let root = r#"{"message_id":"1599_22","chat_id":"CT_1"}"#;
        let v = |s: Option<String>| -> serde_json::Value {
            serde_json::from_str(&s.unwrap_or_default()).unwrap_or_default()
        };
        assert_eq!(v(cliq_act(body, Act::Root))["sync_message"], true);
        let reply = v(cliq_act(
            body,
            Act::Reply {
                root,
                broadcast: false,
            },
        ));
        assert_eq!(reply["thread_message_id"], "1599_22");
        assert!(reply.get("post_in_parent").is_none());
        assert_eq!(reply["card"]["title"], "T");
        let shown = v(cliq_act(
            body,
            Act::Reply {
                root,
                broadcast: true,
            },
        ));
        assert_eq!(shown["post_in_parent"], true);
        assert_eq!(
            v(cliq_act(body, Act::Edit { root })),
            serde_json::json!({"text": "hi"})
        );
        assert_eq!(
            cliq_act(
                body,
                Act::Reply {
                    root: "{}",
                    broadcast: false
                }
            ),
            None
        );
        assert_eq!(chat_id(root).as_deref(), Some("CT_1"));
        let f: serde_json::Value =
            serde_json::from_str(&flat(&reply.to_string())).unwrap_or_default();
        assert!(f.get("thread_message_id").is_none());
        assert!(lost(&Attempt::Permanent {
            status: 404,
            reason: "HTTP 404 message_not_found: Requested message could not be found.".into()
        }));
    }
}
