//! `steward run`: loads the config, binds the endpoints, registers the tasks, tells systemd,
//! then waits for signals (SIGHUP reloads, SIGTERM/SIGINT stop gracefully).

use crate::config::{self, Config, LoadError};
use crate::control::dispatch::Dispatcher;
use crate::control::server::{self as control_server, ControlError, ControlServer};
use crate::metrics::http::{self, HttpError, HttpState};
use crate::metrics::{Metrics, MetricsError};
use crate::model::board::Board;
use crate::model::check::Service;
use crate::monitor::postgres::PgProbe;
use crate::monitor::redis::RedisProbe;
use crate::monitor::{self, MonitorHandle};
use crate::reload::{ReloadHandle, Reloader};
use crate::supervisor::{self, factory, Backoff, SupervisorError, SupervisorHandle, TaskError};
use sd_notify::NotifyState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error("cannot create the state directory {path}: {source} (check [state] dir)")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// What `steward run` was given.
pub struct RunOptions {
    pub config_file: PathBuf,
    pub env: HashMap<String, String>,
}

/// Runs the daemon until SIGTERM/SIGINT; returns once everything has stopped.
pub async fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let cfg = config::load(&opts.config_file, &opts.env)?;
    let level = crate::logging::init(&cfg.log);
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    tracing::info!(version = crate::VERSION, config = %opts.config_file.display(), "steward starting");
    make_state_dir(&cfg)?;
    let metrics = Arc::new(Metrics::new()?);
    metrics.reload_ok.set(1);
    metrics.reload_success_time.set(crate::unix_now());
    let http_listener = Arc::new(http::bind(cfg.metrics.listen)?);
    let http_security =
        crate::metrics::security::SecurityHandle::start(&cfg.metrics).map_err(HttpError::from)?;
    let control_bound = control_server::bind(&cfg.control)?;
    let socket_path = cfg.control.socket.clone();
    let first_ino = control_bound.ino();
    let grace = cfg.shutdown.timeout;
    let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let root = CancellationToken::new();
    let sup = supervisor::start(root.clone(), metrics.clone(), Backoff::default(), grace);
    let board = Board::default();
    {
        let h = &cfg_rx.borrow().history;
        board.set_history_limits(h.retention, h.max_entries);
    }
    let handles = (
        MonitorHandle::new(Service::Postgres),
        MonitorHandle::new(Service::Redis),
    );
    // Before the scheduler: its first (catch-up) decision already sees a persisted maintenance.
    let maintenance =
        crate::maintenance::start(cfg_rx.clone(), metrics.clone(), &board, root.child_token());
    let audit = crate::audit::start(cfg_rx.clone(), metrics.clone());
    if let Err(e) = audit.ready().await {
        tracing::warn!(error = %e, "admin commands will be refused until the audit log is writable");
    }
    spawn_monitors(&sup, &cfg_rx, &board, &metrics, &handles).await?;
    let pg_facts = spawn_pg_collector(&sup, &cfg_rx, &metrics).await?;
    let backup = crate::backup::start(
        cfg_rx.clone(),
        metrics.clone(),
        root.child_token(),
        maintenance.clone(),
        audit.clone(),
    );
    {
        let rx = cfg_rx.clone();
        let parts = crate::backup::scheduler::SchedulerParts {
            backup: backup.clone(),
            maintenance: maintenance.clone(),
            metrics: metrics.clone(),
        };
        sup.spawn(
            "backup.scheduler",
            factory(move |token| {
                crate::backup::scheduler::run(parts.clone(), rx.borrow().clone(), token)
            }),
        )
        .await?;
    }
    // Shared by the schedule and the control requests: one warm-up per namespace at a time.
    let warmups = crate::cache::warmup::WarmupJobs::default();
    {
        // Scheduled warm-ups; it follows config changes itself, so reload needs no restart.
        let (rx, m, jobs) = (cfg_rx.clone(), metrics.clone(), warmups.clone());
        sup.spawn(
            "cache.warmup",
            factory(move |token| {
                crate::cache::warmup_task::run(rx.clone(), m.clone(), jobs.clone(), token)
            }),
        )
        .await?;
    }
    let alerts = {
        let m = maintenance.subscribe();
        let inputs = crate::alerts::Inputs {
            config: cfg_rx.clone(),
            board: board.clone(),
            backup: backup.clone(),
            supervisor: sup.clone(),
            metrics: metrics.clone(),
            maintenance: Arc::new(move || m.borrow().is_some()),
            pg_facts: pg_facts.clone(),
        };
        crate::alerts::spawn(&sup, inputs).await?
    };
    let cache_stats = spawn_cache_stats(&sup, &cfg_rx, &board, &metrics, &audit).await?;
    let state = HttpState {
        metrics: metrics.clone(),
        board: board.clone(),
        security: http_security.subscribe(),
    };
    sup.spawn(
        "http",
        factory(move |token| {
            let (l, s) = (http_listener.clone(), state.clone());
            async move {
                http::serve_on_own_thread(&l, s, token)
                    .await
                    .map_err(TaskError::from_display)
            }
        }),
    )
    .await?;
    let reload = Reloader {
        path: opts.config_file.clone(),
        env: opts.env.clone(),
        config: cfg_tx,
        supervisor: sup.clone(),
        metrics: metrics.clone(),
        level: Some(level),
        board: board.clone(),
        http: http_security,
    }
    .start();
    let dispatcher = Arc::new(Dispatcher {
        supervisor: sup.clone(),
        board,
        postgres: handles.0,
        redis: handles.1,
        reload: reload.clone(),
        backup: backup.clone(),
        maintenance: maintenance.clone(),
        alerts,
        cache_clears: Default::default(),
        cache_warmups: warmups,
        cache_stats,
        metrics: metrics.clone(),
        audit,
        config: cfg_rx.clone(),
        config_file: opts.config_file.clone(),
        started_at: crate::unix_now(),
    });
    let current = Arc::new(Mutex::new(Some((socket_path.clone(), first_ino))));
    let server = Arc::new(ControlServer {
        dispatcher,
        first: Mutex::new(Some(control_bound)),
        current: current.clone(),
    });
    let rx = cfg_rx.clone();
    sup.spawn(
        crate::control::protocol::CONTROL_TASK,
        factory(move |token| {
            let cfg = rx.borrow().control.clone();
            server.clone().run(cfg, token)
        }),
    )
    .await?;
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
    if let Some(period) = watchdog_period(&opts.env) {
        tokio::spawn(watchdog(sup.clone(), root.clone(), period));
    }
    tracing::info!("steward is serving");
    tokio::spawn(crate::residency::hand_back(crate::residency::SETTLE));
    loop {
        tokio::select! {
            // Never awaited here: whatever a reload does, SIGTERM is still heard.
            _ = hup.recv() => {
                tokio::spawn(sighup(reload.clone()));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    shutdown(&sup, &cfg_rx, &current, &backup).await;
    Ok(())
}

fn make_state_dir(cfg: &Config) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &cfg.state.dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DaemonError::StateDir {
            path: dir.clone(),
            source,
        })
}

