//! Conversations on Discord, through the daemon against the fake webhook API
//! ([`crate::support::fake_discord`]): with `forum = true` a merge request's life is one forum
//! post (its title the root card's) and every later event a message in it, and on
//! `thread+edit` the post's first message is the merge request's root card (the opening its
//! first reply), edited for every event that changes it, ending merged, its pipeline passed,
//! approved; a broadcast posts nothing more (a forum has no channel beside its posts). In a
//! text channel a webhook cannot thread: replies are posts in the channel and the root is edited
//! in place. Two merge requests interleaved keep their own forum posts, across a restart; a
//! forum post deleted in the chat makes the next event a new post, once; a root message deleted
//! in a text channel is found by the next edit (404 Unknown Message) and the card becomes one
//! new root. Edits take posting slots (a budget of 3 a minute: root card, opening, reply, then
//! nothing), and a forum channel without conversations posts each message as a forum post of
//! its own. `check` says what each Discord conversation channel does.

use crate::support::conversation::{
    after_restart, assert_shows, channel_config, interleaved, life, life_step, mr, new_roots, note,
    note_on, over_budget, WAIT,
};
use crate::support::daemon::Daemon;
use crate::support::fake_discord::{FakeDiscord, FORUM_CHANNEL, FORUM_HOOK, TEXT_CHANNEL, TOKEN};
use crate::support::temp::TempDir;
use crate::support::turn;
use std::time::Duration;

/// A Discord channel `dc` through the fake's forum (`forum`) or text channel webhook, with
/// `conversation = mode` and a budget of `rate` posts a minute.
fn config(
    fake: &FakeDiscord,
    forum: bool,
    mode: &str,
    rate: u32,
    dir: &TempDir,
) -> std::path::PathBuf {
    channel_config(
        format!(
            "[[channels]]\nname = \"dc\"\nkind = \"discord\"\nurl = \"{}\"\nforum = {forum}\n\
             rate_per_minute = {rate}\nconversation = \"{mode}\"\n",
            fake.url(forum)
        ),
        dir,
    )
}

/// The requests the fake refused.
fn refused(fake: &FakeDiscord) -> Vec<crate::support::fake_discord::Request> {
    fake.requests()
        .into_iter()
        .filter(|r| !(200..300).contains(&r.status))
        .collect()
}

/// Fails unless `root` shows the merge request's state at the end of its life: merged, its
/// pipeline passed, approved.
fn assert_final_root(root: &crate::support::fake_discord::Message) {
    assert_ne!(root.body["embeds"], root.first["embeds"], "{root:#?}");
    assert_shows(
        &root.text(),
        &[
            "State:** merged",
            "✅ passed",
            "Approved by:** Administrator",
        ],
    );
}

#[tokio::test]
async fn discord_forum_a_merge_requests_life_is_one_post_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-life");
    let cfg = config(&fake, true, "thread+edit", 600, &dir);
    let daemon = Daemon::spawn_with_env(&cfg, &[("RUST_LOG", "debug")]).await;
    let (mut posts, mut edits) = (0, 0);
    for (i, (header, body)) in life(1).into_iter().enumerate() {
        let a = daemon.post(header, body, None, None).await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
        (posts, edits) = life_step(i, header, posts, edits);
        fake.settle(&[("POST", posts), ("PATCH", edits)], WAIT)
            .await;
    }
    // The merge is a default broadcast key: a forum has nowhere else to show it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((fake.accepted("POST"), fake.accepted("PATCH")), (9, 4));
    assert!(refused(&fake).is_empty(), "{:#?}", refused(&fake));
    let threads = fake.threads();
    assert_eq!(threads.len(), 1, "one forum post: {threads:#?}");
    let msgs = fake.messages_in(&threads[0].id);
    assert_eq!(msgs.len(), 9, "every event in the post: {msgs:#?}");
    assert!(fake.messages_in(FORUM_CHANNEL).is_empty());
    let root = &msgs[0];
    assert_eq!(
        root.id, threads[0].id,
        "the post's starter message is the root"
    );
    assert_eq!(threads[0].name, root.title());
    // Each later message named the post: `?wait=true&thread_id=`, through the forum's webhook.
    let requests = fake.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts[0].query, "wait=true");
    for r in &posts[1..] {
        assert_eq!(r.query, format!("wait=true&thread_id={}", threads[0].id));
    }
    assert!(requests
        .iter()
        .all(|r| r.webhook.as_deref() == Some(FORUM_HOOK)));
    assert!(threads[0].name.contains("Feature 1"), "{threads:#?}");
    assert!(msgs[1].text().contains("opened merge request"), "{msgs:#?}");
    assert!(
        msgs[2].text().contains("first look at 1"),
        "{:?}",
        msgs[2].text()
    );
    // The root card was edited in place (the approval, each pipeline, the merge) and shows the
    // merge request's whole state.
    assert_eq!(root.edits, 4);
    assert_final_root(root);
    let log = daemon.stop();
    assert!(
        !log.iter().any(|l| l.contains(TOKEN)),
        "the webhook token in the log"
    );
}

