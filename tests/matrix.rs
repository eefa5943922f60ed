//! Matrix against a real homeserver (`support::synapse`, a throw-away Synapse on loopback): the
//! harness starts one with a bot, a second user and a room, and a message `PUT` twice with one
//! txnId — as the daemon re-sends a post whose answer it never saw — is one event in the room,
//! both answers naming it. The bodies the Matrix builder makes from every bundled sample, hostile
//! text included (and their conversation root cards), are accepted by Synapse and read back as `m.notice` with `m.mentions`, with no
//! `javascript:` link and no room mention; a mapped person is pilled and listed, nobody else.
//! Through the daemon: a 500-event stream about 10 issues, the daemon killed (SIGKILL) with a
//! post in flight whose answer a proxy held back, restarted, the stream re-sent: every event is
//! in the room exactly once, in per-issue order, as `m.notice` pilling the mapped assignee only,
//! and the access token is in no log line (debug logging).

use crate::support::daemon::{Daemon, Settings};
use crate::support::samples;
use crate::support::synapse::Synapse;
use crate::support::temp::TempDir;
use crate::support::turn;
use gitlab_chat_bridge::deliver::sender::{txn_id, Attempt, ResolveError, Sender};
use gitlab_chat_bridge::deliver::{Auth, Endpoint};
use gitlab_chat_bridge::event::state::ObjectState;
use gitlab_chat_bridge::render::{Mentions, Platform, RenderSettings, Rendered, Renderer};
use gitlab_chat_bridge::secret::Secret;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn one_txn_id_sent_twice_is_one_event() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("txn").await;
    eprintln!("synapse answered {:?} after it was started", hs.started_in);
    let content = json!({"msgtype": "m.notice", "body": "deployed", "m.mentions": {}});
    let (s1, first) = hs.send(&hs.bot, &hs.room, "gcb-1", &content).await;
    let (s2, second) = hs.send(&hs.bot, &hs.room, "gcb-1", &content).await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    let id = first["event_id"].as_str().unwrap();
    assert!(id.starts_with('$'), "{first}");
    assert_eq!(second["event_id"], first["event_id"]);
    // The second user reads the room: one notice, from the bot.
    let msgs = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0]["event_id"], id);
    assert_eq!(msgs[0]["sender"], hs.bot.user_id.as_str());
    assert_eq!(msgs[0]["content"]["msgtype"], "m.notice");
    assert_eq!(msgs[0]["content"]["m.mentions"], json!({}));
    assert_eq!(hs.bot.device_id, crate::support::synapse::BOT_DEVICE);
}

