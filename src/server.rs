//! HTTP: `POST /hooks/gitlab` (verify, read, parse, route, commit to the outbox, answer) and
//! `GET /healthz`.
//!
//! The handler never calls the chat API. Order of checks: the token (401, body left unread), the
//! declared and actual body size (413), JSON (400), then the event, which never fails for a JSON
//! object: unknown kinds and actions are answered 200 and logged at debug, because GitLab pauses
//! and then disables hooks that keep failing.

use crate::config::Secret;
use crate::deliver::{Batch, Enqueued, Outbox, OutboxError};
use crate::event;
use crate::route::{self, Ignored, RouteTable};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Path GitLab posts to.
pub const HOOK_PATH: &str = "/hooks/gitlab";

/// What the handler needs.
pub struct AppState {
    /// The shared secret expected in `X-Gitlab-Token`.
    pub secret_token: Secret,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Channels, routes and their compiled templates; swapped whole when templates are reloaded.
    pub routes: RwLock<Arc<RouteTable>>,
    /// Where deliveries go.
    pub outbox: Arc<dyn Outbox>,
    /// Fallback request ids for deliveries without GitLab's ids.
    pub counter: AtomicU64,
}

impl AppState {
    /// The current route table (cheap: clones an `Arc`).
    pub fn route_table(&self) -> Arc<RouteTable> {
        Arc::clone(&self.routes.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the route table (template reload); requests in flight finish with the old one.
    pub fn replace_routes(&self, table: RouteTable) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
}

/// Why a request was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// `X-Gitlab-Token` missing or wrong.
    #[error("missing or wrong X-Gitlab-Token")]
    Unauthorized,
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
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Body(_) | RequestError::Malformed(_) => StatusCode::BAD_REQUEST,
            RequestError::Outbox(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The router with both endpoints.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(HOOK_PATH, post(receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` fires, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn token_ok(expected: &Secret, got: Option<&str>) -> bool {
    got.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.expose().as_bytes())))
}

async fn receive(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, RequestError> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if !token_ok(&state.secret_token, header(headers, "x-gitlab-token")) {
        tracing::warn!("refused a webhook with a missing or wrong X-Gitlab-Token");
        return Err(RequestError::Unauthorized);
    }
    let bytes = read_body(body, headers, state.max_body_bytes).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let gitlab_event = header(headers, "x-gitlab-event");
    let event =
        event::parse(gitlab_event, value).map_err(|e| RequestError::Malformed(e.to_string()))?;

    let dedupe_key = header(headers, "idempotency-key")
        .or_else(|| header(headers, "x-gitlab-webhook-uuid"))
        .map(str::to_string)
        .unwrap_or_else(|| body_hash(gitlab_event, &bytes));
    let request_id = header(headers, "x-gitlab-webhook-uuid")
        .or_else(|| header(headers, "idempotency-key"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", state.counter.fetch_add(1, Ordering::Relaxed)));

    let table = state.route_table();
    let routing = route::route(&event, &table, &request_id);
    if let Some(error) = &routing.render_error {
        tracing::error!(request = %request_id, key = %event.key, %error, "template failed; posting a fallback message");
    }
    if let Some(why) = routing.ignored {
        let level_debug = matches!(why, Ignored::NoTemplate | Ignored::NoChannel);
        if level_debug {
            tracing::debug!(request = %request_id, key = %event.key, reason = why.as_str(), "event ignored");
        } else {
            tracing::info!(request = %request_id, key = %event.key, reason = why.as_str(), "event not posted");
        }
        return Ok(answer("ignored", &event.key, 0, Some(why.as_str())));
    }
    let n = routing.deliveries.len();
    let outcome = state
        .outbox
        .enqueue(Batch {
            dedupe_key: Some(dedupe_key),
            request_id: request_id.clone(),
            deliveries: routing.deliveries,
        })
        .await;
    match outcome {
        Ok(Enqueued::Accepted) => {
            tracing::info!(request = %request_id, key = %event.key, deliveries = n, "queued");
            Ok(answer("queued", &event.key, n, None))
        }
        Ok(Enqueued::Duplicate) => {
            tracing::info!(request = %request_id, key = %event.key, "duplicate delivery; already queued once");
            Ok(answer("duplicate", &event.key, 0, None))
        }
        Err(error) => {
            tracing::error!(request = %request_id, key = %event.key, %error, "cannot queue; GitLab will re-send");
            Err(error.into())
        }
    }
}

fn answer(status: &str, key: &str, deliveries: usize, reason: Option<&str>) -> Response {
    let mut body = json!({ "status": status, "event": key, "deliveries": deliveries });
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    (StatusCode::OK, Json(body)).into_response()
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
    let mut h = Sha256::new();
    h.update(gitlab_event.unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(body);
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
