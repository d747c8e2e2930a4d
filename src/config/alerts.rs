//! `[alerts]` and `[alertmanager]`: each alert rule's threshold, `for` duration and severity,
//! and where firing alerts are sent.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How urgent an alert is; the `severity` label everywhere it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One rule's settings. Fields a rule does not use stay unset (and setting them is an error),
/// so `check-config` shows each rule with exactly the knobs it has (TOML leaves unset ones out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub enabled: bool,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", with = "humantime_serde")]
    pub for_: Duration,
    pub severity: Severity,
    /// The rule's limit, in the unit its documentation names (seconds, a ratio, a factor, a count).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The second, critical limit of PostgresConnectionsHigh and XidWraparound.
    #[serde(default)]
    pub critical: Option<f64>,
    /// CacheHitRatioLow stays quiet below this much traffic.
    #[serde(default)]
    pub min_lookups_per_second: Option<f64>,
    /// TaskRestarting counts restarts within this window.
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    /// BackupStale: how late a scheduled backup may be beyond its period.
    #[serde(default, with = "humantime_serde")]
    pub grace: Option<Duration>,
    /// BackupStale: a fixed limit on the age of a database's newest good backup (any kind),
    /// instead of the schedules' periods.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// BackupUploadFailing: how many upload attempts in a row must fail before it fires.
    #[serde(default)]
    pub min_failures: Option<u32>,
}

impl Rule {
    fn base(for_secs: u64, severity: Severity) -> Self {
        Self {
            enabled: true,
            for_: Duration::from_secs(for_secs),
            severity,
            threshold: None,
            critical: None,
            min_lookups_per_second: None,
            window: None,
            grace: None,
            max_age: None,
            min_failures: None,
        }
    }

    fn threshold(mut self, t: f64) -> Self {
        self.threshold = Some(t);
        self
    }
}

/// A rule as written in the file: every field optional, laid over the rule's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    enabled: Option<bool>,
    #[serde(rename = "for", default, with = "humantime_serde")]
    for_: Option<Duration>,
    severity: Option<Severity>,
    threshold: Option<f64>,
    critical: Option<f64>,
    min_lookups_per_second: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<Duration>,
    min_failures: Option<u32>,
}

macro_rules! alert_rules {
    ($($field:ident: $name:literal, [$($extra:ident),*];)*) => {
        /// `[alerts.<rule>]` tables, one per alert steward evaluates.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "AlertsFile")]
        pub struct AlertsConfig {
            $(pub $field: Rule,)*
        }

        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct AlertsFile {
            $($field: Option<RulePatch>,)*
        }

        impl TryFrom<AlertsFile> for AlertsConfig {
            type Error = String;
            fn try_from(f: AlertsFile) -> Result<Self, String> {
                let mut c = AlertsConfig::default();
                $(if let Some(p) = f.$field {
                    apply(&mut c.$field, p, concat!("alerts.", stringify!($field)), $name, &[$(stringify!($extra)),*])?;
                })*
                Ok(c)
            }
        }

        impl AlertsConfig {
            /// Every rule with its config key (`service_down`) and alert name (`ServiceDown`).
            pub fn rules(&self) -> Vec<(&'static str, &'static str, &Rule)> {
                vec![$((stringify!($field), $name, &self.$field),)*]
            }
        }
    };
}

