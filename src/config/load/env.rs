//! The environment's part of loading: the variables deployments already set (`DATABASE_URL`,
//! `MONITORING_INTERVAL`, …) mapped onto steward's keys, and which variable set a key.

use super::super::problem::Problem;
use config::Map;
use std::collections::HashMap;

/// Variables holding lists (comma-separated), which the generic override cannot split.
pub(super) const LIST_VARS: &[&str] = &["STEWARD_BACKUP__DATABASES"];

/// Maps the variables deployments already set onto steward's keys (as `SECTION__KEY`).
pub(super) fn legacy_env(
    env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Map<String, String> {
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
            None => problems.push(Problem::env("MONITORING_INTERVAL", "a number of seconds")),
        }
    }
    if let Some(v) = env.get("REDIS_SOCKET_TIMEOUT").filter(|v| !v.is_empty()) {
        match seconds(v) {
            Some(d) => put("REDIS__TIMEOUT", d),
            None => problems.push(Problem::env("REDIS_SOCKET_TIMEOUT", "a number of seconds")),
        }
    }
    if let Some(v) = env.get("BACKUP_RETENTION_DAYS").filter(|v| !v.is_empty()) {
        match v.trim().parse::<u32>() {
            Ok(n) => put("BACKUP__RETENTION_DAYS", n.to_string()),
            Err(_) => problems.push(Problem::env(
                "BACKUP_RETENTION_DAYS",
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
                "a whole number of bytes",
            )),
        }
    }
    if let Some(v) = env.get("REDIS_MAX_CONNECTIONS").filter(|v| !v.is_empty()) {
        match v.trim().parse::<u32>() {
            Ok(n) => put("REDIS__POOL_MAX", n.to_string()),
            Err(_) => problems.push(Problem::env("REDIS_MAX_CONNECTIONS", "a whole number")),
        }
    }
    m
}

/// Words the `config` crate reads as numbers (`yes`, `on`, `true` as 1; `no`, `off`, `false`
/// as 0), given by a `STEWARD_*` variable for a key that takes a number: refused, naming the
/// variable, as `pool_max = true` in the file would be. Whether the key takes a number is
/// asked of the key itself: the word, as a TOML boolean under the key, is deserialized alone.
pub(super) fn words_for_numbers(env: &HashMap<String, String>) -> Vec<Problem> {
    let mut out: Vec<Problem> = env
        .iter()
        .filter_map(|(var, value)| {
            let flag = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => true,
                "false" | "no" | "off" => false,
                _ => return None,
            };
            let path = var.strip_prefix("STEWARD_")?.to_ascii_lowercase();
            let (table, key) = path.rsplit_once("__")?;
            let doc = format!("[{}]\n{key} = {flag}\n", table.replace("__", "."));
            let err = toml::from_str::<crate::config::model::Config>(&doc).err()?;
            takes_a_number(err.message()).then(|| Problem::env(var, "a number (such as 4)"))
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Whether serde's message says a number was expected.
fn takes_a_number(msg: &str) -> bool {
    let expected = msg.rsplit_once("expected ").map_or("", |(_, e)| e);
    [
        "u8", "u16", "u32", "u64", "usize", "i32", "i64", "f32", "f64", "integer", "float",
    ]
    .iter()
    .any(|w| expected.contains(w))
}

/// "30" or "2.5" (seconds) → a humantime string; anything else is refused.
fn seconds(v: &str) -> Option<String> {
    let f: f64 = v.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Some(format!("{}ms", (f * 1000.0).round() as u64))
}

/// Every `STEWARD_<SECTION>__…` variable under `section`, sorted: an unknown section that
/// only variables set is theirs to answer for, one problem each.
pub(super) fn steward_vars_under(section: &str, env: &HashMap<String, String>) -> Vec<String> {
    let prefix = format!("STEWARD_{}__", section.to_ascii_uppercase());
    let mut vars: Vec<String> = env
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect();
    vars.sort();
    vars
}

/// The `STEWARD_<SECTION>__<KEY>` variable that set `key` (`redis.pool_max`), if one did: a
/// value of the wrong type there is the variable's fault, not the file's.
pub(super) fn steward_var_for(key: &str, env: &HashMap<String, String>) -> Option<String> {
    let var = format!("STEWARD_{}", key.to_ascii_uppercase().replace('.', "__"));
    env.contains_key(&var).then_some(var)
}
