//! Conversations on Slack's bot-token mode, through the daemon against the Slack fake
//! (`support::fake_slack`): a merge request's life is one root and every later event a reply
//! with the root's `thread_ts`, the default broadcast keys with `reply_broadcast` (no post of
//! their own), and on `thread+edit` the root (the merge request's root card, the opening its
//! first reply) edited with `chat.update` to the latest root card, ending merged, its pipeline
//! passed, approved;
//! two merge requests interleaved keep their threads across a restart; a deleted root starts
//! one new root (a root with replies: its `chat.update` is refused and the card starts a new
//! root; one without: the reply Slack posted on its own is the new root, and on `thread+edit`
//! the card follows as the new root without that reply again under it); a kill -9 after Slack
//! took a root but before its answer came posts at most one extra root, and later replies go
//! into one thread; a 429 `ratelimited`
//! with `Retry-After` is waited out; edits take posting slots (the fake never counts more in a
//! minute than the channel's budget); `check` says a webhook URL
//! falls back to flat posts. The bot token never appears in the daemon's debug log.

use crate::support::conversation::{
    after_restart, assert_429_waited_out, assert_shows, channel_config, interleaved,
    interleaved_threads, life, life_step, mr, new_roots, note, note_on, over_budget, quiet, WAIT,
};
use crate::support::daemon::Daemon;
use crate::support::fake_slack::{FakeSlack, Message, CHANNEL, TOKEN};
use crate::support::temp::TempDir;
use crate::support::turn;
use std::time::Duration;

/// A Slack channel `sl` in the bot-token mode with `conversation = mode` and `rate` posts a
/// minute.
fn config(fake: &FakeSlack, mode: &str, rate: u32, dir: &TempDir) -> std::path::PathBuf {
    channel_config(
        format!(
            "[[channels]]\nname = \"sl\"\nkind = \"slack\"\ntoken = \"{TOKEN}\"\nchannel = \"{CHANNEL}\"\n\
             api_url = \"{}\"\nrate_per_minute = {rate}\nconversation = \"{mode}\"\n",
            fake.api_url()
        ),
        dir,
    )
}

/// Posts one webhook and waits for the fake to have `posts` posts and `edits` edits.
async fn send(
    daemon: &Daemon,
    fake: &FakeSlack,
    event: (&str, Vec<u8>),
    posts: usize,
    edits: usize,
) {
    let (header, body) = event;
    assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    fake.settle(posts, edits, WAIT).await;
}

/// The thread of each message (`None`: a message of the channel).
fn threads(msgs: &[Message]) -> Vec<Option<&str>> {
    msgs.iter().map(|m| m.thread_ts.as_deref()).collect()
}

#[tokio::test]
async fn slack_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-life");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 600, &dir)).await;
    let (mut posts, mut edits) = (0, 0);
    for (i, event) in life(1).into_iter().enumerate() {
        // The root card and the opening as its first reply; then a reply each, and an edit of
        // the root for each event that changes its card (not a comment: it shows no count).
        (posts, edits) = life_step(i, event.0, posts, edits);
        send(&daemon, &fake, event, posts, edits).await;
    }
    quiet(|| fake.requests()).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 9, "{msgs:#?}");
    let root = &msgs[0];
    assert_eq!(root.thread_ts, None, "the root is in the channel");
    for m in &msgs[1..] {
        assert_eq!(m.thread_ts.as_deref(), Some(root.ts.as_str()), "{m:#?}");
    }
    assert_shows(&msgs[1].text, &["opened merge request"]);
    assert_shows(&msgs[2].text, &["first look at 1"]);
    // The default broadcast keys: the pipeline that passed after a failure (fixed) and the
    // merge are shown in the channel by their replies, the rest are not; no post of their own.
    assert!(msgs[7].reply_broadcast, "{:#?}", msgs[7]);
    assert!(msgs[8].reply_broadcast, "{:#?}", msgs[8]);
    assert!(msgs[1..7].iter().all(|m| !m.reply_broadcast), "{msgs:#?}");
    // The root was edited in place (chat.update) to the latest root card the daemon sent: the
    // merge request's whole state.
    let updates: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "chat.update" && r.error.is_none())
        .collect();
    assert_eq!(updates.len(), 4, "{updates:#?}");
    let last = &updates[updates.len() - 1].body;
    assert_eq!(last["ts"], root.ts.as_str());
    assert_eq!(last["channel"], CHANNEL);
    assert_eq!(root.text, last["text"].as_str().unwrap());
    assert_eq!(root.blocks, last["blocks"]);
    assert_ne!(root.text, root.first_text, "the root changed");
    assert_shows(
        &root.text,
        &[
            "Merge request !1: Feature 1",
            "*State:* merged",
            "✅ passed",
            "*Approved by:* Administrator",
        ],
    );
    assert!(
        fake.requests().iter().all(|r| r.error.is_none()),
        "{:#?}",
        fake.requests()
    );
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains(TOKEN)), "the token leaked");
}