alert_rules! {
    service_down: "ServiceDown", [severity];
    slow_response: "SlowResponse", [severity, threshold];
    postgres_connections_high: "PostgresConnectionsHigh", [threshold, critical];
    redis_memory_high: "RedisMemoryHigh", [severity, threshold];
    cache_hit_ratio_low: "CacheHitRatioLow", [severity, threshold, min_lookups_per_second];
    write_read_test_failed: "WriteReadTestFailed", [severity];
    backup_failed: "BackupFailed", [severity];
    backup_damaged: "BackupDamaged", [severity];
    backup_stale: "BackupStale", [severity, grace, max_age];
    backup_restore_test_failed: "BackupRestoreTestFailed", [severity];
    backup_restore_test_stale: "BackupRestoreTestStale", [severity, grace, max_age];
    backup_storage_low: "BackupStorageLow", [severity, threshold];
    backup_offsite_stale: "BackupOffsiteStale", [severity, grace, max_age];
    backup_upload_failing: "BackupUploadFailing", [severity, min_failures];
    task_restarting: "TaskRestarting", [severity, threshold, window];
    cache_eviction_policy: "CacheEvictionPolicy", [severity];
    long_transaction: "LongTransaction", [severity, threshold];
    idle_in_transaction: "IdleInTransaction", [severity, threshold];
    lock_waits: "LockWaits", [severity, threshold];
    deadlocks: "Deadlocks", [severity, window];
    redis_persistence_failing: "RedisPersistenceFailing", [severity];
    redis_replica_link_down: "RedisReplicaLinkDown", [severity];
    redis_rejected_connections: "RedisRejectedConnections", [severity, threshold];
    replication_lag: "ReplicationLag", [severity, threshold];
    replication_slot_inactive: "ReplicationSlotInactive", [severity, threshold];
    xid_wraparound: "XidWraparound", [threshold, critical];
}

/// Lays a patch over a rule's defaults, refusing knobs the rule does not have.
fn apply(
    rule: &mut Rule,
    p: RulePatch,
    key: &str,
    name: &str,
    allowed: &[&str],
) -> Result<(), String> {
    let given = [
        ("severity", p.severity.is_some()),
        ("threshold", p.threshold.is_some()),
        ("critical", p.critical.is_some()),
        ("min_lookups_per_second", p.min_lookups_per_second.is_some()),
        ("window", p.window.is_some()),
        ("grace", p.grace.is_some()),
        ("max_age", p.max_age.is_some()),
        ("min_failures", p.min_failures.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
        let has = if allowed.is_empty() {
            "only enabled and for".to_string()
        } else {
            format!("enabled, for, {}", allowed.join(", "))
        };
        return Err(format!(
            "{key}.{field}: {name} has no {field}; its keys are {has}"
        ));
    }
    rule.enabled = p.enabled.unwrap_or(rule.enabled);
    rule.for_ = p.for_.unwrap_or(rule.for_);
    rule.severity = p.severity.unwrap_or(rule.severity);
    rule.threshold = p.threshold.or(rule.threshold);
    rule.critical = p.critical.or(rule.critical);
    rule.min_lookups_per_second = p.min_lookups_per_second.or(rule.min_lookups_per_second);
    rule.window = p.window.or(rule.window);
    rule.grace = p.grace.or(rule.grace);
    rule.max_age = p.max_age.or(rule.max_age);
    rule.min_failures = p.min_failures.or(rule.min_failures);
    Ok(())
}

/// ReplicationSlotInactive's default: an inactive slot holding more than 1 GiB of WAL.
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Default for AlertsConfig {
    fn default() -> Self {
        use Severity::{Critical, Warning};
        let mut connections = Rule::base(300, Warning).threshold(0.8);
        connections.critical = Some(0.95);
        let mut hit_ratio = Rule::base(900, Warning).threshold(0.8);
        hit_ratio.min_lookups_per_second = Some(10.0);
        let mut stale = Rule::base(0, Critical);
        stale.grace = Some(Duration::from_secs(2 * 3600));
        let mut drill_stale = Rule::base(0, Warning);
        drill_stale.grace = Some(Duration::from_secs(24 * 3600));
        let mut offsite_stale = Rule::base(0, Warning);
        offsite_stale.grace = Some(Duration::from_secs(6 * 3600));
        let mut upload_failing = Rule::base(0, Warning);
        upload_failing.min_failures = Some(3);
        let mut deadlocks = Rule::base(0, Warning);
        deadlocks.window = Some(Duration::from_secs(5 * 60));
        let mut wraparound = Rule::base(300, Warning).threshold(0.5);
        wraparound.critical = Some(0.8);
        let mut restarting = Rule::base(0, Warning).threshold(3.0);
        restarting.window = Some(Duration::from_secs(15 * 60));
        Self {
            service_down: Rule::base(60, Critical),
            slow_response: Rule::base(120, Warning).threshold(5.0),
            postgres_connections_high: connections,
            redis_memory_high: Rule::base(300, Warning).threshold(0.9),
            cache_hit_ratio_low: hit_ratio,
            write_read_test_failed: Rule::base(60, Critical),
            backup_failed: Rule::base(0, Critical),
            backup_damaged: Rule::base(0, Critical),
            backup_stale: stale,
            backup_restore_test_failed: Rule::base(0, Critical),
            backup_restore_test_stale: drill_stale,
            backup_storage_low: Rule::base(0, Warning).threshold(2.0),
            backup_offsite_stale: offsite_stale,
            backup_upload_failing: upload_failing,
            task_restarting: restarting,
            cache_eviction_policy: Rule::base(300, Warning),
            long_transaction: Rule::base(0, Warning).threshold(3600.0),
            idle_in_transaction: Rule::base(0, Warning).threshold(300.0),
            lock_waits: Rule::base(0, Warning).threshold(60.0),
            deadlocks,
            redis_persistence_failing: Rule::base(0, Critical),
            redis_replica_link_down: Rule::base(60, Critical),
            redis_rejected_connections: Rule::base(0, Warning).threshold(0.0),
            replication_lag: Rule::base(120, Warning).threshold(300.0),
            replication_slot_inactive: Rule::base(300, Warning).threshold(GIB),
            xid_wraparound: wraparound,
        }
    }
}

/// `[alertmanager]`: where firing alerts go; off while `url` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`; alerts are POSTed to `<url>/api/v2/alerts`.
    pub url: String,
    /// How often a firing alert is sent again, so Alertmanager does not time it out.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resend_interval: Duration::from_secs(60),
        }
    }
}

