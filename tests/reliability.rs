//! GitLab-aware reliability through the real binary: pipeline status changes per ref
//! (`pipeline.fixed` / `pipeline.broken`, `only_status_changes`), remembered across a restart.

use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::samples;
use crate::support::temp::TempDir;
use crate::support::{turn, unique, wait_until};
use std::time::Duration;

/// A pipeline webhook for `git_ref` with `status`, numbered `id`.
fn pipeline(id: u64, git_ref: &str, status: &str) -> Vec<u8> {
    let mut v = samples::json("pipeline__basic.json");
    v["object_attributes"]["id"] = id.into();
    v["object_attributes"]["ref"] = git_ref.into();
    v["object_attributes"]["status"] = status.into();
    v["object_attributes"]["source"] = "push".into();
    v.to_string().into_bytes()
}

/// What the channel shows of each post: `"#id passed"`, `"#id failed"`.
fn posted(cliq: &FakeCliq, channel: &str) -> Vec<String> {
    cliq.snapshot()
        .accepted
        .iter()
        .filter(|a| a.channel == channel)
        .map(|a| {
            let title = a.body["card"]["title"].as_str().unwrap_or_default();
            // "Pipeline #31 failed: group/project main"
            title
                .trim_start_matches("Pipeline ")
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `posts` with a post repeated right after itself collapsed, and how many repeats there were:
/// a `kill -9` may re-send the one post in flight per channel (it was accepted, but the outbox had
/// not recorded it yet).
fn collapse_resent(posts: Vec<String>) -> (Vec<String>, usize) {
    let n = posts.len();
    let mut out = posts;
    out.dedup();
    let repeats = n - out.len();
    (out, repeats)
}

#[tokio::test]
async fn pipeline_status_changes_per_ref_survive_a_restart() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let changes = unique("changes");
    let keyed = unique("keyed");
    let dir = TempDir::new("status-changes");
    let mut settings = Settings::new(vec![
        ChannelSpec::new("changes", cliq.url(&changes)),
        // The new keys work as event filters, too.
        ChannelSpec {
            events: Some(vec!["pipeline.broken"]),
            ..ChannelSpec::new("keyed", cliq.url(&keyed))
        },
    ]);
    settings.rest = "[[routes]]\nchannels = [\"changes\"]\nevents = [\"pipeline.*\"]\n\
                     only_status_changes = true\n\n\
                     [[routes]]\nchannels = [\"keyed\"]\n"
        .into();
    let config = settings.write_config(&dir);
    let header = samples::header("pipeline__basic.json");

    // Interleaved on two refs: each goes success → failed, then (after the restart)
    // failed → success.
    let first = Daemon::spawn(&config).await;
    for (id, r, status) in [
        (1, "main", "success"),
        (2, "dev", "success"),
        (3, "main", "running"),
        (4, "main", "failed"),
        (5, "dev", "failed"),
    ] {
        let answer = first
            .post(&header, pipeline(id, r, status), None, None)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    cliq.wait_for_accepted(4, Duration::from_secs(10)).await;
    assert_eq!(posted(&cliq, &changes), ["#4 failed", "#5 failed"]);
    drop(first.stop());

    let second = Daemon::spawn(&config).await;
    for (id, r, status) in [
        (6, "main", "failed"),
        (7, "dev", "failed"),
        (8, "main", "canceled"),
        (9, "main", "success"),
        (10, "dev", "success"),
        (11, "main", "success"),
        // A sentinel: once it is posted, everything before it has been routed.
        (12, "sentinel", "success"),
        (13, "sentinel", "failed"),
    ] {
        let answer = second
            .post(&header, pipeline(id, r, status), None, None)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // The sentinel's card last in both channels: everything before it was routed and posted.
    wait_until(
        "the sentinel's card in both channels",
        Duration::from_secs(10),
        || {
            [&changes, &keyed]
                .iter()
                .all(|c| posted(&cliq, c).last().map(String::as_str) == Some("#13 failed"))
        },
    )
    .await;
    let (changes_seen, resent) = collapse_resent(posted(&cliq, &changes));
    assert!(
        resent <= 1,
        "more than the post in flight re-sent: {changes_seen:?}"
    );
    assert_eq!(
        changes_seen,
        [
            "#4 failed",
            "#5 failed",
            "#9 passed",
            "#10 passed",
            "#13 failed"
        ]
    );
    let (keyed_seen, resent) = collapse_resent(posted(&cliq, &keyed));
    assert!(
        resent <= 1,
        "more than the post in flight re-sent: {keyed_seen:?}"
    );
    assert_eq!(keyed_seen, ["#4 failed", "#5 failed", "#13 failed"]);
    drop(second.stop());
}
