//! Reading one verified invocation: who sent it from which chat, what it asks (a `/gitlab`
//! command's words, or a button's key), and the checks of the words a command is given (project
//! and group paths, merge request and issue subjects). Nothing here is trusted to have the shape
//! Zoho documents: a missing key or a value of another type reads as absent.

use crate::config::CliqExtensionConfig;
use crate::render::cliq::{self, plain};
use serde_json::Value;

/// Longest `arguments` text read; a longer one is refused whole.
pub const MAX_ARGUMENTS_CHARS: usize = 1_000;
/// Longest project or group path accepted (GitLab's own limit is 255 per segment).
pub const MAX_PATH_CHARS: usize = 255;

/// Who invoked what, from the invocation's `params`.
#[derive(Debug, Clone, Default)]
pub(super) struct Caller {
    /// The Cliq user id (`"unknown"` when Cliq did not say).
    pub user_id: String,
    /// The user's e-mail, lower case, when Cliq sent it.
    pub email: Option<String>,
    /// The chat it came from, as Cliq sent it (checked by [`super::Context::chat`]).
    pub chat_id: Option<String>,
    /// Where a late answer may be posted (checked before use).
    pub response_url: Option<String>,
}

/// What an invocation asks.
#[derive(Debug, Clone)]
pub(super) enum Request {
    /// `/gitlab …`: the text after the command (empty when absent or not a string).
    Command(String),
    /// A card button (`invoke.function`): its key (empty when absent).
    Button(String),
    /// Any other handler (bot, message action, …), by its `type`.
    Other(Option<String>),
}

/// A non-empty string at `v`.
fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string).filter(|s| !s.is_empty())
}

/// The caller and the request of `invocation`.
pub(super) fn read(invocation: &Value) -> (Caller, Request) {
    let params = &invocation["params"];
    let caller = Caller {
        user_id: text(&params["access"]["user_id"])
            .or_else(|| text(&params["user"]["id"]))
            .unwrap_or_else(|| "unknown".into()),
        email: text(&params["user"]["email"]).map(|e| e.to_lowercase()),
        chat_id: text(&params["access"]["chat_id"]).or_else(|| text(&params["chat"]["id"])),
        response_url: text(&invocation["response_url"]),
    };
    let request = match invocation["type"].as_str() {
        Some("command") => Request::Command(match &params["arguments"] {
            Value::String(s) => s.clone(),
            _ => String::new(),
        }),
        Some("function") => Request::Button(
            text(&params["arguments"]["key"])
                .or_else(|| text(&params["target"]["key"]))
                .unwrap_or_default(),
        ),
        other => Request::Other(other.map(str::to_string)),
    };
    (caller, request)
}

/// Why an invocation from another organisation or data centre is refused, if it is.
pub(super) fn foreign(cfg: &CliqExtensionConfig, invocation: &Value) -> Option<String> {
    let params = &invocation["params"];
    if let Some(dc) = &cfg.data_center {
        let got = params["environment"]["data_center"].as_str().unwrap_or("");
        if !got.eq_ignore_ascii_case(dc) {
            return Some(format!(
                "this bridge serves the {dc} data centre, not {:?}",
                got
            ));
        }
    }
    if let Some(org) = &cfg.organization_id {
        let got = params["access"]["organization"]["id"]
            .as_str()
            .or_else(|| params["user"]["organization_id"].as_str())
            .unwrap_or("");
        if got != org {
            return Some("this bridge serves another Cliq organisation".into());
        }
    }
    None
}

/// The words of a command's arguments; the refusal when they are too long.
pub(super) fn words(arguments: &str) -> Result<Vec<String>, cliq::Message> {
    if arguments.chars().count() > MAX_ARGUMENTS_CHARS {
        return Err(cliq::answer(
            "Too long",
            &format!(
                "The arguments are longer than {MAX_ARGUMENTS_CHARS} characters; nothing was done."
            ),
            None,
        ));
    }
    Ok(arguments.split_whitespace().map(str::to_string).collect())
}

/// A project or group path as GitLab allows them: segments of letters, digits, `_`, `-`, `.`.
pub(super) fn check_path(raw: &str) -> Result<String, cliq::Message> {
    let path = raw.trim().trim_matches('/');
    let ok = !path.is_empty()
        && path.chars().count() <= MAX_PATH_CHARS
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if ok {
        Ok(path.to_string())
    } else {
        Err(cliq::answer(
            "Not a path",
            &format!(
                "`{}` is not a GitLab project or group path such as `group/project`; nothing was done.",
                plain(&clip(raw, 60))
            ),
            None,
        ))
    }
}

/// `path!iid` (a merge request) or `path#iid` (an issue).
pub(super) fn check_subject(raw: &str) -> Result<String, cliq::Message> {
    let split = raw.rfind(['!', '#']);
    let parsed = split.and_then(|i| {
        let (path, iid) = (&raw[..i], &raw[i + 1..]);
        let iid: u64 = iid.parse().ok()?;
        let path = check_path(path).ok()?;
        Some(format!("{path}{}{iid}", &raw[i..=i]))
    });
    parsed.ok_or_else(|| {
        cliq::answer(
            "Not understood",
            &format!(
                "`{}` is not a merge request (`group/project!12`) or an issue (`group/project#34`); nothing was done.",
                plain(&clip(raw, 60))
            ),
            None,
        )
    })
}

/// The non-empty items of a comma-separated list (`labels:a,b`).
pub(super) fn list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// The first `max` characters of `s` (what a refusal quotes of a user's text).
pub(super) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_subjects_and_durations() {
        assert!(check_path("group/sub/project.x").is_ok());
        for bad in ["", "/", "a//b", "a/../b", "a b", "a/b?c", &"x".repeat(300)] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_subject("g/p!12").ok().as_deref(), Some("g/p!12"));
        assert_eq!(check_subject("g/p#3").ok().as_deref(), Some("g/p#3"));
        for bad in ["g/p", "g/p!x", "!3", "g/p#-1"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn odd_shapes_read_as_absent() {
        let (caller, request) = read(&json!({
            "type": "command", "response_url": 7,
            "params": {"access": {"user_id": 651, "chat_id": ["x"]}, "arguments": {"a": 1}}
        }));
        assert_eq!(caller.user_id, "unknown");
        assert_eq!(caller.chat_id, None);
        assert_eq!(caller.response_url, None);
        assert!(matches!(request, Request::Command(a) if a.is_empty()));
        let (_, request) = read(&json!({"type": "function", "params": "key"}));
        assert!(matches!(request, Request::Button(k) if k.is_empty()));
        let (_, request) = read(&json!({"type": ["command"]}));
        assert!(matches!(request, Request::Other(None)));
        assert!(words(&"x ".repeat(600)).is_err());
        assert_eq!(
            words(" subscribe  a/b ").ok(),
            Some(vec!["subscribe".into(), "a/b".into()])
        );
    }
}
