//! Delivery tests on the real durable outbox (SQLite in a temp folder) and the real channel
//! workers, with a scripted poster: rate budget (on tokio's paused clock, since it spans minutes),
//! per-object order while retrying, throttling, dead letters, dedupe, restart (short real waits),
//! a conversation's root card to a chat without references followed by its message.

use crate::support::temp::TempDir;
use crate::support::turn;
use gitlab_chat_bridge::deliver::clock::Clock;
use gitlab_chat_bridge::deliver::durable::{DurableOutbox, DurableSettings};
use gitlab_chat_bridge::deliver::rate::RateLimiter;
use gitlab_chat_bridge::deliver::sender::Attempt;
use gitlab_chat_bridge::deliver::store::Store;
use gitlab_chat_bridge::deliver::worker::{run_channel, Post, Target};
use gitlab_chat_bridge::deliver::{
    Auth, Batch, BoxFuture, Delivery, Endpoint, Enqueued, RetryPolicy,
};
use gitlab_chat_bridge::render::cliq;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Records every post with its (virtual) time; answers from a script, then 204.
#[derive(Default)]
struct ScriptedPoster {
    posts: Mutex<Vec<(Instant, String)>>,
    /// Body → answers to give before succeeding.
    script: Mutex<HashMap<String, Vec<Attempt>>>,
}

impl Post for ScriptedPoster {
    fn post<'a>(&'a self, _: &'a Endpoint, _: &'a str, body: &'a str) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            self.posts
                .lock()
                .unwrap()
                .push((Instant::now(), body.to_string()));
            let mut script = self.script.lock().unwrap();
            match script.get_mut(body) {
                Some(answers) if !answers.is_empty() => answers.remove(0),
                _ => Attempt::Delivered(204),
            }
        })
    }
}

impl ScriptedPoster {
    fn bodies(&self) -> Vec<String> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A new folder for an outbox, and the outbox's path in it.
fn temp_store(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(&format!("delivery-{name}"));
    let path = dir.join("outbox.sqlite");
    (dir, path)
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(300),
        max_backoff: Duration::from_secs(2),
        max_age: Duration::from_secs(24 * 3600),
    }
}

fn batch(key: &str, channel: &str, object: &str, body: &str) -> Batch {
    Batch {
        dedupe_key: Some(key.to_string()),
        request_id: key.to_string(),
        deliveries: vec![Delivery {
            id: format!("{key}/{channel}"),
            channel: channel.to_string(),
            ordering_key: object.to_string(),
            body: body.to_string(),
        }],
    }
}

struct Harness {
    outbox: DurableOutbox,
    poster: Arc<ScriptedPoster>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    dir: TempDir,
    path: PathBuf,
}

impl Harness {
    /// Channels `(name, credential)`; channels with one credential share a limiter.
    fn start(
        name: &str,
        channels: &[(&str, &str)],
        per_minute: u32,
        policy: RetryPolicy,
    ) -> Harness {
        Harness::start_after(name, channels, per_minute, policy, Vec::new())
    }

