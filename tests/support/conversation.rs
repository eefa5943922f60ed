//! What the conversation tests (`tests/conversations*.rs`) share, written once: the GitLab
//! events of a merge request's life (built from the bundled samples), the posts and edits each
//! of them makes on `thread+edit`, the interleaved and over-budget sequences, a channel's config,
//! the bounded waits (for a condition, for a fake to go quiet, for a Matrix room to hold `n`
//! events), and what the tests read back (a Matrix event's relation, the "new root" log lines).

use super::daemon::{Daemon, Settings};
use super::samples;
use super::synapse::Synapse;
use super::temp::TempDir;
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a conversation test waits for the chat to show what it expects.
pub const WAIT: Duration = Duration::from_secs(20);

/// One webhook: its `X-Gitlab-Event` header and its body.
pub type Event = (&'static str, Vec<u8>);

/// The project every event of these tests is about.
pub fn project() -> Value {
    samples::json("pipeline__basic.json")["project"].clone()
}

/// A merge request event about `!iid` with `action` (and the state it leaves).
pub fn mr(iid: u64, action: &str, title: &str) -> Event {
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

/// A comment on `!iid` (its payload's merge request as the note sample has it).
pub fn note(iid: u64, text: &str) -> Event {
    let mut v = samples::json("note__merge_request.json");
    v["project"] = project();
    v["merge_request"]["iid"] = json!(iid);
    v["object_attributes"]["note"] = json!(text);
    ("Note Hook", v.to_string().into_bytes())
}

/// A comment on `!iid` titled `title`, its payload's merge request the one [`mr`] posts (GitLab
/// sends a comment with the merge request as it is: the root card it leaves is unchanged).
pub fn note_on(iid: u64, title: &str, text: &str) -> Event {
    let mut v = samples::json("note__merge_request.json");
    let a = &samples::json("merge_request__open.json")["object_attributes"];
    v["project"] = project();
    for field in ["source_branch", "target_branch", "labels"] {
        v["merge_request"][field] = a[field].clone();
    }
    v["merge_request"]["title"] = json!(title);
    v["merge_request"]["iid"] = json!(iid);
    v["object_attributes"]["note"] = json!(text);
    ("Note Hook", v.to_string().into_bytes())
}

/// Pipeline `id` of `!iid`, finished with `status`.
pub fn pipeline(iid: u64, id: u64, status: &str) -> Event {
    let mut v = samples::json("pipeline__basic.json");
    v["merge_request"]["iid"] = json!(iid);
    v["object_attributes"]["id"] = json!(id);
    v["object_attributes"]["status"] = json!(status);
    ("Pipeline Hook", v.to_string().into_bytes())
}

/// A merge request's life, in order: opened, three comments, approved, its pipeline failed
/// then passed, merged.
pub fn life(iid: u64) -> Vec<Event> {
    let title = format!("Feature {iid}");
    vec![
        mr(iid, "open", &title),
        note_on(iid, &title, &format!("first look at {iid}")),
        note_on(iid, &title, &format!("second look at {iid}")),
        note_on(iid, &title, &format!("third look at {iid}")),
        mr(iid, "approved", &title),
        pipeline(iid, 100 + iid, "failed"),
        pipeline(iid, 200 + iid, "success"),
        mr(iid, "merge", &title),
    ]
}

/// The posts and edits on `thread+edit` after event `i` (`header`) of [`life`], from those
/// before it: the root card and the opening as its first reply, then a reply each, and an edit
/// of the root for every event that changes its card (not a comment: the built-in cards show
/// no count).
pub fn life_step(i: usize, header: &str, posts: usize, edits: usize) -> (usize, usize) {
    match (i, header) {
        (0, _) => (posts + 2, edits),
        (_, "Note Hook") => (posts + 1, edits),
        _ => (posts + 1, edits + 1),
    }
}

/// Two merge requests' events interleaved (`!1` and `!2`), before a restart: the two roots,
/// then replies to `!1`, `!2`, `!2`, `!1`.
pub fn interleaved() -> [Event; 6] {
    [
        mr(1, "open", "One"),
        mr(2, "open", "Two"),
        note(1, "on one a"),
        note(2, "on two a"),
        pipeline(2, 302, "failed"),
        note(1, "on one b"),
    ]
}

/// The events after the restart that follows [`interleaved`]: a reply to `!2`, then to `!1`.
pub fn after_restart() -> [Event; 2] {
    [note(2, "on two b"), mr(1, "merge", "One")]
}

/// The thread of each message of [`interleaved`] then [`after_restart`] on `thread`, `one`
/// and `two` the roots of `!1` and `!2` (`None`: a root).
pub fn interleaved_threads<T: Copy>(one: T, two: T) -> Vec<Option<T>> {
    vec![
        None,
        None,
        Some(one),
        Some(two),
        Some(two),
        Some(one),
        Some(two),
        Some(one),
    ]
}

/// Three events about `!8` on `thread+edit` that need four posting slots and an edit: the
/// opening (root card and reply), the approval (reply and an edit of the root), the merge.
pub fn over_budget() -> [Event; 3] {
    [
        mr(8, "open", "Eight"),
        mr(8, "approved", "Eight"),
        mr(8, "merge", "Eight"),
    ]
}

/// Writes the daemon's config with `channel` (one `[[channels]]` table) into `dir`.
pub fn channel_config(channel: String, dir: &TempDir) -> PathBuf {
    let mut settings = Settings::new(Vec::new());
    settings.rest = channel;
    settings.write_config(dir)
}

/// Polls `cond` every 20 ms until it holds; fails after [`WAIT`] with `what()`.
pub async fn wait_for(mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a fake saw no request for half a second (`requests` the ones it saw so far).
pub async fn quiet<R: std::fmt::Debug>(requests: impl Fn() -> Vec<R>) {
    let mut seen = requests().len();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = requests().len();
        if now == seen {
            return;
        }
        seen = now;
    }
    panic!("the fake never went quiet: {:#?}", requests());
}

/// Fails unless `text` (a message as the chat shows it) shows each of `shown`.
pub fn assert_shows(text: &str, shown: &[&str]) {
    for want in shown {
        assert!(text.contains(want), "{want:?} in {text:?}");
    }
}

/// Posts `!9`'s opening to `daemon`, a `thread` channel whose fake answers the first request
/// 429 with a one-second `Retry-After`, and waits until `settled`; fails unless the wait was
/// honoured, the fake saw the 429 and then the post (`requests`, each with its `status`), and
/// the daemon logged the post as throttled.
pub async fn assert_429_waited_out<R: std::fmt::Debug>(
    daemon: Daemon,
    settled: impl Future<Output = ()>,
    requests: impl Fn() -> Vec<R>,
    status: impl Fn(&R) -> u16,
) {
    let started = Instant::now();
    let (header, body) = mr(9, "open", "Nine");
    assert_eq!(daemon.post(header, body, None, None).await.status, 200);
    settled.await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the wait was not honoured"
    );
    let requests = requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(status(&requests[0]), 429);
    let log = daemon.stop();
    assert!(log.iter().any(|l| l.contains("throttled=true")), "{log:#?}");
}

/// How many lines of the daemon's `log` say it started a new root.
pub fn new_roots(log: &[String]) -> usize {
    log.iter()
        .filter(|l| l.contains("starting a new root"))
        .count()
}

/// The relation of a Matrix event, if any: its `rel_type` and `event_id` (`""` for none).
pub fn relation(e: &Value) -> (&str, &str) {
    let r = &e["content"]["m.relates_to"];
    (
        r["rel_type"].as_str().unwrap_or_default(),
        r["event_id"].as_str().unwrap_or_default(),
    )
}

/// Waits until `room` holds at least `n` events, as the second user reads it; returns them.
pub async fn room_messages(hs: &Synapse, room: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let msgs = hs.messages(&hs.other, room).await;
        if msgs.len() >= n {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n}: {msgs:#?}\n{}",
            msgs.len(),
            hs.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