#[tokio::test]
async fn slack_two_merge_requests_interleaved_keep_their_threads_across_a_restart() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-two");
    let config = config(&fake, "thread", 600, &dir);
    let daemon = Daemon::spawn(&config).await;
    for (n, event) in interleaved().into_iter().enumerate() {
        send(&daemon, &fake, event, n + 1, 0).await;
    }
    let (status, _) = daemon.terminate(WAIT).await;
    assert!(status.is_some(), "the daemon did not stop on SIGTERM");
    let daemon = Daemon::spawn(&config).await;
    for (n, event) in after_restart().into_iter().enumerate() {
        send(&daemon, &fake, event, 7 + n, 0).await;
    }
    let msgs = fake.messages();
    let (one, two) = (msgs[0].ts.as_str(), msgs[1].ts.as_str());
    assert_eq!(threads(&msgs), interleaved_threads(one, two), "{msgs:#?}");
    assert_eq!(fake.accepted("chat.update"), 0, "thread: no edits");
    daemon.stop();
}

#[tokio::test]
async fn slack_a_deleted_root_with_replies_starts_one_new_root_with_the_card() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-lost");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 600, &dir)).await;
    // The root card and the opening under it, then a comment.
    send(&daemon, &fake, mr(5, "open", "Five"), 2, 0).await;
    send(
        &daemon,
        &fake,
        note_on(5, "Five", "before the delete"),
        3,
        0,
    )
    .await;
    let first = fake.messages()[0].ts.clone();
    fake.delete(&first);
    // The approval's reply goes into the deleted root's thread (Slack keeps it); its edit of
    // the root is refused, and the card starts a new root.
    send(&daemon, &fake, mr(5, "approved", "Five"), 5, 0).await;
    send(&daemon, &fake, note_on(5, "Five", "after the delete"), 6, 0).await;
    quiet(|| fake.requests()).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 6, "{msgs:#?}");
    let new_root = msgs[4].ts.as_str();
    assert_eq!(
        threads(&msgs),
        [
            None,
            Some(first.as_str()),
            Some(first.as_str()),
            Some(first.as_str()),
            None,
            Some(new_root)
        ],
        "{msgs:#?}"
    );
    assert!(msgs[1].text.contains("opened merge request"), "{msgs:#?}");
    assert!(msgs[3].text.contains("approved merge request"), "{msgs:#?}");
    assert!(msgs[5].text.contains("after the delete"), "{msgs:#?}");
    // The new root is the card as the approval left it (the deleted one had no approver).
    assert!(
        msgs[4].text.contains("*Approved by:* Administrator"),
        "{msgs:#?}"
    );
    assert!(!msgs[0].first_text.contains("Approved by"), "{msgs:#?}");
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.error.is_some())
        .collect();
    assert_eq!(refused.len(), 1, "one refused edit, no loop: {refused:#?}");
    assert_eq!(refused[0].error.as_deref(), Some("message_not_found"));
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn slack_a_root_card_deleted_without_replies_is_posted_anew_and_the_reply_shown_once() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-card-gone");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 600, &dir)).await;
    send(&daemon, &fake, mr(4, "open", "Four"), 2, 0).await;
    let first = fake.messages()[0].ts.clone();
    fake.delete(&first);
    // The approval's edit finds the root gone: the card is a new root, with no reply yet.
    send(&daemon, &fake, mr(4, "approved", "Four"), 4, 0).await;
    let second = fake.messages()[3].ts.clone();
    assert_eq!(fake.messages()[3].thread_ts, None, "{:#?}", fake.messages());
    fake.delete(&second);
    // Slack posts the comment on its own in the channel (the root had no reply); the card
    // follows as the new root, and the comment is not posted again under it.
    send(
        &daemon,
        &fake,
        note_on(4, "Four", "after both deletes"),
        6,
        0,
    )
    .await;
    send(
        &daemon,
        &fake,
        note_on(4, "Four", "in the third thread"),
        7,
        0,
    )
    .await;
    quiet(|| fake.requests()).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 7, "{msgs:#?}");
    let shown = msgs
        .iter()
        .filter(|m| m.text.contains("after both deletes"));
    assert_eq!(shown.count(), 1, "the comment once: {msgs:#?}");
    assert_eq!(msgs[4].thread_ts, None, "{msgs:#?}");
    assert!(msgs[4].text.contains("after both deletes"), "{msgs:#?}");
    let third = msgs[5].ts.as_str();
    assert_eq!(msgs[5].thread_ts, None, "the card, a new root: {msgs:#?}");
    assert!(
        msgs[5].text.contains("*Approved by:* Administrator"),
        "{msgs:#?}"
    );
    assert_eq!(msgs[6].thread_ts.as_deref(), Some(third), "{msgs:#?}");
    assert!(msgs[6].text.contains("in the third thread"), "{msgs:#?}");
    daemon.stop();
}

