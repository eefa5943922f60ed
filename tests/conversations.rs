//! Conversations (`channels[].conversation`) through the daemon, against the Telegram fake and a
//! real Synapse: a merge request's life (opened, three comments, approved, its pipeline failed
//! then passed, merged) is one root and every later event a reply in its thread, read back from
//! the chat; on `thread+edit` the root is edited to the merge request's latest card (it ends
//! showing the merge). Two merge requests interleaved each keep their own thread; a restart
//! keeps the threads (the map is in the outbox); a root deleted in the chat makes the next event
//! a new root, once, and later events reply to it. `check` takes a conversation channel, and
//! `render` (as the preview page) shows its reply and the root card it keeps. Edits take posting slots: a channel with a
//! budget of 3 a minute makes 3 requests (root, reply, edit) and then waits. On Matrix, replies carry the `m.thread`
//! relation with the reply fallback, edits are `m.replace` events with `m.new_content`, and a
//! broadcast key's reply is also shown in the room as a plain reply to the root; a
//! daemon killed (SIGKILL) after Synapse took a root but before its answer came posts no second
//! root after the restart (the txnId is the message's), and the next event replies to the one
//! root. What Synapse does with a thread reply is pinned: to a root it does not know, 400
//! `M_UNKNOWN` "Can't send relation to unknown event"; to a root in another room (the channel
//! moved rooms), 400 `M_UNKNOWN` "Relations must be in the same room" (the daemon then starts a
//! new root there, once); to a redacted root, 200 (the thread lives on under "message
//! deleted").

use crate::support::daemon::{Daemon, Settings};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::samples;
use crate::support::synapse::Synapse;
use crate::support::temp::TempDir;
use crate::support::turn;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::support::fake_telegram::TOKEN;
const CHAT: &str = "-100";
const WAIT: Duration = Duration::from_secs(20);

/// The project every event of these tests is about.
fn project() -> Value {
    samples::json("pipeline__basic.json")["project"].clone()
}

/// A merge request event about `!iid` with `action` (and the state it leaves).
pub(crate) fn mr(iid: u64, action: &str, title: &str) -> (&'static str, Vec<u8>) {
    let mut v = samples::json("merge_request__open.json");
    v["project"] = project();
    let state = match action {
        "merge" => "merged",
        "close" => "closed",
        _ => "opened",
    };
    v["object_attributes"]["iid"] = json!(iid);
    v["object_attributes"]["action"] = json!(action);
    v["object_attributes"]["state"] = json!(state);
    v["object_attributes"]["title"] = json!(title);
    ("Merge Request Hook", v.to_string().into_bytes())
}

/// A comment on `!iid`.
pub(crate) fn note(iid: u64, text: &str) -> (&'static str, Vec<u8>) {
    let mut v = samples::json("note__merge_request.json");
    v["project"] = project();
    v["merge_request"]["iid"] = json!(iid);
    v["object_attributes"]["note"] = json!(text);
    ("Note Hook", v.to_string().into_bytes())
}

/// Pipeline `id` of `!iid`, finished with `status`.
pub(crate) fn pipeline(iid: u64, id: u64, status: &str) -> (&'static str, Vec<u8>) {
    let mut v = samples::json("pipeline__basic.json");
    v["merge_request"]["iid"] = json!(iid);
    v["object_attributes"]["id"] = json!(id);
    v["object_attributes"]["status"] = json!(status);
    ("Pipeline Hook", v.to_string().into_bytes())
}

/// A merge request's life, in order.
pub(crate) fn life(iid: u64) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        mr(iid, "open", &format!("Feature {iid}")),
        note(iid, &format!("first look at {iid}")),
        note(iid, &format!("second look at {iid}")),
        note(iid, &format!("third look at {iid}")),
        mr(iid, "approved", &format!("Feature {iid}")),
        pipeline(iid, 100 + iid, "failed"),
        pipeline(iid, 200 + iid, "success"),
        mr(iid, "merge", &format!("Feature {iid}")),
    ]
}

/// A Telegram channel `tg` with `conversation = mode`.
fn telegram_config(fake: &FakeTelegram, mode: &str, dir: &TempDir) -> std::path::PathBuf {
    telegram_config_rate(fake, mode, 600, dir)
}

