//! The PostgreSQL test harness (`support::postgres`): a throw-away cluster serves on loopback,
//! logs the daemon's user in over TCP with its password and refuses a wrong one, and leaves
//! nothing behind (no server on its port, no folder). The PostgreSQL store (`deliver::pg`) on
//! such a cluster: two replicas starting at once on an empty database migrate it once, and a
//! database migrated by a newer release is refused. The store's behaviour through
//! `DurableOutbox`, the same test run on SQLite and on PostgreSQL (dedupe, per-object order,
//! digests, dead letters, chat rules, the router's reads); and what only replicas meet, on two
//! engines sharing one database: a key received by both at once is stored once, two workers
//! of one channel never hold one object's messages at once, an expired lease is taken over and
//! the old holder's outcome ignored, one router at a time, the rate window shared, and a
//! message routed on one replica posted by another's worker at once (woken by the commit's
//! notification, not its poll). Every
//! store operation's behaviour, on both engines ([`operations`]). The operator's commands
//! (`outbox`, `events`, `render --event-id`, `subscriptions`) on the shared database, with no
//! replica running its router; the preview page's stored events on both engines.

mod operations;

use crate::support::postgres::{Cluster, PASSWORD};
use crate::support::turn;
use gitlab_chat_bridge::deliver::clock::Clock;
use gitlab_chat_bridge::deliver::durable::{DurableOutbox, DurableSettings};
use gitlab_chat_bridge::deliver::engine::Slot;
use gitlab_chat_bridge::deliver::pg::PgOptions;
use gitlab_chat_bridge::deliver::pg::{self, Migrated, PgError, SCHEMA_VERSION};
use gitlab_chat_bridge::deliver::store::{
    ChatRule, EventFilter, Ingested, Outcome, RawEvent, RuleChange,
};
use gitlab_chat_bridge::deliver::{Batch, Delivery, Enqueued, Outbox};
use gitlab_chat_bridge::secret::Secret;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn a_throwaway_cluster_serves_on_loopback_and_is_removed() {
    let _turn = turn::shared();
    let cluster = Cluster::start("harness");
    let db = cluster.create_database();
    cluster.psql(
        &db,
        "CREATE TABLE t (n INT); INSERT INTO t VALUES (40), (2)",
    );
    assert_eq!(cluster.psql(&db, "SELECT sum(n) FROM t").trim(), "42");
    assert!(cluster.url(&db).starts_with("postgres://bridge@127.0.0.1:"));

    let ok = cluster.psql_tcp(&db, PASSWORD, "SELECT count(*) FROM t");
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "2");
    let refused = cluster.psql_tcp(&db, "not-the-password", "SELECT 1");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password authentication failed"),
        "{refused:?}"
    );

    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    drop(cluster);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a server still listens on port {port}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_at_once_migrate_an_empty_database_once() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("migrate");
    let db = cluster.create_database();
    let (mut a, mut b) = (cluster.client(&db).await, cluster.client(&db).await);
    let (ra, rb) = tokio::join!(pg::migrate(&mut a), pg::migrate(&mut b));
    let mut both = [ra.unwrap(), rb.unwrap()];
    both.sort_by_key(|m| m.from);
    let done = Migrated {
        from: SCHEMA_VERSION,
        to: SCHEMA_VERSION,
    };
    // One migrated from nothing, the other waited on the lock and found the schema current.
    assert_eq!(
        both,
        [
            Migrated {
                from: 0,
                to: SCHEMA_VERSION
            },
            done
        ]
    );
    assert_eq!(
        cluster
            .psql(&db, "SELECT version FROM schema_version")
            .trim(),
        SCHEMA_VERSION.to_string()
    );
    let tables = cluster.psql(
        &db,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
         WHERE schemaname = 'public'",
    );
    assert_eq!(
        tables.trim(),
        "chat_rules,conversations,dedupe,event_bodies,events,messages,rate_credentials,rate_posts,\
         reminder_runs,router_memory,schema_version"
    );
    // A restart finds nothing to do.
    assert_eq!(pg::migrate(&mut a).await.unwrap(), done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_release_is_refused() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("too-new");
    let db = cluster.create_database();
    let mut client = cluster.client(&db).await;
    pg::migrate(&mut client).await.unwrap();
    let newer = SCHEMA_VERSION + 1;
    cluster.psql(&db, &format!("UPDATE schema_version SET version = {newer}"));
    let err = pg::migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(err, PgError::TooNew { found, known } if found == newer && known == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("run the newer release"), "{err}");
    // The lock was released: another replica is refused the same way instead of waiting.
    let mut other = cluster.client(&db).await;
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), pg::migrate(&mut other))
        .await
        .expect("the migration lock was left held");
    assert!(matches!(again, Err(PgError::TooNew { .. })), "{again:?}");
}

