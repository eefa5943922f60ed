//! Event × routes × renderers → deliveries (pure; `serve`, `check` and `render` share it).
//!
//! A [`RouteTable`] holds the channels and the routes. A route matches an event by its key
//! (globs, `!glob` excludes), project path, ref (branch or tag; `default`, `protected`), labels
//! (any / all) and acting user (excluded username globs); confidential issues and comments take
//! only routes that opt in (`confidential = true`) and reach only channels that opt in too. One
//! event may go to several channels; each channel gets it once (the first matching route wins),
//! rendered with that route's templates and time zone. Without `[[routes]]`, every channel is its
//! own route, filtered by the channel's `events` and `confidential` keys. Kinds flagged opt-in
//! (the system-hook kinds: `user`, `group`, …) reach a channel only when the route's or the
//! channel's `events` names them (`user.*`); no filter, or only wildcards (`*`), is not enough.
//!
//! A template that fails at render time still tells the channel something happened, with a plain
//! fallback message naming the template error, so nothing accepted silently disappears.

use crate::config::{ChannelConfig, RouteConfig};
use crate::deliver::Delivery;
use crate::event::{Event, Kind};
use crate::render::{Message, RenderError, Rendered, Renderer};
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// The route table in force, shared by the server and the router stage and swapped whole when
/// templates are reloaded (work in progress finishes with the table it started with).
#[derive(Debug, Clone)]
pub struct SharedRoutes(Arc<RwLock<Arc<RouteTable>>>);

impl SharedRoutes {
    /// Shares `table`.
    pub fn new(table: RouteTable) -> SharedRoutes {
        SharedRoutes(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table in force now (cheap: clones an `Arc`).
    pub fn get(&self) -> Arc<RouteTable> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `table` in force.
    pub fn replace(&self, table: RouteTable) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
}

/// Why an event produced no delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// No route or channel filter lets the event through.
    NoChannel,
    /// Confidential, and no matching route and channel opted in.
    Confidential,
    /// No template for this key (unknown kind or action).
    NoTemplate,
    /// The template chose to post nothing.
    Skipped,
}

impl Ignored {
    /// Short reason for logs and HTTP answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NoChannel => "no channel subscribes to this event",
            Ignored::Confidential => {
                "confidential, and no subscribed channel accepts confidential events"
            }
            Ignored::NoTemplate => "no template for this event",
            Ignored::Skipped => "the template chose not to post",
        }
    }
}

/// The routing of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Messages to post, one per channel.
    pub deliveries: Vec<Delivery>,
    /// Why nothing is posted, when `deliveries` is empty.
    pub ignored: Option<Ignored>,
    /// A template error replaced by the fallback message, if any.
    pub render_error: Option<RenderError>,
}

/// A route with its compiled templates.
#[derive(Debug, Clone)]
pub struct Route {
    /// What it matches and where it sends.
    pub config: RouteConfig,
    /// Its templates (shared between routes with the same folder and zone).
    pub renderer: Arc<Renderer>,
}