/// A Telegram channel `tg` with `conversation = mode` and a budget of `rate` posts a minute.
fn telegram_config_rate(
    fake: &FakeTelegram,
    mode: &str,
    rate: u32,
    dir: &TempDir,
) -> std::path::PathBuf {
    let mut settings = Settings::new(Vec::new());
    settings.rest = format!(
        "[[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = {CHAT}\n\
         api_url = \"{}\"\nrate_per_minute = {rate}\nconversation = \"{mode}\"\n",
        fake.api_url()
    );
    settings.write_config(dir)
}

/// The requests the fake answered 200, by method.
fn answered(fake: &FakeTelegram, method: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.status == 200)
        .count()
}

/// Waits until the fake answered `sends` posts and `edits` edits with 200.
async fn settle(fake: &FakeTelegram, sends: usize, edits: usize) {
    let deadline = Instant::now() + WAIT;
    while answered(fake, "sendMessage") < sends || answered(fake, "editMessageText") < edits {
        assert!(
            Instant::now() < deadline,
            "waiting for {sends} posts and {edits} edits: {:#?}",
            fake.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message a Telegram message replies to, if it is a reply.
fn replies_to(m: &crate::support::fake_telegram::Message) -> Option<i64> {
    m.body["reply_parameters"]["message_id"].as_i64()
}

#[tokio::test]
async fn telegram_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-tg-life");
    let daemon = Daemon::spawn(&telegram_config(&fake, "thread+edit", &dir)).await;
    // Each event waits for the one before: GitLab's pipelines and comments are other objects
    // than the merge request, so only the conversation map orders them into its thread.
    let (mut sends, mut edits) = (0, 0);
    for (i, (header, body)) in life(1).into_iter().enumerate() {
        let a = daemon.post(header, body, None, None).await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
        sends += 1;
        // The merge request's own events after the first change the root's card.
        if i == 4 || i == 7 {
            edits += 1;
        }
        settle(&fake, sends, edits).await;
    }
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 8, "{msgs:#?}");
    let root = &msgs[0];
    assert_eq!(replies_to(root), None, "the root replies to nothing");
    for m in &msgs[1..] {
        assert_eq!(replies_to(m), Some(root.message_id), "{m:#?}");
        assert_eq!(
            m.body["reply_parameters"]["allow_sending_without_reply"],
            json!(false)
        );
    }
    assert!(
        msgs[1].text.contains("first look at 1"),
        "{:?}",
        msgs[1].text
    );
    // The root was edited in place to the last card of the merge request: the merge.
    let last_card = &msgs[7].text;
    assert_eq!(&root.text, last_card, "the root shows the merge");
    assert_ne!(msgs[0].html, "", "{root:#?}");
    assert_eq!(answered(&fake, "editMessageText"), 2);
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains(TOKEN)));
}

#[tokio::test]
async fn telegram_two_merge_requests_interleaved_keep_their_threads_across_a_restart() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-tg-two");
    let config = telegram_config(&fake, "thread", &dir);
    let daemon = Daemon::spawn(&config).await;
    let events = [
        mr(1, "open", "One"),
        mr(2, "open", "Two"),
        note(1, "on one a"),
        note(2, "on two a"),
        pipeline(2, 302, "failed"),
        note(1, "on one b"),
    ];
    for (n, (header, body)) in events.into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&fake, n + 1, 0).await;
    }
    // A restart (SIGTERM: the last post's outcome is recorded before the exit; a kill -9 here
    // may re-send that one post, the durability contract's one duplicate, which is not what
    // this test is about).
    let (status, _) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.is_some(), "the daemon did not stop on SIGTERM");
    // Restarted on the same outbox: the threads are where they were.
    let daemon = Daemon::spawn(&config).await;
    for (n, (header, body)) in [note(2, "on two b"), mr(1, "merge", "One")]
        .into_iter()
        .enumerate()
    {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&fake, 7 + n, 0).await;
    }
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 8, "{msgs:#?}");
    let (one, two) = (msgs[0].message_id, msgs[1].message_id);
    let threads: Vec<Option<i64>> = msgs.iter().map(replies_to).collect();
    assert_eq!(
        threads,
        [
            None,
            None,
            Some(one),
            Some(two),
            Some(two),
            Some(one),
            Some(two),
            Some(one)
        ],
        "{msgs:#?}"
    );
    assert_eq!(answered(&fake, "editMessageText"), 0, "thread: no edits");
    daemon.stop();
}

