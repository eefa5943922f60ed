//! Channel kinds other than Cliq: every sample renders a body each kind's contract accepts
//! (in-process, [`support::chats`]), hostile GitLab text is inert in every kind, and one daemon
//! fans an event out to Cliq, Slack, a signed webhook, a Cliq extension incoming URL and a Zoho
//! function: each gets its own shape once, a 429 on Slack delays only Slack, the signature
//! verifies per Standard Webhooks, the event JSON is the documented one, and no secret is logged.

use crate::cliq_schema::post;
use crate::support::chats::violations;
use crate::support::cli::run;
use crate::support::daemon::{assert_no_secrets, ChannelSpec, Daemon, Settings};
use crate::support::fake_chats::{FakeChats, APPKEY, TOKEN};
use crate::support::fake_cliq::{FakeCliq, ZAPIKEY};
use crate::support::prism::{self, Prism};
use crate::support::renderer::renderer;
use crate::support::samples;
use crate::support::temp::TempDir;
use crate::support::turn;
use gitlab_chat_bridge::commands::check::sample_events;
use gitlab_chat_bridge::render::{Platform, Rendered};
use gitlab_chat_bridge::signing::{v1_signatures, SigningKey};
use serde_json::{json, Value};
use std::time::Duration;

/// Every platform other than Cliq, with its contract's name.
pub const PLATFORMS: [(Platform, &str); 5] = [
    (Platform::Slack, "slack"),
    (Platform::Mattermost, "mattermost"),
    (Platform::Teams, "teams"),
    (Platform::GoogleChat, "google_chat"),
    (Platform::Discord, "discord"),
];

/// What in `body` (a `kind` body built from hostile GitLab text) could mention, notify or
/// forge markup; empty when it is inert.
pub fn inert_problems(kind: &str, body: &Value) -> Vec<String> {
    let text = body.to_string();
    let lower = text.to_lowercase();
    let mut bad: Vec<&str> = vec![
        "{@all}",
        "](http://evil",
        "<http://evil",
        "href=\"http://evil",
    ];
    match kind {
        "slack" => bad.extend(["<!channel", "<!here", "<!everyone", "<@u", "<#c", "<script"]),
        "mattermost" => bad.extend(["@all", "@channel", "@here", "@everyone"]),
        "discord" => bad.extend(["@everyone", "@here", "<@", "<#", "<t:"]),
        "teams" => bad.extend(["<at>"]),
        "google_chat" => bad.extend(["<users/", "<script", "<img"]),
        _ => {}
    }
    let mut out: Vec<String> = bad
        .into_iter()
        .filter(|b| lower.contains(b))
        .map(|b| format!("{kind}: {b:?} in {text}"))
        .collect();
    if kind == "discord" && body["allowed_mentions"]["parse"] != json!([]) {
        out.push("discord: allowed_mentions.parse is not []".into());
    }
    out
}

