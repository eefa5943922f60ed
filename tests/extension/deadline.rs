//! Every `/gitlab` command and card button answers within `answer_within_ms` while GitLab hangs
//! (a loopback listener that accepts and never answers) or refuses connections (a closed
//! loopback port): with a usable response URL the late result follows there, without one the
//! answer says GitLab did not answer. Never a 408 (the server's request timeout) nor a 5xx.
//! Then ~150 signed invocations of odd shapes against the hanging GitLab: each answered 200 or
//! 4xx in time.
//!
//! "In time" is asserted by the answer coming back with the expected text; the elapsed time is
//! checked only against a generous failure guard ([`GUARD`]), not as a performance target.

use super::{now_ms, public_key, sign, test_key, ADMIN, PROJECT, USER};
use crate::support::cliq::cliq_violations;
use crate::support::daemon::{Daemon, Settings};
use crate::support::fake_cliq::ZAPIKEY;
use crate::support::hang::{closed_port, Hanging, ResponseUrls};
use crate::support::temp::TempDir;
use crate::support::turn;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `cliq_extension.answer_within_ms` here.
const ANSWER_WITHIN_MS: u64 = 300;
/// The failure guard on one answer: the deadline and 2 s.
const GUARD: Duration = Duration::from_millis(ANSWER_WITHIN_MS + 2_000);
/// How long a late result may take to reach the response URL: GitLab's share (25 × the
/// deadline, see `extension::answers`) and 5 s.
const FOLLOW_UP: Duration = Duration::from_millis(25 * ANSWER_WITHIN_MS + 5_000);
/// Odd invocations sent by the fuzz-like test.
const FUZZ_COUNT: usize = 150;
/// Invocations in flight at once in the fuzz-like test.
const FUZZ_PARALLEL: usize = 6;
/// The fuzz-like test's bound on its whole run.
const FUZZ_WITHIN: Duration = Duration::from_secs(120);

const CHAT_A: &str = "CT_1_100-B2";
const CHAT_B: &str = "CT_1_200-B2";

/// A config whose GitLab is at `gitlab` and whose Cliq host (`api_url`) is `urls`.
fn config(dir: &TempDir, gitlab: &str, urls: &ResponseUrls) -> std::path::PathBuf {
    let mut s = Settings::new(Vec::new());
    s.rest = format!(
        "[gitlab]\nurl = \"{gitlab}\"\ntoken = \"glpat-TEST\"\nhook_url = \"https://bridge.example.com/hooks/gitlab\"\n\
         [cliq_extension]\npublic_keys = [\"{}\"]\nadmins = [\"{ADMIN}\"]\n\
         allowed_projects = [\"gitlabhq/*\"]\napi_url = \"{}\"\nzapikey = \"{ZAPIKEY}\"\n\
         button_function = \"gitlabbridge\"\ndata_center = \"US\"\nanswer_within_ms = {ANSWER_WITHIN_MS}\n",
        public_key("cliq_test_key.pub.b64"),
        urls.base(),
    );
    s.write_config(dir)
}

/// A command invocation (Zoho's sample shape), with `response_url` when given.
fn command(user: &str, chat: &str, arguments: &str, response_url: Option<&str>) -> Value {
    let mut v = json!({
        "name": "gitlab",
        "handler": {"type": "execution_handler"},
        "type": "command",
        "timestamp": now_ms(),
        "params": {
            "environment": {"data_center": "US"},
            "access": {"user_id": user, "user_agent": "Mozilla/5.0", "chat_id": chat},
            "mentions": [], "options": {}, "selections": [],
            "arguments": arguments,
        }
    });
    if let Some(u) = response_url {
        v["response_url"] = json!(u);
    }
    v
}

/// A button invocation (`invoke.function`) with `key`, and `response_url` when given.
fn button(user: &str, chat: &str, key: &str, response_url: Option<&str>) -> Value {
    let mut v = json!({
        "name": "gitlabbridge",
        "handler": {"type": "button_handler"},
        "type": "function",
        "timestamp": now_ms(),
        "params": {
            "environment": {"data_center": "US"},
            "access": {"user_id": user, "chat_id": chat},
            "arguments": {"key": key},
            "target": {"name": "Mute", "key": key},
        }
    });
    if let Some(u) = response_url {
        v["response_url"] = json!(u);
    }
    v
}

