//! Reload: load → validate → swap, the one path for SIGHUP and `steward reload`; only the
//! tasks whose section changed are restarted, and what cannot change live is reported. Reading
//! the files runs off the async threads under a time bound, so no file can wedge a reload.

use crate::config::{self, Config, LoadError};
use crate::control::protocol::ReloadReply;
use crate::logging::LevelHandle;
use crate::metrics::security::Security;
use crate::metrics::Metrics;
use crate::model::task::{TaskAction, TaskState};
use crate::supervisor::SupervisorHandle;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The most a reload may spend reading the config, secret, key and certificate files. Those
/// reads refuse FIFOs and devices already; this bound holds even if one blocks anyway (a
/// stalled network file system, say): the reload is rejected and the next one can run.
pub const READ_BOUND: Duration = Duration::from_secs(10);

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reload rejected, steward keeps running with its previous config: {0}")]
    Invalid(#[source] LoadError),
    #[error("reload rejected, steward keeps running with its previous config, certificate and users: {0}")]
    Http(#[source] crate::metrics::security::SecurityError),
    #[error("reload rejected, steward keeps running with its previous config: reading {path} and the files it names took longer than {}s; check that none of them is on a file system that hangs", READ_BOUND.as_secs())]
    TimedOut { path: PathBuf },
    #[error("reload rejected, steward keeps running with its previous config: reading the files failed unexpectedly (see the log)")]
    Crashed,
    #[error("the reloader has stopped (steward is shutting down)")]
    Gone,
}

/// The outcome of the newest load, for `info`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadStatus {
    pub ok: bool,
    pub error: Option<String>,
    /// Keys whose value in the newest good config differs from the running process's (they
    /// take effect only after a restart); kept across a failed reload.
    pub pending_restart: Vec<String>,
}

impl Default for ReloadStatus {
    fn default() -> Self {
        Self {
            ok: true,
            error: None,
            pending_restart: Vec::new(),
        }
    }
}

enum Cmd {
    Reload(oneshot::Sender<Result<ReloadReply, ReloadError>>),
    Last(oneshot::Sender<ReloadStatus>),
}

/// The cloneable way to ask for a reload.
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Cmd>,
}

impl ReloadHandle {
    /// Reloads now; concurrent requests are served one after the other.
    pub async fn reload(&self) -> Result<ReloadReply, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Reload(tx))
            .await
            .map_err(|_| ReloadError::Gone)?;
        rx.await.map_err(|_| ReloadError::Gone)?
    }

    /// The outcome of the newest load.
    pub async fn last(&self) -> Result<ReloadStatus, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Last(tx))
            .await
            .map_err(|_| ReloadError::Gone)?;
        rx.await.map_err(|_| ReloadError::Gone)
    }
}

/// The reloader's private state.
pub struct Reloader {
    pub path: PathBuf,
    pub env: HashMap<String, String>,
    pub config: watch::Sender<Arc<Config>>,
    pub supervisor: SupervisorHandle,
    pub metrics: Arc<Metrics>,
    pub level: Option<LevelHandle>,
    pub board: crate::model::board::Board,
    /// The HTTP endpoint's TLS files and users, re-read on every reload.
    pub http: crate::metrics::security::SecurityHandle,
}

impl Reloader {
    /// Starts the actor.
    pub fn start(self) -> ReloadHandle {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(self.run(rx));
        ReloadHandle { tx }
    }

