//! The control socket server: binds the Unix socket with its mode and group, accepts
//! connections and admits each by its peer's credentials into a slot (capped per uid for
//! non-admins, some kept for admins) or refuses it with the reason, hands admitted ones to
//! [`connection`], and re-creates the socket if someone removes it.

use super::access::{Level, Peer, Policy};
use super::connection::{self, Admitted};
use super::dispatch::Dispatcher;
use super::fd_limit;
use super::protocol::Reply;
use super::slots::{Refusal, RefusalLog, Slots, MAX_CONNECTIONS};
use crate::config::ControlConfig;
use crate::supervisor::{TaskError, TaskResult};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// How long the accept loop pauses after a failed accept (such as running out of files).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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
    fd_limit::raise();
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
        let slots = Slots::new(capacity());
        let refusals = RefusalLog::default();
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
                accepted = bound.listener.accept() => match accepted {
                    Ok((stream, _)) => self.admit(stream, &slots, &refusals, cancel),
                    Err(e) => {
                        // Out of file descriptors, most likely: let connections end first.
                        tracing::warn!(error = %e, "cannot accept a control connection");
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                        }
                    }
                },
            }
        }
    }

    /// Reads the peer's credentials at once, then serves it in a slot of its own or refuses
    /// it with the reason; never waits, so an admin is never queued behind others.
    fn admit(
        &self,
        stream: UnixStream,
        slots: &Slots,
        refusals: &RefusalLog,
        cancel: &CancellationToken,
    ) {
        let peer = match Peer::of(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a control client's credentials; closing");
                let msg = format!(
                    "access denied: steward cannot read this connection's credentials ({e})"
                );
                write_now(stream, &Reply::error(msg));
                return;
            }
        };
        let cfg = self.dispatcher.config.borrow().control.clone();
        let level = Policy::current(&cfg).level(&peer);
        let slot = match slots.take(peer.uid, level == Level::Admin, cfg.max_connections_per_uid) {
            Ok(slot) => slot,
            Err(refusal) => return self.refuse(stream, peer, refusal, refusals),
        };
        let admitted = Admitted {
            peer,
            level,
            first_request: cfg.first_request_timeout,
            idle: cfg.idle_timeout,
            _slot: slot,
        };
        let d = self.dispatcher.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection::serve(stream, admitted, &d) => {}
                _ = cancel.cancelled() => {}
            }
        });
    }

    /// Answers a connection over its limit with one JSON error line and closes it; logged once
    /// per uid every few seconds with a count, audited within the audit log's bound per uid.
    fn refuse(&self, stream: UnixStream, peer: Peer, refusal: Refusal, log: &RefusalLog) {
        let msg = refusal.to_string();
        write_now(stream, &Reply::error(msg.clone()));
        if let Some(n) = log.note(peer.uid, Instant::now()) {
            tracing::warn!(uid = peer.uid, refused = n, reason = %msg, "control connections refused");
        }
        let d = self.dispatcher.clone();
        tokio::spawn(async move {
            connection::record_denied(&d, &peer, None, &msg).await;
        });
    }
}

/// Writes one reply line to a new connection and closes it, without waiting: its send
/// buffer is empty, so the line fits (a client that is gone loses it).
fn write_now(stream: UnixStream, reply: &Reply) {
    if let Ok(mut s) = stream.into_std() {
        let _ = std::io::Write::write(&mut s, &connection::reply_line(reply));
    }
}

/// How many connections to serve: [`MAX_CONNECTIONS`], or fewer when the file limit would
/// run out first (with room left for steward's other files).
fn capacity() -> usize {
    let files = fd_limit::current().unwrap_or(MAX_CONNECTIONS as libc::rlim_t + 256);
    (files.saturating_sub(256) as usize).clamp(64, MAX_CONNECTIONS)
}