/// Status, body and how long the answer took.
struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

impl Answer {
    fn says(&self) -> String {
        format!("{} | {}", self.body["card"]["title"], self.body["text"])
    }
}

/// Posts `body` signed with the test key.
async fn post(client: &reqwest::Client, daemon_base: &str, body: Vec<u8>) -> Answer {
    let signature = sign(test_key(), &body);
    let started = Instant::now();
    let r = client
        .post(format!("{daemon_base}/hooks/cliq"))
        .header("Content-Type", "application/json")
        .header("X-Cliq-Signature", signature)
        .body(body)
        .timeout(GUARD + Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer from the daemon: {e}"));
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        took: started.elapsed(),
    }
}

/// Title of the card a command that calls GitLab answers while GitLab is away.
const NO_GITLAB: &str = "GitLab did not answer";

/// One invocation of the table: what is sent, and what its answer (or its late result) says.
struct Case {
    what: &'static str,
    invocation: fn(chat: &str, url: Option<&str>) -> Value,
    /// The answer's text contains this, or — for commands that call GitLab — is the card
    /// saying the result follows, and the result is [`NO_GITLAB`].
    expect: &'static str,
    calls_gitlab: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "help",
            invocation: |c, u| command(USER, c, "help", u),
            expect: "gitlab-chat-bridge",
            calls_gitlab: false,
        },
        Case {
            what: "subscribe",
            invocation: |c, u| command(USER, c, &format!("subscribe {PROJECT} issue.*"), u),
            expect: NO_GITLAB,
            calls_gitlab: true,
        },
        Case {
            what: "unsubscribe",
            invocation: |c, u| command(USER, c, &format!("unsubscribe {PROJECT}"), u),
            expect: "Not subscribed",
            calls_gitlab: false,
        },
        Case {
            what: "list",
            invocation: |c, u| command(USER, c, "list", u),
            expect: "no subscriptions",
            calls_gitlab: false,
        },
        Case {
            what: "mute",
            invocation: |c, u| command(USER, c, &format!("mute {PROJECT}!1 for 2h"), u),
            expect: "Muted",
            calls_gitlab: false,
        },
        Case {
            what: "unmute",
            invocation: |c, u| command(USER, c, &format!("unmute {PROJECT}!1"), u),
            expect: "Unmuted",
            calls_gitlab: false,
        },
        Case {
            what: "status",
            invocation: |c, u| command(USER, c, "status", u),
            expect: "Bridge status",
            calls_gitlab: false,
        },
        Case {
            what: "setup",
            invocation: |c, u| command(ADMIN, c, &format!("setup {PROJECT}"), u),
            expect: NO_GITLAB,
            calls_gitlab: true,
        },
        Case {
            what: "reviews",
            invocation: |c, u| command(USER, c, &format!("reviews {PROJECT}"), u),
            expect: NO_GITLAB,
            calls_gitlab: true,
        },
        Case {
            what: "remind",
            invocation: |c, u| command(USER, c, &format!("remind weekdays 09:30 {PROJECT}"), u),
            expect: NO_GITLAB,
            calls_gitlab: true,
        },
        Case {
            what: "setup --dry-run",
            invocation: |c, u| command(ADMIN, c, &format!("setup {PROJECT} --dry-run"), u),
            expect: NO_GITLAB,
            calls_gitlab: true,
        },
        Case {
            what: "Mute button",
            invocation: |c, u| button(USER, c, &format!("mute:{PROJECT}#7"), u),
            expect: "Muted",
            calls_gitlab: false,
        },
        Case {
            what: "Retry button",
            invocation: |c, u| button(ADMIN, c, "retry:424242", u),
            expect: "Not a dead letter",
            calls_gitlab: false,
        },
        Case {
            what: "unknown button",
            invocation: |c, u| button(USER, c, "frobnicate:1", u),
            expect: "Unknown button",
            calls_gitlab: false,
        },
    ]
}