#[tokio::test]
async fn discord_text_channel_edits_its_root_and_posts_replies_in_the_channel() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-text");
    let daemon = Daemon::spawn(&config(&fake, false, "thread+edit", 600, &dir)).await;
    let (mut posts, mut edits) = (0, 0);
    for (i, (header, body)) in life(2).into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        (posts, edits) = life_step(i, header, posts, edits);
        fake.settle(&[("POST", posts), ("PATCH", edits)], WAIT)
            .await;
    }
    assert!(refused(&fake).is_empty(), "{:#?}", refused(&fake));
    assert!(
        fake.threads().is_empty(),
        "a text channel's webhook starts no threads"
    );
    let msgs = fake.messages_in(TEXT_CHANNEL);
    assert_eq!(msgs.len(), 9, "{msgs:#?}");
    let root = &msgs[0];
    assert!(msgs[1].text().contains("opened merge request"), "{msgs:#?}");
    assert_eq!(root.edits, 4);
    assert!(msgs[1..].iter().all(|m| m.edits == 0));
    assert_final_root(root);
    daemon.stop();
}

#[tokio::test]
async fn discord_forum_two_merge_requests_interleaved_keep_their_posts_across_a_restart() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-two");
    let cfg = config(&fake, true, "thread", 600, &dir);
    let daemon = Daemon::spawn(&cfg).await;
    for (n, (header, body)) in interleaved().into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        fake.settle(&[("POST", n + 1)], WAIT).await;
    }
    // SIGTERM: the last post's outcome is recorded before the exit.
    let (status, _) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.is_some(), "the daemon did not stop on SIGTERM");
    let daemon = Daemon::spawn(&cfg).await;
    for (n, (header, body)) in after_restart().into_iter().enumerate() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
        fake.settle(&[("POST", 7 + n)], WAIT).await;
    }
    let threads = fake.threads();
    assert_eq!(threads.len(), 2, "{threads:#?}");
    assert!(threads[0].name.contains("One") && threads[1].name.contains("Two"));
    let one = fake.messages_in(&threads[0].id);
    let two = fake.messages_in(&threads[1].id);
    assert_eq!((one.len(), two.len()), (4, 4), "{one:#?} {two:#?}");
    assert!(one[1].text().contains("on one a") && one[2].text().contains("on one b"));
    assert!(two[1].text().contains("on two a") && two[3].text().contains("on two b"));
    assert_eq!(fake.accepted("PATCH"), 0, "thread: no edits");
    daemon.stop();
}