async fn spawn_monitors(
    sup: &SupervisorHandle,
    cfg: &watch::Receiver<Arc<Config>>,
    board: &Board,
    metrics: &Arc<Metrics>,
    handles: &(MonitorHandle, MonitorHandle),
) -> Result<(), SupervisorError> {
    let (rx, b, m, h) = (
        cfg.clone(),
        board.clone(),
        metrics.clone(),
        handles.0.clone(),
    );
    sup.spawn(
        "monitor.postgres",
        factory(move |token| {
            let c = rx.borrow().clone();
            let (b, m, h) = (b.clone(), m.clone(), h.clone());
            async move {
                let plan = monitor::Plan {
                    interval: c.postgres.interval,
                    timeout: c.postgres.timeout,
                    wake: Default::default(),
                };
                let name = c.instance_name();
                let probe = PgProbe::new(
                    &c.postgres,
                    m.clone(),
                    c.scrubber(),
                    &name,
                    plan.wake.clone(),
                )
                .map_err(TaskError::from_display)?;
                monitor::run(probe, plan, b, m, h, token).await;
                Ok(())
            }
        }),
    )
    .await?;
    let (rx, b, m, h) = (
        cfg.clone(),
        board.clone(),
        metrics.clone(),
        handles.1.clone(),
    );
    sup.spawn(
        "monitor.redis",
        factory(move |token| {
            let c = rx.borrow().clone();
            let (b, m, h) = (b.clone(), m.clone(), h.clone());
            async move {
                let plan = monitor::Plan {
                    interval: c.redis.interval,
                    timeout: c.redis.timeout,
                    wake: Default::default(),
                };
                let name = c.instance_name();
                let probe =
                    RedisProbe::new(&c.redis, m.clone(), c.scrubber(), &name, plan.wake.clone())
                        .map_err(TaskError::from_display)?;
                monitor::run(probe, plan, b, m, h, token).await;
                Ok(())
            }
        }),
    )
    .await
}

/// Registers `collector.postgres`, the PostgreSQL collector groups, and their families in the
/// registry; returns where their facts are published for the alerts.
async fn spawn_pg_collector(
    sup: &SupervisorHandle,
    cfg: &watch::Receiver<Arc<Config>>,
    metrics: &Arc<Metrics>,
) -> Result<crate::monitor::pg_collect::FactsRx, DaemonError> {
    let store = crate::monitor::pg_collect::store().map_err(crate::metrics::MetricsError::from)?;
    metrics
        .registry
        .register(Box::new(store.clone()))
        .map_err(crate::metrics::MetricsError::from)?;
    let (tx, rx) = watch::channel(None);
    let tx = Arc::new(tx);
    let (c, m) = (cfg.clone(), metrics.clone());
    sup.spawn(
        "collector.postgres",
        factory(move |token| {
            let (c, m, s, tx) = (c.clone(), m.clone(), store.clone(), tx.clone());
            async move {
                crate::monitor::pg_collect::Collector::new(c, m, s, tx)
                    .run(token)
                    .await;
                Ok(())
            }
        }),
    )
    .await?;
    Ok(rx)
}

