//! Conversations on Cliq in the OAuth mode (a refresh token traded for access tokens), through
//! the daemon against the Cliq API fake (`support::fake_cliq_api`): a merge request's life is
//! one root (posted with `sync_message`) and every later event a reply with its
//! `thread_message_id`, the merge also shown in the channel (`post_in_parent`, the default
//! broadcast list), and on `thread+edit` the root edited (`PUT /api/v2/chats/{chat}/messages/{id}`,
//! text only) to the last root card the daemon sent, the channel's chat id asked once. Two merge
//! requests interleaved keep their threads, across a restart; a root deleted in the chat makes
//! the next event one new root, with no loop; posts and edits stay within the channel's budget
//! in every minute. OAuth: an access token is renewed before it expires; one expired mid-run
//! is refreshed once and the post sent again; a refused refresh dead-letters the message with an error naming
//! `channels[0].refresh_token`; no client secret, refresh token or access token reaches the
//! (debug) log. Cliq's unconfirmed facts fail soft: a channel refusing threads gets flat
//! replies, a refused edit is logged once and replies go on. `check` says that a zapikey channel
//! asking for a conversation posts flat.

use crate::support::conversation::{
    after_restart, assert_shows, interleaved, interleaved_threads, life, mr, new_roots, note,
    note_on, over_budget, wait_for, WAIT,
};
use crate::support::daemon::{Daemon, Settings};
use crate::support::fake_cliq_api::{
    chat_id, FakeCliqApi, Message, ACCESS_TOKEN_PREFIX, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
};
use crate::support::temp::TempDir;
use crate::support::turn;
use std::time::{Duration, Instant};

const CHANNEL: &str = "dev";

/// A Cliq channel `cq` in the OAuth mode posting to the fake's channel [`CHANNEL`], with
/// `conversation = mode` and a budget of `rate` a minute; `extra` lines appended.
fn config(
    fake: &FakeCliqApi,
    mode: &str,
    rate: u32,
    extra: &str,
    dir: &TempDir,
) -> std::path::PathBuf {
    let mut settings = Settings::new(Vec::new());
    settings.max_attempts = 3;
    settings.rest = format!(
        "[[channels]]\nname = \"cq\"\nkind = \"cliq\"\nurl = \"{}\"\naccounts_url = \"{}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nrefresh_token_env = \"CLIQ_REFRESH\"\n\
         rate_per_minute = {rate}\nconversation = \"{mode}\"\n{extra}",
        fake.url(CHANNEL),
        fake.base()
    );
    settings.write_config(dir)
}

/// Starts the daemon with the refresh token in its environment.
async fn spawn(config: &std::path::Path) -> Daemon {
    Daemon::spawn_with_env(config, &[("CLIQ_REFRESH", REFRESH_TOKEN)]).await
}

/// Lines of `log` about messages delivered.
fn delivered(log: &[String]) -> usize {
    log.iter()
        .filter(|l| l.contains("delivered delivery="))
        .count()
}

/// Waits until the daemon logged `n` messages delivered (each after its edit, if any).
async fn settle(daemon: &Daemon, fake: &FakeCliqApi, n: usize) {
    wait_for(
        || delivered(&daemon.log()) >= n,
        || {
            format!(
                "waiting for {n} deliveries: {:#?}\n{:#?}",
                fake.calls(),
                daemon.log()
            )
        },
    )
    .await;
}

