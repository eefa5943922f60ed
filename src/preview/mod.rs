//! The template preview page of `serve` (`[preview] enabled = true`): `GET /preview` lists the
//! bundled samples, the payloads of `preview.fixtures` and the most recent stored events ([`items`]);
//! picking one shows, per channel, the card as Cliq would draw it beside its JSON body, and every
//! template error with its file, line and column. A conversation channel (`thread+edit`) shows
//! the reply it would post and, as `CHANNEL (root card)`, the root card it would keep, rendered
//! from the state the item gives (`render::root`). The page polls [`VERSION_PATH`] and renders
//! again when a template file changes.
//!
//! The sample review reminder (`reminder.hbs`) is listed with the samples and rendered per channel
//! by [`preview_reminder`]. Rendering goes through `route::route`, the path `serve` posts by, with templates compiled
//! afresh from disk whenever their files change (so a broken edit shows its error here, while the
//! daemon keeps its previous templates). The page is plain HTML, CSS and JavaScript built into the
//! binary; its script builds the DOM with `textContent` and `setAttribute` only, follows only
//! `http(s):` links, and every answer carries a Content-Security-Policy without inline script.

pub mod items;

use crate::deliver::durable::DurableOutbox;
use crate::route::{self, RouteTable};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The page.
pub const PAGE_PATH: &str = "/preview";
/// The page's script (its own route: the CSP allows no inline script).
pub const SCRIPT_PATH: &str = "/preview/app.js";
/// The page's style sheet.
pub const STYLE_PATH: &str = "/preview/style.css";
/// The lists of samples, fixtures and stored events (JSON).
pub const ITEMS_PATH: &str = "/preview/items";
/// One item rendered for every channel (JSON; `RENDER_PATH/ID`).
pub const RENDER_PATH: &str = "/preview/render";
/// The templates' version and the newest stored event (JSON), polled by the page.
pub const VERSION_PATH: &str = "/preview/version";

/// The Content-Security-Policy of every answer: same-origin script, style and fetches only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// Compiles the templates from disk: the route table, or every template error (one line each,
/// `file:line:column: reason`).
pub type Loader = dyn Fn() -> Result<RouteTable, Vec<String>> + Send + Sync;
/// A fingerprint of the template files: when it changes, the page renders again.
pub type Fingerprint = dyn Fn() -> u64 + Send + Sync;

/// The templates compiled from the files as they were: the route table, or every error.
pub type Compiled = Arc<Result<RouteTable, Vec<String>>>;

/// What the page's handlers need.
pub struct PreviewState {
    /// Builds the route table from the template files (`serve` hands the function it reloads
    /// with).
    pub load: Box<Loader>,
    /// Fingerprints the template files.
    pub fingerprint: Box<Fingerprint>,
    /// `preview.fixtures`, if given.
    pub fixtures: Option<PathBuf>,
    /// The outbox, whose stored events are listed (read only).
    pub store: Option<DurableOutbox>,
    /// Served on a loopback address: requests must name the host as `localhost` or an IP
    /// address, so that a web site the user visits cannot reach the page through a DNS name
    /// rebound to 127.0.0.1.
    pub local_only: bool,
    /// The table compiled for a fingerprint, reused until the files change.
    compiled: Mutex<Option<(u64, Compiled)>>,
}

impl PreviewState {
    /// A state over these functions and folders.
    pub fn new(
        load: Box<Loader>,
        fingerprint: Box<Fingerprint>,
        fixtures: Option<PathBuf>,
        store: Option<DurableOutbox>,
        local_only: bool,
    ) -> PreviewState {
        PreviewState {
            load,
            fingerprint,
            fixtures,
            store,
            local_only,
            compiled: Mutex::new(None),
        }
    }

    /// The templates as the files are now, compiled once per version.
    fn table(&self) -> (u64, Compiled) {
        let version = (self.fingerprint)();
        let mut cached = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, t)) = cached.as_ref() {
            if *v == version {
                return (version, Arc::clone(t));
            }
        }
        let table = Arc::new((self.load)());
        *cached = Some((version, Arc::clone(&table)));
        (version, table)
    }
}

impl std::fmt::Debug for PreviewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewState")
            .field("fixtures", &self.fixtures)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The page's routes, to merge into `serve`'s router or serve on `preview.listen`.
pub fn router(state: Arc<PreviewState>) -> Router {
    Router::new()
        .route(
            PAGE_PATH,
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            SCRIPT_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            STYLE_PATH,
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(ITEMS_PATH, get(list))
        .route("/preview/render/{item}", get(render))
        .route(VERSION_PATH, get(version))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            local_host,
        ))
        .layer(axum::middleware::map_response(secure))
        .with_state(state)
}

/// Refuses (421) a request to a loopback preview whose `Host` is a DNS name other than
/// `localhost`: a page elsewhere that rebinds its name to 127.0.0.1 gets nothing.
async fn local_host(
    State(state): State<Arc<PreviewState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if state.local_only && !host.is_none_or(is_local_host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "the preview answers to localhost or an IP address only\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// `localhost` or an IP address, with or without a port.
pub fn is_local_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Headers on every answer of the page: the CSP, no sniffing, no caching, no referrer.
async fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Runs blocking work (files, SQLite, rendering) off the async threads.
async fn blocking<T: Send + 'static>(
    state: &Arc<PreviewState>,
    f: impl FnOnce(&PreviewState) -> T + Send + 'static,
) -> Result<T, Response> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response()
        })
}

