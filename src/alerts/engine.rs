//! The alert engine actor: gathers facts (checks from the board, the backup catalog, task
//! restarts), evaluates the rules, steps the state machines, and publishes the outcome as
//! metrics, log lines, replies and Alertmanager notices.

use super::alertmanager::Notice;
use super::facts::{BackupFacts, Facts};
use super::handle::{AlertHandle, Cmd};
use super::observation::{Key, Observation};
use super::pg_session_rules::DeadlockWindow;
use super::reply::{AlertStatus, AlertsReply};
use super::restarts::RestartWindow;
use super::rules;
use super::state::{AlertState, Tracker, Transition};
use crate::backup::schedule::Schedules;
use crate::backup::BackupHandle;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::board::Board;
use crate::model::check::{CheckResult, Service};
use crate::supervisor::{SupervisorHandle, TaskResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Tells whether maintenance mode is on (alerts are then suppressed, not silenced).
pub type MaintenanceFlag = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the engine reads from the rest of steward.
#[derive(Clone)]
pub struct Inputs {
    pub config: watch::Receiver<Arc<Config>>,
    pub board: Board,
    pub backup: BackupHandle,
    pub supervisor: SupervisorHandle,
    pub metrics: Arc<Metrics>,
    pub maintenance: MaintenanceFlag,
    /// What the PostgreSQL collector groups found, for the rules over them.
    pub pg_facts: crate::monitor::pg_collect::FactsRx,
}

/// How long the engine waits for another actor's answer before using what it has.
const ASK: Duration = Duration::from_secs(5);

/// Every alert's transition counters exist from the start, so rules and dashboards that read
/// them find a series (at 0) before anything has happened.
pub(super) fn register_series(metrics: &Metrics) {
    for (_, name, _) in crate::config::AlertsConfig::default().rules() {
        for to in ["pending", "firing", "resolved", "inactive"] {
            metrics.alerts.transitions.with_label_values(&[name, to]);
        }
    }
}

/// One run of the `alerts` task: evaluates until cancelled. A restart starts the state
/// machines afresh (an alert still true fires again after its `for`).
pub(super) async fn run(
    inputs: Inputs,
    handle: AlertHandle,
    notices: Arc<watch::Sender<Vec<Notice>>>,
    cancel: CancellationToken,
) -> TaskResult {
    let rx = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        rx = handle.mailbox.take() => rx,
    };
    let now = crate::unix_now();
    let engine = Engine {
        inputs,
        tracker: Tracker::default(),
        facts: Facts {
            now,
            started_at: now,
            ..Facts::default()
        },
        prev_redis: None,
        restarts: HashMap::new(),
        deadlocks: DeadlockWindow::default(),
        notices,
    };
    engine.run(rx, cancel).await;
    Ok(())
}

struct Engine {
    inputs: Inputs,
    tracker: Tracker,
    facts: Facts,
    /// The previous Redis check's time, for the rate of the application's lookups.
    prev_redis: Option<f64>,
    /// Per task, the restarts within the TaskRestarting window.
    restarts: HashMap<String, RestartWindow>,
    /// Recent deadlocks per database, for Deadlocks.
    deadlocks: DeadlockWindow,
    notices: Arc<watch::Sender<Vec<Notice>>>,
}

