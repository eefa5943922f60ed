//! Several `serve` replicas on one PostgreSQL database (issue 13's acceptance), with the real
//! binary, a throw-away cluster (`support::postgres`) and the fake Zoho Cliq, which records every
//! answer with its arrival time:
//!
//! - two replicas, 2000 webhooks about 20 issues posted alternately to both, one replica
//!   `kill -9`ed mid-load and restarted: every acknowledged webhook is delivered to each channel,
//!   at most one duplicate per channel, each issue's messages arrive in sending order, and no
//!   60 s window holds more than `rate_per_minute` posts of one credential across both replicas
//!   (one credential's budget is small, so its later posts must wait for the window);
//! - two replicas started at the same instant on an empty database: the migrations run once,
//!   both are ready and deliver, one `Idempotency-Key` posted to both at once is delivered
//!   once, and a Cliq chat's subscription and mute made through one replica apply to events
//!   received by the other;
//! - the database stopped for 30 s while webhooks keep coming to both replicas: they are
//!   answered 503 and `/readyz` answers 503 naming the database while it is down; once it is
//!   back, without restarting a replica, every acknowledged webhook and every re-sent one is
//!   delivered;
//! - a review reminder due when two replicas start is sent once, and not again when the
//!   replica that led is killed and the other leads.
//!
//! Each replica has a config of its own differing only in `server.listen` (a fixed loopback
//! port, as behind a load balancer, so a restarted replica is found at the same address). Every
//! wait is bounded.

use crate::support::daemon::{assert_no_secrets, Daemon, Hooks, MAX_BODY_BYTES, TOKEN};
use crate::support::fake_cliq::{FakeCliq, Seen, SECOND_ZAPIKEY, ZAPIKEY};
use crate::support::postgres::{Cluster, PASSWORD};
use crate::support::temp::TempDir;
use crate::support::{samples, turn, unique, wait_until};
use gitlab_chat_bridge::deliver::pg::SCHEMA_VERSION;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ISSUE_HOOK: &str = "Issue Hook";
const PUSH_HOOK: &str = "Push Hook";
/// How long to keep watching for a message that must not come.
const QUIET: Duration = Duration::from_millis(500);
/// A budget large enough never to wait nor to combine a backlog into a digest.
const UNLIMITED: u32 = 100_000;
/// Arrival times at the fake are a little later than the moment a replica took its rate slot
/// (the post's own latency, longer under load): two arrivals `rate_per_minute` posts apart may
/// be this much closer than 60 s without the window having been overrun.
const ARRIVAL_SLACK: Duration = Duration::from_secs(1);

/// One `[[channels]]` entry of the replicas' config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    name: &'static str,
    zapikey: &'static str,
    rate_per_minute: u32,
    /// `events`: one glob, or every event.
    events: Option<&'static str>,
}

impl Channel {
    /// A channel posting with [`ZAPIKEY`], with no limit worth speaking of.
    const fn fast(name: &'static str) -> Channel {
        Channel {
            name,
            zapikey: ZAPIKEY,
            rate_per_minute: UNLIMITED,
            events: None,
        }
    }
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Writes one config per replica in `dir`, each on a loopback port of its own and otherwise
/// the same: the database `db` of `cluster` (the password in a file), fast retries,
/// `channels` of `fake` and `more` sections. Returns their paths.
pub(crate) fn replica_configs(
    dir: &TempDir,
    cluster: &Cluster,
    db: &str,
    fake: &FakeCliq,
    channels: &[Channel],
    more: &str,
    replicas: usize,
) -> Vec<PathBuf> {
    let password = dir.write("pg-password", PASSWORD);
    let mut rest = format!(
        "[outbox]\nurl = {}\npassword_file = {}\n\n\
         [delivery]\ntimeout_secs = 5\nmax_attempts = 1000\ninitial_backoff_ms = 50\nmax_backoff_secs = 1\n",
        toml_str(&cluster.url(db)),
        toml_str(&password.display().to_string()),
    );
    for c in channels {
        rest.push_str(&format!(
            "\n[[channels]]\nname = {}\nurl = {}\nzapikey = {}\nrate_per_minute = {}\n",
            toml_str(c.name),
            toml_str(&fake.url(c.name)),
            toml_str(c.zapikey),
            c.rate_per_minute,
        ));
        if let Some(glob) = c.events {
            rest.push_str(&format!("events = [{}]\n", toml_str(glob)));
        }
    }
    rest.push('\n');
    rest.push_str(more);
    (0..replicas)
        .map(|r| {
            let cfg = format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\nsecret_token = {}\nmax_body_bytes = {MAX_BODY_BYTES}\n\n{rest}",
                crate::support::free_port(),
                toml_str(TOKEN),
            );
            dir.write(format!("replica-{r}.toml"), &cfg)
        })
        .collect()
}

