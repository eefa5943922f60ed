//! End-to-end tests on loopback: the real `gitlab-chat-bridge serve` binary, a fake Zoho Cliq
//! endpoint that enforces Cliq's contract (`zapikey`, message shape and limits; answers 429 with
//! `Retry-After` first when asked to, then 204), and GitLab's real payloads posted with GitLab's
//! headers. They check that the right cards arrive exactly once, that a throttled post is retried,
//! that nothing is posted for a wrong or missing token, a bad body or an unknown kind, that a
//! re-sent delivery is posted once, that channel filters and confidentiality hold, and that no
//! secret ever reaches the daemon's log.

use crate::support::daemon::{assert_no_secrets, ChannelSpec, Daemon, MAX_BODY_BYTES};
use crate::support::fake_cliq::{FakeCliq, OTHER_ZAPIKEY};
use crate::support::renderer::text;
use crate::support::{samples, turn, unique, wait_until};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a message may take to reach the fake (with the 1 s throttle pause included).
const ARRIVAL: Duration = Duration::from_secs(15);
/// How long to keep watching for a message that must not come.
const QUIET: Duration = Duration::from_millis(500);

/// The one accepted message whose text contains `needle`; fails if none or several.
fn the_card<'a>(messages: &'a [Value], needle: &str) -> &'a Value {
    let found: Vec<&Value> = messages
        .iter()
        .filter(|m| text(m).contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one card containing {needle:?}, got {}: {messages:#?}",
        found.len()
    );
    found[0]
}

