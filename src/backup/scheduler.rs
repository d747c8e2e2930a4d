//! The `backup.scheduler` task: catch-up at start, then a backup of every configured database
//! at each scheduled time.

use super::schedule::Schedules;
use super::{BackupError, BackupHandle, BackupKind};
use crate::config::Config;
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

/// One run of the task, until cancelled.
pub async fn run(handle: BackupHandle, cfg: Arc<Config>, cancel: CancellationToken) -> TaskResult {
    let schedules =
        Schedules::from_config(&cfg.backup.schedule).map_err(TaskError::from_display)?;
    let dbs = databases(&cfg);
    handle.set_next_runs(schedules.next_runs(Utc::now())).await;
    catch_up(&handle, &schedules, &dbs, &cancel).await;
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
            }
        }
        for db in &dbs {
            let _ = start(&handle, db, kind, "scheduled").await;
        }
    }
}

/// Runs now each scheduled kind whose newest good backup is older than its period, one after
/// the other (one backup per database at a time).
async fn catch_up(
    handle: &BackupHandle,
    schedules: &Schedules,
    dbs: &[String],
    cancel: &CancellationToken,
) {
    let all = match handle.list(None).await {
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
            if let Some(done) = start(handle, db, s.kind(), "catch-up").await {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = done => {}
                }
            }
        }
    }
}

async fn start(
    handle: &BackupHandle,
    db: &str,
    kind: BackupKind,
    why: &str,
) -> Option<tokio::sync::oneshot::Receiver<super::catalog::BackupMeta>> {
    match handle.create(db.to_string(), kind, None).await {
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
