//! `check`: validate the configuration and compile every template in strict mode, rendering each
//! against the bundled sample events (every action of every kind). Exit 1 with one line per
//! problem, each naming the file and line.

use crate::event::{self, Event};
use crate::render::{Rendered, Renderer};
use std::path::Path;

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
