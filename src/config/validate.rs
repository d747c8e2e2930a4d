//! Validation: one problem per key, each naming the key and saying what to do.

use super::model::Config;
use super::problem::Problem;
use std::str::FromStr;
use std::time::Duration;

/// Checks everything serde cannot: URLs, durations' relations, names, modes.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    check_postgres_url(c, &mut out);
    check_redis_url(c, &mut out);
    for (svc, interval, timeout, pool) in [
        (
            "postgres",
            c.postgres.interval,
            c.postgres.timeout,
            c.postgres.pool_max,
        ),
        ("redis", c.redis.interval, c.redis.timeout, c.redis.pool_max),
    ] {
        if interval.is_zero() {
            out.push(Problem::new(
                format!("{svc}.interval"),
                "must be greater than zero (e.g. \"30s\")",
            ));
        }
        if timeout.is_zero() {
            out.push(Problem::new(
                format!("{svc}.timeout"),
                "must be greater than zero (e.g. \"5s\")",
            ));
        } else if !interval.is_zero() && timeout >= interval {
            out.push(Problem::new(
                format!("{svc}.timeout"),
                format!(
                    "{} must be shorter than {svc}.interval ({})",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            ));
        }
        if pool == 0 {
            out.push(Problem::new(
                format!("{svc}.pool_max"),
                "must be at least 1",
            ));
        }
    }
    if !is_table_name(&c.postgres.heartbeat_table) {
        out.push(Problem::new(
            "postgres.heartbeat_table",
            "must be a table name ([schema.]name: letters, digits, underscores, not starting with a digit)",
        ));
    }
    super::control::check(&c.control, &mut out);
    super::audit::check(&c.audit, &mut out);
    super::instance::check(&c.instance, &mut out);
    super::metrics_check::check(c, &mut out);
    super::backup::validate(&c.backup, &mut out);
    super::alerts::validate(&c.alerts, &c.alertmanager, &mut out);
    super::cache::validate(&c.cache, &mut out);
    if !matches!(c.redis.profile.as_str(), "default" | "production") {
        out.push(Problem::new(
            "redis.profile",
            format!(
                "{:?} is not a profile; use \"default\" or \"production\"",
                c.redis.profile
            ),
        ));
    }
    if c.history.retention.is_zero() {
        out.push(Problem::new(
            "history.retention",
            "must be greater than zero (e.g. \"24h\")",
        ));
    }
    if c.history.max_entries == 0 || c.history.max_entries > 1_000_000 {
        out.push(Problem::new(
            "history.max_entries",
            "must be between 1 and 1000000",
        ));
    }
    if c.backup.databases.is_empty() {
        check_default_database(c, &mut out);
    }
    if c.shutdown.timeout.is_zero() {
        out.push(Problem::new(
            "shutdown.timeout",
            "must be greater than zero (e.g. \"10s\")",
        ));
    }
    if let Err(reason) = crate::logging::check_level(&c.log.level) {
        out.push(Problem::new("log.level", reason));
    }
    check_upper_bounds(c, &mut out);
    out
}

fn check_postgres_url(c: &Config, out: &mut Vec<Problem>) {
    if c.postgres.url.expose().trim().is_empty() {
        out.push(Problem::new(
            "postgres.url",
            "is empty; set it, postgres.url_file or DATABASE_URL",
        ));
        return;
    }
    check_pg_url("postgres.url", &c.postgres.url, out);
    if let Some(u) = &c.backup.restore_test.url {
        check_pg_url("backup.restore_test.url", u, out);
    }
}

/// A PostgreSQL URL or key=value string under config key `key`; what is wrong is said without
/// its password.
fn check_pg_url(key: &'static str, u: &crate::secret::SecretUrl, out: &mut Vec<Problem>) {
    let url = u.expose();
    if url.trim().is_empty() {
        out.push(Problem::new(
            key,
            "is empty; remove it or set a PostgreSQL URL",
        ));
        return;
    }
    if url.contains("://") && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        out.push(Problem::new(
            key,
            format!("{} is not a postgres:// or postgresql:// URL", u.redacted()),
        ));
        return;
    }
    match tokio_postgres::Config::from_str(url) {
        Err(e) => out.push(Problem::new(
            key,
            format!(
                "{} is not a valid PostgreSQL URL or key=value string: {}",
                u.redacted(),
                u.shape_problem().unwrap_or(e.to_string())
            ),
        )),
        Ok(pg) if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
            out.push(Problem::new(
                key,
                "sslmode=require needs TLS, which this version of steward does not speak yet; \
                 use sslmode=disable or prefer (over a private network or an SSH/stunnel tunnel)",
            ))
        }
        Ok(_) => {}
    }
}

/// Without `backup.databases`, the database of `postgres.url` is backed up; it must be a
/// name PostgreSQL can give a database (its backup directory's name is escaped from it).
fn check_default_database(c: &Config, out: &mut Vec<Problem>) {
    let Ok(pg) = tokio_postgres::Config::from_str(c.postgres.url.expose()) else {
        return;
    };
    let db = pg.get_dbname().or(pg.get_user()).unwrap_or("postgres");
    if !super::backup::is_backup_database_name(db) {
        out.push(Problem::new(
            "backup.databases",
            format!(
                "the database of postgres.url ({:?}) is not a PostgreSQL database name (1 to 63 bytes, without NUL); list the databases to back up explicitly",
                db.chars().take(80).collect::<String>()
            ),
        ));
    }
}

