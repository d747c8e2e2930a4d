//! The `backup.scheduler` task: catch-up at start, then a backup of every configured database
//! at each scheduled time; in maintenance mode scheduled backups are skipped (and counted) unless
//! `[maintenance] run_backups`, and catch-up runs again when maintenance ends. Which databases
//! a run covers is decided when it starts (`coverage`, `selection`): with `databases = ["*"]` the server
//! is asked each time, so a database created since the last run is backed up too.

use super::coverage::{covered, register_skipped};
use super::error::BackupError;
use super::kind::BackupKind;
use super::schedule::Schedules;
use super::selection;
use crate::config::Config;
use crate::supervisor::{TaskError, TaskResult};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use super::coverage::SchedulerParts;

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
