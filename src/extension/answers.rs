//! Answers: the [`Answer`] the server sends back, the cards every command shares (usage, a
//! store failure), and answering in time.
//!
//! Cliq waits 5 s for the HTTP answer. A command that calls GitLab runs through
//! [`Answers::in_time`]: its work is spawned with a [`Deadline`] that every GitLab call is held
//! to. When the work is done within `answer_within_ms` its card is the answer. Otherwise, with a
//! usable `response_url` (on Cliq's own host, `api_url`), the answer says the result follows,
//! and the work's card is posted there as `{"output": …}` once it is done: GitLab then has until
//! [`follow_up_within`] (well inside the 2 minutes a response URL stays valid). Without one, the
//! work's GitLab calls end at 4/5 of `answer_within_ms`, so its card — saying GitLab did not
//! answer, and what was (not) done — is the answer, by the deadline.

use crate::deliver::sender::{Attempt, Sender};
use crate::deliver::{Auth, Endpoint};
use crate::gitlab::GitlabError;
use crate::render::cliq::{self, plain};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A response URL is valid this long after the invocation (Zoho's documentation).
pub const RESPONSE_URL_VALID: Duration = Duration::from_secs(120);
/// Longest that deferred work may wait on GitLab, leaving the follow-up time to be posted.
pub const MAX_FOLLOW_UP: Duration = Duration::from_secs(RESPONSE_URL_VALID.as_secs() - 20);
/// Deferred work may wait on GitLab this many times `answer_within_ms` (at most
/// [`MAX_FOLLOW_UP`]): 100 s with the default 4 s.
pub const FOLLOW_UP_FACTOR: u32 = 25;
/// How long, after `answer_within_ms`, an answer without a response URL waits for the work to
/// write what GitLab allowed (its GitLab calls have ended by then).
const STORE_GRACE: Duration = Duration::from_millis(300);

/// What to answer Cliq: an HTTP status and the message (a Cliq message object).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status: 200, or 403 for another organisation or data centre.
    pub status: u16,
    /// The message.
    pub body: Value,
}

impl Answer {
    /// A 200 answer with `message`.
    pub(super) fn ok(message: cliq::Message) -> Answer {
        Answer::with(200, message)
    }

    /// An answer with `status` and `message`.
    pub(super) fn with(status: u16, message: cliq::Message) -> Answer {
        Answer {
            status,
            body: Value::Object(message.as_map().clone()),
        }
    }
}

/// How long deferred work may wait on GitLab, for `answer_within`.
pub fn follow_up_within(answer_within: Duration) -> Duration {
    answer_within
        .saturating_mul(FOLLOW_UP_FACTOR)
        .min(MAX_FOLLOW_UP)
}

/// When a command's GitLab calls must have answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    within: Duration,
}

/// A GitLab call that failed, or did not answer before the [`Deadline`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Unanswered {
    /// The deadline passed first.
    #[error("GitLab did not answer within {}", seconds(*.0))]
    Late(Duration),
    /// GitLab answered with an error, or could not be reached.
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
}

impl Deadline {
    /// A deadline `within` from now.
    pub fn after(within: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + within,
            within,
        }
    }

    /// `call`, unless the deadline passes first.
    pub async fn gitlab<T>(
        &self,
        call: impl Future<Output = Result<T, GitlabError>>,
    ) -> Result<T, Unanswered> {
        match tokio::time::timeout_at(self.at, call).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(Unanswered::Late(self.within)),
        }
    }
}

/// Answering in time: the deadline, Cliq's host, and the sender of follow-ups.
#[derive(Debug, Clone)]
pub(super) struct Answers {
    /// `answer_within_ms`.
    pub within: Duration,
    /// `api_url`: the only host a response URL may name.
    pub api_url: String,
    /// Posts follow-ups.
    pub sender: Sender,
}

/// What the answer says when the result will follow through the response URL.
pub(super) struct Pending<'a> {
    /// The card's title (`Subscribing`).
    pub title: &'a str,
    /// What follows (`the result will follow here`).
    pub text: &'a str,
}

impl Answers {
    /// Whether `url` is one to post a follow-up to: on Cliq's own host (`api_url`).
    pub fn usable(&self, url: &str) -> bool {
        let (Ok(u), Ok(api)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.api_url))
        else {
            return false;
        };
        u.origin() == api.origin()
            && u.username().is_empty()
            && u.password().is_none()
            && url.starts_with(&format!("{}/", self.api_url.trim_end_matches('/')))
    }

    /// Runs `work` (spawned, given its [`Deadline`]) and answers within `answer_within_ms`:
    /// its card, or `pending` with the card sent to `response_url` later, or — without a
    /// usable response URL — its card once its GitLab calls gave up.
    pub async fn in_time<W, F>(
        &self,
        response_url: Option<&str>,
        pending: Pending<'_>,
        work: W,
    ) -> Answer
    where
        W: FnOnce(Deadline) -> F,
        F: Future<Output = cliq::Message> + Send + 'static,
    {
        let url = response_url.filter(|u| self.usable(u)).map(str::to_string);
        let deadline = match url {
            Some(_) => Deadline::after(follow_up_within(self.within)),
            None => Deadline::after(self.within * 4 / 5),
        };
        let mut task = tokio::spawn(work(deadline));
        let done = match tokio::time::timeout(self.within, &mut task).await {
            Ok(done) => done,
            Err(_) => match url {
                Some(url) => {
                    let sender = self.sender.clone();
                    tokio::spawn(async move { follow_up(&sender, url, finished(task.await)).await });
                    return Answer::ok(cliq::answer(pending.title, pending.text, None));
                }
                None => match tokio::time::timeout(STORE_GRACE, task).await {
                    Ok(done) => done,
                    Err(_) => {
                        return Answer::ok(cliq::answer(
                            "Not finished",
                            &format!(
                                "The bridge did not finish within {}, and Cliq gave no response URL for a later answer; what you asked may still take effect.",
                                seconds(self.within)
                            ),
                            None,
                        ))
                    }
                },
            },
        };
        Answer::ok(finished(done))
    }
}