/// Checks the limits serde cannot: ratios within 0–1, positive limits, sane windows.
pub(super) fn validate(
    a: &AlertsConfig,
    am: &AlertmanagerConfig,
    out: &mut Vec<super::problem::Problem>,
) {
    use super::problem::Problem;
    let ratio = |key: &str, v: Option<f64>, out: &mut Vec<Problem>| {
        if let Some(v) = v {
            if !(v > 0.0 && v <= 1.0) {
                out.push(Problem::new(
                    key,
                    format!("{v} must be a ratio above 0 and at most 1"),
                ));
            }
        }
    };
    ratio(
        "alerts.postgres_connections_high.threshold",
        a.postgres_connections_high.threshold,
        out,
    );
    ratio(
        "alerts.postgres_connections_high.critical",
        a.postgres_connections_high.critical,
        out,
    );
    ratio(
        "alerts.redis_memory_high.threshold",
        a.redis_memory_high.threshold,
        out,
    );
    ratio(
        "alerts.cache_hit_ratio_low.threshold",
        a.cache_hit_ratio_low.threshold,
        out,
    );
    ratio(
        "alerts.xid_wraparound.threshold",
        a.xid_wraparound.threshold,
        out,
    );
    ratio(
        "alerts.xid_wraparound.critical",
        a.xid_wraparound.critical,
        out,
    );
    for (key, rule) in [
        (
            "alerts.postgres_connections_high.critical",
            &a.postgres_connections_high,
        ),
        ("alerts.xid_wraparound.critical", &a.xid_wraparound),
    ] {
        if let (Some(w), Some(c)) = (rule.threshold, rule.critical) {
            if c < w {
                out.push(Problem::new(
                    key,
                    format!("{c} is below the warning threshold {w}; the critical limit must be the higher one"),
                ));
            }
        }
    }
    for (key, v) in [
        ("alerts.slow_response.threshold", a.slow_response.threshold),
        (
            "alerts.backup_storage_low.threshold",
            a.backup_storage_low.threshold,
        ),
        (
            "alerts.cache_hit_ratio_low.min_lookups_per_second",
            a.cache_hit_ratio_low.min_lookups_per_second,
        ),
        (
            "alerts.long_transaction.threshold",
            a.long_transaction.threshold,
        ),
        (
            "alerts.idle_in_transaction.threshold",
            a.idle_in_transaction.threshold,
        ),
        ("alerts.lock_waits.threshold", a.lock_waits.threshold),
        (
            "alerts.redis_rejected_connections.threshold",
            a.redis_rejected_connections.threshold,
        ),
        (
            "alerts.replication_lag.threshold",
            a.replication_lag.threshold,
        ),
        (
            "alerts.replication_slot_inactive.threshold",
            a.replication_slot_inactive.threshold,
        ),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            out.push(Problem::new(
                key,
                format!("{v} must be a number of at least 0"),
            ));
        }
    }
    if let Some(t) = a.task_restarting.threshold {
        if !(t >= 0.0 && t.fract() == 0.0) {
            out.push(Problem::new(
                "alerts.task_restarting.threshold",
                format!("{t} must be a whole number of restarts"),
            ));
        }
    }
    if a.task_restarting.window.is_some_and(|w| w.is_zero()) {
        out.push(Problem::new(
            "alerts.task_restarting.window",
            "must be greater than zero (e.g. \"15m\")",
        ));
    }
    if a.deadlocks.window.is_some_and(|w| w.is_zero()) {
        out.push(Problem::new(
            "alerts.deadlocks.window",
            "must be greater than zero (e.g. \"5m\")",
        ));
    }
    if a.backup_stale.max_age.is_some_and(|w| w.is_zero()) {
        out.push(Problem::new(
            "alerts.backup_stale.max_age",
            "must be greater than zero (e.g. \"26h\"), or left out to follow the schedules",
        ));
    }
    if a.backup_offsite_stale.max_age.is_some_and(|w| w.is_zero()) {
        out.push(Problem::new(
            "alerts.backup_offsite_stale.max_age",
            "must be greater than zero (e.g. \"30h\"), or left out to follow the schedules",
        ));
    }
    if a.backup_upload_failing.min_failures == Some(0) {
        out.push(Problem::new(
            "alerts.backup_upload_failing.min_failures",
            "must be at least 1 (failed upload attempts in a row)",
        ));
    }
    validate_alertmanager(am, out);
}

