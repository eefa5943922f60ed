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
//!
//! Beside the configuration, chats route themselves: a Cliq chat's subscriptions and mutes
//! (made with the Cliq extension's `/gitlab` command, stored as [`ChatRule`] rows) are applied by
//! [`route_chats`]. A subscription takes a project's (or a group's) events, filtered like a route,
//! into the channel [`chat_channel`]; confidential events only with the configuration's opt-in; a
//! mute drops what is about one merge request or issue in that chat.

use crate::config::{ChannelConfig, ChannelKind, Format, RouteConfig};
use crate::deliver::conversation::{self, Mode};
use crate::deliver::store::ChatRule;
use crate::deliver::Delivery;
use crate::event::state::ObjectState;
use crate::event::{Detail, Event, Kind};
use crate::render::{Message, Platform, RenderError, Rendered, Renderer};
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
    /// The templates of each other platform its channels post to (`templates/<kind>/` over the
    /// built-in ones, with `[mentions.<kind>]`); a platform not listed uses `renderer`.
    pub platforms: Vec<(Platform, Arc<Renderer>)>,
}

impl Route {
    /// The renderer of `platform`'s cards.
    pub fn renderer_for(&self, platform: Platform) -> &Arc<Renderer> {
        self.platforms
            .iter()
            .find(|(p, _)| *p == platform)
            .map_or(&self.renderer, |(_, r)| r)
    }
}

/// The platform whose body a channel of `kind` gets (Cliq's card for the console, Zoho functions
/// and generic webhooks).
pub fn platform_of(kind: ChannelKind) -> Platform {
    match kind {
        ChannelKind::Slack => Platform::Slack,
        ChannelKind::Mattermost => Platform::Mattermost,
        ChannelKind::Teams => Platform::Teams,
        ChannelKind::GoogleChat => Platform::GoogleChat,
        ChannelKind::Discord => Platform::Discord,
        ChannelKind::Telegram => Platform::Telegram,
        ChannelKind::Matrix => Platform::Matrix,
        ChannelKind::Cliq
        | ChannelKind::ZohoFunction
        | ChannelKind::Webhook
        | ChannelKind::Console => Platform::Cliq,
    }
}

/// Channels and routes, ready to route events.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Every configured channel.
    pub channels: Vec<ChannelConfig>,
    /// The routes, in config order.
    pub routes: Vec<Route>,
    /// The templates chats' own subscriptions are rendered with (the default templates);
    /// `None`: chats get nothing.
    pub chats: Option<Arc<Renderer>>,
}

impl RouteTable {
    /// Without explicit routes: one route per channel, taking that channel's filters.
    pub fn per_channel(channels: Vec<ChannelConfig>, renderer: Arc<Renderer>) -> RouteTable {
        RouteTable::per_channel_with(channels, renderer, Vec::new())
    }

