//! Operations and security, end to end on loopback with the real `gitlab-chat-bridge serve`
//! binary and the fake Cliq of `support`: Standard-Webhooks signatures (valid, wrong, stale,
//! replayed, a rotated key), token rotation, the source-network allow-list, `/metrics` counters
//! moving as events flow, `/readyz`, JSON logs carrying both GitLab ids, slow clients dropped
//! within the request timeout, the connection limit, TLS, and systemd's `READY=1`/`WATCHDOG=1`.
//! Every test also checks that no secret (tokens, zapikeys, signing keys) reached the log.

use crate::support::daemon::{self, ChannelSpec, Daemon, Settings, MAX_BODY_BYTES, TOKEN};
use crate::support::fake_cliq::FakeCliq;
use crate::support::temp::TempDir;
use crate::support::{samples, turn, unique};
use gitlab_chat_bridge::server::verify::SigningKey;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a message may take to reach the fake.
const ARRIVAL: Duration = Duration::from_secs(15);
/// Signing token configured in the tests (the base64 of 32 bytes).
const SIGNING: &str = "whsec_Z2NiLXRlc3Qtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFi";
/// A second signing token, active at the same time (rotation).
const SIGNING_NEXT: &str = "whsec_Z2NiLXRlc3Qtc2lnbmluZy1rZXktbmV4dC0wMTIzNDU2";
/// A signing token the daemon does not know.
const SIGNING_UNKNOWN: &str = "whsec_Z2NiLXRlc3QtdW5rbm93bi1rZXktMDEyMzQ1Njc4OWFi";
/// The token rotated in next to [`TOKEN`].
const TOKEN_NEXT: &str = "gl-SECRET-NEXT-9999";
/// A token that was never configured.
const TOKEN_THIRD: &str = "gl-SECRET-THIRD-0000";