#[test]
fn every_sample_renders_a_valid_body_for_every_kind() {
    let _turn = turn::shared();
    let r = renderer();
    let samples = sample_events();
    let mut problems = Vec::new();
    let mut bodies = 0;
    for (label, ev) in &samples {
        let Ok(Rendered::Message(card, _)) = r.render(ev) else {
            continue;
        };
        for (p, kind) in PLATFORMS {
            let body: Value =
                serde_json::from_str(&p.body(&card, &ev.object_key()).to_json()).unwrap();
            problems.extend(
                violations(kind, &body)
                    .into_iter()
                    .map(|v| format!("{label}: {v}")),
            );
            bodies += 1;
        }
    }
    assert!(bodies >= 5 * 40, "only {bodies} bodies rendered");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// An issue whose title and description are `text`.
pub fn hostile_issue(text: &str) -> Value {
    let mut v = samples::json("issue__open.json");
    v["object_attributes"]["title"] = json!(text);
    v["object_attributes"]["description"] = json!(text);
    v["user"]["name"] = json!(text);
    v
}

#[test]
fn hostile_text_is_inert_in_every_kind() {
    let _turn = turn::shared();
    let r = renderer();
    let hostile = "@everyone @here <!channel> <!here> @all @channel {@all} [x](http://evil) \
                   <http://evil|x> <@U123> <@&456> <#789> <users/all> <at>x</at> **b** *b* _i_ ~s~ \
                   <a href=\"http://evil\">y</a> <script>z</script> &amp; > quote\n# head";
    let ev = gitlab_chat_bridge::event::parse(Some("Issue Hook"), hostile_issue(hostile)).unwrap();
    let Ok(Rendered::Message(card, _)) = r.render(&ev) else {
        panic!("the issue renders")
    };
    // The issue's conversation root card (its state: the hostile title and author) too.
    let state = gitlab_chat_bridge::event::state::ObjectState::of(&ev).unwrap();
    let Ok(Rendered::Message(root, _)) = r.render_root(&state) else {
        panic!("the issue's root card renders")
    };
    for card in [&card, &root] {
        for (p, kind) in PLATFORMS {
            let body: Value =
                serde_json::from_str(&p.body(card, &ev.object_key()).to_json()).unwrap();
            let problems = inert_problems(kind, &body);
            assert!(problems.is_empty(), "{problems:#?}");
            assert!(
                violations(kind, &body).is_empty(),
                "{:?}",
                violations(kind, &body)
            );
            // The words are still there, only defused.
            assert!(body.to_string().contains("everyone"), "{kind}: {body}");
        }
    }
}

#[test]
fn long_text_is_cut_to_each_kinds_limits() {
    let _turn = turn::shared();
    let r = renderer();
    let long = "word ".repeat(20_000);
    let ev = gitlab_chat_bridge::event::parse(Some("Issue Hook"), hostile_issue(&long)).unwrap();
    let Ok(Rendered::Message(card, _)) = r.render(&ev) else {
        panic!("the issue renders")
    };
    for (p, kind) in PLATFORMS {
        let body: Value = serde_json::from_str(&p.body(&card, &ev.object_key()).to_json()).unwrap();
        assert!(
            violations(kind, &body).is_empty(),
            "{:?}",
            violations(kind, &body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_fans_out_to_each_kind_in_its_own_shape() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let chats = FakeChats::start().await;
    chats.throttle("slack", 1);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let dir = TempDir::new("targets");
    let mut settings = Settings::new(vec![ChannelSpec::new("cliq", cliq.url("cliq"))]);
    let q = |s: &str| serde_json::to_string(s).unwrap();
    settings.rest = format!(
        "[[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = {}\n\n\
         [[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = {}\nsigning_secret = {}\n\n\
         [[channels]]\nname = \"ext\"\nkind = \"cliq\"\nformat = \"event\"\nurl = {}\nzapikey = {}\n\n\
         [[channels]]\nname = \"fn\"\nkind = \"zoho_function\"\nurl = {}\nzapikey = {}\n",
        q(&chats.url("slack")),
        q(&chats.url("webhook")),
        q(secret),
        q(&chats.url("extension")),
        q(ZAPIKEY),
        q(&format!("{}&zapikey={ZAPIKEY}", chats.url("function"))),
        q(ZAPIKEY),
    );
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let answer = daemon.post_sample("issue__open.json").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    cliq.wait_for_accepted(1, Duration::from_secs(10)).await;
    chats
        .wait_for(
            &["webhook", "extension", "function", "slack"],
            Duration::from_secs(10),
        )
        .await;
    let posts = chats.posts();
    let bad: Vec<_> = posts.iter().filter(|p| !p.violations.is_empty()).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for kind in ["webhook", "extension", "function", "slack"] {
        assert_eq!(chats.accepted(kind).len(), 1, "{kind}: {posts:#?}");
    }
    assert_eq!(cliq.accepted(), 1);

    // Slack's 429 (Retry-After: 1) delayed Slack only.
    let slack = &chats.accepted("slack")[0];
    let others =
        ["webhook", "extension", "function"].map(|k| chats.accepted(k)[0].accepted_at.unwrap());
    let slack_at = slack.accepted_at.unwrap();
    for t in others {
        assert!(
            slack_at.duration_since(t) >= Duration::from_millis(900),
            "Slack was not the one delayed"
        );
    }
    assert_eq!(
        posts.iter().filter(|p| p.kind == "slack").count(),
        2,
        "one 429, one retry"
    );
    assert!(slack.body["blocks"].is_array() && slack.body["text"].is_string());

    // The signed webhook verifies per Standard Webhooks.
    let hook = &chats.accepted("webhook")[0];
    let h = |n: &str| hook.headers.get(n).unwrap().to_str().unwrap().to_string();
    let key = SigningKey::parse(secret).unwrap();
    assert!(h("webhook-id").starts_with("msg_"));
    assert!(
        key.verifies(
            &h("webhook-id"),
            &h("webhook-timestamp"),
            &hook.raw,
            &v1_signatures(&h("webhook-signature"))
        ),
        "signature does not verify"
    );
    let ts: i64 = h("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);

    // The event JSON, the same for the webhook, the extension and the function.
    let issue = samples::json("issue__open.json");
    for kind in ["webhook", "extension", "function"] {
        let b = &chats.accepted(kind)[0].body;
        assert_eq!(b["version"], 1, "{kind}: {b}");
        assert_eq!(b["key"], "issue.open", "{kind}");
        assert_eq!(b["kind"], "issue", "{kind}");
        assert_eq!(b["gitlab"], issue, "{kind}");
        assert!(b["object"]["iid"].is_u64(), "{kind}: {b}");
    }
    let ext = &chats.accepted("extension")[0];
    assert!(
        ext.query.contains(APPKEY) && ext.query.contains(ZAPIKEY),
        "{}",
        ext.query
    );

    let log = daemon.stop();
    assert_no_secrets(&log);
    for s in [TOKEN, APPKEY, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(s)).collect();
        assert!(leaks.is_empty(), "{s} leaked: {leaks:#?}");
    }
}

/// A config with a Cliq channel and a Slack channel, templates in `dir/templates`.
fn two_kinds_config(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "config.toml",
        "[server]\nsecret_token = \"t\"\n[templates]\ndir = \"templates\"\n\
         [mentions]\nalice = \"111\"\n[mentions.slack]\nalice = \"U0ALICE\"\n\
         [[channels]]\nname = \"cliq\"\nurl = \"https://cliq.zoho.com/api/v2/channelsbyname/dev/message\"\nzapikey = \"k\"\n\
         [[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T1/B2/XYZSECRET\"\n",
    )
}

#[test]
fn kind_templates_override_per_kind_and_render_shows_each_kinds_body() {
    let _turn = turn::shared();
    let dir = TempDir::new("kind-templates");
    let config = two_kinds_config(&dir);
    std::fs::create_dir_all(dir.join("templates/slack")).unwrap();
    dir.write(
        "templates/slack/issue.hbs",
        "{\"text\": \"Slack words: *{{issue.title}}* for {{mention \"alice\"}}\", \"card\": {\"title\": \"{{plain issue.title}}\"}}",
    );
    let sample = samples::dir().join("issue__open.json");
    let slack = run([
        "render",
        "--config",
        config.to_str().unwrap(),
        "--event",
        sample.to_str().unwrap(),
        "--channel",
        "slack",
    ]);
    assert_eq!(slack.code, Some(0), "{slack:?}");
    let body: Value = serde_json::from_str(slack.stdout.trim()).unwrap();
    assert!(violations("slack", &body).is_empty(), "{body}");
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(section.starts_with("Slack words: *"), "{section}");
    assert!(
        section.ends_with("for <@U0ALICE>"),
        "the [mentions.slack] id: {section}"
    );
    let cliq = run([
        "render",
        "--config",
        config.to_str().unwrap(),
        "--event",
        sample.to_str().unwrap(),
        "--channel",
        "cliq",
    ]);
    let card: Value = serde_json::from_str(cliq.stdout.trim()).unwrap();
    assert!(
        !card["text"].as_str().unwrap().contains("Slack words"),
        "Cliq keeps the built-in: {card}"
    );
    assert!(!slack.stdout.contains("XYZSECRET") && !slack.stderr.contains("XYZSECRET"));

    // `check` renders every kind's templates: a broken Slack one is reported with its file.
    dir.write("templates/slack/issue.hbs", "{\"text\": \"{{#if}}\"}");
    let check = run(["check", "--config", config.to_str().unwrap()]);
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(check.stdout.contains("slack/issue.hbs"), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_bodies_match_discords_openapi_document() {
    let _turn = turn::shared_async().await;
    let Some(bin) = prism::binary() else {
        return;
    };
    let mut mock = Prism::launch(&bin, &prism::spec("discord/execute_webhook.json"), true);
    let r = renderer();
    let mut bodies = Vec::new();
    for (label, ev) in sample_events() {
        if let Ok(Rendered::Message(card, _)) = r.render(&ev) {
            bodies.push((
                label,
                Platform::Discord.body(&card, &ev.object_key()).to_json(),
            ));
        }
    }
    let hostile = gitlab_chat_bridge::event::parse(
        Some("Issue Hook"),
        hostile_issue("@everyone <@1> [x](http://evil) ".repeat(500).as_str()),
    )
    .unwrap();
    if let Ok(Rendered::Message(card, _)) = r.render(&hostile) {
        bodies.push((
            "hostile, long".into(),
            Platform::Discord.body(&card, "k").to_json(),
        ));
    }
    tokio::task::block_in_place(|| mock.wait_ready());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = mock.url("/webhooks/42/token");
    // Negative control: a body breaking the schema is refused.
    let bad = post(&client, &url, r#"{"embeds": [{"title": 5}], "content": 7}"#).await;
    assert!(
        !bad.status.is_success() && !bad.request_violations.is_empty(),
        "negative control accepted: HTTP {} {:?}",
        bad.status,
        bad.header
    );
    let mut failures = Vec::new();
    for (label, body) in &bodies {
        let a = post(&client, &url, body).await;
        if !a.status.is_success() || !a.request_violations.is_empty() {
            failures.push(format!(
                "{label}: HTTP {} {:?}\n  body: {body}\n  answer: {}",
                a.status, a.header, a.body
            ));
        }
    }
    assert!(bodies.len() >= 40, "only {} bodies", bodies.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn teams_cards_match_the_adaptive_card_schema() {
    let _turn = turn::shared();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs/teams/adaptive-card-1.5.0.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    // Negative control: the validator is live.
    let bad = json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": 5, "size": "Huge"}]});
    assert!(!validator.is_valid(&bad), "a bad card passed");
    let r = renderer();
    let mut cards = 0;
    let mut failures = Vec::new();
    let hostile = gitlab_chat_bridge::event::parse(
        Some("Issue Hook"),
        hostile_issue(&"<at>x</at> **b** ".repeat(3000)),
    )
    .unwrap();
    let events = sample_events()
        .into_iter()
        .chain([("hostile, long".to_string(), hostile)]);
    for (label, ev) in events {
        let Ok(Rendered::Message(card, _)) = r.render(&ev) else {
            continue;
        };
        let body: Value =
            serde_json::from_str(&Platform::Teams.body(&card, &ev.object_key()).to_json()).unwrap();
        let mut content = body["attachments"][0]["content"].clone();
        // `msteams` (width, mention entities) is Teams' documented extension of the card,
        // outside the schema, which allows no other property.
        assert!(content["msteams"].is_object(), "{label}");
        content.as_object_mut().unwrap().remove("msteams");
        for e in validator.iter_errors(&content) {
            failures.push(format!("{label}: {e} at {}", e.instance_path()));
        }
        cards += 1;
    }
    assert!(cards >= 40, "only {cards} cards");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_rate_limit_headers_and_retry_after_are_honoured() {
    use gitlab_chat_bridge::deliver::sender::{Attempt, Sender};
    use gitlab_chat_bridge::deliver::{Auth, Endpoint};
    use gitlab_chat_bridge::secret::Secret;
    let _turn = turn::shared_async().await;
    let chats = FakeChats::start().await;
    let sender = Sender::new(Duration::from_secs(5)).unwrap();
    let endpoint = Endpoint {
        url: "discord (redacted)".into(),
        auth: Auth::SecretUrl(Secret::new(chats.url("discord"))),
    };
    let body =
        json!({"embeds": [{"description": "x"}], "allowed_mentions": {"parse": []}}).to_string();
    // An empty bucket (X-RateLimit-Remaining: 0) holds the next post for Reset-After.
    chats.discord_bucket_empty(0.8);
    assert_eq!(
        sender.post(&endpoint, "m1", &body).await,
        Attempt::Delivered(204)
    );
    let started = std::time::Instant::now();
    assert_eq!(
        sender.post(&endpoint, "m2", &body).await,
        Attempt::Delivered(204)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "not held: {:?}",
        started.elapsed()
    );
    // A 429 with Discord's JSON retry_after is a throttle with that wait.
    chats.throttle("discord", 1);
    match sender.post(&endpoint, "m3", &body).await {
        Attempt::Retry {
            throttled: true,
            retry_after: Some(d),
            reason,
            ..
        } => {
            assert_eq!(d, Duration::from_secs(1));
            assert!(!reason.contains(TOKEN), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
