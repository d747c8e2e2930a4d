//! The per-database off-site gauges (newest good copy, bytes held), set from a reading of the
//! bucket's catalog by the upload actor and after a retention run in the bucket.

use super::index::RemoteBackup;
use crate::metrics::Metrics;

/// Sets the per-database off-site gauges from the bucket's catalog.
pub(super) fn set_remote_metrics(metrics: &Metrics, all: &[RemoteBackup]) {
    use std::collections::BTreeMap;
    let mut newest: BTreeMap<&str, f64> = BTreeMap::new();
    let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
    for b in all.iter().filter(|b| !b.deleting) {
        let db = b.meta.database.as_str();
        *bytes.entry(db).or_default() += b.objects.iter().map(|(_, n)| n).sum::<u64>();
        if b.meta.is_good() {
            let at = crate::unix_seconds(b.meta.finished_at.unwrap_or(b.meta.started_at));
            let e = newest.entry(db).or_insert(at);
            *e = e.max(at);
        }
    }
    metrics.offsite.last_success.reset();
    for (db, at) in &newest {
        metrics
            .offsite
            .last_success
            .with_label_values(&[db])
            .set(*at);
    }
    metrics.restore_test.set_offsite_recovery_points(
        newest
            .into_iter()
            .map(|(db, at)| (db.to_string(), at))
            .collect(),
    );
    metrics.offsite.bytes.reset();
    for (db, n) in bytes {
        metrics.offsite.bytes.with_label_values(&[db]).set(n as i64);
    }
}