/// Writes the harness's config for `channels` with `server` lines added to `[server]` and
/// `rest` appended; returns the folder (keep it alive) and the config's path.
fn config(name: &str, channels: Vec<ChannelSpec>, server: &str, rest: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let mut settings = Settings::new(channels);
    settings.server = server.into();
    settings.rest = rest.into();
    let path = settings.write_config(&dir);
    (dir, path)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A webhook as GitLab ≥ 19 sends it, with its signing headers.
struct Signed {
    id: String,
    timestamp: String,
    signature: Option<String>,
    token: &'static str,
    body: Vec<u8>,
    event: String,
}

impl Signed {
    /// `file` signed with `key` at `now + skew` seconds.
    fn new(file: &str, key: &str, skew: i64) -> Signed {
        let id = unique("msg");
        let timestamp = (now_secs() + skew).to_string();
        let body = samples::bytes(file);
        let key = SigningKey::parse(key).unwrap();
        Signed {
            signature: Some(key.signature_header(&id, &timestamp, &body)),
            id,
            timestamp,
            token: TOKEN,
            body,
            event: samples::header(file),
        }
    }

    async fn post(&self, base: &str) -> (u16, Value) {
        let mut req = client()
            .post(format!("{base}/hooks/gitlab"))
            .header("Content-Type", "application/json")
            .header("X-Gitlab-Event", &self.event)
            .header("X-Gitlab-Token", self.token)
            .header("X-Gitlab-Webhook-UUID", unique("uuid"))
            .header("Idempotency-Key", &self.id)
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", &self.timestamp)
            .body(self.body.clone());
        if let Some(s) = &self.signature {
            req = req.header("webhook-signature", s);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// `GET base/path`: status and text.
async fn get(base: &str, path: &str) -> (u16, String) {
    let r = client().get(format!("{base}{path}")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the sample `series` (`name{labels}` exactly as rendered) in a scrape; 0 when
/// absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// No configured secret in the log, including the ones only these tests use.
fn assert_no_secrets(log: &[String]) {
    daemon::assert_no_secrets(log);
    let b64 = |k: &str| k.trim_start_matches("whsec_").to_string();
    for secret in [
        TOKEN_NEXT.to_string(),
        TOKEN_THIRD.to_string(),
        SIGNING.to_string(),
        b64(SIGNING),
        SIGNING_NEXT.to_string(),
        b64(SIGNING_NEXT),
        b64(SIGNING_UNKNOWN),
    ] {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(&secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked into the log: {leaks:#?}");
    }
}

/// A configured signing token makes the signature mandatory: a valid one (with either of two
/// rotated keys) is accepted; a missing, wrong or stale one, and a replay, are refused with 401
/// and posted nothing; a webhook-id refused for another reason may come again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_valid_wrong_stale_and_replayed() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let (_dir, path) = config(
        "signed",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        &format!("signing_token = \"{SIGNING}\"\nsigning_tokens = [\"{SIGNING_NEXT}\"]\nsignature_tolerance_secs = 300"),
        "",
    );
    let daemon = Daemon::spawn(&path).await;
    let base = daemon.base_url().to_string();

    let valid = Signed::new("issue__open.json", SIGNING, 0);
    let (status, body) = valid.post(&base).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    fake.wait_for_accepted(1, ARRIVAL).await;

    let rotated = Signed::new("push__basic.json", SIGNING_NEXT, -30);
    assert_eq!(
        rotated.post(&base).await.0,
        200,
        "signed with the second key"
    );

    let (status, body) = valid.post(&base).await;
    assert_eq!(status, 401, "replay: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("replay"),
        "{body}"
    );

    let mut missing = Signed::new("issue__open.json", SIGNING, 0);
    missing.signature = None;
    assert_eq!(missing.post(&base).await.0, 401, "no webhook-signature");

    let wrong = Signed::new("issue__open.json", SIGNING_UNKNOWN, 0);
    assert_eq!(wrong.post(&base).await.0, 401, "unknown key");

    let mut tampered = Signed::new("issue__open.json", SIGNING, 0);
    tampered.body = samples::bytes("note__issue.json");
    tampered.event = samples::header("note__issue.json");
    assert_eq!(
        tampered.post(&base).await.0,
        401,
        "body changed after signing"
    );

    let stale = Signed::new("issue__open.json", SIGNING, -301);
    assert_eq!(stale.post(&base).await.0, 401, "5 min + 1 s old");
    let future = Signed::new("issue__open.json", SIGNING, 301);
    assert_eq!(future.post(&base).await.0, 401, "5 min + 1 s ahead");

    let mut wrong_token = Signed::new("issue__open.json", SIGNING, 0);
    wrong_token.token = TOKEN_THIRD;
    assert_eq!(
        wrong_token.post(&base).await.0,
        401,
        "signature right, token wrong"
    );

    // Refused as malformed after its signature was checked: its re-send must still pass.
    let mut bad_json = Signed::new("issue__open.json", SIGNING, 0);
    let key = SigningKey::parse(SIGNING).unwrap();
    bad_json.body = b"{not json".to_vec();
    bad_json.signature =
        Some(key.signature_header(&bad_json.id, &bad_json.timestamp, &bad_json.body));
    assert_eq!(bad_json.post(&base).await.0, 400);
    bad_json.body = samples::bytes("merge_request__open.json");
    bad_json.event = samples::header("merge_request__open.json");
    bad_json.signature =
        Some(key.signature_header(&bad_json.id, &bad_json.timestamp, &bad_json.body));
    assert_eq!(
        bad_json.post(&base).await.0,
        200,
        "GitLab's re-send of a refused delivery"
    );

    fake.wait_for_accepted(3, ARRIVAL).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.accepted(), 3, "{}", fake.snapshot().summary());

    let (_, text) = get(&base, "/metrics").await;
    let rejected = |r: &str| {
        sample(
            &text,
            &format!("gcb_webhooks_rejected_total{{reason=\"{r}\"}}"),
        )
    };
    // Missing, unknown key, tampered body, too old, too far ahead.
    assert_eq!(rejected("signature"), 5.0, "{text}");
    assert_eq!(rejected("replay"), 1.0, "{text}");
    assert_eq!(rejected("token"), 1.0, "{text}");
    assert_eq!(rejected("json"), 1.0, "{text}");
    assert_no_secrets(&daemon.stop());
}

/// Two tokens active at once (old and new) are both accepted; a third is refused; the network
/// allow-list refuses webhooks from elsewhere with 403 but leaves `/healthz` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_and_network_allow_list() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let (_dir, path) = config(
        "rotation",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        &format!(
            "secret_tokens = [\"{TOKEN_NEXT}\"]\nallow_networks = [\"127.0.0.0/8\", \"::1/128\"]"
        ),
        "",
    );
    let daemon = Daemon::spawn(&path).await;
    let file = "issue__open.json";
    let (event, body) = (samples::header(file), samples::bytes(file));
    let old = daemon.post(&event, body.clone(), Some(TOKEN), None).await;
    assert_eq!(old.status, 200, "{old:?}");
    let new = daemon
        .post(&event, body.clone(), Some(TOKEN_NEXT), None)
        .await;
    assert_eq!(new.status, 200, "{new:?}");
    let third = daemon.post(&event, body, Some(TOKEN_THIRD), None).await;
    assert_eq!(third.status, 401, "{third:?}");
    fake.wait_for_accepted(2, ARRIVAL).await;
    assert_no_secrets(&daemon.stop());

    let (_dir2, path2) = config(
        "networks",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        "allow_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]",
        "",
    );
    let daemon = Daemon::spawn(&path2).await;
    let refused = daemon.post_sample(file).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(daemon.get("/healthz").await, 200);
    let (_, text) = get(daemon.base_url(), "/metrics").await;
    assert_eq!(
        sample(&text, "gcb_webhooks_rejected_total{reason=\"network\"}"),
        1.0,
        "{text}"
    );
    assert_no_secrets(&daemon.stop());
}

/// Counters, gauges and histograms move as events flow: accepted and duplicate webhooks, events
/// routed (queued or ignored) by kind, rejections by reason, a throttled post retried and then delivered, the rate-limit
/// wait that follows, the outbox gauges, and the latency histograms. `/readyz` is 200. With
/// `[log] format = "json"` every line is a JSON object and the lines about a delivery carry both
/// GitLab ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_events_flow() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(1).await;
    let (_dir, path) = config(
        "metrics",
        vec![ChannelSpec {
            events: Some(vec!["issue.*", "push*"]),
            ..ChannelSpec::new("dev", fake.url("dev"))
        }],
        "",
        "[log]\nformat = \"json\"\n",
    );
    let daemon = Daemon::spawn(&path).await;
    let base = daemon.base_url().to_string();
    let (status, text) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.is_empty() || text.contains("# TYPE") || text.contains("gcb_"),
        "{text}"
    );
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 200, "{ready}");

    let (issue, body) = (
        samples::header("issue__open.json"),
        samples::bytes("issue__open.json"),
    );
    let first = daemon
        .post(&issue, body.clone(), None, Some("idem-metrics-1"))
        .await;
    assert_eq!(first.body["status"], "accepted", "{first:?}");
    let again = daemon
        .post(&issue, body.clone(), None, Some("idem-metrics-1"))
        .await;
    assert_eq!(again.body["status"], "duplicate", "{again:?}");
    let push = daemon.post_sample("push__basic.json").await;
    assert_eq!(push.body["status"], "accepted", "{push:?}");
    // Accepted, then ignored by the router stage: no channel takes notes.
    let ignored = daemon.post_sample("note__issue.json").await;
    assert_eq!(ignored.body["status"], "accepted", "{ignored:?}");
    let unknown = daemon
        .post(
            "Brand New Hook",
            br#"{"object_kind":"brand_new"}"#.to_vec(),
            None,
            None,
        )
        .await;
    assert_eq!(unknown.body["status"], "accepted", "{unknown:?}");
    assert_eq!(
        daemon.post(&issue, body, Some("nope"), None).await.status,
        401
    );
    assert_eq!(
        daemon
            .post(&issue, b"{oops".to_vec(), None, None)
            .await
            .status,
        400
    );
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(daemon.post(&issue, big, None, None).await.status, 413);

    // The first post is throttled (429, Retry-After: 1), retried, then both are delivered.
    fake.wait_for_accepted(2, ARRIVAL).await;
    let deadline = Instant::now() + ARRIVAL;
    let text = loop {
        let (_, text) = get(&base, "/metrics").await;
        let delivered = sample(
            &text,
            "gcb_deliveries_total{channel=\"dev\",outcome=\"delivered\"}",
        );
        let pending = sample(&text, "gcb_outbox_pending{channel=\"dev\"}");
        let routed = sample(
            &text,
            "gcb_events_routed_total{kind=\"unknown\",outcome=\"ignored\"}",
        );
        if delivered >= 2.0
            && pending == 0.0
            && routed == 1.0
            && text.contains("gcb_outbox_pending{channel=\"dev\"}")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics did not settle:\n{text}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    };
    let expect = [
        ("gcb_webhooks_received_total{outcome=\"accepted\"}", 4.0),
        ("gcb_webhooks_received_total{outcome=\"duplicate\"}", 1.0),
        (
            "gcb_events_routed_total{kind=\"issue\",outcome=\"queued\"}",
            1.0,
        ),
        (
            "gcb_events_routed_total{kind=\"push\",outcome=\"queued\"}",
            1.0,
        ),
        (
            "gcb_events_routed_total{kind=\"note\",outcome=\"ignored\"}",
            1.0,
        ),
        (
            "gcb_events_routed_total{kind=\"unknown\",outcome=\"ignored\"}",
            1.0,
        ),
        ("gcb_event_route_seconds_count", 4.0),
        ("gcb_webhooks_rejected_total{reason=\"token\"}", 1.0),
        ("gcb_webhooks_rejected_total{reason=\"json\"}", 1.0),
        ("gcb_webhooks_rejected_total{reason=\"size\"}", 1.0),
        (
            "gcb_deliveries_total{channel=\"dev\",outcome=\"retry\"}",
            1.0,
        ),
        (
            "gcb_deliveries_total{channel=\"dev\",outcome=\"delivered\"}",
            2.0,
        ),
        ("gcb_delivery_retries_total{channel=\"dev\"}", 1.0),
        ("gcb_outbox_pending{channel=\"dev\"}", 0.0),
        ("gcb_outbox_dead_letters{channel=\"dev\"}", 0.0),
        (
            "gcb_outbox_oldest_pending_age_seconds{channel=\"dev\"}",
            0.0,
        ),
        ("gcb_delivery_latency_seconds_count{channel=\"dev\"}", 2.0),
        ("gcb_webhook_ack_seconds_count{outcome=\"accepted\"}", 4.0),
        ("gcb_webhook_ack_seconds_count{outcome=\"duplicate\"}", 1.0),
        ("gcb_webhook_ack_seconds_count{outcome=\"rejected\"}", 3.0),
    ];
    for (series, want) in expect {
        assert_eq!(sample(&text, series), want, "{series}:\n{text}");
    }
    // The throttle paused the credential, so the retry waited for the rate limiter.
    assert!(
        sample(&text, "gcb_rate_limit_wait_seconds_count{channel=\"dev\"}") >= 1.0,
        "{text}"
    );
    for name in [
        "gcb_webhooks_received_total",
        "gcb_events_routed_total",
        "gcb_webhook_ack_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {name}")), "{name}:\n{text}");
    }
    assert!(
        text.contains("gcb_webhook_ack_seconds_bucket{outcome=\"accepted\",le=\"10\"} 4"),
        "{text}"
    );

    let log = daemon.stop();
    for line in &log {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let about = |msg: &str| -> Vec<Value> {
        log.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == msg)
            .collect()
    };
    let queued = about("queued");
    assert!(
        queued
            .iter()
            .any(|v| v["idempotency_key"] == "idem-metrics-1"
                && v["request"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("uuid-"))),
        "{queued:#?}"
    );
    let delivered = about("delivered");
    assert_eq!(delivered.len(), 2, "{log:#?}");
    for d in delivered.iter().chain(&about("post failed; will retry")) {
        assert!(
            d["delivery"]
                .as_str()
                .is_some_and(|x| x.starts_with("uuid-")),
            "{d}"
        );
        assert!(
            d["idempotency_key"]
                .as_str()
                .is_some_and(|x| x.starts_with("idem")),
            "{d}"
        );
    }
    assert_no_secrets(&log);
}

