//! The Prometheus registry: every metric steward exports, created once and shared as `Arc<Metrics>`.

mod alerts;
mod audit;
mod backup;
pub mod basic_auth;
mod cache;
mod conn_limit;
pub mod families;
pub mod http;
mod http_stats;
pub mod offsite;
mod postgres;
pub mod redis;
mod reg;
pub mod restore_test;
pub mod scrape;
pub mod security;

pub use alerts::AlertMetrics;
pub use audit::AuditMetrics;
pub use backup::BackupMetrics;
pub use cache::CacheMetrics;
pub use http_stats::HttpMetrics;
pub use postgres::PgMetrics;
pub use redis::RedisMetrics;
pub use reg::MetricsError;

use reg::Reg;

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

/// Every metric handle, so that writers update them directly and a scrape only encodes.
pub struct Metrics {
    pub registry: Registry,
    pub up: IntGaugeVec,
    pub check_duration: HistogramVec,
    pub last_check: GaugeVec,
    pub check_failures: IntCounterVec,
    pub write_read_success: IntGaugeVec,
    pub pg: PgMetrics,
    pub redis: RedisMetrics,
    pub pool_connections: IntGaugeVec,
    pub pool_max: IntGaugeVec,
    pub pool_health_checks: IntCounterVec,
    pub task_up: IntGaugeVec,
    pub task_restarts: IntCounterVec,
    pub reload_ok: IntGauge,
    pub reload_success_time: Gauge,
    pub reloads: IntCounterVec,
    pub backup: BackupMetrics,
    /// Restore drills, recovery time and recovery point.
    pub restore_test: restore_test::RestoreTestMetrics,
    /// Off-site copies in the bucket of `[backup.remote]`.
    pub offsite: offsite::OffsiteMetrics,
    pub alerts: AlertMetrics,
    /// The HTTP endpoint itself: open, refused and unauthenticated connections.
    pub http: HttpMetrics,
    /// The Redis cache: namespace statistics, TTL audit, operation durations.
    pub cache: CacheMetrics,
    pub check_interval: GaugeVec,
    /// 1 while maintenance mode is on: the shipped Prometheus rules are silenced by it.
    pub maintenance_mode: IntGauge,
    /// Audit log entries written or not.
    pub audit: AuditMetrics,
    /// The last `/metrics` body, re-encoded when the state changed (see `scrape`).
    pub scrape: scrape::ScrapeCache,
}

