//! Property tests (proptest) over JSON shaped like GitLab webhooks (issue 6, "Fuzzing").
//!
//! Inputs are GitLab's real payloads (`samples`) mutated at random nodes (null,
//! wrong types, hostile or 10 000-character text, removed fields, empty arrays, 500 commits), plus
//! fully arbitrary objects built from GitLab's key names and arbitrary non-objects, each sent with
//! an `X-Gitlab-Event` header from `INDEX.tsv`, a `Confidential` one, none, or a random one.
//! The properties (parsing never panics and accepts every object, rendering never panics nor fails,
//! every message is valid JSON passing the Cliq shape check, no `{@` mention, no stray `{{`; the
//! render-error fallback and digests of several messages likewise, with no `{@` even from titles)
//! are written once in `fuzz/src/lib.rs`, shared with the `cargo fuzz` target (docs/fuzzing.md).
//!
//! Reproducibility: the RNG seed is fixed ([`DEFAULT_SEED`]), so every run (and CI) tries the same
//! cases and a failure is reproduced by running the test again. `PROPTEST_RNG_SEED=<n>` or
//! `=random` explores other cases, `PROPTEST_CASES=<n>` changes the count; a failure found that
//! way is saved (shrunk) to `tests/properties.proptest-regressions` and, once committed, replayed
//! first on every run.

#[allow(dead_code)] // the fuzz target's input splitting is not used here
#[path = "../fuzz/src/lib.rs"]
mod shared;

use crate::support::{samples, turn};
use gitlab_chat_bridge::event;
use gitlab_chat_bridge::event::state::ObjectState;
use gitlab_chat_bridge::render::{Rendered, Renderer};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Number, Value};
use std::sync::OnceLock;

/// Seed of the default run: fixed so CI is deterministic and failures reproduce.
const DEFAULT_SEED: u64 = 0x6c61_625f_6369_6c71;

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Fixture {
    file: String,
    header: String,
    body: Value,
}

/// Every sample in INDEX.tsv with its header and body, read once.
fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let list: Vec<Fixture> = samples::index()
            .into_iter()
            .map(|s| Fixture {
                body: samples::json(&s.file),
                file: s.file,
                header: s.header,
            })
            .collect();
        assert!(list.len() >= 20, "INDEX.tsv lists {} fixtures", list.len());
        list
    })
}

/// The runner: explicit case count, fixed seed, regressions file beside this file.
fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    let rng_seed = match std::env::var("PROPTEST_RNG_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().expect("PROPTEST_RNG_SEED: a number or `random`")),
        None => RngSeed::Fixed(DEFAULT_SEED),
    };
    TestRunner::new(Config {
        cases,
        rng_seed,
        max_shrink_iters: 2_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    })
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = runner(cases);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Text

/// Pieces that have broken chat integrations: JSON, Cliq markup and mentions, template syntax,
/// odd Unicode, and strings the parser treats specially (URLs, zero SHAs, dates).
const HOSTILE: &[&str] = &[
    "\"",
    "\\",
    "\\\"",
    "\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{1}",
    "\u{1f}",
    "\u{7f}",
    "\u{2028}",
    "\u{2029}",
    "{@all}",
    "{@available}",
    "@everyone",
    "@here",
    "@channel",
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<@&456>",
    "<#789>",
    "<users/all>",
    "<at>x</at>",
    "<a href=\"http://evil\">x</a>",
    "[x](http://evil)",
    "{@12345678}",
    "{@",
    "{",
    "@",
    "}",
    "{{",
    "}}",
    "{{title}}",
    "{{{raw}}}",
    "{{#if x}}",
    "{{> push}}",
    "*bold*",
    "_it_",
    "~s~",
    "`code`",
    "```",
    "[click](https://evil.example/x)",
    "](",
    "# heading",
    "\n# ",
    "\n!",
    "\n> ",
    "| a | b |",
    "naïve café",
    "日本語",
    "🎉",
    "עברית",
    "\u{200b}",
    "\u{feff}",
    "\u{202e}",
    "e\u{301}",
    "https://",
    "http://",
    "https://gitlab.example.com/group/project",
    "javascript:alert(1)",
    "&amp;",
    "%s%n",
    " ",
    "…",
    "0000000000000000000000000000000000000000",
    "refs/heads/",
    "refs/tags/",
    "2026-11-24",
    "2015-04-08T21: 00:25-07:00",
    "2013-12-03 17:23:34 UTC",
    "9999-12-31T23:59:59-23:59",
    "+262143-12-31T23:59:59Z",
    "-262143-01-01 00:00:00 +2359",
    "0000-00-00",
    "Confidential ",
    " Hook",
];

fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(HOSTILE).prop_map(str::to_string),
        2 => "\\PC{0,12}",
        1 => any::<char>().prop_map(String::from),
        1 => "[a-z0-9]{1,8}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

/// A text of exactly `HUGE` characters, repeating a hostile seed.
const HUGE: usize = 10_000;

fn huge_text() -> impl Strategy<Value = String> {
    hostile_text().prop_map(|seed| {
        let seed = if seed.is_empty() { "x".into() } else { seed };
        seed.chars().cycle().take(HUGE).collect()
    })
}

/// An http(s) URL with hostile text after it, so it survives the parser's URL filter.
fn url_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(
            &[
                "https://gitlab.example.com/",
                "http://h.test/",
                "HTTPS://x.y/",
            ][..],
        ),
        hostile_text(),
    )
        .prop_map(|(base, tail)| format!("{base}{tail}"))
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(&[0u64, 1, 20, 500, u64::MAX][..]).prop_map(Value::from),
    ]
}

// ---------------------------------------------------------------------------------------------
// Mutations of real payloads

#[derive(Debug, Clone)]
enum Op {
    Null,
    Remove,
    Bool(bool),
    Number(Value),
    NumericString(String),
    Text(String),
    Huge(String),
    Url(String),
    EmptyArray,
    EmptyObject,
    /// The node wrapped in an array (an object where a list is expected, and vice versa).
    Wrap,
    /// Replaces top-level `commits` with this many copies of a commit whose message is the text.
    Commits(usize, String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Null),
        2 => Just(Op::Remove),
        1 => any::<bool>().prop_map(Op::Bool),
        1 => number().prop_map(Op::Number),
        1 => "-?[0-9]{1,25}| [0-9]+ |true|false|1e999".prop_map(Op::NumericString),
        6 => hostile_text().prop_map(Op::Text),
        1 => huge_text().prop_map(Op::Huge),
        3 => url_text().prop_map(Op::Url),
        1 => Just(Op::EmptyArray),
        1 => Just(Op::EmptyObject),
        1 => Just(Op::Wrap),
        1 => (prop_oneof![Just(500usize), 0usize..30], hostile_text())
            .prop_map(|(n, m)| Op::Commits(n, m)),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    At(usize),
}

/// Paths of every node, root first, in document order.
fn paths(v: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    here.push(Seg::Key(k.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    here.push(Seg::At(i));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |cur, seg| match seg {
        Seg::Key(k) => cur.get_mut(k.as_str()),
        Seg::At(i) => cur.get_mut(*i),
    })
}

fn commit_like(v: &Value, message: &str) -> Value {
    let mut c = v
        .get("commits")
        .and_then(|c| c.get(0))
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| {
            json!({
                "id": "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
                "url": "https://gitlab.example.com/g/p/-/commit/b6568db1",
                "timestamp": "2026-11-24T10:00:00+02:00",
                "author": {"name": "Ann", "email": "ann@example.com"}
            })
        });
    c["message"] = Value::String(message.to_string());
    c
}

/// Applies `op` at the node `at` picks (the root is never removed or replaced).
fn apply(body: &mut Value, at: Index, op: &Op) {
    if let Op::Commits(n, message) = op {
        let c = commit_like(body, message);
        body["commits"] = Value::Array(vec![c; *n]);
        return;
    }
    let all = paths(body);
    // Every node but the root.
    let mut candidates: Vec<&Vec<Seg>> = all.iter().skip(1).collect();
    if let Op::Url(_) = op {
        // URLs go where GitLab puts URLs (when the payload has any), to get past the URL filter.
        let is_url = |p: &&Vec<Seg>| {
            matches!(p.last(), Some(Seg::Key(k))
                if k.ends_with("url") || k == "homepage" || k == "user_avatar")
        };
        if candidates.iter().any(is_url) {
            candidates.retain(is_url);
        }
    }
    if candidates.is_empty() {
        return;
    }
    let path = at.get(&candidates).to_vec();
    if let Op::Remove = op {
        let (last, parent) = path.split_last().unwrap();
        match (node_mut(body, parent), last) {
            (Some(Value::Object(m)), Seg::Key(k)) => {
                m.remove(k);
            }
            (Some(Value::Array(a)), Seg::At(i)) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
        return;
    }
    let Some(node) = node_mut(body, &path) else {
        return;
    };
    *node = match op {
        Op::Null => Value::Null,
        Op::Bool(b) => Value::Bool(*b),
        Op::Number(n) => n.clone(),
        Op::NumericString(s) | Op::Text(s) | Op::Huge(s) | Op::Url(s) => Value::String(s.clone()),
        Op::EmptyArray => json!([]),
        Op::EmptyObject => json!({}),
        Op::Wrap => json!([node.take()]),
        Op::Remove | Op::Commits(..) => unreachable!(),
    };
}

#[derive(Debug, Clone)]
enum Header {
    /// The fixture's own `X-Gitlab-Event` (or, for arbitrary bodies, one picked from INDEX.tsv).
    Own,
    /// `Confidential ` + the above.
    Confidential,
    /// Any header from INDEX.tsv.
    Indexed(Index),
    /// No header at all.
    Missing,
    /// Anything.
    Random(String),
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        6 => Just(Header::Own),
        1 => Just(Header::Confidential),
        3 => any::<Index>().prop_map(Header::Indexed),
        1 => Just(Header::Missing),
        1 => hostile_text().prop_map(Header::Random),
    ]
}

