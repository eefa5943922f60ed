//! Routing tests, table-driven over real GitLab payloads × routes: event-key globs, projects,
//! refs (`default`, `protected`, globs), labels, excluded users (bots), confidential default-deny,
//! several channels with their own templates and time zones, and the `skip` helper.

use crate::support::renderer::renderer_with;
use crate::support::samples;
use crate::support::turn;
use gitlab_chat_bridge::config::{ChannelConfig, ChannelKind, RouteConfig};
use gitlab_chat_bridge::deliver::{Auth, Endpoint};
use gitlab_chat_bridge::event::{self, Event};
use gitlab_chat_bridge::render::{DateSettings, Renderer, TemplateSource};
use gitlab_chat_bridge::route::{self, Ignored, Route, RouteTable};
use serde_json::Value;
use std::sync::Arc;

fn edited(file: &str, header: &str, edit: impl FnOnce(&mut Value)) -> Event {
    let mut v = samples::json(file);
    edit(&mut v);
    event::parse(Some(header), v).unwrap()
}

/// Timestamps on a 24-hour clock.
fn dates(tz: &str) -> DateSettings {
    DateSettings {
        date_format: "%d-%b-%Y %H:%M".into(),
        ..crate::support::renderer::dates(tz)
    }
}

fn renderer(extra: Vec<TemplateSource>, tz: &str) -> Arc<Renderer> {
    Arc::new(renderer_with(extra, dates(tz)))
}

fn channel(name: &str, confidential: bool) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        kind: ChannelKind::Cliq,
        format: gitlab_chat_bridge::config::Format::Card,
        endpoint: Endpoint {
            url: format!("http://127.0.0.1:9/{name}"),
            auth: Auth::None,
        },
        events: Vec::new(),
        confidential,
        rate_per_minute: 45,
        conversation: Default::default(),
    }
}

