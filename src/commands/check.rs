//! `check`: validate the configuration and compile every template in strict mode, rendering each
//! against the bundled sample events (every action of every kind). Exit 1 with one line per
//! problem, each naming the file and line.

use crate::event::{self, Event};
use crate::render::{Rendered, Renderer};
use serde_json::Value;
use std::path::Path;

/// Bundled sample payloads: (file name, `X-Gitlab-Event` header, JSON text).
const SAMPLES: [(&str, &str, &str); 7] = [
    (
        "issue__open.json",
        "Issue Hook",
        include_str!("../../samples/issue__open.json"),
    ),
    (
        "merge_request__open.json",
        "Merge Request Hook",
        include_str!("../../samples/merge_request__open.json"),
    ),
    (
        "push__basic.json",
        "Push Hook",
        include_str!("../../samples/push__basic.json"),
    ),
    (
        "note__issue.json",
        "Note Hook",
        include_str!("../../samples/note__issue.json"),
    ),
    (
        "note__merge_request.json",
        "Note Hook",
        include_str!("../../samples/note__merge_request.json"),
    ),
    (
        "note__commit.json",
        "Note Hook",
        include_str!("../../samples/note__commit.json"),
    ),
    (
        "note__snippet.json",
        "Note Hook",
        include_str!("../../samples/note__snippet.json"),
    ),
];

const ISSUE_ACTIONS: [&str; 4] = ["open", "close", "reopen", "update"];
const MR_ACTIONS: [&str; 9] = [
    "open",
    "close",
    "reopen",
    "update",
    "merge",
    "approved",
    "unapproved",
    "approval",
    "unapproval",
];
const ZERO: &str = "0000000000000000000000000000000000000000";

/// Every sample event, with each action of each kind derived from the bundled payloads.
pub fn sample_events() -> Vec<(String, Event)> {
    let mut out = Vec::new();
    for (file, header, text) in SAMPLES {
        let Ok(base) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let mut variants: Vec<(String, Value)> = vec![(file.to_string(), base.clone())];
        let actions: &[&str] = match header {
            "Issue Hook" => &ISSUE_ACTIONS,
            "Merge Request Hook" => &MR_ACTIONS,
            _ => &[],
        };
        for a in actions {
            let mut v = base.clone();
            v["object_attributes"]["action"] = Value::String((*a).to_string());
            variants.push((format!("{file} (action {a})"), v));
        }
        if !actions.is_empty() {
            let mut v = base.clone();
            if let Some(o) = v["object_attributes"].as_object_mut() {
                o.remove("action");
            }
            variants.push((format!("{file} (no action: Test button)"), v));
        }
        if header == "Push Hook" {
            let mut created = base.clone();
            created["before"] = Value::String(ZERO.into());
            variants.push((format!("{file} (branch created)"), created));
            let mut deleted = base.clone();
            deleted["after"] = Value::String(ZERO.into());
            deleted["commits"] = Value::Array(Vec::new());
            deleted["total_commits_count"] = Value::from(0);
            variants.push((format!("{file} (branch deleted)"), deleted));
        }
        for (label, v) in variants {
            if let Ok(ev) = event::parse(Some(header), v) {
                out.push((label, ev));
            }
        }
    }
    out
}

/// Problems found with `renderer` (strict) over the samples, one line each.
pub fn template_problems(renderer: &Renderer) -> Vec<String> {
    let mut problems = Vec::new();
    let samples = sample_events();
    let mut used = std::collections::HashSet::new();
    for (label, ev) in &samples {
        if let Some(name) = renderer.template_for(ev) {
            used.insert(name.to_string());
        }
        match renderer.render(ev) {
            Ok(Rendered::Message(..) | Rendered::Skipped(_) | Rendered::NoTemplate) => {}
            Err(e) => problems.push(format!("{e} (rendering sample {label})")),
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// Runs `check`. Returns the process exit code.
pub fn run(config: &Path) -> anyhow::Result<i32> {
    let cfg = match crate::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            println!("{}: {e}", config.display());
            return Ok(1);
        }
    };
    let table = match super::build_routes(&cfg, true) {
        Err(e) => {
            println!("{e:#}");
            return Ok(1);
        }
        Ok(Err(errors)) => {
            for e in &errors {
                println!("{e}");
            }
            return Ok(1);
        }
        Ok(Ok(r)) => r,
    };
    let mut problems = Vec::new();
    let mut templates = 0;
    for (_, renderer) in table.renderers() {
        problems.extend(template_problems(&renderer));
        templates += renderer.template_names().len();
    }
    problems.sort();
    problems.dedup();
    for p in &problems {
        println!("{p}");
    }
    if cfg.channels.is_empty() {
        println!(
            "{}: no [[channels]]: nothing would be posted",
            config.display()
        );
        return Ok(1);
    }
    // With [gitlab]: the token works, and which Maintainer projects lack the hook.
    let gitlab_ok = cfg.gitlab.is_none() || super::setup::check_gitlab(&cfg);
    if !problems.is_empty() || !gitlab_ok {
        return Ok(1);
    }
    println!(
        "ok: {} channel(s), {} template(s) checked against {} sample events",
        cfg.channels.len(),
        templates,
        sample_events().len()
    );
    Ok(0)
}
