//! Turns a parsed request into a reply, using the supervisor, the monitors, the board and reload.

use super::protocol::{
    HealthReply, InfoReply, Reply, Request, Service, ServiceReport, StatusReply, TaskSummary,
};
use crate::config::Config;
use crate::monitor::{Board, MonitorHandle};
use crate::reload::ReloadHandle;
use crate::supervisor::SupervisorHandle;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
            Request::Task { action, name } => match self.supervisor.act(&name, action).await {
                Ok(t) => Reply::data(&t),
                Err(e) => Reply::error(e.to_string()),
            },
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
            } => {
                let from = since_seconds.map_or(0.0, |s| crate::unix_now() - s.max(0.0));
                let entries = self.board.history(service, from);
                let summary = crate::monitor::history::summarize(&entries);
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

    async fn status(&self) -> Reply {
        let tasks = self.supervisor.list().await.unwrap_or_default();
        let health = self.board.health();
        Reply::data(&StatusReply {
            version: crate::VERSION.into(),
            uptime_seconds: crate::unix_now() - self.started_at,
            healthy: health.healthy,
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
        })
    }
}