fn validate_alertmanager(am: &AlertmanagerConfig, out: &mut Vec<super::problem::Problem>) {
    use super::problem::Problem;
    if am.resend_interval.is_zero() {
        out.push(Problem::new(
            "alertmanager.resend_interval",
            "must be greater than zero (e.g. \"1m\")",
        ));
    }
    if am.url.is_empty() {
        return;
    }
    match url::Url::parse(&am.url) {
        Ok(u) if u.scheme() != "http" => out.push(Problem::new(
            "alertmanager.url",
            format!("scheme {:?} is not supported; use http://host:9093 (reach a TLS Alertmanager through a local proxy)", u.scheme()),
        )),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => out.push(Problem::new(
            "alertmanager.url",
            "credentials in the URL are not supported; reach an authenticating Alertmanager through a local proxy",
        )),
        Ok(u) if u.host_str().is_none() => out.push(Problem::new(
            "alertmanager.url",
            "has no host; use http://host:9093",
        )),
        Ok(_) => {}
        Err(e) => out.push(Problem::new(
            "alertmanager.url",
            format!("not a URL ({e}); use http://host:9093"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, String> {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        v.try_into::<AlertsConfig>().map_err(|e| e.to_string())
    }

    #[test]
    fn a_patch_keeps_the_rule_defaults_it_does_not_set() {
        let c = parse("[slow_response]\nfor = \"10s\"\n").unwrap();
        assert_eq!(c.slow_response.for_, Duration::from_secs(10));
        assert_eq!(c.slow_response.threshold, Some(5.0));
        assert_eq!(c.slow_response.severity, Severity::Warning);
        assert_eq!(c.service_down, AlertsConfig::default().service_down);
    }

    #[test]
    fn a_knob_the_rule_lacks_is_named() {
        let e = parse("[service_down]\nthreshold = 3\n").unwrap_err();
        assert!(e.contains("alerts.service_down.threshold"), "{e}");
        assert!(e.contains("ServiceDown has no threshold"), "{e}");
        assert!(parse("[service_down]\nfrobnicate = 1\n").is_err());
    }

    #[test]
    fn the_offsite_rules_have_their_own_knobs() {
        let d = AlertsConfig::default();
        assert_eq!(d.backup_upload_failing.min_failures, Some(3));
        assert_eq!(
            d.backup_offsite_stale.grace,
            Some(Duration::from_secs(6 * 3600))
        );
        let c = parse("[backup_upload_failing]\nmin_failures = 5\n[backup_offsite_stale]\nmax_age = \"30h\"\n").unwrap();
        assert_eq!(c.backup_upload_failing.min_failures, Some(5));
        assert_eq!(
            c.backup_offsite_stale.max_age,
            Some(Duration::from_secs(30 * 3600))
        );
        let e = parse("[backup_stale]\nmin_failures = 2\n").unwrap_err();
        assert!(e.contains("BackupStale has no min_failures"), "{e}");
        let e = parse("[backup_upload_failing]\ngrace = \"1h\"\n").unwrap_err();
        assert!(e.contains("BackupUploadFailing has no grace"), "{e}");
        let mut a = AlertsConfig::default();
        a.backup_upload_failing.min_failures = Some(0);
        a.backup_offsite_stale.max_age = Some(Duration::ZERO);
        let mut out = Vec::new();
        validate(&a, &AlertmanagerConfig::default(), &mut out);
        let keys: Vec<_> = out.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerts.backup_offsite_stale.max_age",
                "alerts.backup_upload_failing.min_failures"
            ]
        );
    }

    #[test]
    fn the_postgres_replication_rules_have_their_knobs_and_limits() {
        let d = AlertsConfig::default();
        assert_eq!(d.replication_lag.threshold, Some(300.0));
        assert_eq!(d.replication_slot_inactive.threshold, Some(GIB));
        assert_eq!(
            (d.xid_wraparound.threshold, d.xid_wraparound.critical),
            (Some(0.5), Some(0.8))
        );
        let c = parse("[replication_lag]\nthreshold = 10\nfor = \"5s\"\n").unwrap();
        assert_eq!(c.replication_lag.threshold, Some(10.0));
        let e = parse("[xid_wraparound]\nseverity = \"critical\"\n").unwrap_err();
        assert!(e.contains("XidWraparound has no severity"), "{e}");
        let mut a = AlertsConfig::default();
        a.xid_wraparound.threshold = Some(0.9);
        a.replication_slot_inactive.threshold = Some(-1.0);
        let mut out = Vec::new();
        validate(&a, &AlertmanagerConfig::default(), &mut out);
        let keys: Vec<_> = out.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerts.xid_wraparound.critical",
                "alerts.replication_slot_inactive.threshold"
            ]
        );
    }

    #[test]
    fn limits_are_checked() {
        let mut a = AlertsConfig::default();
        a.redis_memory_high.threshold = Some(1.5);
        a.postgres_connections_high.critical = Some(0.5);
        a.task_restarting.threshold = Some(2.5);
        let am = AlertmanagerConfig {
            url: "https://am:9093".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        validate(&a, &am, &mut out);
        let keys: Vec<_> = out.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerts.redis_memory_high.threshold",
                "alerts.postgres_connections_high.critical",
                "alerts.task_restarting.threshold",
                "alertmanager.url"
            ]
        );
        let mut out = Vec::new();
        validate(
            &AlertsConfig::default(),
            &AlertmanagerConfig::default(),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }
}