fn button_urls(msg: &Value) -> Vec<&str> {
    msg["buttons"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|b| b["action"]["data"]["web"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Every kind, posted with GitLab's headers while the fake throttles the first post: each webhook
/// is answered 200 at once, the throttled post is retried, and each card arrives exactly once
/// with what a user should see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_arrives_once_after_a_throttled_retry() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(1).await;
    let daemon = Daemon::start("kinds", &[ChannelSpec::new("dev", fake.url("dev"))]).await;

    let fixtures = [
        "issue__open.json",
        "merge_request__open.json",
        "push__basic.json",
        "note__issue.json",
        "note__commit.json",
        "note__merge_request.json",
        "note__snippet.json",
    ];
    for f in fixtures {
        let started = std::time::Instant::now();
        let answer = daemon.post_sample(f).await;
        assert_eq!(answer.status, 200, "{f}: {answer:?}");
        assert_eq!(answer.body["status"], "accepted", "{f}: {answer:?}");
        assert!(answer.body["event_id"].is_u64(), "{f}: {answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{f} took {:?} to be answered",
            started.elapsed()
        );
    }

    fake.wait_for_accepted(fixtures.len(), ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(seen.throttled, 1, "the fake answered 429 once");
    assert_eq!(seen.accepted.len(), fixtures.len(), "{:#?}", seen.accepted);
    assert!(
        seen.requests > seen.accepted.len(),
        "no retry: {} requests for {} messages",
        seen.requests,
        seen.accepted.len()
    );
    assert_eq!(seen.requests, seen.accepted.len() + 1);
    assert!(seen.accepted.iter().all(|a| a.channel == "dev"));
    let msgs: Vec<Value> = seen.accepted.iter().map(|a| a.body.clone()).collect();
    for m in &msgs {
        assert_eq!(m["card"]["theme"], "modern-inline", "{m:#}");
        assert!(
            m["card"]["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{m:#}"
        );
    }

    let issue = the_card(&msgs, "New API: create/update/delete file");
    let t = text(issue);
    assert!(t.contains("Administrator"), "{t}");
    assert!(t.contains("http://example.com/diaspora/issues/23"), "{t}");
    assert!(button_urls(issue).contains(&"http://example.com/diaspora/issues/23"));

    let push = the_card(&msgs, "fixed readme");
    let t = text(push);
    assert!(t.contains("John Smith"), "{t}");
    assert!(
        t.contains(
            "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
        ),
        "{t}"
    );

    let mr = the_card(&msgs, "MS-Viewport");
    let t = text(mr);
    assert!(t.contains("ms-viewport → master"), "{t}");
    assert!(t.contains("Administrator"), "{t}");
    assert!(button_urls(mr).contains(&"http://example.com/diaspora/merge_requests/1"));

    let note = the_card(&msgs, "Hello world");
    assert!(text(note).contains("http://example.com/gitlab-org/gitlab-test/issues/17"));
    the_card(&msgs, "This is a commit comment. How does this work?");
    the_card(&msgs, "This MR needs work.");
    the_card(&msgs, "Is this snippet doing what it");

    let log = daemon.stop();
    assert!(
        log.iter().any(|l| l.contains("will retry")),
        "the retry is not in the log: {log:#?}"
    );
    assert_no_secrets(&log);
}

/// A wrong or missing `X-Gitlab-Token` is answered 401 and nothing reaches Cliq; a right one
/// afterwards is posted exactly once (so the refused ones were not queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_posts_nothing() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("token", &[ChannelSpec::new("dev", fake.url("dev"))]).await;
    let body = samples::bytes("issue__open.json");

    let wrong = daemon
        .post("Issue Hook", body.clone(), Some("not-the-token"), None)
        .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let prefix = daemon
        .post("Issue Hook", body.clone(), Some("gl-SECRET"), None)
        .await;
    assert_eq!(prefix.status, 401, "{prefix:?}");
    let missing = daemon.post_without_token("Issue Hook", body.clone()).await;
    assert_eq!(missing.status, 401, "{missing:?}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(fake.snapshot().requests, 0, "posted for a refused token");

    let ok = daemon.post_sample("issue__open.json").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.requests, 1);
    assert_eq!(seen.accepted.len(), 1);
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_no_secrets(&daemon.stop());
}

/// Malformed JSON is 400, an oversized body 413, an unknown kind 200 and ignored, `/healthz` 200;
/// none of them posts anything, and a good webhook afterwards is the only message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_unknown_kinds_acknowledged() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("bodies", &[ChannelSpec::new("dev", fake.url("dev"))]).await;

    let malformed = daemon
        .post(
            "Push Hook",
            b"{\"object_kind\": \"push\",".to_vec(),
            None,
            None,
        )
        .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    let not_object = daemon
        .post("Push Hook", b"[1, 2, 3]".to_vec(), None, None)
        .await;
    assert_eq!(not_object.status, 400, "{not_object:?}");

    let big = json!({ "object_kind": "push", "pad": "x".repeat(100 * 1024) }).to_string();
    assert!(big.len() > MAX_BODY_BYTES);
    let too_large = daemon.post("Push Hook", big.into_bytes(), None, None).await;
    assert_eq!(too_large.status, 413, "{too_large:?}");

    let unknown = daemon
        .post(
            "Something New Hook",
            br#"{"object_kind":"brand_new"}"#.to_vec(),
            None,
            None,
        )
        .await;
    assert_eq!(unknown.status, 200, "{unknown:?}");
    assert_eq!(unknown.body["status"], "accepted", "{unknown:?}");
    assert!(unknown.body["event_id"].is_u64(), "{unknown:?}");

    assert_eq!(daemon.get("/healthz").await, 200);
    tokio::time::sleep(QUIET).await;
    assert_eq!(fake.snapshot().requests, 0, "something was posted");

    let ok = daemon.post_sample("push__basic.json").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.requests, 1);
    assert!(text(&seen.accepted[0].body).contains("fixed readme"));
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_no_secrets(&daemon.stop());
}

/// GitLab re-sends a delivery with the same `Idempotency-Key`: it is posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_delivery_is_posted_once() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let daemon = Daemon::start("dedupe", &[ChannelSpec::new("dev", fake.url("dev"))]).await;
    let body = samples::bytes("issue__open.json");
    let key = unique("idem");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let a = daemon
            .post("Issue Hook", body.clone(), None, Some(&key))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        statuses.push(a.body["status"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(statuses, ["accepted", "duplicate", "duplicate"]);
    fake.wait_for_accepted(1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 1, "{:#?}", seen.accepted);
    assert_eq!(seen.requests, 1);
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_no_secrets(&daemon.stop());
}

/// `events` filters and `confidential` opt-in decide which channels get what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_get_what_they_subscribe_to() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let mut pushes = ChannelSpec::new("pushes", fake.url("pushes"));
    pushes.events = Some(vec!["push*"]);
    let mut private = ChannelSpec::new("private", fake.url("private"));
    private.events = Some(vec!["issue.*"]);
    private.confidential = true;
    let daemon = Daemon::start(
        "routing",
        &[ChannelSpec::new("all", fake.url("all")), pushes, private],
    )
    .await;

    assert_eq!(daemon.post_sample("push__basic.json").await.status, 200);
    assert_eq!(daemon.post_sample("issue__open.json").await.status, 200);

    // Confidential by header only (GitLab's `Confidential Issue Hook`).
    let mut by_header = samples::json("issue__open.json");
    by_header["object_attributes"]["title"] = json!("Secret plan by header");
    let a = daemon
        .post(
            "Confidential Issue Hook",
            by_header.to_string().into_bytes(),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "accepted", "{a:?}");
    // Confidential by `event_type` under the plain header, as some GitLab versions send it.
    let mut by_type = by_header.clone();
    by_type["event_type"] = json!("confidential_issue");
    by_type["object_attributes"]["title"] = json!("Secret plan by event type");
    let a = daemon
        .post("Issue Hook", by_type.to_string().into_bytes(), None, None)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "accepted", "{a:?}");

    // push → all, pushes; issue → all, private; two confidential issues → private.
    fake.wait_for_accepted(6, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    let channels_with = |needle: &str| {
        let mut c: Vec<String> = seen
            .accepted
            .iter()
            .filter(|a| text(&a.body).contains(needle))
            .map(|a| a.channel.clone())
            .collect();
        c.sort();
        c
    };
    assert_eq!(channels_with("fixed readme"), ["all", "pushes"]);
    assert_eq!(
        channels_with("New API: create/update/delete file"),
        ["all", "private"]
    );
    assert_eq!(channels_with("Secret plan by header"), ["private"]);
    assert_eq!(channels_with("Secret plan by event type"), ["private"]);
    assert_eq!(seen.accepted.len(), 6, "{:#?}", seen.accepted);
    assert_no_secrets(&daemon.stop());
}

/// Neither the zapikeys nor the secret token reach the log, on the paths most likely to leak
/// them: refused webhooks, a channel whose key Cliq refuses, a channel that cannot be reached
/// (network errors carry the URL, and so the zapikey, unless stripped), with debug logging on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut bad_key = ChannelSpec::new("badkey", fake.url("badkey"));
    bad_key.zapikey = OTHER_ZAPIKEY;
    let down = ChannelSpec::new(
        "down",
        format!("http://{closed}/api/v2/channelsbyname/down/message"),
    );
    let daemon = Daemon::start(
        "secrets",
        &[ChannelSpec::new("good", fake.url("good")), bad_key, down],
    )
    .await;

    let body = samples::bytes("issue__open.json");
    let wrong = daemon
        .post("Issue Hook", body.clone(), Some("nope"), None)
        .await;
    assert_eq!(wrong.status, 401);
    let bad = daemon.post("Issue Hook", b"{".to_vec(), None, None).await;
    assert_eq!(bad.status, 400);
    let ok = daemon.post("Issue Hook", body, None, None).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["status"], "accepted", "{ok:?}");

    fake.wait_for_accepted(1, ARRIVAL).await;
    wait_until("Cliq refuses the bad key", ARRIVAL, || {
        !fake.snapshot().violations.is_empty()
    })
    .await;
    wait_until(
        "two failed posts to the unreachable channel",
        ARRIVAL,
        || {
            daemon
                .log()
                .iter()
                .filter(|l| l.contains("down") && l.contains("will retry"))
                .count()
                >= 2
        },
    )
    .await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 1);
    assert_eq!(seen.accepted[0].channel, "good");
    assert!(
        seen.violations.iter().all(|v| v.starts_with("401 badkey")),
        "{:#?}",
        seen.violations
    );
    let log = daemon.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("rejected by the chat endpoint")),
        "{log:#?}"
    );
    assert_no_secrets(&log);
}