/// Every case, with a response URL (chat A) and without one (chat B), against `gitlab`.
async fn every_command_answers_in_time(gitlab: &str) -> Vec<String> {
    let urls = ResponseUrls::start().await;
    let dir = TempDir::new("extension-deadline");
    let daemon = Daemon::spawn(&config(&dir, gitlab, &urls)).await;
    let client = reqwest::Client::new();
    let mut follow_ups = Vec::new();
    for case in cases() {
        for with_url in [true, false] {
            let (url, id) = urls.new_url();
            let (chat, url) = if with_url {
                (CHAT_A, Some(url.as_str()))
            } else {
                (CHAT_B, None)
            };
            let what = format!(
                "{} ({})",
                case.what,
                if with_url {
                    "response URL"
                } else {
                    "no response URL"
                }
            );
            let body = serde_json::to_vec(&(case.invocation)(chat, url)).unwrap();
            let a = post(&client, daemon.base_url(), body).await;
            assert_eq!(a.status, 200, "{what}: {}", a.body);
            assert!(cliq_violations(&a.body).is_empty(), "{what}: {}", a.body);
            assert!(a.took < GUARD, "{what}: answered after {:?}", a.took);
            let title = a.body["card"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if case.calls_gitlab && with_url && title != NO_GITLAB {
                assert!(
                    [
                        "Subscribing",
                        "Setting up",
                        "Reading merge requests",
                        "Setting the reminder"
                    ]
                    .contains(&title.as_str()),
                    "{what}: {}",
                    a.says()
                );
                assert!(
                    a.says().contains("will follow here"),
                    "{what}: {}",
                    a.says()
                );
                follow_ups.push((what, id));
            } else {
                assert!(a.says().contains(case.expect), "{what}: {}", a.says());
            }
        }
    }
    // The late results arrive at their response URLs, saying GitLab did not answer.
    for (what, id) in &follow_ups {
        let posted = urls.wait_for(id, FOLLOW_UP).await;
        let output = &posted["output"];
        assert_eq!(output["card"]["title"], NO_GITLAB, "{what}: {posted}");
        assert!(cliq_violations(output).is_empty(), "{what}: {posted}");
    }
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    follow_ups.into_iter().map(|(what, _)| what).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_time_while_gitlab_hangs() {
    let _turn = turn::shared_async().await;
    let gitlab = Hanging::start().await;
    let followed = every_command_answers_in_time(&gitlab.base()).await;
    assert_eq!(
        followed.len(),
        5,
        "subscribe, reviews, remind, setup, setup --dry-run: {followed:?}"
    );
    assert!(gitlab.accepted() >= 5, "GitLab was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_time_while_gitlab_refuses_connections() {
    let _turn = turn::shared_async().await;
    every_command_answers_in_time(&closed_port()).await;
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values of every JSON type and odd strings.
fn odd_value(rng: &mut Rng) -> Value {
    let long = "x".repeat(3_000);
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!([]),
        json!([1, "two"]),
        json!({}),
        json!({"key": "mute:gitlabhq/gitlab-test!1"}),
        json!(""),
        json!(" "),
        json!("\u{0}\u{7}\u{1b}[31m"),
        json!("{@all} *bold* [x](http://evil.example)"),
        json!("../../etc/passwd"),
        json!("Ünïcødé 🦀 \u{202e}"),
        json!(long),
        json!("subscribe gitlabhq/gitlab-test"),
        json!("setup gitlabhq/gitlab-test"),
        json!("http://127.0.0.1:1/v2/extensions/1/responses/1"),
    ];
    rng.pick(&values).clone()
}

/// An invocation of an odd shape: a command or a button, then 1–3 changes (a key removed, a
/// value of another type or an odd string, an unknown button).
fn odd_invocation(rng: &mut Rng, urls: &ResponseUrls) -> Value {
    let arguments = [
        "subscribe gitlabhq/gitlab-test",
        "subscribe gitlabhq/gitlab-test merge_request.* labels:a,b refs:main",
        "setup gitlabhq/gitlab-test",
        "setup gitlabhq/gitlab-test --dry-run",
        "subscribe gitlabhq",
        "list",
        "status",
        "mute gitlabhq/gitlab-test!3",
        "",
        "SUBSCRIBE gitlabhq/gitlab-test",
    ];
    let keys = [
        "mute:gitlabhq/gitlab-test!1",
        "retry:1",
        "retry:-5",
        "mute:",
        "unknown:button",
        "",
    ];
    let user = *rng.pick(&[USER, ADMIN]);
    let (url, _) = urls.new_url();
    let url = if rng.below(2) == 0 {
        Some(url.as_str())
    } else {
        None
    };
    let mut v = if rng.below(3) == 0 {
        let key = *rng.pick(&keys);
        button(user, CHAT_A, key, url)
    } else {
        let arguments = *rng.pick(&arguments);
        command(user, CHAT_A, arguments, url)
    };
    let paths: [&[&str]; 12] = [
        &["params"],
        &["params", "arguments"],
        &["params", "access"],
        &["params", "access", "user_id"],
        &["params", "access", "chat_id"],
        &["params", "environment"],
        &["params", "target"],
        &["response_url"],
        &["type"],
        &["handler"],
        &["name"],
        &["timestamp"],
    ];
    for _ in 0..1 + rng.below(3) {
        let path = *rng.pick(&paths);
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut v;
        for p in parents {
            if !at[*p].is_object() {
                break;
            }
            at = &mut at[*p];
        }
        let Some(obj) = at.as_object_mut() else {
            continue;
        };
        match rng.below(3) {
            0 => {
                obj.remove(*last);
            }
            _ => {
                obj.insert(last.to_string(), odd_value(rng));
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_invocations_are_answered_in_time_while_gitlab_hangs() {
    let _turn = turn::shared_async().await;
    let gitlab = Hanging::start().await;
    let urls = ResponseUrls::start().await;
    let dir = TempDir::new("extension-fuzz");
    let daemon = Daemon::spawn(&config(&dir, &gitlab.base(), &urls)).await;
    let client = reqwest::Client::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bodies: Vec<Vec<u8>> = (0..FUZZ_COUNT)
        .map(|_| serde_json::to_vec(&odd_invocation(&mut rng, &urls)).unwrap())
        .collect();
    let started = Instant::now();
    let mut answers = Vec::new();
    for chunk in bodies.chunks(FUZZ_PARALLEL) {
        assert!(
            started.elapsed() < FUZZ_WITHIN,
            "the run took over {FUZZ_WITHIN:?}"
        );
        let sent = chunk.iter().map(|b| {
            let (client, base, body) = (client.clone(), daemon.base_url().to_string(), b.clone());
            tokio::spawn(async move { (post(&client, &base, body.clone()).await, body) })
        });
        for task in sent.collect::<Vec<_>>() {
            answers.push(task.await.unwrap());
        }
    }
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (a, body) in &answers {
        let shown = String::from_utf8_lossy(&body[..body.len().min(300)]);
        *by_status.entry(a.status).or_default() += 1;
        assert!(
            a.status == 200 || ((400..500).contains(&a.status) && a.status != 408),
            "{} for {shown}: {}",
            a.status,
            a.body
        );
        assert!(a.took < GUARD, "answered after {:?}: {shown}", a.took);
        if a.status == 200 {
            assert!(cliq_violations(&a.body).is_empty(), "{shown}: {}", a.body);
        }
    }
    assert_eq!(answers.len(), FUZZ_COUNT);
    // Enough of them reached the commands, and GitLab was asked (and hung).
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= FUZZ_COUNT / 3,
        "{by_status:?}"
    );
    assert!(
        gitlab.accepted() > 0,
        "GitLab was never asked: {by_status:?}"
    );
    // Still serving.
    let (url, _) = urls.new_url();
    let help = serde_json::to_vec(&command(USER, CHAT_A, "help", Some(&url))).unwrap();
    let a = post(&client, daemon.base_url(), help).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}
