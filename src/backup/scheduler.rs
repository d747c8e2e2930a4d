//! The `backup.scheduler` task: catch-up at start, then a backup of every configured database
//! at each scheduled time; in maintenance mode scheduled backups are skipped (and counted) unless
//! `[maintenance] run_backups`, and catch-up runs again when maintenance ends.

use super::schedule::Schedules;
use super::{BackupError, BackupHandle, BackupKind};
use crate::config::Config;
use crate::maintenance::MaintenanceHandle;
use crate::metrics::Metrics;
use crate::supervisor::{TaskError, TaskResult};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The databases scheduled backups cover: `backup.databases`, else the database of `postgres.url`.
pub fn databases(cfg: &Config) -> Vec<String> {
    if !cfg.backup.databases.is_empty() {
        return cfg.backup.databases.clone();
    }
    super::pgconn::PgTarget::new(&cfg.postgres.url, None)
        .map(|t| vec![t.database])
        .unwrap_or_default()
}

/// What the scheduler works with besides the config.
#[derive(Clone)]
pub struct SchedulerParts {
    pub backup: BackupHandle,
    /// Scheduled backups give way to maintenance mode.
    pub maintenance: MaintenanceHandle,
    pub metrics: Arc<Metrics>,
}

/// One run of the task, until cancelled.
pub async fn run(parts: SchedulerParts, cfg: Arc<Config>, cancel: CancellationToken) -> TaskResult {
    let schedules =
        Schedules::from_config(&cfg.backup.schedule).map_err(TaskError::from_display)?;
    let dbs = databases(&cfg);
    for db in &dbs {
        for kind in [BackupKind::Daily, BackupKind::Weekly] {
            parts
                .metrics
                .backup
                .skipped
                .with_label_values(&[db, kind.as_str()]);
        }
    }
    let handle = &parts.backup;
    let mut maintenance = parts.maintenance.subscribe();
    maintenance.borrow_and_update();
    handle.set_next_runs(schedules.next_runs(Utc::now())).await;
    catch_up(&parts, &schedules, &dbs, &cancel).await;
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
                        catch_up(&parts, &schedules, &dbs, &cancel).await;
                    }
                }
            }
        }
        for db in &dbs {
            let _ = start(&parts, db, kind, "scheduled").await;
        }
    }
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
    dbs: &[String],
    cancel: &CancellationToken,
) {
    let all = match parts.backup.list(None).await {
        Ok(all) => all,
        Err(e) => return tracing::warn!(error = %e, "cannot read the backup catalog for catch-up"),
    };
    let now = Utc::now();
    for s in schedules.iter() {
        for db in dbs {
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
