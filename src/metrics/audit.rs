//! Audit-log metrics: entries written and entries that could not be (admin commands are then
//! refused), so an alert can catch an audit log that stopped working.

use super::reg::{MetricsError, Reg};
use prometheus::{IntCounter, IntCounterVec};

/// Every audit metric handle.
pub struct AuditMetrics {
    /// Entries appended, by `result` (`ok`, `error`).
    pub writes: IntCounterVec,
    /// Refused-request lines left out by the per-uid rate limit.
    pub denied_suppressed: IntCounter,
}

impl AuditMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let writes = r.counter(
            "steward_audit_writes_total",
            "Audit log entries by result: ok (written and flushed) or error (not written; admin \
             commands are refused while the audit log cannot be written).",
            &["result"],
        )?;
        for result in ["ok", "error"] {
            writes.with_label_values(&[result]);
        }
        let denied_suppressed = r.counter0(
            "steward_audit_denied_suppressed_total",
            "Refused control requests left out of the audit log by its per-uid rate limit (a \
             summary line counts them when the uid's next window opens).",
        )?;
        Ok(Self {
            writes,
            denied_suppressed,
        })
    }
}
