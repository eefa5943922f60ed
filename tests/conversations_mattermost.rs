//! Conversations on Mattermost's API mode, through the daemon against the Mattermost fake
//! (`support::fake_mattermost`): a merge request's life is one root post and every later event
//! a reply with its `root_id`, across a restart; a broadcast key's reply is also shown in the
//! channel as a short post of its own linking to the thread (`{server}/{team}/pl/{root}`), the
//! first reply under a new root card too; on
//! `thread+edit` the root (the merge request's root card, the opening its first reply) is
//! patched to the latest root card, ending merged, its pipeline passed, approved (a comment
//! does not patch it); two merge requests interleaved
//! keep their threads; a deleted root ("Invalid RootId parameter") starts one new root; a 429
//! is waited out and edits take posting slots. The token never appears in the debug log.

use crate::support::conversation::{
    assert_429_waited_out, assert_shows, channel_config, interleaved, life, life_step, mr,
    new_roots, note, note_on, over_budget, quiet, wait_for, WAIT,
};
use crate::support::daemon::Daemon;
use crate::support::fake_mattermost::{FakeMattermost, Post, CHANNEL, TOKEN};
use crate::support::temp::TempDir;
use crate::support::turn;
use std::time::Duration;

/// A Mattermost channel `mm` in the API mode, team `dev`, with `conversation = mode` and
/// `rate` posts a minute.
fn config(fake: &FakeMattermost, mode: &str, rate: u32, dir: &TempDir) -> std::path::PathBuf {
    channel_config(
        format!(
            "[[channels]]\nname = \"mm\"\nkind = \"mattermost\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\
             channel_id = \"{CHANNEL}\"\nteam = \"dev\"\nrate_per_minute = {rate}\nconversation = \"{mode}\"\n",
            fake.url()
        ),
        dir,
    )
}

/// The posts of the conversations: roots and replies, not the broadcast lines.
fn thread_posts(fake: &FakeMattermost) -> Vec<Post> {
    fake.posts()
        .into_iter()
        .filter(|p| !p.message.contains("/pl/"))
        .collect()
}

/// Posts one webhook and waits for `n` roots and replies and `edits` edits.
async fn send(
    daemon: &Daemon,
    fake: &FakeMattermost,
    event: (&str, Vec<u8>),
    n: usize,
    edits: usize,
) {
    let (header, body) = event;
    assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    wait_for(
        || thread_posts(fake).len() >= n && fake.accepted("patch") >= edits,
        || format!("{n} posts, {edits} edits: {:#?}", fake.requests()),
    )
    .await;
}

