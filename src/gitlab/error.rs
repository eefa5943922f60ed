//! Why a GitLab request failed, one variant per cause a caller or a user acts on differently.
//!
//! Every message starts with what was being done (`listing hooks of project group/app`), so a
//! line in the plan or the summary names its project. No variant carries a token: reqwest errors
//! are stripped of their URL and GitLab's own message is cut to [`MAX_MESSAGE_CHARS`].

/// Longest part of GitLab's error text kept in a message.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// A GitLab request that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitlabError {
    /// 401: the token is wrong, expired or revoked.
    #[error(
        "{what}: 401 unauthorized: GitLab rejected the token (check [gitlab] token: it must be \
         valid, unexpired and have the `api` scope)"
    )]
    Unauthorized {
        /// What was being done.
        what: String,
    },
    /// 403: the token's user may not do this (role below Maintainer, or a read-only scope).
    #[error(
        "{what}: 403 forbidden: the token's user needs the Maintainer role on this project and \
         the token the `api` scope ({message})"
    )]
    Forbidden {
        /// What was being done.
        what: String,
        /// GitLab's message.
        message: String,
    },
    /// 404: no such project, group or hook, or the token's user cannot see it.
    #[error(
        "{what}: 404 not found: no such project, group or hook, or the token's user cannot see it"
    )]
    NotFound {
        /// What was being done.
        what: String,
    },
    /// 400 or 422: GitLab refused the request's content, e.g. a hook URL it will not call.
    #[error(
        "{what}: {status} invalid request: {message} (check [gitlab] hook_url: GitLab must be able \
         to reach it, and refuses local addresses unless an admin allows them)"
    )]
    Invalid {
        /// What was being done.
        what: String,
        /// 400 or 422.
        status: u16,
        /// GitLab's message.
        message: String,
    },
    /// 429 on every attempt.
    #[error("{what}: 429 too many requests: still rate limited after {attempts} attempts")]
    RateLimited {
        /// What was being done.
        what: String,
        /// How many requests were sent.
        attempts: u32,
    },
    /// 5xx on every attempt.
    #[error("{what}: GitLab answered {status} (server error) {attempts} times: {message}")]
    Server {
        /// What was being done.
        what: String,
        /// The last status.
        status: u16,
        /// How many requests were sent.
        attempts: u32,
        /// GitLab's message.
        message: String,
    },
    /// Another unexpected status.
    #[error("{what}: GitLab answered {status}: {message}")]
    Status {
        /// What was being done.
        what: String,
        /// The status.
        status: u16,
        /// GitLab's message.
        message: String,
    },
    /// No answer: connection refused, TLS failure, timeout.
    #[error("{what}: cannot reach GitLab: {message}")]
    Network {
        /// What was being done.
        what: String,
        /// reqwest's message, without the URL.
        message: String,
    },
    /// An answer that is not what GitLab documents (bad JSON, endless pagination).
    #[error("{what}: unexpected answer from GitLab: {message}")]
    Unexpected {
        /// What was being done.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The configured base URL is unusable.
    #[error("gitlab.url: {message}")]
    BadBaseUrl {
        /// What is wrong.
        message: String,
    },
}

impl GitlabError {
    /// The HTTP status behind the error, if GitLab answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitlabError::Unauthorized { .. } => Some(401),
            GitlabError::Forbidden { .. } => Some(403),
            GitlabError::NotFound { .. } => Some(404),
            GitlabError::RateLimited { .. } => Some(429),
            GitlabError::Invalid { status, .. }
            | GitlabError::Server { status, .. }
            | GitlabError::Status { status, .. } => Some(*status),
            GitlabError::Network { .. }
            | GitlabError::Unexpected { .. }
            | GitlabError::BadBaseUrl { .. } => None,
        }
    }

    /// The error for a final (non-retried) answer with `status` and `body`.
    pub fn from_answer(what: &str, status: u16, body: &[u8], attempts: u32) -> GitlabError {
        let what = what.to_string();
        let message = gitlab_message(body);
        match status {
            401 => GitlabError::Unauthorized { what },
            403 => GitlabError::Forbidden { what, message },
            404 => GitlabError::NotFound { what },
            400 | 422 => GitlabError::Invalid {
                what,
                status,
                message,
            },
            429 => GitlabError::RateLimited { what, attempts },
            500..=599 => GitlabError::Server {
                what,
                status,
                attempts,
                message,
            },
            _ => GitlabError::Status {
                what,
                status,
                message,
            },
        }
    }
}

/// GitLab's error text from an answer body: `message` (a string, or an object of field → list of
/// problems), else `error` (+ `error_description`), else the raw text; cut to
/// [`MAX_MESSAGE_CHARS`].
pub fn gitlab_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => from_json(&v).unwrap_or_else(|| v.to_string()),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    let text = if text.is_empty() {
        "no details given".to_string()
    } else {
        text
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn from_json(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let flat = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    match v.get("message") {
        Some(Value::String(s)) => return Some(s.clone()),
        Some(Value::Object(fields)) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k} {}", flat(v)))
                .collect();
            return Some(parts.join("; "));
        }
        Some(other) => return Some(flat(other)),
        None => {}
    }
    let error = v.get("error").map(flat)?;
    Some(match v.get("error_description").map(flat) {
        Some(d) => format!("{error}: {d}"),
        None => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants_that_name_the_project() {
        let what = "listing hooks of project group/app";
        let e = GitlabError::from_answer(what, 401, br#"{"message":"401 Unauthorized"}"#, 1);
        assert!(matches!(e, GitlabError::Unauthorized { .. }));
        assert!(e.to_string().starts_with(what), "{e}");
        assert!(e.to_string().contains("`api` scope"), "{e}");
        let e = GitlabError::from_answer(what, 403, br#"{"message":"403 Forbidden"}"#, 1);
        assert!(e.to_string().contains("Maintainer"), "{e}");
        assert_eq!(e.status(), Some(403));
        let e = GitlabError::from_answer(what, 404, b"", 1);
        assert!(matches!(e, GitlabError::NotFound { .. }));
        let e = GitlabError::from_answer(what, 422, br#"{"error":"Invalid url given"}"#, 1);
        assert!(e.to_string().contains("Invalid url given"), "{e}");
        assert!(e.to_string().contains("hook_url"), "{e}");
        let e = GitlabError::from_answer(what, 503, b"<html>down</html>", 5);
        assert!(
            matches!(
                e,
                GitlabError::Server {
                    status: 503,
                    attempts: 5,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(matches!(
            GitlabError::from_answer(what, 429, b"", 5),
            GitlabError::RateLimited { attempts: 5, .. }
        ));
        assert!(matches!(
            GitlabError::from_answer(what, 409, b"", 1),
            GitlabError::Status { status: 409, .. }
        ));
    }

    #[test]
    fn gitlab_messages_are_flattened_and_cut() {
        assert_eq!(
            gitlab_message(
                br#"{"message":{"url":["is blocked: Requests to localhost are not allowed"]}}"#
            ),
            "url is blocked: Requests to localhost are not allowed"
        );
        assert_eq!(
            gitlab_message(br#"{"error":"insufficient_scope","error_description":"needs api"}"#),
            "insufficient_scope: needs api"
        );
        assert_eq!(gitlab_message(b""), "no details given");
        let long = "x".repeat(1000);
        assert_eq!(
            gitlab_message(long.as_bytes()).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }
}
