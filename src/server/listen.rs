//! The listener: a bounded accept loop serving HTTP/1.1 (optionally over TLS) with hyper.
//!
//! Why not `axum::serve`: it has no connection limit and no timeouts, so a client that sends its
//! headers or body one byte at a time (slow loris) could hold connections forever. Here:
//! - at most `max_connections` are open at once (a semaphore permit is taken before `accept`,
//!   so extra clients wait in the kernel's backlog instead of costing memory);
//! - a client must send a request's headers within `request_timeout` (hyper's header read
//!   timeout, which also closes idle keep-alive connections), and each request must be read and
//!   answered within `request_timeout` too, else it is answered `408` and the connection closed;
//! - a TLS handshake must finish within `request_timeout`;
//! - on shutdown no new connection is accepted, idle ones are closed, requests in flight finish.
//!
//! Every request carries the TCP peer's address as a [`Peer`] extension (for
//! `server.allow_networks`).

use crate::config::{ServerConfig, TlsFiles};
use crate::metrics::{self, Rejected};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Wait after a failed `accept` (e.g. out of file descriptors) before trying again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest the listener waits for open connections at shutdown, beyond the request timeout.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The TCP peer of a request (not a proxy's `X-Forwarded-For`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Limits and TLS of the listener.
#[derive(Clone)]
pub struct ListenOptions {
    /// Longest a client may take to send a request's headers, and to send its body and be
    /// answered.
    pub request_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Serve HTTPS with this, when set.
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `server.tls_cert_file` is unreadable or holds no certificate.
    #[error("server.tls_cert_file: {0}")]
    Cert(String),
    /// `server.tls_key_file` is unreadable or holds no private key.
    #[error("server.tls_key_file: {0}")]
    Key(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("server.tls_cert_file / tls_key_file: {0}")]
    Config(String),
}

impl ListenOptions {
    /// From `[server]`; reads the TLS files when configured.
    pub fn from_config(server: &ServerConfig) -> Result<ListenOptions, TlsError> {
        Ok(ListenOptions {
            request_timeout: server.request_timeout,
            max_connections: server.max_connections,
            tls: server.tls.as_ref().map(tls_acceptor).transpose()?,
        })
    }
}

/// A TLS acceptor (rustls with the ring provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN) for the
/// PEM certificate chain and key in `files`.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(format!(
            "{}: no certificate",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key(format!("{}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `shutdown`, then lets open ones finish (bounded).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ListenOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut warned_full = false;
    loop {
        if permits.available_permits() == 0 && !warned_full {
            tracing::warn!(
                max_connections = opts.max_connections,
                "connection limit reached; new clients wait"
            );
        }
        warned_full = permits.available_permits() == 0;
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    if !is_connection_error(&error) {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let opts = opts.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            metrics::connections(1.0);
            match &opts.tls {
                None => connection(stream, peer, app, opts.request_timeout, shutdown).await,
                Some(tls) => {
                    match tokio::time::timeout(opts.request_timeout, tls.accept(stream)).await {
                        Ok(Ok(s)) => connection(s, peer, app, opts.request_timeout, shutdown).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            metrics::connections(-1.0);
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    // Every request is bounded by the request timeout and idle connections close at once.
    let limit = opts.request_timeout + CLOSE_GRACE;
    if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after {limit:?}; closing them");
    }
    Ok(())
}

/// Errors of one connection attempt, not of the listener (as in hyper's and axum's loops).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until the client leaves, a timeout, or shutdown (after the request in
/// flight).
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    request_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let app = app.clone();
        async move {
            let started = Instant::now();
            let is_hook = req.uri().path() == super::HOOK_PATH;
            let response = match tokio::time::timeout(request_timeout, app.oneshot(req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::warn!(%peer, timeout_secs = request_timeout.as_secs(), "request not read and answered in time; closing the connection");
                    if is_hook {
                        metrics::webhook_rejected(Rejected::Timeout, started.elapsed());
                    }
                    timed_out()
                }
            };
            Ok::<Response, Infallible>(response)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

fn timed_out() -> Response {
    let mut r = (
        StatusCode::REQUEST_TIMEOUT,
        Json(json!({ "error": "request not received in time" })),
    )
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}
