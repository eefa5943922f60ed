//! Telegram's Bot API: the body gets the channel's `chat_id` (and `message_thread_id`) at send
//! time ([`telegram_body`]); answers are `{ok, error_code, description, parameters?: {retry_after,
//! migrate_to_chat_id}}` ([`classify_telegram`]). In a conversation a reply carries
//! `reply_parameters` (never sent without its root) and an edit is `editMessageText`
//! ([`telegram_act`]); a root's reference is `result.message_id`.

use super::{parse_retry_after, seconds, short, Attempt, Posted, Sender};
use crate::deliver::conversation::Act;
use crate::deliver::Endpoint;

/// A Telegram body for `act` and the method to call (`None`: `sendMessage`), or `None` when
/// `body` is not a JSON object.
pub fn telegram_act(body: &str, act: Act<'_>) -> Option<(String, Option<&'static str>)> {
    let mut v: serde_json::Value = serde_json::from_str(body).ok()?;
    let o = v.as_object_mut()?;
    let message_id = |root: &str| -> Option<i64> {
        serde_json::from_str::<serde_json::Value>(root)
            .ok()?
            .get("message_id")?
            .as_i64()
    };
    let method = match act {
        Act::Root => None,
        Act::Reply { root, .. } => {
            let id = message_id(root)?;
            o.insert(
                "reply_parameters".into(),
                serde_json::json!({ "message_id": id, "allow_sending_without_reply": false }),
            );
            None
        }
        Act::Edit { root } => {
            o.insert("message_id".into(), message_id(root)?.into());
            o.remove("reply_parameters");
            Some("editMessageText")
        }
        // A Telegram reply is in the chat already; a broadcast is the same reply.
        Act::Broadcast { root } => {
            let id = message_id(root)?;
            o.insert(
                "reply_parameters".into(),
                serde_json::json!({ "message_id": id, "allow_sending_without_reply": false }),
            );
            None
        }
    };
    Some((v.to_string(), method))
}

/// Posts `body` as `act` in a Telegram chat: the root's reference is `{"message_id"}`; a
/// reply or edit whose root is gone ("message to be replied not found" / "message to edit not
/// found") says so.
pub(super) async fn converse(
    sender: &Sender,
    endpoint: &Endpoint,
    id: &str,
    body: &str,
    act: Act<'_>,
) -> Posted {
    let Some((body, method)) = telegram_act(body, act) else {
        return Posted::not_json();
    };
    let (attempt, answer) = sender.exchange(endpoint, id, &body, method).await;
    let root_lost = act != Act::Root
        && matches!(&attempt, Attempt::Permanent { status: 400, reason }
            if reason.contains("message to be replied not found")
                || reason.contains("message to edit not found"));
    let reference = (act == Act::Root && matches!(attempt, Attempt::Delivered(_)))
        .then(|| {
            let v: serde_json::Value = serde_json::from_slice(&answer).ok()?;
            let n = v.get("result")?.get("message_id")?.as_i64()?;
            Some(serde_json::json!({ "message_id": n }).to_string())
        })
        .flatten();
    Posted {
        attempt,
        reference,
        root_lost,
    }
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
