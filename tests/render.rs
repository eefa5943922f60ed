//! Rendering tests over GitLab's real payloads: every fixture parses, each rendered kind passes the
//! Cliq shape check and shows the actor, the object and its link; hostile text stays inert; dates
//! follow the configured zone; `check` and `render` behave as documented.

use crate::support::cli;
use crate::support::cliq::cliq_violations;
use crate::support::renderer::{dates_at, message, renderer, renderer_with};
use crate::support::samples;
use crate::support::temp::TempDir;
use crate::support::turn;
use chrono::{TimeZone, Utc};
use gitlab_chat_bridge::event::{self, Event, Kind};
use gitlab_chat_bridge::render::cliq::{MAX_TEXT_CHARS, MAX_TITLE_CHARS};
use gitlab_chat_bridge::render::{Rendered, TemplateSource};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Lines like `*Assignees:*` with nothing after them.
fn empty_field_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let l = l.trim();
            l.ends_with(':') || l.ends_with(":*")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_fixture_parses_with_the_right_kind() {
    let _turn = turn::shared();
    let idx = samples::index();
    assert!(idx.len() >= 28, "fixtures missing: {}", idx.len());
    for samples::Sample {
        file,
        header,
        object_kind,
    } in &idx
    {
        let ev = samples::event(file, header);
        let want = match object_kind.as_str() {
            "build" => "job".to_string(),
            // System hooks name their kind only in `event_name`; the file is named for the kind.
            "-" if header == "System Hook" => file.split("__").next().unwrap().to_string(),
            "-" => header.trim_end_matches(" Hook").to_lowercase(),
            k => k.to_string(),
        };
        let want = if want == "resource access token" {
            "access_token".into()
        } else {
            want
        };
        assert_eq!(ev.kind.as_str(), want, "{file}");
        assert!(!matches!(ev.kind, Kind::Unknown(_)), "{file}: unknown kind");
        assert!(!ev.key.is_empty());
    }
}

/// Every payload in `samples/` (listed in INDEX.tsv or not) parses without its `X-Gitlab-Event`
/// header too, as a System Hook body or a re-sent delivery may come.
#[test]
fn every_sample_parses_without_its_header() {
    let _turn = turn::shared();
    let mut parsed = 0;
    for e in std::fs::read_dir(samples::dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) == Some("json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            assert!(event::parse(None, v).is_ok(), "{}", p.display());
            parsed += 1;
        }
    }
    assert_eq!(
        parsed,
        samples::index().len(),
        "samples/ and INDEX.tsv disagree"
    );
}

