//! The control socket server: binds the Unix socket with its mode, reads NDJSON requests with a
//! line bound, answers each, and re-creates the socket if someone removes it.

use super::dispatch::Dispatcher;
use super::lines::{BoundedLines, Line};
use super::protocol::{parse_request, Reply, MAX_LINE};
use crate::config::ControlConfig;
use crate::supervisor::{TaskError, TaskResult};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a client may stay silent before its connection is closed (half-open clients).
const IDLE: Duration = Duration::from_secs(30);
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 1024;

/// Why the socket could not be set up or kept.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "another steward is already listening on {0}; stop it or set a different [control] socket"
    )]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}: {source} (check [control] socket and that its directory is writable)")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {0} was removed or replaced")]
    Removed(PathBuf),
}

/// A bound socket and the inode that proves the file at its path is still ours.
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

impl Bound {
    /// The inode of the socket file.
    pub fn ino(&self) -> u64 {
        self.ino
    }
}

/// Binds the socket: refuses if a live daemon answers there, clears a stale file, and gives
/// the socket its mode before it appears under its name (bind to a temporary name, chmod, rename).
pub fn bind(cfg: &ControlConfig) -> Result<Bound, ControlError> {
    let path = cfg.socket.clone();
    let err = |source| ControlError::Bind {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ControlError::InUse(path));
        }
        std::fs::remove_file(&path).map_err(err)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(err)?;
    let done = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(cfg.mode_bits()))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .and_then(|_| std::fs::metadata(&path));
    match done {
        Ok(meta) => Ok(Bound {
            listener,
            path,
            ino: meta.ino(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(err(e))
        }
    }
}

/// Removes the socket file if it is still the one we created.
pub fn remove_if_ours(path: &Path, ino: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(path);
    }
}

/// The control task: serves on the pre-bound socket the first time, binds anew after a restart.
pub struct ControlServer {
    pub dispatcher: Arc<Dispatcher>,
    /// Socket bound at start-up, taken by the first run.
    pub first: Mutex<Option<Bound>>,
    /// Inode of the socket currently served, for cleanup at shutdown.
    pub current: Arc<Mutex<Option<(PathBuf, u64)>>>,
}

impl ControlServer {
    /// One run of the task: serve until cancelled, fail if the socket file disappears.
    pub async fn run(self: Arc<Self>, cfg: ControlConfig, cancel: CancellationToken) -> TaskResult {
        let first = self.first.lock().ok().and_then(|mut g| g.take());
        let bound = match first {
            Some(b) => b,
            None => bind(&cfg).map_err(TaskError::from_display)?,
        };
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some((bound.path.clone(), bound.ino));
        }
        let result = self.serve(&bound, &cancel).await;
        if cancel.is_cancelled() {
            remove_if_ours(&bound.path, bound.ino);
        }
        result.map_err(TaskError::from_display)
    }

    async fn serve(&self, bound: &Bound, cancel: &CancellationToken) -> Result<(), ControlError> {
        let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = check.tick() => {
                    let same = std::fs::metadata(&bound.path).is_ok_and(|m| m.ino() == bound.ino);
                    if !same {
                        return Err(ControlError::Removed(bound.path.clone()));
                    }
                }
                accepted = bound.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let Ok(permit) = limit.clone().acquire_owned().await else { continue };
                    let d = self.dispatcher.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve_client(stream, &d) => {}
                            _ = cancel.cancelled() => {}
                        }
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Answers requests on one connection until the client closes it or goes quiet.
async fn serve_client(stream: UnixStream, d: &Dispatcher) {
    let (read, mut write) = stream.into_split();
    let mut lines = BoundedLines::new(read, MAX_LINE);
    loop {
        let next = match tokio::time::timeout(IDLE, lines.next()).await {
            Err(_) | Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(line)) => line,
        };
        let reply = match next {
            Line::Text(line) if line.trim().is_empty() => continue,
            Line::Text(line) => match parse_request(&line) {
                Ok(req) => d.handle(req).await,
                Err(msg) => Reply::error(msg),
            },
            Line::TooLong | Line::Eof => Reply::error(format!(
                "request line longer than {MAX_LINE} bytes; discarded"
            )),
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        match tokio::time::timeout(IDLE, write.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
