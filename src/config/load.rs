//! Loading: file → legacy environment variables → `STEWARD_<SECTION>__<KEY>` → secret files → validation.

use super::validate::{validate, Problem};
use super::Config;
use crate::secret::{Scrubber, SecretUrl};
use config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a config could not be loaded; every variant names the file, none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source} (pass --config FILE or set STEWARD_CONFIG)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} is invalid:{}", list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl LoadError {
    /// The problems found, one per key (a read or parse failure counts as one).
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Invalid { problems, .. } => problems.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Picks the config file: `--config`, else `$STEWARD_CONFIG`, else `config/steward.toml`, else
/// `/etc/steward/steward.toml`.
pub fn resolve_path(explicit: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = env.get("STEWARD_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("config/steward.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/steward/steward.toml")
}

/// Loads and validates the config at `path`, with overrides from `env` (the process
/// environment, passed in so that tests and reloads see exactly what they should).
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    let legacy = legacy_env(env, &mut problems);
    let steward_env: Map<String, String> = env
        .iter()
        .filter(|(k, _)| {
            k.starts_with("STEWARD_") && k.contains("__") && !LIST_VARS.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let databases: Option<Vec<String>> = env.get("STEWARD_BACKUP__DATABASES").map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let built = config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .add_source(Environment::default().separator("__").source(Some(legacy)))
        .add_source(
            Environment::with_prefix("STEWARD")
                .prefix_separator("_")
                .separator("__")
                .source(Some(steward_env)),
        )
        .set_override_option("backup.databases", databases)
        .map_err(|e| LoadError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .build()
        .map_err(|e| LoadError::Parse {
            path: path.to_path_buf(),
            message: crate::secret::scrub_urls(&e.to_string()),
        })?;
    let raw = built.collect().unwrap_or_default();
    let scrubber = Scrubber::new(raw_secrets(&raw));
    problems.extend(unknown_keys(&raw));
    if !problems.is_empty() {
        return Err(invalid(path, problems, &scrubber));
    }
    let mut cfg: Config = match built.try_deserialize() {
        Ok(c) => c,
        Err(e) => {
            return Err(invalid(path, vec![type_problem(&e)], &scrubber));
        }
    };
    read_secret_files(&mut cfg, &mut problems);
    default_timeouts(&mut cfg, &raw);
    problems.extend(validate(&cfg));
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(invalid(path, problems, &scrubber))
    }
}

fn invalid(path: &Path, problems: Vec<Problem>, scrubber: &Scrubber) -> LoadError {
    let problems = problems
        .into_iter()
        .map(|p| Problem {
            key: p.key,
            reason: scrubber.scrub(&p.reason),
        })
        .collect();
    LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

/// Variables holding lists (comma-separated), which the generic override cannot split.
const LIST_VARS: &[&str] = &["STEWARD_BACKUP__DATABASES"];

/// Maps the variables deployments already set onto steward's keys (as `SECTION__KEY`).
fn legacy_env(env: &HashMap<String, String>, problems: &mut Vec<Problem>) -> Map<String, String> {
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    if let Some(v) = env.get("DATABASE_URL").filter(|v| !v.is_empty()) {
        put("POSTGRES__URL", v.clone());
    }
    if let Some(v) = env.get("REDIS_URL").filter(|v| !v.is_empty()) {
        put("REDIS__URL", v.clone());
    }
    if let Some(v) = env.get("MONITORING_INTERVAL").filter(|v| !v.is_empty()) {
        match seconds(v) {
            Some(d) => {
                put("POSTGRES__INTERVAL", d.clone());
                put("REDIS__INTERVAL", d);
            }
            None => problems.push(Problem::env(
                "MONITORING_INTERVAL",
                v,
                "a number of seconds",
            )),
        }
    }
    if let Some(v) = env.get("REDIS_SOCKET_TIMEOUT").filter(|v| !v.is_empty()) {
        match seconds(v) {
            Some(d) => put("REDIS__TIMEOUT", d),
            None => problems.push(Problem::env(
                "REDIS_SOCKET_TIMEOUT",
                v,
                "a number of seconds",
            )),
        }
    }
    if let Some(v) = env.get("BACKUP_RETENTION_DAYS").filter(|v| !v.is_empty()) {
        match v.trim().parse::<u32>() {
            Ok(n) => put("BACKUP__RETENTION_DAYS", n.to_string()),
            Err(_) => problems.push(Problem::env(
                "BACKUP_RETENTION_DAYS",
                v,
                "a whole number of days",
            )),
        }
    }
    if let Some(v) = env
        .get("BACKUP_SCHEDULE_DAILY_HOUR")
        .filter(|v| !v.is_empty())
    {
        match v.trim().parse::<u32>() {
            Ok(h) if h < 24 => put("BACKUP__SCHEDULE__DAILY", format!("0 {h} * * *")),
            _ => problems.push(Problem::env(
                "BACKUP_SCHEDULE_DAILY_HOUR",
                v,
                "an hour from 0 to 23",
            )),
        }
    }
    if let Some(v) = env
        .get("BACKUP_SCHEDULE_WEEKLY_DAY")
        .filter(|v| !v.is_empty())
    {
        match v.trim().parse::<u32>() {
            // 0 = Monday here; cron counts from Sunday = 0.
            Ok(d) if d < 7 => put(
                "BACKUP__SCHEDULE__WEEKLY",
                format!("0 3 * * {}", (d + 1) % 7),
            ),
            _ => problems.push(Problem::env(
                "BACKUP_SCHEDULE_WEEKLY_DAY",
                v,
                "a day from 0 (Monday) to 6 (Sunday)",
            )),
        }
    }
    if let Some(v) = env
        .get("ALERT_THRESHOLD_RESPONSE_TIME")
        .filter(|v| !v.is_empty())
    {
        // Milliseconds, as deployments set it; the rule's threshold is in seconds.
        match v.trim().parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms > 0.0 => put(
                "ALERTS__SLOW_RESPONSE__THRESHOLD",
                (ms / 1000.0).to_string(),
            ),
            _ => problems.push(Problem::env(
                "ALERT_THRESHOLD_RESPONSE_TIME",
                v,
                "a positive number of milliseconds",
            )),
        }
    }
    if let Some(v) = env
        .get("CACHE_COMPRESSION_THRESHOLD")
        .filter(|v| !v.is_empty())
    {
        match v.trim().parse::<usize>() {
            Ok(n) => put("CACHE__COMPRESSION_THRESHOLD", n.to_string()),
            Err(_) => problems.push(Problem::env(
                "CACHE_COMPRESSION_THRESHOLD",
                v,
                "a whole number of bytes",
            )),
        }
    }
    if let Some(v) = env.get("REDIS_MAX_CONNECTIONS").filter(|v| !v.is_empty()) {
        match v.trim().parse::<u32>() {
            Ok(n) => put("REDIS__POOL_MAX", n.to_string()),
            Err(_) => problems.push(Problem::env("REDIS_MAX_CONNECTIONS", v, "a whole number")),
        }
    }
    m
}

/// "30" or "2.5" (seconds) → a humantime string; anything else is refused.
fn seconds(v: &str) -> Option<String> {
    let f: f64 = v.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Some(format!("{}ms", (f * 1000.0).round() as u64))
}

/// Every key the file or environment set that no section knows, as one problem each.
fn unknown_keys(raw: &Map<String, Value>) -> Vec<Problem> {
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let mut out = Vec::new();
    for (section, value) in raw {
        let Some(fields) = known.get(section) else {
            out.push(Problem::new(section, "unknown section"));
            continue;
        };
        match &value.kind {
            ValueKind::Table(t) => unknown_in(section, t, fields, &mut out),
            _ => out.push(Problem::new(section, "must be a table ([section])")),
        }
    }
    out
}

/// Unknown keys of one table, descending into sub-tables such as `[backup.schedule]`.
fn unknown_in(
    prefix: &str,
    table: &Map<String, Value>,
    known: &serde_json::Value,
    out: &mut Vec<Problem>,
) {
    for (key, value) in table {
        let path = format!("{prefix}.{key}");
        match known.get(key) {
            None => out.push(Problem::new(path, "unknown key")),
            Some(sub @ serde_json::Value::Object(_)) => match &value.kind {
                ValueKind::Table(t) => unknown_in(&path, t, sub, out),
                _ => out.push(Problem::new(path, "must be a table")),
            },
            Some(_) => {}
        }
    }
}

/// The raw connection strings, so their passwords can be masked in any message.
fn raw_secrets(raw: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for section in ["postgres", "redis"] {
        if let Some(ValueKind::Table(t)) = raw.get(section).map(|v| &v.kind) {
            if let Some(ValueKind::String(s)) = t.get("url").map(|v| &v.kind) {
                out.extend(SecretUrl::new(s.clone()).secrets());
            }
        }
    }
    out
}

fn type_problem(e: &config::ConfigError) -> Problem {
    let msg = e.to_string();
    // config's messages read "<what> for key `section.key` in <origin>"; lift the key out.
    let key = msg
        .split('`')
        .nth(1)
        .filter(|k| k.contains('.'))
        .map(str::to_string)
        .unwrap_or_else(|| "config".into());
    Problem::new(key, msg)
}

/// A timeout nobody set defaults to 5 s, or to half the interval when that is shorter, so
/// `MONITORING_INTERVAL=5` works without also setting timeouts; a timeout set explicitly is
/// validated as given.
fn default_timeouts(cfg: &mut Config, raw: &Map<String, Value>) {
    let set = |section: &str| match raw.get(section).map(|v| &v.kind) {
        Some(ValueKind::Table(t)) => t.contains_key("timeout"),
        _ => false,
    };
    if !set("postgres") && cfg.postgres.timeout >= cfg.postgres.interval {
        cfg.postgres.timeout = cfg.postgres.interval / 2;
    }
    if !set("redis") && cfg.redis.timeout >= cfg.redis.interval {
        cfg.redis.timeout = cfg.redis.interval / 2;
    }
    // The production profile raises the pool's default; a pool_max set anywhere stays.
    let pool_set = match raw.get("redis").map(|v| &v.kind) {
        Some(ValueKind::Table(t)) => t.contains_key("pool_max"),
        _ => false,
    };
    if !pool_set && cfg.redis.profile == "production" {
        cfg.redis.pool_max = 100;
    }
}

/// Reads `postgres.url_file` and `redis.password_file` into the config.
fn read_secret_files(cfg: &mut Config, problems: &mut Vec<Problem>) {
    if let Some(path) = cfg.postgres.url_file.clone() {
        match std::fs::read_to_string(&path) {
            Ok(s) => cfg.postgres.url = SecretUrl::new(s.trim()),
            Err(e) => problems.push(Problem::new(
                "postgres.url_file",
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
    if let Some(path) = cfg.redis.password_file.clone() {
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                match with_password(cfg.redis.url.expose(), s.trim_end_matches(['\r', '\n'])) {
                    Some(u) => cfg.redis.url = SecretUrl::new(u),
                    None => problems.push(Problem::new(
                        "redis.password_file",
                        "redis.url must be a redis:// or rediss:// URL to take a password",
                    )),
                }
            }
            Err(e) => problems.push(Problem::new(
                "redis.password_file",
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
}

fn with_password(url: &str, password: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    if u.password().is_some() {
        return Some(url.to_string());
    }
    u.set_password(Some(password)).ok()?;
    Some(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cache_namespaces_profile_and_environment() {
        let f = file(
            "[redis]\nprofile = \"production\"\n\
             [[cache.namespace]]\nname = \"sessions\"\nprefix = \"cache:sessions:\"\nttl = \"1h\"\n\
             [[cache.namespace]]\nname = \"analytics\"\nprefix = \"cache:analytics:\"\nttl = \"30m\"\n\
             codec = \"json\"\ncompress = true\n[cache.namespace.warmup]\nquery = \"SELECT 1, 2\"\n",
        );
        let c = load(f.path(), &env(&[("CACHE_COMPRESSION_THRESHOLD", "2048")])).unwrap();
        assert_eq!(c.redis.pool_max, 100);
        assert_eq!(c.cache.compression_threshold, 2048);
        assert_eq!(c.cache.namespaces.len(), 2);
        let a = &c.cache.namespaces[1];
        assert_eq!((a.codec, a.compress), (crate::config::Codec::Json, true));
        assert_eq!(a.warmup.as_ref().unwrap().query, "SELECT 1, 2");
        let c = load(f.path(), &env(&[("REDIS_MAX_CONNECTIONS", "20")])).unwrap();
        assert_eq!(
            c.redis.pool_max, 20,
            "an explicit pool_max beats the profile"
        );
        let bad = file("[[cache.namespace]]\nname = \"x\"\nprefix = \"\"\nttl = \"0s\"\n");
        let e = load(bad.path(), &env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("cache.namespace[0] (x).prefix") && e.contains("(x).ttl"),
            "{e}"
        );
    }

    #[test]
    fn alert_rules_from_file_and_environment() {
        let f = file(
            "[alerts.service_down]\nfor = \"5s\"\n[alerts.task_restarting]\nwindow = \"1m\"\n",
        );
        let c = load(
            f.path(),
            &env(&[
                ("ALERT_THRESHOLD_RESPONSE_TIME", "250"),
                ("STEWARD_ALERTS__REDIS_MEMORY_HIGH__THRESHOLD", "0.5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.alerts.service_down.for_.as_secs(), 5);
        assert_eq!(c.alerts.task_restarting.window.unwrap().as_secs(), 60);
        assert_eq!(c.alerts.task_restarting.threshold, Some(3.0));
        assert_eq!(c.alerts.slow_response.threshold, Some(0.25));
        assert_eq!(c.alerts.redis_memory_high.threshold, Some(0.5));
        let bad = load(f.path(), &env(&[("ALERT_THRESHOLD_RESPONSE_TIME", "fast")])).unwrap_err();
        assert!(
            bad.to_string().contains("ALERT_THRESHOLD_RESPONSE_TIME"),
            "{bad}"
        );
        let f = file("[alerts.backup_failed]\nwindow = \"1m\"\n");
        let bad = load(f.path(), &env(&[])).unwrap_err().to_string();
        assert!(bad.contains("alerts.backup_failed.window"), "{bad}");
    }

    #[test]
    fn defaults_and_file_values() {
        let f = file("[postgres]\ninterval = \"10s\"\n[redis]\npool_max = 7\n");
        let c = load(f.path(), &env(&[])).unwrap();
        assert_eq!(c.postgres.interval.as_secs(), 10);
        assert_eq!(c.postgres.timeout.as_secs(), 5);
        assert_eq!(c.redis.pool_max, 7);
        assert_eq!(c.redis.interval.as_secs(), 30);
    }

    #[test]
    fn steward_env_beats_legacy_env_beats_file() {
        let f = file("[redis]\npool_max = 7\n[postgres]\ninterval = \"10s\"\n");
        let e = env(&[
            ("REDIS_MAX_CONNECTIONS", "20"),
            ("MONITORING_INTERVAL", "15"),
            ("STEWARD_POSTGRES__INTERVAL", "12s"),
            ("DATABASE_URL", "postgres://u:pw@db/app"),
            ("REDIS_SOCKET_TIMEOUT", "2.5"),
        ]);
        let c = load(f.path(), &e).unwrap();
        assert_eq!(c.redis.pool_max, 20);
        assert_eq!(c.redis.interval.as_secs(), 15);
        assert_eq!(c.postgres.interval.as_secs(), 12);
        assert_eq!(c.redis.timeout.as_millis(), 2500);
        assert_eq!(c.postgres.url.expose(), "postgres://u:pw@db/app");
    }

    #[test]
    fn every_problem_is_named() {
        let f =
            file("[postgres]\nintervall = \"1s\"\n[nosuch]\nx = 1\n[redis]\ninterval = \"0s\"\n");
        let err = load(f.path(), &env(&[("MONITORING_INTERVAL", "soon")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("postgres.intervall"), "{text}");
        assert!(text.contains("nosuch"), "{text}");
        assert!(text.contains("MONITORING_INTERVAL"), "{text}");
    }

    #[test]
    fn validation_problems_listed_together() {
        let f = file("[redis]\ninterval = \"0s\"\n[postgres]\ninterval = \"5s\"\ntimeout = \"5s\"\nurl = \"mysql://x\"\n");
        let err = load(f.path(), &env(&[])).unwrap_err();
        let p = err.problems();
        assert!(p.iter().any(|p| p.contains("redis.interval")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("postgres.timeout")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("postgres.url")), "{p:?}");
    }

    #[test]
    fn bad_duration_names_key_and_hides_password() {
        let f = file("[postgres]\ninterval = 30\nurl = \"postgres://u:hunter2@h/db\"\n");
        let err = load(f.path(), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("postgres.interval"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let f = file("[postgres]\nurl = 5\n");
        let err = load(f.path(), &env(&[("X", "y")])).unwrap_err().to_string();
        assert!(err.contains("postgres.url"), "{err}");
    }

    #[test]
    fn unset_timeouts_fit_short_intervals() {
        let f = file("[redis]\ntimeout = \"4s\"\n");
        let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "2")])).unwrap_err();
        assert!(c.to_string().contains("redis.timeout"), "{c}");
        let f = file("");
        let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "2")])).unwrap();
        assert_eq!(c.postgres.timeout.as_millis(), 1000);
        assert_eq!(c.redis.timeout.as_millis(), 1000);
        let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "60")])).unwrap();
        assert_eq!(c.postgres.timeout.as_secs(), 5);
    }

    #[test]
    fn unreadable_file_is_named() {
        let err = load(Path::new("/nonexistent/steward.toml"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/steward.toml"));
    }

    #[test]
    fn secret_files_are_read() {
        let url = file("postgres://app:fromfile@db/app\n");
        let pw = file("redispw\n");
        let f = file(&format!(
            "[postgres]\nurl_file = \"{}\"\n[redis]\npassword_file = \"{}\"\n",
            url.path().display(),
            pw.path().display()
        ));
        let c = load(f.path(), &env(&[])).unwrap();
        assert_eq!(c.postgres.url.expose(), "postgres://app:fromfile@db/app");
        assert!(c.redis.url.expose().contains(":redispw@"));
        assert!(!c.to_redacted_toml().contains("redispw"));
        assert!(!c.to_redacted_toml().contains("fromfile"));
    }
}
