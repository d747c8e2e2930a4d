//! The control socket server: binds the Unix socket with its mode and group, checks each
//! peer's credentials against `[control]`'s lists, reads NDJSON requests with a line bound,
//! answers each (admin commands only once their audit entry can be written, and with the entry
//! on disk before the reply), and re-creates the socket if someone removes it.

use super::access::{self, Level, Peer, Policy};
use super::dispatch::Dispatcher;
use super::lines::{BoundedLines, Line};
use super::protocol::{parse_request, Access, Reply, Request, MAX_LINE};
use crate::audit::{Entry, Outcome};
use crate::config::ControlConfig;
use crate::supervisor::{TaskError, TaskResult};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a client may stay silent before its connection is closed (half-open clients).
const IDLE: Duration = Duration::from_secs(30);
/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 1024;
/// How long a refused peer has to send the request it came for (recorded in the audit log).
const REFUSED_READ: Duration = Duration::from_secs(2);

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
    #[error("cannot give the control socket {path} the group {group:?}: {source} (steward must run as root or as a member of that group; check [control] group)")]
    Group {
        path: PathBuf,
        group: String,
        source: std::io::Error,
    },
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
/// the socket its mode and group before it appears under its name (bind to a temporary name,
/// chmod, chown, rename).
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
    // Created with steward's own group; chown only to another one (under the systemd unit's
    // syscall filter chown is refused, so the unit's Group= is the way to pick the group there).
    let own_gid = std::fs::metadata(&tmp).map(|m| m.gid()).ok();
    if let Some(gid) = cfg.group_id().filter(|g| Some(*g) != own_gid) {
        if let Err(source) = std::os::unix::fs::chown(&tmp, None, Some(gid)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ControlError::Group {
                path,
                group: cfg.group.clone().unwrap_or_default(),
                source,
            });
        }
    }
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

/// Answers requests on one connection until the client closes it, goes quiet, or is refused.
async fn serve_client(stream: UnixStream, d: &Dispatcher) {
    let peer = match Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a control client's credentials; closing");
            let (_, mut write) = stream.into_split();
            let msg =
                format!("access denied: steward cannot read this connection's credentials ({e})");
            send(&mut write, &Reply::error(msg)).await;
            return;
        }
    };
    let level = Policy::current(&d.config.borrow().control).level(&peer);
    let (read, mut write) = stream.into_split();
    let mut lines = BoundedLines::new(read, MAX_LINE);
    if level == Level::Nothing {
        let first = match tokio::time::timeout(REFUSED_READ, lines.next()).await {
            Ok(Ok(Line::Text(line))) => parse_request(&line).ok(),
            _ => None,
        };
        let msg = access::refused_message(&peer);
        deny(d, &peer, first.as_ref(), &msg).await;
        send(&mut write, &Reply::error(msg)).await;
        return;
    }
    loop {
        let next = match tokio::time::timeout(IDLE, lines.next()).await {
            Err(_) | Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(line)) => line,
        };
        let reply = match next {
            Line::Text(line) if line.trim().is_empty() => continue,
            Line::Text(line) => match parse_request(&line) {
                Ok(req) if req.access() == Access::Read => d.handle(req).await,
                Ok(req) if !level.allows(Access::Admin) => {
                    let msg = access::not_admin_message(&peer, req.name());
                    deny(d, &peer, Some(&req), &msg).await;
                    send(&mut write, &Reply::error(msg)).await;
                    return;
                }
                Ok(req) => admin(d, &peer, req).await,
                Err(msg) => Reply::error(msg),
            },
            Line::TooLong | Line::Eof => Reply::error(format!(
                "request line longer than {MAX_LINE} bytes; discarded"
            )),
        };
        if !send(&mut write, &reply).await {
            return;
        }
    }
}

/// Runs an admin command only if its audit entry can be written, and writes the entry (with
/// the outcome) before the reply goes out.
async fn admin(d: &Dispatcher, peer: &Peer, req: Request) -> Reply {
    let started = Instant::now();
    let (name, args) = (req.name(), req.arguments());
    let ready = if req.announces_start() {
        let start = Entry::new("client", name, args.clone(), started)
            .peer(peer.id())
            .outcome(Outcome::Started, None);
        d.audit.record(start).await
    } else {
        d.audit.ready().await
    };
    if let Err(e) = ready {
        tracing::error!(command = name, uid = peer.uid, error = %e, "admin command refused: the audit log cannot be written");
        return Reply::error(format!("{name} refused, nothing was done: {e}"));
    }
    let reply = d.handle(req).await;
    let outcome = if reply.ok {
        Outcome::Ok
    } else {
        Outcome::Error
    };
    let entry = Entry::new("client", name, args, started)
        .peer(peer.id())
        .outcome(outcome, reply.error.clone());
    match d.audit.record(entry).await {
        Ok(()) => reply,
        Err(e) => Reply {
            ok: false,
            error: Some(format!(
                "{name} was carried out (outcome: {}) but its audit entry could not be written: {e}",
                if reply.ok { "ok" } else { "error" }
            )),
            data: reply.data,
        },
    }
}

/// Records a refused request (or connection, when no request came) in the audit log.
async fn deny(d: &Dispatcher, peer: &Peer, req: Option<&Request>, msg: &str) {
    tracing::warn!(uid = peer.uid, gid = peer.gid, pid = ?peer.pid, command = req.map(Request::name), "control request denied");
    let (name, args) = match req {
        Some(r) => (r.name(), r.arguments()),
        None => ("connect", serde_json::Value::Null),
    };
    let entry = Entry::new("client", name, args, Instant::now())
        .peer(peer.id())
        .outcome(Outcome::Denied, Some(msg.to_string()));
    // Bounded per uid; a failure is logged and counted by the writer; refused either way.
    d.audit.record_denied(entry, peer.uid).await;
}

/// Writes one reply line; false when the client is gone or stuck.
async fn send(write: &mut OwnedWriteHalf, reply: &Reply) -> bool {
    let mut out = serde_json::to_vec(reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    matches!(
        tokio::time::timeout(IDLE, write.write_all(&out)).await,
        Ok(Ok(()))
    )
}
