//! Conversations across a `kill -9` right after a root is posted but before its reference is
//! recorded: the chat took the root, its answer never reached the daemon (a proxy holds it,
//! [`crate::matrix::HoldingProxy`]), the daemon is killed (SIGKILL) and restarted on the same
//! outbox. On Telegram (no idempotent send) the root is posted again: at most one extra root,
//! and every later reply (the opening, the root card's first reply, among them: once) goes into
//! one thread, the last root's. On Matrix the root is re-sent under its txnId, so Synapse keeps
//! exactly one root, and every later reply (the opening first) and edit names it.

use crate::matrix::HoldingProxy;
use crate::support::conversation::{channel_config, mr, note_on, relation, room_messages, WAIT};
use crate::support::daemon::Daemon;
use crate::support::fake_telegram::{FakeTelegram, TOKEN};
use crate::support::synapse::Synapse;
use crate::support::temp::TempDir;
use crate::support::{turn, wait_until};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CHAT: &str = "-100";
const REPLIES: usize = 3;

#[tokio::test]
async fn telegram_a_kill_9_before_the_roots_answer_makes_at_most_one_extra_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&[CHAT]).await;
    let proxy = HoldingProxy::start(&fake.api_url()).await;
    let dir = TempDir::new("conv-crash-tg");
    let config = channel_config(
        format!(
            "[[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = {CHAT}\n\
             api_url = \"http://{}\"\nrate_per_minute = 600\nconversation = \"thread+edit\"\n",
            proxy.addr
        ),
        &dir,
    );
    let daemon = Daemon::spawn(&config).await;
    // Telegram takes the root; its answer (the message id) never reaches the daemon.
    proxy.state.hold.store(true, Ordering::SeqCst);
    let (h, b) = mr(11, "open", "Eleven");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    wait_until("the root in flight", WAIT, || {
        proxy.state.held.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(fake.messages_in(CHAT).len(), 1, "Telegram has the root");
    drop(daemon.stop());
    proxy.state.hold.store(false, Ordering::SeqCst);
    let daemon = Daemon::spawn(&config).await;
    for n in 0..REPLIES {
        let (h, b) = note_on(11, "Eleven", &format!("after the kill {n}"));
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    }
    let (h, b) = mr(11, "approved", "Eleven");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    let replied = |fake: &FakeTelegram| {
        fake.messages_in(CHAT)
            .iter()
            .filter(|m| m.body["reply_parameters"].is_object())
            .count()
    };
    // The opening (the root card's first reply), the comments and the approval.
    wait_until("the replies", WAIT, || replied(&fake) >= REPLIES + 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs = fake.messages_in(CHAT);
    let roots: Vec<i64> = msgs
        .iter()
        .filter(|m| !m.body["reply_parameters"].is_object())
        .map(|m| m.message_id)
        .collect();
    assert!(
        (1..=2).contains(&roots.len()),
        "at most one extra root: {msgs:#?}"
    );
    let last_root = *roots.last().unwrap();
    for m in msgs
        .iter()
        .filter(|m| m.body["reply_parameters"].is_object())
    {
        assert_eq!(
            m.body["reply_parameters"]["message_id"].as_i64(),
            Some(last_root),
            "every reply in the last root's thread: {msgs:#?}"
        );
    }
    assert_eq!(msgs.len(), roots.len() + REPLIES + 2, "{msgs:#?}");
    let opening = msgs
        .iter()
        .filter(|m| m.text.contains("opened merge request !11"));
    assert_eq!(opening.count(), 1, "the opening once, a reply: {msgs:#?}");
    // The approval edited the root the thread is under, and only it.
    let edits: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "editMessageText")
        .collect();
    assert_eq!(edits.len(), 1, "{edits:#?}");
    let edited = fake
        .messages_in(CHAT)
        .into_iter()
        .find(|m| m.message_id == last_root)
        .unwrap();
    assert!(
        edited.text.contains("Approved by: Administrator"),
        "{edited:#?}"
    );
    daemon.stop();
}

#[tokio::test]
async fn matrix_a_kill_9_before_the_roots_answer_keeps_exactly_one_root() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("conv-crash").await;
    let proxy = HoldingProxy::start(&hs.base_url()).await;
    let dir = TempDir::new("conv-crash-mx");
    let config = channel_config(
        format!(
            "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"http://{}\"\naccess_token = \"{}\"\n\
             room = \"{}\"\nrate_per_minute = 600\nconversation = \"thread+edit\"\nbroadcast = []\n",
            proxy.addr, hs.bot.access_token, hs.room
        ),
        &dir,
    );
    let daemon = Daemon::spawn(&config).await;
    proxy.state.hold.store(true, Ordering::SeqCst);
    let (h, b) = mr(12, "open", "Twelve");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    wait_until("the root in flight", WAIT, || {
        proxy.state.held.load(Ordering::SeqCst) > 0
    })
    .await;
    drop(daemon.stop());
    proxy.state.hold.store(false, Ordering::SeqCst);
    let daemon = Daemon::spawn(&config).await;
    for n in 0..REPLIES {
        let (h, b) = note_on(12, "Twelve", &format!("after the kill {n}"));
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    }
    let (h, b) = mr(12, "approved", "Twelve");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    // The root card, the opening as its first reply, the comments, the approval's reply and
    // its edit of the root.
    let expected = 1 + 1 + REPLIES + 2;
    room_messages(&hs, &hs.room, expected).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs.len(), expected, "{msgs:#?}");
    let roots: Vec<&Value> = msgs.iter().filter(|m| relation(m).0.is_empty()).collect();
    assert_eq!(roots.len(), 1, "exactly one root: {msgs:#?}");
    let root_id = roots[0]["event_id"].as_str().unwrap().to_string();
    let kinds: Vec<String> = msgs[1..]
        .iter()
        .map(|m| {
            let (rel, to) = relation(m);
            assert_eq!(to, root_id, "{m}");
            rel.to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "m.thread").count(),
        REPLIES + 2
    );
    assert_eq!(kinds.iter().filter(|k| *k == "m.replace").count(), 1);
    daemon.stop();
}
