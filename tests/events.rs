//! Stored events end to end, against the real binary and a fake Cliq: what the receiver stores
//! and what it refuses to, `events list/show/replay` and `render --event-id` as a template author
//! uses them (a replay through a changed template posts the new wording; `--dry-run` posts
//! nothing), their usage errors (a bad id, an unparsable `--since`: one line, exit 2), and an
//! outbox written by the release before the staged pipeline opening with nothing lost. With a
//! PostgreSQL config (`outbox.url`) whose database cannot be reached, every command that reads
//! the store fails with one line naming the database, and opens no default SQLite file instead.

use crate::support::cli::{self, CliOutput};
use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::temp::TempDir;
use crate::support::{samples, turn, unique};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Longest wait for a message to reach the fake (a replay waits for the worker's idle poll).
const ARRIVAL: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(800);
/// Longest a CLI command may take.
const CLI: Duration = Duration::from_secs(60);

async fn events(config: &Path, args: &[&str]) -> CliOutput {
    let config = config.display().to_string();
    let mut all = vec!["events", "--config", config.as_str()];
    all.extend_from_slice(args);
    cli::run_async(&all, CLI).await
}

/// The number of `stored` events (`events list`'s closing line).
fn listed(out: &CliOutput) -> usize {
    out.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_suffix(" event(s)"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_can_be_listed_shown_rendered_and_replayed_through_a_fixed_template() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("events");
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let mut settings = Settings::new(vec![
        ChannelSpec::new("dev", fake.url("dev")),
        ChannelSpec {
            events: Some(vec!["push*"]),
            ..ChannelSpec::new("test", fake.url("test"))
        },
    ]);
    settings.rest = format!(
        "[templates]\ndir = {:?}\nwatch_interval_ms = 0\n",
        templates.display().to_string()
    );
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;

    let answer = daemon.post_sample("issue__open.json").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "accepted", "{answer:?}");
    let id = answer.body["event_id"].as_u64().unwrap().to_string();
    fake.wait_for_accepted(1, ARRIVAL).await;
    let posted = fake.snapshot().accepted[0].clone();
    assert_eq!(posted.channel, "dev");

    // list: the event, its key, project and what routing did.
    let list = events(&config, &["list", "--since", "1h"]).await;
    assert_eq!(list.code, Some(0), "{list:?}");
    let line = list
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("event {id} not listed:\n{}", list.stdout));
    assert!(line.contains("issue.open"), "{line}");
    assert!(line.contains("gitlabhq/gitlab-test"), "{line}");
    assert!(line.contains("queued 1"), "{line}");
    assert_eq!(
        listed(&events(&config, &["list", "--kind", "push"]).await),
        0
    );
    assert_eq!(
        listed(&events(&config, &["list", "--project", "gitlab-test"]).await),
        1
    );

    // show: headers, body, and the delivery to dev with its status.
    let show = events(&config, &["show", &id]).await;
    assert_eq!(show.code, Some(0), "{show:?}");
    assert!(
        show.stdout.contains("x-gitlab-event: Issue Hook"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains("routed: issue.open in gitlabhq/gitlab-test: queued 1"),
        "{}",
        show.stdout
    );
    let delivery = show
        .stdout
        .lines()
        .find(|l| l.contains(" to dev: "))
        .unwrap_or_else(|| panic!("no delivery line:\n{}", show.stdout));
    assert!(delivery.contains(": sent "), "{delivery}");
    let body_at = show.stdout.find("body:\n").unwrap() + "body:\n".len();
    let stored: Value = serde_json::from_str(&show.stdout[body_at..]).unwrap();
    assert_eq!(stored, samples::json("issue__open.json"));

    // render --event-id: exactly what was posted.
    let config_s = config.display().to_string();
    let rendered = cli::run_async(
        &[
            "render",
            "--config",
            &config_s,
            "--event-id",
            &id,
            "--channel",
            "dev",
        ],
        CLI,
    )
    .await;
    assert_eq!(rendered.code, Some(0), "{rendered:?}");
    let body: Value = serde_json::from_str(&rendered.stdout).unwrap();
    assert_eq!(body, posted.body);

    // A template author fixes the issue template...
    let wording = unique("Fixed wording");
    std::fs::write(
        templates.join("issue.hbs"),
        format!("{{\"text\": \"{wording}: {{{{issue.title}}}}\"}}"),
    )
    .unwrap();
    // ...looks first: the dry run prints the new wording and posts nothing...
    let dry = events(&config, &["replay", &id, "--channel", "test", "--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(dry.stdout.contains(&wording), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("dry run: nothing stored or posted"),
        "{}",
        dry.stdout
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(fake.snapshot().accepted.len(), 1, "the dry run posted");
    assert_eq!(
        listed(&events(&config, &["list"]).await),
        1,
        "the dry run stored an event"
    );

    // ...then re-sends yesterday's card to the test channel, which does not take issues.
    let replay = events(&config, &["replay", &id, "--channel", "test"]).await;
    assert_eq!(replay.code, Some(0), "{replay:?}");
    assert!(
        replay.stdout.contains("replayed as event"),
        "{}",
        replay.stdout
    );
    assert!(
        replay.stdout.contains("not deduplicated"),
        "{}",
        replay.stdout
    );
    fake.wait_for_accepted(2, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 2, "{:#?}", seen.accepted);
    assert_eq!(seen.accepted[1].channel, "test");
    assert!(
        seen.accepted[1].text().starts_with(&wording),
        "{:?}",
        seen.accepted[1]
    );
    assert_eq!(seen.count("dev", &wording), 0, "dev got the replay");
    let list = events(&config, &["list"]).await;
    assert_eq!(listed(&list), 2);
    assert!(
        list.stdout.contains(&format!("(replay of {id})")),
        "{}",
        list.stdout
    );

    // Usage errors: one line on stderr, exit 2.
    for (args, says) in [
        (vec!["show", "999999"], "no event 999999"),
        (vec!["replay", "999999"], "no event 999999"),
        (
            vec!["replay", &id, "--channel", "nowhere"],
            "no channel named",
        ),
        (vec!["list", "--since", "2 hours"], "not a duration"),
        (vec!["replay", "--since", "5x"], "not a duration"),
        (vec!["show", "twelve"], "invalid value"),
    ] {
        let out = events(&config, &args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
    let missing = cli::run_async(
        &["render", "--config", &config_s, "--event-id", "999999"],
        CLI,
    )
    .await;
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    daemon.stop();
}

/// A JSON array, a bare string, a number and a truncated body are refused with 400 and never
/// stored; an object is stored once, and its re-send is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_json_object_is_stored() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("events-refused");
    let config = Settings::new(vec![ChannelSpec::new("dev", fake.url("dev"))]).write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let mut truncated = samples::bytes("issue__open.json");
    truncated.truncate(truncated.len() / 2);
    for body in [
        b"[1, 2]".to_vec(),
        br#""a string""#.to_vec(),
        b"42".to_vec(),
        b"{\"object_kind\": \"issue\"} {}".to_vec(),
        truncated,
        Vec::new(),
    ] {
        let a = daemon.post("Issue Hook", body.clone(), None, None).await;
        assert_eq!(a.status, 400, "{}: {a:?}", String::from_utf8_lossy(&body));
    }
    let key = unique("stored-once");
    let body = samples::bytes("issue__open.json");
    let first = daemon
        .post("Issue Hook", body.clone(), None, Some(&key))
        .await;
    assert_eq!(first.body["status"], "accepted", "{first:?}");
    let again = daemon.post("Issue Hook", body, None, Some(&key)).await;
    assert_eq!(again.body["status"], "duplicate", "{again:?}");
    assert_eq!(listed(&events(&config, &["list"]).await), 1);
    daemon.stop();
}

/// An outbox written by the release before the staged pipeline (schema 2, kept in
/// `tests/data`) opens under the new schema: every pending and retrying message is delivered in
/// its object's order, the dead letters stay dead, and new webhooks flow as usual. (That its
/// dedupe keys survive is checked in `deliver::store`'s unit tests: here they are older than
/// the dedupe window.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_of_the_previous_release_upgrades_in_place() {
    let _turn = turn::shared_async().await;
    let fake = FakeCliq::start(0).await;
    let dir = TempDir::new("upgrade");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/outbox-schema2.sqlite");
    std::fs::copy(&fixture, dir.join("outbox.sqlite")).unwrap();
    let config = Settings::new(vec![
        ChannelSpec::new("dev", fake.url("dev")),
        ChannelSpec::new("ops", fake.url("ops")),
    ])
    .write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    // 5 on dev (4 new, 1 retrying), 4 on ops (3 new, 1 retrying); ids 1..12 alternate.
    fake.wait_for_accepted(9, ARRIVAL).await;
    tokio::time::sleep(QUIET).await;
    let seen = fake.snapshot();
    assert_eq!(seen.accepted.len(), 9, "{:#?}", seen.accepted);
    for (channel, want) in [("dev", [0, 2, 3, 4, 5].as_slice()), ("ops", &[0, 2, 3, 4])] {
        let mut got: Vec<usize> = seen
            .accepted
            .iter()
            .filter(|a| a.channel == channel)
            .filter_map(|a| {
                let t = a.text();
                let at = t.find("Old schema message ")? + "Old schema message ".len();
                t[at..].split(']').next()?.parse().ok()
            })
            .collect();
        // Per object (message i is about issue i % 3), in the order received.
        for object in 0..3 {
            let order: Vec<usize> = got.iter().copied().filter(|i| i % 3 == object).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{channel}, issue {object}");
        }
        got.sort();
        assert_eq!(got, want, "{channel}");
    }
    let config_s = config.display().to_string();
    let dead = cli::run_async(&["outbox", "--config", &config_s, "list", "--dead"], CLI).await;
    assert_eq!(dead.code, Some(0), "{dead:?}");
    assert!(
        dead.stdout.contains("400") && dead.stdout.contains("401"),
        "{}",
        dead.stdout
    );
    let new = daemon.post_sample("push__basic.json").await;
    assert_eq!(new.body["status"], "accepted", "{new:?}");
    fake.wait_for_accepted(11, ARRIVAL).await;
    daemon.stop();
}

#[test]
fn commands_on_an_unreachable_postgresql_store_fail_and_open_no_sqlite_file() {
    let _turn = turn::shared();
    let dir = TempDir::new("pg-unreachable");
    // Nothing listens there: every command must fail on the database, not fall back.
    let port = crate::support::free_port();
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = 't'\n\
             [outbox]\nurl = 'postgres://bridge@127.0.0.1:{port}/bridge?sslmode=disable'\n\
             password_file = 'pg-password'\n\
             [gitlab]\nurl = 'http://127.0.0.1:9/'\ntoken = 'g'\nhook_url = 'http://127.0.0.1:9/hooks/gitlab'\n\
             [[channels]]\nname = 'dev'\nurl = 'http://127.0.0.1:9/api/v2/channelsbyname/dev/message'\nzapikey = 'k'\n"
        ),
    );
    dir.write("pg-password", "p");
    let rules = dir.write("rules.json", "[]");
    let config = config.display().to_string();
    let rules = rules.display().to_string();
    // (Each of them working on a PostgreSQL store: tests/postgres.rs.)
    let commands: [(&str, &[&str]); 9] = [
        ("events list", &["events", "list"]),
        ("events show", &["events", "show", "1"]),
        ("events replay", &["events", "replay", "1", "--dry-run"]),
        ("render --event-id", &["render", "--event-id", "1"]),
        ("subscriptions list", &["subscriptions", "list"]),
        ("subscriptions export", &["subscriptions", "export"]),
        ("subscriptions import", &["subscriptions", "import", &rules]),
        ("catch-up", &["catch-up", "--since", "1h"]),
        ("outbox stats", &["outbox", "stats"]),
    ];
    for (name, args) in commands {
        let mut all = vec![args[0], "--config", &config];
        all.extend_from_slice(&args[1..]);
        let out = cli::run(&all);
        assert_eq!(out.code, Some(1), "{name}: {out:?}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: cannot open the PostgreSQL store 127.0.0.1:{port}/bridge: "
            )) && out.stderr.contains("refused"),
            "{name}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{name}: {}",
            out.stderr
        );
    }
    // Nothing fell back to the default SQLite file.
    assert!(!dir.join("data").exists());
}