/// Starts a replica on `config`, waiting (bounded) for its `ready` line.
async fn replica(config: &std::path::Path) -> Daemon {
    Daemon::spawn(config).await
}

/// Fails if a secret (the channels' keys, GitLab's token, the database password) is in `log`.
fn assert_no_secrets_at_all(log: &[String]) {
    assert_no_secrets(log);
    let leaks: Vec<&String> = log.iter().filter(|l| l.contains(PASSWORD)).collect();
    assert!(leaks.is_empty(), "the database password leaked: {leaks:#?}");
}

/// `GET /readyz` of the daemon at `base`: its status and JSON body.
async fn readyz(base: &str) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/readyz: {e}"));
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Events received but not routed, plus messages not yet sent nor dead, in `db`.
fn unfinished(cluster: &Cluster, db: &str) -> u64 {
    cluster
        .psql(
            db,
            "SELECT (SELECT count(*) FROM events WHERE state = 'new') \
                  + (SELECT count(*) FROM messages WHERE state = 'pending')",
        )
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until the database has nothing left to route or deliver, then a little more
/// for anything that must not come.
async fn wait_until_settled(cluster: &Cluster, db: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = unfinished(cluster, db);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} events or messages still unfinished after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(QUIET).await;
}

/// One webhook: its event header, body, the marker its messages carry, its `Idempotency-Key`.
#[derive(Debug, Clone)]
struct Webhook {
    event: &'static str,
    marker: String,
    body: Vec<u8>,
    key: String,
}

