//! `events`: the webhook deliveries the store keeps (`events.retention_days`): list them, show
//! one with what it was routed to, and replay them through the current templates, e.g. to see
//! a fixed template's wording on yesterday's events in a test channel.
//!
//! A replay is a new delivery: it is stored as a new event (pointing at the one it replays),
//! routed at once with the current route table and templates, and its messages are queued like
//! any other; nothing deduplicates it. A running `serve` posts them within its idle poll (5 s).

use super::{now_ms, when, CommandStore};
use crate::cli::{EventsAction, EventsArgs};
use crate::deliver::store::{EventFilter, RoutedEvent, StoredEvent};
use crate::deliver::Delivery;
use crate::pipeline;
use crate::route::RouteTable;
use std::io::Write;

/// Exit code of a usage error (an unknown event id, an unknown channel), as clap's.
const USAGE: i32 = 2;

/// Runs `events`. Returns the process exit code.
pub fn run(args: &EventsArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let store = CommandStore::open(&cfg)?;
    let mut out = std::io::stdout().lock();
    match &args.action {
        EventsAction::List {
            kind,
            project,
            since,
            limit,
        } => {
            let filter = EventFilter {
                kind: kind.clone(),
                project: project.clone(),
                since: since.map(|d| now_ms() - d.as_millis() as i64),
                limit: *limit,
            };
            let rows = store.run(|o| Box::pin(o.list_events(filter)))?;
            writeln!(
                out,
                "{:>7}  {:<23}  {:<28}  {:<30}  outcome",
                "id", "received", "event", "project"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:>7}  {:<23}  {:<28}  {:<30}  {}",
                    r.id,
                    when(r.received_at),
                    r.key.as_deref().unwrap_or("(not routed yet)"),
                    r.project.as_deref().unwrap_or(""),
                    r.outcome.as_deref().unwrap_or(&r.state),
                )?;
            }
            writeln!(out, "{} event(s)", rows.len())?;
            Ok(0)
        }
        EventsAction::Show { id } => {
            let (Some(row), Some(ev)) = (
                store.run(|o| Box::pin(o.event_row(*id)))?,
                store.run(|o| Box::pin(o.event(*id)))?,
            ) else {
                return Ok(no_event(*id, &store.name));
            };
            writeln!(out, "event {}  received {}", row.id, when(row.received_at))?;
            writeln!(out, "request: {}", row.request_id)?;
            if let Some(of) = row.replay_of {
                writeln!(out, "replay of event {of}")?;
            }
            writeln!(out, "headers:")?;
            for (name, value) in &ev.raw.headers {
                writeln!(out, "  {name}: {value}")?;
            }
            match (&row.key, &row.outcome) {
                (Some(key), Some(outcome)) => {
                    let project = row.project.as_deref().filter(|p| !p.is_empty());
                    let at = project.map(|p| format!(" in {p}")).unwrap_or_default();
                    writeln!(out, "routed: {key}{at}: {outcome}")?;
                }
                _ => writeln!(out, "routed: not yet")?,
            }
            let messages = store.run(|o| Box::pin(o.event_messages(*id)))?;
            writeln!(out, "deliveries: {}", messages.len())?;
            for m in &messages {
                let status = match m.state.as_str() {
                    "sent" => format!("sent {}", when(m.next_at)),
                    "dead" => format!("dead letter: {}", m.last_error.as_deref().unwrap_or("-")),
                    _ if m.attempts > 0 => format!(
                        "retrying at {} ({})",
                        when(m.next_at),
                        m.last_error.as_deref().unwrap_or("-")
                    ),
                    _ => "pending".to_string(),
                };
                let http = m.last_status.map(|s| format!(", HTTP {s}"));
                writeln!(
                    out,
                    "  message {} to {}: {status} (attempts {}{})",
                    m.id,
                    m.channel,
                    m.attempts,
                    http.unwrap_or_default()
                )?;
            }
            writeln!(out, "body:")?;
            writeln!(out, "{}", pretty(&ev.raw.body))?;
            Ok(0)
        }
        EventsAction::Replay {
            id,
            since,
            channel,
            dry_run,
        } => {
            let ids = match (id, since) {
                (Some(id), _) => vec![*id],
                (None, Some(d)) => {
                    let since = now_ms() - d.as_millis() as i64;
                    store.run(|o| Box::pin(o.event_ids_since(since)))?
                }
                (None, None) => Vec::new(),
            };
            let mut events = Vec::with_capacity(ids.len());
            for i in ids {
                match store.run(|o| Box::pin(o.event(i)))? {
                    Some(e) => events.push(e),
                    None => return Ok(no_event(i, &store.name)),
                }
            }
            let table = super::routes_or_fail(&cfg)?;
            if let Some(name) = channel {
                if !table.channels.iter().any(|c| &c.name == name) {
                    eprintln!("error: no channel named {name:?} in {}", cfg.path.display());
                    return Ok(USAGE);
                }
            }
            let mut replayed = 0;
            for ev in &events {
                replayed += replay(&store, &mut out, ev, &table, channel.as_deref(), *dry_run)?;
            }
            let what = if *dry_run { "would post" } else { "queued" };
            writeln!(
                out,
                "{} event(s) replayed: {what} {replayed} message(s){}",
                events.len(),
                if *dry_run {
                    " (dry run: nothing stored or posted)"
                } else {
                    " (replays are new deliveries: not deduplicated)"
                }
            )?;
            Ok(0)
        }
    }
}

