//! The `backup.scheduler` task: catch-up at start, then a backup of every configured database
//! at each scheduled time; in maintenance mode scheduled backups are skipped (and counted) unless
//! `[maintenance] run_backups`, and catch-up runs again when maintenance ends. Which databases
//! a run covers is decided when it starts (`selection`): with `databases = ["*"]` the server
//! is asked each time, so a database created since the last run is backed up too.

use super::schedule::Schedules;
use super::{selection, BackupError, BackupHandle, BackupKind};
use crate::config::Config;
use crate::maintenance::MaintenanceHandle;
use crate::metrics::Metrics;
use crate::supervisor::{TaskError, TaskResult};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the scheduler works with besides the config.
#[derive(Clone)]
pub struct SchedulerParts {
    pub backup: BackupHandle,
    /// Scheduled backups give way to maintenance mode.
    pub maintenance: MaintenanceHandle,
    pub metrics: Arc<Metrics>,
}

/// One run of the task, until cancelled: the backup schedules and, beside them, the restore
/// drills.
pub async fn run(parts: SchedulerParts, cfg: Arc<Config>, cancel: CancellationToken) -> TaskResult {
    // Drills stop with the backups, whichever way those end.
    let drill_cancel = cancel.child_token();
    let drills = super::drills::run(parts.clone(), cfg.clone(), drill_cancel.clone());
    let backups = async {
        let r = backups(parts, cfg, cancel).await;
        drill_cancel.cancel();
        r
    };
    let (result, ()) = tokio::join!(backups, drills);
    result
}

/// The backup schedules, until cancelled.
async fn backups(parts: SchedulerParts, cfg: Arc<Config>, cancel: CancellationToken) -> TaskResult {
    let schedules =
        Schedules::from_config(&cfg.backup.schedule).map_err(TaskError::from_display)?;
    if let Some(dbs) = selection::configured(&cfg) {
        register_skipped(&parts, &dbs);
    }
    let handle = &parts.backup;
    let mut maintenance = parts.maintenance.subscribe();
    maintenance.borrow_and_update();
    handle.set_next_runs(schedules.next_runs(Utc::now())).await;
    catch_up(&parts, &schedules, &cfg, &cancel).await;
    loop {
        let Some((kind, at)) = schedules.next(Utc::now()) else {
            cancel.cancelled().await;
            return Ok(());
        };
        handle.set_next_runs(schedules.next_runs(Utc::now())).await;
        // Wall-clock time: re-check at least every minute, so a clock change is noticed.
        loop {
            let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                Ok(()) = maintenance.changed() => {
                    // What maintenance held back runs now, not at the next scheduled time.
                    if ended(&mut maintenance) {
                        catch_up(&parts, &schedules, &cfg, &cancel).await;
                    }
                }
            }
        }
        for db in &covered(&parts, &cfg).await {
            let _ = start(&parts, db, kind, "scheduled").await;
        }
    }
}

/// The databases a run covers, decided as it starts. With `["*"]` the server is asked; when
/// it cannot be, the run covers the databases of its last answer (else those in the catalog),
/// so that each of their backups fails and is recorded and alerted as any failed backup is,
/// rather than the run vanishing without a trace. Nothing is deleted on the way.
pub(super) async fn covered(parts: &SchedulerParts, cfg: &Config) -> Vec<String> {
    let dbs = match selection::resolve(cfg).await {
        Ok(dbs) => {
            if selection::every_database(cfg) {
                tracing::debug!(databases = ?dbs, "databases to back up (backup.databases = [\"*\"])");
                parts.backup.set_covered(dbs.clone()).await;
            }
            dbs
        }
        Err(e) => {
            let known = match parts.backup.covered().await {
                Ok(Some(dbs)) => dbs,
                _ => catalogued(parts).await,
            };
            if known.is_empty() {
                tracing::warn!(error = %e, "no backup was started: the server cannot say which databases it has, and no database is known from an earlier run or the catalog");
            } else {
                tracing::warn!(error = %e, databases = ?known, "backing up the databases known from the last run or the catalog");
            }
            known
        }
    };
    register_skipped(parts, &dbs);
    dbs
}

/// Exports the counters of `dbs` (skipped, backups, pruned, restore tests) at zero, so a
/// first event is an increase.
fn register_skipped(parts: &SchedulerParts, dbs: &[String]) {
    for db in dbs {
        parts.metrics.know_backup_database(db);
    }
}

/// The databases with an entry in the catalog, in name order.
async fn catalogued(parts: &SchedulerParts) -> Vec<String> {
    let all = parts.backup.list(None).await.unwrap_or_default();
    let set: std::collections::BTreeSet<String> = all.into_iter().map(|m| m.database).collect();
    set.into_iter().collect()
}

/// Whether the maintenance change just seen is its end.
fn ended(rx: &mut tokio::sync::watch::Receiver<Option<crate::maintenance::Maintenance>>) -> bool {
    rx.borrow_and_update().is_none()
}

/// Runs now each scheduled kind whose newest good backup is older than its period, one after
/// the other (one backup per database at a time).
async fn catch_up(
    parts: &SchedulerParts,
    schedules: &Schedules,
    cfg: &Config,
    cancel: &CancellationToken,
) {
    if schedules.iter().next().is_none() {
        return;
    }
    let all = match parts.backup.list(None).await {
        Ok(all) => all,
        Err(e) => return tracing::warn!(error = %e, "cannot read the backup catalog for catch-up"),
    };
    let dbs = covered(parts, cfg).await;
    let now = Utc::now();
    for s in schedules.iter() {
        for db in &dbs {
            let newest = all
                .iter()
                .filter(|m| m.is_good() && &m.database == db && m.kind == s.kind())
                .map(|m| m.finished_at.unwrap_or(m.started_at))
                .max();
            if !s.catch_up_due(newest, now) {
                continue;
            }
            if let Some(done) = start(parts, db, s.kind(), "catch-up").await {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = done => {}
                }
            }
        }
    }
}

async fn start(
    parts: &SchedulerParts,
    db: &str,
    kind: BackupKind,
    why: &str,
) -> Option<tokio::sync::oneshot::Receiver<super::catalog::BackupMeta>> {
    if let Some(m) = parts.maintenance.skips_scheduled_backups() {
        parts
            .metrics
            .backup
            .skipped
            .with_label_values(&[db, kind.as_str()])
            .inc();
        tracing::info!(database = %db, kind = %kind, reason = why, maintenance = m.reason.as_deref(), "scheduled backup skipped: maintenance mode is on (it runs when maintenance ends; [maintenance] run_backups = true runs backups during maintenance)");
        return None;
    }
    match parts.backup.create(db.to_string(), kind, None).await {
        Ok((started, done)) => {
            tracing::info!(id = %started.id, database = %db, kind = %kind, reason = why, "scheduled backup started");
            Some(done)
        }
        Err(e @ BackupError::AlreadyRunning { .. }) => {
            tracing::info!(database = %db, kind = %kind, "{e}");
            None
        }
        Err(e) => {
            tracing::warn!(database = %db, kind = %kind, error = %e, "scheduled backup could not start");
            None
        }
    }
}