/// Channels and routes, ready to route events.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Every configured channel.
    pub channels: Vec<ChannelConfig>,
    /// The routes, in config order.
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// Without explicit routes: one route per channel, taking that channel's filters.
    pub fn per_channel(channels: Vec<ChannelConfig>, renderer: Arc<Renderer>) -> RouteTable {
        let routes = channels
            .iter()
            .map(|c| Route {
                config: RouteConfig {
                    name: c.name.clone(),
                    channels: vec![c.name.clone()],
                    events: c.events.clone(),
                    confidential: c.confidential,
                    ..RouteConfig::default()
                },
                renderer: Arc::clone(&renderer),
            })
            .collect();
        RouteTable { channels, routes }
    }

    /// What the first route's templates make of an event no channel takes, shown instead of a
    /// post by `render` and the preview page: `None` without routes, or when no template posts
    /// anything; else the template's name and message, or its error.
    pub fn render_unrouted(&self, event: &Event) -> Option<Result<(String, Message), RenderError>> {
        match self.routes.first()?.renderer.render(event) {
            Ok(Rendered::Message(m, name)) => Some(Ok((name, m))),
            Ok(Rendered::Skipped(_) | Rendered::NoTemplate) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Every distinct renderer, for checks.
    pub fn renderers(&self) -> Vec<(String, Arc<Renderer>)> {
        let mut out: Vec<(String, Arc<Renderer>)> = Vec::new();
        for r in &self.routes {
            if !out.iter().any(|(_, x)| Arc::ptr_eq(x, &r.renderer)) {
                out.push((r.config.name.clone(), Arc::clone(&r.renderer)));
            }
        }
        out
    }
}

/// Does `key` pass an `events` list? Empty lists take everything; `!glob` excludes.
pub fn wants(patterns: &[String], key: &str) -> bool {
    let mut positives = patterns.iter().filter(|p| !p.starts_with('!')).peekable();
    let included = positives.peek().is_none() || positives.any(|p| glob(p.trim(), key));
    let excluded = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .any(|p| glob(p.trim(), key));
    included && !excluded
}

/// Does an event with these keys pass an `events` list? One key that a positive pattern
/// matches lets it in (an empty list takes everything); one key that a `!glob` matches keeps it
/// out. An event's keys are its `key` and its `also_keys` (`pipeline.fixed`, …).
pub fn wants_event(patterns: &[String], event: &Event) -> bool {
    if event.also_keys.is_empty() {
        return wants(patterns, &event.key);
    }
    let mut positives = patterns.iter().filter(|p| !p.starts_with('!')).peekable();
    let included =
        positives.peek().is_none() || positives.any(|p| event.keys().any(|k| glob(p.trim(), k)));
    let excluded = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .any(|p| event.keys().any(|k| glob(p.trim(), k)));
    included && !excluded
}

/// `*` matches any run of characters (including dots and slashes); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The branch or tag an event is about, without `refs/heads/` / `refs/tags/`.
pub fn event_ref(event: &Event) -> Option<String> {
    let raw = &event.raw;
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let r = match event.kind {
        Kind::Push | Kind::TagPush | Kind::Job | Kind::Deployment => text(&raw["ref"]),
        Kind::Pipeline => text(&raw["object_attributes"]["ref"]),
        Kind::MergeRequest => text(&raw["object_attributes"]["target_branch"]),
        Kind::Note => text(&raw["merge_request"]["target_branch"]),
        _ => None,
    }?;
    let r = r
        .strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/tags/"))
        .unwrap_or(&r);
    Some(r.to_string())
}

/// Label titles on the event's issue or merge request (or the one a comment is on).
pub fn event_labels(event: &Event) -> Vec<String> {
    let raw = &event.raw;
    let mut out = Vec::new();
    for list in [
        &raw["labels"],
        &raw["object_attributes"]["labels"],
        &raw["issue"]["labels"],
        &raw["merge_request"]["labels"],
    ] {
        for l in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let title = l["title"].as_str().or_else(|| l.as_str());
            if let Some(t) = title.filter(|t| !out.iter().any(|o: &String| o == t)) {
                out.push(t.to_string());
            }
        }
    }
    out
}

fn protected(event: &Event) -> bool {
    event.raw["ref_protected"].as_bool().unwrap_or(false)
        || event.raw["object_attributes"]["protected_ref"]
            .as_bool()
            .unwrap_or(false)
}

/// Does `route` take `event`, confidentiality aside?
pub fn matches(route: &RouteConfig, event: &Event) -> bool {
    if !wants_event(&route.events, event) {
        return false;
    }
    if route.only_status_changes && matches!(event.kind, Kind::Pipeline) && !event.status_changed()
    {
        return false;
    }
    if !route.projects.is_empty() && !route.projects.iter().any(|p| glob(p, &event.project.path)) {
        return false;
    }
    let user = event.actor.username.as_deref().unwrap_or(&event.actor.name);
    if route.exclude_users.iter().any(|p| glob(p, user)) {
        return false;
    }
    if !route.refs.is_empty() {
        if let Some(r) = event_ref(event) {
            let ok = route.refs.iter().any(|p| match p.as_str() {
                "default" => event.project.default_branch.as_deref() == Some(r.as_str()),
                "protected" => protected(event),
                _ => glob(p, &r),
            });
            if !ok {
                return false;
            }
        }
    }
    if !route.labels_any.is_empty() || !route.labels_all.is_empty() {
        let labels = event_labels(event);
        let has = |l: &String| labels.iter().any(|x| x == l);
        if !route.labels_any.is_empty() && !route.labels_any.iter().any(has) {
            return false;
        }
        if !route.labels_all.iter().all(has) {
            return false;
        }
    }
    true
}

