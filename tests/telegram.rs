//! Telegram against the fake Bot API (`support::fake_telegram`, which parses the HTML on its own
//! terms): the fake's parser refuses what Telegram refuses; every bundled sample, and each with
//! hostile text in it (its conversation root card too), becomes a body the fake accepts through the real sender, with the hostile
//! text shown as text; Telegram's answers become the right attempts (429 with its wait, a
//! migration, 403 naming the cause, a wrong token) with the token in no reason; and with the real
//! workers on a real outbox, a 429 delays only its channel, a migrated group gets every message
//! at its new id in order, and a bot removed from a chat turns its messages into dead letters
//! naming the cause. Through the daemon (debug logging), the same three chats: the bot token is
//! in no log line, the move is logged once and kept in the outbox: after a restart the channel
//! posts to the new chat at once.

use crate::support::daemon::{Daemon, Settings};
use crate::support::fake_telegram::{parse_html, FakeTelegram, TOKEN};
use crate::support::samples;
use crate::support::temp::TempDir;
use crate::support::turn;
use gitlab_chat_bridge::deliver::clock::Clock;
use gitlab_chat_bridge::deliver::durable::{DurableOutbox, DurableSettings};
use gitlab_chat_bridge::deliver::rate::RateLimiter;
use gitlab_chat_bridge::deliver::sender::{Attempt, Sender};
use gitlab_chat_bridge::deliver::worker::{
    moved_chat_id, run_channel, DeadLetter, DeadLetters, Post, Target,
};
use gitlab_chat_bridge::deliver::{Auth, Batch, BoxFuture, Delivery, Endpoint, RetryPolicy};
use gitlab_chat_bridge::event::state::ObjectState;
use gitlab_chat_bridge::render::{cliq, Mentions, Platform, RenderSettings, Rendered, Renderer};
use gitlab_chat_bridge::secret::Secret;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn endpoint(fake: &FakeTelegram, token: &str, chat: &str) -> Endpoint {
    let e = Endpoint::telegram(&fake.api_url(), &Secret::new(token), chat, None);
    assert!(matches!(&e.auth, Auth::Telegram { url, .. } if url.expose() == fake.send_url(token)));
    e
}

#[test]
fn the_fakes_parser_follows_telegram() {
    let _turn = turn::shared();
    assert_eq!(
        parse_html("<b>a &amp; b</b> <a href=\"https://e.test/?a=1&amp;b=2\">x</a> <a href=\"tg://user?id=42\">al</a>")
            .unwrap(),
        "a & b x al"
    );
    for bad in [
        "<script>x</script>",
        "<b>x",
        "<b><i>x</b></i>",
        "a & b",
        "a > b",
        "&nbsp;",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<span>x</span>",
        "<br>",
    ] {
        assert!(parse_html(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn every_sample_is_a_body_telegram_accepts() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&["-1001"]).await;
    let mentions = Mentions::new([("alice", "4242")]);
    let renderer = Renderer::new(
        Vec::new(),
        RenderSettings {
            dates: crate::support::renderer::dates_at("UTC", chrono::Utc::now()),
            mentions: mentions.clone(),
        },
        false,
    )
    .unwrap();
    let sender = Sender::new(Duration::from_secs(10)).unwrap();
    let ep = endpoint(&fake, TOKEN, "-1001");
    let mut sent = 0;
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
                let body = Platform::Telegram.body_for(&card, "t", &mentions).to_json();
                let attempt = sender.post(&ep, &format!("s-{i}-{sent}"), &body).await;
                assert_eq!(attempt, Attempt::Delivered(200), "{}: {body}", s.file);
                sent += 1;
            }
        }
    }
    assert!(sent > 50, "only {sent} samples rendered");
    let got = fake.messages_in("-1001");
    assert_eq!(got.len(), sent);
    let mut shown = 0;
    for m in &got {
        assert_eq!(m.body["link_preview_options"]["is_disabled"], true);
        assert!(
            !m.html.contains("<script") && !m.html.contains("href=\"javascript"),
            "{}",
            m.html
        );
        assert!(
            !m.text.contains("@room") && !m.text.contains("@everyone"),
            "{}",
            m.text
        );
        if m.text.contains("</b><script>alert(1)</script>") {
            shown += 1;
        }
        if let Some(rows) = m.body["reply_markup"]["inline_keyboard"].as_array() {
            assert!(rows
                .iter()
                .flat_map(|r| r.as_array().unwrap())
                .all(|b| b["url"].as_str().unwrap().starts_with("http")));
        }
    }
    assert!(
        shown > 10,
        "the hostile text is shown as text in {shown} messages"
    );
    assert!(
        got.iter()
            .any(|m| m.html.contains("<a href=\"tg://user?id=4242\">alice</a>")),
        "a mapped person is mentioned"
    );
}