/// Sends `items` one after another, as GitLab sends the events of one object, alternately to
/// the two replicas starting with `first`. A webhook not answered 200 (the replica is dead, or
/// answered something else) is sent again with its key to the other replica (as a load
/// balancer fails over) until it is, for at most 30 s; the next is sent only then, so the
/// sending order is the items' order. Counts the 200s in `acked`; returns the failed tries.
async fn send_in_order(
    hooks: [Hooks; 2],
    items: Vec<Webhook>,
    first: usize,
    acked: Arc<AtomicUsize>,
) -> Result<usize, String> {
    let mut failed_tries = 0;
    for (k, w) in items.into_iter().enumerate() {
        let mut to = (first + k) % 2;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match hooks[to].try_post(w.event, w.body.clone(), &w.key).await {
                Ok(a)
                    if a.status == 200
                        && (a.body["status"] == "accepted" || a.body["status"] == "duplicate") =>
                {
                    acked.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                other => {
                    failed_tries += 1;
                    if Instant::now() >= deadline {
                        return Err(format!("{}: never acknowledged; last {other:?}", w.marker));
                    }
                    to = 1 - to;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    Ok(failed_tries)
}

/// The accepted messages of `channel` carrying a marker of one of `lists` (markers are words of
/// letters, digits and `-`), as indexes into their list, in arrival order; one vector a list.
fn arrivals(seen: &Seen, channel: &str, lists: &[Vec<String>]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, (usize, usize)> = lists
        .iter()
        .enumerate()
        .flat_map(|(l, markers)| {
            markers
                .iter()
                .enumerate()
                .map(move |(k, m)| (m.as_str(), (l, k)))
        })
        .collect();
    let mut got = vec![Vec::new(); lists.len()];
    for a in seen.accepted.iter().filter(|a| a.channel == channel) {
        let found = a
            .text()
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find_map(|word| index.get(word));
        if let Some(&(l, k)) = found {
            got[l].push(k);
        }
    }
    got
}

/// Fails when, among the posts of `channels` (one credential) answered by the fake, more than
/// `per_minute` fall in some 60 s window (less [`ARRIVAL_SLACK`]). Returns how long the
/// credential's posts took from first to last.
fn assert_rate_kept(seen: &Seen, channels: &[&str], per_minute: usize) -> Duration {
    let mut at: Vec<Instant> = seen
        .answered
        .iter()
        .filter(|a| channels.contains(&a.channel.as_str()))
        .map(|a| a.at)
        .collect();
    at.sort();
    let window = Duration::from_secs(60) - ARRIVAL_SLACK;
    for (i, w) in at.windows(per_minute + 1).enumerate() {
        let span = w[per_minute] - w[0];
        assert!(
            span >= window,
            "{channels:?}: posts {i}..={} of {} arrived within {span:?}: more than {per_minute} \
             in a minute",
            i + per_minute,
            at.len()
        );
    }
    match (at.first(), at.last()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    }
}

// ---- the Cliq extension, as tests/extension.rs drives it ------------------------------------

const MR_HOOK: &str = "Merge Request Hook";
/// The project of the samples.
const PROJECT: &str = "gitlabhq/gitlab-test";
const CHAT: &str = "CT_2243226337559778047_661211447-B2";
const USER: &str = "777";

type Key = rsa::pkcs1v15::SigningKey<sha2::Sha256>;

fn test_data(file: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

/// The extension's test key (its public half goes in the config).
fn test_key() -> Key {
    use rsa::pkcs8::DecodePrivateKey;
    let der = std::fs::read(test_data("cliq_test_key.pk8.der")).unwrap();
    Key::new(rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap())
}

/// `[gitlab]` (the fake's API) and `[cliq_extension]` (the test key, posting to `cliq`).
fn extension_config(gitlab: &FakeGitlab, cliq: &FakeCliq) -> String {
    let public_key = std::fs::read_to_string(test_data("cliq_test_key.pub.b64")).unwrap();
    format!(
        "[gitlab]\nurl = \"http://{}\"\ntoken = \"glpat-TEST\"\n\n\
         [cliq_extension]\npublic_keys = [{}]\nadmins = [\"651652091\"]\n\
         allowed_projects = [\"gitlabhq/*\"]\napi_url = {}\nzapikey = {}\n\
         button_function = \"gitlabbridge\"\ndata_center = \"US\"\nrate_per_minute = 600\n",
        gitlab.addr,
        toml_str(public_key.trim()),
        toml_str(&cliq.base()),
        toml_str(ZAPIKEY),
    )
}

/// `/gitlab ARGUMENTS` said by [`USER`] in [`CHAT`] to `daemon`, signed with the test key, in
/// the shape of Zoho's sample request; returns the answer's card title and text.
async fn say(daemon: &Daemon, cliq: &FakeCliq, arguments: &str) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let invocation = json!({
        "name": "gitlab",
        "handler": {"type": "execution_handler"},
        "response_url": format!("{}/v2/extensions/2305843009213696807/responses/{}", cliq.base(), unique("r")),
        "type": "command",
        "timestamp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        "params": {
            "environment": {"data_center": "US"},
            "access": {"user_id": USER, "user_agent": "Mozilla/5.0", "chat_id": CHAT,
                       "organization": {"type": "company", "id": "123456456"}},
            "mentions": [], "options": {}, "selections": [],
            "arguments": arguments,
        }
    });
    let body = serde_json::to_vec(&invocation).unwrap();
    let signature = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(test_key().sign(&body).to_bytes())
    };
    let r = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(format!("{}/hooks/cliq", daemon.base_url()))
        .header("Content-Type", "application/json")
        .header("X-Cliq-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "/gitlab {arguments}");
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    format!("{} | {}", answer["card"]["title"], answer["text"])
}

/// The posts into [`CHAT`] (the chat that subscribed itself), in arrival order.
fn chat_posts(cliq: &FakeCliq) -> Vec<Value> {
    cliq.snapshot()
        .accepted
        .into_iter()
        .filter(|a| a.channel == format!("chat:{CHAT}"))
        .map(|a| a.body)
        .collect()
}

/// A fake GitLab API that sees [`PROJECT`] (id 1) and nothing else.
struct FakeGitlab {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitlab {
    async fn start() -> FakeGitlab {
        use axum::response::IntoResponse;
        async fn project(
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> axum::response::Response {
            if id == PROJECT || id == "1" {
                axum::Json(json!({"id": 1, "path_with_namespace": PROJECT})).into_response()
            } else {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({"message": "404 Project Not Found"})),
                )
                    .into_response()
            }
        }
        let app = axum::Router::new().route("/api/v4/projects/{id}", axum::routing::get(project));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlab { addr, task }
    }
}

// ---- 1. kill -9 of one replica under load -------------------------------------------------

/// Kill test. Two replicas share a database and three channels: `alpha` and `beta` take every
/// event with the main key and no limit to speak of; `slow` takes pushes only, with a second
/// key whose budget is [`SLOW_RATE`] posts a minute. 20 senders each send the 100 webhooks of
/// one issue (title marker `rep-II-KKK`) one after another, alternately to the replicas, and a
/// 21st sends pushes to one ref: `SLOW_RATE` of them, then (once those are posted, so that no
/// backlog above the budget makes a digest) `SLOW_RATE` more, which must wait for the window.
/// Once 600 webhooks are acknowledged replica A is killed with SIGKILL and restarted at once on
/// the same config; meanwhile the senders fail over to B (and re-send what got no answer, with
/// its key). Then every webhook must be posted to each of its channels, at most one of them
/// twice per channel (the post the killed replica had in flight), each issue's and the ref's
/// messages in sending order on each channel, and no credential over its budget in any 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_nothing_keeps_order_and_the_rate_window() {
    const ISSUES: usize = 20;
    const PER_ISSUE: usize = 100;
    const N: usize = ISSUES * PER_ISSUE;
    const KILL_AFTER: usize = 600;
    const SLOW_RATE: usize = 3;
    const CHANNELS: [Channel; 3] = [
        Channel::fast("alpha"),
        Channel::fast("beta"),
        Channel {
            name: "slow",
            zapikey: SECOND_ZAPIKEY,
            rate_per_minute: SLOW_RATE as u32,
            events: Some("push*"),
        },
    ];
    let _turn = turn::alone().await;
    let started = Instant::now();
    let cluster = Cluster::start("replicas-kill");
    let db = cluster.create_database();
    let fake = Arc::new(FakeCliq::start(0).await);
    let dir = TempDir::new("replicas-kill");
    let configs = replica_configs(&dir, &cluster, &db, &fake, &CHANNELS, "", 2);
    let a = replica(&configs[0]).await;
    let b = replica(&configs[1]).await;
    let hooks = [a.hooks(), b.hooks()];

    let issues: Vec<Vec<Webhook>> = (0..ISSUES)
        .map(|i| {
            (0..PER_ISSUE)
                .map(|k| {
                    let marker = format!("rep-{i:02}-{k:03}");
                    Webhook {
                        event: ISSUE_HOOK,
                        body: samples::issue(1 + i as u64, &marker),
                        marker,
                        key: unique("rep-key"),
                    }
                })
                .collect()
        })
        .collect();
    let pushes: Vec<Webhook> = (0..2 * SLOW_RATE)
        .map(|k| {
            let marker = format!("slow-push-{k:02}");
            Webhook {
                event: PUSH_HOOK,
                body: samples::push(&marker),
                marker,
                key: unique("rep-push-key"),
            }
        })
        .collect();

    let acked = Arc::new(AtomicUsize::new(0));
    // The binding window opens first: `slow`'s first pushes are posted before the load starts,
    // so the wait for its window runs beside the load instead of after it.
    let first_failed = send_in_order(
        hooks.clone(),
        pushes[..SLOW_RATE].to_vec(),
        0,
        Arc::clone(&acked),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_until(
        "the first pushes posted to `slow`",
        Duration::from_secs(30),
        || fake.snapshot().count("slow", "slow-push-") >= SLOW_RATE,
    )
    .await;
    let mut senders = tokio::task::JoinSet::new();
    for (i, items) in issues.iter().enumerate() {
        senders.spawn(send_in_order(
            hooks.clone(),
            items.clone(),
            i % 2,
            Arc::clone(&acked),
        ));
    }
    senders.spawn(send_in_order(
        hooks.clone(),
        pushes[SLOW_RATE..].to_vec(),
        1,
        Arc::clone(&acked),
    ));

    wait_until(
        "enough webhooks acknowledged before the kill",
        Duration::from_secs(60),
        || acked.load(Ordering::SeqCst) >= KILL_AFTER,
    )
    .await;
    let killed_at = started.elapsed();
    let before_kill = fake.snapshot();
    let killed_log = tokio::task::spawn_blocking(move || a.stop()).await.unwrap();
    let acked_at_kill = acked.load(Ordering::SeqCst);
    let a = replica(&configs[0]).await;

    let mut failed_tries = first_failed;
    while let Some(r) = senders.join_next().await {
        failed_tries += r.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    let all_acked = started.elapsed();
    let sent = N + pushes.len();
    assert_eq!(acked.load(Ordering::SeqCst), sent);
    assert!(
        acked_at_kill < N,
        "the kill came after the stream: {acked_at_kill} acknowledged"
    );

    let expected = 2 * sent + pushes.len();
    let deadline = Instant::now() + Duration::from_secs(150);
    while fake.accepted() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_posted = started.elapsed();
    wait_until_settled(&cluster, &db, Duration::from_secs(60)).await;
    let seen = fake.snapshot();
    let (log_a, log_b) = (a.stop(), b.stop());
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);

    let push_markers: Vec<String> = pushes.iter().map(|w| w.marker.clone()).collect();
    for c in CHANNELS {
        let mut lists: Vec<Vec<String>> = vec![push_markers.clone()];
        if c.events.is_none() {
            lists.extend(
                issues
                    .iter()
                    .map(|items| items.iter().map(|w| w.marker.clone()).collect()),
            );
        }
        let mut duplicates = Vec::new();
        let mut lost = Vec::new();
        for (markers, got) in lists.iter().zip(arrivals(&seen, c.name, &lists)) {
            for (k, m) in markers.iter().enumerate() {
                match got.iter().filter(|&&g| g == k).count() {
                    0 => lost.push(m.clone()),
                    1 => {}
                    n => duplicates.push(format!("{m} ×{n}")),
                }
            }
            // A duplicate is the re-post of a message whose outcome the killed replica never
            // recorded: it comes right after the first post, before the object's next message.
            let mut order = got.clone();
            order.dedup();
            if let Some(at) = order.windows(2).position(|w| w[0] >= w[1]) {
                panic!(
                    "{}: {} arrived after {} (sending order: the first before the second); \
                     arrivals around it: {:?}",
                    c.name,
                    markers[order[at + 1]],
                    markers[order[at]],
                    order[at.saturating_sub(3)..(at + 5).min(order.len())]
                        .iter()
                        .map(|&k| &markers[k])
                        .collect::<Vec<_>>()
                );
            }
        }
        assert!(
            lost.is_empty(),
            "{}: {} acknowledged webhooks never posted: {:?}…; the fake saw {}",
            c.name,
            lost.len(),
            &lost[..lost.len().min(10)],
            seen.summary()
        );
        assert!(
            duplicates.len() <= 1,
            "{}: more than one duplicate after one kill: {duplicates:?}",
            c.name
        );
    }

    let slow_span = assert_rate_kept(&seen, &["slow"], SLOW_RATE);
    let fast_done = seen
        .answered
        .iter()
        .filter(|a| a.channel != "slow")
        .map(|a| a.at)
        .max()
        .map(|t| t - started);
    // The check above could fail: the budget made the last pushes wait for the window.
    assert!(
        slow_span >= Duration::from_secs(60) - ARRIVAL_SLACK,
        "the rate window never had to be waited for ({slow_span:?})"
    );
    for log in [&killed_log, &log_a, &log_b] {
        assert_no_secrets_at_all(log);
    }
    eprintln!(
        "replicas kill: at {killed_at:?}, {acked_at_kill} acknowledged and {} posted at the kill, {failed_tries} \
         tries failed over, every webhook acknowledged at {all_acked:?}, {} posted in all \
         (expected {expected}) at {all_posted:?} (alpha and beta done at {fast_done:?}), slow \
         channel spanned {slow_span:?}; {:?} in all",
        before_kill.accepted.len(),
        seen.accepted.len(),
        started.elapsed()
    );
}

// ---- 2. two replicas starting at once; dedupe across replicas -------------------------------

/// Two replicas started at the same instant on an empty database: `schema_version` has one row,
/// the current version, and neither log has a migration error; both answer `/readyz` 200 and
/// each delivers a webhook sent to it. Then one `Idempotency-Key` posted to both at once is
/// acknowledged by both, once `accepted` and once `duplicate`, and posted once. Then the Cliq
/// extension: a chat subscribed through A hears of a merge request received by B; muted through
/// A, it no longer hears of that merge request sent to B, but still of an issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_at_once_migrate_once_serve_and_share_dedupe_and_chat_rules() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("replicas-start");
    let db = cluster.create_database();
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("replicas-start");
    let gitlab = FakeGitlab::start().await;
    let configs = replica_configs(
        &dir,
        &cluster,
        &db,
        &fake,
        &[Channel::fast("dev")],
        &extension_config(&gitlab, &fake),
        2,
    );
    let (a, b) = tokio::join!(replica(&configs[0]), replica(&configs[1]));

    assert_eq!(
        cluster
            .psql(
                &db,
                "SELECT count(*) || ' ' || max(version) FROM schema_version"
            )
            .trim(),
        format!("1 {SCHEMA_VERSION}")
    );
    for (name, d) in [("A", &a), ("B", &b)] {
        let (status, body) = readyz(d.base_url()).await;
        assert_eq!(status, 200, "replica {name}: {body}");
        let marker = format!("start-{name}");
        let answer = d
            .post(ISSUE_HOOK, samples::issue(5, &marker), None, None)
            .await;
        assert_eq!(answer.status, 200, "replica {name}: {answer:?}");
        assert_eq!(
            answer.body["status"], "accepted",
            "replica {name}: {answer:?}"
        );
    }

    let key = unique("both-at-once");
    let (ra, rb) = tokio::join!(
        a.post(
            ISSUE_HOOK,
            samples::issue(6, "dedupe-once"),
            None,
            Some(key.as_str())
        ),
        b.post(
            ISSUE_HOOK,
            samples::issue(6, "dedupe-once"),
            None,
            Some(key.as_str())
        )
    );
    let mut statuses = [
        (
            ra.status,
            ra.body["status"].as_str().unwrap_or_default().to_string(),
        ),
        (
            rb.status,
            rb.body["status"].as_str().unwrap_or_default().to_string(),
        ),
    ];
    statuses.sort();
    assert_eq!(
        statuses,
        [
            (200, "accepted".to_string()),
            (200, "duplicate".to_string())
        ],
        "{ra:?} {rb:?}"
    );

    fake.wait_for_accepted(3, Duration::from_secs(15)).await;
    wait_until_settled(&cluster, &db, Duration::from_secs(15)).await;
    let seen = fake.snapshot();
    for m in ["start-A", "start-B", "dedupe-once"] {
        assert_eq!(seen.count("dev", m), 1, "{m}: {}", seen.summary());
    }
    assert_eq!(seen.accepted.len(), 3, "{}", seen.summary());

    // The Cliq extension's rules are rows every replica reads: a chat subscribed through A
    // hears of a merge request received by B; once muted through A, no more of it.
    let said = say(&a, &fake, &format!("subscribe {PROJECT}")).await;
    assert!(said.contains("Subscribed"), "{said}");
    let mr = || samples::bytes("merge_request__open.json");
    let answer = b.post(MR_HOOK, mr(), None, None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_until(
        "the merge request in the chat",
        Duration::from_secs(15),
        || chat_posts(&fake).len() == 1,
    )
    .await;
    let said = say(&a, &fake, &format!("mute {PROJECT}!1")).await;
    assert!(said.contains("Muted"), "{said}");
    for (event, body) in [
        (MR_HOOK, mr()),
        (ISSUE_HOOK, samples::issue(23, "after-the-mute")),
    ] {
        let answer = b.post(event, body, None, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    wait_until_settled(&cluster, &db, Duration::from_secs(15)).await;
    let posts = chat_posts(&fake);
    assert_eq!(
        posts.len(),
        2,
        "the muted merge request was posted: {posts:#?}"
    );
    assert!(
        posts[1].to_string().contains("after-the-mute"),
        "{posts:#?}"
    );
    let seen = fake.snapshot();
    assert_eq!(seen.count("dev", "after-the-mute"), 1, "{}", seen.summary());
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    let (log_a, log_b) = (a.stop(), b.stop());
    for log in [&log_a, &log_b] {
        let errors: Vec<&String> = log
            .iter()
            // `CREATE TABLE IF NOT EXISTS`'s notice ("already exists, skipping") is no error.
            .filter(|l| {
                (l.contains("already exists") && !l.contains("skipping"))
                    || l.contains("duplicate key")
            })
            .collect();
        assert!(errors.is_empty(), "a migration ran twice: {errors:#?}");
        assert_no_secrets_at_all(log);
    }
}

// ---- 3. the database down for 30 s under load -----------------------------------------------

/// What one webhook of the outage test got.
#[derive(Debug, Clone)]
struct Sent {
    webhook: Webhook,
    /// When it was sent and when answered.
    sent_at: Instant,
    answered_at: Instant,
    /// The status, or the transport error.
    answer: Result<u16, String>,
}

/// Outage test. Two replicas on one database, channel `dev`; two senders (one per replica)
/// send a webhook every `PAUSE` each, about six issues. After 2 s the database is stopped
/// (`pg_ctl stop --mode fast`) for `OUTAGE`, then started again on the same port; the senders
/// go on until each replica has acknowledged a webhook sent after the restart. Every webhook
/// sent while the database was down is answered 503 (none 200, none left unanswered), and
/// `/readyz` answers 503 on both replicas with a reason naming the database; then 200 again,
/// with the same processes (one `ready` each). Every webhook not answered 200 is re-sent with
/// its key (as GitLab does) and acknowledged; then every webhook is posted, each at most twice
/// (the post a replica had in flight when the database went may be sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_then_delivers_everything_acknowledged() {
    const OUTAGE: Duration = Duration::from_secs(30);
    /// Each sender's pause after a webhook: about 5 a second to each replica.
    const PAUSE: Duration = Duration::from_millis(200);
    let _turn = turn::shared_async().await;
    let started = Instant::now();
    let cluster = Cluster::start("replicas-outage");
    let db = cluster.create_database();
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("replicas-outage");
    let configs = replica_configs(&dir, &cluster, &db, &fake, &[Channel::fast("dev")], "", 2);
    let replicas = [replica(&configs[0]).await, replica(&configs[1]).await];

    let stop = Arc::new(AtomicBool::new(false));
    let record: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::new()));
    let mut senders = tokio::task::JoinSet::new();
    for (r, d) in replicas.iter().enumerate() {
        let (hooks, stop, record) = (d.hooks(), Arc::clone(&stop), Arc::clone(&record));
        senders.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let marker = format!("out-{r}-{n:05}");
                let webhook = Webhook {
                    event: ISSUE_HOOK,
                    body: samples::issue(10 * (r as u64 + 1) + n % 3, &marker),
                    marker,
                    key: unique("outage-key"),
                };
                let sent_at = Instant::now();
                let answer = hooks
                    .try_post(webhook.event, webhook.body.clone(), &webhook.key)
                    .await
                    .map(|a| a.status);
                record.lock().unwrap().push(Sent {
                    webhook,
                    sent_at,
                    answered_at: Instant::now(),
                    answer,
                });
                n += 1;
                tokio::time::sleep(PAUSE).await;
            }
        });
    }
    let ok_since = |since: Instant, replica: usize| {
        let prefix = format!("out-{replica}-");
        record.lock().unwrap().iter().any(|s| {
            s.sent_at >= since && s.answer == Ok(200) && s.webhook.marker.starts_with(&prefix)
        })
    };
    let load_began = Instant::now();
    wait_until(
        "webhooks acknowledged before the outage",
        Duration::from_secs(15),
        || ok_since(load_began, 0) && ok_since(load_began, 1),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stop_asked = Instant::now();
    tokio::task::block_in_place(|| cluster.stop());
    let stopped = Instant::now();
    // Long enough for the pool to find its connections gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (r, d) in replicas.iter().enumerate() {
        let (status, body) = readyz(d.base_url()).await;
        assert_eq!(
            status, 503,
            "replica {r} while the database is down: {body}"
        );
        let reason = body["reason"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            reason.contains("database"),
            "replica {r}: /readyz does not name the database: {body}"
        );
    }
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    let start_asked = Instant::now();
    tokio::task::block_in_place(|| cluster.start_again());
    let restarted = Instant::now();
    wait_until(
        "each replica acknowledges a webhook after the restart",
        Duration::from_secs(30),
        || ok_since(restarted, 0) && ok_since(restarted, 1),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = senders.join_next().await {
        r.unwrap();
    }
    let reconnected = restarted.elapsed();

    let record = record.lock().unwrap().clone();
    let transport: Vec<&Sent> = record.iter().filter(|s| s.answer.is_err()).collect();
    assert!(
        transport.is_empty(),
        "webhooks not answered at all: {:?}",
        &transport[..transport.len().min(5)]
    );
    let during: Vec<&Sent> = record
        .iter()
        .filter(|s| s.sent_at >= stopped && s.answered_at < start_asked)
        .collect();
    assert!(
        during.len() >= 10,
        "only {} webhooks sent during the outage",
        during.len()
    );
    let not_503: Vec<String> = during
        .iter()
        .filter(|s| s.answer != Ok(503))
        .map(|s| format!("{}: {:?}", s.webhook.marker, s.answer))
        .collect();
    assert!(
        not_503.is_empty(),
        "answered other than 503 while the database was down: {not_503:?}"
    );
    let unknown: Vec<String> = record
        .iter()
        .filter(|s| !matches!(s.answer, Ok(200) | Ok(503)))
        .map(|s| format!("{}: {:?}", s.webhook.marker, s.answer))
        .collect();
    assert!(unknown.is_empty(), "neither 200 nor 503: {unknown:?}");
    for (r, d) in replicas.iter().enumerate() {
        let (status, body) = readyz(d.base_url()).await;
        assert_eq!(status, 200, "replica {r} after the outage: {body}");
    }

    // GitLab re-sends what was not acknowledged, with the same key.
    let resend: Vec<Webhook> = record
        .iter()
        .filter(|s| s.answer != Ok(200))
        .map(|s| s.webhook.clone())
        .collect();
    let mut resenders = tokio::task::JoinSet::new();
    for (r, d) in replicas.iter().enumerate() {
        let hooks = d.hooks();
        let mine: Vec<Webhook> = resend.iter().skip(r).step_by(2).cloned().collect();
        resenders.spawn(async move {
            for w in mine {
                let a = hooks
                    .try_post(w.event, w.body.clone(), &w.key)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", w.marker));
                assert_eq!(a.status, 200, "{} re-sent: {a:?}", w.marker);
            }
        });
    }
    while let Some(r) = resenders.join_next().await {
        r.unwrap();
    }

    let markers: Vec<&str> = record.iter().map(|s| s.webhook.marker.as_str()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.accepted() < markers.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until_settled(&cluster, &db, Duration::from_secs(30)).await;
    let seen = fake.snapshot();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for a in &seen.accepted {
        if let Some(m) = markers.iter().find(|m| a.text().contains(**m)) {
            *counts.entry(m).or_default() += 1;
        }
    }
    let lost: Vec<&&str> = markers
        .iter()
        .filter(|m| !counts.contains_key(**m))
        .collect();
    let doubled: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        lost.is_empty(),
        "{} webhooks never posted: {:?}…; the fake saw {}",
        lost.len(),
        &lost[..lost.len().min(10)],
        seen.summary()
    );
    assert!(
        doubled.len() <= replicas.len() && doubled.iter().all(|(_, n)| **n == 2),
        "posted more than once: {doubled:?}"
    );
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    let [a, b] = replicas;
    for log in [a.stop(), b.stop()] {
        let starts = log
            .iter()
            .filter(|l| l.contains("ready") && l.contains("listen="))
            .count();
        assert_eq!(starts, 1, "a replica restarted: {log:#?}");
        assert_no_secrets_at_all(&log);
    }
    eprintln!(
        "replicas outage: {} webhooks ({} during the {:?} outage, stop took {:?}), {} re-sent, \
         acknowledged again {reconnected:?} after the restart, {} posted, {} doubled; {:?} in all",
        record.len(),
        during.len(),
        start_asked - stopped,
        stopped - stop_asked,
        resend.len(),
        seen.accepted.len(),
        doubled.len(),
        started.elapsed()
    );
}