#[tokio::test]
async fn mattermost_a_merge_requests_life_is_one_thread_under_an_edited_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mm-life");
    let config = config(&fake, "thread+edit", 600, &dir);
    let mut daemon = Daemon::spawn(&config).await;
    let (mut n, mut edits) = (0, 0);
    for (i, event) in life(2).into_iter().enumerate() {
        if i == 4 {
            // Threads survive a restart: the map is in the outbox.
            let (status, _) = daemon.terminate(WAIT).await;
            assert!(status.is_some(), "the daemon did not stop on SIGTERM");
            daemon = Daemon::spawn(&config).await;
        }
        // The root card and the opening as its first reply; then a reply each, and an edit of
        // the root for each event that changes its card (not a comment: it shows no count).
        (n, edits) = life_step(i, event.0, n, edits);
        send(&daemon, &fake, event, n, edits).await;
    }
    // A comment after the merge (its payload says merged, as GitLab's does): a reply, no edit.
    let (header, body) = note_on(2, "Feature 2", "after the merge");
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["merge_request"]["state"] = "merged".into();
    send(&daemon, &fake, (header, v.to_string().into_bytes()), 10, 4).await;
    quiet(|| fake.requests()).await;
    assert_eq!(fake.accepted("patch"), 4, "{:#?}", fake.requests());
    let posts = thread_posts(&fake);
    assert_eq!(posts.len(), 10, "{posts:#?}");
    let root = &posts[0];
    assert_eq!(root.root_id, "", "the root is in the channel");
    for p in &posts[1..] {
        assert_eq!(p.root_id, root.id, "{p:#?}");
    }
    assert_shows(&posts[1].message, &["opened merge request"]);
    assert_shows(&posts[2].message, &["first look at 2"]);
    assert!(posts[9].message.contains("after the merge"), "{posts:#?}");
    // The merge (a default broadcast key) is also a short line in the channel, linking to
    // the thread; the comments are not.
    let shown: Vec<Post> = fake
        .posts()
        .into_iter()
        .filter(|p| p.message.contains("/pl/"))
        .collect();
    let link = format!("]({}/dev/pl/{})", fake.url(), root.id);
    assert!(!shown.is_empty(), "{:#?}", fake.posts());
    for s in &shown {
        assert_eq!(s.root_id, "", "{s:#?}");
        assert!(s.message.contains(&link), "{s:#?}");
        assert!(!s.message.contains("look at"), "{s:#?}");
    }
    // The root was patched in place to the latest root card the daemon sent.
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.what == "patch" && r.error.is_none())
        .collect();
    let last = &patches[patches.len() - 1].body;
    assert_eq!(root.message, last["message"].as_str().unwrap());
    assert_eq!(root.props, last["props"]);
    assert_ne!(root.message, root.first_message, "the root changed");
    assert_shows(
        &root.message,
        &[
            "Merge request [!2 Feature 2]",
            "**State:** merged",
            "✅ passed",
            "**Approved by:** Administrator",
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
async fn mattermost_a_broadcast_that_starts_a_conversation_is_shown_in_the_channel() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mm-first-shown");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 600, &dir)).await;
    // The first event the bridge sees about !3 is its merge (a default broadcast key): the root
    // card, the merge as its first reply, and the short line in the channel linking to it.
    send(&daemon, &fake, mr(3, "merge", "Three"), 2, 0).await;
    quiet(|| fake.requests()).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    let root = &posts[0];
    assert_eq!(root.root_id, "", "{posts:#?}");
    assert!(root.message.contains("**State:** merged"), "{posts:#?}");
    assert_eq!(posts[1].root_id, root.id, "{posts:#?}");
    assert!(
        posts[1].message.contains("merged merge request"),
        "{posts:#?}"
    );
    let link = format!("]({}/dev/pl/{})", fake.url(), root.id);
    assert_eq!(posts[2].root_id, "", "{posts:#?}");
    assert!(posts[2].message.contains(&link), "{posts:#?}");
    daemon.stop();
}

#[tokio::test]
async fn mattermost_two_merge_requests_interleaved_keep_their_threads() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mm-two");
    let daemon = Daemon::spawn(&config(&fake, "thread", 600, &dir)).await;
    for (n, event) in interleaved().into_iter().enumerate() {
        send(&daemon, &fake, event, n + 1, 0).await;
    }
    let posts = thread_posts(&fake);
    let (one, two) = (posts[0].id.as_str(), posts[1].id.as_str());
    let roots: Vec<&str> = posts.iter().map(|p| p.root_id.as_str()).collect();
    assert_eq!(roots, ["", "", one, two, two, one], "{posts:#?}");
    daemon.stop();
}

#[tokio::test]
async fn mattermost_a_deleted_root_starts_one_new_root() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mm-lost");
    let daemon = Daemon::spawn(&config(&fake, "thread", 600, &dir)).await;
    send(&daemon, &fake, mr(5, "open", "Five"), 1, 0).await;
    fake.delete(&fake.posts()[0].id);
    send(&daemon, &fake, note(5, "after the delete"), 2, 0).await;
    send(&daemon, &fake, note(5, "and again"), 3, 0).await;
    quiet(|| fake.requests()).await;
    let posts = thread_posts(&fake);
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert_eq!(posts[1].root_id, "", "a new root: {posts:#?}");
    assert!(posts[1].message.contains("after the delete"));
    assert_eq!(posts[2].root_id, posts[1].id);
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.error.is_some())
        .collect();
    assert_eq!(refused.len(), 1, "one refused reply, no loop: {refused:#?}");
    assert_eq!(
        refused[0].error.as_deref(),
        Some("api.post.create_post.root_id.app_error")
    );
    let log = daemon.stop();
    assert_eq!(new_roots(&log), 1, "{log:#?}");
}

#[tokio::test]
async fn mattermost_edits_count_against_the_budget() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mm-budget");
    let daemon = Daemon::spawn(&config(&fake, "thread+edit", 3, &dir)).await;
    for (header, body) in over_budget() {
        assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    }
    // The root card, the opening as its first reply and the approval's reply: the minute's 3
    // slots; the approval's edit of the root (and so the merge) waits for the window.
    fake.settle(3, 0, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = fake.requests();
    assert_eq!(
        fake.posts().len(),
        3,
        "the merge waits for the window: {requests:#?}"
    );
    assert_eq!(fake.accepted("patch"), 0, "the edit waits: {requests:#?}");
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(fake.max_per_minute() <= 3, "{requests:#?}");
    daemon.stop();
}

#[tokio::test]
async fn mattermost_a_429_is_waited_out() {
    let _turn = turn::shared_async().await;
    let fake = FakeMattermost::start().await;
    let dir = TempDir::new("conv-mattermost-429");
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