#[tokio::test]
async fn answers_become_attempts_without_the_token() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&["-1001", "@dev"]).await;
    let sender = Sender::new(Duration::from_secs(10)).unwrap();
    let body = json!({"text": "<b>hi</b>", "parse_mode": "HTML"}).to_string();
    assert_eq!(
        sender
            .post(&endpoint(&fake, TOKEN, "@dev"), "a", &body)
            .await,
        Attempt::Delivered(200)
    );
    fake.throttle("-1001", 1, 3);
    match sender
        .post(&endpoint(&fake, TOKEN, "-1001"), "b", &body)
        .await
    {
        Attempt::Retry {
            status: Some(429),
            retry_after: Some(d),
            throttled: true,
            ..
        } => assert_eq!(d, Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }
    fake.migrate("-1001", "-1009");
    assert!(matches!(
        sender.post(&endpoint(&fake, TOKEN, "-1001"), "c", &body).await,
        Attempt::Migrated { to, .. } if to == "-1009"
    ));
    fake.kick("-1009");
    let mut reasons = Vec::new();
    match sender
        .post(&endpoint(&fake, TOKEN, "-1009"), "d", &body)
        .await
    {
        Attempt::Permanent {
            status: 403,
            reason,
        } => {
            assert!(reason.contains("bot was kicked"), "{reason}");
            reasons.push(reason);
        }
        other => panic!("{other:?}"),
    }
    let wrong = "123456789:WRONG-token";
    match sender
        .post(&endpoint(&fake, wrong, "@dev"), "e", &body)
        .await
    {
        Attempt::Permanent {
            status: 401,
            reason,
        } => reasons.push(reason),
        other => panic!("{other:?}"),
    }
    match sender.post(&endpoint(&fake, TOKEN, "-5"), "f", &body).await {
        Attempt::Permanent {
            status: 400,
            reason,
        } => {
            assert!(reason.contains("chat not found"), "{reason}");
            reasons.push(reason);
        }
        other => panic!("{other:?}"),
    }
    // Nobody listening: reqwest's error would name the URL, token and all.
    let closed = Endpoint {
        url: "http://127.0.0.1:9/bot…/sendMessage".into(),
        auth: Auth::Telegram {
            url: Secret::new(format!(
                "http://127.0.0.1:{}/bot{TOKEN}/sendMessage",
                crate::support::free_port()
            )),
            chat_id: "1".into(),
            message_thread_id: None,
        },
    };
    match sender.post(&closed, "g", &body).await {
        Attempt::Retry { reason, .. } => reasons.push(reason),
        other => panic!("{other:?}"),
    }
    for r in &reasons {
        assert!(
            !r.contains(TOKEN) && !r.contains("WRONG") && !r.contains("AAH"),
            "{r}"
        );
    }
    // An edit that changes nothing is refused by Telegram and counts as done.
    let first = fake.messages_in("@dev")[0].message_id;
    let edit = Endpoint {
        url: "edit".into(),
        auth: Auth::Telegram {
            url: Secret::new(format!("{}/bot{TOKEN}/editMessageText", fake.api_url())),
            chat_id: "@dev".into(),
            message_thread_id: None,
        },
    };
    let same = json!({"message_id": first, "text": "<b>hi</b>", "parse_mode": "HTML"}).to_string();
    assert_eq!(
        sender.post(&edit, "h", &same).await,
        Attempt::Delivered(400)
    );
    let new =
        json!({"message_id": first, "text": "<b>hi</b> again", "parse_mode": "HTML"}).to_string();
    assert_eq!(sender.post(&edit, "i", &new).await, Attempt::Delivered(200));
    assert_eq!(fake.messages_in("@dev")[0].text, "hi again");
    let seen: Vec<(String, Option<String>, u16)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.chat, r.status))
        .collect();
    let s = |m: &str, c: Option<&str>, st: u16| (m.to_string(), c.map(str::to_string), st);
    assert_eq!(
        seen,
        [
            s("sendMessage", Some("@dev"), 200),
            s("sendMessage", Some("-1001"), 429),
            s("sendMessage", Some("-1001"), 400),
            s("sendMessage", Some("-1009"), 403),
            s("sendMessage", None, 401),
            s("sendMessage", Some("-5"), 400),
            s("editMessageText", Some("@dev"), 400),
            s("editMessageText", Some("@dev"), 200),
        ]
    );
    assert!(fake.requests().iter().all(|r| r.at <= Instant::now()));
    assert!(fake.requests()[3]
        .description
        .as_deref()
        .is_some_and(|d| d.contains("kicked")));
}

