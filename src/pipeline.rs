//! The GitLab meaning of the router stage: a stored delivery → a typed event → routed and
//! rendered messages, with the logs and metrics of each outcome.
//!
//! `deliver::router` moves events through the store in arrival order and knows nothing of
//! GitLab; [`Pipeline`] is the [`EventRouter`] `serve` hands it, built on the same
//! `route::route` that `render` and `events replay` use, so a replay or a preview shows exactly
//! what the daemon posts.

use crate::deliver::conversation::Mode;
use crate::deliver::router::{EventRouter, Memory};
use crate::deliver::store::{ChatRule, RoutedEvent, StoredEvent};
use crate::event::state::{self, ObjectState};
use crate::event::{self, Event, Kind};
use crate::metrics::{self, Routed};
use crate::render::{cliq, RenderError};
use crate::route::{self, RouteTable, Routing, SharedRoutes};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Asks GitLab whether a push rewrote its branch. Called from the router stage's thread; an
/// implementation answers within a short timeout and never panics.
pub trait ForceCheck: Send + Sync {
    /// For a push of `project` (id or path) from `before` to `after`: `Some(n)` when `before`
    /// is not an ancestor of `after` (`n` commits of `before` are no longer on the branch),
    /// `Some(0)` for a fast-forward, `None` when GitLab could not say (any failure or timeout).
    fn dropped_commits(&self, project: &str, before: &str, after: &str) -> Option<u64>;
}

/// Routes stored events with the route table in force, and the chats' own rules.
#[derive(Clone)]
pub struct Pipeline {
    routes: SharedRoutes,
    /// `None` without the Cliq extension: chat rules left in the store are not applied.
    chats: Option<ChatOptions>,
    force: Option<std::sync::Arc<dyn ForceCheck>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("chats", &self.chats)
            .field("force_check", &self.force.is_some())
            .finish_non_exhaustive()
    }
}

/// How chats that subscribed themselves (the Cliq extension) are served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatOptions {
    /// Confidential events may reach them (`[cliq_extension] confidential`).
    pub confidential: bool,
    /// The extension's function that a *Mute* button on merge request and issue cards invokes;
    /// `None`: no button.
    pub mute_button: Option<String>,
}

impl Pipeline {
    /// A pipeline over `routes` (reloads of the table take effect for the next event).
    pub fn new(routes: SharedRoutes) -> Pipeline {
        Pipeline {
            routes,
            chats: None,
            force: None,
        }
    }

    /// Also asks `check` about each push of new commits, keying force pushes `push.force`.
    pub fn with_force_check(mut self, check: std::sync::Arc<dyn ForceCheck>) -> Pipeline {
        self.force = Some(check);
        self
    }

    /// The same, serving chats' subscriptions as `chats` says.
    pub fn with_chats(mut self, chats: ChatOptions) -> Pipeline {
        self.chats = Some(chats);
        self
    }

    /// The messages for the chats whose rules take `event`, each with a *Mute* button when
    /// the extension has a function for it.
    fn chat_deliveries(
        &self,
        stored: &StoredEvent,
        event: &Event,
        table: &RouteTable,
        rules: &[ChatRule],
    ) -> Vec<crate::deliver::Delivery> {
        let Some(chats) = self.chats.as_ref().filter(|_| !rules.is_empty()) else {
            return Vec::new();
        };
        let (mut deliveries, error) = route::route_chats(
            event,
            table,
            rules,
            chats.confidential,
            unix_ms(),
            &stored.raw.request_id,
        );
        if let Some(error) = error {
            tracing::error!(event_id = stored.id, request = %stored.raw.request_id, key = %event.key, %error, "template failed; posting a fallback message to the subscribed chats");
        }
        if let (Some(function), Some(subject)) = (&chats.mute_button, route::mute_subject(event)) {
            for d in &mut deliveries {
                d.body = cliq::with_mute_button(&d.body, function, &subject);
            }
        }
        deliveries
    }
}

/// Parses a stored delivery (its body and `X-Gitlab-Event`) into an event.
pub fn parse(stored: &StoredEvent) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_slice(&stored.raw.body)
        .map_err(|e| format!("event {} is not JSON: {e}", stored.id))?;
    event::parse(stored.raw.header("x-gitlab-event"), value)
        .map_err(|e| format!("event {}: {e}", stored.id))
}

