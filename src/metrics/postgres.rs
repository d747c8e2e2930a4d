//! PostgreSQL metrics: the figures of the last good check, and the health of each collector
//! group (its families live in a [`super::families::Store`] the collector task fills).

use super::reg::{MetricsError, Reg};
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec};

/// PostgreSQL figures from the last good check, and the collector groups' own health.
pub struct PgMetrics {
    pub connections: IntGauge,
    pub max_connections: IntGauge,
    pub reserved_connections: IntGauge,
    pub usage_ratio: prometheus::Gauge,
    pub version_num: IntGauge,
    pub in_recovery: IntGauge,
    /// How long each group's last run took: where a slow server spends steward's time.
    pub collector_duration: GaugeVec,
    /// 1 when a group's last run succeeded; 0 when it failed or lacked a privilege.
    pub collector_up: IntGaugeVec,
    /// Failed runs per group, so that a group failing now and then is seen too.
    pub collector_errors: IntCounterVec,
}

impl PgMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        Ok(Self {
            connections: r.int(
                "steward_postgres_connections",
                "Client backends connected (pg_stat_activity).",
            )?,
            max_connections: r.int(
                "steward_postgres_max_connections",
                "The server's max_connections.",
            )?,
            reserved_connections: r.int(
                "steward_postgres_reserved_connections",
                "The server's superuser_reserved_connections.",
            )?,
            usage_ratio: r.float(
                "steward_postgres_connection_usage_ratio",
                "Connections over max_connections minus superuser_reserved_connections.",
            )?,
            version_num: r.int(
                "steward_postgres_server_version_num",
                "The server's server_version_num.",
            )?,
            in_recovery: r.int(
                "steward_postgres_in_recovery",
                "1 when the server is a read-only standby.",
            )?,
            collector_duration: r.float_vec(
                "steward_postgres_collector_duration_seconds",
                "How long the collector group's last run took.",
                &["group"],
            )?,
            collector_up: r.int_vec(
                "steward_postgres_collector_up",
                "1 when the collector group's last run succeeded; 0 when it failed or lacked a privilege.",
                &["group"],
            )?,
            collector_errors: r.counter(
                "steward_postgres_collector_errors_total",
                "Failed runs of the collector group.",
                &["group"],
            )?,
        })
    }
}