#[derive(Default)]
struct Dead(Mutex<Vec<DeadLetter>>);

impl DeadLetters for Dead {
    fn dead<'a>(&'a self, dead: &'a DeadLetter) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.lock().unwrap().push(dead.clone()) })
    }
}

#[tokio::test]
async fn workers_wait_move_and_give_up_per_chat() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&["-100", "-200", "-300"]).await;
    let dir = TempDir::new("telegram-workers");
    let channels = ["slow", "moved", "kicked"];
    let names: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    let clock = Clock::new();
    let settings = DurableSettings {
        dedupe_window_ms: 3_600_000,
        full_sync: false,
    };
    let (outbox, _writer) =
        DurableOutbox::open(&dir.join("outbox.sqlite"), settings, &names, clock).unwrap();
    for i in 0..3 {
        let deliveries = channels
            .iter()
            .map(|c| Delivery {
                id: format!("r{i}/{c}"),
                channel: c.to_string(),
                ordering_key: "issue:1".into(),
                body: json!({"text": format!("<b>{c} {i}</b>"), "parse_mode": "HTML"}).to_string(),
            })
            .collect();
        outbox
            .enqueue(Batch {
                dedupe_key: Some(format!("r{i}")),
                request_id: format!("r{i}"),
                deliveries,
            })
            .await
            .unwrap();
    }
    fake.throttle("-100", 1, 2);
    fake.migrate("-200", "-2000");
    fake.kick("-300");
    let policy = RetryPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
        max_age: Duration::from_secs(3600),
    };
    let sender: Arc<dyn Post> = Arc::new(Sender::new(Duration::from_secs(10)).unwrap());
    let dead = Arc::new(Dead::default());
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, chat) in channels.iter().zip(["-100", "-200", "-300"]) {
        let tell: Arc<dyn DeadLetters> = dead.clone();
        let target = Target {
            name: c.to_string(),
            endpoint: endpoint(&fake, TOKEN, chat),
            // A budget per bot and chat, as `serve` gives them.
            limiter: Arc::new(RateLimiter::new(20)),
            digest: Arc::new(cliq::digest),
            dead_letters: Some(tell),
        };
        tasks.push(tokio::spawn(run_channel(
            target,
            outbox.clone(),
            sender.clone(),
            policy,
            clock,
            cancel.clone(),
        )));
    }
    let moved = fake.wait_for("-2000", 3, Duration::from_secs(20)).await;
    let texts: Vec<&str> = moved.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["moved 0", "moved 1", "moved 2"]);
    let slow = fake.wait_for("-100", 3, Duration::from_secs(20)).await;
    let texts: Vec<&str> = slow.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["slow 0", "slow 1", "slow 2"]);
    // The 429 held the slow channel for its retry_after, and nobody else.
    assert!(
        slow[0].at - started >= Duration::from_millis(1900),
        "{:?}",
        slow[0].at - started
    );
    assert!(
        moved[2].at < slow[0].at,
        "the migrated channel waited for the throttled one"
    );
    crate::support::wait_until("three dead letters", Duration::from_secs(10), || {
        dead.0.lock().unwrap().len() == 3
    })
    .await;
    for d in dead.0.lock().unwrap().iter() {
        assert_eq!(d.channel, "kicked");
        assert_eq!(d.status, Some(403));
        assert!(d.error.contains("Forbidden: bot was kicked"), "{}", d.error);
    }
    assert!(fake.messages_in("-200").is_empty() && fake.messages_in("-300").is_empty());
    // The move is kept in the outbox for the next start.
    let rules = outbox.chat_rules().await.unwrap();
    assert_eq!(moved_chat_id(&rules, "moved").as_deref(), Some("-2000"));
    assert_eq!(moved_chat_id(&rules, "slow"), None);
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn through_the_daemon_each_chat_waits_moves_or_gives_up_alone() {
    let _turn = turn::shared_async().await;
    let fake = FakeTelegram::start(&["-100", "-200", "-300"]).await;
    fake.throttle("-100", 1, 2);
    fake.migrate("-200", "-2000");
    fake.kick("-300");
    let dir = TempDir::new("telegram-daemon");
    let mut settings = Settings::new(Vec::new());
    for (name, chat) in [
        ("tg-slow", "-100"),
        ("tg-moved", "-200"),
        ("tg-kicked", "-300"),
    ] {
        settings.rest.push_str(&format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = {chat}\napi_url = \"{}\"\n\n",
            fake.api_url()
        ));
    }
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let started = Instant::now();
    for i in 0..3 {
        let a = daemon
            .post(
                "Issue Hook",
                samples::issue(7, &format!("tg{i}")),
                None,
                None,
            )
            .await;
        assert_eq!(a.status, 200);
    }
    let moved = fake.wait_for("-2000", 3, Duration::from_secs(20)).await;
    let slow = fake.wait_for("-100", 3, Duration::from_secs(20)).await;
    for (msgs, what) in [(&moved, "moved"), (&slow, "slow")] {
        let order: Vec<bool> = (0..3)
            .map(|i| msgs[i].text.contains(&format!("tg{i}")))
            .collect();
        assert_eq!(order, [true; 3], "{what}: {msgs:#?}");
    }
    // The 429 held its chat for retry_after (2 s), and only its chat.
    assert!(slow[0].at - started >= Duration::from_millis(1900));
    assert!(moved[2].at < slow[0].at);
    crate::support::wait_until("three dead letters", Duration::from_secs(10), || {
        daemon
            .log()
            .iter()
            .filter(|l| l.contains("dead letter") && l.contains("Forbidden: bot was kicked"))
            .count()
            >= 3
    })
    .await;
    assert!(fake.messages_in("-300").is_empty());
    let log1 = daemon.stop();
    assert_eq!(
        log1.iter()
            .filter(|l| l.contains("became a supergroup"))
            .count(),
        1,
        "the move is logged once"
    );
    // After a restart the channel posts to the new chat at once: the move was kept.
    let asked_old = fake
        .requests()
        .iter()
        .filter(|r| r.chat.as_deref() == Some("-200"))
        .count();
    let daemon = Daemon::spawn(&config).await;
    let a = daemon
        .post("Issue Hook", samples::issue(7, "tg3"), None, None)
        .await;
    assert_eq!(a.status, 200);
    let moved = fake.wait_for("-2000", 4, Duration::from_secs(20)).await;
    assert!(moved[3].text.contains("tg3"));
    let log2 = daemon.stop();
    let asked_old_again = fake
        .requests()
        .iter()
        .filter(|r| r.chat.as_deref() == Some("-200"))
        .count();
    assert_eq!(asked_old_again, asked_old, "the old chat was asked again");
    assert!(!log2.iter().any(|l| l.contains("became a supergroup")));
    assert!(
        log2.iter().any(|l| l.contains("moved earlier")),
        "{log2:#?}"
    );
    let secret = TOKEN.split_once(':').unwrap().1;
    for line in log1.iter().chain(&log2) {
        assert!(!line.contains(secret), "the bot token leaked: {line}");
    }
    assert!(log1
        .iter()
        .any(|l| l.contains("DEBUG") || l.contains("debug")));
}