fn webhook(key: Option<&str>, body: &str) -> RawEvent {
    RawEvent {
        request_id: key.unwrap_or("no-key").to_string(),
        dedupe_key: key.map(str::to_string),
        headers: vec![("x-gitlab-event".into(), "Push Hook".into())],
        body: body.as_bytes().to_vec(),
    }
}

const WINDOW_MS: i64 = 60_000;
const CHANNELS: [&str; 2] = ["ops", "dev"];

/// A replica's outbox on `db` of `cluster`, named `owner`.
async fn replica(cluster: &Cluster, db: &str, owner: &str) -> DurableOutbox {
    let opts = PgOptions {
        url: cluster.url(db),
        password: Some(Secret::new(PASSWORD)),
        ca_file: None,
        pool_size: 4,
        owner: owner.to_string(),
    };
    let names: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
    DurableOutbox::open_postgres(&opts, WINDOW_MS, &names, Clock::new())
        .await
        .unwrap()
        .0
}

/// The engines a behaviour test runs on: SQLite in `dir`, and PostgreSQL on a fresh database
/// of `cluster`. The SQLite writer's thread ends with its handles.
async fn engines(cluster: &Cluster, dir: &std::path::Path) -> Vec<(&'static str, DurableOutbox)> {
    let names: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
    let (sqlite, _thread) = DurableOutbox::open(
        &dir.join("outbox.sqlite"),
        DurableSettings {
            dedupe_window_ms: WINDOW_MS,
            full_sync: false,
        },
        &names,
        Clock::new(),
    )
    .unwrap();
    let db = cluster.create_database();
    vec![
        ("sqlite", sqlite),
        ("postgres", replica(cluster, &db, "a").await),
    ]
}

fn message(request: &str, channel: &str, object: &str, body: &str) -> Batch {
    Batch {
        dedupe_key: None,
        request_id: request.to_string(),
        deliveries: vec![Delivery {
            id: format!("{request}/{channel}"),
            channel: channel.to_string(),
            ordering_key: object.to_string(),
            body: body.to_string(),
        }],
    }
}

