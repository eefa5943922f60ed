//! Conversations (`channels[].conversation`) through the daemon, against the Telegram fake and a
//! real Synapse: a merge request's life (opened, three comments, approved, its pipeline failed
//! then passed, merged) is one root and every later event a reply in its thread, read back from
//! the chat; on `thread+edit` the root is the merge request's root card, rendered from the state
//! every event about it adds to (the opening is the thread's first reply), and edited after each
//! event that changes what it shows (not a comment: the built-in cards show no count); it ends
//! showing the merge, the pipeline that passed and the approver (Telegram: the root as
//! the last edit left it; Matrix: the latest `m.replace`'s new content, read back from the room).
//! `events replay --dry-run` prints the reply and the root card, never the stored envelope, and a
//! replay is a reply that leaves the root card as it is; a
//! template folder's `merge_request.root.hbs` replaces the built-in root card, and without it
//! the built-in one is used (`check` names which). Two merge requests interleaved each keep their own thread; a restart
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

use crate::support::conversation::{
    after_restart, assert_shows, channel_config, interleaved, interleaved_threads, life, life_step,
    mr, new_roots, note, note_on, over_budget, pipeline, relation, room_messages, wait_for, WAIT,
};
use crate::support::daemon::Daemon;
use crate::support::fake_telegram::FakeTelegram;
use crate::support::samples;
use crate::support::synapse::Synapse;
use crate::support::temp::TempDir;
use crate::support::turn;
use serde_json::{json, Value};
use std::time::Duration;

use crate::support::fake_telegram::TOKEN;
const CHAT: &str = "-100";

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
    channel_config(telegram_channel(fake, mode, rate), dir)
}

/// The `[[channels]]` table of a Telegram channel `tg` with `conversation = mode` and a budget
/// of `rate` posts a minute.
fn telegram_channel(fake: &FakeTelegram, mode: &str, rate: u32) -> String {
    format!(
        "[[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = {CHAT}\n\
         api_url = \"{}\"\nrate_per_minute = {rate}\nconversation = \"{mode}\"\n",
        fake.api_url()
    )
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
    wait_for(
        || answered(fake, "sendMessage") >= sends && answered(fake, "editMessageText") >= edits,
        || {
            format!(
                "waiting for {sends} posts and {edits} edits: {:#?}",
                fake.requests()
            )
        },
    )
    .await;
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
    let config = telegram_config(&fake, "thread+edit", &dir);
    let daemon = Daemon::spawn(&config).await;
    // Each event waits for the one before: GitLab's pipelines and comments are other objects
    // than the merge request, so only the conversation map orders them into its thread.
    let (mut sends, mut edits) = (0, 0);
    for (i, (header, body)) in life(1).into_iter().enumerate() {
        let a = daemon.post(header, body, None, None).await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
        // The root card and the opening as the thread's first reply, then a reply each; the
        // root is edited when the event changed what the card shows, not for a comment.
        (sends, edits) = life_step(i, header, sends, edits);
        settle(&fake, sends, edits).await;
    }
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 9, "{msgs:#?}");
    let root = &msgs[0];
    assert_eq!(replies_to(root), None, "the root replies to nothing");
    for m in &msgs[1..] {
        assert_eq!(replies_to(m), Some(root.message_id), "{m:#?}");
        assert_eq!(
            m.body["reply_parameters"]["allow_sending_without_reply"],
            json!(false)
        );
    }
    assert_shows(&msgs[1].text, &["opened merge request !1"]);
    assert_shows(&msgs[2].text, &["first look at 1"]);
    // The root, as the last editMessageText left it: the merge request's whole state.
    assert_shows(
        &root.text,
        &[
            "Merge request !1 Feature 1",
            "State: merged",
            "Pipeline: #201 ✅ passed",
            "Approved by: Administrator",
        ],
    );
    assert!(!root.text.contains("Comments"), "{:?}", root.text);
    assert_ne!(root.html, "", "{root:#?}");
    assert_eq!(answered(&fake, "editMessageText"), 4);
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains(TOKEN)));
    // A dry replay of the merge shows the reply it would post and the root card it keeps,
    // each as Telegram's body, never the stored envelope.
    let config_s = config.display().to_string();
    let dry =
        crate::support::cli::run(["events", "--config", &config_s, "replay", "8", "--dry-run"]);
    assert_eq!(dry.code, Some(0), "{}{}", dry.stdout, dry.stderr);
    assert!(!dry.stdout.contains("gcb_conversation"), "{}", dry.stdout);
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(
        lines[0], "==> event 8 (merge_request.merge) → tg <==",
        "{}",
        dry.stdout
    );
    assert_eq!(
        lines[2], "==> event 8 (merge_request.merge) → tg (root card) <==",
        "{}",
        dry.stdout
    );
    for body in [lines[1], lines[3]] {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["parse_mode"], "HTML", "{body}");
    }
    assert!(lines[1].contains("merged merge request"), "{}", lines[1]);
    assert!(lines[3].contains("State:</b> merged"), "{}", lines[3]);
    // A real replay of the first comment is a reply in the thread; the root card stays as the
    // whole life left it (the replayed event alone knows less).
    let daemon = Daemon::spawn(&config).await;
    let replay = crate::support::cli::run(["events", "--config", &config_s, "replay", "2"]);
    assert_eq!(replay.code, Some(0), "{}{}", replay.stdout, replay.stderr);
    settle(&fake, 10, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        answered(&fake, "editMessageText"),
        4,
        "the replay edited the root"
    );
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 10, "{msgs:#?}");
    assert_eq!(replies_to(&msgs[9]), Some(msgs[0].message_id));
    assert_shows(&msgs[9].text, &["first look at 1"]);
    assert_shows(&msgs[0].text, &["Approved by: Administrator"]);
    daemon.stop();
}

