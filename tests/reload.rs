//! Template hot reload under a running daemon: edit a template, send an event, get the new
//! wording; break it, get the old wording and an error naming the file and line; SIGHUP reloads
//! when the file watch is off.

use crate::support::daemon::{assert_no_secrets, ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::temp::TempDir;
use crate::support::{samples, turn, wait_until};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn issue_template(dir: &Path, wording: &str) {
    std::fs::write(
        dir.join("templates/issue.hbs"),
        format!("{{\n  \"text\": \"{wording}: {{{{issue.title}}}}\"\n}}\n"),
    )
    .unwrap();
}

fn config_with_templates(dir: &TempDir, cliq: &FakeCliq, watch_ms: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let mut settings = Settings::new(vec![ChannelSpec::new("dev", cliq.url("dev"))]);
    settings.rest = format!("[templates]\ndir = \"templates\"\nwatch_interval_ms = {watch_ms}\n");
    settings.write_config(dir)
}

async fn send_issue(daemon: &Daemon, title: &str) {
    let mut v = samples::json("issue__open.json");
    v["object_attributes"]["title"] = title.into();
    let answer = daemon
        .hooks()
        .post("Issue Hook", serde_json::to_vec(&v).unwrap(), None, None)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

async fn wait_for_text(cliq: &FakeCliq, needle: &str) {
    wait_until(&format!("a message with {needle:?}"), WAIT, || {
        cliq.snapshot().count("dev", needle) == 1
    })
    .await;
}

async fn wait_for_log(daemon: &Daemon, needle: &str, times: usize) {
    wait_until(
        &format!("{times} log line(s) with {needle:?}"),
        WAIT,
        || daemon.log().iter().filter(|l| l.contains(needle)).count() >= times,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_templates_apply_and_broken_ones_keep_the_old_wording() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let dir = TempDir::new("reload");
    let config = config_with_templates(&dir, &cliq, 100);
    issue_template(dir.path(), "first wording");
    let daemon = Daemon::spawn(&config).await;

    send_issue(&daemon, "one").await;
    wait_for_text(&cliq, "first wording: one").await;

    issue_template(dir.path(), "second wording");
    wait_for_log(&daemon, "templates reloaded", 1).await;
    send_issue(&daemon, "two").await;
    wait_for_text(&cliq, "second wording: two").await;

    // A broken edit: the previous templates stay, and the error names file and line.
    std::fs::write(
        dir.path().join("templates/issue.hbs"),
        "{\n  \"text\": \"{{#if issue.title}}broken\"\n}\n",
    )
    .unwrap();
    wait_for_log(&daemon, "template reload failed", 1).await;
    let log = daemon.log();
    let line = log
        .iter()
        .find(|l| l.contains("template reload failed"))
        .unwrap();
    assert!(line.contains("templates/issue.hbs:"), "{line}");
    send_issue(&daemon, "three").await;
    wait_for_text(&cliq, "second wording: three").await;
    assert_no_secrets(&daemon.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_the_watch_is_off() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let dir = TempDir::new("reload-hup");
    let config = config_with_templates(&dir, &cliq, 0);
    issue_template(dir.path(), "before");
    let daemon = Daemon::spawn(&config).await;

    issue_template(dir.path(), "after");
    // Without a watch, nothing changes until SIGHUP.
    send_issue(&daemon, "a").await;
    wait_for_text(&cliq, "before: a").await;

    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_log(&daemon, "templates reloaded", 1).await;
    send_issue(&daemon, "b").await;
    wait_for_text(&cliq, "after: b").await;
    assert_no_secrets(&daemon.stop());
}