fn route_to(channels: &[&str]) -> RouteConfig {
    RouteConfig {
        name: "r".into(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        ..RouteConfig::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Channels that receive `ev` through a table holding just `route` (channel "dev", not
/// confidential, and "secret", confidential).
fn delivered(ev: &Event, route: RouteConfig) -> Vec<String> {
    let table = RouteTable {
        channels: vec![channel("dev", false), channel("secret", true)],
        routes: vec![Route {
            config: route,
            renderer: renderer(Vec::new(), "UTC"),
            platforms: Vec::new(),
        }],
        chats: None,
    };
    route::route(ev, &table, "t")
        .deliveries
        .into_iter()
        .map(|d| d.channel)
        .collect()
}

#[test]
fn routes_match_on_key_project_ref_labels_and_user() {
    let _turn = turn::shared();
    let issue = samples::event("issue__open.json", "Issue Hook"); // gitlabhq/gitlab-test, by root, label API
    let push = samples::event("push__basic.json", "Push Hook"); // mike/diaspora, master (default, protected), by jsmith
    let mr = samples::event("merge_request__open.json", "Merge Request Hook"); // target master, label API
    let tag = samples::event("tag_push__basic.json", "Tag Push Hook"); // refs/tags/v1.0.0
    let note_issue = samples::event("note__issue.json", "Note Hook"); // issue labels Afterpod, Element
    let note_snippet = samples::event("note__snippet.json", "Note Hook");
    let pipeline = samples::event("pipeline__basic.json", "Pipeline Hook");
    let bot_push = edited("push__basic.json", "Push Hook", |v| {
        v["user_username"] = "project_15_bot_1a2b".into();
    });
    let unprotected = edited("push__basic.json", "Push Hook", |v| {
        v["ref"] = "refs/heads/feature/x".into();
        v["ref_protected"] = false.into();
    });

    type Edit = fn(&mut RouteConfig);
    let cases: Vec<(&str, &Event, Edit, bool)> = vec![
        (
            "events glob",
            &mr,
            |r| r.events = strings(&["merge_request.*"]),
            true,
        ),
        (
            "events glob, other kind",
            &issue,
            |r| r.events = strings(&["merge_request.*"]),
            false,
        ),
        (
            "negation",
            &note_snippet,
            |r| r.events = strings(&["note.*", "!note.snippet"]),
            false,
        ),
        (
            "negation lets others",
            &note_issue,
            |r| r.events = strings(&["note.*", "!note.snippet"]),
            true,
        ),
        (
            "project glob",
            &issue,
            |r| r.projects = strings(&["gitlabhq/*"]),
            true,
        ),
        (
            "project glob, other project",
            &push,
            |r| r.projects = strings(&["gitlabhq/*"]),
            false,
        ),
        ("ref name", &push, |r| r.refs = strings(&["master"]), true),
        (
            "ref other name",
            &push,
            |r| r.refs = strings(&["main"]),
            false,
        ),
        (
            "ref default branch",
            &push,
            |r| r.refs = strings(&["default"]),
            true,
        ),
        (
            "ref default, feature branch",
            &unprotected,
            |r| r.refs = strings(&["default"]),
            false,
        ),
        (
            "ref protected",
            &push,
            |r| r.refs = strings(&["protected"]),
            true,
        ),
        (
            "ref protected, unprotected branch",
            &unprotected,
            |r| r.refs = strings(&["protected"]),
            false,
        ),
        (
            "ref glob",
            &unprotected,
            |r| r.refs = strings(&["feature/*"]),
            true,
        ),
        ("tag glob", &tag, |r| r.refs = strings(&["v1.*"]), true),
        (
            "MR target branch",
            &mr,
            |r| r.refs = strings(&["release/*"]),
            false,
        ),
        (
            "refs ignore events without a ref",
            &issue,
            |r| r.refs = strings(&["main"]),
            true,
        ),
        (
            "labels any",
            &issue,
            |r| r.labels_any = strings(&["bug", "API"]),
            true,
        ),
        (
            "labels any, none present",
            &issue,
            |r| r.labels_any = strings(&["bug"]),
            false,
        ),
        (
            "labels all",
            &note_issue,
            |r| r.labels_all = strings(&["Afterpod", "Element"]),
            true,
        ),
        (
            "labels all, one missing",
            &note_issue,
            |r| r.labels_all = strings(&["Afterpod", "bug"]),
            false,
        ),
        (
            "labels on an event without labels",
            &push,
            |r| r.labels_any = strings(&["API"]),
            false,
        ),
        (
            "excluded user",
            &issue,
            |r| r.exclude_users = strings(&["root"]),
            false,
        ),
        (
            "bot excluded by glob",
            &bot_push,
            |r| r.exclude_users = strings(&["project_*_bot*", "*-bot"]),
            false,
        ),
        (
            "people pass the bot filter",
            &push,
            |r| r.exclude_users = strings(&["project_*_bot*", "*-bot"]),
            true,
        ),
        (
            "pipeline by ref",
            &pipeline,
            |r| r.refs = strings(&["master"]),
            true,
        ),
    ];
    for (what, ev, edit, want) in cases {
        let mut r = route_to(&["dev"]);
        edit(&mut r);
        let matched = route::matches(&r, ev);
        assert_eq!(matched, want, "{what}: matches()");
        if want && ev.known {
            assert_eq!(delivered(ev, r), ["dev"], "{what}: delivered");
        }
    }
}

#[test]
fn confidential_events_are_denied_by_default() {
    let _turn = turn::shared();
    let conf = samples::event("issue__open.json", "Confidential Issue Hook");
    assert!(conf.confidential);
    // Neither the route nor the channel opted in.
    assert_eq!(delivered(&conf, route_to(&["dev"])), Vec::<String>::new());
    // The route opted in, the channel did not.
    let mut r = route_to(&["dev", "secret"]);
    r.confidential = true;
    assert_eq!(delivered(&conf, r.clone()), ["secret"]);
    // The channel opted in, the route did not.
    assert_eq!(
        delivered(&conf, route_to(&["secret"])),
        Vec::<String>::new()
    );
    // The reason is reported.
    let table = RouteTable {
        channels: vec![channel("dev", false)],
        routes: vec![Route {
            config: route_to(&["dev"]),
            renderer: renderer(Vec::new(), "UTC"),
            platforms: Vec::new(),
        }],
        chats: None,
    };
    assert_eq!(
        route::route(&conf, &table, "t").ignored,
        Some(Ignored::Confidential)
    );
    // Confidential comments too, by event_type under the plain header.
    let note = edited("note__issue.json", "Note Hook", |v| {
        v["event_type"] = "confidential_note".into();
    });
    assert_eq!(delivered(&note, route_to(&["dev"])), Vec::<String>::new());
    assert_eq!(delivered(&note, r), ["secret"]);
}

#[test]
fn one_event_reaches_several_channels_once_each_in_their_own_words() {
    let _turn = turn::shared();
    let stamp = |name: &str| TemplateSource {
        name: "issue".into(),
        origin: format!("{name}:issue.hbs"),
        text: format!(r#"{{"text": "{name} {{{{date issue.updated_at}}}}"}}"#),
    };
    let ev = edited("issue__open.json", "Issue Hook", |v| {
        v["object_attributes"]["updated_at"] = "2026-11-24T20:00:00Z".into();
    });
    let india = renderer(vec![stamp("india")], "Asia/Kolkata");
    let west = renderer(vec![stamp("west")], "America/Los_Angeles");
    let table = RouteTable {
        channels: vec![
            channel("in", false),
            channel("us", false),
            channel("all", false),
        ],
        routes: vec![
            Route {
                config: route_to(&["in", "all"]),
                renderer: Arc::clone(&india),
                platforms: Vec::new(),
            },
            Route {
                config: route_to(&["us", "all"]),
                renderer: Arc::clone(&west),
                platforms: Vec::new(),
            },
        ],
        chats: None,
    };
    let routing = route::route(&ev, &table, "req");
    let got: Vec<(String, String)> = routing
        .deliveries
        .iter()
        .map(|d| {
            let v: Value = serde_json::from_str(&d.body).unwrap();
            (d.channel.clone(), v["text"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("in".to_string(), "india 25-Nov-2026 01:30".to_string()),
            ("all".to_string(), "india 25-Nov-2026 01:30".to_string()),
            ("us".to_string(), "west 24-Nov-2026 12:00".to_string()),
        ]
    );
    assert!(routing.deliveries.iter().all(|d| d.id.starts_with("req/")));
}

#[test]
fn a_template_can_decide_not_to_post() {
    let _turn = turn::shared();
    let quiet = TemplateSource {
        name: "push".into(),
        origin: "quiet:push.hbs".into(),
        text: r#"{{#if push.protected}}{"text": "{{push.branch}}"}{{else}}{{skip}}{{/if}}"#.into(),
    };
    let r = renderer(vec![quiet], "UTC");
    let table = RouteTable {
        channels: vec![channel("dev", false)],
        routes: vec![Route {
            config: route_to(&["dev"]),
            renderer: r,
            platforms: Vec::new(),
        }],
        chats: None,
    };
    let protected = samples::event("push__basic.json", "Push Hook");
    assert_eq!(route::route(&protected, &table, "t").deliveries.len(), 1);
    let feature = edited("push__basic.json", "Push Hook", |v| {
        v["ref_protected"] = false.into();
    });
    let routing = route::route(&feature, &table, "t");
    assert!(routing.deliveries.is_empty());
    assert_eq!(routing.ignored, Some(Ignored::Skipped));
    // Text from GitLab cannot trigger the skip.
    let sneaky = edited("issue__open.json", "Issue Hook", |v| {
        v["object_attributes"]["title"] = "\u{1}gcb:skip\u{1}".into();
    });
    let table = RouteTable {
        channels: vec![channel("dev", false)],
        routes: vec![Route {
            config: route_to(&["dev"]),
            renderer: renderer(Vec::new(), "UTC"),
            platforms: Vec::new(),
        }],
        chats: None,
    };
    assert_eq!(route::route(&sneaky, &table, "t").deliveries.len(), 1);
}
