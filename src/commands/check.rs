//! `check`: validate the configuration and compile every template in strict mode, rendering each
//! against the bundled sample events (every action of every kind). Exit 1 with one line per
//! problem, each naming the file and line.

use super::setup::{connect, plan, Planned, ProgressKind, Target};
use crate::config::Config;
use crate::event::{self, Event};
use crate::gitlab::{Mode, Op, ProjectRef};
use crate::render::{Rendered, Renderer};
use serde_json::Value;
use std::path::Path;

/// Most project names listed on one line by the GitLab part of `check`.
const MAX_NAMES_LISTED: usize = 20;

/// Bundled sample payloads: (file name, `X-Gitlab-Event` header, JSON text).
const SAMPLES: [(&str, &str, &str); 22] = [
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
    (
        "tag_push__basic.json",
        "Tag Push Hook",
        include_str!("../../samples/tag_push__basic.json"),
    ),
    (
        "pipeline__basic.json",
        "Pipeline Hook",
        include_str!("../../samples/pipeline__basic.json"),
    ),
    (
        "job__basic.json",
        "Job Hook",
        include_str!("../../samples/job__basic.json"),
    ),
    (
        "release__create.json",
        "Release Hook",
        include_str!("../../samples/release__create.json"),
    ),
    (
        "wiki_page__create.json",
        "Wiki Page Hook",
        include_str!("../../samples/wiki_page__create.json"),
    ),
    (
        "deployment__basic.json",
        "Deployment Hook",
        include_str!("../../samples/deployment__basic.json"),
    ),
    (
        "milestone__create.json",
        "Milestone Hook",
        include_str!("../../samples/milestone__create.json"),
    ),
    (
        "emoji__award.json",
        "Emoji Hook",
        include_str!("../../samples/emoji__award.json"),
    ),
    (
        "feature_flag__basic.json",
        "Feature Flag Hook",
        include_str!("../../samples/feature_flag__basic.json"),
    ),
    (
        "access_token__project.json",
        "Resource Access Token Hook",
        include_str!("../../samples/access_token__project.json"),
    ),
    (
        "access_token__group.json",
        "Resource Access Token Hook",
        include_str!("../../samples/access_token__group.json"),
    ),
    (
        "member__add_to_group.json",
        "Member Hook",
        include_str!("../../samples/member__add_to_group.json"),
    ),
    (
        "project__create.json",
        "Project Hook",
        include_str!("../../samples/project__create.json"),
    ),
    (
        "subgroup__create.json",
        "Subgroup Hook",
        include_str!("../../samples/subgroup__create.json"),
    ),
    (
        "vulnerability__basic.json",
        "Vulnerability Hook",
        include_str!("../../samples/vulnerability__basic.json"),
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
/// Pipeline and job statuses (each is a key: `pipeline.failed`, `job.running`, …).
const STATUSES: [&str; 12] = [
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceling",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
];
const DEPLOYMENT_STATUSES: [&str; 7] = [
    "created", "running", "success", "failed", "canceled", "skipped", "blocked",
];
const ZERO: &str = "0000000000000000000000000000000000000000";

/// `base` with `path` set to `value` (objects along the path are created).
fn with(base: &Value, path: &[&str], value: Value) -> Value {
    let mut v = base.clone();
    let mut cur = &mut v;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        cur = &mut cur[*key];
    }
    *cur = value;
    v
}

fn without(base: &Value, parent: &[&str], key: &str) -> Value {
    let mut v = base.clone();
    let mut cur = &mut v;
    for p in parent {
        cur = &mut cur[*p];
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(key);
    }
    v
}

/// The variants of one sample: each action or status of its kind, and the odd shapes GitLab sends.
fn variants(file: &str, header: &str, base: &Value) -> Vec<(String, Value)> {
    let s = |x: &str| Value::String(x.to_string());
    let label = |what: String| format!("{file} ({what})");
    let mut out: Vec<(String, Value)> = vec![(file.to_string(), base.clone())];
    let mut each = |path: &[&str], words: &[&str], what: &str| {
        for w in words {
            out.push((label(format!("{what} {w}")), with(base, path, s(w))));
        }
    };
    match (header, file) {
        ("Issue Hook", _) => {
            each(&["object_attributes", "action"], &ISSUE_ACTIONS, "action");
            out.push((
                label("no action: Test button".into()),
                without(base, &["object_attributes"], "action"),
            ));
            // The same payload as a work item (a task).
            let task = with(
                &with(base, &["object_kind"], s("work_item")),
                &["object_attributes", "type"],
                s("Task"),
            );
            for a in ISSUE_ACTIONS {
                out.push((
                    label(format!("work item, action {a}")),
                    with(&task, &["object_attributes", "action"], s(a)),
                ));
            }
        }
        ("Merge Request Hook", _) => {
            each(&["object_attributes", "action"], &MR_ACTIONS, "action");
            out.push((
                label("no action: Test button".into()),
                without(base, &["object_attributes"], "action"),
            ));
        }
        ("Push Hook", _) => {
            out.push((
                label("branch created".into()),
                with(base, &["before"], s(ZERO)),
            ));
            let deleted = with(
                &with(
                    &with(base, &["after"], s(ZERO)),
                    &["commits"],
                    Value::Array(Vec::new()),
                ),
                &["total_commits_count"],
                Value::from(0),
            );
            out.push((label("branch deleted".into()), deleted));
            let empty = with(
                &with(base, &["commits"], Value::Array(Vec::new())),
                &["total_commits_count"],
                Value::from(0),
            );
            out.push((label("no new commits".into()), empty));
        }
        ("Tag Push Hook", _) => {
            let deleted = with(
                &with(base, &["before"], base["after"].clone()),
                &["after"],
                s(ZERO),
            );
            out.push((label("tag deleted".into()), deleted));
        }
        ("Pipeline Hook", _) => {
            each(&["object_attributes", "status"], &STATUSES, "status");
            let child = with(
                &with(base, &["object_attributes", "source"], s("parent_pipeline")),
                &["object_attributes", "status"],
                s("failed"),
            );
            out.push((label("child pipeline, failed".into()), child));
        }
        ("Job Hook", _) => {
            each(&["build_status"], &STATUSES, "status");
        }
        ("Release Hook", _) => {
            each(&["action"], &["create", "update", "delete"], "action");
            out.push((label("no action".into()), without(base, &[], "action")));
        }
        ("Wiki Page Hook", _) => {
            each(
                &["object_attributes", "action"],
                &["create", "update", "delete"],
                "action",
            );
        }
        ("Deployment Hook", _) => each(&["status"], &DEPLOYMENT_STATUSES, "status"),
        ("Milestone Hook", _) => {
            each(
                &["action"],
                &["create", "close", "reopen", "delete"],
                "action",
            );
            let group = with(
                &with(base, &["project"], Value::Null),
                &["group"],
                serde_json::json!({"group_name": "g", "group_path": "g", "group_id": 1, "full_path": "g"}),
            );
            out.push((label("group milestone".into()), group));
        }
        ("Emoji Hook", _) => each(
            &["object_attributes", "action"],
            &["award", "revoke"],
            "action",
        ),
        ("Feature Flag Hook", _) => {
            out.push((
                label("turned off".into()),
                with(base, &["object_attributes", "active"], Value::Bool(false)),
            ));
        }
        ("Member Hook", _) => each(
            &["event_name"],
            &[
                "user_add_to_group",
                "user_remove_from_group",
                "user_update_for_group",
                "user_access_request_to_group",
                "user_access_request_denied_for_group",
            ],
            "event",
        ),
        ("Project Hook", _) => each(
            &["event_name"],
            &["project_create", "project_destroy"],
            "event",
        ),
        ("Subgroup Hook", _) => each(
            &["event_name"],
            &["subgroup_create", "subgroup_destroy"],
            "event",
        ),
        ("Vulnerability Hook", _) => each(
            &["object_attributes", "state"],
            &["detected", "confirmed", "resolved", "dismissed"],
            "state",
        ),
        _ => {}
    }
    out
}

/// Every sample event, with each action or status of each kind derived from the bundled payloads.
pub fn sample_events() -> Vec<(String, Event)> {
    let mut out = Vec::new();
    for (file, header, text) in SAMPLES {
        let Ok(base) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        for (label, v) in variants(file, header, &base) {
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
    // Signing tokens must decode and the TLS files must load, or `serve` would refuse to start.
    if let Err(e) = crate::server::Verifier::new(&cfg.server) {
        problems.push(format!("{}: {e}", config.display()));
    }
    if let Err(e) = crate::server::ListenOptions::from_config(&cfg.server) {
        problems.push(format!("{}: {e}", config.display()));
    }
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
    let gitlab_ok = cfg.gitlab.is_none() || check_gitlab(&cfg);
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

/// The GitLab part of `check`: verifies the token (`GET /user`) and lists the Maintainer
/// projects that lack the bridge's hook or have a stale one. Prints one line per finding;
/// returns false when something is wrong (missing key, bad token, unreadable projects).
fn check_gitlab(cfg: &Config) -> bool {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("gitlab: cannot start the async runtime: {e}");
            return false;
        }
    };
    runtime.block_on(check_gitlab_async(cfg))
}

async fn check_gitlab_async(cfg: &Config) -> bool {
    let (gitlab, client, desired) = match connect(cfg) {
        Ok(c) => c,
        Err(e) => {
            println!("{e:#}");
            return false;
        }
    };
    match client.current_user().await {
        Ok(u) => println!("gitlab: token ok (user @{}, id {})", u.username, u.id),
        Err(e) => {
            println!("gitlab: {e}");
            return false;
        }
    }
    let projects = match client.member_projects().await {
        Ok(p) => p,
        Err(e) => {
            println!("gitlab: {e}");
            return false;
        }
    };
    let targets: Vec<Target> = projects
        .iter()
        .map(|p| Target {
            project: ProjectRef::from_project(p),
            archived: false,
        })
        .collect();
    let mode = Mode::Install {
        delete_duplicates: false,
    };
    let plans = plan(
        &client,
        &desired,
        mode,
        targets,
        gitlab.concurrency,
        ProgressKind::Lines,
    )
    .await;
    let (mut missing, mut stale, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for p in &plans {
        match &p.planned {
            Planned::Ops(ops) if ops.contains(&Op::Create) => missing.push(p.project.label.clone()),
            Planned::Ops(ops) if ops.iter().any(|o| matches!(o, Op::Update { .. })) => {
                stale.push(p.project.label.clone());
            }
            Planned::Ops(_) | Planned::Skip(_) => {}
            Planned::Failed(e) => errors.push(e.to_string()),
        }
    }
    let total = plans.len();
    if missing.is_empty() && stale.is_empty() && errors.is_empty() {
        println!("gitlab: the hook is present and current on all {total} Maintainer project(s)");
    }
    if !missing.is_empty() {
        println!(
            "gitlab: {} of {total} Maintainer project(s) lack the hook (run `setup`): {}",
            missing.len(),
            names(&missing)
        );
    }
    if !stale.is_empty() {
        println!(
            "gitlab: the hook is out of date on {} project(s) (run `setup`): {}",
            stale.len(),
            names(&stale)
        );
    }
    for e in &errors {
        println!("gitlab: {e}");
    }
    errors.is_empty()
}

/// `a, b, c` with at most [`MAX_NAMES_LISTED`] names.
fn names(list: &[String]) -> String {
    let shown: Vec<&str> = list
        .iter()
        .take(MAX_NAMES_LISTED)
        .map(String::as_str)
        .collect();
    match list.len().saturating_sub(MAX_NAMES_LISTED) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}