#[tokio::test]
async fn telegram_a_deleted_root_starts_one_new_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-tg-lost");
    let daemon = Daemon::spawn(&telegram_config(&fake, "thread+edit", &dir)).await;
    let (h, b) = mr(5, "open", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&fake, 1, 0).await;
    let first_root = fake.messages_in(CHAT)[0].message_id;
    fake.delete(CHAT, first_root);
    for (n, text) in ["after the delete", "and again"].iter().enumerate() {
        let (h, b) = note(5, text);
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
        settle(&fake, 2 + n, 0).await;
    }
    // The merge request's own next event edits the new root, not the deleted one.
    let (h, b) = mr(5, "approved", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&fake, 4, 1).await;
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    let new_root = msgs[1].message_id;
    assert_eq!(replies_to(&msgs[1]), None, "a new root: {msgs:#?}");
    // The comment that found its root gone became the new root, since edited to the merge
    // request's card.
    assert!(
        msgs[1].text.contains("approved merge request !5"),
        "{msgs:#?}"
    );
    assert!(msgs[2].text.contains("and again"), "{msgs:#?}");
    assert_eq!(replies_to(&msgs[2]), Some(new_root));
    assert_eq!(replies_to(&msgs[3]), Some(new_root));
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status != 200)
        .collect();
    assert_eq!(refused.len(), 1, "one refused reply, no loop: {refused:#?}");
    let log = daemon.stop();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("starting a new root"))
            .count(),
        1,
        "{log:#?}"
    );
}

