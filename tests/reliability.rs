//! GitLab-aware reliability through the real binary: pipeline status changes per ref
//! (`pipeline.fixed` / `pipeline.broken`, `only_status_changes`), remembered across a restart.

use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::samples;
use crate::support::temp::TempDir;
use crate::support::{turn, unique};
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
    cliq.wait_for_accepted(8, Duration::from_secs(10)).await;
    assert_eq!(
        posted(&cliq, &changes),
        [
            "#4 failed",
            "#5 failed",
            "#9 passed",
            "#10 passed",
            "#13 failed"
        ]
    );
    assert_eq!(
        posted(&cliq, &keyed),
        ["#4 failed", "#5 failed", "#13 failed"]
    );
    drop(second.stop());
}