/// Fails if a client secret, refresh token or access token is in the log.
fn assert_no_tokens(log: &[String]) {
    assert!(log.iter().any(|l| l.contains("ready")), "no log: {log:#?}");
    for secret in [CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN_PREFIX, CLIENT_ID] {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked: {leaks:#?}");
    }
}

/// The root a message replies to.
fn thread(m: &Message) -> Option<&str> {
    m.thread.as_deref()
}

#[tokio::test]
async fn cliq_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    let dir = TempDir::new("conv-cq-life");
    let daemon = spawn(&config(&fake, "thread+edit", 600, "", &dir)).await;
    for (i, (header, body)) in life(1).into_iter().enumerate() {
        let a = daemon.post(header, body, None, None).await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
        settle(&daemon, &fake, i + 1).await;
    }
    // The root card, the opening as its first reply, then a reply per event.
    let msgs = fake.messages_in(CHANNEL);
    assert_eq!(msgs.len(), 9, "{msgs:#?}");
    let root = &msgs[0];
    assert!(root.sync, "the root asks for its id: {root:#?}");
    assert_eq!(thread(root), None);
    for m in &msgs[1..] {
        assert_eq!(thread(m), Some(root.id.as_str()), "{m:#?}");
        assert!(!m.sync, "{m:#?}");
    }
    let text = |m: &Message| m.body["text"].as_str().unwrap_or_default().to_string();
    assert!(
        text(&msgs[1]).contains("opened merge request [!1 Feature 1]"),
        "{msgs:#?}"
    );
    assert!(text(&msgs[2]).contains("first look at 1"), "{msgs:#?}");
    // The default broadcast list: the pipeline that passed after a failure (fixed) and the merge
    // are also shown in the channel, nothing else.
    assert!(
        msgs[7].in_parent,
        "the fixed pipeline is shown in the channel"
    );
    assert!(msgs[8].in_parent, "the merge is shown in the channel");
    assert!(msgs[1..7].iter().all(|m| !m.in_parent), "{msgs:#?}");
    // The root was edited in place, text only, to the last root card the daemon sent: once for
    // the approval, each pipeline and the merge (a comment leaves the card as it is).
    assert_eq!(root.edits.len(), 4, "{root:#?}");
    assert_eq!(root.text, *root.edits.last().unwrap());
    assert_shows(
        &root.text,
        &[
            "Merge request [!1 Feature 1]",
            "*State:* merged",
            "*Approved by:* Administrator",
            "✅ passed",
        ],
    );
    assert!(root.text.contains("*Pipeline:* [#201]"), "{:?}", root.text);
    // The chat id was asked once; one access token served every call.
    assert_eq!(fake.lookups(), 1);
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.violations(), Vec::<String>::new());
    let log = daemon.stop();
    assert_no_tokens(&log);
}

#[tokio::test]
async fn cliq_two_merge_requests_interleaved_keep_their_threads_across_a_restart() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    let dir = TempDir::new("conv-cq-two");
    let config = config(&fake, "thread", 600, "", &dir);
    let daemon = spawn(&config).await;
    for (n, (header, body)) in interleaved().into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&daemon, &fake, n + 1).await;
    }
    let (status, _) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.is_some(), "the daemon did not stop on SIGTERM");
    let daemon = spawn(&config).await;
    for (n, (header, body)) in after_restart().into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&daemon, &fake, n + 1).await;
    }
    let msgs = fake.messages_in(CHANNEL);
    assert_eq!(msgs.len(), 8, "{msgs:#?}");
    let (one, two) = (msgs[0].id.as_str(), msgs[1].id.as_str());
    let threads: Vec<Option<&str>> = msgs.iter().map(thread).collect();
    assert_eq!(threads, interleaved_threads(one, two), "{msgs:#?}");
    assert_eq!(fake.edits(), 0, "thread: no edits");
    assert_no_tokens(&daemon.stop());
}

