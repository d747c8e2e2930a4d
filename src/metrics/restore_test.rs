//! Restore drills and the recovery figures they measure: how often a backup was restored and
//! its rows compared, when that last succeeded, how long it took (a measured recovery time),
//! and the age of each database's newest intact backup (the recovery point).

use super::reg::{MetricsError, Reg};
use prometheus::{GaugeVec, IntCounterVec};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Every restore-drill metric handle.
pub struct RestoreTestMetrics {
    pub tests: IntCounterVec,
    pub last_success: GaugeVec,
    pub duration: GaugeVec,
    pub recovery_point_age: GaugeVec,
    /// Unix time of each database's newest intact backup: the recovery point's age is
    /// computed from it at each scrape, so it grows between backups as data at risk does.
    newest_good: RwLock<BTreeMap<String, f64>>,
    /// The same from the bucket's catalog, when a bucket is configured: the later of the two
    /// counts.
    newest_offsite: RwLock<BTreeMap<String, f64>>,
}

impl RestoreTestMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        Ok(Self {
            tests: r.counter(
                "steward_backup_restore_tests_total",
                "Restore tests (scheduled drills and verify --restore-test), by result.",
                &["database", "result"],
            )?,
            last_success: r.float_vec(
                "steward_backup_restore_test_last_success_timestamp_seconds",
                "Unix time the newest restore test that passed finished.",
                &["database"],
            )?,
            duration: r.float_vec(
                "steward_backup_restore_test_duration_seconds",
                "How long the newest passing restore test took: a measured time to recover.",
                &["database"],
            )?,
            recovery_point_age: r.float_vec(
                "steward_backup_recovery_point_age_seconds",
                "Age of the database's newest intact backup: at most this much would be lost.",
                &["database"],
            )?,
            newest_good: RwLock::new(BTreeMap::new()),
            newest_offsite: RwLock::new(BTreeMap::new()),
        })
    }

    /// Exports both results of `database`'s restore tests at 0, so that `increase()` sees
    /// its first drill.
    pub(super) fn know_database(&self, database: &str) {
        for result in ["success", "failure"] {
            self.tests.with_label_values(&[database, result]);
        }
    }

    /// Sets the newest intact backup of each database (from the catalog).
    pub fn set_recovery_points(&self, newest: BTreeMap<String, f64>) {
        if let Ok(mut n) = self.newest_good.write() {
            *n = newest;
        }
    }

    /// Sets the newest intact backup of each database in the bucket (from its catalog).
    pub fn set_offsite_recovery_points(&self, newest: BTreeMap<String, f64>) {
        if let Ok(mut n) = self.newest_offsite.write() {
            *n = newest;
        }
    }

    /// Brings the recovery point ages up to `now` (before each scrape).
    pub(super) fn refresh_ages(&self, now: f64) {
        let (Ok(local), Ok(offsite)) = (self.newest_good.read(), self.newest_offsite.read()) else {
            return;
        };
        let mut newest = local.clone();
        for (db, at) in offsite.iter() {
            let e = newest.entry(db.clone()).or_insert(*at);
            *e = e.max(*at);
        }
        self.recovery_point_age.reset();
        for (db, at) in newest.iter() {
            self.recovery_point_age
                .with_label_values(&[db.as_str()])
                .set((now - at).max(0.0));
        }
    }
}
