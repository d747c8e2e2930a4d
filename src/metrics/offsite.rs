//! Off-site copies: uploads by result, the queue waiting for the bucket, and per database the
//! newest checked copy there and the bytes the bucket holds.

use super::reg::{MetricsError, Reg};
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec};

/// Every off-site metric handle.
pub struct OffsiteMetrics {
    pub uploads: IntCounterVec,
    pub queue: IntGauge,
    /// Failed attempts in a row since the last upload that succeeded.
    pub consecutive_failures: IntGauge,
    pub last_success: GaugeVec,
    pub bytes: IntGaugeVec,
}

impl OffsiteMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let uploads = r.counter(
            "steward_backup_uploads_total",
            "Uploads of a backup to the bucket of backup.remote, by result (success: every file checked there).",
            &["result"],
        )?;
        // Both results from the start, so that increase() sees the first of each.
        for result in ["success", "failure"] {
            uploads.with_label_values(&[result]);
        }
        Ok(Self {
            uploads,
            queue: r.int(
                "steward_backup_upload_queue",
                "Backups waiting for their off-site copy.",
            )?,
            consecutive_failures: r.int(
                "steward_backup_upload_consecutive_failures",
                "Failed upload attempts in a row since the last upload that succeeded.",
            )?,
            last_success: r.float_vec(
                "steward_backup_remote_last_success_timestamp_seconds",
                "Unix time the newest intact backup of the database in the bucket finished.",
                &["database"],
            )?,
            bytes: r.int_vec(
                "steward_backup_remote_bytes",
                "Bytes the bucket holds for the database's backups.",
                &["database"],
            )?,
        })
    }
}