/// The relation of a Matrix event, if any.
fn relation(e: &Value) -> (&str, &str) {
    let r = &e["content"]["m.relates_to"];
    (
        r["rel_type"].as_str().unwrap_or_default(),
        r["event_id"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn matrix_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conversations").await;
    let dir = TempDir::new("conv-mx-life");
    let mut settings = Settings::new(Vec::new());
    settings.rest = format!(
        "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"{}\"\naccess_token = \"{}\"\n\
         room = \"{}\"\nrate_per_minute = 600\nconversation = \"thread+edit\"\n\
         broadcast = [\"merge_request.merge\"]\n",
        hs.base_url(),
        hs.bot.access_token,
        hs.room
    );
    let config = settings.write_config(&dir);
    let mut daemon = Daemon::spawn(&config).await;
    // events in the room after each webhook: the post, and an edit for the merge request's own
    // events), and for the merge one more: the reply shown in the room (broadcast)
    let expected = [1, 2, 3, 4, 6, 7, 8, 11];
    for (i, (header, body)) in life(3).into_iter().enumerate() {
        if i == 4 {
            // Threads survive a restart: the map is in the outbox.
            daemon.stop();
            daemon = Daemon::spawn(&config).await;
        }
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        let deadline = Instant::now() + WAIT;
        while hs.messages(&hs.other, &hs.room).await.len() < expected[i] {
            assert!(Instant::now() < deadline, "event {i}: {}", hs.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let msgs = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs.len(), 11, "{msgs:#?}");
    let root = &msgs[0];
    let root_id = root["event_id"].as_str().unwrap();
    assert_eq!(relation(root), ("", ""), "a root has no relation");
    let (mut replies, mut edits, mut shown) = (Vec::new(), Vec::new(), Vec::new());
    for m in &msgs[1..] {
        match relation(m) {
            ("", "") => {
                let r = &m["content"]["m.relates_to"];
                assert_eq!(r, &json!({"m.in_reply_to": {"event_id": root_id}}), "{m}");
                shown.push(m);
            }
            ("m.thread", id) => {
                assert_eq!(id, root_id, "{m}");
                let r = &m["content"]["m.relates_to"];
                assert_eq!(r["is_falling_back"], json!(true), "{m}");
                assert_eq!(r["m.in_reply_to"]["event_id"], json!(root_id), "{m}");
                replies.push(m);
            }
            ("m.replace", id) => {
                assert_eq!(id, root_id, "{m}");
                edits.push(m);
            }
            other => panic!("{other:?}: {m}"),
        }
    }
    assert_eq!((replies.len(), edits.len()), (7, 2));
    let merged = &replies[6]["content"]["body"];
    assert_eq!(shown.len(), 1, "only the merge is broadcast");
    assert_eq!(&shown[0]["content"]["body"], merged);
    let last_edit = &edits[1]["content"];
    assert_eq!(last_edit["m.new_content"]["body"], *merged, "{last_edit}");
    assert_eq!(
        last_edit["body"].as_str().unwrap(),
        format!("* {}", merged.as_str().unwrap())
    );
    assert_eq!(last_edit["m.mentions"], json!({}));
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains(&hs.bot.access_token)));
}

/// A Matrix channel `mx` through `homeserver` with `conversation = mode`.
fn matrix_config(hs: &Synapse, homeserver: &str, mode: &str, dir: &TempDir) -> std::path::PathBuf {
    matrix_room_config(hs, homeserver, &hs.room, mode, dir)
}

/// A Matrix channel `mx` into `room`.
fn matrix_room_config(
    hs: &Synapse,
    homeserver: &str,
    room: &str,
    mode: &str,
    dir: &TempDir,
) -> std::path::PathBuf {
    let mut settings = Settings::new(Vec::new());
    settings.rest = format!(
        "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"{homeserver}\"\naccess_token = \"{}\"\n\
         room = \"{room}\"\nrate_per_minute = 600\nconversation = \"{mode}\"\n",
        hs.bot.access_token
    );
    settings.write_config(dir)
}

/// Waits until `room` holds at least `n` messages; returns them.
async fn room_messages(hs: &Synapse, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let msgs = hs.messages(&hs.other, &hs.room).await;
        if msgs.len() >= n {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n}: {msgs:#?}",
            msgs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn matrix_a_kill_9_before_the_roots_answer_posts_no_second_root() {
    use std::sync::atomic::Ordering;
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conv-kill").await;
    let proxy = crate::matrix::HoldingProxy::start(&hs.base_url()).await;
    let dir = TempDir::new("conv-mx-kill");
    let config = matrix_config(&hs, &format!("http://{}", proxy.addr), "thread", &dir);
    let daemon = Daemon::spawn(&config).await;
    // Synapse takes the root; its answer (the event id) never reaches the daemon.
    proxy.state.hold.store(true, Ordering::SeqCst);
    let (h, b) = mr(9, "open", "Nine");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    crate::support::wait_until("the root in flight", WAIT, || {
        proxy.state.held.load(Ordering::SeqCst) > 0
    })
    .await;
    let log = daemon.stop();
    proxy.state.hold.store(false, Ordering::SeqCst);
    assert_eq!(room_messages(&hs, 1).await.len(), 1, "Synapse has the root");
    let daemon = Daemon::spawn(&config).await;
    let (h, b) = note(9, "after the kill");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    let msgs = room_messages(&hs, 2).await;
    // Nothing else comes: the root was sent again under its txnId and recorded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs_again = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs_again.len(), 2, "{msgs_again:#?}");
    let root_id = msgs[0]["event_id"].as_str().unwrap();
    assert_eq!(relation(&msgs[0]), ("", ""));
    assert_eq!(relation(&msgs[1]), ("m.thread", root_id), "{msgs:#?}");
    let txns = proxy.state.txns.lock().unwrap().clone();
    assert_eq!(
        txns[0], txns[1],
        "the root was re-sent with its txnId: {txns:?}"
    );
    drop((log, daemon.stop()));
}

#[tokio::test]
async fn synapse_refuses_replies_to_unknown_roots_and_takes_them_to_redacted_ones() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conv-lost").await;
    let reply = |root: &str| {
        json!({"msgtype": "m.notice", "body": "r", "m.mentions": {},
            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                "m.in_reply_to": {"event_id": root}}})
    };
    let (status, answer) = hs
        .send(
            &hs.bot,
            &hs.room,
            "unknown-root",
            &reply("$nosuchevent:localhost"),
        )
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (400, Some("M_UNKNOWN")),
        "{answer}"
    );
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown event"),
        "{answer}"
    );
    let root = json!({"msgtype": "m.notice", "body": "root", "m.mentions": {}});
    let (_, posted) = hs.send(&hs.bot, &hs.room, "root", &root).await;
    let root_id = posted["event_id"].as_str().unwrap().to_string();
    hs.redact(&hs.bot, &hs.room, &root_id).await;
    let (status, answer) = hs
        .send(&hs.bot, &hs.room, "redacted-root", &reply(&root_id))
        .await;
    assert_eq!(status, 200, "a redacted root keeps its thread: {answer}");
}

