//! Alert metrics: which alerts fire, how often they change state, and what Alertmanager
//! deliveries did.

use super::reg::{MetricsError, Reg};
use prometheus::{IntCounterVec, IntGaugeVec};

/// Every alert metric handle.
pub struct AlertMetrics {
    pub active: IntGaugeVec,
    pub transitions: IntCounterVec,
    pub notifications: IntCounterVec,
}

impl AlertMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let m = Self {
            active: r.int_vec(
                "steward_alert_active",
                "1 while the alert fires (also during maintenance, when it is not sent), else 0.",
                &["alert", "service", "severity"],
            )?,
            transitions: r.counter(
                "steward_alert_transitions_total",
                "Alert state changes, by the state entered.",
                &["alert", "to"],
            )?,
            notifications: r.counter(
                "steward_alertmanager_notifications_total",
                "Deliveries of alerts to Alertmanager, by result.",
                &["result"],
            )?,
        };
        for result in ["success", "failure"] {
            m.notifications.with_label_values(&[result]);
        }
        Ok(m)
    }
}
