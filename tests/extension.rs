//! The Cliq extension against the real binary: invocations signed with the vendored test key
//! (`tests/data/cliq_test_key.*`, a test key pair and nothing else) in the shape of Zoho's sample
//! request, a fake Cliq receiving chat posts and response-URL answers, and a small fake GitLab
//! that says which projects the bridge's token can see and keeps the hooks `setup` makes.
//! One daemon serves the whole conversation; it is then killed (SIGKILL) and restarted on the
//! same store to show a subscription survives. [`deadline`]: every command answers in time while
//! GitLab hangs or is down.

mod deadline;

use crate::support::cli;
use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::{FakeCliq, Reply, ZAPIKEY};
use crate::support::temp::TempDir;
use crate::support::{turn, unique, wait_until};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(10);
const PROJECT: &str = "gitlabhq/gitlab-test";
const CHAT: &str = "CT_2243226337559778047_661211447-B2";
const OTHER_CHAT: &str = "CT_2243226337559778047_99-B2";
const ADMIN: &str = "651652091";
const USER: &str = "777";
/// `cliq_extension.answer_within_ms` of these tests.
const ANSWER_WITHIN_MS: u64 = 1_500;
/// How long the fake GitLab takes to list hooks: longer than [`ANSWER_WITHIN_MS`].
const SLOW_GITLAB: Duration = Duration::from_millis(2_000);

type Key = rsa::pkcs1v15::SigningKey<sha2::Sha256>;

fn data(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

fn key(file: &str) -> Key {
    let der = std::fs::read(data(file)).unwrap();
    Key::new(rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap())
}

/// The extension's test key (its public half is in the config).
fn test_key() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| key("cliq_test_key.pk8.der"))
}

/// A key the config does not know.
fn other_key() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| key("cliq_other_key.pk8.der"))
}

fn public_key(file: &str) -> String {
    std::fs::read_to_string(data(file))
        .unwrap()
        .trim()
        .to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A command invocation in the shape of Zoho's sample request.
fn command(cliq: &FakeCliq, user: &str, chat: &str, arguments: &str) -> Value {
    json!({
        "name": "gitlab",
        "handler": {"type": "execution_handler"},
        "response_url": format!("{}/v2/extensions/2305843009213696807/responses/{}", cliq.base(), unique("r")),
        "type": "command",
        "timestamp": now_ms(),
        "params": {
            "environment": {"data_center": "US"},
            "access": {"user_id": user, "user_agent": "Mozilla/5.0", "chat_id": chat,
                       "organization": {"type": "company", "id": "123456456"}},
            "mentions": [], "options": {}, "selections": [],
            "arguments": arguments,
        }
    })
}

/// A button invocation (`invoke.function`) with the button's key.
fn button(user: &str, chat: &str, key: &str) -> Value {
    json!({
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
    })
}

struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// The card's title and text, for assertions.
    fn says(&self) -> String {
        format!("{} | {}", self.body["card"]["title"], self.body["text"])
    }
}

/// Posts `body` to the callback with `signature` (`None`: no header).
async fn post_raw(daemon: &Daemon, body: &[u8], signature: Option<String>) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!("{}/hooks/cliq", daemon.base_url()))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("X-Cliq-Signature", s);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Answer { status, body }
}

fn sign(key: &Key, body: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes())
}

/// Posts an invocation signed with the test key.
async fn invoke(daemon: &Daemon, invocation: &Value) -> Answer {
    let body = serde_json::to_vec(invocation).unwrap();
    post_raw(daemon, &body, Some(sign(test_key(), &body))).await
}

async fn say(daemon: &Daemon, cliq: &FakeCliq, user: &str, chat: &str, args: &str) -> Answer {
    invoke(daemon, &command(cliq, user, chat, args)).await
}

/// A fake GitLab: which projects and groups the token sees, their hooks, and the requests.
#[derive(Default)]
struct GitlabState {
    hooks: Vec<Value>,
    writes: Vec<String>,
}

