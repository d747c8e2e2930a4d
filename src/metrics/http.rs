//! The HTTP endpoint: `/metrics`, `/health`, `/-/healthy`, `/-/ready`; it only reads stored state,
//! behind optional TLS and basic auth, with bounds on header time and size, connection age and count.

use super::basic_auth::Verdict;
use super::conn_limit::{ConnLimits, Refusal};
use super::security::Security;
use super::Metrics;
use crate::config::MAX_METRICS_CONNECTIONS as MAX_CONNECTIONS;
use crate::model::board::Board;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A client must send its request headers within this long, also between keep-alive
/// requests (slow or idle clients are dropped). A deadline, not an idle timeout: a client
/// that trickles a byte now and then is dropped all the same.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A TLS client must finish its handshake within this long.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is asked to close after this long (after its current response), so that no
/// client holds a slot forever, whatever it does.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// What a response in flight gets to finish once the connection is asked to close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Bytes buffered per connection; request headers larger than this are refused (431).
const MAX_BUF: usize = 16 * 1024;

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
    #[error(transparent)]
    Security(#[from] super::security::SecurityError),
    #[error("cannot start the HTTP thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the HTTP thread stopped without saying why (it panicked); see the log above")]
    ThreadLost,
}

/// What a request may read: the registry, the monitors' last results, and the current guards.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub board: Board,
    /// TLS acceptor and basic-auth users, swapped by reload.
    pub security: watch::Receiver<Arc<Security>>,
}

/// Binds the listener up front, so a taken port fails the start with a clear message. It is a
/// plain socket: each start of the HTTP task registers it with that start's own runtime.
pub fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, HttpError> {
    let bind = || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    bind().map_err(|source| HttpError::Bind { addr, source })
}

/// Serves HTTP on a thread of its own, with a single-threaded runtime, until cancelled: a flood
/// of scrapes then takes at most one core and never delays checks, backups or the control
/// socket, and their work never delays a scrape.
pub async fn serve_on_own_thread(
    listener: &std::net::TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let listener = listener.try_clone().map_err(HttpError::Accept)?;
    // The thread stops with this call, also when the call is dropped instead of cancelled (a
    // task aborted after its grace): no thread outlives the task that started it.
    let thread_cancel = cancel.child_token();
    let _stop_thread = thread_cancel.clone().drop_guard();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("steward-http".into())
        .spawn(move || {
            let _ = done.send(run_runtime(listener, state, thread_cancel));
        })
        .map_err(HttpError::Thread)?;
    result.await.unwrap_or(Err(HttpError::ThreadLost))
}

fn run_runtime(
    listener: std::net::TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Thread)?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).map_err(HttpError::Accept)?;
        serve(listener, state, cancel).await
    })
}

/// Accepts and serves connections until cancelled; then lets the responses in flight finish
/// (within [`CLOSE_GRACE`]), since the runtime they run on ends with this call.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> Result<(), HttpError> {
    let conns = tokio_util::task::TaskTracker::new();
    let served = accept_loop(&listener, &state, &cancel, &conns).await;
    conns.close();
    let _ = tokio::time::timeout(CLOSE_GRACE, conns.wait()).await;
    served
}

async fn accept_loop(
    listener: &TcpListener,
    state: &HttpState,
    cancel: &CancellationToken,
    conns: &tokio_util::task::TaskTracker,
) -> Result<(), HttpError> {
    let limits = ConnLimits::new(MAX_CONNECTIONS, state.metrics.http.open.clone());
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(s) => s,
                // Out of file descriptors and the like: pass it to the supervisor to back off.
                Err(e) if is_fatal(&e) => return Err(HttpError::Accept(e)),
                Err(_) => continue,
            },
        };
        let sec = state.security.borrow().clone();
        let admitted = limits.admit(peer.ip(), sec.max_per_address);
        // The open gauge or a refusal counter moved: this connection's scrape shows it.
        state.metrics.changed();
        let slot = match admitted {
            Ok((slot, evicted)) => {
                if evicted {
                    let refused = &state.metrics.http.refused;
                    refused.with_label_values(&[Refusal::Evicted.label()]).inc();
                }
                slot
            }
            Err(why) => {
                state
                    .metrics
                    .http
                    .refused
                    .with_label_values(&[why.label()])
                    .inc();
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (state, cancel) = (state.clone(), cancel.clone());
        conns.spawn(async move {
            // Closed at once, without the grace, when evicted to make room for another address.
            let evicted = slot.evicted();
            let metrics = state.metrics.clone();
            tokio::select! {
                _ = evicted.cancelled() => {}
                _ = accept_one(stream, peer, state, sec, cancel) => {}
            }
            drop(slot);
            metrics.changed();
        });
    }
}

/// One accepted connection: the TLS handshake (when on) under its bound, then HTTP.
async fn accept_one(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    state: HttpState,
    sec: Arc<Security>,
    cancel: CancellationToken,
) {
    match sec.tls.clone() {
        None => serve_conn(stream, peer.ip(), state, sec, cancel).await,
        Some(acceptor) => {
            let shake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls = tokio::select! {
                _ = cancel.cancelled() => None,
                r = shake => r.ok().and_then(Result::ok),
            };
            match tls {
                Some(tls) => serve_conn(tls, peer.ip(), state, sec, cancel).await,
                None => {
                    state.metrics.http.tls_handshake_failures.inc();
                    state.metrics.changed();
                }
            }
        }
    }
}

/// Serves one (plain or TLS) connection under the header, age and shutdown bounds.
async fn serve_conn<I>(
    io: I,
    peer: IpAddr,
    state: HttpState,
    sec: Arc<Security>,
    cancel: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let (state, sec) = (state.clone(), sec.clone());
        async move { Ok::<_, Infallible>(handle(&state, &sec, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    // Let a response in flight finish, briefly.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}

/// Liveness and readiness stay open, so that probes need no credentials; they tell nothing
/// about PostgreSQL or Redis. Everything else needs them when basic auth is on.
fn is_open(path: &str) -> bool {
    matches!(path, "/-/healthy" | "/-/ready")
}

async fn handle(
    state: &HttpState,
    sec: &Security,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(auth) = &sec.auth {
        if !is_open(req.uri().path()) {
            match auth.check(req.headers().get(AUTHORIZATION), peer).await {
                Verdict::Allowed => {}
                Verdict::Denied => {
                    auth_failure(state, "denied");
                    let mut r = text(
                        StatusCode::UNAUTHORIZED,
                        "authentication required: give the user and password of [metrics] basic_auth_users\n",
                    );
                    r.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"steward\", charset=\"UTF-8\""),
                    );
                    return r;
                }
                Verdict::Busy => {
                    auth_failure(state, "busy");
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many password checks in progress; retry shortly\n",
                    );
                }
            }
        }
    }
    route(state, &req)
}

/// Counts a refused request by basic auth, visible at the next scrape.
fn auth_failure(state: &HttpState, reason: &str) {
    let failures = &state.metrics.http.auth_failures;
    failures.with_label_values(&[reason]).inc();
    state.metrics.changed();
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
            let mut r = Response::new(Full::new(state.metrics.scrape_body()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/health" => {
            let mut h = state.board.health();
            h.backup_dir_problem = state.metrics.backup.dir_problem();
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