#[tokio::test]
async fn discord_a_deleted_forum_post_starts_one_new_post() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-lost-forum");
    let daemon = Daemon::spawn(&config(&fake, true, "thread+edit", 600, &dir)).await;
    let (h, b) = mr(5, "open", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    // The root card's forum post and the opening in it.
    fake.settle(&[("POST", 2)], WAIT).await;
    fake.delete_thread(&fake.threads()[0].id);
    // The first comment finds its post gone: a new post (the root card) and the comment in it;
    // the second is a message in it (a comment leaves the card as it is).
    for (n, text) in ["after the delete", "and again"].iter().enumerate() {
        let (h, b) = note_on(5, "Five", text);
        assert_eq!(daemon.post(h, b, None, None).await.status, 200);
        fake.settle(&[("POST", 4 + n)], WAIT).await;
    }
    let (h, b) = mr(5, "approved", "Five");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    fake.settle(&[("POST", 6), ("PATCH", 1)], WAIT).await;
    let threads = fake.threads();
    assert_eq!(threads.len(), 2, "{threads:#?}");
    assert!(threads[0].deleted && !threads[1].deleted);
    assert!(threads[1].name.contains("Five"), "{threads:#?}");
    let msgs = fake.messages_in(&threads[1].id);
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert_eq!(msgs[0].id, threads[1].id, "the root card starts the post");
    assert!(msgs[1].text().contains("after the delete"), "{msgs:#?}");
    assert!(msgs[2].text().contains("and again"), "{msgs:#?}");
    assert!(
        msgs[3].text().contains("approved merge request"),
        "{msgs:#?}"
    );
    // The approval edited the new post's root card, not the deleted one's.
    assert_eq!(msgs[0].edits, 1);
    assert!(
        msgs[0].text().contains("Approved by:** Administrator"),
        "{msgs:#?}"
    );
    let refused = refused(&fake);
    assert_eq!(refused.len(), 1, "one refused reply, no loop: {refused:#?}");
    assert_eq!(
        (refused[0].code, refused[0].message.as_deref()),
        (Some(10003), Some("Unknown Channel"))
    );
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn discord_a_root_deleted_in_a_text_channel_is_found_by_the_edit_and_posted_anew_once() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-lost-text");
    let daemon = Daemon::spawn(&config(&fake, false, "thread+edit", 600, &dir)).await;
    let (h, b) = mr(6, "open", "Six");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    // The root card and the opening, a post of its own.
    fake.settle(&[("POST", 2)], WAIT).await;
    let first_root = fake.messages()[0].clone();
    assert!(
        first_root.title().contains("Merge request !6"),
        "{first_root:#?}"
    );
    fake.delete_message(&first_root.id);
    // The approval's reply is a post; its edit finds the root gone: the card is a new root.
    let (h, b) = mr(6, "approved", "Six");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    fake.settle(&[("POST", 4)], WAIT).await;
    let (h, b) = mr(6, "merge", "Six");
    assert_eq!(daemon.post(h, b, None, None).await.status, 200);
    fake.settle(&[("POST", 5), ("PATCH", 1)], WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The deleted root is gone; the opening, the approval's reply, the new root (the card as
    // the approval left it) and the merge's reply remain.
    let msgs = fake.messages_in(TEXT_CHANNEL);
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs[0].text().contains("opened merge request"), "{msgs:#?}");
    assert!(
        msgs[1].text().contains("approved merge request"),
        "{msgs:#?}"
    );
    assert!(msgs[3].text().contains("merged merge request"), "{msgs:#?}");
    let new_root = &msgs[2];
    assert_eq!(
        new_root.title(),
        first_root.title(),
        "the root card: {msgs:#?}"
    );
    let first = new_root.first["embeds"][0]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(first.contains("Approved by:** Administrator"), "{first}");
    assert!(first.contains("State:** opened"), "{first}");
    assert_eq!(new_root.edits, 1, "edited to the merge: {msgs:#?}");
    assert!(new_root.text().contains("State:** merged"), "{msgs:#?}");
    let refused = refused(&fake);
    assert_eq!(refused.len(), 1, "one refused edit, no loop: {refused:#?}");
    assert_eq!(
        (refused[0].method.as_str(), refused[0].code),
        ("PATCH", Some(10008))
    );
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn discord_edits_count_against_the_budget() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-budget");
    let daemon = Daemon::spawn(&config(&fake, true, "thread+edit", 3, &dir)).await;
    for (header, body) in over_budget() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root card, the opening as its first reply and the approval's reply: the minute's 3
    // slots. The approval's edit of the root (and so the merge) waits for the next minute.
    fake.settle(&[("POST", 3)], WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.requests().len(), 3, "{:#?}", fake.requests());
    assert_eq!(fake.accepted("PATCH"), 0, "the edit waits");
    assert!(fake.max_per_minute() <= 3);
    daemon.stop();
}

#[tokio::test]
async fn discord_a_forum_without_conversations_posts_each_message_as_a_post() {
    let _turn = turn::shared_async().await;
    let fake = FakeDiscord::start().await;
    let dir = TempDir::new("conv-dc-flat-forum");
    let config = channel_config(
        format!(
            "[[channels]]\nname = \"dc\"\nkind = \"discord\"\nurl = \"{}\"\nforum = true\n",
            fake.url(true)
        ),
        &dir,
    );
    let daemon = Daemon::spawn(&config).await;
    for (header, body) in [mr(3, "open", "Three"), note(3, "a comment")] {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    fake.settle(&[("POST", 2)], WAIT).await;
    let threads = fake.threads();
    assert_eq!(threads.len(), 2, "{threads:#?}");
    assert!(threads[0].name.contains("Three"), "{threads:#?}");
    assert!(refused(&fake).is_empty(), "{:#?}", refused(&fake));
    daemon.stop();
}

#[test]
fn check_says_what_discord_conversations_do() {
    let _turn = turn::shared();
    let dir = TempDir::new("conv-dc-cli");
    let hook = "https://discord.com/api/webhooks/1/abc";
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
             [[channels]]\nname = \"forum\"\nkind = \"discord\"\nurl = \"{hook}\"\nforum = true\nconversation = \"thread+edit\"\n\
             [[channels]]\nname = \"text\"\nkind = \"discord\"\nurl = \"{hook}\"\nconversation = \"thread\"\n"
        ),
    );
    let out = crate::support::cli::run(["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(
        "channel \"forum\": conversation = \"thread+edit\": threads + root edits (a forum post per object; broadcasts do not apply"
    ), "{}", out.stdout);
    assert!(out.stdout.contains(
        "channel \"text\": conversation = \"thread\": flat posts: discord cannot thread through a text channel's webhook"
    ), "{}", out.stdout);
}
