//! Matrix against a real homeserver (`support::synapse`, a throw-away Synapse on loopback): the
//! harness starts one with a bot, a second user and a room, and a message `PUT` twice with one
//! txnId — as the daemon re-sends a post whose answer it never saw — is one event in the room,
//! both answers naming it. The bodies the Matrix builder makes from every bundled sample, hostile
//! text included, are accepted by Synapse and read back as `m.notice` with `m.mentions`, with no
//! `javascript:` link and no room mention; a mapped person is pilled and listed, nobody else.

use crate::support::samples;
use crate::support::synapse::Synapse;
use crate::support::turn;
use gitlab_chat_bridge::deliver::sender::{txn_id, Attempt, ResolveError, Sender};
use gitlab_chat_bridge::deliver::{Auth, Endpoint};
use gitlab_chat_bridge::render::{Mentions, Platform, RenderSettings, Rendered, Renderer};
use gitlab_chat_bridge::secret::Secret;
use serde_json::{json, Value};
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

fn hostile(mut v: Value) -> Value {
    let evil = "@room @everyone </b><script>alert(1)</script> <a href=\"javascript:alert(1)\">x</a> {@all} [y](javascript:alert(1)) @alice";
    if let Some(o) = v
        .get_mut("object_attributes")
        .and_then(Value::as_object_mut)
    {
        for k in ["title", "description", "note"] {
            if o.contains_key(k) {
                o.insert(k.into(), json!(evil));
            }
        }
    }
    if let Some(u) = v.get_mut("user").and_then(Value::as_object_mut) {
        u.insert("name".into(), json!(evil));
    }
    v
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
        for payload in [samples::json(&s.file), hostile(samples::json(&s.file))] {
            let Ok(event) = gitlab_chat_bridge::event::parse(Some(&s.header), payload) else {
                continue;
            };
            let Ok(Rendered::Message(card, _)) = renderer.render(&event) else {
                continue;
            };
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