#[tokio::test]
async fn cliq_a_deleted_root_starts_one_new_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    let dir = TempDir::new("conv-cq-lost");
    let daemon = spawn(&config(&fake, "thread+edit", 600, "", &dir)).await;
    let (h, b) = mr(5, "open", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 1).await;
    let first_root = fake.messages_in(CHANNEL)[0].id.clone();
    fake.delete(&first_root);
    // The first comment finds the root gone: a new root card and the comment under it; the
    // second is a reply (a comment leaves the root card as it is).
    for (n, text) in ["after the delete", "and again"].iter().enumerate() {
        let (h, b) = note_on(5, "Five", text);
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
        settle(&daemon, &fake, 2 + n).await;
    }
    let (h, b) = mr(5, "approved", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 4).await;
    // The deleted root card and the opening under it, the new root card and three replies.
    let msgs = fake.messages_in(CHANNEL);
    assert_eq!(msgs.len(), 6, "{msgs:#?}");
    assert_eq!(thread(&msgs[1]), Some(first_root.as_str()), "{msgs:#?}");
    let new_root = &msgs[2];
    assert_eq!(thread(new_root), None, "a new root: {msgs:#?}");
    assert!(new_root.sync);
    for m in &msgs[3..] {
        assert_eq!(thread(m), Some(new_root.id.as_str()), "{msgs:#?}");
    }
    let text = |m: &Message| m.body["text"].as_str().unwrap_or_default().to_string();
    assert!(text(&msgs[3]).contains("after the delete"), "{msgs:#?}");
    assert!(text(&msgs[4]).contains("and again"), "{msgs:#?}");
    // The approval edited the new root, not the deleted one.
    assert_eq!(new_root.edits.len(), 1, "{new_root:#?}");
    assert!(
        new_root.text.contains("*Approved by:* Administrator"),
        "{new_root:#?}"
    );
    assert!(msgs[0].edits.is_empty());
    let refused: Vec<_> = fake.calls().into_iter().filter(|c| c.2 >= 400).collect();
    assert_eq!(refused.len(), 1, "one refused reply, no loop: {refused:#?}");
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn cliq_posts_and_edits_stay_within_the_budget() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    let dir = TempDir::new("conv-cq-budget");
    let daemon = spawn(&config(&fake, "thread+edit", 3, "", &dir)).await;
    for (header, body) in over_budget() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root card, the opening as its first reply and the approval's reply: the minute's 3
    // slots. The approval's edit of the root (and so the merge) waits for the next minute.
    settle(&daemon, &fake, 1).await;
    crate::support::wait_until("the approval's reply", WAIT, || {
        fake.messages_in(CHANNEL).len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.taken(), 3, "{:#?}", fake.calls());
    assert_eq!(fake.messages_in(CHANNEL).len(), 3, "the merge waits");
    assert_eq!(fake.edits(), 0, "the edit waits");
    assert!(fake.max_per_minute() <= 3);
    daemon.stop();
}

#[tokio::test]
async fn cliq_an_expired_access_token_is_refreshed_once_and_the_post_sent_again() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    let dir = TempDir::new("conv-cq-expired");
    let daemon = spawn(&config(&fake, "thread", 600, "", &dir)).await;
    let (h, b) = mr(3, "open", "Three");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 1).await;
    assert_eq!((fake.refreshes(), fake.unauthorized()), (1, 0));
    // The access token expires mid-run: Cliq answers 401, the daemon refreshes and posts again.
    fake.expire_tokens();
    let (h, b) = note(3, "after the expiry");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 2).await;
    assert_eq!((fake.refreshes(), fake.unauthorized()), (2, 1));
    let msgs = fake.messages_in(CHANNEL);
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert_eq!(thread(&msgs[1]), Some(msgs[0].id.as_str()));
    let log = daemon.stop();
    let attempts = log
        .iter()
        .filter(|l| l.contains("post failed") || l.contains("dead letter"))
        .count();
    assert_eq!(attempts, 0, "the retry is within the one attempt: {log:#?}");
    // The debug log is captured (refreshes are logged there), and holds no token.
    let refreshed = log
        .iter()
        .filter(|l| l.contains("refreshed the Zoho access token"))
        .count();
    assert_eq!(refreshed, 2, "{log:#?}");
    assert_no_tokens(&log);
}

#[tokio::test]
async fn cliq_an_access_token_is_refreshed_before_it_expires() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    // A 4 s token is renewed after half its life (the 5 min margin is longer than that).
    fake.set_token_life(4);
    let dir = TempDir::new("conv-cq-early");
    let daemon = spawn(&config(&fake, "thread", 600, "", &dir)).await;
    let (h, b) = mr(7, "open", "Seven");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 1).await;
    let (h, b) = note(7, "soon after");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 2).await;
    assert_eq!(fake.refreshes(), 1, "a live token is kept");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (h, b) = note(7, "later");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 3).await;
    assert_eq!(
        (fake.refreshes(), fake.unauthorized()),
        (2, 0),
        "renewed before Cliq refused it"
    );
    assert_no_tokens(&daemon.stop());
}

#[tokio::test]
async fn cliq_a_throttled_post_waits_for_retry_after() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    fake.throttle(1, 1);
    let dir = TempDir::new("conv-cq-429");
    let daemon = spawn(&config(&fake, "thread", 600, "", &dir)).await;
    let (h, b) = mr(2, "open", "Two");
    let sent = Instant::now();
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    settle(&daemon, &fake, 1).await;
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let calls = fake.calls();
    assert_eq!(calls.first().map(|c| c.2), Some(429), "{calls:#?}");
    assert_eq!(fake.messages_in(CHANNEL).len(), 1);
    assert_no_tokens(&daemon.stop());
}