#[tokio::test]
async fn slack_a_deleted_root_without_replies_makes_the_next_reply_the_new_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-gone");
    let daemon = Daemon::spawn(&config(&fake, "thread", 600, &dir)).await;
    send(&daemon, &fake, mr(6, "open", "Six"), 1, 0).await;
    fake.delete(&fake.messages()[0].ts);
    // Slack posts the reply on its own in the channel: it is the new root, nothing is posted
    // twice.
    send(&daemon, &fake, note(6, "after the delete"), 2, 0).await;
    send(&daemon, &fake, note(6, "and again"), 3, 0).await;
    quiet(|| fake.requests()).await;
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    let new_root = msgs[1].ts.as_str();
    assert_eq!(threads(&msgs), [None, None, Some(new_root)], "{msgs:#?}");
    assert!(msgs[1].text.contains("after the delete"));
    let log = daemon.stop();
    let orphans = log.iter().filter(|l| l.contains("is the new root")).count();
    assert_eq!(orphans, 1, "{log:#?}");
}

#[tokio::test]
async fn slack_edits_count_against_the_budget() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-budget");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 3, &dir)).await;
    for (header, body) in over_budget() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root card, the opening as its first reply and the approval's reply: the minute's 3
    // slots; the approval's edit of the root (and so the merge) waits for the window.
    fake.settle(3, 0, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = fake.requests();
    assert_eq!(fake.messages().len(), 3, "{requests:#?}");
    assert_eq!(
        fake.accepted("chat.update"),
        0,
        "the edit waits: {requests:#?}"
    );
    assert!(fake.max_per_minute() <= 3, "{requests:#?}");
    assert_eq!(requests.iter().filter(|r| r.error.is_none()).count(), 3);
    daemon.stop();
}

#[tokio::test]
async fn slack_a_kill_9_before_the_roots_answer_posts_at_most_one_extra_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-kill");
    let config = config(&fake, "thread", 600, &dir);
    let daemon = Daemon::spawn(&config).await;
    // Slack takes the root; its answer (the ts) never reaches the daemon.
    fake.hold(1);
    let (header, body) = mr(7, "open", "Seven");
    assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    crate::support::wait_until("the root taken", WAIT, || fake.messages().len() == 1).await;
    drop(daemon.stop());
    let daemon = Daemon::spawn(&config).await;
    send(&daemon, &fake, note(7, "after the kill"), 3, 0).await;
    send(&daemon, &fake, note(7, "and again"), 4, 0).await;
    quiet(|| fake.requests()).await;
    let msgs = fake.messages();
    // The root was posted again (Slack has no idempotency key): one extra root at most, and
    // every reply in the thread of the one recorded.
    let recorded = msgs[1].ts.as_str();
    assert_eq!(
        threads(&msgs),
        [None, None, Some(recorded), Some(recorded)],
        "{msgs:#?}"
    );
    daemon.stop();
}

#[tokio::test]
async fn slack_bot_token_mode_without_a_conversation_posts_flat() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-off");
    let daemon = Daemon::spawn(&config(&fake, "off", 600, &dir)).await;
    send(&daemon, &fake, mr(3, "open", "Three"), 1, 0).await;
    send(&daemon, &fake, note(3, "a comment"), 2, 0).await;
    let msgs = fake.messages();
    assert_eq!(threads(&msgs), [None, None], "{msgs:#?}");
    assert!(msgs[1].text.contains("a comment"));
    daemon.stop();
}

#[test]
fn check_says_a_slack_webhook_url_posts_a_conversation_flat() {
    let _turn = turn::shared();
    let dir = TempDir::new("conv-slack-check");
    let config = dir.write(
        "config.toml",
        "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
         [[channels]]\nname = \"hook\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/K\"\n\
         conversation = \"thread\"\n",
    );
    let out = crate::support::cli::run(["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("channel \"hook\": conversation = \"thread\" falls back to flat posts: a slack incoming webhook gives no message id"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn slack_a_429_is_waited_out() {
    let _turn = turn::shared_async().await;
    let fake = FakeSlack::start().await;
    let dir = TempDir::new("conv-slack-429");
    fake.throttle(1, 1);
    let daemon = Daemon::spawn(&config(&fake, "thread", 600, &dir)).await;
    assert_429_waited_out(
        daemon,
        fake.settle(1, 0, WAIT),
        || fake.requests(),
        |r| r.status,
    )
    .await;
}
