//! The HTTP endpoint: `/metrics`, `/health`, `/-/healthy`, `/-/ready`; it only reads stored state.

use super::Metrics;
use crate::monitor::Board;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections served at once; Prometheus needs one or two, this only bounds abuse.
const MAX_CONNECTIONS: usize = 512;
/// A client must send its request headers within this long (slow clients are dropped).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the HTTP task stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}; choose another [metrics] listen address or stop what uses it")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("accepting HTTP connections failed: {0}")]
    Accept(#[source] std::io::Error),
    #[error("the HTTP connection limit was closed")]
    Closed,
}

/// What a request may read: the registry and the monitors' last results.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub board: Board,
}

/// Binds the listener up front, so a taken port fails the start with a clear message.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Accepts and serves connections until cancelled.
pub async fn serve(
    listener: Arc<TcpListener>,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            p = limit.clone().acquire_owned() => p.map_err(|_| HttpError::Closed)?,
        };
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(s) => s,
                // Out of file descriptors and the like: pass it to the supervisor to back off.
                Err(e) if is_fatal(&e) => return Err(HttpError::Accept(e)),
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return drop(permit),
                _ = cancel.cancelled() => {}
            }
            // Let a response in flight finish, briefly.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HEADER_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

fn is_fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

fn route(state: &HttpState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(state.metrics.render())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/health" => {
            let h = state.board.health();
            let code = if h.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_vec(&h).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = code;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        "/-/healthy" => text(StatusCode::OK, "steward is healthy\n"),
        "/-/ready" if state.board.ready() => text(StatusCode::OK, "steward is ready\n"),
        "/-/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "steward is starting: first checks not done\n",
        ),
        "/" => text(
            StatusCode::OK,
            "steward: see /metrics, /health, /-/healthy, /-/ready\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics or /health\n",
        ),
    }
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
