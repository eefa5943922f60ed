//! The PostgreSQL test harness (`support::postgres`): a throw-away cluster serves on loopback,
//! logs the daemon's user in over TCP with its password and refuses a wrong one, and leaves
//! nothing behind (no server on its port, no folder). The PostgreSQL store (`deliver::pg`) on
//! such a cluster: two replicas starting at once on an empty database migrate it once, and a
//! database migrated by a newer release is refused; a webhook's `Idempotency-Key` received by
//! two replicas at once is stored once.

use crate::support::postgres::{Cluster, PASSWORD};
use crate::support::turn;
use gitlab_chat_bridge::deliver::pg::{self, Migrated, PgError, SCHEMA_VERSION};
use gitlab_chat_bridge::deliver::store::{Ingested, RawEvent};
use std::net::TcpStream;

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
        "chat_rules,dedupe,event_bodies,events,messages,rate_credentials,rate_posts,\
         router_memory,schema_version"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_received_by_two_replicas_at_once_is_stored_once() {
    let _turn = turn::shared_async().await;
    let cluster = Cluster::start("dedupe");
    let db = cluster.create_database();
    let (mut a, mut b) = (cluster.client(&db).await, cluster.client(&db).await);
    pg::migrate(&mut a).await.unwrap();
    let count = |table: &str| cluster.psql(&db, &format!("SELECT count(*) FROM {table}"));
    let window = 60_000;
    let mut accepted = 0;
    for round in 0..20 {
        let ev = webhook(Some(&format!("key-{round}")), r#"{"object_kind":"push"}"#).encode();
        let now = 1_000_000 + round;
        let (ra, rb) = tokio::join!(
            pg::ingest(&mut a, &ev, now, now - window),
            pg::ingest(&mut b, &ev, now, now - window)
        );
        let answers = [ra.unwrap(), rb.unwrap()];
        let stored = answers
            .iter()
            .filter(|i| matches!(i, Ingested::Accepted(_)))
            .count();
        assert_eq!(stored, 1, "round {round}: {answers:?}");
        assert!(answers.contains(&Ingested::Duplicate), "{answers:?}");
        accepted += stored;
    }
    assert_eq!(count("events").trim(), accepted.to_string());
    assert_eq!(count("event_bodies").trim(), accepted.to_string());

    // After the window the key is new again; a delivery without a key is never a duplicate.
    let again = webhook(Some("key-0"), "{}").encode();
    let later = 1_000_000 + window + 1;
    assert!(matches!(
        pg::ingest(&mut a, &again, later, later - window)
            .await
            .unwrap(),
        Ingested::Accepted(_)
    ));
    let keyless = webhook(None, "{}").encode();
    for _ in 0..2 {
        assert!(matches!(
            pg::ingest(&mut b, &keyless, later, later - window)
                .await
                .unwrap(),
            Ingested::Accepted(_)
        ));
    }
    assert_eq!(count("events").trim(), (accepted + 3).to_string());
    assert_eq!(
        cluster
            .psql(&db, "SELECT headers FROM event_bodies ORDER BY id LIMIT 1")
            .trim(),
        r#"{"x-gitlab-event":"Push Hook"}"#
    );
}