#[tokio::test]
async fn telegram_two_merge_requests_interleaved_keep_their_threads_across_a_restart() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-tg-two");
    let config = telegram_config(&fake, "thread", &dir);
    let daemon = Daemon::spawn(&config).await;
    for (n, (header, body)) in interleaved().into_iter().enumerate() {
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
    for (n, (header, body)) in after_restart().into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&fake, 7 + n, 0).await;
    }
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 8, "{msgs:#?}");
    let (one, two) = (msgs[0].message_id, msgs[1].message_id);
    let threads: Vec<Option<i64>> = msgs.iter().map(replies_to).collect();
    assert_eq!(threads, interleaved_threads(one, two), "{msgs:#?}");
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
    // The root card and the opening under it.
    settle(&fake, 2, 0).await;
    let first_root = fake.messages_in(CHAT)[0].message_id;
    fake.delete(CHAT, first_root);
    // The first comment finds the root gone: a new root card and the comment under it; the
    // second is a reply (a comment leaves the root card as it is: no edit).
    for (n, text) in ["after the delete", "and again"].iter().enumerate() {
        let (h, b) = note_on(5, "Five", text);
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
        settle(&fake, 4 + n, 0).await;
    }
    // The merge request's own next event edits the new root, not the deleted one.
    let (h, b) = mr(5, "approved", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&fake, 6, 1).await;
    // The chat's messages, the deleted root among them (the fake keeps it, marked).
    let msgs = fake.messages_in(CHAT);
    assert_eq!(msgs.len(), 6, "{msgs:#?}");
    assert_eq!(msgs[0].message_id, first_root);
    assert_eq!(replies_to(&msgs[1]), Some(first_root), "{msgs:#?}");
    let new_root = msgs[2].message_id;
    assert_eq!(replies_to(&msgs[2]), None, "a new root: {msgs:#?}");
    // The new root shows the merge request's state, edited to the latest.
    for shown in ["Merge request !5 Five", "Approved by: Administrator"] {
        assert!(msgs[2].text.contains(shown), "{shown:?}: {msgs:#?}");
    }
    assert!(msgs[3].text.contains("after the delete"), "{msgs:#?}");
    assert!(msgs[4].text.contains("and again"), "{msgs:#?}");
    assert!(
        msgs[5].text.contains("approved merge request !5"),
        "{msgs:#?}"
    );
    for m in &msgs[3..] {
        assert_eq!(replies_to(m), Some(new_root), "{msgs:#?}");
    }
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status != 200)
        .collect();
    assert_eq!(refused.len(), 1, "one refused reply, no loop: {refused:#?}");
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn matrix_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conversations").await;
    let dir = TempDir::new("conv-mx-life");
    let config = channel_config(
        format!(
            "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"{}\"\naccess_token = \"{}\"\n\
             room = \"{}\"\nrate_per_minute = 600\nconversation = \"thread+edit\"\n\
             broadcast = [\"merge_request.merge\"]\n",
            hs.base_url(),
            hs.bot.access_token,
            hs.room
        ),
        &dir,
    );
    let mut daemon = Daemon::spawn(&config).await;
    // events in the room after each webhook: the root card and the opening's reply; then a
    // reply for each comment (the card shows no count: no edit), a reply and an edit of the
    // root for the approval, each pipeline and the merge, and for the merge one more: the reply
    // shown in the room (broadcast)
    let expected = [2, 3, 4, 5, 7, 9, 11, 14];
    for (i, (header, body)) in life(3).into_iter().enumerate() {
        if i == 4 {
            // Threads survive a restart: the map is in the outbox.
            daemon.stop();
            daemon = Daemon::spawn(&config).await;
        }
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        room_messages(&hs, &hs.room, expected[i]).await;
    }
    let msgs = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs.len(), 14, "{msgs:#?}");
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
    assert_eq!((replies.len(), edits.len()), (8, 4));
    assert!(
        replies[0]["content"]["body"]
            .as_str()
            .unwrap()
            .contains("opened merge request !3"),
        "{}",
        replies[0]
    );
    let merged = &replies[7]["content"]["body"];
    assert_eq!(shown.len(), 1, "only the merge is broadcast");
    assert_eq!(&shown[0]["content"]["body"], merged);
    // The root as the room shows it now: the latest m.replace's new content, the merge
    // request's whole state.
    let last_edit = &edits[3]["content"];
    let now = last_edit["m.new_content"]["body"].as_str().unwrap();
    assert_shows(
        now,
        &[
            "Merge request !3 Feature 3",
            "State: merged",
            "Pipeline: #203 (",
            "✅ passed",
            "Approved by: Administrator",
        ],
    );
    assert!(!now.contains("Comments"), "{last_edit}");
    assert_eq!(last_edit["body"].as_str().unwrap(), format!("* {now}"));
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
    channel_config(
        format!(
            "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"{homeserver}\"\naccess_token = \"{}\"\n\
             room = \"{room}\"\nrate_per_minute = 600\nconversation = \"{mode}\"\n",
            hs.bot.access_token
        ),
        dir,
    )
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
    assert_eq!(
        room_messages(&hs, &hs.room, 1).await.len(),
        1,
        "Synapse has the root"
    );
    let daemon = Daemon::spawn(&config).await;
    let (h, b) = note(9, "after the kill");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    let msgs = room_messages(&hs, &hs.room, 2).await;
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
    room_messages(&hs, &hs.room, 1).await;
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
    let msgs = room_messages(&hs, &other, 2).await;
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
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_two_postgresql_replicas_share_the_threads() {
    let _turn = turn::shared_async().await;
    let cluster = crate::support::postgres::Cluster::start("conv-replicas");
    let db = cluster.create_database();
    let cliq = crate::support::fake_cliq::FakeCliq::start(0).await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let dir = TempDir::new("conv-replicas");
    let channel = telegram_channel(&fake, "thread", 600);
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
    for (header, body) in over_budget() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root card, the opening's reply and the approval's reply: the minute's 3 slots.
    settle(&fake, 3, 0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(
        answered(&fake, "editMessageText"),
        0,
        "the approval's edit of the root waits for the window"
    );
    assert_eq!(
        fake.messages_in(CHAT).len(),
        3,
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
    assert!(
        out.stdout.contains(
            "conversation root templates: merge_request.root (built-in:merge_request.root.hbs), \
             issue.root (built-in:issue.root.hbs), pipeline.root (built-in:pipeline.root.hbs)"
        ),
        "{}",
        out.stdout
    );
    let out = render_sample(config, &[]);
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
    // The reply is the event's card; the root card shows the sample's state.
    assert!(parts[1].contains("opened merge request"), "{}", parts[1]);
    assert!(parts[3].contains("State:</b> opened"), "{}", parts[3]);
    assert!(!out.stdout.contains("gcb_conversation"));
    // One channel asked for: the body as posted, alone.
    let one = render_sample(config, &["--channel", "tg"]);
    let v: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["parse_mode"], "HTML");
}

/// `render` of the sample merge request (`merge_request__open.json`) with `config` and `extra`
/// arguments; fails unless it exits 0.
fn render_sample(config: &str, extra: &[&str]) -> crate::support::cli::CliOutput {
    let sample = samples::dir().join("merge_request__open.json");
    let sample = sample.to_str().unwrap();
    let mut args = vec!["render", "--config", config, "--event", sample];
    args.extend_from_slice(extra);
    let out = crate::support::cli::run(args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out
}

/// A `render` of the sample merge request for a `thread+edit` Telegram channel with `templates`
/// as the template folder: its root card's body.
fn rendered_root(dir: &TempDir, templates: &std::path::Path) -> String {
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
             [templates]\ndir = \"{}\"\n\
             [[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = \"@gitlab_news\"\n\
             conversation = \"thread+edit\"\n",
            templates.display()
        ),
    );
    let config = config.to_str().unwrap();
    let check = crate::support::cli::run(["check", "--config", config]);
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    let out = render_sample(config, &[]);
    let parts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        parts.get(2),
        Some(&"==> tg (root card) <=="),
        "{}",
        out.stdout
    );
    format!("{}\n{}", check.stdout, parts[3])
}