/// Bodies leased now on `channel` (one by one, up to `max`), without recording them.
async fn lease_bodies(o: &DurableOutbox, channel: &str, now: i64, max: usize) -> Vec<String> {
    let a = o.lease(channel, now, 30_000, 0, max).await.unwrap();
    assert!(!a.digest);
    a.messages.into_iter().map(|m| m.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_keep_per_object_order_digests_dead_letters_and_rules() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("engines");
    let dir = crate::support::temp::TempDir::new("engines");
    for (engine, o) in engines(&cluster, dir.path()).await {
        let now = 10_000_000;
        // Dedupe: a key within the window is a duplicate, a key-less delivery never is.
        let first = o.ingest_at(webhook(Some("k1"), "{}"), now).await.unwrap();
        assert!(matches!(first, Ingested::Accepted(_)), "{engine}");
        let again = o
            .ingest_at(webhook(Some("k1"), "{}"), now + 5)
            .await
            .unwrap();
        assert_eq!(again, Ingested::Duplicate, "{engine}");
        assert_eq!(o.received_at("k1").await.unwrap(), Some(now), "{engine}");
        let mut keyed = message("r0", "ops", "mr-1", "x");
        keyed.dedupe_key = Some("batch-key".into());
        assert_eq!(
            o.enqueue_at(keyed.clone(), now).await.unwrap(),
            Enqueued::Accepted
        );
        assert_eq!(
            o.enqueue_at(keyed, now + 1).await.unwrap(),
            Enqueued::Duplicate
        );
        let a = o.lease("ops", now, 30_000, 0, 8).await.unwrap();
        for m in a.messages {
            o.record(m.id, Outcome::Sent).await.unwrap();
        }

        // Per-object order: only each object's oldest pending message is leasable.
        for (i, (object, body)) in [
            ("mr-1", "a1"),
            ("mr-1", "a2"),
            ("mr-2", "b1"),
            ("mr-1", "a3"),
        ]
        .into_iter()
        .enumerate()
        {
            o.enqueue_at(message(&format!("r{}", i + 1), "ops", object, body), now)
                .await
                .unwrap();
        }
        let leased = o.lease("ops", now, 30_000, 0, 8).await.unwrap();
        let bodies: Vec<&str> = leased.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["a1", "b1"], "{engine}: heads only, oldest first");
        assert!(
            lease_bodies(&o, "ops", now, 8).await.is_empty(),
            "{engine}: leased ones wait"
        );
        // A retry keeps its object blocked; a sent head lets the next one of its object go.
        let (a1, b1) = (&leased.messages[0], &leased.messages[1]);
        o.record(
            a1.id,
            Outcome::Retry {
                next_at: now + 1_000,
                status: Some(503),
                error: "busy".into(),
            },
        )
        .await
        .unwrap();
        o.record(b1.id, Outcome::Sent).await.unwrap();
        assert!(
            lease_bodies(&o, "ops", now + 10, 8).await.is_empty(),
            "{engine}"
        );
        let next = o.lease("ops", now + 10, 30_000, 0, 8).await.unwrap();
        assert_eq!(next.next_due, Some(now + 1_000), "{engine}");
        let retried = o.lease("ops", now + 1_000, 30_000, 0, 8).await.unwrap();
        assert_eq!(retried.messages.len(), 1, "{engine}");
        assert_eq!(retried.messages[0].attempts, 1, "{engine}");
        // Dead: the next of its object becomes due; the dead letter can be retried once.
        let dead_id = retried.messages[0].id;
        o.record(
            dead_id,
            Outcome::Dead {
                status: Some(400),
                error: "bad".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            lease_bodies(&o, "ops", now + 1_000, 8).await,
            ["a2"],
            "{engine}"
        );
        assert_eq!(o.retry_dead(dead_id).await.unwrap().as_deref(), Some("ops"));
        assert_eq!(
            o.retry_dead(dead_id).await.unwrap(),
            None,
            "{engine}: not dead any more"
        );
        let stats: Vec<(String, u64, u64, u64)> = Outbox::stats(&o)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.channel, s.pending, s.retrying, s.dead))
            .collect();
        assert_eq!(
            stats,
            [("ops".to_string(), 3, 0, 0)],
            "{engine}: a1 a2 a3 pending"
        );
        assert!(
            o.last_posts()
                .await
                .unwrap()
                .iter()
                .any(|(c, _)| c == "ops"),
            "{engine}"
        );

        // Digest: more due than the budget → the oldest never-tried ones at once.
        for i in 0..5 {
            o.enqueue_at(
                message(&format!("d{i}"), "dev", &format!("o{i}"), &format!("d{i}")),
                now,
            )
            .await
            .unwrap();
        }
        let d = o.lease("dev", now, 30_000, 3, 8).await.unwrap();
        assert!(d.digest, "{engine}");
        let bodies: Vec<&str> = d.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["d0", "d1", "d2", "d3", "d4"], "{engine}");
        let undigested = o.lease("dev", now, 30_000, 8, 8).await.unwrap();
        assert!(
            undigested.messages.is_empty(),
            "{engine}: all leased by the digest"
        );

        // Chat rules.
        let rule = |subject: &str| ChatRule {
            chat: "c1".into(),
            kind: "subscribe".into(),
            subject: subject.into(),
            spec: "{}".into(),
            until: None,
            created_by: "ann".into(),
            created_at: now,
        };
        let put = RuleChange::PutAll(vec![rule("g/a"), rule("g/b")]);
        assert_eq!(o.change_rules(put).await.unwrap(), 2, "{engine}");
        let gone = RuleChange::Delete {
            chat: "c1".into(),
            kind: "subscribe".into(),
            subject: "g/a".into(),
        };
        assert_eq!(o.change_rules(gone).await.unwrap(), 1, "{engine}");
        assert_eq!(o.chat_rules().await.unwrap(), vec![rule("g/b")], "{engine}");

        // The router's reads: the stored event, the rules.
        let reads = o.router_reads().unwrap();
        let (events, rules) = tokio::task::spawn_blocking(move || {
            (
                reads.new_events(0, 10).unwrap(),
                reads.chat_rules().unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(events.len(), 1, "{engine}");
        assert_eq!(events[0].raw.dedupe_key.as_deref(), Some("k1"), "{engine}");
        assert_eq!(events[0].raw.headers, webhook(None, "").headers, "{engine}");
        assert_eq!(rules.len(), 1, "{engine}");
        Outbox::ping(&o).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_dedupe_order_leases_routing_and_the_rate_window() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("replicas");
    let db = cluster.create_database();
    let (a, b) = tokio::join!(replica(&cluster, &db, "a"), replica(&cluster, &db, "b"));
    let count = |table: &str| cluster.psql(&db, &format!("SELECT count(*) FROM {table}"));

    // One key received by both at once is stored once.
    let now = 1_000_000;
    for round in 0..20 {
        let ev = webhook(Some(&format!("key-{round}")), r#"{"object_kind":"push"}"#);
        let (ra, rb) = tokio::join!(a.ingest_at(ev.clone(), now), b.ingest_at(ev, now));
        let answers = [ra.unwrap(), rb.unwrap()];
        let stored = answers
            .iter()
            .filter(|i| matches!(i, Ingested::Accepted(_)))
            .count();
        assert_eq!(stored, 1, "round {round}: {answers:?}");
    }
    assert_eq!(count("events").trim(), "20");
    assert_eq!(count("event_bodies").trim(), "20");

    // One router at a time: the replica whose reads hold the router lock gets the events.
    let (ra, rb) = (a.router_reads().unwrap(), b.router_reads().unwrap());
    let (ra, rb, got_a, got_b) = tokio::task::spawn_blocking(move || {
        let got_a = ra.new_events(0, 100).unwrap().len();
        let got_b = rb.new_events(0, 100).unwrap().len();
        (ra, rb, got_a, got_b)
    })
    .await
    .unwrap();
    assert_eq!((got_a, got_b), (20, 0));
    assert!(a.leads() && !b.leads());
    drop(ra);
    let (got_b, rb) = tokio::task::spawn_blocking(move || {
        // The lock goes with the connection; the other replica takes it at its next read.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = rb.new_events(0, 100).unwrap().len();
            if n > 0 || std::time::Instant::now() > deadline {
                return (n, rb);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(got_b, 20, "the router lock was not handed over");
    assert!(b.leads());
    drop(rb);

    // Per-object order across replicas: one object's head is leased by one replica only.
    for (i, body) in ["x1", "x2", "x3"].iter().enumerate() {
        a.enqueue_at(message(&format!("x{i}"), "ops", "issue-7", body), now)
            .await
            .unwrap();
    }
    let (la, lb) = tokio::join!(
        a.lease("ops", now, 1_000, 0, 8),
        b.lease("ops", now, 1_000, 0, 8)
    );
    let (la, lb) = (la.unwrap().messages, lb.unwrap().messages);
    let mut bodies: Vec<&str> = la.iter().chain(&lb).map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["x1"], "one head, to one replica");
    let (holder, other) = if la.is_empty() { (&b, &a) } else { (&a, &b) };
    let x1 = la.iter().chain(&lb).next().unwrap().clone();

    // An expired lease is taken over, and the old holder's outcome is then ignored.
    assert!(lease_bodies(other, "ops", now + 500, 8).await.is_empty());
    let taken = other.lease("ops", now + 1_000, 1_000, 0, 8).await.unwrap();
    assert_eq!(
        taken.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [x1.id]
    );
    holder.record(x1.id, Outcome::Sent).await.unwrap();
    assert_eq!(
        cluster
            .psql(
                &db,
                &format!("SELECT state FROM messages WHERE id = {}", x1.id)
            )
            .trim(),
        "pending",
        "the outcome of a lost lease was recorded"
    );
    other.record(x1.id, Outcome::Sent).await.unwrap();
    assert_eq!(lease_bodies(holder, "ops", now + 1_000, 8).await, ["x2"]);

    // A replica restarting under its name releases the leases of its previous run at once.
    let held_by_a = a.lease("ops", now + 1_000, 3_600_000, 0, 8).await.unwrap();
    let held_by_b = b.lease("ops", now + 1_000, 3_600_000, 0, 8).await.unwrap();
    assert_eq!(
        held_by_a.messages.len() + held_by_b.messages.len(),
        0,
        "x2 is leased"
    );
    let name = if std::ptr::eq(holder, &a) { "a" } else { "b" };
    let again = replica(&cluster, &db, name).await;
    assert_eq!(lease_bodies(&again, "ops", now + 1_001, 8).await, ["x2"]);

    // A digest is leased by one replica at a time: two asking at once never share a message.
    for i in 0..6 {
        let body = format!("dg{i}");
        a.enqueue_at(message(&body, "dev", &format!("o{i}"), &body), now)
            .await
            .unwrap();
    }
    let (da, db_) = tokio::join!(
        a.lease("dev", now + 2_000, 30_000, 2, 8),
        b.lease("dev", now + 2_000, 30_000, 2, 8)
    );
    let (da, db_) = (da.unwrap(), db_.unwrap());
    let digested: Vec<&str> = [&da, &db_]
        .iter()
        .filter(|l| l.digest)
        .flat_map(|l| l.messages.iter().map(|m| m.body.as_str()))
        .collect();
    assert_eq!(
        digested,
        ["dg0", "dg1", "dg2", "dg3", "dg4", "dg5"],
        "one digest, whole"
    );
    let singles: usize = [&da, &db_]
        .iter()
        .filter(|l| !l.digest)
        .map(|l| l.messages.len())
        .sum();
    assert_eq!(
        singles, 0,
        "a message of the digest was leased on its own too"
    );

    // The rate window is shared: 5 a minute across both, then a wait of about a minute.
    let (wa, wb) = (a.shared_window().unwrap(), b.shared_window().unwrap());
    let mut goes = 0;
    for i in 0..8 {
        let w = if i % 2 == 0 { &wa } else { &wb };
        match w.take_slot("cred", 5).await.unwrap() {
            Slot::Go => goes += 1,
            Slot::Wait(d) => {
                assert!(
                    d > Duration::from_secs(55) && d <= Duration::from_secs(61),
                    "{d:?}"
                )
            }
        }
    }
    assert_eq!(goes, 5);
    assert_eq!(
        wa.take_slot("other", 5).await.unwrap(),
        Slot::Go,
        "per credential"
    );
    // A throttle answer on one replica pauses the credential on the other.
    wa.pause("other", Duration::from_secs(30)).await.unwrap();
    match wb.take_slot("other", 5).await.unwrap() {
        Slot::Wait(d) => assert!(d > Duration::from_secs(25), "{d:?}"),
        Slot::Go => panic!("the pause was not shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_command_reads_and_repairs_the_shared_database() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("outbox-cli");
    let db = cluster.create_database();
    let o = replica(&cluster, &db, "a").await;
    let now = Clock::new().now_ms();
    for (i, object) in ["mr-1", "mr-1", "mr-2"].iter().enumerate() {
        o.enqueue_at(message(&format!("req-{i}"), "ops", object, "{}"), now)
            .await
            .unwrap();
    }
    let leased = o.lease("ops", now, 30_000, 0, 8).await.unwrap().messages;
    assert_eq!(leased.len(), 2, "the heads of mr-1 and mr-2");
    for m in &leased {
        let dead = Outcome::Dead {
            status: Some(400),
            error: "invalid card".into(),
        };
        o.record(m.id, dead).await.unwrap();
    }
    let dir = crate::support::temp::TempDir::new("outbox-cli");
    dir.write("pg-password", PASSWORD);
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = 't'\n[outbox]\nurl = '{}?sslmode=disable'\n\
             password_file = 'pg-password'\n[[channels]]\nname = 'ops'\n\
             url = 'http://127.0.0.1:9/api/v2/channelsbyname/ops/message'\nzapikey = 'k'\n",
            cluster.url(&db)
        ),
    );
    let config = config.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec![args[0], "--config", &config];
        all.extend_from_slice(&args[1..]);
        crate::support::cli::run(&all)
    };
    let stats = run(&["outbox", "stats"]);
    assert_eq!(stats.code, Some(0), "{stats:?}");
    let row: Vec<&str> = stats
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["ops", "1", "0", "2"], "{}", stats.stdout);
    let list = run(&["outbox", "list", "--dead"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    assert_eq!(list.stdout.matches(" dead ").count(), 2, "{}", list.stdout);
    assert!(list.stdout.contains("req-2/ops") && list.stdout.contains("invalid card"));
    let retry = run(&["outbox", "retry", "--all-dead"]);
    assert_eq!(retry.code, Some(0), "{retry:?}");
    assert!(
        retry.stdout.contains("2 dead letter(s) will be retried"),
        "{retry:?}"
    );
    // Retried in order: mr-1's first message is its head again, before the one behind it.
    let later = Clock::new().now_ms();
    let again = o.lease("ops", later, 30_000, 0, 8).await.unwrap().messages;
    let ids: Vec<i64> = again.iter().map(|m| m.id).collect();
    assert_eq!(ids, leased.iter().map(|m| m.id).collect::<Vec<_>>());
    let purge = run(&["outbox", "purge", "--dead", "--older-than", "7d"]);
    assert_eq!(purge.code, Some(0), "{purge:?}");
    assert!(
        purge.stdout.contains("0 dead letter(s) purged"),
        "{purge:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_render_and_subscription_commands_work_on_the_shared_database() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("commands");
    let db = cluster.create_database();
    let o = replica(&cluster, &db, "a").await;
    let raw = RawEvent {
        request_id: "req-issue".into(),
        dedupe_key: Some("idem-issue".into()),
        headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
        body: crate::support::samples::bytes("issue__open.json"),
    };
    let Ingested::Accepted(id) = o.ingest_at(raw, Clock::new().now_ms()).await.unwrap() else {
        panic!("not stored")
    };
    let dir = crate::support::temp::TempDir::new("commands-cli");
    dir.write("pg-password", PASSWORD);
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = 't'\n[outbox]\nurl = '{}?sslmode=disable'\n\
             password_file = 'pg-password'\n[[channels]]\nname = 'ops'\n\
             url = 'http://127.0.0.1:9/api/v2/channelsbyname/ops/message'\nzapikey = 'k'\n",
            cluster.url(&db)
        ),
    );
    let config = config.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec![args[0], "--config", &config];
        all.extend_from_slice(&args[1..]);
        let out = crate::support::cli::run(&all);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        out.stdout
    };
    let id_s = id.to_string();

    let list = run(&["events", "list"]);
    assert!(
        list.lines().any(
            |l| l.trim_start().starts_with(&format!("{id} ")) && l.contains("(not routed yet)")
        ),
        "{list}"
    );
    assert!(list.ends_with("1 event(s)\n"), "{list}");
    let show = run(&["events", "show", &id_s]);
    assert!(show.contains("x-gitlab-event: Issue Hook"), "{show}");
    assert!(
        show.contains("routed: not yet") && show.contains("deliveries: 0"),
        "{show}"
    );
    let render = run(&["render", "--event-id", &id_s]);
    assert!(render.starts_with("==> ops <==\n"), "{render}");

    let dry = run(&["events", "replay", &id_s, "--dry-run"]);
    assert!(dry.contains("(dry run: nothing stored or posted)"), "{dry}");
    let all = EventFilter {
        limit: 10,
        ..EventFilter::default()
    };
    assert_eq!(
        o.list_events(all).await.unwrap().len(),
        1,
        "a dry run stores nothing"
    );
    let replayed = run(&["events", "replay", &id_s]);
    let new: i64 = replayed
        .split(" replayed as event ")
        .nth(1)
        .and_then(|t| t.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{replayed}"));
    let row = o.event_row(new).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.replay_of), ("routed", Some(id)));
    // The replay's message is the replicas' to post; no router took the original meanwhile.
    let leased = o.lease("ops", Clock::new().now_ms(), 30_000, 0, 8).await;
    let leased = leased.unwrap().messages;
    assert_eq!(leased.len(), 1, "{leased:?}");
    assert!(leased[0].delivery_id.starts_with("replay-"), "{leased:?}");
    assert_eq!(o.unrouted_count().await.unwrap(), 1);
    let stats = run(&["outbox", "stats"]);
    assert!(stats.contains("events waiting to be routed: 1"), "{stats}");

    let rules = dir.write(
        "rules.json",
        r#"[{"chat": "team-chat", "kind": "subscription", "subject": "g/p", "spec": "{}",
             "created_by": "cli", "created_at": 0}]"#,
    );
    let imported = run(&["subscriptions", "import", &rules.display().to_string()]);
    assert_eq!(imported, "imported 1 subscription(s) and mute(s)\n");
    assert_eq!(o.chat_rules().await.unwrap().len(), 1);
    let listed = run(&["subscriptions", "list"]);
    assert!(
        listed.starts_with("team-chat ") && listed.contains(" g/p "),
        "{listed}"
    );
    let exported: Vec<ChatRule> = serde_json::from_str(&run(&["subscriptions", "export"])).unwrap();
    assert_eq!(exported, o.chat_rules().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_page_lists_and_loads_stored_events_on_both_engines() {
    use gitlab_chat_bridge::preview::items;
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("preview");
    let dir = crate::support::temp::TempDir::new("preview-items");
    for (engine, o) in engines(&cluster, dir.path()).await {
        let raw = RawEvent {
            request_id: "req-issue".into(),
            dedupe_key: Some("idem-issue".into()),
            headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
            body: crate::support::samples::bytes("issue__open.json"),
        };
        let Ingested::Accepted(id) = o.ingest_at(raw, Clock::new().now_ms()).await.unwrap() else {
            panic!("{engine}: not stored")
        };
        // The page's handlers read on a blocking thread of the daemon's runtime.
        let (listed, newest, loaded) = tokio::task::spawn_blocking(move || {
            let listed = items::list(None, Some(&o));
            let newest = items::newest_event(Some(&o));
            let loaded = items::load(&format!("event:{id}"), None, Some(&o)).map(|e| e.key);
            let missing = items::load(&format!("event:{}", id + 1), None, Some(&o));
            assert!(
                matches!(missing, Err(items::ItemError::Unknown(_))),
                "{missing:?}"
            );
            (listed, newest, loaded)
        })
        .await
        .unwrap();
        assert!(
            listed.problems.is_empty(),
            "{engine}: {:?}",
            listed.problems
        );
        let events: Vec<(&str, &str)> = listed
            .events
            .iter()
            .map(|i| (i.id.as_str(), i.label.as_str()))
            .collect();
        let want = (format!("event:{id}"), format!("#{id} new"));
        assert_eq!(events, [(want.0.as_str(), want.1.as_str())], "{engine}");
        assert_eq!(newest, id, "{engine}");
        assert_eq!(loaded.unwrap().as_str(), "issue.open", "{engine}");
    }
}

/// Routes every event to `ops` as one message whose body is its request id.
struct ToOps;

impl gitlab_chat_bridge::deliver::router::EventRouter for ToOps {
    fn route(
        &self,
        event: &gitlab_chat_bridge::deliver::store::StoredEvent,
        _: &[ChatRule],
        _: &gitlab_chat_bridge::deliver::router::Memory<'_>,
    ) -> gitlab_chat_bridge::deliver::store::RoutedEvent {
        let request = &event.raw.request_id;
        gitlab_chat_bridge::deliver::store::RoutedEvent {
            event_id: event.id,
            request_id: request.clone(),
            kind: "push".into(),
            key: "push".into(),
            outcome: "queued 1".into(),
            deliveries: vec![Delivery {
                id: format!("{request}/ops"),
                channel: "ops".into(),
                ordering_key: request.clone(),
                body: request.clone(),
            }],
            ..Default::default()
        }
    }
}

/// A fake chat: each body with the time it arrived, in arrival order.
#[derive(Default)]
struct Arrivals(std::sync::Mutex<Vec<(String, std::time::Instant)>>);

impl gitlab_chat_bridge::deliver::worker::Post for Arrivals {
    fn post<'a>(
        &'a self,
        _: &'a gitlab_chat_bridge::deliver::Endpoint,
        _: &'a str,
        body: &'a str,
    ) -> gitlab_chat_bridge::deliver::BoxFuture<'a, gitlab_chat_bridge::deliver::sender::Attempt>
    {
        self.0
            .lock()
            .unwrap()
            .push((body.to_string(), std::time::Instant::now()));
        Box::pin(async { gitlab_chat_bridge::deliver::sender::Attempt::Delivered(204) })
    }
}

/// Webhooks of the cross-replica test.
const CROSS_MESSAGES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_routed_on_one_replica_is_posted_by_another_before_its_poll() {
    use gitlab_chat_bridge::deliver::rate::RateLimiter;
    use gitlab_chat_bridge::deliver::worker::{run_channel, Target, IDLE_POLL};
    use gitlab_chat_bridge::deliver::{router, Auth, Endpoint, RetryPolicy};
    use std::sync::Arc;
    use std::time::Instant;
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("cross-replica");
    let db = cluster.create_database();
    let (a, b) = tokio::join!(replica(&cluster, &db, "a"), replica(&cluster, &db, "b"));
    // A receives and routes (its router takes the lock); only B has a worker of `ops`, on the
    // shared rate window as `serve` gives it.
    let stop = tokio_util::sync::CancellationToken::new();
    let routing = router::spawn(a.clone(), Arc::new(ToOps), stop.clone()).unwrap();
    let chat = Arc::new(Arrivals::default());
    let target = Target {
        name: "ops".into(),
        endpoint: Endpoint {
            url: "http://127.0.0.1:9/unused".into(),
            auth: Auth::None,
        },
        limiter: Arc::new(RateLimiter::shared(
            100_000,
            "cross-replica",
            b.shared_window().unwrap(),
        )),
        digest: Arc::new(|bodies: &[&str]| (bodies[0].to_string(), 1)),
        dead_letters: None,
    };
    let worker = tokio::spawn(run_channel(
        target,
        b.clone(),
        chat.clone(),
        RetryPolicy::default(),
        Clock::new(),
        stop.clone(),
    ));
    // B's worker has found nothing and waits for its next poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acks = Vec::new();
    for i in 0..CROSS_MESSAGES {
        let key = format!("cross-{i}");
        let answer = a
            .ingest_at(webhook(Some(&key), "{}"), Clock::new().now_ms())
            .await
            .unwrap();
        assert!(matches!(answer, Ingested::Accepted(_)), "{key}: {answer:?}");
        acks.push((key, Instant::now()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + IDLE_POLL * 4;
    while chat.0.lock().unwrap().len() < CROSS_MESSAGES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    a.router_bell().ring();
    worker.await.unwrap();
    tokio::task::spawn_blocking(move || routing.join().unwrap())
        .await
        .unwrap();

    let arrived = chat.0.lock().unwrap().clone();
    let bodies: Vec<&str> = arrived.iter().map(|(b, _)| b.as_str()).collect();
    let sent: Vec<&str> = acks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(bodies, sent, "each posted once, in order, by replica B");
    // Woken by A's commit, not by its poll: polling alone would post none of them within half
    // the poll interval (5 s) of its acknowledgement. A generous bound for a loaded machine.
    let prompt = acks
        .iter()
        .zip(&arrived)
        .filter(|((_, ack), (_, at))| at.saturating_duration_since(*ack) < IDLE_POLL / 2)
        .count();
    assert!(
        prompt >= CROSS_MESSAGES * 9 / 10,
        "only {prompt} of {CROSS_MESSAGES} posted by the other replica within {:?} of their \
         acknowledgement",
        IDLE_POLL / 2
    );
}
