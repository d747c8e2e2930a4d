//! The audit log: one JSON line per admin command (allowed or denied), per denied request and
//! per destructive action steward takes by itself, appended by a writer thread that reopens the
//! file when it is rotated away and reports every failure, so that admin commands can fail
//! closed when their entry cannot be written.

mod entry;
mod limit;

pub use entry::{Entry, Outcome, PeerId};

use crate::config::Config;
use crate::metrics::Metrics;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Why an entry could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "the audit log {path} cannot be written: {source}; admin commands are refused until it \
         can be. Fix the file or its directory (steward's user must be able to create and append \
         to it), or point [audit] path elsewhere and reload with SIGHUP (systemctl reload steward)"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit log writer has stopped (steward is shutting down)")]
    Gone,
}

enum Cmd {
    /// Append `line` (ends in a newline) to `path`, flushed to disk before replying.
    Write {
        path: PathBuf,
        line: Vec<u8>,
        reply: oneshot::Sender<std::io::Result<()>>,
    },
    /// Open `path` for appending (creating it) without writing: can an entry be written?
    Probe {
        path: PathBuf,
        reply: oneshot::Sender<std::io::Result<()>>,
    },
}

/// Appends entries to the configured audit log; cloneable, the path follows reloads.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Cmd>,
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    denied: Arc<limit::DenyLimiter>,
}

/// Starts the writer thread (plain file I/O, off the async runtime); it ends when the last
/// handle is dropped.
pub fn start(config: watch::Receiver<Arc<Config>>, metrics: Arc<Metrics>) -> AuditHandle {
    let (tx, rx) = mpsc::channel(256);
    std::thread::Builder::new()
        .name("steward-audit".into())
        .spawn(move || Writer::default().run(rx))
        .expect("spawning the audit writer thread");
    AuditHandle {
        tx,
        config,
        metrics,
        denied: Arc::default(),
    }
}

impl AuditHandle {
    fn path(&self) -> PathBuf {
        self.config.borrow().audit.path.clone()
    }

    /// Checks that an entry can be written now (the file opens for appending and there is room
    /// for it on disk), so that an admin command is refused before it changes anything when it
    /// could not be audited.
    pub async fn ready(&self) -> Result<(), AuditError> {
        let path = self.path();
        let out = self
            .ask(path.clone(), |reply| Cmd::Probe { path, reply })
            .await;
        if out.is_err() {
            // An admin command refused for it counts as an entry not written.
            self.count(&out);
        }
        out
    }

    /// Writes `entry` (secrets masked) and waits until it is on disk.
    pub async fn record(&self, entry: Entry) -> Result<(), AuditError> {
        let (path, line) = (self.path(), self.line(entry));
        let out = self
            .ask(path.clone(), |reply| Cmd::Write { path, line, reply })
            .await;
        self.count(&out);
        if let Err(e) = &out {
            tracing::error!(error = %e, "audit entry not written");
        }
        out
    }

    /// Writes the line of a refused request: its arguments cut to 1 KiB, at most a few lines
    /// per peer uid a minute (the rest counted, then summed up in one line). True when the
    /// line was let through, so that steward's own log can follow the same bound.
    pub async fn record_denied(&self, mut entry: Entry, uid: u32) -> bool {
        match self.denied.admit(uid, std::time::Instant::now()) {
            limit::Verdict::Suppress => {
                self.metrics.audit.denied_suppressed.inc();
                false
            }
            limit::Verdict::Write { suppressed_before } => {
                if suppressed_before > 0 {
                    let args = serde_json::json!({
                        "uid": uid,
                        "suppressed": suppressed_before,
                        "window_seconds": limit::WINDOW.as_secs(),
                    });
                    let summary = Entry::new(
                        "control",
                        "denied_suppressed",
                        args,
                        std::time::Instant::now(),
                    )
                    .outcome(Outcome::Denied, None);
                    let _ = self.record(summary).await;
                }
                entry.arguments = limit::cap_arguments(entry.arguments);
                let _ = self.record(entry).await;
                true
            }
        }
    }

    /// Sends the command `make` builds to the writer and waits for its answer about `path`.
    async fn ask(
        &self,
        path: PathBuf,
        make: impl FnOnce(oneshot::Sender<std::io::Result<()>>) -> Cmd,
    ) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AuditError::Gone)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(AuditError::Write { path, source }),
            Err(_) => Err(AuditError::Gone),
        }
    }

    /// Writes `entry` without waiting, for actions already taken (logged if it fails).
    pub fn record_detached(&self, entry: Entry) {
        let h = self.clone();
        tokio::spawn(async move {
            let _ = h.record(entry).await;
        });
    }

    fn count(&self, out: &Result<(), AuditError>) {
        let result = if out.is_ok() { "ok" } else { "error" };
        self.metrics.audit.writes.with_label_values(&[result]).inc();
    }

    /// The entry as one JSON line, every string in it scrubbed of the config's secrets.
    fn line(&self, mut entry: Entry) -> Vec<u8> {
        let scrubber = self.config.borrow().scrubber();
        scrub_value(&mut entry.arguments, &scrubber);
        entry.error = entry.error.map(|e| scrubber.scrub(&e));
        let mut line = serde_json::to_vec(&entry).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }
}

