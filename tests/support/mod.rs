//! What the test modules share, each helper written once:
//!
//! - [`samples`]: GitLab's example payloads in `samples/` (the one copy) with their
//!   `X-Gitlab-Event` header from `samples/INDEX.tsv`, as bytes, JSON or parsed events;
//! - [`renderer`]: renderers with known date settings, and a rendered message as JSON;
//! - [`cliq`]: Cliq's message contract, with the limits taken from the library;
//! - [`conversation`]: the conversation tests' events (a merge request's life), sequences,
//!   channel config and bounded waits;
//! - [`temp`]: temporary folders unique to the call, removed on drop;
//! - [`cli`]: the binary under test run as a command in a clean environment, bounded in time;
//! - [`daemon`]: the binary serving on loopback, its config, and webhooks posted as GitLab does;
//! - [`fake_api`]: what the fake chat APIs share: their server on loopback, the most requests
//!   accepted in a minute, the bounded wait for what they saw;
//! - [`fake_cliq`]: a fake Zoho Cliq endpoint that enforces the contract and can be scripted;
//! - [`fake_cliq_api`]: a fake Cliq REST API with Zoho's OAuth token endpoint (threads, edits);
//! - [`fake_gitlab_mrs`]: a fake GitLab with open merge requests (reviewers, drafts, approvals,
//!   pipelines, paged) for review reminders;
//! - [`hang`]: a GitLab that hangs or refuses connections, and response URLs recorded by id;
//! - [`postgres`]: a throw-away PostgreSQL cluster on loopback, stopped and removed on drop
//!   (and, for an outage, stopped and started again);
//! - [`parity`]: one deployment on either store engine (its replicas' configs) and the
//!   operator's commands run with one of them;
//! - [`prism`]: Prism serving one of the vendored OpenAPI documents in `specs/`;
//! - [`synapse`]: a throw-away Matrix homeserver (Synapse) on loopback with a bot, a second
//!   user and a room, killed and removed on drop;
//! - [`fake_telegram`]: a fake Telegram Bot API that enforces the contract and can be scripted;
//! - [`fake_discord`]: a fake Discord webhook API (a text channel's and a forum's webhook:
//!   message ids, forum posts, `thread_id`, edits, the per-minute limit) that can be scripted;
//! - [`fake_slack`], [`fake_mattermost`]: fake Slack Web and Mattermost REST APIs (posts in
//!   threads, root edits, deleted roots, 429s) that enforce their contracts and count posts
//!   and edits per minute;
//! - [`turn`]: which tests may run side by side in the one test process;
//!
//! and, here, unique names and bounded polling.

pub mod chats;
pub mod cli;
pub mod cliq;
pub mod conversation;
pub mod daemon;
pub mod fake_api;
pub mod fake_chats;
pub mod fake_cliq;
pub mod fake_cliq_api;
pub mod fake_discord;
pub mod fake_gitlab_mrs;
pub mod fake_mattermost;
pub mod fake_slack;
pub mod fake_telegram;
pub mod hang;
pub mod parity;
pub mod postgres;
pub mod prism;
pub mod renderer;
pub mod samples;
pub mod synapse;
pub mod temp;
pub mod turn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A loopback port free at the moment of asking (for a server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name unique to this process and call: `prefix-PID-NANOS-N`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` every 25 ms until it holds; fails after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
