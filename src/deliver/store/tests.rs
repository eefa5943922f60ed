//! The SQLite store's own tests: the statements of each concern on one file, migrations from
//! old schemas.

use super::schema::MIGRATIONS;
use super::*;
use crate::deliver::{Batch, Delivery, Enqueued};

fn store() -> Store {
    store_named("main")
}

fn store_named(name: &str) -> Store {
    let dir = std::env::temp_dir().join(format!(
        "gcb-store-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    match Store::open(&dir.join("o.sqlite"), false) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn batch(key: &str, items: &[(&str, &str)]) -> Batch {
    Batch {
        dedupe_key: Some(key.into()),
        request_id: key.into(),
        deliveries: items
            .iter()
            .map(|(obj, body)| Delivery {
                id: format!("{key}/c"),
                channel: "c".into(),
                ordering_key: (*obj).into(),
                body: (*body).into(),
            })
            .collect(),
    }
}

#[test]
fn dedupe_ordering_retry_and_dead() -> Result<(), StoreError> {
    let mut s = store();
    let tx = s.transaction()?;
    assert_eq!(
        insert_batch(&tx, &batch("k1", &[("A", "a1")]), 0, 0)?,
        Enqueued::Accepted
    );
    assert_eq!(
        insert_batch(&tx, &batch("k1", &[("A", "a1")]), 1, 0)?,
        Enqueued::Duplicate
    );
    insert_batch(&tx, &batch("k2", &[("A", "a2"), ("B", "b1")]), 2, 0)?;
    // a1 first; while a1 is out, a2 waits but b1 goes.
    let a1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.body);
    assert_eq!(a1.as_deref(), Some("a1"));
    let b1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.body);
    assert_eq!(b1.as_deref(), Some("b1"));
    assert_eq!(lease_next(&tx, "c", 10, 1000)?, None);
    // a1 fails: it is retried later, and a2 still waits behind it.
    let id = tx.query_row("SELECT id FROM messages WHERE body = 'a1'", [], |r| {
        r.get(0)
    })?;
    record(
        &tx,
        id,
        &Outcome::Retry {
            next_at: 500,
            status: Some(503),
            error: "x".into(),
        },
        20,
    )?;
    assert_eq!(lease_next(&tx, "c", 20, 1000)?, None);
    let again = lease_next(&tx, "c", 500, 1000)?;
    assert_eq!(
        again.as_ref().map(|l| (l.body.as_str(), l.attempts)),
        Some(("a1", 1))
    );
    record(
        &tx,
        id,
        &Outcome::Dead {
            status: Some(404),
            error: "gone".into(),
        },
        550,
    )?;
    // Dead messages do not block their object.
    let a2 = lease_next(&tx, "c", 600, 1000)?.map(|l| l.body);
    assert_eq!(a2.as_deref(), Some("a2"));
    tx.commit()?;
    let stats = s.stats()?;
    assert_eq!((stats[0].dead, stats[0].pending), (1, 2));
    assert_eq!(s.list(true, 10)?[0].last_status, Some(404));
    assert_eq!(s.list(false, 10)?.len(), 3);
    assert_eq!(s.retry_dead(None, 700)?, 1);
    assert_eq!(s.purge_dead(i64::MAX)?, 0);
    Ok(())
}

#[test]
fn one_dead_letter_is_made_due_again_and_nothing_else() -> Result<(), StoreError> {
    let mut s = store_named("retry-one");
    let tx = s.transaction()?;
    insert_batch(&tx, &batch("k1", &[("A", "a1"), ("B", "b1")]), 1, 0)?;
    let a1 = lease_next(&tx, "c", 10, 1000)?.map(|l| l.id).unwrap_or(-1);
    let dead = Outcome::Dead {
        status: Some(400),
        error: "bad".into(),
    };
    record(&tx, a1, &dead, 20)?;
    // Not a dead letter (pending, or no such row): nothing changes.
    let b1: i64 = tx.query_row("SELECT id FROM messages WHERE body = 'b1'", [], |r| {
        r.get(0)
    })?;
    assert_eq!(retry_dead_one(&tx, b1, 30)?, None);
    assert_eq!(retry_dead_one(&tx, 9_999, 30)?, None);
    assert_eq!(retry_dead_one(&tx, a1, 30)?.as_deref(), Some("c"));
    assert_eq!(retry_dead_one(&tx, a1, 31)?, None, "no longer dead");
    let again = lease_next(&tx, "c", 30, 1000)?;
    assert_eq!(
        again.as_ref().map(|l| (l.id, l.attempts)),
        Some((a1, 0)),
        "due again, from its first attempt"
    );
    tx.commit()?;
    Ok(())
}