#[test]
fn a_template_folder_may_override_the_root_card_and_falls_back_without_it() {
    let _turn = turn::shared();
    let dir = TempDir::new("conv-root-template");
    let templates = dir.join("templates");
    // A Telegram channel's cards come from the folder's `telegram/` (over the built-in ones).
    std::fs::create_dir_all(templates.join("telegram")).unwrap();
    let mine = templates.join("telegram/merge_request.root.hbs");
    std::fs::write(
        &mine,
        "{\"text\": \"Our MR {{root.title}}: {{root.state}}, {{root.comments}} comment(s)\"}",
    )
    .unwrap();
    let out = rendered_root(&dir, &templates);
    assert!(
        out.contains(&format!("merge_request.root ({})", mine.display())),
        "check names the user's root template: {out}"
    );
    assert!(
        out.contains("issue.root (built-in:issue.root.hbs)"),
        "{out}"
    );
    assert!(
        out.contains("Our MR MS-Viewport: opened, 0 comment(s)"),
        "{out}"
    );
    // Without it, the built-in root card.
    std::fs::remove_file(&mine).unwrap();
    let out = rendered_root(&dir, &templates);
    assert!(
        out.contains("merge_request.root (built-in:merge_request.root.hbs)"),
        "{out}"
    );
    assert!(!out.contains("Our MR"), "{out}");
    assert!(out.contains("State:</b> opened"), "{out}");
}

