//! Review reminders against a fake GitLab (`support::fake_gitlab_mrs`): the merge requests a
//! reminder fetches and lists (paged listings, a 429, a project the token cannot read, drafts,
//! approvals, young and unassigned merge requests, failed pipelines), the time budget, and the
//! card they make with mapped reviewers' mentions. Every variable the card's context carries is
//! documented. Through the binary: `reminders run --dry-run` prints exactly the waiting merge
//! requests and queues nothing, `reminders run` queues one card per channel, `reminders list`
//! shows the next run in the reminder's zone, and `check` refuses a bad schedule by its key.
//! Through `serve`: a card arrives once at its minute in its zone (Asia/Kolkata), not again
//! after kill -9 and a restart; a run missed while down is sent once within `catch_up`, and
//! skipped (logged) beyond it.

use crate::support::cli;
use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::fake_gitlab_mrs::{FakeGitlabMrs, Mr, TOKEN};
use crate::support::renderer::dates;
use crate::support::temp::TempDir;
use crate::support::turn;
use chrono::Timelike;
use gitlab_chat_bridge::gitlab::merge_requests::{fetch_open, sources, FetchLimits};
use gitlab_chat_bridge::gitlab::reviews::{select, worth_asking, Reviews, Rules};
use gitlab_chat_bridge::gitlab::{Client, RetryPolicy};
use gitlab_chat_bridge::render::reminder::{context, VARIABLES};
use gitlab_chat_bridge::render::{Mentions, RenderSettings, Rendered, Renderer};
use gitlab_chat_bridge::schedule::Schedule;
use gitlab_chat_bridge::secret::Secret;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Drafts in `acme/big`, so its listing takes two pages of 100.
const FILLERS: u64 = 105;

fn fake() -> FakeGitlabMrs {
    let mut mrs = vec![
        Mr::new("acme/app", 1, 30, &["alice", "bob"]),
        Mr {
            draft: true,
            ..Mr::new("acme/app", 2, 30, &["alice"])
        },
        Mr {
            approvals_left: 0,
            ..Mr::new("acme/app", 3, 30, &["alice"])
        },
        Mr::new("acme/app", 4, 1, &["alice"]),
        Mr::new("acme/app", 5, 300, &[]),
        Mr {
            pipeline: Some("failed".into()),
            ..Mr::new("acme/app", 6, 50, &["alice"])
        },
        Mr::new("other/app", 1, 30, &["alice"]),
    ];
    for iid in 100..100 + FILLERS {
        mrs.push(Mr {
            draft: true,
            ..Mr::new("acme/big", iid, 30, &["bob"])
        });
    }
    mrs.push(Mr::new("acme/big", 300, 10, &["bob"]));
    let f = FakeGitlabMrs::start(mrs);
    f.hide("ops/secret");
    f
}

fn client(base: &str) -> Client {
    let retry = RetryPolicy {
        max_attempts: 3,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_wait: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
    };
    Client::new(base, Secret::new(TOKEN), retry).unwrap()
}

fn in_acme(path: &str) -> bool {
    ["acme/*", "ops/secret"]
        .iter()
        .any(|g| gitlab_chat_bridge::route::glob(g, path))
}

fn rules(now: chrono::DateTime<chrono::Utc>) -> Rules<'static> {
    Rules {
        now,
        min_age: Duration::from_secs(4 * 3600),
        in_scope: &in_acme,
        max_per_reviewer: 10,
        gitlab_url: "https://gitlab.example.com",
        unassigned_after: None,
    }
}

async fn run(f: &FakeGitlabMrs, limits: FetchLimits) -> Reviews {
    let globs = vec!["acme/*".to_string(), "ops/secret".to_string()];
    let now = chrono::Utc::now();
    let r = rules(now);
    let fetched = fetch_open(
        &client(f.base()),
        &sources(&globs),
        |mr| worth_asking(mr, &r),
        limits,
    )
    .await;
    // Ages are counted from after the fetch, as the fake dates merge requests when asked.
    select(&fetched, &rules(chrono::Utc::now()))
}