/// A review reminder on two replicas of one database: due when both start (missed three
/// minutes ago, within `catch_up`), its card is sent once; the replica that leads killed and
/// the other leading in its place, it is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_a_reminder_once() {
    use crate::support::fake_gitlab_mrs::{FakeGitlabMrs, Mr, TOKEN as GITLAB_TOKEN};
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("replicas-reminder");
    let db = cluster.create_database();
    let fake = FakeCliq::start(0).await;
    let gitlab = FakeGitlabMrs::start(vec![Mr::new("acme/app", 1, 30, &["alice"])]);
    let dir = TempDir::new("replicas-reminder");
    let past = (chrono::Utc::now() - chrono::Duration::minutes(3))
        .format("%H:%M")
        .to_string();
    let more = format!(
        "[gitlab]\nurl = {}\ntoken = {}\nwatch_hooks_minutes = 0\n\n\
         [[reminders]]\nname = \"reviews\"\nchannels = [\"dev\"]\nschedule = \"daily {past}\"\n\
         timezone = \"UTC\"\nprojects = [\"acme/*\"]\n",
        toml_str(gitlab.base()),
        toml_str(GITLAB_TOKEN),
    );
    let configs = replica_configs(
        &dir,
        &cluster,
        &db,
        &fake,
        &[Channel::fast("dev")],
        &more,
        2,
    );
    let (a, b) = tokio::join!(replica(&configs[0]), replica(&configs[1]));
    fake.wait_for_accepted(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cards = |f: &FakeCliq| f.snapshot().count("dev", "waits for review");
    assert_eq!(cards(&fake), 1, "{}", fake.snapshot().summary());
    let runs = cluster.psql(
        &db,
        "SELECT count(*) FROM reminder_runs WHERE name = 'reviews'",
    );
    assert_eq!(runs.trim(), "1");

    // Whichever led, kill it: the other leads and finds the run done.
    let (leader, other) = if a.log().iter().any(|l| l.contains("reminder: due")) {
        (a, b)
    } else {
        (b, a)
    };
    drop(leader);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(cards(&fake), 1, "{}", fake.snapshot().summary());
    assert_no_secrets_at_all(&other.log());
}