struct FakeGitlab {
    addr: SocketAddr,
    state: Arc<Mutex<GitlabState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gl_project(UrlPath(id): UrlPath<String>) -> Response {
    if id == PROJECT || id == "1" {
        Json(json!({"id": 1, "path_with_namespace": PROJECT})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Project Not Found"})),
        )
            .into_response()
    }
}

async fn gl_group(UrlPath(_id): UrlPath<String>) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "404 Group Not Found"})),
    )
        .into_response()
}

async fn gl_hooks(State(s): State<Arc<Mutex<GitlabState>>>) -> Json<Value> {
    // Slower than `answer_within_ms`: setup's result goes through the response URL.
    tokio::time::sleep(SLOW_GITLAB).await;
    Json(Value::Array(s.lock().unwrap().hooks.clone()))
}

async fn gl_create_hook(
    State(s): State<Arc<Mutex<GitlabState>>>,
    UrlPath(id): UrlPath<String>,
    Json(mut body): Json<Value>,
) -> Response {
    let mut st = s.lock().unwrap();
    st.writes.push(format!("POST {id}/hooks"));
    body["id"] = json!(41 + st.hooks.len());
    body.as_object_mut().unwrap().remove("token");
    st.hooks.push(body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn gl_test_hook(
    State(s): State<Arc<Mutex<GitlabState>>>,
    UrlPath((id, hook, trigger)): UrlPath<(String, u64, String)>,
) -> Response {
    let mut st = s.lock().unwrap();
    st.writes
        .push(format!("POST {id}/hooks/{hook}/test/{trigger}"));
    // GitLab re-enables a disabled hook when its test request is answered 2xx.
    for h in st.hooks.iter_mut().filter(|h| h["id"] == hook) {
        h["alert_status"] = json!("executable");
    }
    (StatusCode::CREATED, Json(json!({"message": "201 Created"}))).into_response()
}

impl FakeGitlab {
    async fn start() -> FakeGitlab {
        let state = Arc::new(Mutex::new(GitlabState::default()));
        let app = Router::new()
            .route("/api/v4/projects/{id}", get(gl_project))
            .route("/api/v4/groups/{id}", get(gl_group))
            .route(
                "/api/v4/projects/{id}/hooks",
                get(gl_hooks).post(gl_create_hook),
            )
            .route(
                "/api/v4/projects/{id}/hooks/{hook}/test/{trigger}",
                post(gl_test_hook),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlab { addr, state, task }
    }
}

fn config(dir: &TempDir, gitlab: &FakeGitlab, cliq: &FakeCliq) -> std::path::PathBuf {
    config_with(dir, gitlab, cliq, Vec::new(), "")
}

/// [`config`] with `channels` and more `[gitlab]` lines.
fn config_with(
    dir: &TempDir,
    gitlab: &FakeGitlab,
    cliq: &FakeCliq,
    channels: Vec<ChannelSpec>,
    more_gitlab: &str,
) -> std::path::PathBuf {
    let mut s = Settings::new(channels);
    s.rest = format!(
        "[gitlab]\nurl = \"http://{}\"\ntoken = \"glpat-TEST\"\nhook_url = \"https://bridge.example.com/hooks/gitlab\"\n{more_gitlab}\n\
         [cliq_extension]\npublic_keys = [\"{}\"]\nadmins = [\"{ADMIN}\"]\n\
         allowed_projects = [\"gitlabhq/*\"]\napi_url = \"{}\"\nzapikey = \"{ZAPIKEY}\"\n\
         button_function = \"gitlabbridge\"\ndata_center = \"US\"\nanswer_within_ms = {ANSWER_WITHIN_MS}\nrate_per_minute = 600\n",
        gitlab.addr,
        public_key("cliq_test_key.pub.b64"),
        cliq.base(),
    );
    s.write_config(dir)
}

fn chat_posts(cliq: &FakeCliq, chat: &str) -> Vec<Value> {
    cliq.snapshot()
        .accepted
        .into_iter()
        .filter(|a| a.channel == format!("chat:{chat}"))
        .map(|a| a.body)
        .collect()
}

fn export(config: &std::path::Path) -> Value {
    let out = cli::run([
        "subscriptions",
        "--config",
        config.to_str().unwrap(),
        "export",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_subscribes_mutes_and_sets_up_from_cliq() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let gitlab = FakeGitlab::start().await;
    let dir = TempDir::new("extension");
    let cfg = config(&dir, &gitlab, &cliq);
    let daemon = Daemon::spawn(&cfg).await;

    // Refusals: each answers clearly and changes nothing.
    let good =
        serde_json::to_vec(&command(&cliq, USER, CHAT, &format!("subscribe {PROJECT}"))).unwrap();
    let a = post_raw(&daemon, &good, None).await;
    assert_eq!(a.status, 401, "no signature: {}", a.body);
    let a = post_raw(&daemon, &good, Some(sign(other_key(), &good))).await;
    assert_eq!(a.status, 401, "another key: {}", a.body);
    let mut tampered = good.clone();
    tampered.extend_from_slice(b" ");
    let a = post_raw(&daemon, &tampered, Some(sign(test_key(), &good))).await;
    assert_eq!(a.status, 401, "a signature of another body: {}", a.body);
    let mut stale = command(&cliq, USER, CHAT, &format!("subscribe {PROJECT}"));
    stale["timestamp"] = json!(now_ms() - 6 * 60 * 1000);
    let a = invoke(&daemon, &stale).await;
    assert_eq!(a.status, 401, "stale: {}", a.body);
    assert!(
        a.body["error"].as_str().unwrap().contains("5 minutes"),
        "{}",
        a.body
    );
    let a = post_raw(
        &daemon,
        b"{\"type\": \"command\",",
        Some(sign(test_key(), b"{\"type\": \"command\",")),
    )
    .await;
    assert_eq!(a.status, 400, "malformed: {}", a.body);
    let mut eu = command(&cliq, USER, CHAT, &format!("subscribe {PROJECT}"));
    eu["params"]["environment"]["data_center"] = json!("EU");
    let a = invoke(&daemon, &eu).await;
    assert_eq!(a.status, 403, "another data centre: {}", a.body);
    for (args, expect) in [
        ("subscribe mike/diaspora", "allowed_projects"),
        ("subscribe gitlabhq/secret", "cannot see"),
        ("", "no subcommand"),
        ("frobnicate now", "frobnicate"),
        (&format!("subscribe {}", "x".repeat(10_000)), "longer than"),
        (&format!("setup {PROJECT}"), "admins"),
        ("mute gitlabhq/gitlab-test", "not a merge request"),
        ("subscribe ../etc", "not a GitLab project"),
    ] {
        let a = say(&daemon, &cliq, USER, CHAT, args).await;
        assert_eq!(a.status, 200, "{args:.40}: {}", a.body);
        assert!(a.says().contains(expect), "{args:.40}: {}", a.says());
    }
    assert_eq!(export(&cfg), json!([]), "a refusal changed something");
    assert!(gitlab.state.lock().unwrap().writes.is_empty());

    // Subscribe; again updates rather than duplicates; a replayed body is refused.
    let sub = command(&cliq, USER, CHAT, &format!("subscribe {PROJECT}"));
    let a = invoke(&daemon, &sub).await;
    assert!(a.says().contains("Subscribed"), "{}", a.says());
    assert_eq!(invoke(&daemon, &sub).await.status, 401, "replayed");
    let a = say(
        &daemon,
        &cliq,
        USER,
        CHAT,
        &format!("subscribe {PROJECT} merge_request.* issue.*"),
    )
    .await;
    assert!(a.says().contains("updated"), "{}", a.says());
    let a = say(
        &daemon,
        &cliq,
        USER,
        OTHER_CHAT,
        &format!("subscribe {PROJECT} merge_request.*"),
    )
    .await;
    assert!(a.says().contains("Subscribed"), "{}", a.says());
    let a = say(&daemon, &cliq, USER, CHAT, "list").await;
    assert!(a.says().contains("1 subscription(s)"), "{}", a.says());
    assert_eq!(a.body["slides"][0]["type"], "table", "{}", a.body);

    // A real merge request for that project reaches both chats, with a Mute button.
    let before = cliq.accepted();
    assert_eq!(
        daemon.post_sample("merge_request__open.json").await.status,
        200
    );
    assert_eq!(daemon.post_sample("push__basic.json").await.status, 200);
    cliq.wait_for_accepted(before + 2, WAIT).await;
    let posts = chat_posts(&cliq, CHAT);
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let mute = &posts[0]["buttons"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(mute["action"]["type"], "invoke.function");
    assert_eq!(mute["action"]["data"]["name"], "gitlabbridge");
    let key = mute["key"].as_str().unwrap().to_string();
    assert_eq!(key, format!("mute:{PROJECT}!1"));
    assert_eq!(chat_posts(&cliq, OTHER_CHAT).len(), 1);

    // The Mute button mutes that merge request in that chat only.
    let a = invoke(&daemon, &button(USER, CHAT, &key)).await;
    assert!(a.says().contains("Muted"), "{}", a.says());
    let before = cliq.accepted();
    assert_eq!(
        daemon.post_sample("merge_request__open.json").await.status,
        200
    );
    assert_eq!(daemon.post_sample("issue__open.json").await.status, 200);
    cliq.wait_for_accepted(before + 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        chat_posts(&cliq, OTHER_CHAT).len(),
        2,
        "the other chat still hears of the MR"
    );
    let posts = chat_posts(&cliq, CHAT);
    assert_eq!(
        posts.len(),
        2,
        "only the issue, not the muted MR: {posts:#?}"
    );
    assert!(posts[1]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["key"] == json!(format!("mute:{PROJECT}#23"))));

    // Mute with a duration and unmute; status; unsubscribe.
    let a = say(
        &daemon,
        &cliq,
        USER,
        CHAT,
        &format!("mute {PROJECT}#23 for 2h"),
    )
    .await;
    assert!(a.says().contains("for 2h"), "{}", a.says());
    let a = say(&daemon, &cliq, USER, CHAT, &format!("unmute {PROJECT}#23")).await;
    assert!(a.says().contains("Unmuted"), "{}", a.says());
    let a = say(&daemon, &cliq, USER, CHAT, "status").await;
    assert!(a.says().contains("Bridge status"), "{}", a.says());
    // Table cells are neutralised like any text: `_` shows as its look-alike.
    let shown = format!("chat:{CHAT}").replace('_', "\u{02CD}");
    assert!(a.body.to_string().contains(&shown), "{}", a.body);
    let a = say(
        &daemon,
        &cliq,
        USER,
        OTHER_CHAT,
        &format!("unsubscribe {PROJECT}"),
    )
    .await;
    assert!(a.says().contains("Unsubscribed"), "{}", a.says());
    let a = say(&daemon, &cliq, USER, OTHER_CHAT, "list").await;
    assert!(a.says().contains("no subscriptions"), "{}", a.says());

    // Setup by an admin: an answer at once, the plan and result through the response URL.
    let a = say(&daemon, &cliq, ADMIN, CHAT, &format!("setup {PROJECT}")).await;
    assert!(a.says().contains("Setting up"), "{}", a.says());
    wait_until("the setup result", WAIT, || {
        !cliq.snapshot().responses.is_empty()
    })
    .await;
    let out = cliq.snapshot().responses[0]["output"].clone();
    assert_eq!(out["card"]["title"], "Setup done", "{out}");
    assert!(out.to_string().contains("create"), "{out}");
    assert_eq!(
        gitlab.state.lock().unwrap().writes,
        [format!("POST {PROJECT}/hooks")]
    );

    // GitLab disables the hook after failures: `setup` again re-enables it with a test request,
    // as `setup --repair` does, and changes nothing else.
    let hook_id = {
        let mut st = gitlab.state.lock().unwrap();
        st.hooks[0]["alert_status"] = json!("disabled");
        st.hooks[0]["id"].as_u64().unwrap()
    };
    let a = say(&daemon, &cliq, ADMIN, CHAT, &format!("setup {PROJECT}")).await;
    assert!(a.says().contains("Setting up"), "{}", a.says());
    wait_until("the repair result", WAIT, || {
        cliq.snapshot().responses.len() >= 2
    })
    .await;
    let out = cliq.snapshot().responses[1]["output"].clone();
    assert!(
        out.to_string()
            .contains(&format!("test request sent to #{hook_id}")),
        "{out}"
    );
    assert_eq!(
        gitlab.state.lock().unwrap().writes,
        [
            format!("POST {PROJECT}/hooks"),
            format!("POST {PROJECT}/hooks/{hook_id}/test/push_events")
        ]
    );
    assert_eq!(
        gitlab.state.lock().unwrap().hooks[0]["alert_status"],
        "executable"
    );
    assert!(
        cliq.snapshot().violations.is_empty(),
        "{:?}",
        cliq.snapshot().violations
    );

    // kill -9 and restart on the same store: the subscription holds.
    let log = daemon.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("chat subscribed") && l.contains(USER)),
        "who subscribed is logged"
    );
    let daemon = Daemon::spawn(&cfg).await;
    let a = say(&daemon, &cliq, USER, CHAT, "list").await;
    assert!(a.says().contains("1 subscription(s)"), "{}", a.says());
    let before = chat_posts(&cliq, CHAT).len();
    assert_eq!(daemon.post_sample("issue__open.json").await.status, 200);
    wait_until("the issue after the restart", WAIT, || {
        chat_posts(&cliq, CHAT).len() > before
    })
    .await;

    // The command line sees, exports and imports the same rules.
    let rules = export(&cfg);
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules:#}");
    let file = dir.write("rules.json", &json!([{"chat": "c", "kind": "bogus", "subject": "x", "spec": "{}", "created_by": "cli", "created_at": 0}]).to_string());
    let out = cli::run([
        "subscriptions",
        "--config",
        cfg.to_str().unwrap(),
        "import",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
    let mut more = rules.clone();
    more.as_array_mut().unwrap()[0]["chat"] = json!(OTHER_CHAT);
    let file = dir.write("rules.json", &more.to_string());
    let out = cli::run([
        "subscriptions",
        "--config",
        cfg.to_str().unwrap(),
        "import",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(export(&cfg).as_array().unwrap().len(), 3);
    let out = cli::run(["subscriptions", "--config", cfg.to_str().unwrap(), "list"]);
    assert!(
        out.stdout.contains(OTHER_CHAT) && out.stdout.contains("subscription"),
        "{}",
        out.stdout
    );
    drop(daemon);
}

/// Posts to the configured channel `channel` whose card title contains `title`.
fn channel_cards(cliq: &FakeCliq, channel: &str, title: &str) -> Vec<Value> {
    cliq.snapshot()
        .accepted
        .into_iter()
        .filter(|a| a.channel == channel)
        .map(|a| a.body)
        .filter(|b| {
            b["card"]["title"]
                .as_str()
                .is_some_and(|t| t.contains(title))
        })
        .collect()
}

/// `(pending, retrying, dead)` of `channel` in `outbox stats`, if it has a row.
async fn stats_of(config: &std::path::Path, channel: &str) -> Option<(u64, u64, u64)> {
    let config = config.display().to_string();
    let out = cli::run_async(&["outbox", "--config", &config, "stats"], WAIT).await;
    assert_eq!(out.code, Some(0), "{out:#?}");
    out.stdout
        .lines()
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, p, r, d, ..] if name == channel => {
                Some((p.parse().ok()?, r.parse().ok()?, d.parse().ok()?))
            }
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_alerted_in_the_ops_channel_and_retried_by_an_admin() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    cliq.set_channel("team", Reply::ChannelNotFound);
    let gitlab = FakeGitlab::start().await;
    let dir = TempDir::new("extension-retry");
    let cfg = config_with(
        &dir,
        &gitlab,
        &cliq,
        vec![
            ChannelSpec::new("ops", cliq.url("ops")),
            ChannelSpec::new("team", cliq.url("team")),
        ],
        "ops_channel = \"ops\"\n",
    );
    let daemon = Daemon::spawn(&cfg).await;

    // Cliq refuses the team channel's post for good: one alert card in the ops channel.
    assert_eq!(daemon.post_sample("issue__open.json").await.status, 200);
    wait_until("the dead-letter alert", WAIT, || {
        !channel_cards(&cliq, "ops", "Dead letter").is_empty()
    })
    .await;
    let alerts = channel_cards(&cliq, "ops", "Dead letter");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let text = alerts[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("channel team"), "{text}");
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(
        text.contains("No such channel exists."),
        "the last error: {text}"
    );
    let retry = &alerts[0]["buttons"][0];
    assert_eq!(retry["label"], "Retry", "{alerts:#?}");
    assert_eq!(retry["action"]["type"], "invoke.function");
    assert_eq!(retry["action"]["data"]["name"], "gitlabbridge");
    let key = retry["key"].as_str().unwrap_or_default().to_string();
    let id = key.strip_prefix("retry:").unwrap_or_default();
    assert!(text.contains(&format!("outbox retry {id}")), "{text}");
    assert_eq!(stats_of(&cfg, "team").await, Some((0, 0, 1)));

    // A non-admin's press is refused and changes nothing.
    let a = invoke(&daemon, &button(USER, CHAT, &key)).await;
    assert!(a.says().contains("Admins only"), "{}", a.says());
    assert_eq!(stats_of(&cfg, "team").await, Some((0, 0, 1)));

    // An admin's press makes it due again; Cliq now accepts it: delivered once.
    cliq.set_channel("team", Reply::Accept);
    let a = invoke(&daemon, &button(ADMIN, CHAT, &key)).await;
    assert!(a.says().contains("Retrying"), "{}", a.says());
    wait_until("the retried post", WAIT, || {
        cliq.snapshot().accepted.iter().any(|p| p.channel == "team")
    })
    .await;
    // Pressed again (or an unknown id): a clear answer, nothing changes.
    let a = invoke(&daemon, &button(ADMIN, CHAT, &key)).await;
    assert!(a.says().contains("Not a dead letter"), "{}", a.says());
    let a = invoke(&daemon, &button(ADMIN, CHAT, "retry:999999")).await;
    assert!(a.says().contains("Not a dead letter"), "{}", a.says());
    let a = invoke(&daemon, &button(ADMIN, CHAT, "retry:x{@all}")).await;
    assert!(a.says().contains("not a message id"), "{}", a.says());
    assert_eq!(stats_of(&cfg, "team").await, None, "nothing left for team");
    let seen = cliq.snapshot();
    assert_eq!(
        seen.accepted.iter().filter(|p| p.channel == "team").count(),
        1,
        "delivered once"
    );
    assert_eq!(channel_cards(&cliq, "ops", "Dead letter").len(), 1);
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_is_off_without_the_section() {
    let _turn = turn::shared_async().await;
    let daemon = Daemon::start("no-extension", &[]).await;
    let body = b"{}";
    let a = post_raw(&daemon, body, Some(sign(test_key(), body))).await;
    assert_eq!(a.status, 404);
}

/// `/gitlab reviews` with signed invocations: a group's waiting merge requests by reviewer,
/// with mentions, as the review reminder's card; a path outside `allowed_projects` refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_answers_with_the_reminder_card() {
    use crate::support::fake_gitlab_mrs::{FakeGitlabMrs, Mr, TOKEN as GITLAB_TOKEN};
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let gitlab = FakeGitlabMrs::start(vec![
        Mr::new("acme/app", 1, 30, &["alice", "bob"]),
        Mr {
            draft: true,
            ..Mr::new("acme/app", 2, 30, &["alice"])
        },
        Mr::new("acme/lib", 3, 50, &["alice"]),
        Mr::new("other/app", 4, 50, &["alice"]),
    ]);
    let dir = TempDir::new("extension-reviews");
    let mut s = Settings::new(Vec::new());
    s.rest = format!(
        "[mentions]\nalice = \"55501\"\n\n\
         [gitlab]\nurl = \"{}\"\ntoken = \"{GITLAB_TOKEN}\"\nwatch_hooks_minutes = 0\n\n\
         [cliq_extension]\npublic_keys = [\"{}\"]\nallowed_projects = [\"acme\", \"acme/*\"]\n\
         api_url = \"{}\"\nzapikey = \"{ZAPIKEY}\"\nanswer_within_ms = 4000\n",
        gitlab.base(),
        public_key("cliq_test_key.pub.b64"),
        cliq.base(),
    );
    let config = s.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;

    let a = say(&daemon, &cliq, USER, CHAT, "reviews acme").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body["card"]["title"], "Review reminder: acme",
        "{}",
        a.body
    );
    let text = a.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("👀 *2 merge requests wait for review*\n• {@55501}: 2\n• bob: 1"),
        "{text}"
    );
    let rows = &a.body["slides"][0]["data"]["rows"];
    assert!(
        rows[0]["Merge request"]
            .as_str()
            .unwrap()
            .starts_with("[acme/lib!3 "),
        "{rows}"
    );
    assert!(
        rows[1]["Merge request"]
            .as_str()
            .unwrap()
            .starts_with("[acme/app!1 "),
        "{rows}"
    );
    assert!(rows.get(2).is_none(), "the draft is left out: {rows}");

    let refused = say(&daemon, &cliq, USER, CHAT, "reviews other/app").await;
    assert!(refused.says().contains("Not allowed"), "{}", refused.says());
    let none = say(&daemon, &cliq, USER, CHAT, "reviews acme/nothing").await;
    assert!(none.says().contains("Not visible"), "{}", none.says());
    assert!(!gitlab.requests().iter().any(|r| r.contains("other%2Fapp")));
}

/// `/gitlab remind` with signed invocations: the chat's reminder is listed, its card is posted
/// to the chat by the schedule (set three minutes after its time today: caught up at once), and
/// `/gitlab remind off` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remind_sets_lists_posts_and_removes_a_chat_reminder() {
    use crate::support::fake_gitlab_mrs::{FakeGitlabMrs, Mr, TOKEN as GITLAB_TOKEN};
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let gitlab = FakeGitlabMrs::start(vec![Mr::new("acme/app", 1, 30, &["alice"])]);
    let dir = TempDir::new("extension-remind");
    let mut s = Settings::new(Vec::new());
    s.rest = format!(
        "[mentions]\nalice = \"55501\"\n\n\
         [gitlab]\nurl = \"{}\"\ntoken = \"{GITLAB_TOKEN}\"\nwatch_hooks_minutes = 0\n\n\
         [cliq_extension]\npublic_keys = [\"{}\"]\nallowed_projects = [\"acme\", \"acme/*\"]\n\
         api_url = \"{}\"\nzapikey = \"{ZAPIKEY}\"\nanswer_within_ms = 4000\nrate_per_minute = 600\n",
        gitlab.base(),
        public_key("cliq_test_key.pub.b64"),
        cliq.base(),
    );
    let config = s.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;

    let bad = say(&daemon, &cliq, USER, CHAT, "remind weekdays 9.30 acme").await;
    assert!(
        bad.says().contains("is not a time of day"),
        "{}",
        bad.says()
    );
    let past = (chrono::Utc::now() - chrono::Duration::minutes(3))
        .format("%H:%M")
        .to_string();
    let set = say(
        &daemon,
        &cliq,
        USER,
        CHAT,
        &format!("remind daily {past} acme tz:UTC"),
    )
    .await;
    assert!(set.says().contains("Reminder set"), "{}", set.says());
    let list = say(&daemon, &cliq, USER, CHAT, "list").await;
    let listed = list.body.to_string();
    assert!(
        listed.contains(&format!("daily {past} (UTC), acme/")),
        "{listed}"
    );
    assert!(listed.contains(", and a review reminder."), "{listed}");

    wait_until("the chat's reminder card", Duration::from_secs(45), || {
        chat_posts(&cliq, CHAT).iter().any(|p| {
            p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("waits for review")
        })
    })
    .await;
    let card = chat_posts(&cliq, CHAT)
        .into_iter()
        .find(|p| {
            p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("waits for review")
        })
        .unwrap();
    assert_eq!(card["card"]["title"], "Review reminder: acme", "{card}");
    assert!(
        card["text"].as_str().unwrap().contains("{@55501}: 1"),
        "{card}"
    );

    let off = say(&daemon, &cliq, USER, CHAT, "remind off").await;
    assert!(off.says().contains("Reminder off"), "{}", off.says());
    let again = say(&daemon, &cliq, USER, CHAT, "remind off").await;
    assert!(again.says().contains("No reminder"), "{}", again.says());
    let list = say(&daemon, &cliq, USER, CHAT, "list").await;
    assert!(!list.body.to_string().contains("daily"), "{}", list.body);
}
