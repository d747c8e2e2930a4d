//! Backup metrics: last success, duration and size per database and kind, outcomes, what is
//! running, the catalog's totals, next runs, restores, free space, and scheduled backups skipped
//! in maintenance mode.

use super::reg::{MetricsError, Reg};
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec};

/// Every backup metric handle.
pub struct BackupMetrics {
    pub last_success: GaugeVec,
    pub last_duration: GaugeVec,
    pub last_size: IntGaugeVec,
    pub total: IntCounterVec,
    pub running: IntGaugeVec,
    pub catalog_backups: IntGaugeVec,
    pub catalog_bytes: IntGaugeVec,
    /// Damaged entries in the catalog (failed a verify, or metadata that fails its checksum).
    pub damaged: IntGaugeVec,
    pub next_run: GaugeVec,
    pub restores: IntCounterVec,
    pub dir_free: IntGauge,
    /// 1 when the backup directory can be used, 0 when not (see `dir_problem`).
    pub dir_usable: IntGauge,
    /// Why the backup directory cannot be used, as last found by the backup manager; `/health`
    /// shows it (it is state, not a sample: text has no place in a label).
    pub dir_problem: std::sync::RwLock<Option<String>>,
    pub verifies: IntCounterVec,
    pub prune_deleted: IntCounterVec,
    pub last_prune: Gauge,
    /// Scheduled backups not taken because maintenance mode was on.
    pub skipped: IntCounterVec,
}

impl BackupMetrics {
    /// Why the backup directory cannot be used, as last found.
    pub fn dir_problem(&self) -> Option<String> {
        self.dir_problem.read().ok().and_then(|p| p.clone())
    }

    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let m = Self {
            last_success: r.float_vec(
                "steward_backup_last_success_timestamp_seconds",
                "Unix time the newest good backup finished.",
                &["database", "kind"],
            )?,
            last_duration: r.float_vec(
                "steward_backup_last_duration_seconds",
                "Duration of the newest good backup.",
                &["database", "kind"],
            )?,
            last_size: r.int_vec(
                "steward_backup_last_size_bytes",
                "Stored size of the newest good backup.",
                &["database", "kind"],
            )?,
            total: r.counter(
                "steward_backups_total",
                "Backups finished, by result (success, failure, or skipped: another steward instance was backing up the database).",
                &["database", "kind", "result"],
            )?,
            running: r.int_vec(
                "steward_backup_running",
                "1 while a backup of the database runs.",
                &["database"],
            )?,
            catalog_backups: r.int_vec(
                "steward_backup_catalog_backups",
                "Good backups in the catalog.",
                &["database"],
            )?,
            catalog_bytes: r.int_vec(
                "steward_backup_catalog_bytes",
                "Stored bytes of the good backups in the catalog.",
                &["database"],
            )?,
            damaged: r.int_vec(
                "steward_backup_damaged",
                "Damaged backups in the catalog: a verify found the file does not match its metadata, or the metadata fails its own checksum.",
                &["database"],
            )?,
            next_run: r.float_vec(
                "steward_backup_next_run_timestamp_seconds",
                "Unix time of the next scheduled backup.",
                &["kind"],
            )?,
            restores: r.counter(
                "steward_restores_total",
                "Restores, by result.",
                &["result"],
            )?,
            dir_free: r.int(
                "steward_backup_dir_free_bytes",
                "Free bytes on the backup directory's filesystem.",
            )?,
            dir_usable: r.int(
                "steward_backup_dir_usable",
                "1 when the backup directory is a directory steward can write in (or create), 0 when not: backups then fail.",
            )?,
            dir_problem: std::sync::RwLock::new(None),
            verifies: r.counter(
                "steward_backup_verifications_total",
                "Verifications, by result.",
                &["result"],
            )?,
            prune_deleted: r.counter(
                "steward_backup_pruned_total",
                "Backup copies deleted by retention, locally and in the bucket.",
                &["database", "kind"],
            )?,
            last_prune: r.float(
                "steward_backup_last_prune_timestamp_seconds",
                "Unix time retention last ran.",
            )?,
            skipped: r.counter(
                "steward_backup_skipped_total",
                "Scheduled backups skipped because maintenance mode was on.",
                &["database", "kind"],
            )?,
        };
        for result in ["success", "failure"] {
            m.restores.with_label_values(&[result]);
            m.verifies.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// Exports every counter series of `database` at 0 (each kind and result), so that
    /// `increase()` in a rule or on the dashboard sees its first backup, skip or prune: a
    /// series born at 1 has no increase. Idempotent; called for the databases steward backs up
    /// as soon as it knows them.
    pub fn know_database(&self, database: &str) {
        for kind in KINDS {
            for result in BACKUP_RESULTS {
                self.total.with_label_values(&[database, kind, result]);
            }
            self.prune_deleted.with_label_values(&[database, kind]);
        }
        for kind in SCHEDULED_KINDS {
            self.skipped.with_label_values(&[database, kind]);
        }
    }
}

/// The `kind` label values (`BackupKind::as_str`).
const KINDS: [&str; 4] = ["manual", "daily", "weekly", "pre-restore"];
/// The kinds a schedule starts, the only ones maintenance mode skips.
const SCHEDULED_KINDS: [&str; 2] = ["daily", "weekly"];
/// The `result` label values of `steward_backups_total`.
const BACKUP_RESULTS: [&str; 3] = ["success", "failure", "skipped"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_labels_are_every_backup_kind() {
        let all: Vec<&str> = crate::backup::BackupKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(all, KINDS);
    }
}
