//! HTTP: `POST /hooks/gitlab` (verify, read, check, store the raw delivery, answer),
//! `GET /healthz`, `GET /readyz` and `GET /metrics`, plus the pages `serve` adds
//! ([`AppState::pages`]: the template preview); the listener itself is in [`listen`]
//! (connection limit, timeouts, TLS), who may post in [`verify`].
//!
//! The handler never calls the chat API, and does not parse, route or render either: it stores
//! the delivery as received and answers once that is committed; the router stage does the rest
//! (`deliver::router`, with the pipeline `serve` hands it). Order of checks: the peer's network
//! (403), the token (401, body left unread), the signing headers and timestamp when a signing
//! token is configured (401, body left unread), the declared and actual body size (413), the
//! signature over the raw body and the replay memory (401), one JSON object (400: validated
//! without building a tree), dedupe, commit, 200. Unknown kinds and actions are stored like any
//! other event and ignored by the router stage, because GitLab pauses and then disables hooks
//! that keep failing.

pub mod listen;
pub mod verify;

pub use listen::{ListenOptions, Peer};
pub use verify::{CliqVerifier, Verifier};

use crate::deliver::store::{Ingested, RawEvent, KEPT_HEADERS};
use crate::deliver::{BoxFuture, Outbox, OutboxError};
use crate::metrics::{self, Metrics, Received, Rejected};
use crate::route::{RouteTable, SharedRoutes};
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use verify::SignatureError;

/// Path GitLab posts to.
pub const HOOK_PATH: &str = "/hooks/gitlab";
/// Longest `/readyz` and `/metrics` wait for the outbox's answer.
pub const OUTBOX_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handler needs.
pub struct AppState {
    /// Who may post: accepted tokens and signing keys, replay memory, allowed networks.
    pub verifier: Verifier,
    /// Connection limit, timeouts and TLS of the listener.
    pub listen: ListenOptions,
    /// The Prometheus recorder behind `GET /metrics` (`None`: answered 404).
    pub metrics: Option<Metrics>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Channels, routes and their compiled templates (shared with the router stage); swapped
    /// whole when templates are reloaded.
    pub routes: SharedRoutes,
    /// Where deliveries go.
    pub outbox: Arc<dyn Outbox>,
    /// Fallback request ids for deliveries without GitLab's ids.
    pub counter: AtomicU64,
    /// More routes served beside the webhooks: the preview page when it shares `server.listen`.
    pub pages: Option<Router>,
    /// The Cliq extension's callback (`[cliq_extension]`); `None`: its path answers 404.
    pub cliq: Option<CliqEndpoint>,
}

/// Answers a verified Cliq invocation: the HTTP status and the Cliq message to answer with.
/// (`serve` hands in the extension's commands; the server only verifies and relays.)
pub trait CliqCommands: Send + Sync + 'static {
    /// Answers `invocation` (the parsed body).
    fn invoke<'a>(
        &'a self,
        invocation: &'a serde_json::Value,
    ) -> BoxFuture<'a, (u16, serde_json::Value)>;
}

/// The Cliq extension's callback: where, who may call it, and what answers.
pub struct CliqEndpoint {
    /// Its path (`cliq_extension.path`).
    pub path: String,
    /// The extension's keys and the replay memory.
    pub verifier: CliqVerifier,
    /// What answers a verified invocation.
    pub commands: std::sync::Arc<dyn CliqCommands>,
}

impl AppState {
    /// The current route table (cheap: clones an `Arc`).
    pub fn route_table(&self) -> Arc<RouteTable> {
        self.routes.get()
    }
}

