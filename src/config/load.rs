//! Loading: file → legacy environment variables → `STEWARD_<SECTION>__<KEY>` → secret files → validation.

use super::secret_file::read_secret_files;
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
    // Secret files are read here and in validation; their warnings must show even before
    // logging is set up.
    let log = cfg.log.clone();
    super::secret_file::with_warnings_shown(&log, || {
        read_secret_files(&mut cfg, &mut problems);
        default_timeouts(&mut cfg, &raw);
        problems.extend(validate(&cfg));
    });
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
    let is_key = |k: &&str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
    };
    // config's messages read "<what> for key `section.key` in <origin>" (the last such phrase:
    // the value quoted before it may hold backticks) or "missing configuration field "key"".
    let quoted = msg
        .rfind("for key `")
        .and_then(|i| msg[i + 9..].split('`').next())
        .filter(is_key)
        .or_else(|| {
            msg.rfind("field \"")
                .and_then(|i| msg[i + 7..].split('"').next())
                .filter(is_key)
        });
    // A nested section's own messages start with the full dotted key ("alerts.x.y: …") while
    // the backticks name only the section: the longer one wins.
    let leading = msg
        .split_once(": ")
        .map(|(k, _)| k)
        .filter(|k| k.contains('.') && is_key(k));
    let key = match (leading, quoted) {
        (Some(l), Some(q)) if l.starts_with(q) => l,
        (_, Some(q)) => q,
        (Some(l), None) => l,
        (None, None) => "config",
    };
    Problem::new(dotted(key), msg)
}

/// config writes an array element's field as "cache.namespace[0]name": put the dot back.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_bracket = false;
    for c in key.chars() {
        if after_bracket && c != '.' && c != '[' {
            out.push('.');
        }
        after_bracket = c == ']';
        out.push(c);
    }
    out
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

#[cfg(test)]
mod tests;
