//! Loading: file → legacy environment variables → `STEWARD_<SECTION>__<KEY>` → secret files → validation.

use super::model::Config;
use super::problem::Problem;
use super::regular_file::{read_regular_string, ReadError, CONFIG_CAP};
use super::secret_urls::read_secret_files;
use super::validate::validate;
use crate::secret::{Scrubber, SecretUrl};
use config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use env::{legacy_env, steward_var_for, steward_vars_under, words_for_numbers, LIST_VARS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod env;
mod prune;
mod strict;
mod syntax;

/// Why a config could not be loaded; every variant names the file, none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source} (pass --config FILE or set STEWARD_CONFIG)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is {kind}, not a regular file; pass --config with the path of the TOML file itself")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("config file {path} is larger than {} KiB, the most a config file may be; check that --config names steward's TOML file", .cap / 1024)]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("config file {path} is not UTF-8 text; save it as UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("config file {path} is not valid TOML at {message}")]
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

    fn reading(path: &Path, e: ReadError) -> Self {
        let path = path.to_path_buf();
        match e {
            ReadError::Io(source) => LoadError::Read { path, source },
            ReadError::NotRegular(kind) => LoadError::NotRegular { path, kind },
            ReadError::TooLarge(cap) => LoadError::TooLarge { path, cap },
            ReadError::NotUtf8 => LoadError::NotUtf8 { path },
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
///
/// The file is read only if it is a regular file of at most [`CONFIG_CAP`] bytes; its values
/// must have their keys' types (the environment's strings are converted to them).
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, LoadError> {
    let text = read_regular_string(path, CONFIG_CAP).map_err(|e| LoadError::reading(path, e))?;
    syntax::check(&text).map_err(|message| LoadError::Parse {
        path: path.to_path_buf(),
        message,
    })?;
    let mut problems = words_for_numbers(env);
    // A variable refused here is left out, so that its coerced value is not judged again.
    let refused: Vec<String> = problems
        .iter()
        .map(|p| p.key.trim_end_matches(" (environment)").to_string())
        .collect();
    let env = &prune::without(env, &refused);
    let built = match merged(&text, env, &mut problems) {
        Ok(b) => b,
        // The syntax was checked; what the config crate still refuses (an integer too large,
        // say) the strict check names with its key and line.
        Err(e) => {
            let p = strict::check(&text).err().unwrap_or_else(|| {
                Problem::new("config", crate::secret::scrub_urls(&e.to_string()))
            });
            return Err(invalid(path, vec![p], &Scrubber::new(Vec::new())));
        }
    };
    let raw = built.collect().unwrap_or_default();
    let scrubber = Scrubber::new(raw_secrets(&raw));
    // Every problem in one pass: unknown keys are reported and set aside, and the rest is
    // checked without them.
    let unknown = unknown_keys(&raw, &text, env);
    let (text, env, built) = if unknown.is_empty() {
        (text, env.clone(), built)
    } else {
        let (vars, keys): (Vec<String>, Vec<String>) = unknown
            .iter()
            .map(|p| p.key.clone())
            .partition(|k| k.ends_with(" (environment)"));
        let vars: Vec<String> = vars
            .iter()
            .map(|v| v.replace(" (environment)", ""))
            .collect();
        let text = prune::blank_unknown(&text, &keys);
        let env = prune::without(env, &vars);
        let built = match merged(&text, &env, &mut Vec::new()) {
            Ok(b) => b,
            Err(_) => return Err(invalid(path, [problems, unknown].concat(), &scrubber)),
        };
        (text, env, built)
    };
    let env = &env;
    problems.extend(unknown);
    if let Err(p) = strict::check(&text) {
        problems.push(p);
        return Err(invalid(path, problems, &scrubber));
    }
    let mut cfg: Config = match built.try_deserialize() {
        Ok(c) => c,
        Err(e) => {
            // The file's types were checked above: what does not fit came from a variable.
            let mut p = type_problem(&e);
            if let Some(var) = steward_var_for(&p.key, env) {
                p.reason = unquoted(&p.reason);
                p.reason += &format!("; set {var} to a value of that type or unset it");
                p.key = format!("{var} (environment)");
            }
            problems.push(p);
            return Err(invalid(path, problems, &scrubber));
        }
    };
    super::paths::anchor_all(&mut cfg, &super::paths::base_dir(path));
    super::instance::resolve(&mut cfg.instance, cfg.metrics.listen.port());
    // Secret files are read here and in validation; their warnings must show even before
    // logging is set up.
    let log = cfg.log.clone();
    super::secret_file::with_warnings_shown(&log, || {
        read_secret_files(&mut cfg, &mut problems);
        super::backup_remote::read_credentials(&mut cfg.backup.remote, env, &mut problems);
        default_timeouts(&mut cfg, &raw);
        problems.extend(validate(&cfg));
    });
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(invalid(path, problems, &scrubber))
    }
}

/// The file with the legacy variables and then `STEWARD_<SECTION>__<KEY>` laid over it.
fn merged(
    text: &str,
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Result<config::Config, config::ConfigError> {
    let legacy = legacy_env(env, problems);
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
    config::Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .add_source(Environment::default().separator("__").source(Some(legacy)))
        .add_source(
            Environment::with_prefix("STEWARD")
                .prefix_separator("_")
                .separator("__")
                .source(Some(steward_env)),
        )
        .set_override_option("backup.databases", databases)?
        .build()
}

fn invalid(path: &Path, problems: Vec<Problem>, scrubber: &Scrubber) -> LoadError {
    let problems = problems
        .into_iter()
        .map(|p| Problem {
            key: p.key,
            reason: scrubber.scrub(&crate::secret::mask_age_keys(&crate::secret::scrub_urls(
                &p.reason,
            ))),
        })
        .collect();
    LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

/// Every key the file or environment set that no section knows, as one problem each.
fn unknown_keys(
    raw: &Map<String, Value>,
    text: &str,
    env: &HashMap<String, String>,
) -> Vec<Problem> {
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let in_file = text.parse::<toml::Table>().unwrap_or_default();
    let mut out = Vec::new();
    for (section, value) in raw {
        let Some(fields) = known.get(section) else {
            let hint = did_you_mean(section, &known);
            for var in steward_vars_under(section, env) {
                out.push(Problem::new(
                    format!("{var} (environment)"),
                    format!("unknown section {section:?}{hint}; unset the variable"),
                ));
            }
            let reason = format!("unknown section{hint}");
            if in_file.contains_key(section) || steward_vars_under(section, env).is_empty() {
                out.push(Problem::new(section, reason));
            }
            continue;
        };
        match &value.kind {
            ValueKind::Table(t) => unknown_in(section, t, fields, &mut out),
            _ => out.push(Problem::new(section, "must be a table ([section])")),
        }
    }
    // A key that only a variable set is the variable's problem.
    for p in &mut out {
        if let Some(var) = steward_var_for(&p.key, env) {
            p.reason += &format!("; it comes from the environment variable {var}");
            p.key = format!("{var} (environment)");
        }
    }
    out
}

/// `; did you mean "x"?` for the known name closest to `name`, when one is close.
fn did_you_mean(name: &str, known: &serde_json::Value) -> String {
    let Some(fields) = known.as_object() else {
        return String::new();
    };
    fields
        .keys()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
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
            None => out.push(Problem::new(
                path,
                format!("unknown key{}", did_you_mean(key, known)),
            )),
            Some(sub @ serde_json::Value::Object(_)) => match &value.kind {
                ValueKind::Table(t) => unknown_in(&path, t, sub, out),
                _ => out.push(Problem::new(path, "must be a table")),
            },
            Some(_) => {}
        }
    }
}

/// The raw connection strings' passwords, and any password written into another value, so
/// that they can be masked in any message (one may quote only a piece of a value).
fn raw_secrets(raw: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for section in ["postgres", "redis"] {
        if let Some(ValueKind::Table(t)) = raw.get(section).map(|v| &v.kind) {
            if let Some(ValueKind::String(s)) = t.get("url").map(|v| &v.kind) {
                out.extend(SecretUrl::new(s.clone()).secrets());
            }
        }
    }
    raw.values().for_each(|v| text_secrets_in(v, &mut out));
    out
}

/// [`crate::secret::text_secrets`] of every string in a value, tables and arrays included.
fn text_secrets_in(v: &Value, out: &mut Vec<String>) {
    match &v.kind {
        ValueKind::String(s) => out.extend(crate::secret::text_secrets(s)),
        ValueKind::Table(t) => t.values().for_each(|v| text_secrets_in(v, out)),
        ValueKind::Array(a) => a.iter().for_each(|v| text_secrets_in(v, out)),
        _ => {}
    }
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

/// The config crate's message without the string value it quotes (`invalid type: string
/// "…", expected …` → `invalid type: a string, expected …`): a variable's value may be a
/// secret set to the wrong variable.
fn unquoted(msg: &str) -> String {
    let Some(start) = msg.find("string \"") else {
        return msg.to_string();
    };
    match msg.rfind("\", expected") {
        Some(end) if end > start => format!("{}a string{}", &msg[..start], &msg[end + 1..]),
        _ => format!("{}a string (not shown)", &msg[..start]),
    }
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