#[test]
fn the_four_kinds_render_what_a_user_needs() {
    let _turn = turn::shared();
    let r = renderer();
    // (file, header, expected key, strings the message must show)
    let cases: [(&str, &str, &str, &[&str]); 7] = [
        (
            "issue__open.json",
            "Issue Hook",
            "issue.open",
            &[
                "Administrator",
                "New API: create/update/delete file",
                "http://example.com/diaspora/issues/23",
                "gitlabhq/gitlab-test",
                "User1",
                "opened",
            ],
        ),
        (
            "merge_request__open.json",
            "Merge Request Hook",
            "merge_request.open",
            &[
                "Administrator",
                "MS-Viewport",
                "http://example.com/diaspora/merge_requests/1",
                "ms-viewport → master",
                "User1",
            ],
        ),
        (
            "push__basic.json",
            "Push Hook",
            "push",
            &[
                "John Smith",
                "fixed readme",
                "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "4 commits",
                "master",
                "2 more commits",
            ],
        ),
        (
            "note__issue.json",
            "Note Hook",
            "note.issue",
            &[
                "Administrator",
                "Hello world",
                "http://example.com/gitlab-org/gitlab-test/issues/17#note_1241",
                "issue #17",
            ],
        ),
        (
            "note__merge_request.json",
            "Note Hook",
            "note.merge_request",
            &[
                "Administrator",
                "This MR needs work.",
                "merge request !1",
                "#note_1244",
            ],
        ),
        (
            "note__commit.json",
            "Note Hook",
            "note.commit",
            &[
                "Administrator",
                "This is a commit comment. How does this work?",
                "commit cfe32cf6",
                "#note_1243",
            ],
        ),
        (
            "note__snippet.json",
            "Note Hook",
            "note.snippet",
            &[
                "Administrator",
                "Is this snippet doing what it",
                "snippet $53",
                "#note_1245",
            ],
        ),
    ];
    for (file, header, key, needles) in cases {
        let ev = samples::event(file, header);
        assert_eq!(ev.key, key, "{file}");
        let m = message(&r, &ev);
        assert_eq!(cliq_violations(&m), Vec::<String>::new(), "{file}");
        assert_eq!(m["card"]["theme"], "modern-inline", "{file}");
        let all = m.to_string();
        let text = m["text"].as_str().unwrap();
        for n in needles {
            assert!(all.contains(n), "{file}: {n:?} missing from {all}");
        }
        for bad in ["null", "{{", "}}", "undefined"] {
            assert!(!text.contains(bad), "{file}: {bad:?} in {text}");
            assert!(
                !m["card"]["title"].as_str().unwrap().contains(bad),
                "{file}"
            );
        }
        assert_eq!(empty_field_lines(text), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn every_sample_variant_renders_valid_cards() {
    let _turn = turn::shared();
    let r = renderer();
    let samples = gitlab_chat_bridge::commands::check::sample_events();
    assert!(samples.len() >= 20);
    const IN_PROGRESS: [&str; 7] = [
        "created",
        "waiting_for_resource",
        "preparing",
        "pending",
        "running",
        "canceling",
        "scheduled",
    ];
    for (label, ev) in samples {
        // Pipelines still in progress are skipped by the default template; finished ones post.
        if ev.kind.as_str() == "pipeline" {
            let status = ev.key.trim_start_matches("pipeline.");
            if IN_PROGRESS.contains(&status) {
                assert!(
                    matches!(r.render(&ev), Ok(Rendered::Skipped(_))),
                    "{label}: in-progress pipeline posted"
                );
                continue;
            }
        }
        let m = message(&r, &ev);
        assert_eq!(cliq_violations(&m), Vec::<String>::new(), "{label}");
        let text = m["text"].as_str().unwrap();
        assert!(
            !text.contains("null") && !text.contains("{{"),
            "{label}: {text}"
        );
        // Releases, milestones, access tokens, group projects and subgroups name no one.
        if ev.actor.name != "someone" {
            assert!(text.contains(&ev.actor.name), "{label}: no actor in {text}");
        }
        assert_eq!(empty_field_lines(text), Vec::<String>::new(), "{label}");
    }
}

#[test]
fn unknown_actions_and_kinds_are_not_posted() {
    let _turn = turn::shared();
    let r = renderer();
    let mut v = samples::json("issue__open.json");
    v["object_attributes"]["action"] = "teleport".into();
    let ev = event::parse(Some("Issue Hook"), v).unwrap();
    assert_eq!(r.render(&ev).unwrap(), Rendered::NoTemplate);
    // A pipeline status this version does not know is not posted under another status's wording.
    let mut v = samples::json("pipeline__basic.json");
    v["object_attributes"]["status"] = "teleporting".into();
    let pipeline = event::parse(Some("Pipeline Hook"), v).unwrap();
    assert_eq!(pipeline.key, "pipeline.teleporting");
    assert_eq!(r.render(&pipeline).unwrap(), Rendered::NoTemplate);
    // A kind this version does not know at all.
    let unknown = event::parse(
        Some("Frobnicate Hook"),
        serde_json::json!({"object_kind": "frobnicate"}),
    )
    .unwrap();
    assert_eq!(r.render(&unknown).unwrap(), Rendered::NoTemplate);
}

const HOSTILE: [&str; 8] = [
    "quote \" and backslash \\ and \\\" both",
    "line one\nline two\r\n\ttabbed",
    "*bold* _italic_ ~strike~ `code` [click](https://evil.example/x)",
    "{@all} {@available} {@12345678} {@boss@example.com} hello",
    "# heading\n!quote\n> also\n---",
    "naïve café — 日本語 ✓ 🎉 עברית",
    "\u{0}\u{1}\u{1f}\u{2028}\u{2029} control",
    "{{title}} {{{raw}}} {{#if x}}",
];

fn hostile_issue(text: &str) -> Event {
    let mut v = samples::json("issue__open.json");
    v["object_attributes"]["title"] = text.into();
    v["user"]["name"] = text.into();
    v["assignees"][0]["name"] = text.into();
    v["labels"][0]["title"] = text.into();
    v["project"]["path_with_namespace"] = text.into();
    event::parse(Some("Issue Hook"), v).unwrap()
}

#[test]
fn hostile_text_gives_valid_inert_json() {
    let _turn = turn::shared();
    let r = renderer();
    for h in HOSTILE {
        let m = message(&r, &hostile_issue(h));
        assert_eq!(cliq_violations(&m), Vec::<String>::new(), "{h:?}");
        let text = m["text"].as_str().unwrap();
        // No mention survives, and user text cannot make its own link.
        assert!(!text.contains("{@"), "mention in {text:?}");
        assert!(!text.contains("[click]"), "link injected: {text:?}");
        assert!(
            !text.contains("*bold*") && !text.contains("`code`"),
            "{text:?}"
        );
        assert!(!text.contains("\n# heading"), "{text:?}");
        // The card title keeps the text as typed (titles are not markup), only cut to size.
        let title = m["card"]["title"].as_str().unwrap();
        assert!(title.chars().count() <= MAX_TITLE_CHARS);
    }
    let m = message(&r, &hostile_issue("{@all} please look"));
    assert!(m["text"].as_str().unwrap().contains("please look"));
}

#[test]
fn huge_values_are_cut_to_cliq_limits() {
    let _turn = turn::shared();
    let r = renderer();
    let long: String = "ab*{@all} ".repeat(1000);
    let m = message(&r, &hostile_issue(&long));
    assert_eq!(cliq_violations(&m), Vec::<String>::new());
    assert!(m["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
    assert_eq!(
        m["card"]["title"].as_str().unwrap().chars().count(),
        MAX_TITLE_CHARS
    );
    // A push listing many long commits stays within the text limit and ends cleanly.
    let mut v = samples::json("push__basic.json");
    let commit = v["commits"][0].clone();
    let commits: Vec<Value> = (0..20)
        .map(|i| {
            let mut c = commit.clone();
            c["message"] = format!("{i} {}", "long commit message ".repeat(30)).into();
            c
        })
        .collect();
    v["commits"] = Value::Array(commits);
    v["total_commits_count"] = 250.into();
    let m = message(&r, &event::parse(Some("Push Hook"), v).unwrap());
    let text = m["text"].as_str().unwrap();
    assert!(text.chars().count() <= MAX_TEXT_CHARS);
    assert!(
        text.contains("250 commits") && text.contains("230 more commits"),
        "{text}"
    );
}

fn issue_due(due: &str, updated_at: &str) -> Event {
    let mut v = samples::json("issue__open.json");
    v["object_attributes"]["due_date"] = due.into();
    v["object_attributes"]["updated_at"] = updated_at.into();
    event::parse(Some("Issue Hook"), v).unwrap()
}

#[test]
fn due_dates_stay_on_their_day_in_every_zone() {
    let _turn = turn::shared();
    // 2026-11-24 20:00 UTC: already the 25th in Kolkata, still the 24th in Los Angeles.
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 20, 0, 0).unwrap();
    let ev = issue_due("2026-11-25", "2026-11-24T20:00:00Z");
    for (tz, phrase) in [
        ("UTC", "due tomorrow"),
        ("Asia/Kolkata", "due today"),
        ("America/Los_Angeles", "due tomorrow"),
    ] {
        let text = message(&renderer_with(Vec::new(), dates_at(tz, now)), &ev)["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("*Due:* 25-Nov-2026 (") && text.contains(phrase),
            "{tz}: {text}"
        );
    }
    let overdue = issue_due("2026-11-20", "2026-11-24T20:00:00Z");
    let text =
        message(&renderer_with(Vec::new(), dates_at("UTC", now)), &overdue)["text"].to_string();
    assert!(text.contains("overdue by 4 days"), "{text}");
}

#[test]
fn timestamps_follow_the_zone_across_a_dst_change() {
    let _turn = turn::shared();
    // US clocks went forward on 2026-03-08 at 02:00 local time.
    let tpl = TemplateSource {
        name: "issue".into(),
        origin: "test:issue.hbs".into(),
        text: r#"{"text": "{{date issue.updated_at}} | {{date issue.due_date}} | {{date issue.updated_at tz="Asia/Kolkata" format="%H:%M %Z"}}"}"#.into(),
    };
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let cases = [
        ("UTC", "2026-03-08T09:30:00Z", "08-Mar-2026 09:30 AM"),
        (
            "America/Los_Angeles",
            "2026-03-08T09:30:00Z",
            "08-Mar-2026 01:30 AM",
        ),
        (
            "America/Los_Angeles",
            "2026-03-08 10:30:00 UTC",
            "08-Mar-2026 03:30 AM",
        ),
        (
            "Asia/Kolkata",
            "2026-03-08T10:30:00+00:00",
            "08-Mar-2026 04:00 PM",
        ),
    ];
    for (tz, updated, want) in cases {
        let r = renderer_with(vec![tpl.clone()], dates_at(tz, now));
        let text = message(&r, &issue_due("2026-03-08", updated))["text"]
            .as_str()
            .unwrap()
            .to_string();
        let parts: Vec<&str> = text.split(" | ").collect();
        assert_eq!(parts[0], want, "{tz} {updated}");
        assert_eq!(parts[1], "08-Mar-2026", "{tz}: calendar date moved");
        assert!(parts[2].ends_with(" IST"), "{text}");
    }
    // An unparseable date degrades to the raw text instead of failing the event.
    let r = renderer_with(vec![tpl], dates_at("UTC", now));
    let text = message(&r, &issue_due("someday", "2015-04-08T21: 00:25-07:00"))["text"].to_string();
    assert!(
        text.contains("09-Apr-2015 04:00 AM") && text.contains("someday"),
        "{text}"
    );
}

/// Runs `SUB --config CFG EXTRA…`; returns the exit code and stdout.
fn run(sub: &str, cfg: &Path, extra: &[&OsStr]) -> (Option<i32>, String) {
    let mut args = vec![OsStr::new(sub), OsStr::new("--config"), cfg.as_os_str()];
    args.extend_from_slice(extra);
    let out = cli::run(args);
    (out.code, out.stdout)
}

/// A folder with an empty `templates/` and a config using it (zone Asia/Kolkata, channel `dev`).
fn with_templates(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(&format!("render-{name}"));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let cfg = dir.write(
        "config.toml",
        "[server]\nsecret_token = \"t\"\n[templates]\ndir = \"templates\"\ntimezone = \"Asia/Kolkata\"\n\
         [[channels]]\nname = \"dev\"\nurl = \"http://127.0.0.1:9/x\"\nzapikey = \"k\"\n",
    );
    (dir, cfg)
}

#[test]
fn check_names_file_and_line_of_a_broken_template() {
    let _turn = turn::shared();
    let (dir, cfg) = with_templates("broken");
    let (code, stdout) = run("check", &cfg, &[]);
    assert_eq!(code, Some(0), "{stdout}");

    std::fs::write(
        dir.join("templates/issue.hbs"),
        "{\n  \"text\": \"{{#if issue.title}}oops\"\n}\n",
    )
    .unwrap();
    let (code, stdout) = run("check", &cfg, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    let path = dir.join("templates/issue.hbs").display().to_string();
    assert!(stdout.contains(&format!("{path}:")), "{stdout}");
    let line_no: Option<u32> = stdout
        .split(&format!("{path}:"))
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok());
    assert!(line_no.is_some_and(|n| n >= 2), "{stdout}");

    // Compiles, but uses a value that does not exist: strict mode names the line.
    std::fs::write(
        dir.join("templates/push.hbs"),
        "{\n  \"text\": \"{{actor.name}}\",\n  \"card\": {\"title\": \"{{push.no_such_field}}\"}\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/issue.hbs"),
        "{\"text\": \"{{actor.name}}\"}",
    )
    .unwrap();
    let (code, stdout) = run("check", &cfg, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("push.hbs:3:"), "{stdout}");
}

#[test]
fn render_prints_the_body_serve_would_post() {
    let _turn = turn::shared();
    let (_dir, cfg) = with_templates("print");
    let event = samples::dir().join("merge_request__open.json");
    let out = cli::run([
        OsStr::new("render"),
        OsStr::new("--channel"),
        OsStr::new("dev"),
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--event"),
        event.as_os_str(),
        OsStr::new("--event-header"),
        OsStr::new("Merge Request Hook"),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(body["text"].as_str().unwrap().contains("MS-Viewport"));
    assert_eq!(cliq_violations(&body), Vec::<String>::new());

    let missing = cli::run([
        OsStr::new("render"),
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--event"),
        OsStr::new("/nonexistent.json"),
    ]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("/nonexistent.json"));
    assert_eq!(cli::run(["render"]).code, Some(2));
}

#[test]
fn templates_can_read_the_raw_payload() {
    let _turn = turn::shared();
    let tpl = TemplateSource {
        name: "issue".into(),
        origin: "test:issue.hbs".into(),
        text: r#"{"text": "severity {{raw.object_attributes.severity}} via {{raw.object_attributes.escalation_policy.name}}"}"#.into(),
    };
    let r = renderer_with(vec![tpl], dates_at("UTC", Utc::now()));
    let m = message(&r, &samples::event("issue__open.json", "Issue Hook"));
    assert_eq!(m["text"], "severity high via Engineering On-call");
}

#[test]
fn render_all_fixtures_renders_a_folder_and_flags_empty_fields() {
    let _turn = turn::shared();
    let (dir, cfg) = with_templates("all");
    let fixtures = samples::dir();
    let all = [std::ffi::OsStr::new("--all-fixtures"), fixtures.as_os_str()];
    let (code, stdout) = run("render", &cfg, &all);
    assert_eq!(code, Some(0), "{stdout}");
    let files = samples::index().len();
    assert!(stdout.contains(&format!("{files} payload(s):")), "{stdout}");
    assert!(
        stdout.contains("==> issue__open.json (issue.open) <=="),
        "{stdout}"
    );
    assert!(stdout.contains("0 problem(s)"), "{stdout}");

    // A template that leaves a field empty is flagged, and the exit code says so.
    std::fs::write(
        dir.join("templates/issue.hbs"),
        "{\"text\": \"{{actor.name}}\\n*Milestone:* {{issue.milestone_title_that_is_missing}}\"}",
    )
    .unwrap();
    let (code, stdout) = run("render", &cfg, &all);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("! empty field: \"*Milestone:*\""),
        "{stdout}"
    );
}

/// Every fixture's rendered body, as recorded before the code-shape rework (issue 9). A reshaping
/// must leave each body byte-identical; a deliberate change re-records it with
/// `UPDATE_SNAPSHOTS=1` and says why in its commit.
#[test]
fn render_all_fixtures_matches_the_recorded_snapshot() {
    let _turn = turn::shared();
    let dir = TempDir::new("render-snapshot");
    let cfg = dir.write(
        "config.toml",
        "[server]\nsecret_token = \"t\"\n[outbox]\npath = \"outbox.sqlite\"\n\
         [[channels]]\nname = \"all\"\nurl = \"https://cliq.zoho.com/api/v2/channelsbyname/all/message\"\n\
         zapikey = \"k\"\nconfidential = true\n",
    );
    let fixtures = samples::dir();
    let all = [std::ffi::OsStr::new("--all-fixtures"), fixtures.as_os_str()];
    let (code, stdout) = run("render", &cfg, &all);
    assert_eq!(code, Some(0), "{stdout}");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/render_all_fixtures.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &stdout).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    for (i, (got, want)) in stdout.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "snapshot line {} differs", i + 1);
    }
    assert_eq!(stdout.lines().count(), want.lines().count(), "line count");
}