async fn list(State(state): State<Arc<PreviewState>>) -> Response {
    match blocking(&state, |s| {
        items::list(s.fixtures.as_deref(), s.store.as_ref())
    })
    .await
    {
        Ok(items) => Json(items).into_response(),
        Err(r) => r,
    }
}

/// What [`VERSION_PATH`] answers.
#[derive(Debug, Serialize)]
struct Version {
    /// The template files' fingerprint, in hex.
    templates: String,
    /// The newest stored event id.
    events: i64,
}

async fn version(State(state): State<Arc<PreviewState>>) -> Response {
    match blocking(&state, |s| Version {
        templates: format!("{:016x}", (s.fingerprint)()),
        events: items::newest_event(s.store.as_ref()),
    })
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

/// One channel's message.
#[derive(Debug, Serialize, PartialEq)]
pub struct Card {
    /// The channel (or `preview (TEMPLATE)` for an event no channel takes).
    pub channel: String,
    /// The body as posted.
    pub body: serde_json::Value,
}

/// An item rendered for every channel.
#[derive(Debug, Serialize, Default, PartialEq)]
pub struct Preview {
    /// The templates' version it was rendered with.
    pub templates: String,
    /// The event key (`merge_request.open`).
    pub key: String,
    /// Template errors, `file:line:column: reason`.
    pub errors: Vec<String>,
    /// Why nothing would be posted, if so.
    pub note: Option<String>,
    /// One card per channel.
    pub cards: Vec<Card>,
}

async fn render(State(state): State<Arc<PreviewState>>, Path(item): Path<String>) -> Response {
    let answer = blocking(&state, move |s| {
        if item == items::REMINDER_ITEM {
            let (version, table) = s.table();
            return Ok(preview_reminder(&table, version));
        }
        let event = items::load(&item, s.fixtures.as_deref(), s.store.as_ref())?;
        let (version, table) = s.table();
        Ok::<_, items::ItemError>(preview(&event, &table, version))
    })
    .await;
    match answer {
        Ok(Ok(p)) => Json(p).into_response(),
        Ok(Err(e @ items::ItemError::Unknown(_))) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Ok(Err(e)) => Json(Preview {
            errors: vec![e.to_string()],
            ..Preview::default()
        })
        .into_response(),
        Err(r) => r,
    }
}

/// `event` rendered through `table` as `serve` would post it; an event no channel takes is
/// shown with the first route's templates, as `render` shows it.
pub fn preview(
    event: &crate::event::Event,
    table: &Result<RouteTable, Vec<String>>,
    version: u64,
) -> Preview {
    let mut out = Preview {
        templates: format!("{version:016x}"),
        key: event.key.clone(),
        ..Preview::default()
    };
    let table = match table {
        Ok(t) => t,
        Err(errors) => {
            out.errors = errors.clone();
            return out;
        }
    };
    let routing = route::route(event, table, "preview");
    if let Some(e) = &routing.render_error {
        out.errors.push(e.to_string());
    }
    for d in &routing.deliveries {
        // A conversation channel's message: the reply as posted, and the root card it keeps.
        let (body, conversation) = crate::deliver::conversation::unwrap(&d.body);
        out.cards.push(Card {
            channel: d.channel.clone(),
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        });
        if let Some(root) = conversation.and_then(|c| c.root) {
            out.cards.push(Card {
                channel: format!("{} (root card)", d.channel),
                body: serde_json::from_str(&root).unwrap_or(serde_json::Value::Null),
            });
        }
    }
    if let Some(why) = routing.ignored {
        out.note = Some(format!("nothing would be posted: {}", why.as_str()));
        match table.render_unrouted(event) {
            Some(Ok((name, m))) => out.cards.push(Card {
                channel: format!("preview ({name})"),
                body: serde_json::Value::Object(m.as_map().clone()),
            }),
            Some(Err(e)) => out.errors.push(e.to_string()),
            None => {}
        }
    }
    out
}

/// The sample review reminder ([`crate::render::reminder::sample`]) rendered for every channel
/// with its route's templates, in its chat's shape, as `serve` would post it.
pub fn preview_reminder(table: &Result<RouteTable, Vec<String>>, version: u64) -> Preview {
    let mut out = Preview {
        templates: format!("{version:016x}"),
        key: crate::render::reminder::TEMPLATE.into(),
        ..Preview::default()
    };
    let table = match table {
        Ok(t) => t,
        Err(errors) => {
            out.errors = errors.clone();
            return out;
        }
    };
    let context = crate::render::reminder::sample();
    for c in &table.channels {
        let Some(r) = table
            .routes
            .iter()
            .find(|r| r.config.channels.contains(&c.name))
            .or_else(|| table.routes.first())
        else {
            continue;
        };
        let platform = route::platform_of(c.kind);
        match r.renderer_for(platform).render_reminder(&context) {
            Ok(crate::render::Rendered::Message(m, _)) => out.cards.push(Card {
                channel: c.name.clone(),
                body: serde_json::Value::Object(
                    platform.body(&m, "reminder/reviews").as_map().clone(),
                ),
            }),
            Ok(_) => {}
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_localhost_and_ip_addresses_are_local_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]:8080",
            "::1",
            "192.0.2.7:80",
        ] {
            assert!(is_local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "",
        ] {
            assert!(!is_local_host(bad), "{bad}");
        }
    }
}