/// Why a request was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The TCP peer is outside `server.allow_networks`.
    #[error("webhooks are not accepted from this address")]
    Forbidden,
    /// `X-Gitlab-Token` missing or wrong.
    #[error("missing or wrong X-Gitlab-Token")]
    Unauthorized,
    /// The Standard-Webhooks signature is missing, wrong, stale or replayed.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// Body larger than `server.max_body_bytes`.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("cannot read body: {0}")]
    Body(String),
    /// Not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// The outbox refused the batch; GitLab should re-send later.
    #[error("cannot queue: {0}")]
    Outbox(#[from] OutboxError),
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match &self {
            RequestError::Forbidden => StatusCode::FORBIDDEN,
            RequestError::Unauthorized | RequestError::Signature(_) => StatusCode::UNAUTHORIZED,
            RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Body(_) | RequestError::Malformed(_) => StatusCode::BAD_REQUEST,
            RequestError::Outbox(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut r = (status, Json(json!({ "error": self.to_string() }))).into_response();
        // Refused before its body was read (or read in full): the server closes the connection,
        // so say so, or a keep-alive client sends its next request on a dead connection.
        if matches!(
            self,
            RequestError::Forbidden | RequestError::Unauthorized | RequestError::TooLarge(_)
        ) {
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        r
    }
}

impl RequestError {
    /// The `reason` label of the rejection metric.
    pub fn reason(&self) -> Rejected {
        match self {
            RequestError::Forbidden => Rejected::Network,
            RequestError::Unauthorized => Rejected::Token,
            RequestError::Signature(SignatureError::Replayed) => Rejected::Replay,
            RequestError::Signature(_) => Rejected::Signature,
            RequestError::TooLarge(_) => Rejected::Size,
            RequestError::Body(_) => Rejected::Body,
            RequestError::Malformed(_) => Rejected::Json,
            RequestError::Outbox(_) => Rejected::Outbox,
        }
    }
}

/// Marks a server that is shutting down (`/readyz` then answers 503).
#[derive(Debug, Clone)]
struct Stopping(CancellationToken);

/// The router with every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    let pages = state.pages.clone();
    let cliq_path = state.cliq.as_ref().map(|c| c.path.clone());
    let mut app = Router::new();
    if let Some(path) = cliq_path {
        app = app.route(&path, post(receive_cliq));
    }
    let app = app
        .route(HOOK_PATH, post(receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    match pages {
        Some(pages) => app.merge(pages),
        None => app,
    }
}

/// Serves on `listener` until `shutdown` fires, then finishes in-flight requests; see
/// [`listen`] for the limits.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let opts = state.listen.clone();
    let app = router(state).layer(Extension(Stopping(shutdown.clone())));
    listen::serve(listener, app, opts, shutdown).await
}

/// Serves `app` (pages on an address of their own, such as `preview.listen`) on `listener` with
/// the same limits and TLS as the webhooks, until `shutdown` fires.
pub async fn run_pages(
    listener: TcpListener,
    app: Router,
    opts: ListenOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listen::serve(listener, app, opts, shutdown).await
}

/// `GET /readyz`: 200 when the outbox commits (a round trip through its writer) and templates
/// are loaded; 503 with the reason otherwise, and while shutting down.
async fn readyz(
    State(state): State<Arc<AppState>>,
    stopping: Option<Extension<Stopping>>,
) -> Response {
    let not_ready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response()
    };
    if stopping.is_some_and(|Extension(s)| s.0.is_cancelled()) {
        return not_ready("shutting down".into());
    }
    match tokio::time::timeout(OUTBOX_PROBE_TIMEOUT, state.outbox.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return not_ready(format!("outbox: {error}")),
        Err(_) => {
            return not_ready(format!(
                "outbox: no answer within {} s",
                OUTBOX_PROBE_TIMEOUT.as_secs()
            ))
        }
    }
    let table = state.route_table();
    let templates = table.renderers().len();
    if templates == 0 && !table.channels.is_empty() {
        return not_ready("templates: not loaded".into());
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ready", "outbox": "ok", "template_sets": templates })),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text; the outbox gauges are refreshed from the store first (at
/// most once a second).
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let Some(m) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are off\n").into_response();
    };
    if m.due_for_refresh() {
        match tokio::time::timeout(OUTBOX_PROBE_TIMEOUT, state.outbox.stats()).await {
            Ok(Ok(stats)) => {
                let now = unix_ms();
                // Channels with nothing stored have no row: their gauges go to zero.
                let idle = state
                    .route_table()
                    .channels
                    .iter()
                    .filter(|c| !stats.iter().any(|s| s.channel == c.name))
                    .map(|c| metrics::OutboxGauge {
                        channel: c.name.clone(),
                        pending: 0,
                        dead: 0,
                        oldest_age: Duration::ZERO,
                    })
                    .collect::<Vec<_>>();
                let gauges: Vec<metrics::OutboxGauge> = stats
                    .into_iter()
                    .map(|c| metrics::OutboxGauge {
                        oldest_age: Duration::from_millis(
                            c.oldest_created_at
                                .map_or(0, |t| now.saturating_sub(t).max(0) as u64),
                        ),
                        channel: c.channel,
                        pending: c.pending + c.retrying,
                        dead: c.dead,
                    })
                    .chain(idle)
                    .collect();
                metrics::outbox(&gauges);
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the outbox for /metrics"),
            Err(_) => tracing::warn!("the outbox did not answer in time for /metrics"),
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn receive(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    // The webhook-id remembered against replays, forgotten again if the request fails after
    // all, so that GitLab's re-send is not taken for a replay.
    let mut remembered: Option<String> = None;
    match accept(&state, req, &mut remembered).await {
        Ok((outcome, response)) => {
            metrics::webhook_received(outcome, started.elapsed());
            response
        }
        Err(error) => {
            if let Some(id) = remembered {
                state.verifier.forget(&id);
            }
            metrics::webhook_rejected(error.reason(), started.elapsed());
            error.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    req: Request,
    remembered: &mut Option<String>,
) -> Result<(Received, Response), RequestError> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    // Ids for logs, known before anything is read: GitLab's per-request UUID and its
    // Idempotency-Key (the same across re-sends).
    let uuid = header(headers, "x-gitlab-webhook-uuid").unwrap_or("-");
    let idempotency_key = header(headers, "idempotency-key").unwrap_or("-");
    if !state.verifier.network_ok(peer.map(|p| p.ip())) {
        tracing::warn!(peer = ?peer, request = %uuid, idempotency_key = %idempotency_key, "refused a webhook from outside server.allow_networks");
        return Err(RequestError::Forbidden);
    }
    if !state.verifier.token_ok(header(headers, "x-gitlab-token")) {
        tracing::warn!(peer = ?peer, request = %uuid, idempotency_key = %idempotency_key, "refused a webhook with a missing or wrong X-Gitlab-Token");
        return Err(RequestError::Unauthorized);
    }
    let now_secs = unix_ms() / 1000;
    let signed = if state.verifier.signature_required() {
        match state
            .verifier
            .signed_headers(|name| header(headers, name), now_secs)
        {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::warn!(peer = ?peer, request = %uuid, idempotency_key = %idempotency_key, %error, "refused a webhook: bad signature headers");
                return Err(error.into());
            }
        }
    } else {
        None
    };
    let bytes = read_body(body, headers, state.max_body_bytes).await?;
    if let Some(signed) = &signed {
        let checked = state
            .verifier
            .verify(signed, &bytes)
            .and_then(|()| state.verifier.remember(&signed.id, now_secs));
        if let Err(error) = checked {
            tracing::warn!(peer = ?peer, request = %uuid, idempotency_key = %idempotency_key, webhook_id = %signed.id, %error, "refused a webhook: signature");
            return Err(error.into());
        }
        *remembered = Some(signed.id.clone());
    }
    if let Err(error) = one_json_object(&bytes) {
        tracing::warn!(peer = ?peer, request = %uuid, idempotency_key = %idempotency_key, %error, "refused a webhook: not one JSON object");
        return Err(error);
    }
    let gitlab_event = header(headers, "x-gitlab-event");
    let dedupe_key = header(headers, "idempotency-key")
        .or_else(|| header(headers, "x-gitlab-webhook-uuid"))
        .map(str::to_string)
        .unwrap_or_else(|| body_hash(gitlab_event, &bytes));
    let request_id = header(headers, "x-gitlab-webhook-uuid")
        .or_else(|| header(headers, "idempotency-key"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", state.counter.fetch_add(1, Ordering::Relaxed)));
    let kept = KEPT_HEADERS
        .iter()
        .filter_map(|name| header(headers, name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    let raw = RawEvent {
        request_id,
        dedupe_key: Some(dedupe_key),
        headers: kept,
        body: bytes.to_vec(),
    };
    match state.outbox.ingest(raw).await {
        Ok(Ingested::Accepted(id)) => {
            tracing::debug!(request = %uuid, idempotency_key = %idempotency_key, event_id = id, "accepted");
            let body = json!({ "status": "accepted", "event_id": id });
            Ok((
                Received::Accepted,
                (StatusCode::OK, Json(body)).into_response(),
            ))
        }
        Ok(Ingested::Duplicate) => {
            tracing::info!(request = %uuid, idempotency_key = %idempotency_key, "duplicate delivery; already accepted once");
            let body = json!({ "status": "duplicate" });
            Ok((
                Received::Duplicate,
                (StatusCode::OK, Json(body)).into_response(),
            ))
        }
        Err(error) => {
            tracing::error!(request = %uuid, idempotency_key = %idempotency_key, %error, "cannot store the delivery; GitLab will re-send");
            Err(error.into())
        }
    }
}

/// `POST /hooks/cliq`: the body within the same limits as GitLab's, then its signature (401),
/// one JSON object (400), its `timestamp` (401) and the replay memory (401), then the
/// extension's answer. Nothing is read as a command before the signature verified.
async fn receive_cliq(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(cliq) = &state.cliq else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (parts, body) = req.into_parts();
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!(reason = %why, "refused a Cliq invocation");
        (status, Json(json!({ "error": why }))).into_response()
    };
    let bytes = match read_body(body, &parts.headers, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = cliq
        .verifier
        .verify(header(&parts.headers, "x-cliq-signature"), &bytes)
    {
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    if let Err(e) = one_json_object(&bytes) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let invocation: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let now = unix_ms();
    let checked = cliq
        .verifier
        .fresh(invocation["timestamp"].as_i64(), now)
        .and_then(|()| cliq.verifier.remember(&bytes, now));
    if let Err(e) = checked {
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let (status, answer) = cliq.commands.invoke(&invocation).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, Json(answer)).into_response()
}

/// Checks, without building a tree, that `bytes` are exactly one JSON object.
fn one_json_object(bytes: &[u8]) -> Result<(), RequestError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| RequestError::Malformed(e.to_string()))?;
    let what = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => return Ok(()),
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    };
    Err(RequestError::Malformed(format!(
        "payload is a JSON {what}, not an object"
    )))
}

/// Reads at most `limit` bytes; a larger declared or actual body is refused with 413.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<axum::body::Bytes, RequestError> {
    let declared = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RequestError::TooLarge(limit));
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(RequestError::TooLarge(limit));
                }
                source = s.source();
            }
            Err(RequestError::Body(e.to_string()))
        }
    }
}

/// A stable id for a delivery without GitLab's ids: the event header and body, hashed.
fn body_hash(gitlab_event: Option<&str>, body: &[u8]) -> String {
    let digest = crate::signing::sha256(&[gitlab_event.unwrap_or_default().as_bytes(), &[0], body]);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