/// Reads from `s` until the server closes the connection (or 5 s pass); returns what came and
/// how long after `since` the connection was closed.
fn read_until_closed(s: &mut TcpStream, since: Instant) -> (String, Duration) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), since.elapsed())
}

/// Slow-loris clients are dropped within `server.request_timeout_secs` (1 s here): one that
/// sends nothing, one that sends its headers a byte at a time, and one that sends its body a
/// byte at a time (answered 408), and a keep-alive connection left idle. With `max_connections = 2` held by idle clients, a third
/// client is served once the timeout has dropped them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_within_the_timeout() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let (_dir, path) = config(
        "slowloris",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        "request_timeout_secs = 1\nmax_connections = 2",
        "",
    );
    let daemon = Daemon::spawn(&path).await;
    let addr = daemon.base_url().trim_start_matches("http://").to_string();
    // The timeout plus slack for a loaded machine.
    let limit = Duration::from_millis(3000);

    let results = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let mut out = Vec::new();
            // 1. Connects and sends nothing.
            let started = Instant::now();
            let mut idle = TcpStream::connect(&addr).unwrap();
            out.push(("idle", read_until_closed(&mut idle, started)));

            // 2. Headers a byte at a time, 100 ms apart (would take far longer than 1 s).
            let started = Instant::now();
            let mut slow = TcpStream::connect(&addr).unwrap();
            let head = format!(
                "POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: {TOKEN}\r\nX-Gitlab-Event: Issue Hook\r\nContent-Length: 2\r\n\r\n{{}}"
            );
            for b in head.bytes() {
                if slow.write_all(&[b]).is_err() || started.elapsed() > Duration::from_secs(4) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            out.push(("slow headers", read_until_closed(&mut slow, started)));

            // 3. Headers at once, then the body a byte at a time.
            let started = Instant::now();
            let mut slow_body = TcpStream::connect(&addr).unwrap();
            let body = samples::bytes("issue__open.json");
            let head = format!(
                "POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Gitlab-Token: {TOKEN}\r\nX-Gitlab-Event: Issue Hook\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            slow_body.write_all(head.as_bytes()).unwrap();
            slow_body
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut answer = Vec::new();
            for b in &body {
                let mut buf = [0u8; 1024];
                if let Ok(n) = slow_body.read(&mut buf) {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                if slow_body.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(4)
                {
                    break;
                }
            }
            let (rest, took) = read_until_closed(&mut slow_body, started);
            out.push((
                "slow body",
                (format!("{}{rest}", String::from_utf8_lossy(&answer)), took),
            ));

            // 4. A keep-alive connection left idle after its first request.
            let mut kept = TcpStream::connect(&addr).unwrap();
            kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut first = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&first).ends_with("ok\n") {
                match kept.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => first.extend_from_slice(&buf[..n]),
                }
            }
            assert!(
                String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"),
                "{first:?}"
            );
            let started = Instant::now();
            out.push(("idle keep-alive", read_until_closed(&mut kept, started)));
            out
        }
    })
    .await
    .unwrap();
    for (what, (answer, took)) in &results {
        assert!(
            took < &limit,
            "{what}: still open after {took:?} ({answer:?})"
        );
        assert!(
            took >= &Duration::from_millis(800),
            "{what}: closed after {took:?}, before the timeout ({answer:?})"
        );
    }
    assert!(results[2].1 .0.starts_with("HTTP/1.1 408"), "{results:?}");
    assert!(!results[0].1 .0.starts_with("HTTP/1.1 2"), "{results:?}");
    assert!(!results[1].1 .0.starts_with("HTTP/1.1 2"), "{results:?}");

    // Both connections taken by idle clients: a third waits until they are dropped.
    let hold: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let answer = daemon.post_sample("issue__open.json").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        took < Duration::from_secs(4),
        "the third client waited {took:?}"
    );
    assert!(
        took >= Duration::from_millis(400),
        "served after {took:?}: the limit of 2 connections did not hold"
    );
    drop(hold);
    fake.wait_for_accepted(1, ARRIVAL).await;
    assert_eq!(fake.accepted(), 1, "{}", fake.snapshot().summary());
    let (_, text) = get(daemon.base_url(), "/metrics").await;
    assert_eq!(
        sample(&text, "gcb_webhooks_rejected_total{reason=\"timeout\"}"),
        1.0,
        "{text}"
    );
    assert_no_secrets(&daemon.stop());
}

