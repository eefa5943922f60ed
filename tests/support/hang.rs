//! A GitLab that is not there, for the Cliq extension's deadline tests, and where the late
//! answers go:
//! - [`Hanging`]: a loopback listener that accepts connections and never answers (bounded:
//!   it holds at most [`MAX_HELD`] connections, and stops on drop);
//! - [`closed_port`]: a loopback address nothing listens on (connections are refused);
//! - [`ResponseUrls`]: Cliq's response URLs (`/v2/extensions/{ext}/responses/{id}`), recording
//!   each follow-up by its id, and its chat endpoint, answering 204.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most connections a [`Hanging`] GitLab accepts and holds.
pub const MAX_HELD: usize = 2_000;

/// A GitLab that accepts connections and never answers.
pub struct Hanging {
    addr: SocketAddr,
    accepted: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hanging {
    /// Starts on 127.0.0.1.
    pub async fn start() -> Hanging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            // Held, never read nor written, until the task is aborted.
            let mut held = Vec::new();
            for _ in 0..2 * MAX_HELD {
                if held.len() >= MAX_HELD {
                    break;
                }
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                held.push(stream);
                *count.lock().unwrap() += 1;
            }
            std::future::pending::<()>().await;
        });
        Hanging {
            addr,
            accepted,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

/// `http://127.0.0.1:PORT` with nothing listening on PORT (free a moment ago).
pub fn closed_port() -> String {
    format!("http://127.0.0.1:{}", super::free_port())
}

/// Bodies posted to each response URL, by its id.
type Posted = Arc<Mutex<HashMap<String, Vec<Value>>>>;

/// Cliq's response URLs and chat endpoint.
pub struct ResponseUrls {
    addr: SocketAddr,
    seen: Posted,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResponseUrls {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn response(
    State(seen): State<Posted>,
    UrlPath((_ext, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().entry(id).or_default().push(body);
    StatusCode::NO_CONTENT
}

impl ResponseUrls {
    /// Starts on 127.0.0.1.
    pub async fn start() -> ResponseUrls {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let app = Router::new()
            .route("/v2/extensions/{ext}/responses/{id}", post(response))
            .route(
                "/api/v2/chats/{chat}/message",
                post(|| async { StatusCode::NO_CONTENT }),
            )
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ResponseUrls { addr, seen, task }
    }

    /// The base URL, the extension's `api_url`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new response URL, and its id.
    pub fn new_url(&self) -> (String, String) {
        let id = super::unique("r");
        (
            format!(
                "{}/v2/extensions/2305843009213696807/responses/{id}",
                self.base()
            ),
            id,
        )
    }

    /// The bodies posted to the response URL `id`.
    pub fn posted(&self, id: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (polling every 25 ms) for the first body posted to `id`; fails after `timeout`.
    pub async fn wait_for(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.posted(id).into_iter().next() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "nothing posted to response URL {id} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