/// Routes `event` (stored as `stored`) through `table`, logging a template failure. `state`:
/// the accumulated state of the event's object, for root cards (`None`: the event's own).
pub fn route_event(
    stored: &StoredEvent,
    event: &Event,
    table: &RouteTable,
    state: Option<&ObjectState>,
) -> Routing {
    let routing = route::route_with_state(event, table, &stored.raw.request_id, state);
    if let Some(error) = &routing.render_error {
        let template = match error {
            RenderError::Template { origin, .. } | RenderError::Output { origin, .. } => origin,
        };
        metrics::render_error(template);
        tracing::error!(event_id = stored.id, request = %stored.raw.request_id, key = %event.key, %error, "template failed; posting a fallback message");
    }
    routing
}

impl EventRouter for Pipeline {
    fn route(&self, stored: &StoredEvent, rules: &[ChatRule], memory: &Memory<'_>) -> RoutedEvent {
        let since =
            Duration::from_millis(unix_ms().saturating_sub(stored.received_at).max(0) as u64);
        let request = &stored.raw.request_id;
        let key = stored.raw.dedupe_key.as_deref().unwrap_or("-");
        let mut event = match parse(stored) {
            Ok(e) => e,
            Err(error) => {
                // The receiver checked for one JSON object, so only a changed store gets here.
                tracing::error!(event_id = stored.id, request = %request, idempotency_key = %key, %error, "cannot parse a stored event; not posted");
                return RoutedEvent {
                    event_id: stored.id,
                    request_id: request.clone(),
                    idempotency_key: stored.raw.dedupe_key.clone(),
                    outcome: format!("ignored: {error}"),
                    ..RoutedEvent::default()
                };
            }
        };
        // A finished pipeline is compared with its ref's last finished status, and remembered
        // (in the same transaction as this event's messages, so a restart keeps it).
        let mut remember = Vec::new();
        if let Some((memory_key, status)) = event.ref_status() {
            event.note_ref_status(memory.get(&memory_key).as_deref());
            remember.push((memory_key, status));
        }
        if let (Some(check), Some((project, before, after))) = (&self.force, event.push_range()) {
            // Any failure leaves a plain push.
            if let Some(n) = check
                .dropped_commits(&project, &before, &after)
                .filter(|n| *n > 0)
            {
                event.mark_force_push(n);
            }
        }
        let known = !matches!(event.kind, Kind::Unknown(_));
        let table = self.routes.get();
        let state = object_state(&event, &table, memory, &mut remember);
        let mut routing = route_event(stored, &event, &table, state.as_ref());
        let chats = self.chat_deliveries(stored, &event, &table, rules);
        if !chats.is_empty() {
            routing.deliveries.extend(chats);
            routing.ignored = None;
        }
        let n = routing.deliveries.len();
        let outcome = match routing.ignored {
            Some(why) => {
                if matches!(why, route::Ignored::NoTemplate | route::Ignored::NoChannel) {
                    tracing::debug!(event_id = stored.id, request = %request, idempotency_key = %key, key = %event.key, reason = why.as_str(), "event ignored");
                } else {
                    tracing::info!(event_id = stored.id, request = %request, idempotency_key = %key, key = %event.key, reason = why.as_str(), "event not posted");
                }
                metrics::event_routed(event.kind.as_str(), known, Routed::Ignored, since);
                format!("ignored: {}", why.as_str())
            }
            None => {
                tracing::info!(event_id = stored.id, request = %request, idempotency_key = %key, key = %event.key, deliveries = n, "queued");
                metrics::event_routed(event.kind.as_str(), known, Routed::Queued, since);
                format!("queued {n}")
            }
        };
        RoutedEvent {
            event_id: stored.id,
            request_id: request.clone(),
            idempotency_key: stored.raw.dedupe_key.clone(),
            kind: event.kind.as_str().to_string(),
            key: event.key.clone(),
            project: event.project.path.clone(),
            outcome,
            deliveries: routing.deliveries,
            memory: remember,
        }
    }
}

/// The accumulated state of `event`'s object with `event` merged in, to be remembered with the
/// event (in `remember`); kept only while a channel edits roots (`thread+edit`), the state's
/// one reader. An object whose state is not remembered (a pipeline of no merge request) gets
/// the state the event alone gives.
fn object_state(
    event: &Event,
    table: &RouteTable,
    memory: &Memory<'_>,
    remember: &mut Vec<(String, String)>,
) -> Option<ObjectState> {
    let edits = table
        .channels
        .iter()
        .any(|c| c.conversation.mode == Mode::ThreadEdit);
    if !edits {
        return None;
    }
    let Some(key) = state::memory_key(event) else {
        return ObjectState::of(event);
    };
    // A value that is not a state (damaged, or from a newer version) starts afresh.
    let mut current = memory
        .get(&key)
        .and_then(|v| ObjectState::from_json(&v))
        .unwrap_or_default();
    current.merge(event);
    remember.push((key, current.to_json()));
    Some(current)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