/// Whether a positive pattern that matches the event spells its kind's name before any `*`
/// (`user.*`, `group.create`, `repository*`; not `*` or `*.create`).
fn names_kind(patterns: &[String], event: &Event) -> bool {
    let kind = event.kind.as_str();
    patterns
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.starts_with('!'))
        .any(|p| {
            p.split('*').next().is_some_and(|l| l.starts_with(kind))
                && event.keys().any(|k| glob(p, k))
        })
}

/// Does channel `c`, reached through `route`, take `event`? Opt-in kinds need a filter of the
/// route or of the channel that names them.
fn channel_accepts(c: &ChannelConfig, route: &RouteConfig, event: &Event) -> bool {
    let named =
        !event.kind.opt_in() || names_kind(&route.events, event) || names_kind(&c.events, event);
    named && wants_event(&c.events, event) && (!event.confidential || c.confidential)
}

/// Routes and renders `event`. `request_id` goes into each delivery's id.
pub fn route(event: &Event, table: &RouteTable, request_id: &str) -> Routing {
    let ordering_key = event.object_key();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut render_error = None;
    let mut blocked_confidential = false;
    let mut ignored_render: Option<Ignored> = None;
    // (renderer, body) already rendered for this event, so routes sharing templates render once.
    let mut rendered: Vec<(&Arc<Renderer>, Option<String>)> = Vec::new();
    for r in &table.routes {
        if !matches(&r.config, event) {
            continue;
        }
        if event.confidential && !r.config.confidential {
            blocked_confidential = true;
            continue;
        }
        let targets: Vec<&ChannelConfig> = r
            .config
            .channels
            .iter()
            .filter_map(|name| table.channels.iter().find(|c| &c.name == name))
            .filter(|c| !deliveries.iter().any(|d| d.channel == c.name))
            .filter(|c| {
                let ok = channel_accepts(c, &r.config, event);
                blocked_confidential |= !ok && event.confidential && wants_event(&c.events, event);
                ok
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        let body = match rendered.iter().find(|(x, _)| Arc::ptr_eq(x, &r.renderer)) {
            Some((_, b)) => b.clone(),
            None => {
                let b = match r.renderer.render(event) {
                    Ok(Rendered::Message(m, _)) => Some(m.to_json()),
                    Ok(Rendered::Skipped(_)) => {
                        ignored_render = Some(Ignored::Skipped);
                        None
                    }
                    Ok(Rendered::NoTemplate) => {
                        ignored_render.get_or_insert(Ignored::NoTemplate);
                        None
                    }
                    Err(e) => {
                        let fallback = crate::render::cliq::fallback(event, &e).to_json();
                        render_error = Some(e);
                        Some(fallback)
                    }
                };
                rendered.push((&r.renderer, b.clone()));
                b
            }
        };
        let Some(body) = body else { continue };
        for c in targets {
            deliveries.push(Delivery {
                id: format!("{request_id}/{}", c.name),
                channel: c.name.clone(),
                ordering_key: ordering_key.clone(),
                body: body.clone(),
            });
        }
    }
    let ignored = if deliveries.is_empty() {
        Some(ignored_render.unwrap_or(if blocked_confidential {
            Ignored::Confidential
        } else {
            Ignored::NoChannel
        }))
    } else {
        None
    };
    Routing {
        deliveries,
        ignored,
        render_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs() {
        let cases = [
            (&["issue.*"][..], "issue.open", true),
            (&["issue.*"][..], "merge_request.open", false),
            (&["push*"][..], "push", true),
            (&["push*"][..], "push.branch_created", true),
            (&["push.*"][..], "push", false),
            (&[][..], "anything", true),
            (&["note.*", "!note.snippet"][..], "note.snippet", false),
            (&["note.*", "!note.snippet"][..], "note.issue", true),
            (&["!note.snippet"][..], "issue.open", true),
            (&["*.merge"][..], "merge_request.merge", true),
        ];
        for (p, key, want) in cases {
            assert_eq!(wants(&pats(p), key), want, "{p:?} vs {key}");
        }
    }

    #[test]
    fn further_keys_pass_filters_and_only_status_changes_wants_one() {
        let body = serde_json::json!({"object_kind": "pipeline",
            "object_attributes": {"ref": "main", "status": "failed"}});
        let plain = event("Pipeline Hook", body);
        let mut broken = plain.clone();
        broken.note_ref_status(Some("success"));
        for (p, ev, want) in [
            (&["pipeline.broken"][..], &broken, true),
            (&["pipeline.broken"][..], &plain, false),
            (&["pipeline.failed"][..], &broken, true),
            (&["pipeline.*", "!pipeline.broken"][..], &broken, false),
            (&["pipeline.*", "!pipeline.broken"][..], &plain, true),
        ] {
            assert_eq!(
                wants_event(&pats(p), ev),
                want,
                "{p:?} vs {:?}",
                ev.also_keys
            );
        }
        let changes = RouteConfig {
            only_status_changes: true,
            ..RouteConfig::default()
        };
        assert!(matches(&changes, &broken));
        assert!(!matches(&changes, &plain));
    }

    fn channel(name: &str, events: &[&str]) -> ChannelConfig {
        ChannelConfig {
            name: name.into(),
            kind: crate::config::ChannelKind::Cliq,
            endpoint: crate::deliver::Endpoint {
                url: format!("http://127.0.0.1:9/{name}"),
                auth: crate::deliver::Auth::None,
            },
            events: pats(events),
            confidential: false,
            rate_per_minute: 45,
        }
    }

    fn event(header: &str, body: Value) -> Event {
        match crate::event::parse(Some(header), body) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn delivered(table: &RouteTable, ev: &Event) -> Vec<String> {
        route(ev, table, "t")
            .deliveries
            .into_iter()
            .map(|d| d.channel)
            .collect()
    }

    fn renderer() -> Arc<Renderer> {
        let dates = crate::render::DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y".into(),
            day_format: "%d-%b-%Y".into(),
            clock: Arc::new(chrono::Utc::now),
        };
        match Renderer::new(Vec::new(), dates, false) {
            Ok(r) => Arc::new(r),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn system_kinds_reach_only_filters_that_name_them() {
        let user = event(
            "System Hook",
            serde_json::json!({"event_name": "user_create", "name": "John Smith", "username": "js"}),
        );
        let member = event(
            "System Hook",
            serde_json::json!({"event_name": "user_add_to_group", "user_name": "Jo", "group_name": "g"}),
        );
        assert!(user.kind.opt_in() && !member.kind.opt_in());
        let channels = vec![
            channel("all", &[]),
            channel("star", &["*"]),
            channel("creates", &["*.create"]),
            channel("users", &["user.*"]),
            channel("exact", &["user.create"]),
            channel("prefix", &["user*", "!user.destroy"]),
            channel("other", &["user.failed_login"]),
            channel("not", &["!user.*"]),
        ];
        let table = RouteTable::per_channel(channels.clone(), renderer());
        assert_eq!(delivered(&table, &user), ["users", "exact", "prefix"]);
        // A group webhook's member event is not opt-in, even from a System Hook.
        assert_eq!(delivered(&table, &member), ["all", "star", "not"]);
        let destroy = event(
            "System Hook",
            serde_json::json!({"event_name": "user_destroy", "username": "js"}),
        );
        assert_eq!(delivered(&table, &destroy), ["users"]);
    }

    #[test]
    fn a_route_that_names_a_system_kind_opens_channels_without_filters() {
        let repo = event(
            "System Hook",
            serde_json::json!({"event_name": "repository_update", "user_name": "John"}),
        );
        let route_for = |events: &[&str]| Route {
            config: RouteConfig {
                name: "ops".into(),
                channels: vec!["ops".into(), "dev".into()],
                events: pats(events),
                ..RouteConfig::default()
            },
            renderer: renderer(),
        };
        let channels = vec![channel("ops", &[]), channel("dev", &["push*"])];
        for (events, want) in [
            (&["repository*"][..], &["ops"][..]),
            (&["repository.update", "push*"][..], &["ops"][..]),
            (&["*"][..], &[][..]),
            (&[][..], &[][..]),
        ] {
            let table = RouteTable {
                channels: channels.clone(),
                routes: vec![route_for(events)],
            };
            assert_eq!(delivered(&table, &repo), want, "{events:?}");
        }
        let table = RouteTable {
            channels: vec![channel("ops", &["repository.update"])],
            routes: vec![route_for(&["*"])],
        };
        assert_eq!(delivered(&table, &repo), ["ops"]);
    }
}