#[tokio::test]
async fn cliq_a_refused_refresh_is_an_error_naming_the_key() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    fake.refuse_refresh();
    let dir = TempDir::new("conv-cq-refused");
    let daemon = spawn(&config(&fake, "thread", 600, "", &dir)).await;
    let (h, b) = mr(4, "open", "Four");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    crate::support::wait_until("the dead letter", WAIT, || {
        daemon
            .log()
            .iter()
            .any(|l| l.contains("kept as a dead letter"))
    })
    .await;
    let log = daemon.stop();
    let line = log
        .iter()
        .find(|l| l.contains("kept as a dead letter"))
        .unwrap();
    assert!(line.contains("channels[0].refresh_token"), "{line}");
    assert!(line.contains("invalid_code"), "{line}");
    assert_eq!(fake.refused_refreshes(), 1, "refused for good, not retried");
    assert!(fake.messages_in(CHANNEL).is_empty());
    assert_no_tokens(&log);
}

#[tokio::test]
async fn cliq_refused_threads_and_edits_fall_back_to_flat_posts_logged_once() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliqApi::start().await;
    fake.refuse_threads(CHANNEL);
    fake.refuse_edits();
    let dir = TempDir::new("conv-cq-soft");
    let daemon = spawn(&config(&fake, "thread+edit", 600, "", &dir)).await;
    let events = [
        mr(6, "open", "Six"),
        mr(6, "approved", "Six"),
        note(6, "flat a"),
        mr(6, "merge", "Six"),
    ];
    for (n, (header, body)) in events.into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        settle(&daemon, &fake, n + 1).await;
    }
    // The root card, then every event flat (the opening too: its reply was refused).
    let msgs = fake.messages_in(CHANNEL);
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(msgs.iter().all(|m| m.thread.is_none()), "{msgs:#?}");
    let text = |m: &Message| m.body["text"].as_str().unwrap_or_default().to_string();
    assert!(
        text(&msgs[1]).contains("opened merge request [!6 Six]"),
        "{msgs:#?}"
    );
    assert!(text(&msgs[3]).contains("flat a"), "{msgs:#?}");
    assert_eq!(fake.edits(), 0);
    let log = daemon.stop();
    let count = |s: &str| log.iter().filter(|l| l.contains(s)).count();
    assert_eq!(count("Cliq refused a thread reply"), 1, "{log:#?}");
    assert_eq!(count("Cliq refused to edit a thread's root"), 1, "{log:#?}");
    assert!(count("operation_not_allowed") >= 1 && count("access_denied") >= 1);
    assert_eq!(count("dead letter"), 0, "{log:#?}");
    // After the first refusals nothing refused is sent again.
    let refused = fake.calls().into_iter().filter(|c| c.2 >= 400).count();
    assert_eq!(refused, 2, "{:#?}", fake.calls());
    assert_eq!(chat_id(CHANNEL), format!("CT_2230_{CHANNEL}"));
}

#[test]
fn check_says_a_cliq_webhook_conversation_posts_flat() {
    let _turn = turn::shared();
    let dir = TempDir::new("conv-cq-check");
    let config = dir.write(
        "config.toml",
        "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
         [[channels]]\nname = \"hook\"\nurl = \"https://cliq.zoho.com/api/v2/channelsbyname/dev/message\"\n\
         zapikey = \"k\"\nconversation = \"thread\"\n\
         [[channels]]\nname = \"api\"\nchannel = \"dev\"\nclient_id = \"i\"\nclient_secret = \"s\"\n\
         refresh_token = \"r\"\naccounts_url = \"https://accounts.zoho.eu\"\nconversation = \"thread+edit\"\n",
    );
    let out = crate::support::cli::run(["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let flat: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("falls back to flat posts"))
        .collect();
    assert_eq!(flat.len(), 1, "{}", out.stdout);
    assert!(flat[0].starts_with("channel \"hook\": "), "{}", flat[0]);
    assert!(flat[0].contains("OAuth mode"), "{}", flat[0]);
}
