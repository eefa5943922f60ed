//! Moving deliveries through the store to chat endpoints: the outbox interface, the router
//! stage's loop, the retry policy and the worker that posts. Knows nothing of GitLab events,
//! templates or message formats: a received delivery is headers and bytes, a [`Delivery`] is a
//! channel name, an ordering key and a body.
//!
//! The HTTP handler hands each received delivery to an [`Outbox`] and answers once it is
//! committed; [`durable::DurableOutbox`] keeps events and messages through a store
//! [`engine::Engine`] (SQLite: [`writer`] over [`store`]), the
//! [`router`] stage turns new events into messages (with the routing function it is given), and
//! [`worker`]s drain them, posting with [`sender`] under the credential's [`rate`] limit.

pub mod bell;
pub mod checkpoint;
pub mod clock;
pub mod conversation;
pub mod durable;
pub mod engine;
pub mod pg;
pub mod rate;
pub mod router;
pub mod sender;
pub mod store;
pub mod worker;
pub mod writer;

use crate::secret::Secret;
use backon::BackoffBuilder;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How a channel's endpoint authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `?zapikey=…` appended to the URL (Cliq webhook token).
    ZapiKey(Secret),
    /// `Authorization: Zoho-oauthtoken …`.
    OAuth(Secret),
    /// Secret query parameters added at send time, in order (a Cliq extension incoming URL's
    /// `appkey`, and its `zapikey`).
    Query(Vec<(String, Secret)>),
    /// The whole URL is the credential (Slack, Discord, Teams, Google Chat, Mattermost and
    /// generic webhooks); [`Endpoint::url`] is then a redacted form for logs.
    SecretUrl(Secret),
    /// A secret URL, and each post signed per Standard Webhooks with this `whsec_` key
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Signed {
        /// The URL to post to.
        url: Secret,
        /// The signing secret.
        key: Secret,
    },
    /// Telegram's Bot API: the URL holds the bot token (`{api_url}/bot{token}/sendMessage`), so
    /// it is a secret ([`Endpoint::url`] is the redacted form); the chat and forum topic are
    /// written into each body at send time, so a chat that migrates takes its waiting messages
    /// along.
    Telegram {
        /// The `sendMessage` URL, token included.
        url: Secret,
        /// `chat_id`: an integer id, or `@channelusername`.
        chat_id: String,
        /// `message_thread_id`: a forum topic.
        message_thread_id: Option<i64>,
    },
    /// Matrix: `Authorization: Bearer` with the access token; each post is a `PUT` to
    /// `{url}/{txnId}` ([`Endpoint::url`]: `…/rooms/{room}/send/m.room.message`), the txnId
    /// derived from the message's id so that a re-sent post is the same event.
    Matrix {
        /// The access token.
        token: Secret,
    },
    /// A Discord webhook: the URL is the credential ([`Endpoint::url`] is the redacted form).
    /// In a conversation a post asks for its message (`?wait=true`) and the root is edited with
    /// `PATCH …/messages/{id}`; a forum channel's webhook starts a forum post per object
    /// (`thread_name`) and replies into it (`?thread_id=`).
    Discord {
        /// The webhook URL, token included.
        url: Secret,
        /// Whether the webhook belongs to a forum (or media) channel (`forum = true`).
        forum: bool,
    },
    /// Zoho OAuth with a refresh token (a Cliq channel's API mode): an access token is fetched
    /// from the data centre's accounts host, kept in memory per credential, refreshed before it
    /// expires and once on a 401, and sent as `Authorization: Zoho-oauthtoken …`
    /// (`sender/cliq`). [`Endpoint::url`] is the channel's message URL.
    CliqOAuth(ZohoOAuth),
    /// Slack's Web API with a bot token (`Authorization: Bearer xoxb-…`): posts are
    /// `chat.postMessage` into `channel`, root edits `chat.update` ([`Endpoint::url`]: the API's
    /// base, `https://slack.com/api`).
    Slack {
        /// The bot token.
        token: Secret,
        /// The channel id (`C…`).
        channel: String,
    },
    /// Mattermost's REST API with a personal access or bot token (`Authorization: Bearer`):
    /// posts are `POST /api/v4/posts` into `channel_id`, root edits `PUT /api/v4/posts/{id}/patch`
    /// ([`Endpoint::url`]: the server's base URL).
    Mattermost {
        /// The access token.
        token: Secret,
        /// The channel id.
        channel_id: String,
        /// The team's name, for links to a thread (`{server}/{team}/pl/{post id}`), if known.
        team: Option<String>,
    },
    /// Nothing (the URL carries its own authentication, or a test endpoint).
    None,
}

/// A Zoho OAuth client and the refresh token it trades for access tokens ([`Auth::CliqOAuth`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoOAuth {
    /// The data centre's accounts host (`https://accounts.zoho.com`), without a trailing `/`.
    pub accounts_url: String,
    /// The client's id.
    pub client_id: Secret,
    /// The client's secret.
    pub client_secret: Secret,
    /// The refresh token (a user's grant).
    pub refresh_token: Secret,
    /// The config key a refresh failure names (`channels[0].refresh_token`).
    pub key: String,
}

/// Where a channel's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// URL without credentials, or a redacted form of a secret URL (safe to log).
    pub url: String,
    /// Credentials added at send time.
    pub auth: Auth,
}

