//! One behaviour test per store operation, run on both engines: every operation of the
//! `Engine` trait and of the router stage's reads (`RouterReads`, here `reads_*`) has one body
//! below, run once on a fresh SQLite file and once on a fresh PostgreSQL database (one cluster
//! for the run of each). `every_operation_has_a_behaviour_test` parses the traits in
//! `src/deliver/engine.rs` and fails when an operation has no body here, so an operation cannot
//! exist, or be tested, on one engine only.

use super::{message, replica, webhook, WINDOW_MS};
use crate::support::postgres::Cluster;
use crate::support::temp::TempDir;
use crate::support::turn;
use gitlab_chat_bridge::deliver::clock::Clock;
use gitlab_chat_bridge::deliver::durable::{DurableOutbox, DurableSettings};
use gitlab_chat_bridge::deliver::store::{
    ChatRule, ConversationWrite, EventFilter, Ingested, Outcome, PruneBefore, RawEvent,
    RoutedEvent, RuleChange,
};
use gitlab_chat_bridge::deliver::{Delivery, Enqueued, Outbox};
use std::future::Future;
use std::time::{Duration, Instant};

/// Declares the operations with a behaviour test (each an `async fn NAME(o, engine)` below) and
/// the runner that runs each on a fresh store.
macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every operation with a behaviour test.
        const OPERATIONS: &[&str] = &[$(stringify!($name)),*];

        /// Runs every operation's test on a fresh store `open` makes; the failures, by name.
        async fn run_all<F, Fut>(engine: &'static str, open: F) -> Vec<String>
        where
            F: Fn(&'static str) -> Fut,
            Fut: Future<Output = DurableOutbox>,
        {
            let mut failed = Vec::new();
            $(
                let o = open(stringify!($name)).await;
                let run = tokio::time::timeout(
                    Duration::from_secs(60),
                    tokio::spawn($name(o, engine)),
                )
                .await;
                match run {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed.push(format!("{}: {}", stringify!($name), panic_text(e))),
                    Err(_) => failed.push(format!("{}: timed out", stringify!($name))),
                }
            )*
            failed
        }
    };
}