    /// [`RouteTable::per_channel`], with the renderers of other platforms.
    pub fn per_channel_with(
        channels: Vec<ChannelConfig>,
        renderer: Arc<Renderer>,
        platforms: Vec<(Platform, Arc<Renderer>)>,
    ) -> RouteTable {
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
                platforms: platforms.clone(),
            })
            .collect();
        RouteTable {
            channels,
            routes,
            chats: Some(renderer),
        }
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

    /// Every distinct renderer (each platform's too), for checks.
    pub fn renderers(&self) -> Vec<(String, Arc<Renderer>)> {
        let mut out: Vec<(String, Arc<Renderer>)> = Vec::new();
        for r in &self.routes {
            let all = std::iter::once(&r.renderer).chain(r.platforms.iter().map(|(_, x)| x));
            for renderer in all {
                if !out.iter().any(|(_, x)| Arc::ptr_eq(x, renderer)) {
                    out.push((r.config.name.clone(), Arc::clone(renderer)));
                }
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

/// The object whose conversation an event belongs to: its ordering key, except that a merge
/// request's pipeline joins the merge request's thread.
fn conversation_key(event: &Event, ordering_key: &str) -> String {
    if let Detail::Pipeline(p) = &event.detail {
        let iid = p.merge_request.as_ref().and_then(|m| m.iid);
        if let (Some(iid), Some((project, _))) = (iid, ordering_key.rsplit_once("/pipeline/")) {
            return format!("{project}/mr/{iid}");
        }
    }
    ordering_key.to_string()
}

/// The event keys that end an object's conversation.
const ENDS: [&str; 3] = ["merge_request.merge", "merge_request.close", "issue.close"];

/// What channel `c` (in conversation `mode`) is told with `body`, a message about the object
/// `key`. On `thread+edit` the root is `root`: the card its kind's root template renders from
/// the object's accumulated state, for every event about the object (`Some(None)`: the root
/// template chose to show nothing, so the first message stays the root, unedited). An object
/// without a state or root template (`root` is `None`) shows the card of its latest event of its
/// own (not comments, pipelines of a merge request or jobs, which are replies only).
fn instruction(
    c: &ChannelConfig,
    mode: Mode,
    event: &Event,
    key: &str,
    body: &str,
    root: Option<Option<String>>,
) -> conversation::Instruction {
    let object = conversation_key(event, key);
    // The root shows the object's own state: a comment, a merge request's pipeline or a
    // pipeline's job is a reply that leaves the root as it is.
    let own = object == key && !matches!(event.kind, Kind::Note | Kind::Job);
    let root = match root {
        Some(card) => card,
        None => own.then(|| body.to_string()),
    };
    conversation::Instruction {
        edit: mode == Mode::ThreadEdit,
        root: if mode == Mode::ThreadEdit { root } else { None },
        key: object,
        // An empty list broadcasts nothing (an empty `events` filter takes everything).
        broadcast: !c.conversation.broadcast.is_empty()
            && wants_event(&c.conversation.broadcast, event),
        ends: event.keys().any(|k| ENDS.contains(&k)),
        days: c.conversation.days,
    }
}

/// What `make` gives for `renderer`, made once per renderer and kept in `cache`, so routes and
/// channels that share templates render once.
fn per_renderer<'r, T: Clone>(
    cache: &mut Vec<(&'r Arc<Renderer>, T)>,
    renderer: &'r Arc<Renderer>,
    make: impl FnOnce() -> T,
) -> T {
    if let Some((_, made)) = cache.iter().find(|(x, _)| Arc::ptr_eq(x, renderer)) {
        return made.clone();
    }
    let made = make();
    cache.push((renderer, made.clone()));
    made
}

/// The root card `renderer` makes of `state`: `Some(Some(card))`, `Some(None)` when its root
/// template chose to show nothing, `None` without a state or a root template for its kind (or
/// when the template failed: the error is kept in `error`).
fn root_card(
    renderer: &Renderer,
    state: Option<&ObjectState>,
    error: &mut Option<RenderError>,
) -> Option<Option<Message>> {
    match renderer.render_root(state?) {
        Ok(Rendered::Message(m, _)) => Some(Some(m)),
        Ok(Rendered::Skipped(_)) => Some(None),
        Ok(Rendered::NoTemplate) => None,
        Err(e) => {
            error.get_or_insert(e);
            None
        }
    }
}

/// Routes and renders `event`. `request_id` goes into each delivery's id. A `thread+edit`
/// channel's root card shows the state the event alone gives (`render`, the preview page).
pub fn route(event: &Event, table: &RouteTable, request_id: &str) -> Routing {
    route_with_state(event, table, request_id, None)
}

/// [`route`], with the object's accumulated state (the router's memory, merged with `event`)
/// for `thread+edit` channels' root cards; `None`: the state the event alone gives.
pub fn route_with_state(
    event: &Event,
    table: &RouteTable,
    request_id: &str,
    state: Option<&ObjectState>,
) -> Routing {
    let ordering_key = event.object_key();
    let edits = |c: &ChannelConfig| c.conversation.mode == Mode::ThreadEdit;
    let fresh = match state {
        None if table.channels.iter().any(edits) => ObjectState::of(event),
        _ => None,
    };
    let state = state.or(fresh.as_ref());
    // (renderer, root card) already rendered, as for the cards below.
    let mut roots: Vec<(&Arc<Renderer>, Option<Option<Message>>)> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut render_error = None;
    let mut blocked_confidential = false;
    let mut ignored_render: Option<Ignored> = None;
    // (renderer, card) already rendered for this event, so routes sharing templates render once.
    let mut rendered: Vec<(&Arc<Renderer>, Option<Message>)> = Vec::new();
    // The event JSON of `format = "event"` channels, built once.
    let mut event_body: Option<String> = None;
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
        for c in targets {
            let platform = platform_of(c.kind);
            let renderer = r.renderer_for(platform);
            let body = if c.format == Format::Event {
                event_body
                    .get_or_insert_with(|| crate::render::event_json::body(event).to_string())
                    .clone()
            } else {
                let card = per_renderer(&mut rendered, renderer, || match renderer.render(event) {
                    Ok(Rendered::Message(m, _)) => Some(m),
                    Ok(Rendered::Skipped(_)) => {
                        ignored_render = Some(Ignored::Skipped);
                        None
                    }
                    Ok(Rendered::NoTemplate) => {
                        ignored_render.get_or_insert(Ignored::NoTemplate);
                        None
                    }
                    Err(e) => {
                        let fallback = crate::render::cliq::fallback(event, &e);
                        render_error = Some(e);
                        Some(fallback)
                    }
                });
                let Some(card) = card else { continue };
                platform
                    .body_for(&card, &ordering_key, renderer.mentions())
                    .to_json()
            };
            let body = match c.conversation.mode {
                Mode::Off => body,
                mode => {
                    let root = if mode == Mode::ThreadEdit && c.format != Format::Event {
                        let card = per_renderer(&mut roots, renderer, || {
                            root_card(renderer, state, &mut render_error)
                        });
                        card.map(|card| {
                            card.map(|m| {
                                platform
                                    .body_for(&m, &ordering_key, renderer.mentions())
                                    .to_json()
                            })
                        })
                    } else {
                        None
                    };
                    let i = instruction(c, mode, event, &ordering_key, &body, root);
                    conversation::wrap(&body, &i)
                }
            };
            deliveries.push(Delivery {
                id: format!("{request_id}/{}", c.name),
                channel: c.name.clone(),
                ordering_key: ordering_key.clone(),
                body,
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

/// The kind of a chat rule that subscribes the chat to a project or group (`subject`: its path).
pub const SUBSCRIPTION: &str = "subscription";
/// The kind of a chat rule that mutes one merge request (`path!iid`) or issue (`path#iid`).
pub const MUTE: &str = "mute";
/// The kind of a chat rule that posts a review reminder to the chat (`subject`: always
/// [`REMINDER_SUBJECT`], one per chat; `spec`: a [`ReminderSpec`]).
pub const REMINDER: &str = "reminder";
/// The subject of a chat's review reminder rule.
pub const REMINDER_SUBJECT: &str = "reviews";
/// How chat channels are named: this prefix and the Cliq chat id.
pub const CHAT_PREFIX: &str = "chat:";

/// The channel name of the Cliq chat `chat_id`.
pub fn chat_channel(chat_id: &str) -> String {
    format!("{CHAT_PREFIX}{chat_id}")
}

/// Longest Cliq chat id accepted.
pub const MAX_CHAT_ID_LEN: usize = 200;

/// Whether `id` can be a Cliq chat id. It becomes part of a URL path, so only what Cliq's ids
/// are made of: letters, digits, `_`, `-` and `.`, at most [`MAX_CHAT_ID_LEN`] of them, and not
/// dots alone (`..` would climb the path).
pub fn is_chat_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CHAT_ID_LEN
        && !id.chars().all(|c| c == '.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The chat id of a chat channel, `None` for configured channels.
pub fn chat_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(CHAT_PREFIX)
}

/// A chat's review reminder (the `spec` of its [`REMINDER`] rule, set with `/gitlab remind`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReminderSpec {
    /// `weekdays 09:30` (as `crate::schedule::Schedule` parses it).
    pub schedule: String,
    /// The IANA zone of the schedule.
    pub timezone: String,
    /// The project path glob it covers (`acme/app`, or `acme/*` for a group).
    pub projects: String,
}

/// A subscription's filters (the `spec` of its rule): event globs, labels (any), refs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionSpec {
    /// Event key globs (`issue.*`, `!note.*`); empty: every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Labels, any of which must be on the issue or merge request; empty: no filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Ref globs (`main`, `release/*`, `default`, `protected`); empty: every ref.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
}

/// Whether the subscription to `path` (a project or a group) covers `project`.
pub fn covers(path: &str, project: &str) -> bool {
    let path = path.trim_matches('/');
    !path.is_empty()
        && (project.eq_ignore_ascii_case(path)
            || project
                .get(..path.len() + 1)
                .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{path}/"))))
}

/// What a mute names for `event`: `path!iid` for a merge request (and comments on it),
/// `path#iid` for an issue or work item (and comments on it); `None` for anything else.
pub fn mute_subject(event: &Event) -> Option<String> {
    let path = event.project.path.as_str();
    if path.is_empty() {
        return None;
    }
    let (sep, iid) = match &event.detail {
        Detail::MergeRequest(m) => ('!', m.iid?),
        Detail::Issue(i) => ('#', i.iid?),
        Detail::WorkItem(i) => ('#', i.iid?),
        Detail::Note(n) => match (&n.issue, &n.merge_request) {
            (Some(i), _) => ('#', i.iid?),
            (_, Some(m)) => ('!', m.iid?),
            _ => return None,
        },
        _ => return None,
    };
    Some(format!("{path}{sep}{iid}"))
}

/// Routes `event` to the chats whose rules take it (one message per chat), rendered with the
/// table's chat templates; mutes in force at `now` (unix ms) drop it. `confidential`: the
/// configuration lets chats receive confidential events. Returns the deliveries and a template
/// error replaced by the fallback message, if any.
pub fn route_chats(
    event: &Event,
    table: &RouteTable,
    rules: &[ChatRule],
    confidential: bool,
    now: i64,
    request_id: &str,
) -> (Vec<Delivery>, Option<RenderError>) {
    let Some(renderer) = &table.chats else {
        return (Vec::new(), None);
    };
    if event.confidential && !confidential {
        return (Vec::new(), None);
    }
    let muted = mute_subject(event);
    let mut chats: Vec<&str> = Vec::new();
    for r in rules.iter().filter(|r| r.kind == SUBSCRIPTION) {
        if chats.contains(&r.chat.as_str()) || !covers(&r.subject, &event.project.path) {
            continue;
        }
        let Ok(spec) = serde_json::from_str::<SubscriptionSpec>(&r.spec) else {
            continue;
        };
        let filter = RouteConfig {
            events: spec.events,
            refs: spec.refs,
            labels_any: spec.labels,
            ..RouteConfig::default()
        };
        // Opt-in kinds (system hooks) only when the subscription names them.
        if !matches(&filter, event) || (event.kind.opt_in() && !names_kind(&filter.events, event)) {
            continue;
        }
        let is_muted = muted.as_deref().is_some_and(|m| {
            rules.iter().any(|x| {
                x.kind == MUTE
                    && x.chat == r.chat
                    && x.subject.eq_ignore_ascii_case(m)
                    && x.until.is_none_or(|u| u > now)
            })
        });
        if !is_muted {
            chats.push(&r.chat);
        }
    }
    if chats.is_empty() {
        return (Vec::new(), None);
    }
    let (body, error) = match renderer.render(event) {
        Ok(Rendered::Message(m, _)) => (m.to_json(), None),
        Ok(Rendered::Skipped(_) | Rendered::NoTemplate) => return (Vec::new(), None),
        Err(e) => (crate::render::cliq::fallback(event, &e).to_json(), Some(e)),
    };
    let ordering_key = event.object_key();
    let deliveries = chats
        .into_iter()
        .map(|chat| {
            let channel = chat_channel(chat);
            Delivery {
                id: format!("{request_id}/{channel}"),
                channel,
                ordering_key: ordering_key.clone(),
                body: body.clone(),
            }
        })
        .collect();
    (deliveries, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chat_ids_are_what_a_url_path_can_carry() {
        assert!(is_chat_id("CT_2243226337559778047_661211447-B2"));
        assert!(is_chat_id(&"a".repeat(MAX_CHAT_ID_LEN)));
        for bad in ["", ".", "..", "a/b", "a b", "a?x=1", "ä", "..%2F"] {
            assert!(!is_chat_id(bad), "{bad:?}");
        }
        assert!(!is_chat_id(&"a".repeat(MAX_CHAT_ID_LEN + 1)));
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
            format: crate::config::Format::Card,
            endpoint: crate::deliver::Endpoint {
                url: format!("http://127.0.0.1:9/{name}"),
                auth: crate::deliver::Auth::None,
            },
            events: pats(events),
            confidential: false,
            rate_per_minute: 45,
            conversation: crate::config::ConversationConfig::default(),
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

    fn sample(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn rule(chat: &str, kind: &str, subject: &str, spec: &str, until: Option<i64>) -> ChatRule {
        ChatRule {
            chat: chat.into(),
            kind: kind.into(),
            subject: subject.into(),
            spec: spec.into(),
            until,
            created_by: "1".into(),
            created_at: 0,
        }
    }

    #[test]
    fn chats_take_what_they_subscribed_to_minus_their_mutes() {
        let table = RouteTable {
            channels: Vec::new(),
            routes: Vec::new(),
            chats: Some(renderer()),
        };
        let mr = event("Merge Request Hook", sample("merge_request__open.json"));
        let issue = event("Issue Hook", sample("issue__open.json"));
        assert_eq!(mute_subject(&mr).as_deref(), Some("gitlabhq/gitlab-test!1"));
        assert_eq!(
            mute_subject(&issue).as_deref(),
            Some("gitlabhq/gitlab-test#23")
        );
        let chats = |ev: &Event, rules: &[ChatRule], confidential: bool| -> Vec<String> {
            route_chats(ev, &table, rules, confidential, 1_000, "r")
                .0
                .into_iter()
                .map(|d| d.channel)
                .collect()
        };
        let rules = vec![
            rule(
                "A",
                SUBSCRIPTION,
                "GitLabHQ",
                r#"{"events":["merge_request.*"]}"#,
                None,
            ),
            rule("B", SUBSCRIPTION, "gitlabhq/gitlab-test", "{}", None),
            rule("B", MUTE, "gitlabhq/gitlab-test!1", "{}", None),
            rule("C", SUBSCRIPTION, "gitlabhq/gitlab", "{}", None),
            rule(
                "D",
                SUBSCRIPTION,
                "gitlabhq/gitlab-test",
                r#"{"labels":["nope"]}"#,
                None,
            ),
        ];
        assert_eq!(chats(&mr, &rules, false), ["chat:A"]);
        assert_eq!(chats(&issue, &rules, false), ["chat:B"]);
        let mut lapsed = rules.clone();
        lapsed[2].until = Some(999);
        assert_eq!(chats(&mr, &lapsed, false), ["chat:A", "chat:B"]);
        let mut secret = issue.clone();
        secret.confidential = true;
        assert!(chats(&secret, &rules, false).is_empty());
        assert_eq!(chats(&secret, &rules, true), ["chat:B"]);
        assert!(covers("g", "g/p") && covers("g/p", "G/P") && !covers("g/p", "g/pp"));
        assert!(!covers("", "g") && !covers("g/p/q", "g/p"));
    }

    #[test]
    fn thread_edit_roots_show_the_objects_state_for_every_event_about_it() {
        let mut edit = channel("edit", &[]);
        edit.kind = ChannelKind::Telegram;
        edit.conversation.mode = Mode::ThreadEdit;
        let mut thread = edit.clone();
        thread.name = "thread".into();
        thread.conversation.mode = Mode::Thread;
        let table = RouteTable::per_channel(vec![edit, thread], renderer());
        let open = event("Merge Request Hook", sample("merge_request__open.json"));
        let mut note = sample("note__merge_request.json");
        note["project"] = open.raw["project"].clone();
        note["merge_request"]["iid"] = open.raw["object_attributes"]["iid"].clone();
        let note = event("Note Hook", note);
        let mut pipeline = sample("pipeline__basic.json");
        pipeline["project"] = open.raw["project"].clone();
        pipeline["merge_request"]["iid"] = open.raw["object_attributes"]["iid"].clone();
        let pipeline = event("Pipeline Hook", pipeline);
        let mut state = ObjectState::of(&open).unwrap_or_default();
        state.approved_by.push(crate::event::state::Person {
            name: "Ann <b>Approver</b>".into(),
            username: Some("ann".into()),
        });
        for ev in [&open, &note, &pipeline] {
            let object = crate::event::state::object_key(ev).unwrap_or_default();
            assert_eq!(conversation_key(ev, &ev.object_key()), object, "{}", ev.key);
            let routing = route_with_state(ev, &table, "t", Some(&state));
            assert_eq!(routing.render_error, None);
            let told: Vec<_> = routing
                .deliveries
                .iter()
                .map(|d| conversation::unwrap(&d.body))
                .collect();
            let [(_, Some(edit)), (body, Some(thread))] = &told[..] else {
                panic!("{told:?}")
            };
            assert_eq!(thread.root, None, "thread: the first message is the root");
            assert_eq!(edit.key, object);
            let root: Value =
                serde_json::from_str(edit.root.as_deref().unwrap_or_default()).unwrap_or_default();
            let text = root["text"].as_str().unwrap_or_default();
            // Telegram's HTML, escaped like every card.
            assert!(
                text.contains("Approved by:</b> Ann &lt;b&gt;Approver"),
                "{text}"
            );
            assert_ne!(edit.root.as_deref(), Some(body.as_str()));
        }
        // Without a state (render, the preview page), the event's own.
        let root_of = |ev: &Event| {
            let routing = route(ev, &table, "t");
            let (_, i) = conversation::unwrap(&routing.deliveries[0].body);
            i.and_then(|i| i.root)
        };
        // A comment's root is the merge request's card (which shows no comment count).
        let root = root_of(&note).unwrap_or_default();
        assert!(root.contains("Merge request !1"), "{root}");
        assert!(root.contains("State:</b> opened"), "{root}");
        assert!(
            !root.contains("commented") && !root.contains("Comments"),
            "{root}"
        );
        // A pipeline of no merge request has a root card of its own; its jobs leave it alone.
        let mut branch = sample("pipeline__basic.json");
        branch["merge_request"] = Value::Null;
        let root = root_of(&event("Pipeline Hook", branch)).unwrap_or_default();
        assert!(root.contains("<b>Status:</b> success"), "{root}");
        assert_eq!(root_of(&event("Job Hook", sample("job__basic.json"))), None);
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
            platforms: Vec::new(),
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
                chats: None,
            };
            assert_eq!(delivered(&table, &repo), want, "{events:?}");
        }
        let table = RouteTable {
            channels: vec![channel("ops", &["repository.update"])],
            routes: vec![route_for(&["*"])],
            chats: None,
        };
        assert_eq!(delivered(&table, &repo), ["ops"]);
    }
}