#[test]
fn digests_take_an_untried_due_prefix() -> Result<(), StoreError> {
    let mut s = store_named("prefix");
    let tx = s.transaction()?;
    for (k, obj) in [("p1", "A"), ("p2", "B"), ("p3", "A"), ("p4", "C")] {
        insert_batch(&tx, &batch(k, &[(obj, k)]), 0, 0)?;
    }
    assert_eq!(due_count(&tx, "c", 10, 100)?, 4);
    assert_eq!(due_count(&tx, "c", 10, 2)?, 2);
    let got: Vec<String> = lease_prefix(&tx, "c", 10, 1000, 3)?
        .into_iter()
        .map(|l| l.body)
        .collect();
    assert_eq!(got, ["p1", "p2", "p3"]);
    // Leased rows stop the next prefix; a lone row is not a digest.
    assert!(lease_prefix(&tx, "c", 10, 1000, 3)?.is_empty());
    Ok(())
}
fn raw(key: &str) -> RawEvent {
    RawEvent {
        request_id: format!("req-{key}"),
        dedupe_key: Some(key.into()),
        headers: vec![("x-gitlab-event".into(), "Issue Hook".into())],
        body: format!("{{\"n\":\"{key}\"}}").into_bytes(),
    }
}

#[test]
fn events_are_stored_once_routed_once_and_pruned() -> Result<(), StoreError> {
    let mut s = store_named("events");
    let tx = s.transaction()?;
    let Ingested::Accepted(a) = insert_event(&tx, &raw("a"), 100, 0)? else {
        panic!("a not accepted")
    };
    assert_eq!(insert_event(&tx, &raw("a"), 101, 0)?, Ingested::Duplicate);
    let Ingested::Accepted(b) = insert_event(&tx, &raw("b"), 102, 0)? else {
        panic!("b not accepted")
    };
    let new: Vec<i64> = new_events(&tx, 0, 10)?.iter().map(|e| e.id).collect();
    assert_eq!(new, [a, b]);
    assert_eq!(
        new_events(&tx, a, 10)?[0].raw.header("x-gitlab-event"),
        Some("Issue Hook")
    );
    let routed = RoutedEvent {
        event_id: a,
        request_id: "req-a".into(),
        idempotency_key: Some("a".into()),
        kind: "issue".into(),
        key: "issue.open".into(),
        project: "g/p".into(),
        outcome: "queued 1".into(),
        deliveries: vec![Delivery {
            id: "req-a/c".into(),
            channel: "c".into(),
            ordering_key: "o".into(),
            body: "m".into(),
        }],
        memory: vec![("k".into(), "v1".into())],
    };
    assert_eq!(memory(&tx, "k")?, None);
    assert!(mark_routed(&tx, &routed, 200)?);
    assert_eq!(memory(&tx, "k")?.as_deref(), Some("v1"));
    // A second commit of the same routing (a retried batch) adds nothing.
    let again = RoutedEvent {
        memory: vec![("k".into(), "v2".into())],
        ..routed.clone()
    };
    assert!(!mark_routed(&tx, &again, 201)?);
    assert_eq!(memory(&tx, "k")?.as_deref(), Some("v1"));
    assert_eq!(new_events(&tx, 0, 10)?.len(), 1);
    let m = lease_next(&tx, "c", 300, 1000)?.map(|l| (l.id, l.idempotency_key));
    let Some((id, key)) = m else {
        panic!("nothing to lease")
    };
    assert_eq!(key.as_deref(), Some("a"));
    record(&tx, id, &Outcome::Sent, 400)?;
    let shown = event_messages(&tx, a)?;
    assert_eq!((shown.len(), shown[0].state.as_str()), (1, "sent"));
    // Sent messages are neither pending nor listed.
    assert_eq!(lease_next(&tx, "c", 500, 1000)?, None);
    tx.commit()?;
    assert!(s.list(false, 10)?.is_empty());
    let tx = s.transaction()?;
    assert_eq!(
        prune_events(&tx, 450)?,
        1,
        "the routed event goes; the new one stays"
    );
    assert!(event_messages(&tx, a)?.is_empty());
    assert_eq!(new_events(&tx, 0, 10)?.len(), 1);
    Ok(())
}

