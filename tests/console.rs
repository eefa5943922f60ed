//! The quick start with no Cliq account: the real binary serves `config.toml.example` as the
//! README runs it (on a free loopback port, its state in a temporary folder, its Cliq channel
//! pointed at a closed loopback port as an unreachable Cliq would be), the README's `curl`
//! command is sent as written, and the console channel prints the issue card's title and link on
//! standard output, with no log line and no colour (it is not a terminal) among them, while the
//! Cliq channel's failures stay in the log.

use crate::support::daemon::Daemon;
use crate::support::temp::TempDir;
use crate::support::{turn, wait_until};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// Replaces the one occurrence of `from` in `text`; fails when it is not there exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "config.toml.example should hold {from:?} once"
    );
    text.replacen(from, to, 1)
}

/// The README's quick-start `curl`: its URL path, its `-H` headers and its `--data @FILE`.
struct Curl {
    path: String,
    headers: Vec<(String, String)>,
    data_file: String,
}

fn readme_curl() -> Curl {
    let readme = repo_file("README.md");
    let start = readme
        .find("curl -s localhost:8080/hooks/gitlab")
        .expect("the README's quick start has a curl command");
    // The command goes on over lines ending in a backslash.
    let mut command = String::new();
    for line in readme[start..].lines() {
        let line = line.trim();
        command.push_str(line.trim_end_matches('\\'));
        command.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let path = command
        .split_whitespace()
        .find_map(|w| w.strip_prefix("localhost:8080"))
        .unwrap()
        .to_string();
    let headers = command
        .split(" -H '")
        .skip(1)
        .map(|h| {
            let h = &h[..h.find('\'').unwrap()];
            let (name, value) = h.split_once(": ").unwrap();
            (name.to_string(), value.to_string())
        })
        .collect();
    let data_file = command
        .split_whitespace()
        .find_map(|w| w.strip_prefix('@'))
        .unwrap()
        .to_string();
    Curl {
        path,
        headers,
        data_file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_prints_the_issue_card_on_the_console() {
    let _turn = turn::shared_async().await;
    let readme = repo_file("README.md");
    assert!(
        readme.contains("cargo run --release -- serve --config config.toml.example"),
        "the README's quick-start command changed: update this test"
    );
    let example = repo_file("config.toml.example");
    let config = replace_once(
        &example,
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:0\"",
    );
    let config = replace_once(
        &config,
        "https://cliq.zoho.com/api/v2/channelsbyname/CHANGE-ME/message",
        "http://127.0.0.1:9/api/v2/channelsbyname/CHANGE-ME/message",
    );
    // Relative paths (the outbox's `data/outbox.sqlite`) are relative to the config's folder.
    let dir = TempDir::new("console");
    let path = dir.write("config.toml.example", &config);
    let daemon = Daemon::spawn_with_stdout(&path).await;

    let curl = readme_curl();
    assert_eq!(curl.path, "/hooks/gitlab");
    let payload =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(&curl.data_file)).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client
        .post(format!("{}{}", daemon.base_url(), curl.path))
        .timeout(WAIT)
        .body(payload.clone());
    for (name, value) in &curl.headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);

    let sample: Value = serde_json::from_slice(&payload).unwrap();
    let iid = &sample["object_attributes"]["iid"];
    let title = format!(
        "Issue #{iid}: {}",
        sample["object_attributes"]["title"].as_str().unwrap()
    );
    let link = format!("<{}>", sample["object_attributes"]["url"].as_str().unwrap());
    wait_until("the card's button on standard output", WAIT, || {
        daemon.stdout().iter().any(|l| l.contains("[View issue]"))
    })
    .await;
    let out = daemon.stdout();
    assert!(out.iter().any(|l| l.contains("── console ")), "{out:#?}");
    assert!(
        out.iter().any(|l| l == &title),
        "no title {title:?}: {out:#?}"
    );
    assert!(
        out.iter()
            .any(|l| l.contains(&format!("opened issue #{iid} ")) && l.contains(&link)),
        "no link {link}: {out:#?}"
    );
    assert!(
        out.iter().any(|l| l == &format!("  [View issue] {link}")),
        "{out:#?}"
    );
    assert!(
        !out.iter().any(|l| l.contains('\u{1b}')),
        "colour on a pipe: {out:#?}"
    );
    // The Cliq channel cannot post; that is logged (to stderr), not printed among the cards.
    wait_until("the Cliq channel's failure in the log", WAIT, || {
        daemon
            .log()
            .iter()
            .any(|l| l.contains("post failed") && l.contains("channel=dev"))
    })
    .await;
    let out = daemon.stdout();
    assert!(
        !out.iter()
            .any(|l| l.contains("INFO") || l.contains("WARN") || l.contains("post failed")),
        "log lines on standard output: {out:#?}"
    );
    drop(daemon);
}