/// The built-in root cards, as recorded: the state of each bundled sample that keeps one (and a
/// merge request's whole life, from `life`), rendered by its kind's root template in Cliq's card
/// form and in Telegram's and Matrix's bodies. A deliberate change re-records them with
/// `UPDATE_SNAPSHOTS=1` and says why in its commit.
#[test]
fn built_in_root_cards_match_the_recorded_snapshot() {
    use gitlab_chat_bridge::event::state::ObjectState;
    use gitlab_chat_bridge::render::{Platform, Rendered};
    let _turn = turn::shared();
    let r = crate::support::renderer::renderer();
    let mut states: Vec<(String, ObjectState)> = Vec::new();
    for s in samples::index() {
        let ev = gitlab_chat_bridge::event::parse(Some(&s.header), samples::json(&s.file)).unwrap();
        if let Some(state) = ObjectState::of(&ev) {
            states.push((format!("{} ({})", s.file, ev.key), state));
        }
    }
    // A pipeline of no merge request has a root of its own.
    let mut branch = samples::json("pipeline__basic.json");
    branch["merge_request"] = Value::Null;
    let ev = gitlab_chat_bridge::event::parse(Some("Pipeline Hook"), branch).unwrap();
    states.push((
        format!("a branch pipeline ({})", ev.key),
        ObjectState::of(&ev).unwrap(),
    ));
    let mut life_state = ObjectState::default();
    for (header, body) in life(7) {
        let v: Value = serde_json::from_slice(&body).unwrap();
        life_state.merge(&gitlab_chat_bridge::event::parse(Some(header), v).unwrap());
    }
    states.push(("a merge request's life".into(), life_state));
    assert!(states.len() >= 6, "{}", states.len());
    let mut out = String::new();
    for (label, state) in &states {
        let Ok(Rendered::Message(card, name)) = r.render_root(state) else {
            panic!("{label}: no root card")
        };
        out.push_str(&format!("==> {label}: {name} <==\n"));
        for p in [Platform::Cliq, Platform::Telegram, Platform::Matrix] {
            out.push_str(&format!(
                "-- {}\n{}\n",
                p.as_str(),
                p.body(&card, "t").to_json()
            ));
        }
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/root_cards.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    for (i, (got, want)) in out.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "snapshot line {} differs", i + 1);
    }
    assert_eq!(out.lines().count(), want.lines().count(), "line count");
}