#[test]
fn check_and_render_handle_telegram_and_matrix_channels() {
    let _turn = turn::shared();
    let dir = TempDir::new("telegram-cli");
    let config = dir.write(
        "config.toml",
        &format!(
            "[server]\nsecret_token = \"x\"\n[outbox]\npath = \"outbox.sqlite\"\n\
             [[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = \"@gitlab_news\"\n\
             [[channels]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"https://matrix.example.org\"\n\
             access_token = \"syt_SECRET_matrix\"\nroom = \"#dev:example.org\"\n\
             [mentions.telegram]\nuser1 = \"4242\"\n[mentions.matrix]\nuser1 = \"@user1:example.org\"\n"
        ),
    );
    let config = config.to_str().unwrap();
    let out = crate::support::cli::run(["check", "--config", config]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let sample = samples::dir().join("issue__open.json");
    let sample = sample.to_str().unwrap();
    let tg = crate::support::cli::run([
        "render",
        "--config",
        config,
        "--event",
        sample,
        "--channel",
        "tg",
    ]);
    assert_eq!(tg.code, Some(0), "{}", tg.stderr);
    let body: Value = serde_json::from_str(&tg.stdout).unwrap();
    assert_eq!(body["parse_mode"], "HTML");
    let text = parse_html(body["text"].as_str().unwrap()).unwrap();
    assert!(text.contains("Issue #23"), "{text}");
    assert!(body["text"].as_str().unwrap().contains("tg://user?id=4242"));
    let mx = crate::support::cli::run([
        "render",
        "--config",
        config,
        "--event",
        sample,
        "--channel",
        "mx",
    ]);
    assert_eq!(mx.code, Some(0), "{}", mx.stderr);
    let body: Value = serde_json::from_str(&mx.stdout).unwrap();
    assert_eq!(body["msgtype"], "m.notice");
    assert_eq!(
        body["m.mentions"],
        json!({"user_ids": ["@user1:example.org"]})
    );
    for o in [&out, &tg, &mx] {
        for secret in ["AAH-fake-SECRET", "syt_SECRET_matrix"] {
            assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret));
        }
    }
    // The event JSON is not for these kinds.
    let bad = dir.write(
        "bad.toml",
        &format!("[server]\nsecret_token = \"x\"\n[[channels]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nchat_id = 1\nformat = \"event\"\n"),
    );
    let out = crate::support::cli::run(["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("channels[0].format: a telegram channel shows cards"),
        "{said}"
    );
}