impl Engine {
    async fn run(
        mut self,
        mut rx: tokio::sync::OwnedMutexGuard<mpsc::Receiver<Cmd>>,
        cancel: CancellationToken,
    ) {
        let mut pg = self.inputs.board.subscribe(Service::Postgres);
        let mut redis = self.inputs.board.subscribe(Service::Redis);
        let mut backups = self.inputs.backup.events();
        let mut pg_facts = self.inputs.pg_facts.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut tasks_tick = tokio::time::interval(Duration::from_secs(2));
        let mut catalog_tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.read_catalog().await;
        // Before the first request is served: `steward alerts` never answers with no rules.
        self.evaluate();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(cmd) = rx.recv() => match cmd {
                    Cmd::List(reply) => { let _ = reply.send(self.reply()); }
                },
                Ok(()) = pg.changed() => {
                    self.facts.postgres = pg.borrow_and_update().clone();
                    self.evaluate();
                }
                Ok(()) = pg_facts.changed() => {
                    let f = pg_facts.borrow_and_update().clone();
                    self.observe_pg(f);
                    self.evaluate();
                }
                Ok(()) = redis.changed() => {
                    let r = redis.borrow_and_update().clone();
                    self.observe_redis(r);
                    self.evaluate();
                }
                Ok(()) = backups.changed() => {
                    backups.borrow_and_update();
                    self.read_catalog().await;
                    self.evaluate();
                }
                _ = catalog_tick.tick() => self.read_catalog().await,
                _ = tasks_tick.tick() => self.read_tasks().await,
                _ = tick.tick() => self.evaluate(),
            }
        }
    }

    fn cfg(&self) -> Arc<Config> {
        self.inputs.config.borrow().clone()
    }

    fn observe_redis(&mut self, r: Option<Arc<CheckResult>>) {
        if let Some(f) = r.as_ref().filter(|c| c.up).and_then(|c| c.redis.as_ref()) {
            let now = r.as_ref().map_or(0.0, |c| c.checked_at);
            // The application's lookups only: steward's own (the statistics scan) left out.
            self.facts.redis_lookups_per_second = match (self.prev_redis, f.lookups) {
                (Some(t), Some(n)) if now > t => Some(n as f64 / (now - t)),
                _ => None,
            };
            self.prev_redis = Some(now);
        }
        self.facts.redis = r;
    }

    /// Takes a new round of the collector groups, reading the deadlock counters once per round.
    fn observe_pg(&mut self, f: Option<Arc<crate::model::pg_facts::PgFacts>>) {
        let window = self.deadlock_window();
        let reading = f
            .as_ref()
            .and_then(|f| f.database.as_ref())
            .map(|d| &d.deadlocks);
        self.facts.pg_deadlocks = self.deadlocks.observe(crate::unix_now(), reading, window);
        self.facts.pg = f;
    }

    fn deadlock_window(&self) -> f64 {
        self.cfg()
            .alerts
            .deadlocks
            .window
            .map_or(300.0, |w| w.as_secs_f64())
    }

    /// Re-reads the catalog and the free space of the backup directory.
    async fn read_catalog(&mut self) {
        let cfg = self.cfg();
        let Ok(Ok(metas)) = tokio::time::timeout(ASK, self.inputs.backup.list(None)).await else {
            return;
        };
        // With ["*"]: what the server said at the scheduler's last run; before any answer,
        // the databases the catalog holds (a restart while PostgreSQL is down still watches
        // what was backed up).
        let databases = match crate::backup::selection::configured(&cfg) {
            Some(dbs) => dbs,
            None => match tokio::time::timeout(ASK, self.inputs.backup.covered()).await {
                Ok(Ok(Some(dbs))) => dbs,
                _ => metas
                    .iter()
                    .map(|m| m.database.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            },
        };
        let dir = cfg.backup.dir.clone();
        let (free, dir_problem) = tokio::task::spawn_blocking(move || {
            (
                crate::backup::free_bytes(&dir),
                crate::backup::dir_problem(&dir),
            )
        })
        .await
        .unwrap_or_default();
        let periods = Schedules::from_config(&cfg.backup.schedule)
            .map(|s| {
                s.iter()
                    .map(|s| (s.kind(), s.period().num_seconds() as f64))
                    .collect()
            })
            .unwrap_or_default();
        let drill_period = crate::backup::schedule::Schedule::drills(
            &cfg.backup.restore_test.schedule,
            &cfg.backup.schedule,
        )
        .ok()
        .flatten()
        .and_then(|s| {
            let now = chrono::Utc::now();
            let first = s.next_after(now)?;
            let second = s.next_after(first)?;
            Some((second - first).num_seconds() as f64)
        });
        let remote = cfg.backup.remote.enabled();
        let upload = if remote {
            match tokio::time::timeout(ASK, self.inputs.backup.upload_status()).await {
                Ok(Ok(status)) => status,
                // No answer in time: keep the last one rather than forget the failures.
                _ => self.facts.backups.as_ref().and_then(|b| b.upload.clone()),
            }
        } else {
            None
        };
        self.facts.backups = Some(BackupFacts {
            metas,
            free_bytes: free,
            dir_problem,
            databases,
            periods,
            drill_period,
            remote,
            upload,
        });
    }

    /// Samples each task's restart counter and counts restarts within the window.
    async fn read_tasks(&mut self) {
        let Ok(Ok(tasks)) = tokio::time::timeout(ASK, self.inputs.supervisor.list()).await else {
            return;
        };
        let cfg = self.cfg();
        let window = cfg
            .alerts
            .task_restarting
            .window
            .map_or(900.0, |w| w.as_secs_f64());
        let now = crate::unix_now();
        let started = self.facts.started_at;
        self.facts.restarts_in_window = tasks
            .iter()
            .map(|t| {
                let n = self
                    .restarts
                    .entry(t.name.clone())
                    .or_insert_with(|| RestartWindow::new(started))
                    .observe(now, t.restarts, window);
                (t.name.clone(), n)
            })
            .collect();
    }

    fn evaluate(&mut self) {
        let cfg = self.cfg();
        self.facts.now = crate::unix_now();
        self.facts.expect_eviction_policy = cfg.cache.expect_eviction_policy.clone();
        // Deadlocks leave the window as time passes, between two rounds too.
        let window = self.deadlock_window();
        self.facts.pg_deadlocks = self.deadlocks.recent(self.facts.now, window);
        self.facts.pg = self.inputs.pg_facts.borrow().clone();
        let obs = rules::evaluate(&cfg.alerts, &self.facts);
        let holds = holds(&cfg);
        let changes = self.tracker.apply(
            obs,
            |k| holds.get(k.alert).copied().unwrap_or(0.0),
            self.facts.now,
        );
        let suppressed = (self.inputs.maintenance)();
        for t in &changes {
            self.record(t, suppressed);
        }
        self.publish(suppressed);
    }

    fn record(&self, t: &Transition, suppressed: bool) {
        let m = &self.inputs.metrics.alerts;
        m.transitions
            .with_label_values(&[t.key.alert, t.to.as_str()])
            .inc();
        let Some((_, e)) = self.tracker.entries().find(|(k, _)| **k == t.key) else {
            return;
        };
        let (alert, service, severity) = (t.key.alert, t.key.service, t.key.severity.as_str());
        match t.to {
            AlertState::Firing => tracing::warn!(
                alert, service, severity, suppressed,
                description = %e.last.description,
                "alert firing: {}", e.last.summary
            ),
            AlertState::Resolved => tracing::info!(
                alert,
                service,
                severity,
                "alert resolved: {}",
                e.last.summary
            ),
            _ => tracing::debug!(alert, service, severity, to = %t.to, "alert state changed"),
        }
    }

    /// Sets the gauges and hands the firing, unsuppressed alerts to the Alertmanager sender.
    fn publish(&self, suppressed: bool) {
        let m = &self.inputs.metrics.alerts;
        let mut firing = Vec::new();
        for (k, e) in self.tracker.entries() {
            let on = e.state == AlertState::Firing;
            m.active
                .with_label_values(&[k.alert, k.service, k.severity.as_str()])
                .set(i64::from(on));
            if on && !suppressed {
                firing.push(notice(k, e.fired_at.unwrap_or(e.since), &e.last));
            }
        }
        self.notices.send_if_modified(|old| {
            let changed = *old != firing;
            if changed {
                *old = firing;
            }
            changed
        });
    }

    fn reply(&self) -> AlertsReply {
        let cfg = self.cfg();
        let maintenance = (self.inputs.maintenance)();
        let holds = holds(&cfg);
        AlertsReply {
            maintenance,
            alertmanager: (!cfg.alertmanager.url.is_empty()).then(|| cfg.alertmanager.url.clone()),
            alerts: self
                .tracker
                .entries()
                .map(|(k, e)| AlertStatus {
                    alert: k.alert.into(),
                    service: k.service.into(),
                    severity: k.severity,
                    state: e.state,
                    since: e.since,
                    fired_at: e.fired_at,
                    value: e.last.value,
                    threshold: e.last.threshold,
                    unit: e.last.unit,
                    for_seconds: holds.get(k.alert).copied().unwrap_or(0.0),
                    summary: e.last.summary.clone(),
                    description: e.last.description.clone(),
                    note: e.last.note.clone(),
                    suppressed: maintenance && e.state == AlertState::Firing,
                })
                .collect(),
        }
    }
}

/// Each alert's `for`, in seconds.
fn holds(cfg: &Config) -> HashMap<&'static str, f64> {
    cfg.alerts
        .rules()
        .into_iter()
        .map(|(_, name, r)| (name, r.for_.as_secs_f64()))
        .collect()
}

fn notice(k: &Key, starts_at: f64, o: &Observation) -> Notice {
    Notice {
        alertname: k.alert,
        service: k.service,
        severity: k.severity.as_str(),
        summary: o.summary.clone(),
        description: o.description.clone(),
        starts_at,
    }
}