    async fn run(self, mut rx: mpsc::Receiver<Cmd>) {
        let mut last = ReloadStatus::default();
        // What the process runs with for the keys a reload cannot apply: the config at start.
        let running = self.config.borrow().clone();
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Reload(reply) => {
                    let out = self.reload(&running).await;
                    self.metrics.changed();
                    last = match &out {
                        Ok(r) => ReloadStatus {
                            pending_restart: r.needs_restart.clone(),
                            ..ReloadStatus::default()
                        },
                        Err(e) => ReloadStatus {
                            ok: false,
                            error: Some(e.to_string()),
                            pending_restart: last.pending_restart,
                        },
                    };
                    let _ = reply.send(out);
                    // Reading and checking a config ran code idling does not need.
                    tokio::spawn(crate::residency::hand_back(std::time::Duration::ZERO));
                }
                Cmd::Last(reply) => {
                    let _ = reply.send(last.clone());
                }
            }
        }
    }

    async fn reload(&self, running: &Config) -> Result<ReloadReply, ReloadError> {
        let (mut new, guards) = match self.read().await {
            Ok(read) => read,
            Err(e) => {
                self.metrics.reload_ok.set(0);
                self.metrics.reloads.with_label_values(&["failure"]).inc();
                // One event, one line: the problems of an invalid file are joined with "; ".
                let error = e.to_string().replace("\n  - ", " ").replace('\n', "; ");
                tracing::error!(config = %self.path.display(), error = %error, "config reload rejected; keeping the running config");
                return Err(e);
            }
        };
        new.keep_running_port_in_name(running);
        self.http.install(guards, &new.metrics);
        let old = self.config.borrow().clone();
        let mut reply = diff(&old, &new);
        reply.needs_restart = restart_keys(running, &new);
        reply.config_file = self.path.display().to_string();
        if old.log.level != new.log.level {
            if let Some(l) = &self.level {
                l.set(&new.log.level);
            }
        }
        if old.history != new.history {
            self.board
                .set_history_limits(new.history.retention, new.history.max_entries);
        }
        self.config.send_replace(Arc::new(new));
        reply.restarted = self.restart(&reply.restarted).await;
        self.metrics.reload_ok.set(1);
        self.metrics.reload_success_time.set(crate::unix_now());
        self.metrics.reloads.with_label_values(&["success"]).inc();
        tracing::info!(
            changed = ?reply.changed,
            restarted = ?reply.restarted,
            needs_restart = ?reply.needs_restart,
            "config reloaded"
        );
        for key in &reply.needs_restart {
            tracing::warn!(key = %key, "{key} changed; it takes effect only after steward restarts");
        }
        Ok(reply)
    }

    /// Reads the config and, even when `[metrics]` did not change, the HTTP endpoint's TLS files
    /// and users (a renewed certificate at the same path), on a blocking thread within
    /// [`READ_BOUND`]; a read that outlives the bound is left behind, and steward goes on.
    async fn read(&self) -> Result<(Config, Security), ReloadError> {
        let (path, env) = (self.path.clone(), self.env.clone());
        let job = tokio::task::spawn_blocking(move || {
            let cfg = config::load(&path, &env).map_err(ReloadError::Invalid)?;
            let guards = Security::build(&cfg.metrics).map_err(ReloadError::Http)?;
            Ok((cfg, guards))
        });
        match tokio::time::timeout(READ_BOUND, job).await {
            Ok(Ok(read)) => read,
            Ok(Err(_)) => Err(ReloadError::Crashed),
            Err(_) => Err(ReloadError::TimedOut {
                path: self.path.clone(),
            }),
        }
    }

    /// Restarts the given tasks unless paused (a paused task reads the new config on resume).
    async fn restart(&self, tasks: &[String]) -> Vec<String> {
        let states = self.supervisor.list().await.unwrap_or_default();
        let mut done = Vec::new();
        for name in tasks {
            let paused = states
                .iter()
                .any(|t| &t.name == name && t.state == TaskState::Paused);
            if paused {
                continue;
            }
            match self.supervisor.act(name, TaskAction::Restart).await {
                Ok(_) => done.push(name.clone()),
                Err(e) => {
                    tracing::warn!(task = %name, error = %e, "cannot restart task after reload")
                }
            }
        }
        done
    }
}

/// What changed between two configs: sections, tasks to restart, keys needing a process restart.
pub fn diff(old: &Config, new: &Config) -> ReloadReply {
    let mut r = ReloadReply::default();
    let mut section = |name: &str, changed: bool, task: Option<&str>| {
        if changed {
            r.changed.push(name.to_string());
            if let Some(t) = task {
                r.restarted.push(t.to_string());
            }
        }
    };
    section(
        "postgres",
        old.postgres != new.postgres,
        Some("monitor.postgres"),
    );
    section("redis", old.redis != new.redis, Some("monitor.redis"));
    section("backup", old.backup != new.backup, Some("backup.scheduler"));
    section("history", old.history != new.history, None);
    // Read when a scheduled backup is due: applies without a restart.
    section("maintenance", old.maintenance != new.maintenance, None);
    // Read at every evaluation and delivery: apply without a restart.
    section("alerts", old.alerts != new.alerts, None);
    section("alertmanager", old.alertmanager != new.alertmanager, None);
    // cache.stats follows [redis] changes itself, at its next tick.
    section("cache", old.cache != new.cache, Some("cache.stats"));
    section("metrics", old.metrics != new.metrics, None);
    section("control", old.control != new.control, None);
    section("state", old.state != new.state, None);
    section("shutdown", old.shutdown != new.shutdown, None);
    section("log", old.log != new.log, None);
    // The audit writer reads its path for every entry: applies without a restart.
    section("audit", old.audit != new.audit, None);
    if old.postgres != new.postgres {
        // The collector groups connect with the same [postgres] url and timeout.
        r.restarted.push("collector.postgres".to_string());
    }
    // The name marks the heartbeat row and the probe key: both monitors start writing under
    // the new one (the maintenance actor follows the config itself).
    if old.instance != new.instance {
        r.changed.push("instance".to_string());
        for task in ["monitor.postgres", "monitor.redis"] {
            if !r.restarted.iter().any(|t| t == task) {
                r.restarted.push(task.to_string());
            }
        }
    }
    r.needs_restart = restart_keys(old, new);
    r
}

/// The keys a reload cannot apply whose value in `new` differs from `running`, the config
/// the process started with: changing one and back again leaves nothing pending.
pub fn restart_keys(running: &Config, new: &Config) -> Vec<String> {
    [
        (
            "metrics.listen",
            running.metrics.listen != new.metrics.listen,
        ),
        (
            "control.socket",
            running.control.socket != new.control.socket,
        ),
        ("control.mode", running.control.mode != new.control.mode),
        ("control.group", running.control.group != new.control.group),
        ("state.dir", running.state.dir != new.state.dir),
        ("log.format", running.log.format != new.log.format),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(key, _)| key.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_sections_tasks_and_restart_keys() {
        let old = Config::default();
        let mut new = old.clone();
        assert_eq!(diff(&old, &new), ReloadReply::default());
        new.redis.interval = std::time::Duration::from_secs(5);
        new.metrics.listen = "127.0.0.1:1".parse().unwrap();
        new.log.level = "debug".into();
        let d = diff(&old, &new);
        assert_eq!(d.changed, vec!["redis", "metrics", "log"]);
        assert_eq!(d.restarted, vec!["monitor.redis"]);
        assert_eq!(d.needs_restart, vec!["metrics.listen"]);
    }
}
