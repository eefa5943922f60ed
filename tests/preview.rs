//! The template preview page (`[preview]`): off by default (404), refused on a public
//! `server.listen` without `preview.listen` (validated before anything binds), and, in a real
//! headless Chromium driven over WebDriver, a user's session: pick the merge-request fixture and
//! see its card (title, link, button), edit the template and see the new wording without
//! reloading, break it and see the error with file and line, and a hostile issue title shown as
//! text. A `thread+edit` channel is previewed with the reply it would post and the root card it
//! would keep (from the sample's state). The browser test needs Debian's `chromium` and `chromium-driver`
//! (`scripts/install-chromium.sh`, which `scripts/test.sh` runs); it saves a screenshot as
//! `target/preview.png`.

use crate::support::cli;
use crate::support::daemon::{ChannelSpec, Daemon, Settings};
use crate::support::fake_cliq::FakeCliq;
use crate::support::temp::TempDir;
use crate::support::{samples, turn};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for anything the page should show.
const WAIT: Duration = Duration::from_secs(10);
/// Longest the whole browser scenario may take.
const SCENARIO: Duration = Duration::from_secs(120);
/// Longest wait for the page to show a saved template (it polls every 400 ms).
const LIVE: Duration = Duration::from_secs(3);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The JSON `daemon` answers a GET of `path` with.
async fn get_json(daemon: &Daemon, path: &str) -> serde_json::Value {
    http()
        .get(format!("{}{path}", daemon.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_is_404_unless_enabled_and_served_where_configured_with_a_strict_csp() {
    let _turn = turn::shared_async().await;
    let off = Daemon::start("preview-off", &[]).await;
    for path in ["/preview", "/preview/app.js", "/preview/items"] {
        let r = http()
            .get(format!("{}{path}", off.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} with [preview] absent");
    }
    drop(off);

    // On an address of its own: not beside the webhooks.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("preview-on");
    let mut settings = Settings::new(vec![]);
    settings.rest = format!("[preview]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n");
    let on = Daemon::spawn(&settings.write_config(&dir)).await;
    let beside = http()
        .get(format!("{}/preview", on.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(beside.status(), 404, "the page is on preview.listen only");
    let base = format!("http://127.0.0.1:{port}");
    // A DNS name rebound to 127.0.0.1 gets nothing.
    let rebound = http()
        .get(format!("{base}/preview/items"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    let page = http().get(format!("{base}/preview")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/preview/app.js""#), "{html}");
    assert!(!html.contains("<script>"), "inline script in the page");
    let js = http()
        .get(format!("{base}/preview/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(!js.text().await.unwrap().contains("innerHTML"));
    let unknown = http()
        .get(format!(
            "{}/preview/render/fixture:..%2Fconfig.toml",
            on.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[test]
fn preview_on_a_public_listen_address_without_its_own_listen_is_refused() {
    let _turn = turn::shared();
    let dir = TempDir::new("preview-public");
    // Never bound: the configuration is refused when it loads, before any listener exists.
    let config = dir.write(
        "config.toml",
        "[server]\nlisten = \"0.0.0.0:8080\"\nsecret_token = \"t\"\n\n[preview]\nenabled = true\n",
    );
    for command in ["check", "serve"] {
        let out = cli::run([command, "--config", config.to_str().unwrap()]);
        assert_eq!(out.code, Some(1), "{command}: {out:?}");
        let said = format!("{}{}", out.stdout, out.stderr);
        let line = said
            .lines()
            .find(|l| l.contains("preview.enabled"))
            .unwrap_or_else(|| panic!("{command} did not name preview.enabled: {said}"));
        for key in [
            "server.listen",
            "preview.listen",
            "0.0.0.0:8080",
            "loopback",
        ] {
            assert!(line.contains(key), "{command}: {line}");
        }
    }
    // Its own loopback address makes the same server section acceptable.
    let own = dir.write(
        "own.toml",
        "[server]\nlisten = \"0.0.0.0:8080\"\nsecret_token = \"t\"\n\n[preview]\nenabled = true\nlisten = \"127.0.0.1:8081\"\n",
    );
    let out = cli::run(["check", "--config", own.to_str().unwrap()]);
    assert!(!format!("{out:?}").contains("preview.enabled"), "{out:?}");
}

/// chromedriver in a process group of its own, with the Chromium it starts: the whole group is
/// killed when this is dropped, whether the test passed or panicked.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(profile: &Path) -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/install-chromium.sh` (Debian's chromium and chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!(
                    "--log-path={}",
                    profile.join("chromedriver.log").display()
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-proxy-server", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.join("chromium").display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("no WebDriver session within 30 s")
    .unwrap()
}

/// The text of every element `css` selects, polled until `ok` holds for it or `within` passes.
async fn wait_for_texts(
    c: &Client,
    css: &str,
    within: Duration,
    ok: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let mut texts = Vec::new();
        if let Ok(found) = c.find_all(Locator::Css(css)).await {
            for e in found {
                if let Ok(t) = e.text().await {
                    texts.push(t);
                }
            }
        }
        if ok(&texts) {
            return texts;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting on {css:?}; last seen: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pick(c: &Client, item: &str) {
    let css = format!("button[data-item=\"{item}\"]");
    wait_for_texts(c, &css, WAIT, |t| !t.is_empty()).await;
    c.find(Locator::Css(&css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn merge_request_template(templates: &Path, wording: &str) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/merge_request.hbs"),
    )
    .unwrap();
    assert!(
        text.contains("{{verb}} merge request"),
        "the bundled template changed its wording"
    );
    let edited = text.replace("{{verb}} merge request", &format!("{{{{verb}}}} {wording}"));
    std::fs::write(templates.join("merge_request.hbs"), edited).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_cards_live_edits_errors_and_hostile_text_as_text() {
    let _turn = turn::shared_async().await;
    let cliq = FakeCliq::start(0).await;
    let dir = TempDir::new("preview-browser");
    let templates = dir.join("templates");
    let fixtures = dir.join("fixtures");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&fixtures).unwrap();
    // A fixture folder without INDEX.tsv: the event comes from `object_kind`.
    std::fs::write(
        fixtures.join("merge-request.json"),
        serde_json::to_vec(&samples::json("merge_request__open.json")).unwrap(),
    )
    .unwrap();
    merge_request_template(&templates, "merge request");
    // Markup and a slide the built-in templates do not use, on the bundled push sample.
    std::fs::write(
        templates.join("push.hbs"),
        r#"{"text": "_{{actor.name}}_ pushed ~nothing~ to *{{project.path}}*",
 "card": {"title": "Push", "theme": "modern-inline"},
 "slides": [{"type": "table", "title": "Where", "data": {"headers": ["Project", "By"],
   "rows": [{"Project": "{{project.path}}", "By": "{{actor.name}}"}]}}]}"#,
    )
    .unwrap();
    let mut settings = Settings::new(vec![ChannelSpec::new("dev", cliq.url("dev"))]);
    settings.rest = [
        "[templates]\ndir = \"templates\"\n",
        "[mentions]\nuser1 = \"12345\"\n",
        "[preview]\nenabled = true\nfixtures = \"fixtures\"\n",
    ]
    .join("\n");
    let daemon = Daemon::spawn(&settings.write_config(&dir)).await;

    // A hostile issue title, stored as any webhook is.
    let mut issue = samples::json("issue__open.json");
    issue["object_attributes"]["title"] = "<script>alert(1)</script>".into();
    let answer = daemon
        .hooks()
        .post(
            "Issue Hook",
            serde_json::to_vec(&issue).unwrap(),
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let event_id = answer.body["event_id"].as_i64().unwrap();

    let driver = Driver::start(dir.path());
    // Every step has its own bound; this one holds even if chromedriver stops answering.
    let scenario = async {
        let c = browser(&driver, dir.path()).await;
        c.goto(&format!("{}/preview", daemon.base_url()))
            .await
            .unwrap();

        pick(&c, "fixture:merge-request.json").await;
        let titles = wait_for_texts(&c, ".cliq .title", WAIT, |t| !t.is_empty()).await;
        assert_eq!(titles, ["Merge request !1: MS-Viewport"]);
        let link = c
            .find(Locator::Css(
                ".cliq .text a[href=\"http://example.com/diaspora/merge_requests/1\"]",
            ))
            .await
            .unwrap();
        assert_eq!(link.text().await.unwrap(), "!1 MS-Viewport");
        let button = c.find(Locator::Css(".cliq .buttons a")).await.unwrap();
        assert_eq!(button.text().await.unwrap(), "View merge request");
        assert_eq!(
            button.attr("href").await.unwrap().as_deref(),
            Some("http://example.com/diaspora/merge_requests/1")
        );
        let json = wait_for_texts(&c, "pre.json", WAIT, |t| !t.is_empty()).await;
        assert!(
            json[0].contains("\"title\": \"Merge request !1: MS-Viewport\""),
            "{json:?}"
        );

        // Saved: the new wording shows without a reload (the page polls; no navigation).
        c.execute("window.notReloaded = true;", vec![])
            .await
            .unwrap();
        let saved = Instant::now();
        merge_request_template(&templates, "pull request");
        wait_for_texts(&c, ".cliq .text", LIVE, |t| {
            t.iter().any(|t| t.contains("opened pull request"))
        })
        .await;
        eprintln!(
            "the page showed the saved template after {:?}",
            saved.elapsed()
        );
        let still = c
            .execute("return window.notReloaded === true;", vec![])
            .await
            .unwrap();
        assert_eq!(still, serde_json::json!(true), "the page reloaded");
        let png = c.screenshot().await.unwrap();
        // target/ of the repository, which a CARGO_TARGET_DIR elsewhere leaves uncreated.
        let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("preview.png"), &png).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");

        // Broken: the error with file, line and column.
        std::fs::write(
            templates.join("merge_request.hbs"),
            "{\n  \"text\": \"{{#if merge_request.title}}broken\"\n}\n",
        )
        .unwrap();
        let errors = wait_for_texts(&c, "#errors li", LIVE, |t| !t.is_empty()).await;
        let file = templates.join("merge_request.hbs").display().to_string();
        // `file:line:column: reason` (an unclosed block is reported where the file ends).
        let at = |e: &str| {
            let rest = e.strip_prefix(&format!("{file}:"))?;
            let mut parts = rest.splitn(3, ':');
            let line: u32 = parts.next()?.parse().ok()?;
            let column: u32 = parts.next()?.parse().ok()?;
            Some((line, column))
        };
        assert!(
            errors.iter().any(|e| at(e).is_some_and(|(l, _)| l == 4)),
            "{errors:?}"
        );

        // Fixed again: the card is back and the error gone.
        merge_request_template(&templates, "pull request");
        wait_for_texts(&c, ".cliq .title", LIVE, |t| !t.is_empty()).await;
        assert!(c
            .find_all(Locator::Css("#errors"))
            .await
            .unwrap()
            .is_empty());

        // Italic, struck and bold text, and a slide drawn as a table.
        pick(&c, "sample:push__basic.json").await;
        wait_for_texts(&c, ".cliq .title", WAIT, |t| t == ["Push"]).await;
        for (css, text) in [
            (".cliq .text em", "John Smith"),
            (".cliq .text s", "nothing"),
            (".cliq .text strong", "mike/diaspora"),
            (".slide table td", "mike/diaspora"),
            (".slide table th", "Project"),
        ] {
            let found = c.find(Locator::Css(css)).await.unwrap();
            assert_eq!(found.text().await.unwrap(), text, "{css}");
        }

        // Hostile text from a stored event: shown as text, run nowhere.
        pick(&c, &format!("event:{event_id}")).await;
        // (waits until the title is there: the merge request's card shows until the answer comes)
        let titles = wait_for_texts(&c, ".cliq .title", WAIT, |t| {
            t.iter().any(|t| t.contains("<script>alert(1)</script>"))
        })
        .await;
        assert_eq!(titles.len(), 1, "{titles:?}");
        // A configured mention is drawn as a chip.
        let chips = wait_for_texts(&c, ".cliq .chip", WAIT, |t| !t.is_empty()).await;
        assert_eq!(chips, ["@12345"]);
        let scripts = c.find_all(Locator::Css("script")).await.unwrap();
        assert_eq!(scripts.len(), 1, "only the page's own script");
        assert_eq!(
            scripts[0].attr("src").await.unwrap().as_deref(),
            Some("/preview/app.js")
        );
        assert!(c.get_alert_text().await.is_err(), "an alert opened");
        c.close().await.unwrap();
    };
    tokio::time::timeout(SCENARIO, scenario)
        .await
        .unwrap_or_else(|_| panic!("the browser scenario took over {SCENARIO:?}"));
    drop(driver);
}

/// The sample review reminder is listed with the samples and rendered for every channel in its
/// chat's shape (a Cliq channel: the card with its table slides; Slack: Block Kit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_review_reminder_is_previewed_per_channel() {
    let _turn = turn::shared_async().await;
    let dir = TempDir::new("preview-reminder");
    let mut settings = Settings::new(vec![ChannelSpec::new(
        "dev",
        "https://cliq.zoho.com/api/v2/channelsbyname/dev/message".into(),
    )]);
    settings.rest = "[preview]\nenabled = true\n\n[[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/X\"\n".into();
    let daemon = Daemon::spawn(&settings.write_config(&dir)).await;
    let items = get_json(&daemon, "/preview/items").await;
    assert!(
        items["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == "reminder:sample"),
        "{items}"
    );
    let p = get_json(&daemon, "/preview/render/reminder:sample").await;
    assert_eq!(p["key"], "reminder", "{p}");
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    let cards = p["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2, "{p}");
    assert_eq!(cards[0]["channel"], "dev");
    assert_eq!(cards[0]["body"]["slides"][0]["type"], "table", "{p}");
    assert_eq!(cards[1]["channel"], "slack");
    assert!(cards[1]["body"]["blocks"].is_array(), "{p}");
}

/// A conversation channel (`thread+edit`) is previewed with the reply it would post and the root
/// card it would keep, rendered from the state the sample gives: for a comment on a merge
/// request, the comment, and the merge request's root card (which shows no comment count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_channel_is_previewed_with_its_reply_and_root_card() {
    let _turn = turn::shared_async().await;
    let dir = TempDir::new("preview-root");
    let mut settings = Settings::new(Vec::new());
    settings.rest =
        "[preview]\nenabled = true\n\n[[channels]]\nname = \"tg\"\nkind = \"telegram\"\n\
        token = \"123456:preview-token\"\nchat_id = -100\napi_url = \"http://127.0.0.1:9\"\n\
        conversation = \"thread+edit\"\n"
            .into();
    let daemon = Daemon::spawn(&settings.write_config(&dir)).await;
    let p = get_json(&daemon, "/preview/render/sample:note__merge_request.json").await;
    assert_eq!(p["errors"], serde_json::json!([]), "{p}");
    let cards = p["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2, "{p}");
    assert_eq!(cards[0]["channel"], "tg");
    assert_eq!(cards[1]["channel"], "tg (root card)");
    let reply = cards[0]["body"]["text"].as_str().unwrap();
    let root = cards[1]["body"]["text"].as_str().unwrap();
    assert!(reply.contains("commented on"), "{reply}");
    assert!(!root.contains("commented on"), "{root}");
    for want in ["Merge request !1", "<b>State:</b> opened"] {
        assert!(root.contains(want), "{want:?} in {root}");
    }
    assert!(!root.contains("Comments"), "{root}");
    assert!(!p.to_string().contains("gcb_conversation"), "{p}");
}