    /// Like [`Harness::start`], with `backlog` committed before the workers start (a paused
    /// clock races ahead while the store's thread works, so enqueueing under running workers
    /// spreads a burst over virtual minutes).
    fn start_after(
        name: &str,
        channels: &[(&str, &str)],
        per_minute: u32,
        policy: RetryPolicy,
        backlog: Vec<Batch>,
    ) -> Harness {
        let (dir, path) = temp_store(name);
        let clock = Clock::new();
        let names: Vec<String> = channels.iter().map(|(n, _)| n.to_string()).collect();
        let settings = DurableSettings {
            dedupe_window_ms: 3_600_000,
            full_sync: false,
        };
        let (outbox, _writer) = DurableOutbox::open(&path, settings, &names, clock).unwrap();
        for b in backlog {
            // Committed from a plain thread, so the paused clock does not move meanwhile.
            let o = outbox.clone();
            let now = clock.now_ms();
            let answer = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(o.enqueue_at(b, now))
            })
            .join()
            .unwrap();
            assert_eq!(answer.unwrap(), Enqueued::Accepted);
        }
        let poster = Arc::new(ScriptedPoster::default());
        let cancel = CancellationToken::new();
        let mut limiters: HashMap<&str, Arc<RateLimiter>> = HashMap::new();
        let mut tasks = Vec::new();
        for (n, cred) in channels {
            let limiter = limiters
                .entry(cred)
                .or_insert_with(|| Arc::new(RateLimiter::new(per_minute)))
                .clone();
            let target = Target {
                name: n.to_string(),
                endpoint: Endpoint {
                    url: "http://127.0.0.1:9/unused".into(),
                    auth: Auth::None,
                },
                limiter,
                digest: Arc::new(cliq::digest),
                dead_letters: None,
            };
            let p: Arc<dyn Post> = poster.clone();
            tasks.push(tokio::spawn(run_channel(
                target,
                outbox.clone(),
                p,
                policy,
                clock,
                cancel.clone(),
            )));
        }
        Harness {
            outbox,
            poster,
            cancel,
            tasks,
            dir,
            path,
        }
    }

    /// Waits until `n` posts were made; the bound is real time (a paused clock races ahead
    /// while the store's thread works), at most `limit`.
    async fn until_posts(&self, n: usize, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.poster.posts.lock().unwrap().len() < n {
            let made = self.poster.posts.lock().unwrap().len();
            assert!(std::time::Instant::now() < deadline, "only {made} posts");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers; returns the outbox's folder (removed when dropped) and path.
    async fn stop(self) -> (TempDir, PathBuf) {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.dir, self.path)
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_never_exceeds_the_credential_budget() {
    let _turn = turn::shared_async().await;
    // Two channels, one credential: they share one budget of 45 posts a minute. A backlog larger
    // than a minute's budget is posted as digests, so the burst arrives in minutes, not hours,
    // without ever going over the budget.
    let burst: Vec<Batch> = (0..300)
        .map(|i| {
            let ch = if i % 2 == 0 { "dev" } else { "ops" };
            let body = format!(
                r#"{{"text":"<m{i:03}>","card":{{"title":"t{i}","theme":"modern-inline"}}}}"#
            );
            batch(&format!("r{i}"), ch, &format!("obj{}", i % 7), &body)
        })
        .collect();
    let start = Instant::now();
    let h = Harness::start_after("rate", &[("dev", "k1"), ("ops", "k1")], 45, policy(), burst);
    let all_arrived = |bodies: &[String]| {
        (0..300).all(|i| bodies.iter().any(|b| b.contains(&format!("<m{i:03}>"))))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !all_arrived(&h.poster.bodies()) {
        assert!(std::time::Instant::now() < deadline, "not all 300 arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posts = h.poster.posts.lock().unwrap().clone();
    let times: Vec<Duration> = posts.iter().map(|(t, _)| *t - start).collect();
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .filter(|u| **u - *t < Duration::from_secs(60))
            .count();
        assert!(within <= 45, "{within} posts in the minute after {t:?}");
    }
    // Every message exactly once, and in order within each object and channel.
    let bodies = h.poster.bodies();
    for i in 0..300 {
        let marker = format!("<m{i:03}>");
        let n: usize = bodies.iter().map(|b| b.matches(&marker).count()).sum();
        assert_eq!(n, 1, "{marker} posted {n} times");
    }
    for ch in 0..2 {
        for obj in 0..7 {
            let wanted: Vec<usize> = (0..300).filter(|i| i % 2 == ch && i % 7 == obj).collect();
            let mut seen = Vec::new();
            for b in &bodies {
                for &i in &wanted {
                    if let Some(pos) = b.find(&format!("<m{i:03}>")) {
                        seen.push((posts.iter().position(|(_, x)| x == b).unwrap_or(0), pos, i));
                    }
                }
            }
            seen.sort();
            let order: Vec<usize> = seen.iter().map(|(_, _, i)| *i).collect();
            assert_eq!(order, wanted, "channel {ch} object {obj} out of order");
        }
    }
    assert!(
        bodies.iter().any(|b| b.contains("updates (digest")),
        "no digest was made: {} posts, last at {:?}",
        bodies.len(),
        times.last()
    );
    // Digests made the burst fit in a few minutes instead of 300 / 45 ≈ 7.
    assert!(
        times.last().copied().unwrap_or_default() < Duration::from_secs(5 * 60),
        "{:?}",
        times.last()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_retrying_message_holds_back_its_object_only() {
    let _turn = turn::shared_async().await;
    let h = Harness::start("order", &[("dev", "k")], 1000, policy());
    h.poster.script.lock().unwrap().insert(
        "A1".into(),
        vec![Attempt::Retry {
            status: Some(503),
            retry_after: Some(Duration::from_secs(1)),
            throttled: false,
            reason: "HTTP 503".into(),
        }],
    );
    for (k, obj, body) in [
        ("1", "A", "A1"),
        ("2", "A", "A2"),
        ("3", "B", "B1"),
        ("4", "A", "A3"),
    ] {
        h.outbox.enqueue(batch(k, "dev", obj, body)).await.unwrap();
    }
    h.until_posts(5, Duration::from_secs(20)).await;
    let posts = h.poster.posts.lock().unwrap().clone();
    let order: Vec<&str> = posts.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(order, ["A1", "B1", "A1", "A2", "A3"]);
    // The retry waited for Retry-After; B1 did not.
    assert!(posts[2].0 - posts[0].0 >= Duration::from_secs(1));
    assert!(posts[1].0 - posts[0].0 < Duration::from_millis(900));
    h.stop().await;
}

#[tokio::test]
async fn throttle_pauses_the_whole_credential() {
    let _turn = turn::shared_async().await;
    let h = Harness::start("throttle", &[("dev", "k"), ("ops", "k")], 1000, policy());
    h.poster.script.lock().unwrap().insert(
        "first".into(),
        vec![Attempt::Retry {
            status: Some(400),
            retry_after: None,
            throttled: true,
            reason: "HTTP 400 request_limit_exceeded".into(),
        }],
    );
    h.outbox
        .enqueue(batch("1", "dev", "A", "first"))
        .await
        .unwrap();
    h.until_posts(1, Duration::from_secs(10)).await;
    h.outbox
        .enqueue(batch("2", "ops", "B", "other"))
        .await
        .unwrap();
    h.until_posts(3, Duration::from_secs(20)).await;
    let posts = h.poster.posts.lock().unwrap().clone();
    let other = posts.iter().find(|(_, b)| b == "other").unwrap().0;
    // The other channel shares the credential, so it waited out the pause (≥ the first
    // backoff, 300 ms) too.
    assert!(
        other - posts[0].0 >= Duration::from_millis(290),
        "{:?}",
        other - posts[0].0
    );
    h.stop().await;
}

#[tokio::test]
async fn failures_become_dead_letters_that_can_be_retried() {
    let _turn = turn::shared_async().await;
    let h = Harness::start("dead", &[("dev", "k")], 1000, policy());
    h.poster.script.lock().unwrap().insert(
        "bad".into(),
        vec![Attempt::Permanent {
            status: 404,
            reason: "HTTP 404 channel_not_found: no such channel".into(),
        }],
    );
    let flaky = Attempt::Retry {
        status: Some(503),
        retry_after: None,
        throttled: false,
        reason: "HTTP 503".into(),
    };
    h.poster
        .script
        .lock()
        .unwrap()
        .insert("flaky".into(), vec![flaky; 10]);
    h.outbox
        .enqueue(batch("1", "dev", "A", "bad"))
        .await
        .unwrap();
    h.outbox
        .enqueue(batch("2", "dev", "B", "flaky"))
        .await
        .unwrap();
    h.outbox
        .enqueue(batch("3", "dev", "C", "good"))
        .await
        .unwrap();
    // bad: 1 attempt; flaky: max_attempts (4); good: 1.
    h.until_posts(6, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_dir, path) = h.stop().await;
    let mut store = Store::open(&path, false).unwrap();
    let dead = store.list(true, 10).unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let bad = dead.iter().find(|d| d.delivery_id == "1/dev").unwrap();
    assert_eq!(bad.last_status, Some(404));
    assert!(bad
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("no such channel"));
    let flaky = dead.iter().find(|d| d.delivery_id == "2/dev").unwrap();
    assert_eq!(flaky.attempts, 4);
    assert_eq!(store.stats().unwrap()[0].dead, 2);
    assert_eq!(store.retry_dead(Some(bad.id), 0).unwrap(), 1);
    assert_eq!(store.stats().unwrap()[0].pending, 1);
}

#[tokio::test]
async fn the_same_delivery_three_times_posts_once() {
    let _turn = turn::shared_async().await;
    let h = Harness::start("dedupe", &[("dev", "k")], 1000, policy());
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(
            h.outbox
                .enqueue(batch("same-key", "dev", "A", "once"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        answers,
        [Enqueued::Accepted, Enqueued::Duplicate, Enqueued::Duplicate]
    );
    h.until_posts(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.poster.bodies(), ["once"]);
    h.stop().await;
}

#[tokio::test]
async fn messages_survive_a_restart_and_keep_their_order() {
    let _turn = turn::shared_async().await;
    let (_dir, path) = {
        let h = Harness::start("restart", &[("dev", "k")], 1000, policy());
        h.cancel.cancel(); // workers stop before posting anything
        for (k, body) in [("1", "first"), ("2", "second"), ("3", "third")] {
            h.outbox.enqueue(batch(k, "dev", "A", body)).await.unwrap();
        }
        h.stop().await
    };
    let dir_name = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(dir_name.contains("restart"));
    // Same file, new process-equivalent: new writer, new workers.
    let clock = Clock::new();
    let settings = DurableSettings {
        dedupe_window_ms: 3_600_000,
        full_sync: false,
    };
    let (outbox, _w) = DurableOutbox::open(&path, settings, &["dev".to_string()], clock).unwrap();
    let poster = Arc::new(ScriptedPoster::default());
    let cancel = CancellationToken::new();
    let target = Target {
        name: "dev".into(),
        endpoint: Endpoint {
            url: "http://127.0.0.1:9/x".into(),
            auth: Auth::None,
        },
        limiter: Arc::new(RateLimiter::new(1000)),
        digest: Arc::new(cliq::digest),
        dead_letters: None,
    };
    let p: Arc<dyn Post> = poster.clone();
    let task = tokio::spawn(run_channel(
        target,
        outbox.clone(),
        p,
        policy(),
        clock,
        cancel.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while poster.bodies().len() < 3 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(poster.bodies(), ["first", "second", "third"]);
    // The dedupe keys survived too.
    assert_eq!(
        outbox
            .enqueue(batch("2", "dev", "A", "second"))
            .await
            .unwrap(),
        Enqueued::Duplicate
    );
    cancel.cancel();
    task.await.unwrap();
}

/// A `thread+edit` message to a chat that gives no reference (its posts are flat): the root card
/// is posted, and the message itself after it, so the event is not lost behind its root card.
#[tokio::test]
async fn a_root_card_to_a_chat_without_references_is_followed_by_the_message() {
    use gitlab_chat_bridge::deliver::conversation::{self, Instruction};
    let _turn = turn::shared_async().await;
    let h = Harness::start("flat-root", &[("dev", "k")], 1000, policy());
    let i = Instruction {
        key: "A".into(),
        edit: true,
        root: Some("the root card".into()),
        broadcast: false,
        ends: false,
        days: 14,
    };
    let body = conversation::wrap("the event", &i);
    h.outbox
        .enqueue(batch("flat-1", "dev", "A", &body))
        .await
        .unwrap();
    h.until_posts(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.poster.bodies(), ["the root card", "the event"]);
    h.stop().await;
}