/// Registers `cache.stats`, the statistics scan, TTL audit and eviction-policy task.
async fn spawn_cache_stats(
    sup: &SupervisorHandle,
    cfg: &watch::Receiver<Arc<Config>>,
    board: &Board,
    metrics: &Arc<Metrics>,
    audit: &crate::audit::AuditHandle,
) -> Result<crate::cache::stats::StatsHandle, SupervisorError> {
    let handle = crate::cache::stats::StatsHandle::default();
    let (h, rx, b, m) = (handle.clone(), cfg.clone(), board.clone(), metrics.clone());
    let a = audit.clone();
    sup.spawn(
        "cache.stats",
        factory(move |token| {
            let (h, rx, b, m, a) = (h.clone(), rx.clone(), b.clone(), m.clone(), a.clone());
            crate::cache::stats::run(h, rx, b, m, a, token)
        }),
    )
    .await?;
    Ok(handle)
}

/// One SIGHUP's reload, on its own task; the reloader runs reloads one at a time, each within
/// its read bound.
async fn sighup(reload: ReloadHandle) {
    tracing::info!("SIGHUP received; reloading the config");
    notify(&[NotifyState::Reloading]);
    // The reloader logs the outcome itself.
    let _ = reload.reload().await;
    notify(&[NotifyState::Ready]);
}

async fn shutdown(
    sup: &SupervisorHandle,
    cfg: &watch::Receiver<Arc<Config>>,
    current: &Mutex<Option<(PathBuf, u64)>>,
    backup: &crate::backup::BackupHandle,
) {
    let timeout = cfg.borrow().shutdown.timeout;
    let started = std::time::Instant::now();
    tracing::info!(timeout_seconds = timeout.as_secs_f64(), "shutting down");
    notify(&[NotifyState::Stopping]);
    // Cancels every task and, through the same root token, running backup jobs.
    match sup.shutdown(timeout).await {
        Ok(left) if left.is_empty() => {}
        Ok(left) => tracing::warn!(tasks = ?left, "tasks did not stop within the shutdown timeout"),
        Err(e) => tracing::warn!(error = %e, "supervisor did not answer at shutdown"),
    }
    // Cancelled jobs record themselves as failed and remove their temporary files.
    if !backup
        .wait_idle(timeout.saturating_sub(started.elapsed()))
        .await
    {
        tracing::warn!(
            "backup jobs still running at exit; the next start records them as interrupted"
        );
    }
    if let Some((path, ino)) = current.lock().ok().and_then(|g| g.clone()) {
        control_server::remove_if_ours(&path, ino);
    }
    tracing::info!("steward stopped");
}

/// systemd's watchdog period, as sd_watchdog_enabled(3) reads it: `WATCHDOG_USEC`, for this
/// process unless `WATCHDOG_PID` names another.
fn watchdog_period(env: &HashMap<String, String>) -> Option<Duration> {
    let usec: u64 = env
        .get("WATCHDOG_USEC")?
        .trim()
        .parse()
        .ok()
        .filter(|u| *u > 0)?;
    match env.get("WATCHDOG_PID").map(|p| p.trim().parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        Some(Err(_)) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// Pings systemd's watchdog at half its period while the registry is healthy.
async fn watchdog(sup: SupervisorHandle, root: CancellationToken, watchdog: Duration) {
    let period = watchdog / 2;
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = root.cancelled() => return,
            _ = tick.tick() => {
                if sup.healthy(period / 2).await {
                    notify(&[NotifyState::Watchdog]);
                } else {
                    tracing::warn!("task registry unhealthy; withholding the systemd watchdog ping");
                }
            }
        }
    }
}

fn notify(states: &[NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(false, states);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_follows_sd_watchdog_enabled() {
        let env = |pairs: &[(&str, String)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let me = std::process::id().to_string();
        assert_eq!(watchdog_period(&env(&[])), None);
        assert_eq!(
            watchdog_period(&env(&[("WATCHDOG_USEC", "400000".into())])),
            Some(Duration::from_millis(400))
        );
        assert!(
            watchdog_period(&env(&[("WATCHDOG_USEC", "1".into()), ("WATCHDOG_PID", me)])).is_some()
        );
        assert_eq!(
            watchdog_period(&env(&[
                ("WATCHDOG_USEC", "1".into()),
                ("WATCHDOG_PID", "1".into())
            ])),
            None
        );
        assert_eq!(
            watchdog_period(&env(&[("WATCHDOG_USEC", "0".into())])),
            None
        );
    }
}
