//! Turns a parsed request into a reply, using the supervisor, the monitors, the board and reload.

use super::protocol::{
    HealthReply, InfoReply, Reply, Request, Service, ServiceReport, StatusReply, TaskAction,
    TaskSummary, CONTROL_TASK,
};
use crate::config::Config;
use crate::model::board::Board;
use crate::monitor::MonitorHandle;
use crate::reload::ReloadHandle;
use crate::supervisor::SupervisorHandle;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest `history --since` accepted (history is kept in memory for far less).
pub const MAX_HISTORY_SINCE: Duration = Duration::from_secs(366 * 24 * 3600);

/// Where a history starts, Unix seconds: `since_seconds` back from now (everything when
/// absent), a finite number from zero to [`MAX_HISTORY_SINCE`].
fn history_from(since_seconds: Option<f64>) -> Result<f64, String> {
    let Some(s) = since_seconds else {
        return Ok(0.0);
    };
    if !s.is_finite() || s < 0.0 {
        return Err("history --since (since_seconds) must be a positive number of seconds, e.g. 3600 for the last hour".into());
    }
    if s > MAX_HISTORY_SINCE.as_secs_f64() {
        return Err(format!(
            "history --since (since_seconds) is {s} seconds; it can reach back at most 366 days \
             (--since 366d, since_seconds 31622400); leave it out for everything kept"
        ));
    }
    Ok(crate::unix_now() - s)
}

/// Everything a request may read or act on.
pub struct Dispatcher {
    pub supervisor: SupervisorHandle,
    pub board: Board,
    pub postgres: MonitorHandle,
    pub redis: MonitorHandle,
    pub reload: ReloadHandle,
    pub backup: crate::backup::BackupHandle,
    pub maintenance: crate::maintenance::MaintenanceHandle,
    pub alerts: crate::alerts::AlertHandle,
    /// The cache clears running now (their progress, for `cache_clear_jobs`).
    pub cache_clears: crate::cache::clear::ClearJobs,
    /// The warm-ups running now, shared with the `cache.warmup` task.
    pub cache_warmups: crate::cache::warmup::WarmupJobs,
    /// The `cache.stats` task, for `cache_stats`.
    pub cache_stats: crate::cache::stats::StatsHandle,
    /// Metric handles, for the duration of the cache operations run on request.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The audit log: admin commands and refused requests are recorded there.
    pub audit: crate::audit::AuditHandle,
    pub config: watch::Receiver<Arc<Config>>,
    pub config_file: PathBuf,
    pub started_at: f64,
}

impl Dispatcher {
    /// Answers one request; never fails, errors become error replies.
    pub async fn handle(&self, req: Request) -> Reply {
        match req {
            Request::Status => self.status().await,
            Request::Health { service } => {
                let mut h = self.board.health_of(service);
                h.backup_dir_problem = self.metrics.backup.dir_problem();
                Reply::data(&h)
            }
            Request::Check { service } => self.check(service).await,
            Request::Tasks => match self.supervisor.list().await {
                Ok(t) => Reply::data(&t),
                Err(e) => Reply::error(e.to_string()),
            },
            Request::Task { action, name } => self.task(action, &name).await,
            Request::Reload => match self.reload.reload().await {
                Ok(r) => Reply::data(&r),
                Err(e) => Reply::error(e.to_string()),
            },
            Request::Info => self.info().await,
            Request::Alerts => match self.alerts.list().await {
                Ok(a) => Reply::data(&a),
                Err(e) => Reply::error(e.to_string()),
            },
            Request::History {
                service,
                since_seconds,
                last,
            } => {
                let from = match history_from(since_seconds) {
                    Ok(from) => from,
                    Err(msg) => return Reply::error(msg),
                };
                let mut entries = self.board.history(service, from);
                let summary = crate::model::history::summarize(&entries);
                if let Some(n) = last {
                    entries.drain(..entries.len().saturating_sub(n));
                }
                Reply::data(&super::protocol::HistoryReply {
                    service,
                    since: from,
                    entries,
                    summary,
                })
            }
            req @ (Request::MaintenanceOn { .. }
            | Request::MaintenanceOff
            | Request::MaintenanceStatus) => {
                super::maintenance_cmds::handle(&self.maintenance, req).await
            }
            Request::CacheClear {
                pattern,
                namespace,
                dry_run,
                force,
            } => {
                let (jobs, m, cfg) = (&self.cache_clears, &self.metrics, &self.config);
                super::cache_cmds::clear(jobs, m, cfg, pattern, namespace, dry_run, force).await
            }
            Request::CacheClearJobs => super::cache_cmds::clear_jobs(&self.cache_clears),
            Request::CacheStats => super::cache_cmds::stats(&self.cache_stats).await,
            Request::CacheWarmUp { namespace } => {
                let (cfg, m, jobs) = (&self.config, &self.metrics, &self.cache_warmups);
                super::cache_cmds::warm_up(cfg, m, jobs, namespace).await
            }
            other => super::backup_cmds::handle(&self.backup, &self.config, other).await,
        }
    }