fn listed(r: &Reviews) -> Vec<(String, Vec<String>)> {
    r.reviewers
        .iter()
        .map(|x| {
            let refs = x
                .merge_requests
                .iter()
                .map(|w| w.reference.clone())
                .collect();
            (x.username.clone(), refs)
        })
        .collect()
}

#[tokio::test]
async fn exactly_the_merge_requests_waiting_for_review_are_listed_by_reviewer() {
    let _turn = turn::shared_async().await;
    let f = fake();
    f.throttle_once();
    let limits = FetchLimits {
        concurrency: 3,
        budget: Duration::from_secs(30),
        pipelines: true,
    };
    let r = run(&f, limits).await;
    assert_eq!(
        listed(&r),
        vec![
            (
                "alice".to_string(),
                vec!["acme/app!6".to_string(), "acme/app!1".to_string()]
            ),
            (
                "bob".to_string(),
                vec!["acme/app!1".to_string(), "acme/big!300".to_string()]
            ),
        ]
    );
    assert_eq!(r.count, 3);
    assert!(r.reviewers[0].merge_requests[0].pipeline_failed);
    assert!(!r.reviewers[0].merge_requests[1].pipeline_failed);
    assert!(r.incomplete, "ops/secret cannot be read");
    assert_eq!(r.unreadable, vec!["project ops/secret"]);

    let requests = f.requests();
    let has = |s: &str| requests.iter().any(|q| q.contains(s));
    // One group listing for acme/*, its second page through X-Next-Page, after a 429.
    assert!(has("/api/v4/groups/acme/merge_requests?"), "{requests:#?}");
    assert!(has("page=2"), "{requests:#?}");
    assert!(!has("/groups/acme%2Fapp"), "{requests:#?}");
    // Three listings (acme's two pages, ops/secret), one of them asked twice after the 429.
    let listings = requests
        .iter()
        .filter(|q| q.contains("/merge_requests?"))
        .count();
    assert_eq!(listings, 4, "{requests:#?}");
    // Approvals asked only for what could qualify: not for drafts, young or unassigned ones.
    assert!(has("/merge_requests/1/approvals"));
    for skipped in [
        "/2/approvals",
        "/4/approvals",
        "/5/approvals",
        "/100/approvals",
    ] {
        assert!(!has(skipped), "{skipped} asked: {requests:#?}");
    }
}

