//! `render`: print the body `serve` would post for one payload (a file, or an event the store
//! keeps: `--event-id`), per channel; or, with `--all-fixtures DIR`, render a whole folder of
//! payloads and flag empty fields. A payload no channel would get is previewed with the first
//! route's templates.

use crate::cli::RenderArgs;
use crate::event::{self, Event};
use crate::pipeline;
use crate::preview;
use crate::route::{self, RouteTable};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::Path;

/// Runs `render`. Returns the process exit code.
pub fn run(args: &RenderArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let mut table = super::routes_or_fail(&cfg)?;
    if let Some(name) = &args.channel {
        if !table.channels.iter().any(|c| &c.name == name) {
            bail!("no channel named {name:?} in {}", cfg.path.display());
        }
        table.channels.retain(|c| &c.name == name);
    }
    if let Some(dir) = &args.all_fixtures {
        return all_fixtures(dir, &table);
    }
    let ev = match (&args.event, args.event_id) {
        (Some(path), _) => load_event(path, args.event_header.as_deref())?,
        (None, Some(id)) => {
            let store = super::CommandStore::open(&cfg)?;
            let Some(stored) = store.run(|o| Box::pin(o.event(id)))? else {
                eprintln!("error: no event {id} in {} (see `events list`)", store.name);
                return Ok(2);
            };
            pipeline::parse(&stored).map_err(anyhow::Error::msg)?
        }
        (None, None) => bail!("give --event PAYLOAD.json, --event-id ID or --all-fixtures DIR"),
    };
    let mut out = std::io::stdout().lock();
    let routing = route::route(&ev, &table, "render");
    if let Some(e) = &routing.render_error {
        eprintln!("template error: {e}");
    }
    if let Some(why) = routing.ignored {
        eprintln!("{}: nothing would be posted: {}", ev.key, why.as_str());
        if let Some(Ok((name, message))) = table.render_unrouted(&ev) {
            writeln!(out, "==> preview ({name}) <==")?;
            writeln!(out, "{}", message.to_json())?;
        }
        return Ok(0);
    }
    for d in &routing.deliveries {
        if args.channel.is_none() {
            writeln!(out, "==> {} <==", d.channel)?;
        }
        // A conversation channel's message: the body posted, then (listing every channel) the
        // root card it keeps.
        let (body, conversation) = crate::deliver::conversation::unwrap(&d.body);
        writeln!(out, "{body}")?;
        let root = conversation.and_then(|c| c.root);
        if let (None, Some(root)) = (&args.channel, root) {
            writeln!(out, "==> {} (root card) <==", d.channel)?;
            writeln!(out, "{root}")?;
        }
    }
    Ok(if routing.render_error.is_some() { 1 } else { 0 })
}

fn load_event(path: &Path, header: Option<&str>) -> anyhow::Result<Event> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    event::parse(header, value).with_context(|| format!("{} is not a GitLab event", path.display()))
}

/// What looks wrong in a rendered body: empty `Label:` lines, `null`, empty titles or links.
pub fn empty_fields(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return vec!["not JSON".into()];
    };
    let mut flags = Vec::new();
    let text = v["text"].as_str().unwrap_or_default();
    for line in text.lines() {
        let l = line.trim();
        if l.ends_with(':') || l.ends_with(":*") || l.ends_with(": ") {
            flags.push(format!("empty field: {l:?}"));
        }
        if l.contains("null") || l.contains("undefined") {
            flags.push(format!("null value: {l:?}"));
        }
        if l.contains("[](") || l.contains("]()") {
            flags.push(format!("empty link: {l:?}"));
        }
    }
    if let Some(card) = v.get("card") {
        if card["title"]
            .as_str()
            .is_none_or(|t| t.trim().is_empty() || t.ends_with(": "))
        {
            flags.push("empty card title".into());
        }
    }
    flags
}

fn all_fixtures(dir: &Path, table: &RouteTable) -> anyhow::Result<i32> {
    let headers = preview::items::index_headers(dir);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    let mut out = std::io::stdout().lock();
    let (mut problems, mut posted, mut ignored) = (0, 0, 0);
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let ev = match load_event(path, headers.get(name).map(String::as_str)) {
            Ok(ev) => ev,
            Err(e) => {
                writeln!(out, "==> {name} <==\n  ! {e:#}")?;
                problems += 1;
                continue;
            }
        };
        let routing = route::route(&ev, table, "render");
        writeln!(out, "==> {name} ({}) <==", ev.key)?;
        if let Some(e) = &routing.render_error {
            writeln!(out, "  ! template error: {e}")?;
            problems += 1;
        }
        let mut bodies: Vec<(String, String)> = Vec::new();
        for d in &routing.deliveries {
            // A conversation channel's reply, then the root card it keeps.
            let (body, conversation) = crate::deliver::conversation::unwrap(&d.body);
            bodies.push((d.channel.clone(), body));
            if let Some(root) = conversation.and_then(|c| c.root) {
                bodies.push((format!("{} (root card)", d.channel), root));
            }
        }
        if let Some(why) = routing.ignored {
            writeln!(out, "  (not posted: {})", why.as_str())?;
            ignored += 1;
            // Events no channel takes (system-hook kinds need a filter naming them) are still
            // shown and checked, as `render --event` shows them.
            if let Some(Ok((name, message))) = table.render_unrouted(&ev) {
                bodies.push((format!("preview ({name})"), message.to_json()));
            }
        }
        for (to, body) in &bodies {
            writeln!(out, "-- {to}\n{body}")?;
            for f in empty_fields(body) {
                writeln!(out, "  ! {f}")?;
                problems += 1;
            }
        }
        posted += routing.deliveries.len();
    }
    writeln!(
        out,
        "{} payload(s): {posted} message(s), {ignored} not posted, {problems} problem(s)",
        files.len()
    )?;
    Ok(if problems > 0 { 1 } else { 0 })
}
