//! `check`: validate the configuration and compile every template in strict mode, rendering each
//! against the bundled sample events (every action of every kind), the review reminder and the
//! conversation root cards against their sample contexts. Lists the root templates compiled
//! (built in or the user's). Exit 1 with one line per problem, each naming the file and line.
//! Each conversation channel gets a line saying what it will do in its chat (threads and root
//! edits, threads only, root edits only, or flat posts).

use super::progress::ProgressKind;
use super::setup::{connect, plan, Planned, Target};
use crate::config::Config;
use crate::event::{self, Event};
use crate::gitlab::{Mode, Op, ProjectRef};
use crate::render::{Rendered, Renderer};
use std::path::Path;

/// Most project names listed on one line by the GitLab part of `check`.
const MAX_NAMES_LISTED: usize = 20;

/// Every sample event: each bundled sample of each kind in the table of kinds
/// ([`event::KINDS`]), with each of its actions or statuses and the odd shapes GitLab sends.
pub fn sample_events() -> Vec<(String, Event)> {
    let mut out = Vec::new();
    for row in &event::KINDS {
        for (label, v) in row.sample_payloads() {
            if let Ok(ev) = event::parse(Some(row.sample_header()), v) {
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
    if let Err(e) = renderer.render_reminder(&crate::render::reminder::sample()) {
        problems.push(format!("{e} (rendering the sample review reminder)"));
    }
    for kind in crate::event::state::KINDS {
        if let Err(e) = renderer.render_root(&crate::render::root::sample(kind)) {
            problems.push(format!("{e} (rendering the sample {kind} root card)"));
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
            println!("{}", super::config_error(config, &e));
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
    // So must the Cliq extension's public keys.
    if let Some(x) = &cfg.cliq_extension {
        if let Err(e) = crate::server::CliqVerifier::new(&x.public_keys) {
            problems.push(format!("{}: {e}", config.display()));
        }
    }
    let mut templates = 0;
    let mut roots: Vec<String> = Vec::new();
    for (_, renderer) in table.renderers() {
        problems.extend(template_problems(&renderer));
        templates += renderer.template_names().len();
        for name in crate::render::root::templates() {
            if let Some(origin) = renderer.origin(&name) {
                let line = format!("{name} ({origin})");
                if !roots.contains(&line) {
                    roots.push(line);
                }
            }
        }
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
    // What each conversation channel does in its chat (threads, edits, or flat posts, and why).
    for plan in cfg.channels.iter().filter_map(|c| c.conversation_plan()) {
        println!("{plan}");
    }
    // With [gitlab]: the token works, and which Maintainer projects lack the hook.
    let gitlab_ok = cfg.gitlab.is_none() || check_gitlab(&cfg);
    if !problems.is_empty() || !gitlab_ok {
        return Ok(1);
    }
    // The root cards of `thread+edit` conversations, rendered from a sample state.
    println!("conversation root templates: {}", roots.join(", "));
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
