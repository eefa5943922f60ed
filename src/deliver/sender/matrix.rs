//! Matrix's client-server API: each post a `PUT` to `{url}/{txnId}` with a Bearer token, the
//! txnId from the message id ([`txn_id`]), so a post re-sent after a crash or a lost answer is
//! the event of the first; answers `{errcode, error, retry_after_ms?}` ([`classify_matrix`]). A
//! `room` alias is resolved once (`GET /_matrix/client/v3/directory/room/{alias}`) and kept for
//! the sender's life. In a conversation ([`matrix_act`]) a reply carries the `m.thread` relation
//! with the reply fallback, an edit is `m.replace` with `m.new_content` under a txnId of its own,
//! a broadcast a plain `m.in_reply_to`; a root's reference is its `event_id`.

use super::{describe, parse_retry_after, seconds, short, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::Endpoint;
use crate::signing::sha256;

/// A Matrix content for `act`: a thread reply (`m.thread` with the reply fallback) or an edit
/// (`m.replace`, `m.new_content`); `None` when `body` is not a JSON object.
pub fn matrix_act(body: &str, act: Act<'_>) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let event_id = |root: &str| -> Option<String> {
        serde_json::from_str::<serde_json::Value>(root)
            .ok()?
            .get("event_id")?
            .as_str()
            .map(str::to_string)
    };
    match act {
        Act::Root => {}
        Act::Reply { root, .. } => {
            let root = event_id(root)?;
            v.as_object_mut()?.insert(
                "m.relates_to".into(),
                serde_json::json!({
                    "rel_type": "m.thread",
                    "event_id": root,
                    "is_falling_back": true,
                    "m.in_reply_to": { "event_id": root },
                }),
            );
        }
        Act::Edit { root } => {
            let root = event_id(root)?;
            let mut new = v.as_object()?.clone();
            new.remove("m.relates_to");
            let text = |k: &str| {
                new.get(k)
                    .and_then(|x| x.as_str())
                    .map(|x| format!("* {x}"))
            };
            let mut edit = serde_json::Map::new();
            edit.insert(
                "msgtype".into(),
                new.get("msgtype").cloned().unwrap_or("m.notice".into()),
            );
            edit.insert("body".into(), text("body").unwrap_or_default().into());
            if let Some(f) = text("formatted_body") {
                edit.insert(
                    "format".into(),
                    new.get("format").cloned().unwrap_or_default(),
                );
                edit.insert("formatted_body".into(), f.into());
            }
            edit.insert("m.mentions".into(), serde_json::json!({}));
            edit.insert("m.new_content".into(), serde_json::Value::Object(new));
            edit.insert(
                "m.relates_to".into(),
                serde_json::json!({ "rel_type": "m.replace", "event_id": root }),
            );
            v = serde_json::Value::Object(edit);
        }
        Act::Broadcast { root } => {
            let root = event_id(root)?;
            v.as_object_mut()?.insert(
                "m.relates_to".into(),
                serde_json::json!({ "m.in_reply_to": { "event_id": root } }),
            );
        }
    }
    Some(v.to_string())
}

/// The homeserver and room alias of a Matrix send URL that names an alias (`…/rooms/%23…`).
pub(super) fn matrix_alias(url: &str) -> Option<(String, String)> {
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

/// Posts `body` as `act` in a Matrix room: the root's reference is `{"event_id"}`; a reply or
/// edit whose root the room does not know says so.
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    id: &str,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let Some(content) = matrix_act(body, act) else {
        return Posted::not_json();
    };
    // An edit or a broadcast is a message of its own: a txnId of its own, exactly
    // once too.
    let id = match act {
        Act::Edit { .. } => format!("{id}/edit"),
        Act::Broadcast { .. } => format!("{id}/broadcast"),
        _ => id.to_string(),
    };
    let (attempt, answer) = sender.exchange(endpoint, &id, &content, None).await;
    // Synapse: 400 M_UNKNOWN "Can't send relation to unknown event", or "Relations
    // must be in the same room" (the channel moved rooms); a redacted root still
    // takes replies.
    let root_lost = act != Act::Root
        && matches!(&attempt, Attempt::Permanent { reason, .. }
            if ["M_NOT_FOUND", "unknown event", "same room"]
                .iter()
                .any(|s| reason.contains(s)));
    let reference = (act == Act::Root && matches!(attempt, Attempt::Delivered(_)))
        .then(|| {
            let v: serde_json::Value = serde_json::from_slice(&answer).ok()?;
            let e = v.get("event_id")?.as_str()?;
            Some(serde_json::json!({ "event_id": e }).to_string())
        })
        .flatten();
    Posted {
        attempt,
        reference,
        root_lost,
    }
}

impl Sender {
    /// A Matrix endpoint's send URL with a room id: as configured, or with its alias resolved
    /// (once; the answer is kept). A failure is the attempt to record: an unknown alias is
    /// permanent, anything else is tried again.
    pub(super) async fn matrix_room_url(
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
                let resolved = Endpoint::matrix(&homeserver, &room, token.clone()).url;
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
            crate::deliver::path_segment(alias)
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
