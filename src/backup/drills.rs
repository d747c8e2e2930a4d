//! Scheduled restore drills (`[backup.restore_test] schedule`): at each scheduled time the
//! newest good backup of each database is restored into a marked scratch database, its rows
//! compared with those counted at backup time, and the copy dropped — `backup verify
//! --restore-test`, run by the clock. Results land in the catalog, the metrics and the alerts.

use super::coverage::{covered, SchedulerParts};
use super::schedule::Schedule;
use crate::config::Config;
use chrono::Utc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs drills at their scheduled times until cancelled; returns at once when they are off.
pub(super) async fn run(
    parts: SchedulerParts,
    cfg: std::sync::Arc<Config>,
    cancel: CancellationToken,
) {
    let schedule = match Schedule::drills(&cfg.backup.restore_test.schedule, &cfg.backup.schedule) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "restore drills are off: their schedule cannot be read");
            return;
        }
    };
    loop {
        let Some(at) = schedule.next_after(Utc::now()) else {
            return;
        };
        tracing::debug!(at = %at, "next restore drill");
        // Wall-clock time: re-check at least every minute, so a clock change is noticed.
        loop {
            let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
            }
        }
        drill_all(&parts, &cfg).await;
    }
}

/// One drill of every database the backups cover, one after another.
async fn drill_all(parts: &SchedulerParts, cfg: &Config) {
    for db in covered(parts, cfg).await {
        let newest = match parts.backup.list(Some(db.clone())).await {
            Ok(all) => all.into_iter().find(|m| m.is_good()),
            Err(e) => {
                tracing::warn!(database = %db, error = %e, "restore drill skipped: the catalog cannot be read");
                continue;
            }
        };
        let Some(b) = newest else {
            tracing::warn!(database = %db, "restore drill skipped: no good backup to restore");
            continue;
        };
        tracing::info!(database = %db, id = %b.id, "restore drill started");
        // The verify records the result (catalog, metrics) and logs it.
        if let Err(e) = parts.backup.verify(b.id.clone(), true).await {
            tracing::warn!(database = %db, id = %b.id, error = %e, "restore drill could not run");
        }
    }
}
