//! Contract test against Zoho's own Cliq schema: every message the built-in templates render (from
//! GitLab's fixture payloads and from `check`'s bundled sample variants) is POSTed to Prism running
//! Zoho's `messagecards.yml` as a validating mock, and must be accepted with no request-body or
//! query violation. The same bodies also go to `messages.yml`'s v3 channel post (text checks).
//! Negative controls prove the validator is live.
//!
//! Needs Prism 5.14.2 (`scripts/install-prism.sh`) at `$PRISM` or
//! `.tools/prism/node_modules/.bin/prism`; Zoho's specs are vendored in `specs/cliq/` (provenance
//! in `specs/cliq/SOURCE.md`). When Prism is missing the test fails, unless `GCB_SKIP_PRISM=1`,
//! which turns the failure into a printed skip.

use gitlab_chat_bridge::commands::check::sample_events;
use gitlab_chat_bridge::event::{self, Event};
use gitlab_chat_bridge::render::{DateSettings, Rendered, Renderer};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// Card route of `messagecards.yml` (singular `message`, strict `card` schema).
const CARD_ROUTE: &str = "/channels/alerts/message";
/// v3 channel post of `messages.yml` (plural `messages`, checks `text` only).
const TEXT_ROUTE: &str = "/channelsbyname/alerts/messages";
/// Fewest rendered messages the test must check, so it cannot pass vacuously.
const MIN_MESSAGES: usize = 20;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(100);

/// What to run, or why it cannot run.
struct Setup {
    prism: PathBuf,
    cards_spec: PathBuf,
    messages_spec: PathBuf,
}

fn setup() -> Result<Setup, String> {
    let prism = std::env::var_os("PRISM").map_or_else(
        || Path::new(MANIFEST_DIR).join(".tools/prism/node_modules/.bin/prism"),
        PathBuf::from,
    );
    let cliq = Path::new(MANIFEST_DIR).join("specs/cliq");
    let cards_spec = cliq.join("messagecards.yml");
    let messages_spec = cliq.join("messages.yml");
    let mut missing = Vec::new();
    if !prism.is_file() {
        missing.push(format!(
            "Prism not found at {} (run `bash scripts/install-prism.sh`, or set PRISM)",
            prism.display()
        ));
    }
    for spec in [&cards_spec, &messages_spec] {
        if !spec.is_file() {
            missing.push(format!(
                "Zoho spec not found at {} (vendored in specs/cliq/)",
                spec.display()
            ));
        }
    }
    if missing.is_empty() {
        Ok(Setup {
            prism,
            cards_spec,
            messages_spec,
        })
    } else {
        Err(missing.join("\n"))
    }
}

/// A running `prism mock`, killed when dropped. Its output goes to `target/tmp/prism-NAME-PORT.log`.
struct Prism {
    child: Child,
    port: u16,
    log: PathBuf,
    name: String,
}

impl Prism {
    /// Starts `prism mock --errors SPEC` on a free loopback port (does not wait for it).
    fn start(prism: &Path, spec: &Path) -> Prism {
        let port = free_port();
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prism-{name}-{port}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(prism)
            .args([
                "mock",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--errors",
            ])
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prism.display()));
        Prism {
            child,
            port,
            log,
            name,
        }
    }

    /// Waits until the port accepts connections, failing if Prism exits or takes too long.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prism ({}) exited with {status} before listening:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prism ({}) not listening on port {} after {READY_TIMEOUT:?}:\n{}",
                self.name,
                self.port,
                self.log_text()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn url(&self, route: &str) -> String {
        format!("http://127.0.0.1:{}{route}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Keep the log only when the test failed, for the failure report.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn renderer() -> Renderer {
    let dates = DateSettings {
        timezone: chrono_tz::UTC,
        date_format: "%d-%b-%Y %I:%M %p".into(),
        day_format: "%d-%b-%Y".into(),
        clock: Arc::new(chrono::Utc::now),
    };
    Renderer::new(Vec::new(), dates, false).unwrap()
}

/// Every GitLab fixture as (label, event), using INDEX.tsv's `X-Gitlab-Event` column.
fn fixture_events() -> Vec<(String, Event)> {
    let dir = Path::new(MANIFEST_DIR).join("samples");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let (file, header) = (cols[0], cols[1]);
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            let ev = event::parse(Some(header), value)
                .unwrap_or_else(|e| panic!("fixture {file} ({header}) does not parse: {e}"));
            (format!("fixture {file}"), ev)
        })
        .collect()
}

/// A rendered message: (label, template name, JSON body).
type Body = (String, String, String);

/// Renders every fixture and sample variant; returns the messages and prints what posted nothing.
fn rendered_bodies() -> Vec<Body> {
    let r = renderer();
    let samples = sample_events()
        .into_iter()
        .map(|(label, ev)| (format!("sample {label}"), ev));
    let mut bodies = Vec::new();
    let mut errors = Vec::new();
    for (label, ev) in fixture_events().into_iter().chain(samples) {
        match r.render(&ev) {
            Ok(Rendered::Message(m, template)) => bodies.push((label, template, m.to_json())),
            Ok(Rendered::Skipped(t)) => println!("  {label}: template {t} posts nothing"),
            Ok(Rendered::NoTemplate) => println!("  {label}: no template for {}", ev.key),
            Err(e) => errors.push(format!("{label}: {e}")),
        }
    }
    assert!(errors.is_empty(), "render errors:\n{}", errors.join("\n"));
    bodies
}

/// Prism's answer to one POST.
struct Answer {
    status: reqwest::StatusCode,
    /// `sl-violations` entries whose location starts with request.body or request.query.
    request_violations: Vec<Value>,
    /// The whole `sl-violations` header, if any.
    header: Option<String>,
    body: String,
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Answer {
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
    let t0 = Instant::now();
    let setup = match setup() {
        Ok(s) => s,
        Err(why) if std::env::var("GCB_SKIP_PRISM").as_deref() == Ok("1") => {
            println!("skipped: GCB_SKIP_PRISM=1 and\n{why}");
            return;
        }
        Err(why) => panic!(
            "{why}\nInstall Prism with `bash scripts/install-prism.sh`, or set GCB_SKIP_PRISM=1 to skip this test."
        ),
    };

    // Both mocks start together: about 1 s each.
    let mut cards = Prism::start(&setup.prism, &setup.cards_spec);
    let mut messages = Prism::start(&setup.prism, &setup.messages_spec);
    let bodies = rendered_bodies();
    cards.wait_ready().await;
    messages.wait_ready().await;
    println!(
        "prism ready in {:.2} s ({} on :{}, {} on :{})",
        t0.elapsed().as_secs_f64(),
        cards.name,
        cards.port,
        messages.name,
        messages.port
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