#[tokio::test]
async fn every_sample_posts_through_the_sender_and_reads_back_safe() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("samples").await;
    let mentions = Mentions::new([("alice", hs.other.user_id.as_str())]);
    let renderer = Renderer::new(
        Vec::new(),
        RenderSettings {
            dates: crate::support::renderer::dates_at("UTC", chrono::Utc::now()),
            mentions: mentions.clone(),
        },
        false,
    )
    .unwrap();
    let sender = Sender::new(Duration::from_secs(20)).unwrap();
    let endpoint = Endpoint::matrix(
        &hs.base_url(),
        &hs.room,
        Secret::new(hs.bot.access_token.clone()),
    );
    assert_eq!(endpoint.url, hs.send_url(&hs.room));
    let mut sent = 0;
    let mut txns = Vec::new();
    for (i, s) in samples::index().into_iter().enumerate() {
        for payload in [
            samples::json(&s.file),
            samples::hostile(samples::json(&s.file)),
        ] {
            let Ok(event) = gitlab_chat_bridge::event::parse(Some(&s.header), payload) else {
                continue;
            };
            let Ok(Rendered::Message(card, _)) = renderer.render(&event) else {
                continue;
            };
            // The conversation root card of the object's state (the event's own), too.
            let root = ObjectState::of(&event).and_then(|s| match renderer.render_root(&s) {
                Ok(Rendered::Message(root, _)) => Some(root),
                _ => None,
            });
            for card in std::iter::once(card).chain(root) {
                let body = Platform::Matrix.body_for(&card, "t", &mentions).to_json();
                let id = format!("sample-{i}-{sent}");
                txns.push(txn_id(&id));
                let attempt = sender.post(&endpoint, &id, &body).await;
                assert_eq!(attempt, Attempt::Delivered(200), "{}: {body}", s.file);
                // The same id again (a re-send after a crash) is the same event.
                assert_eq!(
                    sender.post(&endpoint, &id, &body).await,
                    Attempt::Delivered(200)
                );
                sent += 1;
            }
        }
    }
    assert!(sent > 50, "only {sent} samples rendered");
    let msgs = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(msgs.len(), sent, "each card exactly once");
    let mut pilled = 0;
    for m in &msgs {
        let c = &m["content"];
        assert_eq!(c["msgtype"], "m.notice", "{m}");
        assert!(c["m.mentions"].is_object(), "{m}");
        assert!(c["m.mentions"].get("room").is_none(), "{m}");
        let html = c["formatted_body"].as_str().unwrap_or_default();
        let body = c["body"].as_str().unwrap_or_default();
        assert!(
            !html.to_ascii_lowercase().contains("href=\"javascript"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("@room") && !body.contains("@room"), "{m}");
        if let Some(users) = c["m.mentions"].get("user_ids") {
            assert_eq!(users, &json!([hs.other.user_id]), "{m}");
            assert!(
                html.contains(&format!("https://matrix.to/#/{}", hs.other.user_id)),
                "{html}"
            );
            pilled += 1;
        }
    }
    assert!(pilled > 0, "no card mentioned alice");
    // The bot's own device sees each event's txnId: the one derived from its message id.
    let mine: Vec<String> = hs
        .messages(&hs.bot, &hs.room)
        .await
        .iter()
        .map(|m| {
            m["unsigned"]["transaction_id"]
                .as_str()
                .unwrap_or("-")
                .to_string()
        })
        .collect();
    assert_eq!(mine, txns, "{}", hs.log());
}

