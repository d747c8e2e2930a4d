//! The `steward` client side: send one request line to the socket, read one reply line.

use super::protocol::{Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a request got no reply; `NoDaemon` is the one that maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no steward daemon is listening on {}: {source} (start it with `steward run`; if it runs with another config, pass --config FILE or --socket PATH, or set STEWARD_CONTROL__SOCKET)", absolute(path).display())]
    NoDaemon {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("permission denied opening the control socket {path}: {source} (run as root, as steward's user, or as a member of the socket's group; see [control] mode and group)")]
    NoAccess {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to steward on {path} failed: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("steward on {path} sent a reply that is not valid: {message}")]
    BadReply { path: PathBuf, message: String },
}

/// Sends `req` and waits up to `timeout` for the reply (`None`: as long as it takes).
pub fn request(
    socket: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Reply, ClientError> {
    let no_daemon = |source| ClientError::NoDaemon {
        path: socket.to_path_buf(),
        source,
    };
    let io = |source| ClientError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            ClientError::NoAccess {
                path: socket.to_path_buf(),
                source: e,
            }
        } else {
            no_daemon(e)
        }
    })?;
    stream.set_read_timeout(timeout).map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::BadReply {
        path: socket.to_path_buf(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    // A refused client may find the connection closed before its request is sent; the
    // daemon's reply saying why is still there to read.
    let sent = stream.write_all(&line);
    let mut reply = String::new();
    let read = BufReader::new(&stream).read_line(&mut reply);
    if reply.is_empty() {
        sent.map_err(io)?;
    }
    read.map_err(io)?;
    if reply.is_empty() {
        return Err(ClientError::BadReply {
            path: socket.to_path_buf(),
            message: "the daemon closed the connection before replying; it may have stopped or restarted (see its log, then try again)".into(),
        });
    }
    serde_json::from_str(&reply).map_err(|e| ClientError::BadReply {
        path: socket.to_path_buf(),
        message: e.to_string(),
    })
}

/// Sends a long request (a backup with `--wait`, a verify, a restore, a cache clear) and,
/// while it runs, shows its progress on stderr: bytes the daemon's backup jobs have moved, how
/// fast, for how long; or keys a clear has deleted.
pub fn request_with_progress(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let (sock, r) = (socket.to_path_buf(), req.clone());
    let worker = std::thread::spawn(move || request(&sock, &r, None));
    let started = std::time::Instant::now();
    let mut shown = false;
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let line = match req {
            Request::CacheClear { .. } => cache_clear_progress(socket),
            // Replies when done, with its own figures; nothing to poll meanwhile.
            Request::CacheWarmUp { .. } => None,
            _ => backup_progress(socket, started),
        };
        if let Some(line) = line {
            eprint!("\r\x1b[K{line}");
            shown = true;
        }
    }
    if shown {
        eprint!("\r\x1b[K");
    }
    worker.join().unwrap_or_else(|_| {
        Err(ClientError::BadReply {
            path: socket.to_path_buf(),
            message: "the request thread panicked".into(),
        })
    })
}

/// Bytes the daemon's backup jobs have moved so far, how fast, for how long.
fn backup_progress(socket: &Path, started: std::time::Instant) -> Option<String> {
    let reply = request(socket, &Request::BackupJobs, Some(Duration::from_secs(5))).ok()?;
    let bytes: u64 = reply
        .data
        .as_array()
        .map(|jobs| jobs.iter().filter_map(|j| j.get("bytes")?.as_u64()).sum())
        .unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    Some(format!(
        "{} read, {}/s, {} elapsed",
        super::render_fmt::bytes(bytes as f64),
        super::render_fmt::bytes(bytes as f64 / secs.max(0.001)),
        super::render_fmt::duration(secs)
    ))
}

/// Keys the running cache clear has found and deleted so far.
fn cache_clear_progress(socket: &Path) -> Option<String> {
    let reply = request(
        socket,
        &Request::CacheClearJobs,
        Some(Duration::from_secs(5)),
    )
    .ok()?;
    let jobs: Vec<crate::cache::clear::ClearReport> = serde_json::from_value(reply.data).ok()?;
    super::render_cache::clear_progress(&jobs)
}

/// The path as the user should see it in a message: absolute, so that it says where the client
/// looked whatever its working directory.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