/// The work's card, or one saying it failed.
fn finished(done: Result<cliq::Message, tokio::task::JoinError>) -> cliq::Message {
    done.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a Cliq command's task failed");
        cliq::answer(
            "Failed",
            &plain(&format!("the command's task failed: {e}")),
            None,
        )
    })
}

/// Posts `message` to the invocation's response URL (`{"output": …}`).
async fn follow_up(sender: &Sender, url: String, message: cliq::Message) {
    let body = serde_json::json!({ "output": Value::Object(message.as_map().clone()) });
    let endpoint = Endpoint {
        url,
        auth: Auth::None,
    };
    match sender
        .post(&endpoint, "extension-answer", &body.to_string())
        .await
    {
        Attempt::Delivered(_) => tracing::info!("a late answer sent through the response URL"),
        other => {
            tracing::warn!(answer = ?other, "cannot send a late answer through the response URL")
        }
    }
}

/// `/gitlab <syntax>`, as the answer to a command given the wrong words.
pub(super) fn usage(syntax: &str) -> cliq::Message {
    cliq::answer("Usage", &format!("/gitlab {}", plain(syntax)), None)
}

/// The answer when the store could not be read or changed (logged).
pub(super) fn store_failed(error: &str) -> cliq::Message {
    tracing::error!(%error, "cannot read or change the chat rules");
    cliq::answer(
        "Not saved",
        &format!(
            "The bridge could not use its store ({}); nothing was done.",
            plain(error)
        ),
        None,
    )
}

/// The answer when GitLab failed or did not answer while asked about `what`.
pub(super) fn gitlab_failed(what: &str, e: &Unanswered) -> cliq::Message {
    cliq::answer(
        "GitLab did not answer",
        &format!(
            "Could not ask GitLab about `{}`: {}; nothing was done. Try again later.",
            plain(what),
            plain(&e.to_string())
        ),
        None,
    )
}

/// A span of milliseconds as `2h 5m`, `40s`.
pub(super) fn ago(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3_599 => format!("{}m {}s", s / 60, s % 60),
        3_600..=86_399 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// A short wait as `800 ms` or `3.2 s`.
pub(super) fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            within: Duration::from_millis(200),
            api_url: "https://cliq.zoho.com".into(),
            sender: Sender::new(Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn only_cliqs_host_is_a_response_url() {
        let a = answers();
        assert!(a.usable("https://cliq.zoho.com/v2/extensions/1/responses/2"));
        for bad in [
            "https://cliq.zoho.com.evil.example/v2/x",
            "https://cliq.zoho.com@evil.example/v2/x",
            "http://cliq.zoho.com/v2/x",
            "https://cliq.zoho.com:444/v2/x",
            "https://user@cliq.zoho.com/v2/x",
            "not a url",
        ] {
            assert!(!a.usable(bad), "{bad}");
        }
    }

    #[test]
    fn follow_ups_stay_inside_the_response_urls_life() {
        assert_eq!(
            follow_up_within(Duration::from_millis(200)),
            Duration::from_secs(5)
        );
        assert_eq!(follow_up_within(Duration::from_secs(4)), MAX_FOLLOW_UP);
        assert!(MAX_FOLLOW_UP < RESPONSE_URL_VALID);
        assert_eq!(seconds(Duration::from_millis(3_200)), "3.2 s");
        assert_eq!(seconds(Duration::from_millis(160)), "160 ms");
    }

    #[tokio::test]
    async fn without_a_response_url_the_work_answers_by_the_deadline() {
        let a = answers();
        let started = std::time::Instant::now();
        let answer = a
            .in_time(
                None,
                Pending {
                    title: "Working",
                    text: "later",
                },
                |deadline| async move {
                    let never = std::future::pending::<Result<(), GitlabError>>();
                    match deadline.gitlab(never).await {
                        Ok(()) => cliq::answer("Done", "done", None),
                        Err(e) => gitlab_failed("g/p", &e),
                    }
                },
            )
            .await;
        assert_eq!(answer.body["card"]["title"], "GitLab did not answer");
        assert!(
            answer.body["text"].to_string().contains("160 ms"),
            "{}",
            answer.body
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