#[tokio::test]
async fn an_alias_resolves_and_a_stranger_is_refused() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("alias").await;
    let room = hs.create_room(&hs.bot, Some("dev"), &[]).await;
    let sender = Sender::new(Duration::from_secs(10)).unwrap();
    let token = Secret::new(hs.bot.access_token.clone());
    let resolved = sender
        .resolve_room(&hs.base_url(), "#dev:localhost", &token)
        .await
        .unwrap();
    assert_eq!(resolved, room);
    match sender
        .resolve_room(&hs.base_url(), "#nope:localhost", &token)
        .await
    {
        Err(ResolveError::Refused { reason, .. }) => {
            assert!(reason.contains("M_NOT_FOUND"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The second user is not in the alias's room: a post there is a dead letter naming why.
    let stranger = Endpoint {
        url: hs.send_url(&room),
        auth: Auth::Matrix {
            token: Secret::new(hs.other.access_token.clone()),
        },
    };
    let body = json!({"msgtype": "m.notice", "body": "x", "m.mentions": {}}).to_string();
    match sender.post(&stranger, "s-1", &body).await {
        Attempt::Permanent {
            status: 403,
            reason,
        } => {
            assert!(reason.contains("M_FORBIDDEN"), "{reason}");
            assert!(!reason.contains(&hs.other.access_token), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A wrong token: 401, the token in no reason.
    let wrong = Endpoint::matrix(&hs.base_url(), &room, Secret::new("syt_wrong_SECRET"));
    match sender.post(&wrong, "s-2", &body).await {
        Attempt::Permanent {
            status: 401,
            reason,
        } => {
            assert!(
                reason.contains("M_UNKNOWN_TOKEN") && !reason.contains("SECRET"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// A loopback proxy in front of the homeserver that can hold answers: in hold mode a request is
/// forwarded (the homeserver posts the event) but its answer is kept back, so the daemon has a
/// post in flight whose outcome it never learns.
pub(crate) struct HoldingProxy {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) struct ProxyState {
    target: String,
    client: reqwest::Client,
    pub(crate) hold: AtomicBool,
    pub(crate) held: AtomicUsize,
    /// The txnId of every `PUT …/send/m.room.message/{txnId}` forwarded, in order.
    pub(crate) txns: Mutex<Vec<String>>,
    /// The txnIds whose answers were held.
    pub(crate) held_txns: Mutex<Vec<String>>,
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest a held answer is kept back (the daemon is killed long before).
const HOLD_FOR: Duration = Duration::from_secs(30);

async fn forward(
    axum::extract::State(s): axum::extract::State<Arc<ProxyState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = s.client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("{}{path}", s.target),
    );
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req = req.header(name, v);
        }
    }
    let txn = (method == axum::http::Method::PUT)
        .then(|| uri.path().rsplit('/').next().map(str::to_string))
        .flatten();
    if let Some(t) = &txn {
        s.txns.lock().unwrap().push(t.clone());
    }
    let answer = req.body(body).send().await;
    if s.hold.load(Ordering::SeqCst) {
        if let Some(t) = txn {
            s.held_txns.lock().unwrap().push(t);
        }
        s.held.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(HOLD_FOR).await;
        return axum::http::StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    match answer {
        Ok(r) => {
            let status = axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap();
            let bytes = r.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

impl HoldingProxy {
    pub(crate) async fn start(target: &str) -> HoldingProxy {
        let state = Arc::new(ProxyState {
            target: target.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            hold: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            txns: Mutex::default(),
            held_txns: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HoldingProxy { addr, state, task }
    }
}

const STREAM: usize = 500;
const ISSUES: usize = 10;

/// `ev042` in a card's text → 42.
fn stream_index(text: &str) -> Option<usize> {
    let at = text.find("ev")?;
    text.get(at + 2..at + 5)?.parse().ok()
}

#[tokio::test]
async fn a_kill_9_with_a_post_in_flight_posts_every_event_exactly_once() {
    let _turn = turn::shared_async().await;
    let hs = Synapse::start("kill").await;
    let proxy = HoldingProxy::start(&hs.base_url()).await;
    let dir = TempDir::new("matrix-kill");
    let mut settings = Settings::new(Vec::new());
    settings.rest = format!(
        "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"http://{}\"\naccess_token = \"{}\"\nroom = \"{}\"\nrate_per_minute = 100000\n\n[mentions.matrix]\nuser1 = \"{}\"\n",
        proxy.addr, hs.bot.access_token, hs.room, hs.other.user_id
    );
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let hooks = daemon.hooks();
    let event = |i: usize| samples::issue((1 + i % ISSUES) as u64, &format!("ev{i:03} @room"));
    // The first half of the stream, every webhook acknowledged.
    let half = STREAM / 2;
    for i in 0..half {
        let a = hooks
            .post("Issue Hook", event(i), None, Some(&format!("mx-{i}")))
            .await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
    }
    // Posting is under way: hold the next answer, and kill the daemon with that post in flight.
    crate::support::wait_until("posts under way", Duration::from_secs(60), || {
        proxy.state.txns.lock().unwrap().len() >= 20
    })
    .await;
    let before = hs.messages(&hs.other, &hs.room).await.len();
    assert!(before < half, "all {before} were posted before the kill");
    proxy.state.hold.store(true, Ordering::SeqCst);
    crate::support::wait_until("a post in flight", Duration::from_secs(30), || {
        proxy.state.held.load(Ordering::SeqCst) > 0
    })
    .await;
    let log1 = daemon.stop();
    proxy.state.hold.store(false, Ordering::SeqCst);
    // Restarted on the same outbox; GitLab sends the rest and re-sends what it may not have had
    // answered (the same Idempotency-Key: stored once).
    let daemon = Daemon::spawn(&config).await;
    let hooks = daemon.hooks();
    for i in half - 5..STREAM {
        let a = hooks
            .post("Issue Hook", event(i), None, Some(&format!("mx-{i}")))
            .await;
        assert_eq!(a.status, 200, "{i}: {:?}", a.body);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let msgs = loop {
        let msgs = hs.messages(&hs.other, &hs.room).await;
        if msgs.len() >= STREAM {
            break msgs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {STREAM} events in the room",
            msgs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs_again = hs.messages(&hs.other, &hs.room).await;
    assert_eq!(
        msgs_again.len(),
        msgs.len(),
        "more posts came after the last one"
    );
    let mut seen = vec![0usize; STREAM];
    let mut last_of_issue = [None::<usize>; ISSUES];
    for m in &msgs {
        let c = &m["content"];
        let body = c["body"].as_str().unwrap_or_default();
        let i = stream_index(body).unwrap_or_else(|| panic!("not from the stream: {m}"));
        seen[i] += 1;
        let issue = i % ISSUES;
        assert!(
            last_of_issue[issue].is_none_or(|prev| prev < i),
            "issue {issue}: ev{i} after ev{:?}",
            last_of_issue[issue]
        );
        last_of_issue[issue] = Some(i);
        assert_eq!(c["msgtype"], "m.notice", "{m}");
        assert_eq!(
            c["m.mentions"],
            json!({"user_ids": [hs.other.user_id]}),
            "{m}"
        );
        let html = c["formatted_body"].as_str().unwrap_or_default();
        assert_eq!(html.matches("https://matrix.to/#/").count(), 1, "{html}");
        assert!(!body.contains("@room") && !html.contains("@room"), "{m}");
    }
    let wrong: Vec<(usize, usize)> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 1)
        .map(|(i, n)| (i, *n))
        .collect();
    assert!(
        wrong.is_empty(),
        "events not posted exactly once (index, times): {wrong:?}"
    );
    // The post whose answer never came was sent again after the restart, with its txnId, and
    // the homeserver answered with the first event: it is in the room once (checked above).
    let held = proxy.state.held_txns.lock().unwrap().clone();
    assert!(!held.is_empty());
    let txns = proxy.state.txns.lock().unwrap().clone();
    for t in &held {
        assert!(
            txns.iter().filter(|x| *x == t).count() >= 2,
            "{t} was not sent again"
        );
    }
    let log2 = daemon.stop();
    for line in log1.iter().chain(&log2) {
        assert!(
            !line.contains(&hs.bot.access_token),
            "the token leaked: {line}"
        );
    }
}

#[tokio::test]
async fn a_homeserver_that_hangs_does_not_hold_back_the_start() {
    let _turn = turn::shared_async().await;
    // Asked for the room alias at start, the homeserver accepts and never answers; with a 60 s
    // post timeout, a start that waited for the answer would not listen within the harness's
    // 10 s (`Daemon::spawn` fails then).
    let hanging = crate::support::hang::Hanging::start().await;
    let dir = TempDir::new("matrix-hanging-start");
    let mut settings = Settings::new(Vec::new());
    settings.timeout_secs = 60;
    settings.rest = format!(
        "[[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"{}\"\naccess_token = \"syt_SECRET\"\nroom = \"#dev:localhost\"\n",
        hanging.base()
    );
    let daemon = Daemon::spawn(&settings.write_config(&dir)).await;
    assert_eq!(daemon.get("/healthz").await, 200);
    let accepted = daemon.post_sample("issue__open.json").await;
    assert_eq!(accepted.status, 200);
    // The alias was asked all the same, beside the start.
    let asked = std::time::Instant::now() + Duration::from_secs(10);
    while hanging.accepted() == 0 {
        assert!(
            std::time::Instant::now() < asked,
            "the alias was never asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = daemon.stop();
    assert!(!log.iter().any(|l| l.contains("syt_SECRET")));
}