#[test]
fn a_schema_2_outbox_opens_under_the_current_schema() -> Result<(), StoreError> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/outbox-schema2.sqlite");
    let dir = std::env::temp_dir().join(format!("gcb-upgrade-unit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("o.sqlite");
    std::fs::copy(&fixture, &path).map_err(|e| StoreError(e.to_string()))?;
    let mut s = Store::open(&path, false)?;
    let v: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(v, MIGRATIONS.len() as i64);
    let stats = s.stats()?;
    let by: Vec<(&str, u64, u64, u64)> = stats
        .iter()
        .map(|c| (c.channel.as_str(), c.pending, c.retrying, c.dead))
        .collect();
    assert_eq!(by, [("dev", 4, 1, 1), ("ops", 3, 1, 1)]);
    let tx = s.transaction()?;
    // Old rows keep their ids, attempts and order; the old dedupe keys still dedupe.
    let first = lease_next(&tx, "dev", i64::MAX / 2, 1000)?.map(|l| (l.id, l.attempts));
    assert_eq!(first, Some((1, 1)));
    assert_eq!(
        insert_event(&tx, &raw("idem-old-0"), 1_795_000_100_000, 0)?,
        Ingested::Duplicate
    );
    Ok(())
}

#[test]
fn a_schema_3_outbox_keeps_its_events_when_bodies_move_out() -> Result<(), StoreError> {
    let dir = std::env::temp_dir().join(format!("gcb-upgrade3-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("o.sqlite");
    {
        // An outbox as schema 3 left it: bodies inside `events`, one routed and one new.
        let conn = Connection::open(&path)?;
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql)?;
        }
        conn.pragma_update(None, "user_version", 3)?;
        conn.execute_batch(
            r#"INSERT INTO events (id, received_at, request_id, dedupe_key, headers, body, state)
               VALUES (1, 10, 'r1', 'k1', '{"x-gitlab-event":"Issue Hook"}', X'7B226E223A317D', 'routed'),
                      (2, 20, 'r2', 'k2', '{"x-gitlab-event":"Push Hook"}', X'7B226E223A327D', 'new');"#,
        )?;
    }
    let mut s = Store::open(&path, false)?;
    let got =
        event(s.conn(), 1)?.map(|e| (e.raw.header("x-gitlab-event").map(String::from), e.raw.body));
    assert_eq!(
        got,
        Some((Some("Issue Hook".into()), b"{\"n\":1}".to_vec()))
    );
    let new: Vec<(i64, Vec<u8>)> = new_events(s.conn(), 0, 10)?
        .into_iter()
        .map(|e| (e.id, e.raw.body))
        .collect();
    assert_eq!(new, [(2, b"{\"n\":2}".to_vec())]);
    // New events after the upgrade are stored compressed and read back as received.
    let tx = s.transaction()?;
    let big = RawEvent {
        body: format!("{{\"description\":\"{}\"}}", "abc ".repeat(2000)).into_bytes(),
        ..raw("k3")
    };
    let Ingested::Accepted(id) = insert_event(&tx, &big, 30, 0)? else {
        panic!("not stored");
    };
    let stored: i64 = tx.query_row(
        "SELECT length(body) FROM event_bodies WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    assert!(
        stored < (big.body.len() / 4) as i64,
        "stored {stored} bytes"
    );
    assert_eq!(event(&tx, id)?.map(|e| e.raw.body), Some(big.body));
    Ok(())
}