impl Metrics {
    /// Builds and registers everything, including the process collector and build info.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let r = Reg(&registry);
        let buckets = vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        let check_duration = HistogramVec::new(
            HistogramOpts::new(
                "steward_check_duration_seconds",
                "Duration of each check step.",
            )
            .buckets(buckets),
            &["service", "check"],
        )?;
        registry.register(Box::new(check_duration.clone()))?;
        let m = Metrics {
            up: r.int_vec(
                "steward_up",
                "1 when the last check reached the service, else 0.",
                &["service"],
            )?,
            check_duration,
            last_check: r.float_vec(
                "steward_last_check_timestamp_seconds",
                "Unix time the last check of the service finished.",
                &["service"],
            )?,
            check_failures: r.counter(
                "steward_check_failures_total",
                "Failed check steps.",
                &["service", "check"],
            )?,
            write_read_success: r.int_vec(
                "steward_write_read_test_success",
                "1 when the last write/read test passed, else 0.",
                &["service"],
            )?,
            pg: PgMetrics::new(&r)?,
            redis: RedisMetrics::new(&r)?,
            backup: BackupMetrics::new(&r)?,
            restore_test: restore_test::RestoreTestMetrics::new(&r)?,
            offsite: offsite::OffsiteMetrics::new(&r)?,
            alerts: AlertMetrics::new(&r)?,
            http: HttpMetrics::new(&r)?,
            cache: CacheMetrics::new(&r)?,
            audit: AuditMetrics::new(&r)?,
            check_interval: r.float_vec(
                "steward_check_interval_seconds",
                "Configured time between checks of the service.",
                &["service"],
            )?,
            pool_connections: r.int_vec(
                "steward_pool_connections",
                "Connections in steward's own pool, by state.",
                &["service", "state"],
            )?,
            pool_health_checks: r.counter(
                "steward_pool_health_checks_total",
                "Tests of steward's pool between checks (every 30 s), by result.",
                &["service", "result"],
            )?,
            pool_max: r.int_vec(
                "steward_pool_max_connections",
                "Size limit of steward's pool.",
                &["service"],
            )?,
            task_up: r.int_vec(
                "steward_task_up",
                "1 while the task is running, else 0.",
                &["task"],
            )?,
            task_restarts: r.counter(
                "steward_task_restarts_total",
                "Restarts after a failure or panic.",
                &["task"],
            )?,
            reload_ok: r.int(
                "steward_config_last_reload_successful",
                "1 when the last config load succeeded, else 0.",
            )?,
            reload_success_time: r.float(
                "steward_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config load.",
            )?,
            reloads: r.counter(
                "steward_config_reloads_total",
                "Config reloads by result.",
                &["result"],
            )?,
            maintenance_mode: r.int(
                "steward_maintenance_mode",
                "1 while maintenance mode is on, else 0.",
            )?,
            scrape: scrape::ScrapeCache::default(),
            registry,
        };
        let build = m.int_vecs_build_info()?;
        build.with_label_values(&[crate::VERSION]).set(1);
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for svc in ["postgres", "redis"] {
            m.up.with_label_values(&[svc]).set(0);
            for result in ["success", "failure"] {
                m.pool_health_checks.with_label_values(&[svc, result]);
            }
            for check in ["ping", "stats", "write_read"] {
                m.check_failures.with_label_values(&[svc, check]);
            }
        }
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    fn int_vecs_build_info(&self) -> Result<IntGaugeVec, MetricsError> {
        Reg(&self.registry).int_vec(
            "steward_build_info",
            "Always 1; the labels carry the version.",
            &["version"],
        )
    }

    /// Says that stored state changed: the next scrape encodes afresh (see `scrape`).
    pub fn changed(&self) {
        self.scrape.changed();
    }

    /// The `/metrics` body: the cached encoding while nothing changed, else a fresh one.
    pub fn scrape_body(&self) -> bytes::Bytes {
        self.scrape.get_or_encode(|| self.render())
    }

    /// The text exposition of everything registered, encoded now.
    pub fn render(&self) -> Vec<u8> {
        use prometheus::Encoder;
        self.restore_test.refresh_ages(crate::unix_now());
        let mut buf = Vec::with_capacity(16 * 1024);
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

impl Metrics {
    /// Exports the backup and restore-test counters of `database` at 0 (see
    /// [`BackupMetrics::know_database`]).
    pub fn know_backup_database(&self, database: &str) {
        self.backup.know_database(database);
        self.restore_test.know_database(database);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_and_renders_required_names() {
        let m = Metrics::new().unwrap();
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "steward_up{service=\"postgres\"} 0",
            "steward_build_info{version=",
            "steward_config_last_reload_successful",
            "steward_check_failures_total{check=\"ping\",service=\"redis\"} 0",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }

    #[test]
    fn a_known_database_has_every_counter_at_zero() {
        let m = Metrics::new().unwrap();
        m.know_backup_database("app");
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"steward_backups_total{database="app",kind="daily",result="success"} 0"#,
            r#"steward_backups_total{database="app",kind="pre-restore",result="skipped"} 0"#,
            r#"steward_backup_pruned_total{database="app",kind="manual"} 0"#,
            r#"steward_backup_skipped_total{database="app",kind="weekly"} 0"#,
            r#"steward_backup_restore_tests_total{database="app",result="failure"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line}");
        }
        assert!(!text.contains(r#"steward_backup_skipped_total{database="app",kind="manual"}"#));
    }
}