fn check_redis_url(c: &Config, out: &mut Vec<Problem>) {
    let url = c.redis.url.expose();
    if url.trim().is_empty() {
        out.push(Problem::new("redis.url", "is empty; set it or REDIS_URL"));
        return;
    }
    let scheme_ok = ["redis://", "unix://", "redis+unix://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok {
        out.push(Problem::new(
            "redis.url",
            format!(
                "{} must start with redis:// or unix:// (rediss:// is not supported by this build)",
                c.redis.url.redacted()
            ),
        ));
        return;
    }
    if let Err(e) = redis::Client::open(url) {
        out.push(Problem::new(
            "redis.url",
            format!("{} is not a valid Redis URL: {e}", c.redis.url.redacted()),
        ));
    }
}

fn is_table_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            let mut ch = p.chars();
            matches!(ch.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && ch.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && p.len() <= 63
        })
}

/// Durations steward adds to a clock or passes to PostgreSQL are bounded, so that a typo
/// such as "30000000y" is refused here instead of overflowing at run time.
fn check_upper_bounds(c: &Config, out: &mut Vec<Problem>) {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    const HOUR: Duration = Duration::from_secs(3600);
    // PostgreSQL's lock_timeout is an int of milliseconds.
    let lock_most = Duration::from_millis(i32::MAX as u64);
    let bounds = [
        ("postgres.interval", c.postgres.interval, DAY, "1d"),
        ("redis.interval", c.redis.interval, DAY, "1d"),
        ("shutdown.timeout", c.shutdown.timeout, HOUR, "1h"),
        ("cache.scan_budget", c.cache.scan_budget, HOUR, "1h"),
        (
            "alertmanager.resend_interval",
            c.alertmanager.resend_interval,
            DAY,
            "1d",
        ),
        (
            "backup.lock_timeout",
            c.backup.lock_timeout,
            lock_most,
            "24d (PostgreSQL's limit for lock_timeout)",
        ),
    ];
    for (key, d, most, shown) in bounds {
        if d > most {
            out.push(Problem::new(
                key,
                format!(
                    "is {}; it can be at most {shown}, give a shorter duration",
                    humantime::format_duration(d)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(validate(&Config::default()), vec![]);
    }

    #[test]
    fn table_names() {
        assert!(is_table_name("steward_heartbeat"));
        assert!(is_table_name("ops.beat"));
        assert!(!is_table_name("x; drop table y"));
        assert!(!is_table_name("1abc"));
        assert!(!is_table_name("a.b.c"));
    }

    #[test]
    fn postgres_urls() {
        let mut c = Config::default();
        c.postgres.url =
            crate::secret::SecretUrl::new("host=db user=app password=x sslmode=require");
        let p = validate(&c);
        assert_eq!(p[0].key, "postgres.url");
        assert!(p[0].reason.contains("sslmode=require"));
        assert!(!p[0].reason.contains("password=x"));
        c.postgres.url = crate::secret::SecretUrl::new("host=db user=app password=x");
        assert!(validate(&c).is_empty());
        c.postgres.url = crate::secret::SecretUrl::new("postgres://u:secretpw@h/db?sslmode=bogus");
        let p = validate(&c);
        assert_eq!(p[0].key, "postgres.url");
        assert!(!p[0].reason.contains("secretpw"), "{}", p[0].reason);
    }

    #[test]
    fn modes() {
        let mut c = Config::default();
        c.control.mode = "0400".into();
        assert_eq!(validate(&c)[0].key, "control.mode");
        c.control.mode = "0666".into();
        assert_eq!(validate(&c)[0].key, "control.mode");
        c.control.mode = "rw".into();
        assert_eq!(validate(&c)[0].key, "control.mode");
        c.control.mode = "0660".into();
        assert!(validate(&c).is_empty());
    }

    /// Durations that steward adds to a clock or hands to PostgreSQL have an upper bound: at
    /// u64::MAX seconds `shutdown.timeout` panicked the supervisor on the next `task` command,
    /// `cache.scan_budget` panicked `cache.stats` on every pass, and `resend_interval` would
    /// panic the Alertmanager sender.
    #[test]
    fn huge_durations_are_refused_naming_the_key() {
        let huge = Duration::from_secs(u64::MAX);
        type Set = fn(&mut Config, Duration);
        let keys: [(&str, Set); 6] = [
            ("shutdown.timeout", |c, d| c.shutdown.timeout = d),
            ("cache.scan_budget", |c, d| c.cache.scan_budget = d),
            ("backup.lock_timeout", |c, d| c.backup.lock_timeout = d),
            ("postgres.interval", |c, d| c.postgres.interval = d),
            ("redis.interval", |c, d| c.redis.interval = d),
            ("alertmanager.resend_interval", |c, d| {
                c.alertmanager.resend_interval = d
            }),
        ];
        for (key, set) in keys {
            let mut c = Config::default();
            set(&mut c, huge);
            let p = validate(&c);
            assert!(
                p.iter()
                    .any(|p| p.key == key && p.reason.contains("at most")),
                "{key}: {p:?}"
            );
        }
    }
}