fn header_text(h: &Header, own: &str) -> Option<String> {
    let indexed = |i: &Index| i.get(fixtures()).header.clone();
    match h {
        Header::Own => Some(own.to_string()),
        Header::Confidential => Some(format!("Confidential {own}")),
        Header::Indexed(i) => Some(indexed(i)),
        Header::Missing => None,
        Header::Random(s) => Some(s.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary objects

/// Keys GitLab payloads use, so arbitrary objects reach the parser's interesting branches.
const KEYS: &[&str] = &[
    "object_kind",
    "event_name",
    "event_type",
    "object_attributes",
    "action",
    "user",
    "user_name",
    "user_username",
    "user_email",
    "user_avatar",
    "project",
    "project_id",
    "repository",
    "homepage",
    "commits",
    "total_commits_count",
    "ref",
    "ref_protected",
    "before",
    "after",
    "labels",
    "assignees",
    "assignee",
    "reviewers",
    "merge_request",
    "issue",
    "commit",
    "snippet",
    "note",
    "noteable_type",
    "title",
    "name",
    "username",
    "email",
    "avatar_url",
    "url",
    "web_url",
    "path_with_namespace",
    "namespace",
    "default_branch",
    "iid",
    "id",
    "state",
    "description",
    "due_date",
    "source_branch",
    "target_branch",
    "source",
    "target",
    "draft",
    "work_in_progress",
    "last_commit",
    "message",
    "timestamp",
    "author",
    "confidential",
    "type",
    "issue_type",
    "system",
    "file_name",
    "created_at",
    "updated_at",
    "detailed_merge_status",
];

const OBJECT_KINDS: &[&str] = &[
    "issue",
    "work_item",
    "merge_request",
    "push",
    "tag_push",
    "note",
    "pipeline",
    "build",
    "release",
    "deployment",
    "milestone",
    "emoji",
    "feature_flag",
    "access_token",
    "wiki_page",
    "vulnerability",
    "unheard_of",
];

const ACTIONS: &[&str] = &[
    "open", "close", "reopen", "update", "merge", "approved", "approval", "create", "",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => hostile_text(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        4 => hostile_text().prop_map(Value::String),
        2 => url_text().prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An arbitrary object, often given a known `object_kind` and an `object_attributes.action`.
fn any_object() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(key(), any_json(), 0..12),
        prop::option::weighted(0.7, prop::sample::select(OBJECT_KINDS)),
        prop::option::weighted(0.5, prop::sample::select(ACTIONS)),
    )
        .prop_map(|(fields, kind, action)| {
            let mut m: Map<String, Value> = fields.into_iter().collect();
            if let Some(k) = kind {
                m.insert("object_kind".into(), k.into());
            }
            if let Some(a) = action {
                let attrs = m.entry("object_attributes").or_insert_with(|| json!({}));
                if !attrs.is_object() {
                    *attrs = json!({});
                }
                attrs["action"] = a.into();
            }
            Value::Object(m)
        })
}

// ---------------------------------------------------------------------------------------------
// The properties

/// Parses and renders one payload and checks every property (see `fuzz/src/lib.rs`).
fn check(r: &Renderer, header: Option<&str>, body: Value) -> Result<(), TestCaseError> {
    shared::check(r, header, body).map_err(TestCaseError::fail)
}

/// A mutated fixture: which one, how it was changed, and its header.
fn mutated_fixture() -> impl Strategy<Value = (Index, Vec<(Index, Op)>, Header)> {
    (
        any::<Index>(),
        prop::collection::vec((any::<Index>(), op()), 0..10),
        header(),
    )
}

#[test]
fn fixtures_pass_unchanged() {
    let _turn = turn::shared();
    let r = shared::renderer();
    for f in fixtures() {
        if let Err(e) = check(&r, Some(&f.header), f.body.clone()) {
            panic!("{}: {e}", f.file);
        }
    }
}

/// Regression (found by this file): `{@all}` in a URL reached the text inside a link target.
#[test]
fn urls_cannot_carry_mentions() {
    let _turn = turn::shared();
    let r = shared::renderer();
    for f in fixtures() {
        let mut body = f.body.clone();
        for path in paths(&body) {
            if matches!(path.last(), Some(Seg::Key(k)) if k.ends_with("url") || k == "homepage") {
                if let Some(node) = node_mut(&mut body, &path) {
                    *node = json!("https://gitlab.example.com/g/p/{@all}/{{x}}");
                }
            }
        }
        if let Err(e) = check(&r, Some(&f.header), body) {
            panic!("{}: {e}", f.file);
        }
    }
}

/// Hostile issue titles, descriptions and author names are inert in every other kind's body
/// (`targets::inert_problems`) and keep to its contract, in the issue's card and in its
/// conversation root card.
#[test]
fn hostile_text_is_inert_in_every_kind() {
    let _turn = turn::shared();
    let r = shared::renderer();
    run(
        128,
        (hostile_text(), hostile_text(), hostile_text()),
        |(title, description, name)| {
            let mut body = crate::targets::hostile_issue("x");
            body["object_attributes"]["title"] = json!(title);
            body["object_attributes"]["description"] = json!(description);
            body["user"]["name"] = json!(name);
            let ev = event::parse(Some("Issue Hook"), body)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Ok(Rendered::Message(card, _)) = r.render(&ev) else {
                return Err(TestCaseError::fail("the issue does not render"));
            };
            // The issue's conversation root card, from its state, holds the same text.
            let state = ObjectState::of(&ev).ok_or_else(|| TestCaseError::fail("no state"))?;
            let Ok(Rendered::Message(root, _)) = r.render_root(&state) else {
                return Err(TestCaseError::fail("the issue's root card does not render"));
            };
            for card in [&card, &root] {
                for (p, kind) in crate::targets::PLATFORMS {
                    let b: Value = serde_json::from_str(&p.body(card, &ev.object_key()).to_json())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let mut problems = crate::targets::inert_problems(kind, &b);
                    problems.extend(crate::support::chats::violations(kind, &b));
                    if !problems.is_empty() {
                        return Err(TestCaseError::fail(format!("{problems:#?}")));
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn mutated_payloads_parse_and_render_to_valid_cliq_messages() {
    let _turn = turn::shared();
    let r = shared::renderer();
    run(384, mutated_fixture(), |(which, ops, h)| {
        let f = which.get(fixtures());
        let mut body = f.body.clone();
        for (at, op) in &ops {
            apply(&mut body, *at, op);
        }
        let header = header_text(&h, &f.header);
        check(&r, header.as_deref(), body)
    });
}

#[test]
fn arbitrary_objects_parse_and_render_to_valid_cliq_messages() {
    let _turn = turn::shared();
    let r = shared::renderer();
    run(
        384,
        (any_object(), header(), any::<Index>()),
        |(body, h, pick)| {
            let own = pick.get(fixtures()).header.clone();
            let header = header_text(&h, &own);
            check(&r, header.as_deref(), body)
        },
    );
}

#[test]
fn non_objects_are_refused_and_objects_accepted() {
    let _turn = turn::shared();
    let r = shared::renderer();
    run(128, (any_json(), header()), |(body, h)| {
        let header = header_text(&h, "Push Hook");
        check(&r, header.as_deref(), body)
    });
}

#[test]
fn digests_of_mutated_payloads_are_valid_and_inert() {
    let _turn = turn::shared();
    let r = shared::renderer();
    run(
        96,
        prop::collection::vec(mutated_fixture(), 2..8),
        |inputs| {
            let mut bodies = Vec::new();
            for (which, ops, h) in inputs {
                let f = which.get(fixtures());
                let mut body = f.body.clone();
                for (at, op) in &ops {
                    apply(&mut body, *at, op);
                }
                let header = header_text(&h, &f.header);
                let Ok(ev) = event::parse(header.as_deref(), body) else {
                    continue;
                };
                if let Ok(Rendered::Message(m, _)) = r.render(&ev) {
                    bodies.push(m.to_json());
                }
            }
            shared::check_digest(&bodies).map_err(TestCaseError::fail)
        },
    );
}