fn no_event(id: i64, store: &str) -> i32 {
    eprintln!(
        "error: no event {id} in {store} (see `events list`; events are kept events.retention_days)"
    );
    USAGE
}

/// Replays one event; returns how many messages it queued (or would).
fn replay(
    store: &CommandStore,
    out: &mut impl Write,
    ev: &StoredEvent,
    table: &RouteTable,
    channel: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<usize> {
    let now = now_ms();
    let request_id = format!("replay-{now}-of-{}", ev.id);
    let mut stored = ev.clone();
    stored.raw.request_id = request_id.clone();
    let event = match pipeline::parse(&stored) {
        Ok(e) => e,
        Err(error) => {
            writeln!(out, "event {}: {error}; nothing to post", ev.id)?;
            return Ok(0);
        }
    };
    let routing = pipeline::route_event(&stored, &event, table, None);
    let mut deliveries = routing.deliveries;
    // A replay is a reply in its object's thread that leaves the root card as it is: its card
    // shows only what the replayed event says (the router's state of the object is not read,
    // nor changed, by a replay). It is still the root card of a thread the replay starts.
    for d in &mut deliveries {
        if let (body, Some(mut i)) = crate::deliver::conversation::unwrap(&d.body) {
            i.edit = false;
            d.body = crate::deliver::conversation::wrap(&body, &i);
        }
    }
    if let Some(name) = channel {
        let Some(target) = table.channels.iter().find(|c| c.name == name) else {
            return Ok(0);
        };
        if event.confidential && !target.confidential {
            writeln!(
                out,
                "event {} ({}): confidential, and channel {name} does not accept confidential events; skipped",
                ev.id, event.key
            )?;
            return Ok(0);
        }
        // The card as the event's own route renders it, sent to `name` alone.
        let body = match deliveries
            .iter()
            .find(|d| d.channel == name)
            .or(deliveries.first())
        {
            Some(d) => Some(d.body.clone()),
            None => table
                .renderers()
                .first()
                .and_then(|(_, r)| match r.render(&event) {
                    Ok(crate::render::Rendered::Message(m, _)) => Some(m.to_json()),
                    _ => None,
                }),
        };
        deliveries = body
            .map(|body| Delivery {
                id: format!("{request_id}/{name}"),
                channel: name.to_string(),
                ordering_key: event.object_key(),
                body,
            })
            .into_iter()
            .collect();
    }
    if deliveries.is_empty() {
        let why = routing.ignored.map_or("nothing to post", |w| w.as_str());
        writeln!(out, "event {} ({}): {why}", ev.id, event.key)?;
        return Ok(0);
    }
    let n = deliveries.len();
    if dry_run {
        for d in &deliveries {
            writeln!(
                out,
                "==> event {} ({}) → {} <==",
                ev.id, event.key, d.channel
            )?;
            // A conversation channel's message: the reply it posts, then the root card it keeps.
            let (body, conversation) = crate::deliver::conversation::unwrap(&d.body);
            writeln!(out, "{body}")?;
            if let Some(root) = conversation.and_then(|c| c.root) {
                writeln!(
                    out,
                    "==> event {} ({}) → {} (root card) <==",
                    ev.id, event.key, d.channel
                )?;
                writeln!(out, "{root}")?;
            }
        }
        return Ok(n);
    }
    let channels: Vec<String> = deliveries.iter().map(|d| d.channel.clone()).collect();
    // The ids are the new event's, set when it is stored.
    let routed = RoutedEvent {
        event_id: 0,
        request_id: request_id.clone(),
        idempotency_key: None,
        kind: event.kind.as_str().to_string(),
        key: event.key.clone(),
        project: event.project.path.clone(),
        outcome: format!("queued {n} (replay of {})", ev.id),
        deliveries,
        // A replay re-posts an old event: it does not change what the router remembers.
        memory: Vec::new(),
    };
    let new_id = store.run(|o| Box::pin(o.replay(ev.clone(), routed, now)))?;
    writeln!(
        out,
        "event {} ({}) replayed as event {new_id}: {}",
        ev.id,
        event.key,
        channels.join(", ")
    )?;
    Ok(n)
}

/// The body as indented JSON when it parses, else as text.
fn pretty(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}