/// Masks secrets in every string of a JSON value.
fn scrub_value(v: &mut serde_json::Value, scrubber: &crate::secret::Scrubber) {
    match v {
        serde_json::Value::String(s) => *s = scrubber.scrub(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| scrub_value(v, scrubber)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|v| scrub_value(v, scrubber)),
        _ => {}
    }
}

/// The writer thread's state: the open file and the identity of what it opened.
#[derive(Default)]
struct Writer {
    open: Option<Open>,
}

struct Open {
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                Cmd::Write { path, line, reply } => {
                    let _ = reply.send(self.append(&path, &line));
                }
                Cmd::Probe { path, reply } => {
                    let out = self.file(&path).and_then(reserve);
                    if out.is_err() {
                        self.open = None;
                    }
                    let _ = reply.send(out);
                }
            }
        }
    }

    fn append(&mut self, path: &Path, line: &[u8]) -> std::io::Result<()> {
        let out = self
            .file(path)
            .and_then(|f| f.write_all(line).and_then(|_| f.sync_data()));
        if out.is_err() {
            // Reopened next time: the cause may be fixed by then.
            self.open = None;
        }
        out
    }

    /// The open file for `path`, reopened when the path changed or the file at it is no
    /// longer the one held open (rotated away, removed, replaced).
    fn file(&mut self, path: &Path) -> std::io::Result<&mut File> {
        let current = std::fs::metadata(path).ok();
        let same = match (&self.open, &current) {
            (Some(o), Some(m)) => o.path == path && o.dev == m.dev() && o.ino == m.ino(),
            _ => false,
        };
        if !same {
            self.open = None;
            self.open = Some(open(path)?);
        }
        match self.open.as_mut() {
            Some(o) => Ok(&mut o.file),
            None => Err(std::io::Error::other("audit log not open")),
        }
    }
}

/// Room an entry needs, reserved by the readiness probe.
const RESERVE: i64 = 64 * 1024;

/// Proves there is room for the next entries: reserves [`RESERVE`] bytes past the end of the
/// file without changing its size (`fallocate` with `FALLOC_FL_KEEP_SIZE`), which fails on a
/// full filesystem or quota where merely opening the file succeeds. A filesystem that cannot
/// preallocate is taken at its word (the write itself still fails closed).
fn reserve(file: &mut File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let end = file.metadata()?.len() as i64;
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, end, RESERVE) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
        _ => Err(e),
    }
}

/// Opens (creating it and its directory) the log for appending, mode 0600, refusing anything
/// but a regular file and not following a symlink at the path. The open never blocks: a FIFO
/// without a reader fails at once (ENXIO) instead of holding the writer thread, and every admin
/// command behind it, forever; `O_NONBLOCK` changes nothing for a regular file.
fn open(path: &Path) -> std::io::Result<Open> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(Open {
        path: path.to_path_buf(),
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn handle(path: &Path) -> (AuditHandle, watch::Sender<Arc<Config>>) {
        let mut cfg = Config::default();
        cfg.audit.path = path.to_path_buf();
        cfg.postgres.url = crate::secret::SecretUrl::new("postgres://u:hunter2@h/db");
        let (tx, rx) = watch::channel(Arc::new(cfg));
        (start(rx, Arc::new(Metrics::new().unwrap())), tx)
    }

    fn entry(reason: &str) -> Entry {
        let args = serde_json::json!({ "reason": reason });
        Entry::new("client", "maintenance_on", args, Instant::now())
    }

    #[tokio::test]
    async fn lines_are_appended_scrubbed_and_survive_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let (h, _cfg) = handle(&path);
        h.ready().await.unwrap();
        h.record(entry("password is hunter2")).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::rename(&path, dir.path().join("sub/audit.log.1")).unwrap();
        h.record(entry("after rotation")).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let e: Entry = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(e.arguments["reason"], "after rotation");
        let old = std::fs::read_to_string(dir.path().join("sub/audit.log.1")).unwrap();
        assert!(!old.contains("hunter2") && old.contains("***"), "{old}");
    }

    #[tokio::test]
    async fn an_unwritable_path_is_reported_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::create_dir(&path).unwrap();
        let (h, _cfg) = handle(&path);
        let e = h.ready().await.unwrap_err().to_string();
        assert!(
            e.contains("audit.log") && e.contains("cannot be written"),
            "{e}"
        );
        assert!(h.record(entry("x")).await.is_err());
        std::fs::remove_dir(&path).unwrap();
        h.ready().await.unwrap();
        h.record(entry("y")).await.unwrap();
    }

    /// A FIFO at the path, with no reader, is refused at once: opening it for writing would
    /// otherwise wait for a reader forever and take every later admin command with it.
    #[tokio::test]
    async fn a_fifo_without_a_reader_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (h, _cfg) = handle(&path);
        // Bounded so that the old behaviour (waiting for a reader) fails instead of hanging.
        let probe = tokio::time::timeout(std::time::Duration::from_secs(60), h.ready());
        let e = probe
            .await
            .expect("the probe hung on the FIFO")
            .unwrap_err();
        assert!(e.to_string().contains("audit.log"), "{e}");
        std::fs::remove_file(&path).unwrap();
        h.ready().await.unwrap();
    }
}