#[tokio::test]
async fn a_slow_gitlab_is_cut_short_by_the_time_budget() {
    let _turn = turn::shared_async().await;
    let f = fake();
    f.slow_approvals(Duration::from_secs(3));
    let started = Instant::now();
    let r = run(
        &f,
        FetchLimits {
            concurrency: 2,
            budget: Duration::from_millis(800),
            pipelines: false,
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.incomplete);
    assert!(r.reviewers.is_empty());
}

fn render(r: &Reviews, mentions: Mentions) -> Value {
    let settings = RenderSettings {
        dates: dates("UTC"),
        mentions,
    };
    let renderer = Renderer::new(Vec::new(), settings, true).unwrap();
    let ctx = context("reviews", serde_json::to_value(r).unwrap());
    match renderer.render_reminder(&ctx).unwrap() {
        Rendered::Message(m, _) => serde_json::from_str(&m.to_json()).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_card_mentions_mapped_reviewers_and_links_each_merge_request() {
    let _turn = turn::shared_async().await;
    let f = fake();
    let r = run(&f, FetchLimits::default()).await;
    let card = render(&r, Mentions::new([("alice", "55501"), ("bob", "55502")]));
    let text = card["text"].as_str().unwrap();
    assert!(
        text.starts_with("👀 *3 merge requests wait for review*\n• {@55501}: 2\n• {@55502}: 2"),
        "{text}"
    );
    assert!(text.contains("may be incomplete: cannot read project ops/secret"));
    let slides = card["slides"].as_array().unwrap();
    assert_eq!(slides.len(), 2);
    assert_eq!(slides[1]["title"], "BOB (2)");
    assert_eq!(
        slides[1]["data"]["rows"][1]["Merge request"],
        "[acme/big!300 Change 300 of acme/big](https://gitlab.example.com/acme/big/-/merge_requests/300)"
    );
    assert_eq!(slides[1]["data"]["rows"][1]["Waiting"], "10h");
}

/// Every path in `v`, lists as `[]`.
fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(x, &p, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_variable_of_the_card_is_documented() {
    let _turn = turn::shared_async().await;
    let f = fake();
    let mut r = run(&f, FetchLimits::default()).await;
    assert!(!r.reviewers.is_empty());
    let mut seen = BTreeSet::new();
    paths(
        &context("reviews", serde_json::to_value(&r).unwrap()),
        "",
        &mut seen,
    );
    // Unassigned rows have the merge requests' fields (documented once, under reviewers).
    r.unassigned = r.reviewers[0].merge_requests.clone();
    paths(
        &context("reviews", serde_json::to_value(&r).unwrap()),
        "",
        &mut seen,
    );
    let documented: BTreeSet<String> = VARIABLES.iter().map(|(p, _)| p.to_string()).collect();
    let missing: Vec<&String> = seen
        .iter()
        .filter(|p| !documented.contains(*p))
        .filter(|p| {
            let as_mr = p.replace(
                "reminder.unassigned[]",
                "reminder.reviewers[].merge_requests[]",
            );
            !documented.contains(&as_mr)
        })
        .collect();
    assert!(missing.is_empty(), "undocumented: {missing:?}");
    assert!(seen.len() >= 15, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// Through the binary: `reminders list|run`, and `check` refusing a bad schedule
// ---------------------------------------------------------------------------------------------

/// A config with a Cliq and a Slack channel, `[mentions]` for both, and reminder `reviews`
/// (`schedule`) over `acme/*` and `ops/secret` on GitLab at `gitlab`.
fn write_config(dir: &TempDir, gitlab: &str, schedule: &str) -> std::path::PathBuf {
    dir.write(
        "config.toml",
        &format!(
            r#"[server]
secret_token = "hook-secret"

[outbox]
path = "outbox.db"

[[channels]]
name = "dev"
url = "https://cliq.zoho.com/api/v2/channelsbyname/dev/message"
zapikey = "zk-test"

[[channels]]
name = "slack"
kind = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"

[mentions]
alice = "55501"
bob = "55502"

[mentions.slack]
alice = "U0ALICE"

[gitlab]
url = "{gitlab}"
token = "{TOKEN}"

[[reminders]]
name = "reviews"
channels = ["dev", "slack"]
schedule = "{schedule}"
timezone = "Europe/Berlin"
projects = ["acme/*", "ops/secret"]
"#
        ),
    )
}

fn bin(args: &[&str]) -> cli::CliOutput {
    let r = cli::run(args);
    assert!(
        !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
        "the token leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

#[test]
fn run_dry_run_prints_exactly_the_waiting_merge_requests_and_queues_nothing() {
    let _turn = turn::shared();
    let f = fake();
    let dir = TempDir::new("reminders-dry-run");
    let config = write_config(&dir, f.base(), "weekdays 09:30");
    let config = config.to_str().unwrap();
    let r = bin(&[
        "reminders",
        "--config",
        config,
        "run",
        "reviews",
        "--dry-run",
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let cliq_body = r
        .stdout
        .split("--- dev ---\n")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no dev body:\n{}", r.stdout));
    let card: Value = serde_json::from_str(cliq_body).unwrap();
    let text = card["text"].as_str().unwrap();
    assert!(
        text.starts_with("👀 *3 merge requests wait for review*\n• {@55501}: 2\n• {@55502}: 2"),
        "{text}"
    );
    let mut listed: Vec<String> = Vec::new();
    for slide in card["slides"].as_array().unwrap() {
        for row in slide["data"]["rows"].as_array().unwrap() {
            let cell = row["Merge request"].as_str().unwrap();
            listed.push(
                cell.split(' ')
                    .next()
                    .unwrap()
                    .trim_start_matches('[')
                    .to_string(),
            );
        }
    }
    assert_eq!(
        listed,
        vec!["acme/app!6", "acme/app!1", "acme/app!1", "acme/big!300"]
    );
    // Slack's body mentions through [mentions.slack].
    let slack = r.stdout.split("--- slack ---\n").nth(1).unwrap();
    assert!(slack.contains("<@U0ALICE>"), "{slack}");
    assert!(r.stdout.contains("warning: cannot read project ops/secret"));
    assert!(r
        .stdout
        .contains("dry run: 3 merge request(s) for 2 channel(s), nothing queued"));
    assert!(
        !dir.join("outbox.db").exists(),
        "a dry run opened the outbox"
    );
}

#[test]
fn a_gitlab_that_cannot_be_read_fails_the_run_instead_of_saying_nothing_waits() {
    let _turn = turn::shared();
    let dir = TempDir::new("reminders-gitlab-down");
    // A closed loopback port: every listing is refused.
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let config = write_config(&dir, &closed, "weekdays 09:30");
    let config = config.to_str().unwrap();
    let r = bin(&[
        "reminders",
        "--config",
        config,
        "run",
        "reviews",
        "--dry-run",
    ]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("GitLab could not be read for any project of the reminder"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was posted"), "{}", r.stderr);
    assert!(!r.stdout.contains("no merge request waits"), "{}", r.stdout);
    assert!(!dir.join("outbox.db").exists(), "the run opened the outbox");
}

#[test]
fn run_queues_the_card_and_list_shows_the_next_run_in_the_zone() {
    let _turn = turn::shared();
    let f = fake();
    let dir = TempDir::new("reminders-run");
    let config = write_config(&dir, f.base(), "daily 09:30");
    let config = config.to_str().unwrap();
    let r = bin(&["reminders", "--config", config, "run", "reviews"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("queued: 3 merge request(s) for 2 channel(s)"),
        "{}",
        r.stdout
    );
    let listed = bin(&["outbox", "--config", config, "list"]);
    assert_eq!(
        listed.stdout.matches("reminder-reviews-").count(),
        2,
        "{}",
        listed.stdout
    );

    let r = bin(&["reminders", "--config", config, "list"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let next = Schedule::parse("daily 09:30")
        .unwrap()
        .next_after(chrono::Utc::now(), chrono_tz::Europe::Berlin)
        .with_timezone(&chrono_tz::Europe::Berlin);
    let want = format!(
        "reviews: daily 09:30 (Europe/Berlin), next run {}",
        next.format("%a %Y-%m-%d 09:30 %Z")
    );
    assert!(r.stdout.contains(&want), "{}\nwanted {want}", r.stdout);
    let unknown = bin(&["reminders", "--config", config, "run", "nope"]);
    assert_eq!(unknown.code, Some(2));
    assert!(unknown
        .stderr
        .contains("no reminder named \"nope\" (known: reviews)"));
}

#[test]
fn check_refuses_a_bad_schedule_naming_the_key() {
    let _turn = turn::shared();
    let dir = TempDir::new("reminders-check");
    let config = write_config(&dir, "http://127.0.0.1:9", "weekdays 9.30");
    let r = bin(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("reminders[0].schedule: \"9.30\" is not a time of day: write HH:MM"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// `serve`'s schedule: once at its minute, once across kill -9, caught up or skipped
// ---------------------------------------------------------------------------------------------

/// The zone of the schedule tests: not UTC, and half an hour off it.
const ZONE: chrono_tz::Tz = chrono_tz::Asia::Kolkata;

/// A daemon config posting to `cliq`'s channel `dev`, with reminder `reviews` at `hh_mm` every
/// day in [`ZONE`] over `acme/*` and `ops/secret` on `gitlab`, and `extra` reminder lines.
fn daemon_config(
    dir: &TempDir,
    cliq: &FakeCliq,
    gitlab: &FakeGitlabMrs,
    hh_mm: &str,
    extra: &str,
) -> std::path::PathBuf {
    let mut s = Settings::new(vec![ChannelSpec::new("dev", cliq.url("dev"))]);
    s.rest = format!(
        r#"[mentions]
alice = "55501"

[gitlab]
url = "{}"
token = "{TOKEN}"
watch_hooks_minutes = 0

[[reminders]]
name = "reviews"
channels = ["dev"]
schedule = "daily {hh_mm}"
timezone = "{ZONE}"
projects = ["acme/*", "ops/secret"]
{extra}
"#,
        gitlab.base()
    );
    s.write_config(dir)
}

fn reminder_cards(cliq: &FakeCliq) -> usize {
    cliq.snapshot().count("dev", "wait for review")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_arrives_once_at_its_minute_in_its_zone_and_not_again_after_kill_9() {
    let _turn = turn::shared_async().await;
    let gitlab = fake();
    let cliq = FakeCliq::start(0).await;
    // The next whole minute in the zone, with time enough to start the daemon before it.
    let now = chrono::Utc::now();
    let mut at = now.with_timezone(&ZONE) + chrono::Duration::minutes(1);
    at = at.with_second(0).unwrap().with_nanosecond(0).unwrap();
    if (at.with_timezone(&chrono::Utc) - now).num_seconds() < 15 {
        at += chrono::Duration::minutes(1);
    }
    let dir = TempDir::new("reminders-minute");
    let config = daemon_config(&dir, &cliq, &gitlab, &at.format("%H:%M").to_string(), "");
    let daemon = Daemon::spawn(&config).await;
    assert_eq!(reminder_cards(&cliq), 0, "posted before its minute");
    cliq.wait_for_accepted(1, Duration::from_secs(150)).await;
    let arrived = chrono::Utc::now();
    let scheduled = at.with_timezone(&chrono::Utc);
    assert!(
        arrived >= scheduled && arrived < scheduled + chrono::Duration::seconds(45),
        "scheduled {scheduled}, arrived {arrived}"
    );
    assert_eq!(reminder_cards(&cliq), 1, "{}", cliq.snapshot().summary());
    let card = cliq.snapshot().accepted[0].body.clone();
    assert!(
        card["text"].as_str().unwrap().contains("{@55501}: 2"),
        "{card}"
    );
    assert!(
        cliq.snapshot().violations.is_empty(),
        "{}",
        cliq.snapshot().summary()
    );

    // kill -9 right after (once the post is recorded: an unrecorded post is re-sent, as every
    // message is), and start again: the run is in the store, nothing is sent again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = daemon.stop();
    assert!(log.iter().any(|l| l.contains("reminder: due")), "{log:#?}");
    let again = Daemon::spawn(&config).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(reminder_cards(&cliq), 1, "{}", cliq.snapshot().summary());
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_missed_while_down_is_sent_once_within_catch_up_and_skipped_beyond() {
    let _turn = turn::shared_async().await;
    let gitlab = fake();
    // Three minutes ago in the zone: the bridge was down at that time.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(3))
        .with_timezone(&ZONE)
        .format("%H:%M")
        .to_string();

    let cliq = FakeCliq::start(0).await;
    let dir = TempDir::new("reminders-catch-up");
    let config = daemon_config(&dir, &cliq, &gitlab, &past, "catch_up = \"2h\"");
    let daemon = Daemon::spawn(&config).await;
    cliq.wait_for_accepted(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(daemon);
    let again = Daemon::spawn(&config).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reminder_cards(&cliq), 1, "{}", cliq.snapshot().summary());
    drop(again);

    let late = FakeCliq::start(0).await;
    let dir = TempDir::new("reminders-skipped");
    let config = daemon_config(&dir, &late, &gitlab, &past, "catch_up = \"1m\"");
    let daemon = Daemon::spawn(&config).await;
    let mut skipped = false;
    for _ in 0..100 {
        if daemon
            .log()
            .iter()
            .any(|l| l.contains("missed by more than catch_up"))
        {
            skipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(skipped, "{:#?}", daemon.log());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(late.snapshot().requests, 0, "{}", late.snapshot().summary());
}