impl Endpoint {
    /// A Telegram channel's endpoint: `{api_url}/bot{token}/sendMessage`, logged as
    /// `{api_url}/bot…/sendMessage`.
    pub fn telegram(
        api_url: &str,
        token: &Secret,
        chat_id: &str,
        message_thread_id: Option<i64>,
    ) -> Endpoint {
        let base = api_url.trim_end_matches('/');
        Endpoint {
            url: format!("{base}/bot…/sendMessage"),
            auth: Auth::Telegram {
                url: Secret::new(format!("{base}/bot{}/sendMessage", token.expose())),
                chat_id: chat_id.trim().to_string(),
                message_thread_id,
            },
        }
    }

    /// A Matrix room's endpoint: `{homeserver}/_matrix/client/v3/rooms/{room_id}/send/m.room.message`
    /// (the txnId is added per post).
    pub fn matrix(homeserver: &str, room_id: &str, token: Secret) -> Endpoint {
        Endpoint {
            url: format!(
                "{}/_matrix/client/v3/rooms/{}/send/m.room.message",
                homeserver.trim_end_matches('/'),
                path_segment(room_id)
            ),
            auth: Auth::Matrix { token },
        }
    }
}

/// `s` percent-encoded for one segment of a URL path (a Matrix room id or alias).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One message for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Id for logs: the webhook's request id and the channel.
    pub id: String,
    /// Channel name (from config).
    pub channel: String,
    /// Messages with the same key are posted to a channel in the order received.
    pub ordering_key: String,
    /// The Cliq message, as JSON.
    pub body: String,
}

/// Everything one webhook produced, committed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// GitLab's `Idempotency-Key` (or another stable id of the delivery), for de-duplication.
    pub dedupe_key: Option<String>,
    /// Human id for logs (`X-Gitlab-Webhook-UUID` or the dedupe key).
    pub request_id: String,
    /// The messages, possibly none.
    pub deliveries: Vec<Delivery>,
}

/// What the outbox did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Accepted for delivery.
    Accepted,
    /// Seen before (same dedupe key): acknowledged, not posted again.
    Duplicate,
}

/// Why a batch could not be accepted; the webhook is then answered 503 and GitLab re-sends.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The outbox is shutting down or its worker has stopped.
    #[error("outbox is closed")]
    Closed,
    /// The store failed.
    #[error("outbox store failed: {0}")]
    Store(String),
}

/// A boxed future, so [`Outbox`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the HTTP handler puts what it received. It returns once the delivery is committed.
pub trait Outbox: Send + Sync + 'static {
    /// Stores a received delivery as a new event, to be routed (committed when this resolves
    /// `Ok`), or recognises it as a duplicate.
    fn ingest(&self, ev: store::RawEvent) -> BoxFuture<'_, Result<store::Ingested, OutboxError>>;

    /// Checks that the outbox can commit (for `GET /readyz`). The default: always.
    fn ping(&self) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async { Ok(()) })
    }

    /// Counts per channel (for the metrics' gauges). The default: nothing known.
    fn stats(&self) -> BoxFuture<'_, Result<Vec<store::ChannelStats>, OutboxError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Retry timing for posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Timeout of one POST. Default 10 s.
    pub timeout: Duration,
    /// Attempts before a message is given up (dead). Default 8.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time, with jitter. Default 1 s.
    pub initial_backoff: Duration,
    /// Longest wait between attempts. Default 300 s.
    pub max_backoff: Duration,
    /// A message older than this is given up after its next failure. Default 24 h.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The waits between tries of a store that cannot be reached (the database away): 250 ms
/// doubling to 5 s, with jitter, for as long as it lasts; a fresh one for each outage.
pub fn store_backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(STORE_BACKOFF_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The longest wait of [`store_backoff`].
pub const STORE_BACKOFF_MAX: Duration = Duration::from_secs(5);

impl RetryPolicy {
    /// Wait before attempt `attempt + 1` after `attempt` failures (1-based), with jitter; a
    /// server's `Retry-After` wins when longer, capped at `max_backoff`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        retry_after.map_or(backoff, |ra| ra.min(self.max_backoff))
    }
}

/// What the deliver modules' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    /// `len` lowercase letters that lz4 cannot shrink: a linear congruential sequence that
    /// goes on from `seed` (so consecutive calls give different bodies).
    pub fn incompressible(len: usize, seed: &mut u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b'a' + (*seed >> 59) as u8
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_endpoints_keep_their_tokens_out_of_the_logged_url() {
        let t = Endpoint::telegram(
            "https://api.telegram.org/",
            &Secret::new("1:SECRET"),
            " -100 ",
            None,
        );
        assert_eq!(t.url, "https://api.telegram.org/bot…/sendMessage");
        assert!(matches!(&t.auth, Auth::Telegram { url, chat_id, .. }
            if url.expose() == "https://api.telegram.org/bot1:SECRET/sendMessage" && chat_id == "-100"));
        let m = Endpoint::matrix(
            "http://127.0.0.1:8008/",
            "!abc:example.org",
            Secret::new("syt_X"),
        );
        assert_eq!(
            m.url,
            "http://127.0.0.1:8008/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message"
        );
        assert!(!m.url.contains("syt_X"));
    }

    #[test]
    fn backoff_grows_with_jitter_and_respects_retry_after() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let d1 = p.delay(1, None);
        let d4 = p.delay(4, None);
        assert!(
            d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(250),
            "{d1:?}"
        );
        assert!(d4 >= Duration::from_millis(800), "{d4:?}");
        assert!(p.delay(30, None) <= Duration::from_secs(10));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }
}
