//! `render`: print the body `serve` would post for one payload, per channel.

use crate::cli::RenderArgs;
use crate::event;
use crate::render::Rendered;
use crate::route;
use anyhow::{bail, Context};
use std::io::Write;

/// Runs `render`. Returns the process exit code.
pub fn run(args: &RenderArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let renderer = super::renderer_or_fail(&cfg)?;
    let text = std::fs::read_to_string(&args.event)
        .with_context(|| format!("cannot read {}", args.event.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.event.display()))?;
    let ev = event::parse(args.event_header.as_deref(), value)
        .with_context(|| format!("{} is not a GitLab event", args.event.display()))?;
    let mut channels = cfg.channels.clone();
    if let Some(name) = &args.channel {
        channels.retain(|c| &c.name == name);
        if channels.is_empty() {
            bail!("no channel named {name:?} in {}", cfg.path.display());
        }
    }
    let routing = route::route(&ev, &channels, &renderer, "render");
    if let Some(e) = &routing.render_error {
        eprintln!("template error: {e}");
    }
    let mut out = std::io::stdout().lock();
    if let Some(why) = routing.ignored {
        eprintln!("{}: nothing would be posted: {}", ev.key, why.as_str());
        // Still show what the template makes of it, when there is one.
        if let Ok(Rendered::Message(m, name)) = renderer.render(&ev) {
            writeln!(out, "==> preview ({name}) <==")?;
            writeln!(out, "{}", m.to_json())?;
        }
        return Ok(0);
    }
    for d in &routing.deliveries {
        if args.channel.is_none() {
            writeln!(out, "==> {} <==", d.channel)?;
        }
        writeln!(out, "{}", d.body)?;
    }
    Ok(if routing.render_error.is_some() { 1 } else { 0 })
}