/// Pieces the property test strings together: markup of every chat, mentions, links, entities,
/// control characters, astral characters, and text long enough to be cut.
const PIECES: [&str; 22] = [
    "@room",
    "@everyone",
    "</b><script>alert(1)</script>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "[y](javascript:alert(1))",
    "{@all}",
    "{@4242}",
    "*bold* _it_ ~s~",
    "&amp; &lt; &#x41; &nbsp; &",
    "<b><i>",
    "</i></b>",
    "\"quoted\" 'single'",
    "\n# heading\n> quote\n",
    "😀🧑‍💻",
    "\u{0}\u{1}\u{7f}\u{2028}",
    "<tg-spoiler>s</tg-spoiler><span class=\"tg-spoiler\">",
    "https://example.com/?a=1&b=<2>",
    "@alice",
    "`code` ```pre```",
    "<@U123> <!channel>",
    " ",
    "ÿ",
];

#[test]
fn hostile_text_is_a_valid_body_for_both_kinds() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    let _turn = turn::shared();
    let mentions_tg = Mentions::new([("alice", "4242"), ("user1", "77")]);
    let mentions_mx = Mentions::new([
        ("alice", "@alice:example.org"),
        ("user1", "@u1:example.org"),
    ]);
    let make = |m: &Mentions| {
        Renderer::new(
            Vec::new(),
            RenderSettings {
                dates: crate::support::renderer::dates_at("UTC", chrono::Utc::now()),
                mentions: m.clone(),
            },
            false,
        )
        .unwrap()
    };
    let (tg, mx) = (make(&mentions_tg), make(&mentions_mx));
    let piece = prop_oneof![
        (0..PIECES.len()).prop_map(|i| PIECES[i].to_string()),
        any::<String>(),
        (0usize..3).prop_map(|n| "x&<".repeat(1_000 + n * 1_500)),
    ];
    let strategy = (
        prop::collection::vec(piece.clone(), 0..12),
        prop::collection::vec(piece, 0..12),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(22),
        failure_persistence: None,
        ..Config::default()
    });
    let files = [
        "issue__open.json",
        "note__issue.json",
        "merge_request__open.json",
    ];
    runner
        .run(&strategy, |(title, text, note)| {
            let (title, text) = (title.concat(), text.concat());
            let file = files[if note { 1 } else { title.len() % 3 }];
            let mut v = samples::json(file);
            if let Some(o) = v["object_attributes"].as_object_mut() {
                o.insert("title".into(), json!(title));
                o.insert("description".into(), json!(text));
                o.insert("note".into(), json!(text));
            }
            v["user"]["name"] = json!(title);
            let header = samples::header(file);
            let event = gitlab_chat_bridge::event::parse(Some(&header), v).unwrap();
            let Ok(Rendered::Message(card, _)) = tg.render(&event) else {
                return Ok(());
            };
            let body: Value = serde_json::from_str(
                &Platform::Telegram
                    .body_for(&card, "t", &mentions_tg)
                    .to_json(),
            )
            .unwrap();
            let html = body["text"].as_str().unwrap();
            let shown =
                parse_html(html).map_err(|e| TestCaseError::fail(format!("{e}: {html}")))?;
            prop_assert!(!shown.trim().is_empty());
            prop_assert!(
                shown.encode_utf16().count() <= 4_096,
                "{}",
                shown.encode_utf16().count()
            );
            prop_assert!(
                !shown.contains("@room")
                    && !shown.contains("@everyone")
                    && !shown.contains("@alice")
            );
            let Ok(Rendered::Message(card, _)) = mx.render(&event) else {
                return Ok(());
            };
            let content = Platform::Matrix
                .body_for(&card, "t", &mentions_mx)
                .to_json();
            prop_assert!(content.len() <= 65_536 - 4_000, "{}", content.len());
            let body: Value = serde_json::from_str(&content).unwrap();
            prop_assert_eq!(&body["msgtype"], "m.notice");
            let users = body["m.mentions"]["user_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            prop_assert!(body["m.mentions"].is_object());
            prop_assert!(users
                .iter()
                .all(|u| u == "@alice:example.org" || u == "@u1:example.org"));
            let html = body["formatted_body"].as_str().unwrap_or_default();
            let lower = html.to_ascii_lowercase();
            prop_assert!(
                !lower.contains("href=\"javascript") && !lower.contains("<script"),
                "{html}"
            );
            for (i, _) in html.match_indices('<') {
                let name: String = html[i + 1..]
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                prop_assert!(
                    ["b", "i", "del", "a", "br"].contains(&name.as_str()),
                    "<{name} in {html}"
                );
            }
            for s in [html, body["body"].as_str().unwrap_or_default()] {
                prop_assert!(!s.contains("@room") && !s.contains("@everyone"), "{s}");
            }
            Ok(())
        })
        .unwrap();
}
