//! Which databases a scheduled run (the backups' or the restore drills') covers, decided as
//! it starts, and the handles both schedules work with.

use super::handle::BackupHandle;
use super::selection;
use crate::config::Config;
use crate::maintenance::MaintenanceHandle;
use crate::metrics::Metrics;
use std::sync::Arc;

/// What the scheduler works with besides the config.
#[derive(Clone)]
pub struct SchedulerParts {
    pub backup: BackupHandle,
    /// Scheduled backups give way to maintenance mode.
    pub maintenance: MaintenanceHandle,
    pub metrics: Arc<Metrics>,
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
pub(super) fn register_skipped(parts: &SchedulerParts, dbs: &[String]) {
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