operations![
    ingest,
    enqueue,
    routed,
    lease,
    record,
    record_conversation,
    conversation,
    prune,
    ping,
    stats,
    change_rules,
    chat_rules,
    last_posts,
    received_at,
    reminder_run,
    reminder_runs,
    retry_dead,
    list,
    retry_all_dead,
    purge_dead,
    unrouted_count,
    list_events,
    event,
    event_row,
    event_messages,
    event_ids_since,
    replay,
    router_reads,
    leads,
    shared_window,
    reads_new_events,
    reads_chat_rules,
    reads_memory,
];

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_behaves_the_same_on_sqlite() {
    let _turn = turn::shared_async().await;
    let dir = TempDir::new("operations");
    let path = dir.path().to_path_buf();
    let failed = run_all("sqlite", |name| {
        let file = path.join(format!("{name}.sqlite"));
        async move {
            let names: Vec<String> = ["ops", "dev"].iter().map(|c| c.to_string()).collect();
            let settings = DurableSettings {
                dedupe_window_ms: WINDOW_MS,
                full_sync: false,
            };
            // The writer thread ends with the outbox's handles.
            DurableOutbox::open(&file, settings, &names, Clock::new())
                .unwrap()
                .0
        }
    })
    .await;
    assert!(failed.is_empty(), "on SQLite:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_behaves_the_same_on_postgresql() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("operations");
    let failed = run_all("postgres", |_| {
        let db = cluster.create_database();
        let cluster = &cluster;
        async move { replica(cluster, &db, "a").await }
    })
    .await;
    assert!(failed.is_empty(), "on PostgreSQL:\n{}", failed.join("\n"));
}

/// The method names of `pub trait NAME` in `source` (a trait's body ends at a line `}`).
fn trait_operations(source: &str, name: &str) -> Vec<String> {
    let start = format!("pub trait {name}");
    let mut lines = source.lines().skip_while(|l| !l.starts_with(&start));
    lines.next();
    lines
        .take_while(|l| *l != "}")
        .filter_map(|l| l.strip_prefix("    fn "))
        .map(|l| l.split(['(', '<']).next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_operation_has_a_behaviour_test() {
    let _turn = turn::shared();
    let fake = "pub trait Engine: Send {\n    /// Doc.\n    fn one(&self);\n    fn two<'a>(\n        &self,\n    ) {\n        x\n    }\n}\nfn three() {}\n";
    assert_eq!(trait_operations(fake, "Engine"), ["one", "two"]);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/deliver/engine.rs");
    let source = std::fs::read_to_string(path).unwrap();
    let engine = trait_operations(&source, "Engine");
    let reads = trait_operations(&source, "RouterReads");
    assert!(
        engine.len() > 20 && reads.len() == 3,
        "{engine:?} {reads:?}"
    );
    let missing: Vec<String> = engine
        .into_iter()
        .chain(reads.into_iter().map(|r| format!("reads_{r}")))
        .filter(|op| !OPERATIONS.contains(&op.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a behaviour test on both engines (tests/postgres/operations.rs): \
         {missing:?}"
    );
}

fn now() -> i64 {
    Clock::new().now_ms()
}

fn keyed(key: &str, body: &str) -> RawEvent {
    webhook(Some(key), body)
}

/// A routing of event `id` with one message per `(channel, object, body)`.
fn routing(id: i64, key: &str, project: &str, messages: &[(&str, &str, &str)]) -> RoutedEvent {
    RoutedEvent {
        event_id: id,
        request_id: format!("req-{id}"),
        idempotency_key: None,
        kind: key.split('.').next().unwrap_or_default().to_string(),
        key: key.to_string(),
        project: project.to_string(),
        outcome: format!("queued {}", messages.len()),
        deliveries: messages
            .iter()
            .map(|(channel, object, body)| Delivery {
                id: format!("req-{id}/{channel}"),
                channel: channel.to_string(),
                ordering_key: object.to_string(),
                body: body.to_string(),
            })
            .collect(),
        memory: Vec::new(),
    }
}

async fn stored(o: &DurableOutbox, key: &str, at: i64) -> i64 {
    match o.ingest_at(keyed(key, "{}"), at).await.unwrap() {
        Ingested::Accepted(id) => id,
        Ingested::Duplicate => panic!("{key} taken for a duplicate"),
    }
}

async fn bodies(o: &DurableOutbox, channel: &str, at: i64) -> Vec<String> {
    let a = o.lease(channel, at, 30_000, 0, 8).await.unwrap();
    a.messages.into_iter().map(|m| m.body).collect()
}

/// The one message leased now on `channel`, recorded as `outcome`; its id.
async fn lease_one_and(o: &DurableOutbox, channel: &str, at: i64, outcome: Outcome) -> i64 {
    let leased = o.lease(channel, at, 30_000, 0, 1).await.unwrap().messages;
    assert_eq!(leased.len(), 1, "{leased:?}");
    o.record(leased[0].id, outcome).await.unwrap();
    leased[0].id
}

fn dead() -> Outcome {
    Outcome::Dead {
        status: Some(400),
        error: "bad card".into(),
    }
}

fn rule(chat: &str, subject: &str, spec: &str) -> ChatRule {
    ChatRule {
        chat: chat.into(),
        kind: "subscription".into(),
        subject: subject.into(),
        spec: spec.into(),
        until: None,
        created_by: "ann".into(),
        created_at: 5,
    }
}

/// Runs the router stage's reads `f` on a blocking thread (PostgreSQL's are driven there).
async fn with_reads<T: Send + 'static>(
    o: &DurableOutbox,
    f: impl FnOnce(&dyn gitlab_chat_bridge::deliver::engine::RouterReads) -> T + Send + 'static,
) -> T {
    let reads = o.router_reads().unwrap();
    tokio::task::spawn_blocking(move || f(reads.as_ref()))
        .await
        .unwrap()
}

async fn ingest(o: DurableOutbox, e: &'static str) {
    let t = now();
    let ev = RawEvent {
        headers: vec![
            ("idempotency-key".into(), "k1".into()),
            ("x-gitlab-event".into(), "Issue Hook".into()),
        ],
        ..keyed("k1", r#"{"object_kind":"issue"}"#)
    };
    let Ingested::Accepted(id) = o.ingest_at(ev.clone(), t).await.unwrap() else {
        panic!("{e}: not stored")
    };
    assert_eq!(
        o.ingest_at(ev.clone(), t + 1).await.unwrap(),
        Ingested::Duplicate,
        "{e}"
    );
    // After the window the key is new again; a delivery without a key is never a duplicate.
    let later = o.ingest_at(ev.clone(), t + WINDOW_MS + 1).await.unwrap();
    assert!(
        matches!(later, Ingested::Accepted(n) if n > id),
        "{e}: {later:?}"
    );
    let bare = webhook(None, "{}");
    let (a, b) = (
        o.ingest_at(bare.clone(), t).await,
        o.ingest_at(bare, t).await,
    );
    assert!(
        matches!(
            (a.unwrap(), b.unwrap()),
            (Ingested::Accepted(_), Ingested::Accepted(_))
        ),
        "{e}"
    );
    let back = o.event(id).await.unwrap().unwrap();
    assert_eq!(
        (back.raw.headers, back.raw.body, back.received_at),
        (ev.headers, ev.body, t),
        "{e}"
    );
    // Deliveries that arrive together are written together: a key repeated among them is
    // stored once, and the others are stored in the order they arrived.
    let (a, b, c, d) = tokio::join!(
        o.ingest_at(keyed("t1", "{}"), t),
        o.ingest_at(keyed("t2", "{}"), t),
        o.ingest_at(keyed("t1", "{}"), t),
        o.ingest_at(webhook(None, "{}"), t),
    );
    assert_eq!(c.unwrap(), Ingested::Duplicate, "{e}");
    let ids: Vec<i64> = [a, b, d]
        .into_iter()
        .map(|r| match r.unwrap() {
            Ingested::Accepted(id) => id,
            Ingested::Duplicate => panic!("{e}: a new key taken for a duplicate"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{e}: {ids:?}");
}

async fn enqueue(o: DurableOutbox, e: &'static str) {
    let t = now();
    let mut batch = message("r1", "ops", "mr-1", "m1");
    batch.dedupe_key = Some("b1".into());
    assert_eq!(
        o.enqueue_at(batch.clone(), t).await.unwrap(),
        Enqueued::Accepted,
        "{e}"
    );
    assert_eq!(
        o.enqueue_at(batch, t + 1).await.unwrap(),
        Enqueued::Duplicate,
        "{e}"
    );
    o.enqueue_at(message("r2", "ops", "mr-1", "m2"), t)
        .await
        .unwrap();
    let listed: Vec<String> = o
        .list(false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    assert_eq!(listed, ["r2/ops", "r1/ops"], "{e}");
    // Queued behind the first of its object.
    assert_eq!(bodies(&o, "ops", t).await, ["m1"], "{e}");
}

async fn routed(o: DurableOutbox, e: &'static str) {
    let t = now();
    let id = stored(&o, "k1", t).await;
    let mut r = routing(id, "issue.open", "g/p", &[("ops", "issue-1", "card")]);
    r.memory = vec![("k".into(), "v1".into())];
    o.routed(vec![r.clone()]).await.unwrap();
    let row = o.event_row(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.key.as_deref(),
            row.project.as_deref(),
            row.outcome.as_deref()
        ),
        ("routed", Some("issue.open"), Some("g/p"), Some("queued 1")),
        "{e}"
    );
    // Routing it again (a retried batch) changes nothing.
    r.memory = vec![("k".into(), "v2".into())];
    o.routed(vec![r]).await.unwrap();
    assert_eq!(o.event_messages(id).await.unwrap().len(), 1, "{e}");
    let remembered = with_reads(&o, |r| r.memory("k").unwrap()).await;
    assert_eq!(remembered.as_deref(), Some("v1"), "{e}");
    assert_eq!(bodies(&o, "ops", now()).await, ["card"], "{e}");
    // A batch of two events with messages of one object, both writing one memory key: the
    // messages stored in the batch's order, only the object's first leasable, the later value
    // remembered.
    let (x, y) = (stored(&o, "k2", t).await, stored(&o, "k3", t).await);
    let mut rx = routing(
        x,
        "issue.update",
        "g/p",
        &[("ops", "issue-2", "x1"), ("dev", "issue-2", "x-dev")],
    );
    rx.memory = vec![("m".into(), "first".into())];
    let mut ry = routing(y, "issue.update", "g/p", &[("ops", "issue-2", "y1")]);
    ry.memory = vec![("m".into(), "second".into())];
    o.routed(vec![rx, ry]).await.unwrap();
    let remembered = with_reads(&o, |r| r.memory("m").unwrap()).await;
    assert_eq!(remembered.as_deref(), Some("second"), "{e}");
    let listed: Vec<String> = o
        .list(false, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    assert_eq!(
        listed,
        [
            format!("req-{y}/ops"),
            format!("req-{x}/dev"),
            format!("req-{x}/ops")
        ],
        "{e}"
    );
    assert_eq!(
        bodies(&o, "ops", now()).await,
        ["x1"],
        "{e}: y1 waits behind x1"
    );
    assert_eq!(bodies(&o, "dev", now()).await, ["x-dev"], "{e}");
}

async fn lease(o: DurableOutbox, e: &'static str) {
    let t = now();
    for (i, (object, body)) in [("a", "a1"), ("a", "a2"), ("b", "b1")].iter().enumerate() {
        o.enqueue_at(message(&format!("r{i}"), "ops", object, body), t)
            .await
            .unwrap();
    }
    let first = o.lease("ops", t, 30_000, 0, 8).await.unwrap();
    let got: Vec<&str> = first.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        (got, first.digest),
        (vec!["a1", "b1"], false),
        "{e}: heads, oldest first"
    );
    let none = o.lease("ops", t, 30_000, 0, 8).await.unwrap();
    assert!(none.messages.is_empty(), "{e}");
    assert_eq!(none.next_due, Some(t + 60_000), "{e}: when the leases end");
    // A backlog above the budget is leased as one digest of its never-tried prefix.
    for i in 0..4 {
        let body = format!("d{i}");
        o.enqueue_at(message(&body, "dev", &format!("o{i}"), &body), t)
            .await
            .unwrap();
    }
    let d = o.lease("dev", t, 30_000, 2, 8).await.unwrap();
    let got: Vec<&str> = d.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!((got, d.digest), (vec!["d0", "d1", "d2", "d3"], true), "{e}");
}

async fn record(o: DurableOutbox, e: &'static str) {
    let t = now();
    for (i, body) in ["a1", "a2", "a3"].iter().enumerate() {
        o.enqueue_at(message(&format!("r{i}"), "ops", "a", body), t)
            .await
            .unwrap();
    }
    let retry = Outcome::Retry {
        next_at: t + 1_000,
        status: Some(503),
        error: "busy".into(),
    };
    let a1 = lease_one_and(&o, "ops", t, retry).await;
    assert!(
        bodies(&o, "ops", t).await.is_empty(),
        "{e}: a retry keeps its object waiting"
    );
    let again = o
        .lease("ops", t + 1_000, 30_000, 0, 8)
        .await
        .unwrap()
        .messages;
    assert_eq!((again[0].id, again[0].attempts), (a1, 1), "{e}");
    o.record(a1, Outcome::Sent).await.unwrap();
    lease_one_and(&o, "ops", t, dead()).await;
    let a3 = o.lease("ops", t, 30_000, 0, 8).await.unwrap().messages;
    assert_eq!(
        a3[0].body, "a3",
        "{e}: the next of its object after a dead letter"
    );
    o.record(a3[0].id, Outcome::Release).await.unwrap();
    assert_eq!(
        bodies(&o, "ops", t).await,
        ["a3"],
        "{e}: released, leasable again"
    );
    let listed = o.list(false, 10).await.unwrap();
    let states: Vec<(&str, u32)> = listed
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(
        states,
        [("pending", 0), ("dead", 1)],
        "{e}: a3 and a2; a1 sent"
    );
}

fn conversation_write(root: Option<&str>, hash: Option<&str>, closed: bool) -> ConversationWrite {
    ConversationWrite {
        channel: "mx".into(),
        key: "mr:1".into(),
        root: root.map(str::to_string),
        body_hash: hash.map(str::to_string),
        closed,
    }
}

async fn record_conversation(o: DurableOutbox, e: &'static str) {
    let t = now();
    for (i, body) in ["root", "reply"].iter().enumerate() {
        o.enqueue_at(message(&format!("r{i}"), "mx", "mr:1", body), t)
            .await
            .unwrap();
    }
    let root = o.lease("mx", t, 30_000, 0, 1).await.unwrap().messages;
    let started = conversation_write(Some(r#"{"event_id":"$a"}"#), Some("h1"), false);
    o.record_conversation(root[0].id, Outcome::Sent, started)
        .await
        .unwrap();
    let c = o.conversation("mx", "mr:1").await.unwrap().unwrap();
    assert_eq!(
        (c.root.as_str(), c.body_hash.as_deref(), c.closed_at),
        (r#"{"event_id":"$a"}"#, Some("h1"), None),
        "{e}: the root's reference is kept with its delivery"
    );
    let reply = o.lease("mx", t, 30_000, 0, 1).await.unwrap().messages;
    assert_eq!(
        reply[0].body, "reply",
        "{e}: the root is sent, its object's next message is due"
    );
    // The reply edits the root and closes the object: the root stays, the hash and end change.
    o.record_conversation(
        reply[0].id,
        Outcome::Sent,
        conversation_write(None, Some("h2"), true),
    )
    .await
    .unwrap();
    let c = o.conversation("mx", "mr:1").await.unwrap().unwrap();
    assert_eq!(c.root, r#"{"event_id":"$a"}"#, "{e}");
    assert_eq!(c.body_hash.as_deref(), Some("h2"), "{e}");
    assert!(c.closed_at.is_some(), "{e}: closed");
    assert!(
        o.list(false, 10).await.unwrap().is_empty(),
        "{e}: both sent"
    );
    // A new root starts the conversation again, open.
    o.enqueue_at(message("r2", "mx", "mr:1", "again"), t)
        .await
        .unwrap();
    let again = o.lease("mx", t, 30_000, 0, 1).await.unwrap().messages;
    let retry = Outcome::Retry {
        next_at: t,
        status: Some(502),
        error: "busy".into(),
    };
    o.record_conversation(
        again[0].id,
        retry,
        conversation_write(Some(r#"{"event_id":"$b"}"#), None, false),
    )
    .await
    .unwrap();
    let c = o.conversation("mx", "mr:1").await.unwrap().unwrap();
    assert_eq!(
        (c.root.as_str(), c.body_hash, c.closed_at),
        (r#"{"event_id":"$b"}"#, None, None),
        "{e}: a new root replaces the ended conversation"
    );
}

async fn conversation(o: DurableOutbox, e: &'static str) {
    assert_eq!(
        o.conversation("mx", "mr:1").await.unwrap(),
        None,
        "{e}: none before a root"
    );
    o.enqueue_at(message("r0", "mx", "mr:1", "root"), now())
        .await
        .unwrap();
    let root = o.lease("mx", now(), 30_000, 0, 1).await.unwrap().messages;
    o.record_conversation(
        root[0].id,
        Outcome::Sent,
        conversation_write(Some("ref"), None, false),
    )
    .await
    .unwrap();
    let c = o.conversation("mx", "mr:1").await.unwrap().unwrap();
    assert_eq!(
        (c.channel.as_str(), c.key.as_str(), c.root.as_str()),
        ("mx", "mr:1", "ref"),
        "{e}"
    );
    assert!(c.started_at > 0 && c.updated_at >= c.started_at, "{e}");
    assert_eq!(
        o.conversation("mx", "mr:2").await.unwrap(),
        None,
        "{e}: per object"
    );
    assert_eq!(
        o.conversation("tg", "mr:1").await.unwrap(),
        None,
        "{e}: per channel"
    );
}

async fn prune(o: DurableOutbox, e: &'static str) {
    let t = now();
    let old = stored(&o, "old", t - 10_000).await;
    let new = stored(&o, "new", t).await;
    let unrouted = stored(&o, "unrouted", t - 10_000).await;
    let mut remembering = routing(new, "push", "g/p", &[]);
    remembering.memory = vec![("object-state/g/p/mr/9".into(), "{}".into())];
    o.routed(vec![routing(old, "push", "g/p", &[]), remembering])
        .await
        .unwrap();
    o.enqueue_at(message("q0", "mx", "mr:1", "root"), t)
        .await
        .unwrap();
    let root = o.lease("mx", t, 30_000, 0, 1).await.unwrap().messages;
    o.record_conversation(
        root[0].id,
        Outcome::Sent,
        conversation_write(Some("ref"), None, false),
    )
    .await
    .unwrap();
    let remembered = || with_reads(&o, |r| r.memory("object-state/g/p/mr/9").unwrap().is_some());
    o.prune(PruneBefore {
        dedupe: t - 5_000,
        events: t - 5_000,
        quiet: t - 60_000,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.event(old).await.unwrap().is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // That pass (it forgot the old event) kept what changed after its quiet horizon.
    assert!(
        o.conversation("mx", "mr:1").await.unwrap().is_some(),
        "{e}: an object that spoke since the horizon keeps its thread"
    );
    assert!(remembered().await, "{e}: and its memory");
    assert!(
        o.event(old).await.unwrap().is_none(),
        "{e}: the old routed event stays"
    );
    assert!(o.event(new).await.unwrap().is_some(), "{e}");
    assert!(
        o.event(unrouted).await.unwrap().is_some(),
        "{e}: an unrouted event is kept"
    );
    assert_eq!(
        o.received_at("old").await.unwrap(),
        None,
        "{e}: old keys forgotten"
    );
    assert_eq!(o.received_at("new").await.unwrap(), Some(t), "{e}");
    // A horizon after the object last spoke: its thread and its memory are forgotten together.
    o.prune(PruneBefore {
        dedupe: t - 5_000,
        events: t - 5_000,
        quiet: now() + 60_000,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.conversation("mx", "mr:1").await.unwrap().is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        o.conversation("mx", "mr:1").await.unwrap(),
        None,
        "{e}: a quiet object's thread is forgotten"
    );
    assert!(!remembered().await, "{e}: and so is its memory");
    assert!(
        o.event(new).await.unwrap().is_some(),
        "{e}: events keep their own retention"
    );
}

async fn ping(o: DurableOutbox, e: &'static str) {
    Outbox::ping(&o)
        .await
        .unwrap_or_else(|err| panic!("{e}: {err}"));
    Outbox::ping(&o)
        .await
        .unwrap_or_else(|err| panic!("{e}: {err}"));
    // The probe's row is no delivery's: a webhook with the nearest key is stored.
    let t = now();
    assert!(
        matches!(
            o.ingest_at(keyed("readyz", "{}"), t).await.unwrap(),
            Ingested::Accepted(_)
        ),
        "{e}"
    );
    assert_eq!(o.unrouted_count().await.unwrap(), 1, "{e}");
}

async fn stats(o: DurableOutbox, e: &'static str) {
    let t = now();
    assert!(Outbox::stats(&o).await.unwrap().is_empty(), "{e}");
    for (i, object) in ["a", "b", "c"].iter().enumerate() {
        o.enqueue_at(message(&format!("r{i}"), "ops", object, "x"), t + i as i64)
            .await
            .unwrap();
    }
    o.enqueue_at(message("d", "dev", "a", "x"), t)
        .await
        .unwrap();
    lease_one_and(&o, "ops", t + 5, dead()).await;
    let retry = Outcome::Retry {
        next_at: t + 9_000,
        status: None,
        error: "timeout".into(),
    };
    lease_one_and(&o, "ops", t + 5, retry).await;
    let s: Vec<_> = Outbox::stats(&o)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.channel,
                s.pending,
                s.retrying,
                s.dead,
                s.oldest_created_at,
            )
        })
        .collect();
    assert_eq!(
        s,
        [
            ("dev".to_string(), 1, 0, 0, Some(t)),
            ("ops".to_string(), 1, 1, 1, Some(t + 1))
        ],
        "{e}"
    );
}

async fn change_rules(o: DurableOutbox, e: &'static str) {
    let put = RuleChange::Put(rule("c1", "g/a", "{}"));
    assert_eq!(o.change_rules(put).await.unwrap(), 1, "{e}");
    let replace = RuleChange::Put(rule("c1", "g/a", r#"{"events":["push"]}"#));
    assert_eq!(o.change_rules(replace).await.unwrap(), 1, "{e}");
    let all = RuleChange::PutAll(vec![rule("c2", "g/b", "{}"), rule("c3", "g/c", "{}")]);
    assert_eq!(o.change_rules(all).await.unwrap(), 2, "{e}");
    let gone = |chat: &str, subject: &str| RuleChange::Delete {
        chat: chat.into(),
        kind: "subscription".into(),
        subject: subject.into(),
    };
    assert_eq!(o.change_rules(gone("c2", "g/b")).await.unwrap(), 1, "{e}");
    assert_eq!(o.change_rules(gone("c2", "g/b")).await.unwrap(), 0, "{e}");
    let rules = o.chat_rules().await.unwrap();
    assert_eq!(
        rules,
        [
            rule("c1", "g/a", r#"{"events":["push"]}"#),
            rule("c3", "g/c", "{}")
        ],
        "{e}"
    );
}

async fn chat_rules(o: DurableOutbox, e: &'static str) {
    assert!(o.chat_rules().await.unwrap().is_empty(), "{e}");
    let mut lapsing = rule("b", "x", "{}");
    lapsing.until = Some(99);
    lapsing.kind = "mute".into();
    let rules = vec![rule("b", "z", "{}"), lapsing.clone(), rule("a", "y", "{}")];
    o.change_rules(RuleChange::PutAll(rules)).await.unwrap();
    let got = o.chat_rules().await.unwrap();
    assert_eq!(
        got,
        [rule("a", "y", "{}"), lapsing, rule("b", "z", "{}")],
        "{e}: by chat, kind, subject"
    );
}

async fn last_posts(o: DurableOutbox, e: &'static str) {
    let t = now();
    assert!(o.last_posts().await.unwrap().is_empty(), "{e}");
    o.enqueue_at(message("r1", "ops", "a", "x"), t)
        .await
        .unwrap();
    o.enqueue_at(message("r2", "dev", "a", "x"), t)
        .await
        .unwrap();
    lease_one_and(&o, "ops", t, Outcome::Sent).await;
    lease_one_and(&o, "dev", t, dead()).await;
    let posts = o.last_posts().await.unwrap();
    assert_eq!(posts.len(), 1, "{e}: {posts:?}");
    assert!(posts[0].0 == "ops" && posts[0].1 >= t, "{e}: {posts:?}");
}

async fn received_at(o: DurableOutbox, e: &'static str) {
    let t = now();
    stored(&o, "k1", t).await;
    assert_eq!(o.received_at("k1").await.unwrap(), Some(t), "{e}");
    assert_eq!(o.received_at("k2").await.unwrap(), None, "{e}");
}

async fn reminder_run(o: DurableOutbox, e: &'static str) {
    let t = now();
    let card = |n: &str| {
        message(
            &format!("reminder-reviews-{n}"),
            "ops",
            "reminder/reviews",
            n,
        )
    };
    // The first ask claims the run and queues its card; asking again (a restart, another
    // replica) or for an earlier instant changes nothing.
    assert!(
        o.reminder_run("reviews", 1_000, card("first"))
            .await
            .unwrap(),
        "{e}"
    );
    assert!(
        !o.reminder_run("reviews", 1_000, card("again"))
            .await
            .unwrap(),
        "{e}"
    );
    assert!(
        !o.reminder_run("reviews", 999, card("older")).await.unwrap(),
        "{e}"
    );
    assert_eq!(bodies(&o, "ops", t).await, vec!["first"], "{e}");
    // A later instant runs; a run with no messages (nothing waits, or missed) is recorded too.
    let empty = gitlab_chat_bridge::deliver::Batch {
        dedupe_key: None,
        request_id: "reminder-reviews-empty".into(),
        deliveries: Vec::new(),
    };
    assert!(
        o.reminder_run("reviews", 2_000, empty).await.unwrap(),
        "{e}"
    );
    assert!(
        !o.reminder_run("reviews", 2_000, card("late"))
            .await
            .unwrap(),
        "{e}"
    );
    // Reminders are independent.
    assert!(
        o.reminder_run("other", 1_000, card("other")).await.unwrap(),
        "{e}"
    );
    assert_eq!(
        o.reminder_runs().await.unwrap(),
        vec![("other".to_string(), 1_000), ("reviews".to_string(), 2_000)],
        "{e}"
    );
}

async fn reminder_runs(o: DurableOutbox, e: &'static str) {
    assert!(o.reminder_runs().await.unwrap().is_empty(), "{e}");
    let none = |n: &str| gitlab_chat_bridge::deliver::Batch {
        dedupe_key: None,
        request_id: n.into(),
        deliveries: Vec::new(),
    };
    o.reminder_run("b", 7, none("1")).await.unwrap();
    o.reminder_run("a", 5, none("2")).await.unwrap();
    o.reminder_run("a", 9, none("3")).await.unwrap();
    assert_eq!(
        o.reminder_runs().await.unwrap(),
        vec![("a".to_string(), 9), ("b".to_string(), 7)],
        "{e}: by name, the latest run"
    );
}

async fn retry_dead(o: DurableOutbox, e: &'static str) {
    let t = now();
    o.enqueue_at(message("r1", "ops", "a", "a1"), t)
        .await
        .unwrap();
    o.enqueue_at(message("r2", "ops", "a", "a2"), t)
        .await
        .unwrap();
    let a1 = lease_one_and(&o, "ops", t, dead()).await;
    let a2 = o.list(false, 10).await.unwrap()[0].id;
    assert_eq!(
        o.retry_dead(a2).await.unwrap(),
        None,
        "{e}: pending, not dead"
    );
    assert_eq!(
        o.retry_dead(a1).await.unwrap().as_deref(),
        Some("ops"),
        "{e}"
    );
    assert_eq!(
        o.retry_dead(a1).await.unwrap(),
        None,
        "{e}: not dead any more"
    );
    let again = o.lease("ops", now(), 30_000, 0, 8).await.unwrap().messages;
    let got: Vec<(i64, u32)> = again.iter().map(|m| (m.id, m.attempts)).collect();
    assert_eq!(
        got,
        [(a1, 0)],
        "{e}: its object's head again, from its first attempt"
    );
}

async fn list(o: DurableOutbox, e: &'static str) {
    let t = now();
    for i in 0..3 {
        o.enqueue_at(message(&format!("r{i}"), "ops", &format!("o{i}"), "x"), t)
            .await
            .unwrap();
    }
    lease_one_and(&o, "ops", t, dead()).await;
    lease_one_and(&o, "ops", t, Outcome::Sent).await;
    let all: Vec<(String, String)> = o
        .list(false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.delivery_id, r.state))
        .collect();
    assert_eq!(
        all,
        [
            ("r2/ops".to_string(), "pending".to_string()),
            ("r0/ops".to_string(), "dead".to_string())
        ],
        "{e}: not sent ones, newest first"
    );
    let dead_only = o.list(true, 10).await.unwrap();
    assert_eq!(dead_only.len(), 1, "{e}");
    assert_eq!(
        (
            dead_only[0].last_status,
            dead_only[0].last_error.as_deref(),
            dead_only[0].attempts
        ),
        (Some(400), Some("bad card"), 1),
        "{e}"
    );
    assert_eq!(o.list(false, 1).await.unwrap().len(), 1, "{e}: limit");
}

async fn retry_all_dead(o: DurableOutbox, e: &'static str) {
    let t = now();
    for (i, body) in ["a1", "a2", "a3"].iter().enumerate() {
        o.enqueue_at(message(&format!("r{i}"), "ops", "a", body), t)
            .await
            .unwrap();
    }
    o.enqueue_at(message("r9", "dev", "b", "b1"), t)
        .await
        .unwrap();
    lease_one_and(&o, "ops", t, dead()).await;
    lease_one_and(&o, "ops", t, dead()).await;
    lease_one_and(&o, "dev", t, dead()).await;
    assert_eq!(o.retry_all_dead().await.unwrap(), 3, "{e}");
    assert_eq!(o.retry_all_dead().await.unwrap(), 0, "{e}");
    let later = now();
    assert_eq!(
        bodies(&o, "ops", later).await,
        ["a1"],
        "{e}: the oldest of its object first"
    );
    assert_eq!(bodies(&o, "dev", later).await, ["b1"], "{e}");
}

async fn purge_dead(o: DurableOutbox, e: &'static str) {
    let t = now();
    o.enqueue_at(message("r1", "ops", "a", "x"), t)
        .await
        .unwrap();
    o.enqueue_at(message("r2", "ops", "b", "x"), t)
        .await
        .unwrap();
    lease_one_and(&o, "ops", t, dead()).await;
    assert_eq!(
        o.purge_dead(t).await.unwrap(),
        0,
        "{e}: not older than that"
    );
    assert_eq!(o.purge_dead(t + 1).await.unwrap(), 1, "{e}");
    let left: Vec<String> = o
        .list(false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(left, ["pending"], "{e}: pending messages are never purged");
}

async fn unrouted_count(o: DurableOutbox, e: &'static str) {
    let t = now();
    assert_eq!(o.unrouted_count().await.unwrap(), 0, "{e}");
    let a = stored(&o, "a", t).await;
    stored(&o, "b", t).await;
    assert_eq!(o.unrouted_count().await.unwrap(), 2, "{e}");
    o.routed(vec![routing(a, "push", "g/p", &[])])
        .await
        .unwrap();
    assert_eq!(o.unrouted_count().await.unwrap(), 1, "{e}");
}

async fn list_events(o: DurableOutbox, e: &'static str) {
    let t = now();
    let a = stored(&o, "a", t - 5_000).await;
    let b = stored(&o, "b", t).await;
    let c = stored(&o, "c", t).await;
    o.routed(vec![
        routing(a, "issue.open", "group/app", &[]),
        routing(b, "push", "group/lib", &[]),
    ])
    .await
    .unwrap();
    let ids = |rows: Vec<gitlab_chat_bridge::deliver::store::EventRow>| -> Vec<i64> {
        rows.into_iter().map(|r| r.id).collect()
    };
    let all = EventFilter {
        limit: 10,
        ..EventFilter::default()
    };
    assert_eq!(
        ids(o.list_events(all.clone()).await.unwrap()),
        [c, b, a],
        "{e}: newest first"
    );
    let kind = EventFilter {
        kind: Some("issue".into()),
        ..all.clone()
    };
    assert_eq!(ids(o.list_events(kind).await.unwrap()), [a], "{e}");
    let project = EventFilter {
        project: Some("oup/li".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(o.list_events(project).await.unwrap()),
        [b],
        "{e}: a part of the path"
    );
    let since = EventFilter {
        since: Some(t),
        ..all.clone()
    };
    assert_eq!(ids(o.list_events(since).await.unwrap()), [c, b], "{e}");
    let one = EventFilter { limit: 1, ..all };
    let rows = o.list_events(one).await.unwrap();
    assert_eq!(
        (rows[0].id, rows[0].state.as_str(), rows[0].key.as_deref()),
        (c, "new", None),
        "{e}"
    );
}

async fn event(o: DurableOutbox, e: &'static str) {
    let t = now();
    let big = RawEvent {
        body: format!("{{\"description\":\"{}\"}}", "abc ".repeat(2000)).into_bytes(),
        ..keyed("big", "{}")
    };
    let Ingested::Accepted(id) = o.ingest_at(big.clone(), t).await.unwrap() else {
        panic!("{e}: not stored")
    };
    let back = o.event(id).await.unwrap().unwrap();
    assert_eq!(
        (back.id, back.received_at, back.replay_of),
        (id, t, None),
        "{e}"
    );
    assert_eq!(back.raw, big, "{e}: as received");
    assert!(o.event(id + 100).await.unwrap().is_none(), "{e}");
}

async fn event_row(o: DurableOutbox, e: &'static str) {
    let t = now();
    let id = stored(&o, "k", t).await;
    let row = o.event_row(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.received_at,
            row.state.as_str(),
            row.kind,
            row.outcome,
            row.request_id.as_str()
        ),
        (t, "new", None, None, "k"),
        "{e}"
    );
    o.routed(vec![routing(id, "merge_request.open", "g/p", &[])])
        .await
        .unwrap();
    let row = o.event_row(id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.kind.as_deref(),
            row.key.as_deref(),
            row.replay_of
        ),
        (
            "routed",
            Some("merge_request"),
            Some("merge_request.open"),
            None
        ),
        "{e}"
    );
    assert!(o.event_row(id + 100).await.unwrap().is_none(), "{e}");
}

async fn event_messages(o: DurableOutbox, e: &'static str) {
    // On the outbox's own clock, which stamps the send: a fresh clock's reading can be a
    // millisecond ahead of it (each rounds its base and its elapsed time down).
    let t = o.clock().now_ms();
    let id = stored(&o, "k", t).await;
    let r = routing(id, "push", "g/p", &[("ops", "a", "x"), ("dev", "a", "y")]);
    o.routed(vec![r]).await.unwrap();
    lease_one_and(&o, "ops", now(), Outcome::Sent).await;
    let m = o.event_messages(id).await.unwrap();
    let got: Vec<(&str, &str, u32)> = m
        .iter()
        .map(|m| (m.channel.as_str(), m.state.as_str(), m.attempts))
        .collect();
    assert_eq!(
        got,
        [("ops", "sent", 1), ("dev", "pending", 0)],
        "{e}: oldest first"
    );
    assert!(
        m[0].next_at >= t,
        "{e}: a sent message's time is when it was sent"
    );
    assert_eq!(m[1].delivery_id, format!("req-{id}/dev"), "{e}");
    assert!(o.event_messages(id + 100).await.unwrap().is_empty(), "{e}");
}

async fn event_ids_since(o: DurableOutbox, e: &'static str) {
    let t = now();
    let old = stored(&o, "old", t - 10_000).await;
    let a = stored(&o, "a", t).await;
    let b = stored(&o, "b", t + 1).await;
    let of = o.event(a).await.unwrap().unwrap();
    o.replay(of, routing(0, "push", "g/p", &[]), t + 2)
        .await
        .unwrap();
    assert_eq!(
        o.event_ids_since(t).await.unwrap(),
        [a, b],
        "{e}: replays left out"
    );
    assert_eq!(o.event_ids_since(0).await.unwrap(), [old, a, b], "{e}");
}

async fn replay(o: DurableOutbox, e: &'static str) {
    let t = now();
    o.enqueue_at(message("before", "ops", "issue-1", "earlier"), t)
        .await
        .unwrap();
    let id = stored(&o, "orig", t).await;
    let of = o.event(id).await.unwrap().unwrap();
    let mut r = routing(0, "issue.open", "g/p", &[("ops", "issue-1", "replayed")]);
    r.request_id = "replay-1".into();
    let new = o.replay(of.clone(), r, t + 5).await.unwrap();
    assert!(new > id, "{e}");
    let row = o.event_row(new).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state.as_str(),
            row.replay_of,
            row.request_id.as_str(),
            row.key.as_deref()
        ),
        ("routed", Some(id), "replay-1", Some("issue.open")),
        "{e}"
    );
    let back = o.event(new).await.unwrap().unwrap();
    assert_eq!(
        (back.raw.body, back.raw.dedupe_key),
        (of.raw.body, None),
        "{e}: not deduplicated"
    );
    assert_eq!(
        o.unrouted_count().await.unwrap(),
        1,
        "{e}: only the original waits for the router"
    );
    let m = o.event_messages(new).await.unwrap();
    assert_eq!(
        (m.len(), m[0].delivery_id.as_str()),
        (1, "req-0/ops"),
        "{e}"
    );
    // Queued behind what its object already had.
    assert_eq!(bodies(&o, "ops", t + 5).await, ["earlier"], "{e}");
}

async fn router_reads(o: DurableOutbox, e: &'static str) {
    let id = stored(&o, "k", now()).await;
    // Two at once (a router stage restarted while the old one ends) each read on their own.
    let (r1, r2) = (o.router_reads().unwrap(), o.router_reads().unwrap());
    let (n1, rules) = tokio::task::spawn_blocking(move || {
        (
            r1.new_events(0, 10).unwrap().len(),
            r2.chat_rules().unwrap().len(),
        )
    })
    .await
    .unwrap();
    assert_eq!((n1, rules), (1, 0), "{e}: event {id}");
}

async fn leads(o: DurableOutbox, e: &'static str) {
    stored(&o, "k", now()).await;
    let reads = o.router_reads().unwrap();
    let (n, reads) =
        tokio::task::spawn_blocking(move || (reads.new_events(0, 10).unwrap().len(), reads))
            .await
            .unwrap();
    assert_eq!(n, 1, "{e}");
    assert!(
        o.leads(),
        "{e}: the process whose router reads the events leads"
    );
    drop(reads);
}

async fn shared_window(o: DurableOutbox, e: &'static str) {
    match o.shared_window() {
        None => assert_eq!(e, "sqlite", "a store of one process shares no window"),
        Some(w) => {
            assert_eq!(e, "postgres");
            let go = w.take_slot("cred", 1).await.unwrap();
            assert_eq!(go, gitlab_chat_bridge::deliver::engine::Slot::Go);
            assert!(matches!(
                w.take_slot("cred", 1).await.unwrap(),
                gitlab_chat_bridge::deliver::engine::Slot::Wait(_)
            ));
        }
    }
}

async fn reads_new_events(o: DurableOutbox, e: &'static str) {
    let t = now();
    let a = stored(&o, "a", t).await;
    let b = stored(&o, "b", t).await;
    let c = stored(&o, "c", t).await;
    o.routed(vec![routing(a, "push", "g/p", &[])])
        .await
        .unwrap();
    let got = with_reads(&o, |r| {
        let ids = |v: Vec<gitlab_chat_bridge::deliver::store::StoredEvent>| -> Vec<i64> {
            v.into_iter().map(|e| e.id).collect()
        };
        (
            ids(r.new_events(0, 10).unwrap()),
            ids(r.new_events(0, 1).unwrap()),
        )
    })
    .await;
    assert_eq!(
        got,
        (vec![b, c], vec![b]),
        "{e}: new ones only, oldest first, at most the limit"
    );
}

async fn reads_chat_rules(o: DurableOutbox, e: &'static str) {
    let rules = vec![rule("b", "x", "{}"), rule("a", "y", "{}")];
    o.change_rules(RuleChange::PutAll(rules)).await.unwrap();
    let got = with_reads(&o, |r| r.chat_rules().unwrap()).await;
    assert_eq!(got, [rule("a", "y", "{}"), rule("b", "x", "{}")], "{e}");
}

async fn reads_memory(o: DurableOutbox, e: &'static str) {
    let t = now();
    let a = stored(&o, "a", t).await;
    let b = stored(&o, "b", t).await;
    let mut ra = routing(a, "pipeline", "g/p", &[]);
    ra.memory = vec![("pipeline:g/p:main".into(), "failed".into())];
    let mut rb = routing(b, "pipeline", "g/p", &[]);
    rb.memory = vec![("pipeline:g/p:main".into(), "success".into())];
    o.routed(vec![ra]).await.unwrap();
    o.routed(vec![rb]).await.unwrap();
    let got = with_reads(&o, |r| {
        (
            r.memory("pipeline:g/p:main").unwrap(),
            r.memory("other").unwrap(),
        )
    })
    .await;
    assert_eq!(
        got,
        (Some("success".to_string()), None),
        "{e}: the last value remembered"
    );
}
