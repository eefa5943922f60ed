//! Contract test against Zoho's own Cliq schema: every message the built-in templates render (from
//! GitLab's fixture payloads, from `check`'s bundled sample variants, and the sample review
//! reminder) is POSTed to Prism running Zoho's `messagecards.yml` as a validating mock, and must
//! be accepted with no request-body or query violation. The same bodies also go to `messages.yml`'s v3 channel post (text checks).
//! Negative controls prove the validator is live.
//!
//! Needs Prism 5.14.2 (`scripts/install-prism.sh`) at `$PRISM` or
//! `.tools/prism/node_modules/.bin/prism`; Zoho's specs are vendored in `specs/cliq/` (provenance
//! in `specs/cliq/SOURCE.md`). When Prism is missing the test fails, unless `GCB_SKIP_PRISM=1`,
//! which turns the failure into a printed skip (`support::prism`).

use crate::support::prism::{self, Prism};
use crate::support::renderer::renderer;
use crate::support::{samples, turn};
use gitlab_chat_bridge::commands::check::sample_events;
use gitlab_chat_bridge::render::Rendered;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Card route of `messagecards.yml` (singular `message`, strict `card` schema).
const CARD_ROUTE: &str = "/channels/alerts/message";
/// v3 channel post of `messages.yml` (plural `messages`, checks `text` only).
const TEXT_ROUTE: &str = "/channelsbyname/alerts/messages";
/// Fewest rendered messages the test must check, so it cannot pass vacuously.
const MIN_MESSAGES: usize = 20;

/// A rendered message: (label, template name, JSON body).
type Body = (String, String, String);

/// Renders every fixture and sample variant; returns the messages and prints what posted nothing.
fn rendered_bodies() -> Vec<Body> {
    let r = renderer();
    let variants = sample_events()
        .into_iter()
        .map(|(label, ev)| (format!("sample {label}"), ev));
    let mut bodies = Vec::new();
    let mut errors = Vec::new();
    let fixtures = samples::events()
        .into_iter()
        .map(|(file, ev)| (format!("fixture {file}"), ev));
    for (label, ev) in fixtures.chain(variants) {
        match r.render(&ev) {
            Ok(Rendered::Message(m, template)) => bodies.push((label, template, m.to_json())),
            Ok(Rendered::Skipped(t)) => println!("  {label}: template {t} posts nothing"),
            Ok(Rendered::NoTemplate) => println!("  {label}: no template for {}", ev.key),
            Err(e) => errors.push(format!("{label}: {e}")),
        }
    }
    // The review reminder's card (a table slide per reviewer) is not an event's.
    match r.render_reminder(&gitlab_chat_bridge::render::reminder::sample()) {
        Ok(Rendered::Message(m, template)) => {
            bodies.push(("sample review reminder".into(), template, m.to_json()))
        }
        other => errors.push(format!("sample review reminder: {other:?}")),
    }
    assert!(errors.is_empty(), "render errors:\n{}", errors.join("\n"));
    bodies
}

/// Prism's answer to one POST.
pub(crate) struct Answer {
    pub(crate) status: reqwest::StatusCode,
    /// `sl-violations` entries whose location starts with request.body or request.query.
    pub(crate) request_violations: Vec<Value>,
    /// The whole `sl-violations` header, if any.
    pub(crate) header: Option<String>,
    pub(crate) body: String,
}

/// POSTs `body` as JSON to `url` (on a Prism mock) and reads its violations.
pub(crate) async fn post(client: &reqwest::Client, url: &str, body: &str) -> Answer {
    let resp = client
        .post(url)
        .header("Authorization", "Bearer test")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    let header = resp
        .headers()
        .get("sl-violations")
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
    let request_violations = header
        .as_deref()
        .map(|h| {
            let all: Vec<Value> = serde_json::from_str(h)
                .unwrap_or_else(|e| panic!("sl-violations is not a JSON array ({e}): {h}"));
            all.into_iter()
                .filter(|v| {
                    let loc = v["location"].as_array();
                    let at = |i: usize| loc.and_then(|l| l.get(i)).and_then(Value::as_str);
                    at(0) == Some("request") && matches!(at(1), Some("body" | "query"))
                })
                .collect()
        })
        .unwrap_or_default();
    let body = resp.text().await.unwrap_or_default();
    Answer {
        status,
        request_violations,
        header,
        body,
    }
}

/// Posts every body to `route` on `mock`; returns one failure description per rejected body.
async fn check_all(
    client: &reqwest::Client,
    mock: &Prism,
    route: &str,
    bodies: &[Body],
) -> Vec<String> {
    let url = mock.url(route);
    let mut failures = Vec::new();
    for (label, template, body) in bodies {
        let a = post(client, &url, body).await;
        if !a.status.is_success() || !a.request_violations.is_empty() {
            failures.push(format!(
                "[{} {route}] {label} (template {template}): HTTP {}\n  violations: {}\n  body sent: {body}\n  answer: {}",
                mock.name,
                a.status,
                a.header.as_deref().unwrap_or("(no sl-violations header)"),
                a.body
            ));
        }
    }
    failures
}

/// A body that breaks the schema must be refused, with body violations listed.
async fn assert_rejects(client: &reqwest::Client, mock: &Prism, route: &str) {
    let bad = r#"{"text":42,"card":{"theme":"fancy"}}"#;
    let a = post(client, &mock.url(route), bad).await;
    assert!(
        a.status.is_client_error() && !a.request_violations.is_empty(),
        "negative control: [{} {route}] accepted a bad body {bad}: HTTP {}, sl-violations {:?}",
        mock.name,
        a.status,
        a.header
    );
    println!(
        "  negative control [{} {route}]: HTTP {}, {} body violation(s)",
        mock.name,
        a.status,
        a.request_violations.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_messages_match_zoho_cliq_schema() {
    let _turn = turn::shared_async().await;
    let t0 = Instant::now();
    let Some(bin) = prism::binary() else {
        return;
    };

    // Both mocks start together: about 1 s each.
    let mut cards = Prism::launch(&bin, &prism::spec("cliq/messagecards.yml"), true);
    let mut messages = Prism::launch(&bin, &prism::spec("cliq/messages.yml"), true);
    let bodies = rendered_bodies();
    tokio::task::block_in_place(|| {
        cards.wait_ready();
        messages.wait_ready();
    });
    println!(
        "prism ready in {:.2} s ({} on :{}, {} on :{})",
        t0.elapsed().as_secs_f64(),
        cards.name,
        cards.port(),
        messages.name,
        messages.port()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_rejects(&client, &cards, CARD_ROUTE).await;
    assert_rejects(&client, &messages, TEXT_ROUTE).await;

    let mut failures = check_all(&client, &cards, CARD_ROUTE, &bodies).await;
    failures.extend(check_all(&client, &messages, TEXT_ROUTE, &bodies).await);

    let mut templates: Vec<&str> = bodies.iter().map(|b| b.1.as_str()).collect();
    templates.sort_unstable();
    templates.dedup();
    println!(
        "checked {} rendered messages (templates: {}) against {} and {} in {:.2} s",
        bodies.len(),
        templates.join(", "),
        cards.name,
        messages.name,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} post(s) broke Zoho's schema:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        bodies.len() >= MIN_MESSAGES,
        "only {} messages rendered, want at least {MIN_MESSAGES}",
        bodies.len()
    );
}