#[tokio::test]
async fn matrix_a_root_the_room_does_not_know_starts_one_new_root() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conv-moved").await;
    let dir = TempDir::new("conv-mx-moved");
    let daemon = Daemon::spawn(&matrix_config(&hs, &hs.base_url(), "thread", &dir)).await;
    let (h, b) = mr(4, "open", "Four");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    room_messages(&hs, 1).await;
    // SIGTERM: the root's reference is recorded before the exit (after a kill -9 the post
    // could be re-sent to the new room, which is not what this test is about).
    let (status, _) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.is_some(), "the daemon did not stop on SIGTERM");
    // The channel now posts to another room: the recorded root is not there.
    let other = hs.create_room(&hs.bot, None, &[&hs.other.user_id]).await;
    hs.join(&hs.other, &other).await;
    let config = matrix_room_config(&hs, &hs.base_url(), &other, "thread", &dir);
    let daemon = Daemon::spawn(&config).await;
    for text in ["moved a", "moved b"] {
        let (h, b) = note(4, text);
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    }
    let deadline = Instant::now() + WAIT;
    let msgs = loop {
        let msgs = hs.messages(&hs.other, &other).await;
        if msgs.len() >= 2 {
            break msgs;
        }
        assert!(Instant::now() < deadline, "{msgs:#?} {:#?}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hs.messages(&hs.other, &other).await.len(), 2);
    let root_id = msgs[0]["event_id"].as_str().unwrap();
    assert_eq!(relation(&msgs[0]), ("", ""), "a new root: {msgs:#?}");
    assert!(msgs[0]["content"]["body"]
        .as_str()
        .unwrap()
        .contains("moved a"));
    assert_eq!(relation(&msgs[1]), ("m.thread", root_id));
    let log = daemon.stop();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("starting a new root"))
            .count(),
        1,
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_two_postgresql_replicas_share_the_threads() {
    let _turn = turn::shared_async().await;
    let cluster = crate::support::postgres::Cluster::start("conv-replicas");
    let db = cluster.create_database();
    let cliq = crate::support::fake_cliq::FakeCliq::start(0).await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-replicas");
    let channel = format!(
        "[[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = {CHAT}\n\
         api_url = \"{}\"\nrate_per_minute = 600\nconversation = \"thread\"\n",
        fake.api_url()
    );
    let configs = crate::replicas::replica_configs(&dir, &cluster, &db, &cliq, &[], &channel, 2);
    let a = Daemon::spawn(&configs[0]).await;
    let b = Daemon::spawn(&configs[1]).await;
    let events = [
        mr(6, "open", "Six"),
        note(6, "via b"),
        note(6, "via a"),
        pipeline(6, 606, "failed"),
        mr(6, "merge", "Six"),
    ];
    for (n, (header, body)) in events.into_iter().enumerate() {
        let replica = if n % 2 == 0 { &a } else { &b };
        assert_eq!(replica.post(header, body, None, None).await.status, 200);
        settle(&fake, n + 1, 0).await;
    }
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    let root = msgs[0].message_id;
    let threads: Vec<Option<i64>> = msgs.iter().map(replies_to).collect();
    assert_eq!(
        threads,
        [None, Some(root), Some(root), Some(root), Some(root)]
    );
    drop((a.stop(), b.stop()));
}

#[tokio::test]
async fn telegram_edits_count_against_the_budget() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-tg-budget");
    let daemon = Daemon::spawn(&telegram_config_rate(&fake, "thread+edit", 3, &dir)).await;
    for (header, body) in [
        mr(8, "open", "Eight"),
        mr(8, "approved", "Eight"),
        mr(8, "merge", "Eight"),
    ] {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root, the approval's reply and its edit of the root: the minute's 3 slots.
    settle(&fake, 2, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(
        fake.messages_in(CHAT).len(),
        2,
        "the merge waits for the window"
    );
    daemon.stop();
}

#[test]
fn check_and_render_show_a_conversation_channels_reply_and_root_card() {
    let _turn = turn::shared();
    let dir = TempDir::new("conv-cli");
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
             [[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = \"@gitlab_news\"\n\
             conversation = \"thread+edit\"\nbroadcast = []\n"
        ),
    );
    let config = config.to_str().unwrap();
    let out = crate::support::cli::run(["check", "--config", config]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let sample = samples::dir().join("merge_request__open.json");
    let out = crate::support::cli::run([
        "render",
        "--config",
        config,
        "--event",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let parts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(parts.len(), 4, "{}", out.stdout);
    assert_eq!(
        (parts[0], parts[2]),
        ("==> tg <==", "==> tg (root card) <==")
    );
    for body in [parts[1], parts[3]] {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["parse_mode"], "HTML", "{body}");
    }
    assert!(!out.stdout.contains("gcb_conversation"));
    // One channel asked for: the body as posted, alone.
    let one = crate::support::cli::run([
        "render",
        "--config",
        config,
        "--event",
        sample.to_str().unwrap(),
        "--channel",
        "tg",
    ]);
    let v: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["parse_mode"], "HTML");
}
