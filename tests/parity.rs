//! Every operator command on both store engines (issue 21's acceptance), as a user runs them:
//! the real binary, the fake Zoho Cliq, the fake GitLab of the catch-up tests (`setup`). One test
//! body, run once per engine:
//!
//! - SQLite: one daemon receives a few issue and merge request webhooks, and every command runs
//!   with its config;
//! - PostgreSQL: two replicas A and B share a throw-away database; A receives the webhooks, and
//!   every command runs with **B's** config (B running) — the commands read and write the shared
//!   store, not a file of B's.
//!
//! The commands: `events list` lists each event (id and key); `events show` its headers, body
//! and its delivery to `dev`, sent; `render --event-id` prints the body that was posted;
//! `events replay --dry-run` prints the card and posts and stores nothing; `events replay` posts
//! it once more; `subscriptions import` through one config is what `subscriptions list` and
//! `export` show through the other; `catch-up --dry-run` tells a delivery it received from one
//! GitLab failed to send it; and the preview page lists the stored events and renders one. What
//! is asserted is what the user sees: exit codes, lines printed, posts at the fake. Every wait
//! is bounded.

use crate::setup::{hook_json, log_json, FakeGitlab, DEFAULT_EVENTS, HOOK_URL, TOKEN};
use crate::support::cli::CliOutput;
use crate::support::daemon::Daemon;
use crate::support::fake_cliq::{Accepted, FakeCliq, ZAPIKEY};
use crate::support::parity::{run, toml_str, Deployment, Engine};
use crate::support::{samples, turn, unique};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest wait for a message to reach the fake (a replay waits for a worker's idle poll, 5 s).
const ARRIVAL: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(800);
/// Longest wait for a delivery to be recorded as sent after the fake accepted it.
const RECORDED: Duration = Duration::from_secs(10);
/// The project of the fake GitLab whose hook log `catch-up` reads.
const PROJECT: u64 = 20;
/// The bridge's hook on [`PROJECT`].
const HOOK: u64 = 2001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_works_on_sqlite() {
    let _turn = turn::shared_async().await;
    every_operator_command(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_works_on_postgresql_with_another_replicas_config() {
    let _turn = turn::shared_async().await;
    every_operator_command(Engine::Postgres).await;
}

/// One webhook GitLab sent: its header, body, `Idempotency-Key`, and the card title it makes.
struct Sent {
    header: &'static str,
    body: Value,
    key: String,
    title: String,
    /// The id the receiver answered.
    id: String,
}

/// Two issues and a merge request, each with a title of its own.
fn webhooks() -> Vec<Sent> {
    let issue = |iid: u64| {
        let title = unique("Parity issue");
        let body: Value = serde_json::from_slice(&samples::issue(iid, &title)).unwrap();
        Sent {
            header: "Issue Hook",
            body,
            key: unique("parity-key"),
            title: format!("Issue #{iid}: {title}"),
            id: String::new(),
        }
    };
    let mut mr = samples::json("merge_request__open.json");
    let title = unique("Parity merge request");
    mr["object_attributes"]["title"] = json!(title);
    let iid = mr["object_attributes"]["iid"].as_u64().unwrap();
    vec![
        issue(101),
        Sent {
            header: "Merge Request Hook",
            body: mr,
            key: unique("parity-key"),
            title: format!("Merge request !{iid}: {title}"),
            id: String::new(),
        },
        issue(102),
    ]
}

/// The event key `events list` shows for a webhook.
fn key_of(sent: &Sent) -> &'static str {
    match sent.header {
        "Issue Hook" => "issue.open",
        _ => "merge_request.open",
    }
}

/// The accepted post whose card title is `title`; fails unless there is exactly one.
fn post_titled(cliq: &FakeCliq, title: &str) -> Accepted {
    let seen = cliq.snapshot();
    let found: Vec<&Accepted> = seen
        .accepted
        .iter()
        .filter(|a| a.body["card"]["title"] == title)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "posts titled {title:?}: {:#?}",
        seen.accepted
    );
    found[0].clone()
}

fn assert_ok(what: &str, out: &CliOutput) {
    assert_eq!(
        out.code,
        Some(0),
        "`{what}` failed:\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

/// The closing `N event(s)` line of `events list`.
fn listed(out: &CliOutput) -> usize {
    out.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_suffix(" event(s)"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX)
}

/// The line of `events list` for event `id`.
fn list_line<'a>(out: &'a CliOutput, id: &str) -> Option<&'a str> {
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
}

/// `events show ID`, again until its delivery to `dev` shows as sent (the fake answers before the
/// worker records the answer), at most [`RECORDED`].
async fn show_when_sent(config: &Path, id: &str) -> CliOutput {
    let deadline = Instant::now() + RECORDED;
    loop {
        let show = run(config, &["events", "show", id]).await;
        assert_ok(&format!("events show {id}"), &show);
        let sent = show.stdout.lines().any(|l| l.contains(" to dev: sent "));
        if sent {
            return show;
        }
        assert!(
            Instant::now() < deadline,
            "event {id}'s delivery to dev not shown as sent within {RECORDED:?}:\n{}",
            show.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` of the daemon at `base`: its JSON body (status 200 asserted).
async fn get_json(base: &str, path: &str) -> Value {
    let r = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.json().await.unwrap_or(Value::Null)
}

async fn every_operator_command(engine: Engine) {
    let cliq = FakeCliq::start(0).await;
    let gitlab = FakeGitlab::start(false);
    let sections = format!(
        "[delivery]\ntimeout_secs = 5\nmax_attempts = 8\ninitial_backoff_ms = 50\nmax_backoff_secs = 2\n\n\
         [[channels]]\nname = \"dev\"\nurl = {}\nzapikey = {}\nrate_per_minute = 600\n\n\
         [gitlab]\nurl = {}\ntoken = {}\nhook_url = {}\nwatch_hooks_minutes = 0\n\n\
         [preview]\nenabled = true\n",
        toml_str(&cliq.url("dev")),
        toml_str(ZAPIKEY),
        toml_str(&gitlab.base),
        toml_str(TOKEN),
        toml_str(HOOK_URL),
    );
    let deployment = Deployment::new("parity", engine, 2, &sections);
    let a = Daemon::spawn(&deployment.configs[0]).await;
    let b = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(Daemon::spawn(&deployment.configs[1]).await),
    };
    // The config every command runs with, and the daemon whose preview page is read: B's.
    let config = deployment.configs.last().unwrap().as_path();
    let config_a = deployment.configs[0].as_path();
    let preview = b.as_ref().unwrap_or(&a).base_url().to_string();

    // GitLab sends every webhook to replica A.
    let mut sent = webhooks();
    for w in &mut sent {
        let answer = a
            .post(
                w.header,
                w.body.to_string().into_bytes(),
                None,
                Some(&w.key),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["status"], "accepted", "{answer:?}");
        w.id = answer.body["event_id"].as_u64().unwrap().to_string();
    }
    cliq.wait_for_accepted(sent.len(), ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(cliq.accepted(), sent.len(), "{}", cliq.snapshot().summary());

    // events list: every event, with its id and key.
    let list = run(config, &["events", "list"]).await;
    assert_ok("events list", &list);
    assert_eq!(listed(&list), sent.len(), "{}", list.stdout);
    for w in &sent {
        let line = list_line(&list, &w.id)
            .unwrap_or_else(|| panic!("event {} not listed:\n{}", w.id, list.stdout));
        assert!(line.contains(key_of(w)), "{line}");
        assert!(line.contains("queued 1"), "{line}");
    }

    for w in &sent {
        let posted = post_titled(&cliq, &w.title);
        assert_eq!(posted.channel, "dev");

        // events show: headers, the body as received, where it went.
        let show = show_when_sent(config, &w.id).await;
        assert!(
            show.stdout
                .contains(&format!("x-gitlab-event: {}", w.header)),
            "{}",
            show.stdout
        );
        assert!(
            show.stdout.contains(&format!("idempotency-key: {}", w.key)),
            "{}",
            show.stdout
        );
        assert!(
            show.stdout.contains(&format!("routed: {}", key_of(w))),
            "{}",
            show.stdout
        );
        let body_at = show
            .stdout
            .find("body:\n")
            .unwrap_or_else(|| panic!("no body:\n{}", show.stdout))
            + "body:\n".len();
        let stored: Value = serde_json::from_str(&show.stdout[body_at..]).unwrap();
        assert_eq!(stored, w.body, "event {}", w.id);

        // render --event-id: the body that was posted.
        let render = run(config, &["render", "--event-id", &w.id, "--channel", "dev"]).await;
        assert_ok(&format!("render --event-id {}", w.id), &render);
        let rendered: Value = serde_json::from_str(&render.stdout)
            .unwrap_or_else(|e| panic!("render printed no JSON ({e}):\n{}", render.stdout));
        assert_eq!(rendered, posted.body, "event {}", w.id);
    }

    // events replay --dry-run: the card printed, nothing stored or posted.
    let first = &sent[0];
    let dry = run(
        config,
        &[
            "events",
            "replay",
            &first.id,
            "--channel",
            "dev",
            "--dry-run",
        ],
    )
    .await;
    assert_ok("events replay --dry-run", &dry);
    assert!(dry.stdout.contains(&first.title), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("dry run: nothing stored or posted"),
        "{}",
        dry.stdout
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(cliq.accepted(), sent.len(), "the dry run posted");
    let list = run(config, &["events", "list"]).await;
    assert_eq!(
        listed(&list),
        sent.len(),
        "the dry run stored:\n{}",
        list.stdout
    );

    // events replay: posted once more, the same card.
    let replay = run(config, &["events", "replay", &first.id, "--channel", "dev"]).await;
    assert_ok("events replay", &replay);
    assert!(
        replay.stdout.contains("replayed as event"),
        "{}",
        replay.stdout
    );
    cliq.wait_for_accepted(sent.len() + 1, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = cliq.snapshot();
    assert_eq!(seen.accepted.len(), sent.len() + 1, "{:#?}", seen.accepted);
    let again = &seen.accepted[sent.len()];
    assert_eq!(again.channel, "dev");
    assert_eq!(
        again.body["card"]["title"],
        first.title.as_str(),
        "{again:?}"
    );
    let list = run(config, &["events", "list"]).await;
    assert_eq!(listed(&list), sent.len() + 1, "{}", list.stdout);
    assert!(
        list.stdout.contains(&format!("(replay of {})", first.id)),
        "{}",
        list.stdout
    );

    // subscriptions: imported through one config, seen through the other.
    let chat = unique("CT_parity").replace('-', "_");
    let rule = json!([{
        "chat": chat,
        "kind": "subscription",
        "subject": "parity/elsewhere",
        "spec": "{\"events\":[\"issue.*\"]}",
        "created_by": "cli",
        "created_at": 1_764_000_000_000_i64,
    }]);
    let file = deployment.dir().write("rules.json", &rule.to_string());
    let import = run(
        config,
        &["subscriptions", "import", &file.display().to_string()],
    )
    .await;
    assert_ok("subscriptions import", &import);
    assert!(
        import.stdout.contains("imported 1 subscription(s)"),
        "{}",
        import.stdout
    );
    let list = run(config_a, &["subscriptions", "list"]).await;
    assert_ok("subscriptions list", &list);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&chat))
        .unwrap_or_else(|| panic!("{chat} not listed:\n{}", list.stdout));
    assert!(
        line.contains("subscription") && line.contains("parity/elsewhere"),
        "{line}"
    );
    let export = run(config_a, &["subscriptions", "export"]).await;
    assert_ok("subscriptions export", &export);
    let exported: Value = serde_json::from_str(&export.stdout)
        .unwrap_or_else(|e| panic!("export is not JSON ({e}):\n{}", export.stdout));
    let rules = exported.as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{}", export.stdout);
    for field in ["chat", "kind", "subject", "created_by", "created_at"] {
        assert_eq!(
            rules[0][field], rule[0][field],
            "{field}: {}",
            export.stdout
        );
    }
    let spec: Value = serde_json::from_str(rules[0]["spec"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("spec is not JSON ({e}): {}", export.stdout));
    assert_eq!(spec, json!({"events": ["issue.*"]}), "{}", export.stdout);

    // catch-up --dry-run: of two deliveries GitLab failed to make, the one A received later is
    // already there; the other would be stored from the log.
    gitlab.add_hook(PROJECT, hook_json(HOOK, PROJECT, HOOK_URL, &DEFAULT_EVENTS));
    let missed = unique("Parity missed");
    let missed_body: Value = serde_json::from_slice(&samples::issue(103, &missed)).unwrap();
    for entry in [
        log_json(1, "500", first.header, Some(&first.key), Some(&first.body)),
        log_json(
            2,
            "500",
            "Issue Hook",
            Some(&unique("parity-missed")),
            Some(&missed_body),
        ),
    ] {
        gitlab.log(HOOK, entry);
    }
    let project = PROJECT.to_string();
    let catch_up = run(config, &["catch-up", "--project", &project, "--dry-run"]).await;
    assert_ok("catch-up --dry-run", &catch_up);
    assert!(
        catch_up.stdout.contains(&format!(
            "{PROJECT} hook #{HOOK}: delivery #2 (Issue Hook): would store it from the log"
        )),
        "{}",
        catch_up.stdout
    );
    assert!(
        !catch_up.stdout.contains("delivery #1 "),
        "{}",
        catch_up.stdout
    );
    assert!(
        catch_up.stdout.contains(
            "dry run: would recover 1 of 2 failed deliveries (1 from the log, 0 re-sent by \
             GitLab); 1 already received; 1 hook(s) on 1 project(s), 0 project(s) failed; \
             nothing was changed"
        ),
        "{}",
        catch_up.stdout
    );
    assert!(gitlab.resent().is_empty(), "the dry run asked for a resend");
    let list = run(config, &["events", "list"]).await;
    assert_eq!(
        listed(&list),
        sent.len() + 1,
        "the dry run stored:\n{}",
        list.stdout
    );

    // The preview page (B's) lists the stored events, and shows one as its card.
    let items = get_json(&preview, "/preview/items").await;
    let events = items["events"].as_array().cloned().unwrap_or_default();
    for w in &sent {
        let id = format!("event:{}", w.id);
        let item = events
            .iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not on the preview page: {items:#}"));
        let label = item["label"].as_str().unwrap_or_default();
        assert!(label.contains(key_of(w)), "{item}");
    }
    let shown = get_json(&preview, &format!("/preview/render/event:{}", first.id)).await;
    assert_eq!(shown["errors"], json!([]), "{shown:#}");
    assert_eq!(
        shown["cards"][0]["body"]["card"]["title"],
        first.title.as_str(),
        "{shown:#}"
    );

    // Nothing else reached the chat.
    assert_eq!(
        cliq.accepted(),
        sent.len() + 1,
        "{}",
        cliq.snapshot().summary()
    );
    assert!(
        cliq.snapshot().violations.is_empty(),
        "{}",
        cliq.snapshot().summary()
    );
    drop(b);
    drop(a);
}