    /// Restarts, pauses or resumes a task; the control task itself cannot be paused (that
    /// would close the socket, and with it the only way to resume it).
    async fn task(&self, action: TaskAction, name: &str) -> Reply {
        if action == TaskAction::Pause && name == CONTROL_TASK {
            return Reply::error(format!(
                "the {CONTROL_TASK:?} task cannot be paused: it serves this socket, and once paused \
                 nothing could resume it; to re-create the socket use `steward task restart \
                 {CONTROL_TASK}`, to stop steward send it SIGTERM"
            ));
        }
        match self.supervisor.act(name, action).await {
            Ok(t) => Reply::data(&t),
            Err(e) => Reply::error(e.to_string()),
        }
    }

    /// The answer to `task restart control`, given before the restart (which closes every
    /// connection, the asking one too): the task as it is now.
    pub async fn control_restart_reply(&self) -> Reply {
        match self.supervisor.list().await {
            Ok(tasks) => match tasks.into_iter().find(|t| t.name == CONTROL_TASK) {
                Some(t) => Reply::data(&t),
                None => Reply::error(format!("no task named {CONTROL_TASK:?} is registered")),
            },
            Err(e) => Reply::error(e.to_string()),
        }
    }

    async fn status(&self) -> Reply {
        let tasks = self.supervisor.list().await.unwrap_or_default();
        let health = self.board.health();
        let maintenance = self.maintenance.status().await.ok().and_then(|m| m.current);
        let pending_restart = self.reload.last().await.unwrap_or_default().pending_restart;
        Reply::data(&StatusReply {
            version: crate::VERSION.into(),
            uptime_seconds: crate::unix_now() - self.started_at,
            healthy: health.healthy,
            maintenance,
            pending_restart,
            services: health.services,
            tasks,
        })
    }

    async fn check(&self, only: Option<Service>) -> Reply {
        let cfg = self.config.borrow().clone();
        let mut services = Vec::new();
        for s in Service::ALL
            .into_iter()
            .filter(|s| only.is_none_or(|o| o == *s))
        {
            let (handle, timeout) = match s {
                Service::Postgres => (&self.postgres, cfg.postgres.timeout),
                Service::Redis => (&self.redis, cfg.redis.timeout),
            };
            // Connect, statistics and write/read each have the timeout; allow for all three.
            match handle.check_now(timeout * 3 + Duration::from_secs(1)).await {
                Ok(r) => services.push(ServiceReport {
                    service: s,
                    last: Some(r),
                }),
                Err(e) => return Reply::error(e.to_string()),
            }
        }
        Reply::data(&HealthReply {
            healthy: services.iter().all(ServiceReport::up),
            services,
            backup_dir_problem: self.metrics.backup.dir_problem(),
        })
    }

    async fn info(&self) -> Reply {
        let cfg = self.config.borrow().clone();
        let tasks = self.supervisor.list().await.unwrap_or_default();
        let reload = self.reload.last().await.unwrap_or_default();
        let secs = |pg: Duration, r: Duration| {
            BTreeMap::from([
                ("postgres".to_string(), pg.as_secs_f64()),
                ("redis".to_string(), r.as_secs_f64()),
            ])
        };
        Reply::data(&InfoReply {
            version: crate::VERSION.into(),
            pid: std::process::id(),
            started_at: self.started_at,
            uptime_seconds: crate::unix_now() - self.started_at,
            config_file: self.config_file.display().to_string(),
            metrics_listen: cfg.metrics.listen.to_string(),
            socket: cfg.control.socket.display().to_string(),
            intervals: secs(cfg.postgres.interval, cfg.redis.interval),
            timeouts: secs(cfg.postgres.timeout, cfg.redis.timeout),
            tasks: TaskSummary::of(&tasks),
            last_reload_ok: reload.ok,
            last_reload_error: reload.error,
            pending_restart: reload.pending_restart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_since_is_bounded() {
        assert_eq!(history_from(None), Ok(0.0));
        let from = history_from(Some(3600.0)).unwrap();
        assert!((crate::unix_now() - 3600.0 - from).abs() < 60.0);
        for huge in [31_622_401.0, 1.8e19, f64::MAX] {
            let e = history_from(Some(huge)).unwrap_err();
            assert!(e.contains("--since") && e.contains("366 days"), "{e}");
        }
        for bad in [-1.0, f64::NAN, f64::NEG_INFINITY] {
            assert!(history_from(Some(bad)).unwrap_err().contains("positive"));
        }
    }
}