/// With `tls_cert_file` and `tls_key_file` the daemon speaks HTTPS (a certificate made here for
/// 127.0.0.1 and localhost), takes webhooks over it, and refuses plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate() {
    let _turn = turn::shared_async().await;
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("tls-certs");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let (_dir, path) = config(
        "tls",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        &format!(
            "tls_cert_file = {:?}\ntls_key_file = {:?}",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ),
        "",
    );
    let daemon = Daemon::spawn(&path).await;
    let https = daemon.base_url().replace("http://", "https://");
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let tls = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = tls.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let file = "issue__open.json";
    let r = tls
        .post(format!("{https}/hooks/gitlab"))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", samples::header(file))
        .header("X-Gitlab-Token", TOKEN)
        .header("Idempotency-Key", unique("idem"))
        .body(samples::bytes(file))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    fake.wait_for_accepted(1, ARRIVAL).await;
    let plain = client()
        .get(format!("{}/healthz", daemon.base_url()))
        .send()
        .await;
    assert!(
        plain.map(|r| r.status().as_u16() != 200).unwrap_or(true),
        "plain HTTP was served"
    );
    assert_no_secrets(&daemon.stop());
}

/// Waits (bounded) for the datagram `want`; returns the ones received before it.
fn wait_for(
    socket: &std::os::unix::net::UnixDatagram,
    want: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).trim().to_string();
            if msg == want {
                return seen;
            }
            seen.push(msg);
        }
    }
    panic!("no {want} within {within:?}; got {seen:?}");
}

/// Under systemd (`NOTIFY_SOCKET`, `WATCHDOG_USEC`) the daemon says `READY=1` once it listens,
/// pings `WATCHDOG=1` at half the watchdog interval, and `STOPPING=1` on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_ready_watchdog_and_stopping() {
    let _turn = turn::shared_async().await;
    use std::os::unix::net::UnixDatagram;
    let fake = FakeCliq::start(0).await;
    let (dir, path) = config(
        "notify",
        vec![ChannelSpec::new("dev", fake.url("dev"))],
        "",
        "",
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let daemon = Daemon::spawn_with_env(
        &path,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let socket = std::sync::Arc::new(socket);
    let wait = |want: &'static str| {
        let socket = std::sync::Arc::clone(&socket);
        tokio::task::spawn_blocking(move || wait_for(&socket, want, Duration::from_secs(10)))
    };
    wait("READY=1").await.unwrap();
    wait("WATCHDOG=1").await.unwrap();
    wait("WATCHDOG=1").await.unwrap();
    let stopper = tokio::spawn(daemon.terminate(Duration::from_secs(10)));
    let before = wait("STOPPING=1").await.unwrap();
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");
    let (status, log) = stopper.await.unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert_no_secrets(&log);
}
